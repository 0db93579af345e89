"""What the methods text states, as records, and how the participant level fills them.

The participant level knows what it did from its plan (:class:`~bids_fixedfx.plan.Plan`:
runs, designs, contrasts, runs left out) and its settings; the group level reads the
same facts back from the sidecars (:mod:`.readback`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import __version__
from ..sidecars import LIBRARIES, FirstLevelModelInfo, read_json



@dataclass(frozen=True)
class RunFacts:
    """What the methods text needs to know of one fitted run."""

    subject: str
    session: str | None
    task: str
    tr: float
    n_volumes: int
    conditions: tuple[str, ...]
    confounds: tuple[str, ...]
    precomputed: bool
    preprocessed: bool
    pipeline: str | None  # e.g. "fMRIPrep 23.2.0"
    mask: str | None  # file name of the mask; None when nilearn computed it
    censored: int = 0
    imputed: bool = False
    dummy_scans: int = 0  # volumes at the start left out of the fit
    dummy_source: str | None = None  # "confounds" (fMRIPrep's columns) or "option" (--dummy-scans)
    surface: bool = False  # a GIFTI pair or CIFTI series, masked by the surface rule
    cifti: bool = False  # a CIFTI series (grayordinates)
    start_time: float = 0.0  # StartTime: the time of each volume's reference slice (nilearn's slice_time_ref * tr)
    modulated: bool = False  # each event's regressor scaled by the events' modulation column


@dataclass(frozen=True)
class ModelFacts:
    """The first-level settings shared by a set of runs (``high_pass`` and ``drift_order``
    are stated only with the drift model they belong to)."""

    hrf_model: str
    drift_model: str | None
    high_pass: float | None
    drift_order: int | None
    noise_model: str
    smoothing_fwhm: float | None
    precision_weighted: bool
    confound_strategy: tuple[str, ...] = ()
    mask_given: bool = False
    convolution: tuple[str, ...] = ()  # the HRFs of the model's Convolve transformations


@dataclass(frozen=True)
class ContrastFacts:
    """A contrast: its name, its numeric weights, and whether it is a condition against
    the implicit baseline (weight 1 on the condition's column, 0 elsewhere); an F contrast's
    ``rows`` hold the weights of each of its rows (``weights`` then holds them all); ``passed``:
    the model's Test "pass" (its effect and variance only, untested at this level)."""

    name: str
    weights: tuple[tuple[str, float], ...]
    baseline: bool
    rows: tuple[tuple[tuple[str, float], ...], ...] = ()
    passed: bool = False

    @property
    def is_f(self) -> bool:
        return bool(self.rows)


@dataclass(frozen=True)
class LeftOutRun:
    """A run left out of its subject's maps, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class NodeFacts:
    """A session or subject node of a model whose graph goes beyond one subject node fed by
    the runs: what it combined, how, what its edge let through and how its maps are named."""

    name: str
    level: str  # session or subject
    source_level: str  # run or session
    meta: bool  # fixed effects (else a one-sample t-test)
    filter: str | None = None  # the edge's Filter, as JSON
    desc: str | None = None


@dataclass(frozen=True)
class FirstLevel:
    """Runs fitted with one set of settings, their contrasts, the runs left out, and the
    participant-level nodes of a model graph beyond run -> subject."""

    runs: tuple[RunFacts, ...]
    model: ModelFacts
    space: str | None
    contrasts: tuple[ContrastFacts, ...]
    left_out: tuple[LeftOutRun, ...] = ()
    by_space: bool = False  # one of several spaces modelled in one call
    nodes: tuple[NodeFacts, ...] = ()


@dataclass(frozen=True)
class DatasetNodeFacts:
    """A dataset node of a model graph beyond one node over the subject maps grouped by contrast."""

    name: str
    inputs: str  # "subject" or "session" maps
    groups: tuple[str, ...]  # GroupBy variables (but the task)
    model: str  # how each test was computed
    n_tests: int


@dataclass(frozen=True)
class GroupLevel:
    """The group-level tests: the model and, per task and contrast, the subjects tested; the
    dataset nodes, when a model's graph goes beyond one node over the subject maps."""

    model: str  # "random" or "fixed"
    tests: tuple[tuple[str, str, tuple[str, ...]], ...]
    design: str | None = None  # the dataset node whose design the subjects' maps were entered into
    nodes: tuple[DatasetNodeFacts, ...] = ()
    passed: tuple[str, ...] = ()  # the dataset nodes' contrasts of Test "pass": effect and variance only
    columns: tuple[str, ...] = ()  # the group design's columns (``design``)
    contrasts: tuple[ContrastFacts, ...] = ()  # the group design's contrasts
    precision_weighted: bool = False  # fixed effects weighted by inverse variance (a dataset meta node's)
    transformed: tuple[tuple[str, str], ...] = ()  # (column, "demeaned"), by the dataset node's transformations


@dataclass(frozen=True)
class Methods:
    """Everything the methods text states.

    Attributes
    ----------
    commands : dict
        Level (``participant``, ``group``) -> the command lines that ran it.
    figure_threshold : float or None
        The ``|z|`` threshold of the reports' figures (None: no report).
    inference : InferenceSettings or None
        The corrected inference written beside the maps of ``inference_level``
        (``subject`` or ``group``), if any.
    subject_inference : InferenceSettings or None
        At the group level, the corrected inference that the participant level wrote beside
        the subject maps (read back from their sidecars), if any.
    undescribed : tuple of str
        What OUTPUT_DIR holds that other jobs made and the text does not describe: at the
        participant level, subjects (``sub-<s>``: one job per subject on a cluster); at the
        group level, the tasks of other group maps (``task-<t>``).
    """

    first_levels: tuple[FirstLevel, ...]
    group: GroupLevel | None
    fitted: bool
    commands: dict
    versions: dict
    figure_threshold: float | None = None
    inference: object = None
    inference_level: str = "subject"
    subject_inference: object = None
    undescribed: tuple[str, ...] = ()


def software_versions() -> dict:
    """The versions of bids-fixedfx and of the libraries whose numbers it reports."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"bids-fixedfx": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def format_weights(weights) -> str:
    """A contrast's weights as an expression over design columns, e.g. ``audio - visual``;
    an F contrast's rows (a list of such mappings) as ``F(audio; visual)``."""
    if isinstance(weights, (list, tuple)):
        return "F(" + "; ".join(format_weights(row) for row in weights) + ")"
    terms = []
    for column, weight in weights.items():
        weight = float(weight)
        if weight == 0:
            continue
        size = abs(weight)
        term = column if size == 1 else f"{size:g}*{column}"
        terms.append(("-" if weight < 0 else "+", term))
    if not terms:
        return "0"
    text = ("-" if terms[0][0] == "-" else "") + terms[0][1]
    return text + "".join(f" {sign} {term}" for sign, term in terms[1:])


def contrast_facts(name: str, weights: dict, conditions, test: str = "t") -> ContrastFacts:
    """A contrast's facts from its weights (non-zero ones), the design's conditions and its
    test (``t``, ``F`` or ``pass``)."""
    if isinstance(weights, (list, tuple)):  # an F contrast: the weights of its rows
        rows = tuple(tuple((str(c), float(w)) for c, w in row.items() if float(w) != 0) for row in weights)
        return ContrastFacts(name, tuple(pair for row in rows for pair in row), False, rows)
    kept = tuple((str(c), float(w)) for c, w in weights.items() if float(w) != 0)
    baseline = len(kept) == 1 and kept[0][1] == 1.0 and kept[0][0] in tuple(conditions)
    return ContrastFacts(name, kept, baseline, passed=test == "pass")


def is_confound_strategy(names) -> bool:
    """Whether ``--confounds`` named nilearn ``load_confounds`` strategies (not columns)."""
    from ..design import is_confound_strategy as rule

    return rule(names)


def pipeline_of(bold, descriptions: dict) -> str | None:
    """Name and version of the pipeline that made a derivative file (its dataset's ``GeneratedBy``).

    Parameters
    ----------
    bold : Path
    descriptions : dict
        Folder -> its ``dataset_description.json`` (or None), filled as folders are read
        (one write of the methods text reads each once).

    Raises
    ------
    InputFileError
        A ``dataset_description.json`` that cannot be read.
    """
    from pathlib import Path

    for folder in Path(bold).parents:
        if folder not in descriptions:
            path = folder / "dataset_description.json"
            descriptions[folder] = read_json(path) if path.is_file() else None
        description = descriptions[folder]
        if description is None:
            continue
        generated = description.get("GeneratedBy") or []
        if generated and isinstance(generated[0], dict) and generated[0].get("Name"):
            return " ".join(str(v) for v in (generated[0]["Name"], generated[0].get("Version")) if v)
        return None
    return None


def methods_from_plan(settings, plan, notes=()) -> Methods:
    """The methods of a participant-level run, from its settings and its plan (one
    first-level section per space when several spaces were modelled).

    Parameters
    ----------
    settings : Settings
    plan : plan.Plan
    notes : sequence of Note
        Every note of the run (those of kind ``run-left-out`` are stated).
    """
    spaces = plan.spaces
    first_levels = tuple(
        _first_level(settings, [s for s in plan.subjects if s.space == space], space, len(spaces) > 1, notes,
                     plan.steps)
        for space in spaces
    )
    return Methods(
        first_levels, None, not settings.boilerplate_only, {"participant": (settings.command,)},
        software_versions(), figure_threshold(settings), corrected_inference(settings), "subject",
    )


def _first_level(settings, subjects, space, by_space, notes, steps=()) -> FirstLevel:
    """The facts of one space's runs."""
    from ..surface import kind_of, run_model

    run_plans = [run_plan for subject in subjects for run_plan in subject.runs]
    model = run_model(run_plans[0].run, settings.model) if run_plans else settings.model
    info = FirstLevelModelInfo.from_settings(model)
    facts = ModelFacts(
        hrf_model=info.hrf_model,
        drift_model=None if info.drift_model == "none" else info.drift_model,
        high_pass=info.high_pass,
        drift_order=model.drift_order,
        noise_model=info.noise_model,
        smoothing_fwhm=info.smoothing_fwhm or None,
        precision_weighted=model.precision_weighted,
        confound_strategy=tuple(model.confounds) if is_confound_strategy(model.confounds) else (),
        mask_given=settings.mask is not None,
        convolution=model.convolution,
    )
    descriptions, runs, contrasts = {}, [], {}
    for run_plan in run_plans:
        run, design = run_plan.run, run_plan.design
        runs.append(RunFacts(
            subject=run.subject, session=run.session, task=run.task, tr=run.tr, start_time=run.start_time or 0.0,
            n_volumes=run.n_volumes, conditions=tuple(design.conditions),
            confounds=tuple(design.confounds), precomputed=design.precomputed,
            preprocessed=run.preprocessed,
            pipeline=pipeline_of(run.bold, descriptions) if run.preprocessed else None,
            mask=run.mask.name if run.mask else None,
            censored=design.n_censored,
            imputed=any(note.kind == "imputed" for note in design.notes),
            dummy_scans=len(design.dummy_scans.volumes) if design.dummy_scans else 0,
            dummy_source=design.dummy_scans.source if design.dummy_scans else None,
            surface=run.is_surface,
            cifti=run.is_surface and kind_of(run.bold) == "cifti",
            modulated=design.modulation != "none",
        ))
        for contrast in run_plan.contrasts:
            contrasts.setdefault(contrast.name, contrast_facts(contrast.name, contrast.weights, design.conditions,
                                                               contrast.test))
    left_out = {left.run.name: LeftOutRun(left.run.name, left.reason)
                for subject in subjects for left in subject.left_out}
    names = {run_plan.run.name for run_plan in run_plans}
    for note in notes:
        mine = not by_space or note.run in names
        if note.kind == "run-left-out" and note.run and note.run not in left_out and mine:
            left_out[note.run] = LeftOutRun(note.run, note.text)
    return FirstLevel(tuple(runs), facts, space, tuple(contrasts.values()), tuple(left_out.values()), by_space,
                      node_facts(steps))


def node_facts(steps) -> tuple[NodeFacts, ...]:
    """The participant-level nodes, when the graph goes beyond one subject node fed by the runs
    (a session node, several subject nodes, a Filter); otherwise none (the text as before)."""
    from ..plan.graph import filter_text
    from .text import code  # names from the model: a code span, never Markdown or HTML

    if len(steps) < 2 and not any(step.filter or step.source_level != "run" for step in steps):
        return ()
    return tuple(NodeFacts(step.node.name, step.level, step.source_level, step.node.model_type == "meta",
                           code(filter_text(step.filter)) if step.filter else None, step.desc) for step in steps)


def dataset_node_facts(tests) -> tuple[DatasetNodeFacts, ...]:
    """The dataset nodes of the group plan's tests, when any test is named apart from the
    one-node names (several dataset nodes, GroupBy beyond the contrast, session maps)."""
    from .text import code  # names from the data: a code span, never Markdown or HTML

    if all(test.named_plainly for test in tests):
        return ()
    by_node = {}
    for test in tests:
        by_node.setdefault(test.node.name, []).append(test)
    facts = []
    for name, group in by_node.items():
        first = group[0]
        columns = list(first.design.columns) if first.design is not None else ["intercept"]
        if first.group_model == "fixed":
            weighted = ", weighted by inverse variance" if first.precision_weighted else ""
            model = f"fixed effects (nilearn's `compute_fixed_effects`{weighted})"
        elif columns == ["intercept"]:
            model = "a one-sample t-test (nilearn's `SecondLevelModel`)"
        else:
            shown = ", ".join(code(c) for c in columns[:6]) + (", ..." if len(columns) > 6 else "")
            model = f"a general linear model (nilearn's `SecondLevelModel`) with the columns {shown}"
        groups = tuple(code(v) for v in first.node.group_by if v != "task")
        inputs = "session" if any(i.session for i in first.inputs) else "subject"
        facts.append(DatasetNodeFacts(name, inputs, groups, model, len(group)))
    return tuple(facts)


def figure_threshold(settings) -> float | None:
    """The threshold of the reports' figures, when reports are written."""
    return settings.report_threshold if settings.reports and not settings.boilerplate_only else None


def corrected_inference(settings):
    """The corrected inference the level writes (its :class:`~bids_fixedfx.inference.InferenceSettings`),
    or None."""
    return settings.inference if settings.inference.any else None
