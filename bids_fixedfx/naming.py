"""The one place that knows how files are named (SPEC §3): built and parsed with pybids.

Every name the app writes (maps, designs, masks, figures, tables, pages) is built by
:func:`build` from entities and a kind, with pybids' ``build_path`` and the patterns
below; every name it reads back is parsed by :func:`parse`, with pybids'
``parse_file_entities`` and the entities of this app (``contrast``, ``stat``) added.
Paths are relative to OUTPUT_DIR (or to a dataset root): entities never come from the
folders above it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path, PurePosixPath

#: The longest file name (in bytes) that common file systems allow.
NAME_MAX = 255

#: The entities of a BOLD series that name a run, in BIDS order: (pybids name, key).
RUN_ENTITIES = (
    ("subject", "sub"),
    ("session", "ses"),
    ("task", "task"),
    ("acquisition", "acq"),
    ("ceagent", "ce"),
    ("reconstruction", "rec"),
    ("direction", "dir"),
    ("run", "run"),
    ("echo", "echo"),
)
#: BIDS key (``sub``) to pybids entity name (``subject``), and back.
ENTITY_NAMES = {key: name for name, key in RUN_ENTITIES}
ENTITY_KEYS = {name: key for name, key in RUN_ENTITIES}
#: The maps written for each t contrast.
STATS = ("effect", "variance", "t", "z", "p")
#: Maps of corrected inference: thresholded z (``desc-<method>``), proportion of true
#: discoveries (``stat-tdp``), permutation ``-log10 p`` (``stat-logp``).
INFERENCE_STATS = ("F", "tdp", "logp")
#: Maps of a run's model fit, not of a contrast: R² (nilearn's ``r_square``; its
#: ``save_glm_to_bids`` names it ``stat-rsquared``).
FIT_STATS = ("rsquared",)
#: The ``desc`` of group maps made by fixed effects over subjects (random effects have none).
GROUP_FIXED_DESC = "fixedfx"
#: The ``desc`` of corrected-inference maps (after the group model's, camel-cased: ``fixedfxFdr``).
INFERENCE_DESCS = ("fpr", "fdr", "bonferroni", "cluster", "permmaxt", "permsize", "permmass", "permtfce")
#: The ``desc`` of the group mask of the one-sample test (fixed effects over subjects and a
#: group design name theirs as their maps: :func:`group_mask_desc`).
GROUP_MASK_DESC = "group"

_RUN = (
    "sub-{subject}[_ses-{session}]_task-{task}"
    "[_acq-{acquisition}][_ce-{ceagent}][_rec-{reconstruction}][_dir-{direction}]"
    "[_run-{run}][_echo-{echo}]"
)
_RUN_DIR = "sub-{subject}[/ses-{session}]/func/"
_SUBJECT = "sub-{subject}_task-{task}"
_SESSION = "sub-{subject}_ses-{session}_task-{task}"
#: Where a map lies: its hemisphere (GIFTI), space and density (CIFTI), in BIDS order.
_SPACE = "[_hemi-{hemi<L|R>}][_space-{space}][_den-{den}]"
_EXTENSIONS = ".nii.gz|.json|.func.gii|.dscalar.nii"
_STAT = "_contrast-{contrast}_stat-{stat<%s>}[_desc-{desc}]_{suffix<statmap>}{extension<%s>}" % (
    "|".join(STATS + INFERENCE_STATS), _EXTENSIONS)
_FIGURE = "[_space-{space}][_contrast-{contrast}]_desc-{desc}_{suffix}{extension<.png|.svg|.tsv>}"

#: Each kind of file and its pybids path pattern.
PATTERNS = {
    "run_statmap": _RUN_DIR + _RUN + _SPACE + _STAT,
    "run_fit": _RUN_DIR + _RUN + _SPACE + "_stat-{stat<%s>}_{suffix<statmap>}{extension<%s>}"
    % ("|".join(FIT_STATS), _EXTENSIONS),
    "design": _RUN_DIR + _RUN + "_{suffix<design>}{extension<.tsv|.json>}",
    "subject_statmap": "sub-{subject}/func/" + _SUBJECT + _SPACE + _STAT,
    "subject_mask": "sub-{subject}/func/" + _SUBJECT + _SPACE
    + "_desc-{desc}_{suffix<mask>}{extension<%s>}" % _EXTENSIONS,
    "session_statmap": "sub-{subject}/ses-{session}/func/" + _SESSION + _SPACE + _STAT,
    "session_mask": "sub-{subject}/ses-{session}/func/" + _SESSION + _SPACE
    + "_desc-{desc}_{suffix<mask>}{extension<%s>}" % _EXTENSIONS,
    "group_statmap": "group/task-{task}" + _SPACE + _STAT,
    "group_mask": "group/task-{task}" + _SPACE + "[_contrast-{contrast}]_desc-{desc}_{suffix<mask>}"
    "{extension<%s>}" % _EXTENSIONS,
    "run_figure": "sub-{subject}/figures/" + _RUN + _FIGURE,
    "subject_figure": "sub-{subject}/figures/" + _SUBJECT + _FIGURE,
    "group_figure": "group/figures/task-{task}" + _FIGURE,
    "subject_report": "sub-{subject}.html",
    "model": "models/model-{model}_{suffix<smdl>}{extension<.json>}",
    "group_report": "group.html",
}
#: Default entities of each kind.
_DEFAULTS = {
    "run_statmap": {"suffix": "statmap"},
    "run_fit": {"suffix": "statmap", "stat": "rsquared"},
    "subject_statmap": {"suffix": "statmap"},
    "group_statmap": {"suffix": "statmap"},
    "design": {"suffix": "design"},
    "model": {"suffix": "smdl", "extension": ".json"},
    "subject_mask": {"suffix": "mask", "desc": "fixedfx"},
    "session_statmap": {"suffix": "statmap"},
    "session_mask": {"suffix": "mask", "desc": "fixedfx"},
    "group_mask": {"suffix": "mask", "desc": GROUP_MASK_DESC},
}


def build(kind: str, **entities) -> Path:
    """The path, relative to OUTPUT_DIR, of one output file.

    Parameters
    ----------
    kind : str
        One of :data:`PATTERNS`.
    **entities
        pybids entity names (``subject``, ``task``, ``run``, ``space``, ``contrast``,
        ``stat``, ``desc``, ``suffix``, ``extension`` ...); None values are left out.

    Returns
    -------
    path : Path

    Raises
    ------
    ValueError
        The entities do not make a name of that kind.

    Examples
    --------
    >>> build("subject_statmap", subject="01", task="x", contrast="aB", stat="z", extension=".nii.gz")
    PosixPath('sub-01/func/sub-01_task-x_contrast-aB_stat-z_statmap.nii.gz')
    """
    from bids.layout.writing import build_path

    if kind not in PATTERNS:
        raise ValueError(f"Unknown kind of file {kind!r}.")
    values = {**_DEFAULTS.get(kind, {}), **{k: v for k, v in entities.items() if v is not None}}
    path = build_path(values, [PATTERNS[kind]], strict=False)
    if path is None:
        raise ValueError(f"Cannot name a {kind} file from {values}.")
    return Path(path)


def build_run(kind: str, run, **entities) -> Path:
    """:func:`build` for a run: its entities (values as in the input's name) and space
    (``space=None`` leaves the space out)."""
    return build(kind, **{**run_entities(run), "space": run.space, **entities})


def run_entities(run) -> dict:
    """A run's entities under pybids' names, values as in its input file name."""
    return {ENTITY_NAMES[key]: value for key, value in run.entities}


def run_name(entities) -> str:
    """A run's (key, value) entities as a file-name stem, e.g. ``sub-01_task-x_run-01``."""
    return "_".join(f"{key}-{value}" for key, value in entities)


@lru_cache(maxsize=1)
def _config():
    from bids.layout.models import Config

    own = Config(
        name="bids-fixedfx",
        entities=[
            {"name": "contrast", "pattern": r"[_/\\]+contrast-([a-zA-Z0-9]+)"},
            {"name": "stat", "pattern": r"[_/\\]+stat-([a-zA-Z0-9]+)"},
        ],
    )
    return ["bids", "derivatives", own]


@lru_cache(maxsize=2)
def entity_patterns(statmaps: bool = True) -> tuple:
    """pybids' entities of raw and derivatives file names (with ``statmaps``, also the
    ``contrast`` and ``stat`` of this app's maps), loaded once: pybids loads a configuration
    given by name anew at each call (milliseconds a name, minutes for a large group level).
    Matched by :func:`match_entities`."""
    from bids.layout.models import Config

    entities = {}
    for config in _config() if statmaps else ("bids", "derivatives"):
        entities.update((config if isinstance(config, Config) else Config.load(config)).entities)
    return tuple(entities.values())


class _FileName:
    """What pybids' ``Entity.match_file`` reads of the ``BIDSFile`` that
    ``parse_file_entities`` makes of a name: its path. (A ``BIDSFile`` is an SQLAlchemy
    record: making one takes longer than matching all the entities, thousands of times in
    a large group level.)"""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path


def match_entities(path: str, statmaps: bool = True) -> dict:
    """``bids.layout.parse_file_entities(path, entities=entity_patterns(statmaps))``: pybids'
    entities matched in ``path`` (values as pybids types them), without making a ``BIDSFile``."""
    name = _FileName(str(path))
    found = {}
    for entity in entity_patterns(statmaps):
        value = entity.match_file(name)
        if value is not None:
            found[entity.name] = value
    return found


def parse(path) -> dict:
    """The entities of a file name relative to OUTPUT_DIR or a dataset root (pybids names).

    Parameters
    ----------
    path : str or Path
        Relative path; an absolute path is refused, since folders above the dataset
        must not lend it entities.

    Returns
    -------
    entities : dict
        ``subject``, ``task``, ``space``, ``contrast``, ``stat``, ``desc``, ``suffix``,
        ``extension`` ... as strings (``run-01`` stays ``"01"``).
    """
    path = PurePosixPath(Path(path).as_posix())
    if path.is_absolute():
        raise ValueError(f"{path} is absolute; parse names relative to their dataset.")
    return dict(_parsed(str(path)))


@lru_cache(maxsize=1 << 14)
def _parsed(path: str) -> dict:
    """:func:`parse` of a relative POSIX path, kept for the next call with the same name (a
    group level reads the names of thousands of maps, several times); callers get a copy."""
    entities = match_entities("/" + path)
    entities = {k: str(v) for k, v in entities.items() if k != "datatype"}
    # pybids reads run-01 as the integer 1: keep the value as written
    name = PurePosixPath(path).name
    for key in ("run", "echo"):
        if ENTITY_NAMES.get(key) in entities:
            entities[ENTITY_NAMES[key]] = _written_value(name, key)
    return entities


def _written_value(name: str, key: str) -> str:
    for part in name.split(".")[0].split("_"):
        if part.startswith(key + "-"):
            return part[len(key) + 1:]
    return ""


def statmap_desc(group_model: str | None = None, method: str | None = None, design: str | None = None,
                 parts=()) -> str | None:
    """The ``desc`` of a statmap: what group model made it (fixed effects over subjects get
    ``fixedfx``, a group design its :func:`group_design_desc`, the one-sample test nothing),
    which node and group it belongs to (``parts``, when a level has several nodes or a node
    groups by more than the contrast) and what corrected inference it shows (``fdr``,
    ``permmaxt`` ...), camel-cased. Maps of different group models, nodes and groups so have
    different names (SPEC §3).

    Examples
    --------
    >>> statmap_desc("fixed", "fdr"), statmap_desc("random", "fdr"), statmap_desc()
    ('fixedfxFdr', 'fdr', None)
    >>> statmap_desc("random", design="groupCovariates"), statmap_desc("random", "fdr", design="age")
    ('groupCovariates', 'ageFdr')
    >>> statmap_desc("random", parts=("oneSample", "groupPatient"))
    'oneSampleGroupPatient'
    """
    own = [GROUP_FIXED_DESC] if group_model == "fixed" else [design] if design else []
    return _join([*own, *parts, *([method] if method else [])])


def group_mask_desc(group_model: str, design: str | None = None, parts=()) -> str:
    """The ``desc`` of a group test's mask: a group design's, ``fixedfx`` for fixed effects
    over subjects, ``group`` for the one-sample test, so that the masks of different group
    models (which may be run on different subjects) are named apart, as their maps are."""
    return mask_desc(design or (GROUP_FIXED_DESC if group_model == "fixed" else GROUP_MASK_DESC), parts)


def mask_desc(base: str, parts=()) -> str:
    """The ``desc`` of a mask: ``fixedfx`` (subject, session), ``group`` or a group design's,
    then the node's and group's ``parts`` when there are any (``fixedfxOls``)."""
    return _join([base, *parts])


def _join(parts) -> str | None:
    parts = [p for p in parts if p]
    if not parts:
        return None
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def group_model_of(entities: dict) -> str | None:
    """Which group model made a group map, from its parsed entities: the ``desc`` that
    :func:`statmap_desc` gives its maps without a corrected-inference part (None for the
    one-sample test, ``fixedfx``, or a group design's label).

    Examples
    --------
    >>> group_model_of({}), group_model_of({"desc": "fdr"}), group_model_of({"desc": "fixedfxFdr"})
    (None, None, 'fixedfx')
    >>> group_model_of({"desc": "groupCovariates"}), group_model_of({"desc": "ageCluster"})
    ('groupCovariates', 'age')
    """
    desc = entities.get("desc")
    if desc is None or desc in INFERENCE_DESCS:
        return None
    for method in INFERENCE_DESCS:
        suffix = method[:1].upper() + method[1:]
        if desc.endswith(suffix) and len(desc) > len(suffix):
            return desc[: -len(suffix)]
    return desc


def group_design_desc(node_name: str) -> str:
    """The ``desc`` of the maps of a group design (a model's dataset node, ``--group-covariates``):
    the node's label, with ``Design`` added where it would read as another group model's
    (``group``, ``fixedfx...``, a corrected-inference ``desc``).

    Examples
    --------
    >>> group_design_desc("groupCovariates"), group_design_desc("patients_vs_controls"), group_design_desc("group")
    ('groupCovariates', 'patientsVsControls', 'groupDesign')
    >>> group_design_desc("fixed-fx"), group_design_desc("FIXEDFX")
    ('fixedFxDesign', 'FIXEDFXDesign')
    """
    label = label_of(node_name)
    low = label.lower()  # FIXEDFX and fixed-fx read as fixedfx too
    if low == GROUP_MASK_DESC.lower() or low.startswith(GROUP_FIXED_DESC.lower()) or (
            group_model_of({"desc": label}) != label):
        label += "Design"
    return label


def label_of(name: str) -> str:
    """A name as a BIDS label: letters and digits, camel-cased (``faces_vs_houses`` ->
    ``facesVsHouses``); accented letters keep their base letter.

    Raises
    ------
    ValueError
        The name has no letter or digit.
    """
    import re
    import unicodedata

    ascii_name = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    parts = [p for p in re.split(r"[^0-9a-zA-Z]+", ascii_name) if p]
    if not parts:
        raise ValueError(f"{name!r} has no letters or digits to make a BIDS label of.")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def hemisphere_pair(path) -> tuple[Path, Path]:
    """A GIFTI file of the left hemisphere (``..._hemi-L_...``) and its right twin.

    Raises
    ------
    ValueError
        The name has no ``hemi-L`` entity.
    """
    path = Path(path)
    if "hemi-L" not in path.name.split("_"):
        raise ValueError(f"{path.name} is not the left hemisphere's file (no hemi-L entity).")
    return path, other_hemisphere(path)


def other_hemisphere(path) -> Path:
    """The other hemisphere's file of a GIFTI file (``hemi-R`` for ``hemi-L``, and back)."""
    path = Path(path)
    swapped = {"hemi-L": "hemi-R", "hemi-R": "hemi-L"}
    return path.with_name("_".join(swapped.get(part, part) for part in path.name.split("_")))


def set_key(**entities) -> str:
    """A name for one set of outputs (``sub-01_task-x_space-MNI``), for staging folders.

    Parameters
    ----------
    **entities
        pybids entity names and values; None values are written as ``none``.
    """
    keys = {**ENTITY_KEYS, "space": "space", "contrast": "contrast"}
    return "_".join(f"{keys.get(k, k)}-{'none' if v is None else v}" for k, v in entities.items())


def relative(path, root) -> Path:
    """``path`` relative to ``root`` (both resolved), for parsing."""
    return Path(path).resolve().relative_to(Path(root).resolve())


def temporary_length(name: str) -> int:
    """The length in bytes of the temporary name a file ``name`` is written under
    (``.<name>.<8 random characters><extensions>``), which must fit :data:`NAME_MAX`.

    Examples
    --------
    >>> temporary_length("sub-01_design.tsv")
    31
    """
    suffixes = "".join(PurePosixPath(name).suffixes)
    return len(f".{name}.{'x' * 8}{suffixes}".encode())


def is_temporary(name: str) -> bool:
    """Whether a file name is one of our temporary names (``.<name>.<random><ext>``)."""
    return name.startswith(".") and name.count(".") >= 2
