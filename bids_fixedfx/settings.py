"""The settings record that the command line produces and the workflow reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .inference import InferenceSettings
from .naming import STATS  # noqa: F401  (the maps of a t contrast, named once in naming; kept importable here)

MOTION_CONFOUNDS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
#: nilearn's ``load_confounds`` strategies (``--confounds motion wm_csf``); of them, only
#: ``global_signal`` is also the name of an fMRIPrep column.
CONFOUND_STRATEGIES = (
    "motion", "high_pass", "wm_csf", "global_signal", "compcor",
    "ica_aroma", "scrub", "non_steady_state",
)
DEFAULT_SPACE = "MNI152NLin2009cAsym"
#: The highest high-pass cut-off (Hz): the Nyquist frequency of the shortest repetition time
#: read (10 ms); above it no drift model exists (nilearn's cosine basis overflowed at 1e300 Hz).
MAX_HIGH_PASS = 50.0
#: The most contrasts a node (or ``--contrast``) may define: each writes five maps a run and
#: a subject, and a model of tens of thousands (from a web form, say) would fill the disk.
MAX_CONTRASTS = 1000
#: The highest order of the polynomial drift (``--drift-order``, a model's ``drift_order``).
#: nilearn builds the powers of the frame times up to it and orthogonalises them one by one
#: (an order of 300 took 80 s a run, 100,000 hung); past a few orders the powers are
#: numerically alike, and fine drifts are the cosine basis's work. AFNI's rule for its
#: polynomial (1 + the run's length / 150 s) gives 25 for an hour-long run: 100 is generous.
MAX_DRIFT_ORDER = 100


@dataclass(frozen=True)
class ContrastSpec:
    """A user-given t contrast: a name and an expression or weight list."""

    name: str
    definition: str


@dataclass(frozen=True)
class ModelSettings:
    """The first-level model: what nilearn's ``FirstLevelModel`` is given."""

    smoothing_fwhm: float | None = 5.0
    hrf_model: str = "glover"
    drift_model: str | None = "cosine"
    high_pass: float = 0.01
    drift_order: int = 1
    noise_model: str = "ar1"
    confounds: tuple[str, ...] = MOTION_CONFOUNDS
    confounds_given: bool = False  # --confounds was on the command line (not the default)
    non_steady_state: bool = True  # volumes flagged by fMRIPrep's non_steady_state_outlier columns left out
    dummy_scans: int | None = None  # --dummy-scans N: the first N volumes left out where no column flags any
    smoothing_given: bool = False  # --smoothing-fwhm was on the command line (surfaces take no default)
    smoothing_by_model: bool = False  # that smoothing is the model file's (Software.nilearn.smoothing_fwhm)
    precision_weighted: bool = False
    convolution: tuple[str, ...] = ()  # the HRFs of a model's Convolve transformations (for the record)
    nodes_digest: str | None = None  # a model file's run, session and subject nodes (plan.models.nodes_digest)


@dataclass(frozen=True)
class Settings:
    """Everything one invocation of the app was asked to do."""

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    participant_label: tuple[str, ...] = ()
    session_label: tuple[str, ...] = ()
    task: tuple[str, ...] = ()
    space: str | tuple[str, ...] | None = None  # --space: one space, or several (a tuple)
    derivatives: tuple[Path, ...] = ()
    bids_filters: dict = field(default_factory=dict, hash=False, compare=False)
    # what set a selection when the command line did not (``{"task": "Input.task of model-x_smdl.json"}``)
    selected_by: dict = field(default_factory=dict, hash=False, compare=False)
    skip_bids_validation: bool = False
    bids_database_dir: Path | None = None
    contrasts: tuple[ContrastSpec, ...] = ()
    model_file: Path | None = None
    model_node_names: dict = field(default_factory=dict, hash=False, compare=False)
    # the input datasets by the names the sidecars' Sources use (outputs.dataset_names), settled
    # once for a job's sets; empty: named from OUTPUT_DIR's links when needed
    datasets: dict = field(default_factory=dict, hash=False, compare=False)
    design_dir: Path | None = None
    mask: Path | None = None
    model: ModelSettings = ModelSettings()
    group_model: str = "random"
    group_covariates: tuple[str, ...] = ()
    group_design: str | None = None  # the desc of a group design's maps (naming.group_design_desc)
    inference: InferenceSettings = InferenceSettings()
    work_dir: Path | None = None
    nprocs: int = 1
    verbose: int = 0
    reports: bool = True
    report_threshold: float = 3.0
    boilerplate_only: bool = False
    command: str = ""

    @property
    def spaces(self) -> tuple[str, ...]:
        """The spaces asked for with ``--space`` (empty: the default choice)."""
        if self.space is None:
            return ()
        return (self.space,) if isinstance(self.space, str) else tuple(self.space)
