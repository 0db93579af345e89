"""Planning: from the discovered runs to checked run plans, before any file is written.

Every header, mask, table and design the selection needs is read and checked here
(SPEC §4), so that bad input stops the app before OUTPUT_DIR is touched. A run whose
model leaves fewer than :data:`MIN_DOF` residual degrees of freedom is left out of its
subject's maps, with a note that the subject's sidecars record.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from . import design as designs
from . import images
from .errors import NoDataError, UsageError
from .notes import Note

logger = logging.getLogger("bids_fixedfx")

#: The fewest residual degrees of freedom a run may have to be fitted and combined.
MIN_DOF = 1


@dataclass(frozen=True, eq=False)
class RunPlan:
    """A run ready to fit: its files, its design, its contrasts and its residual dofs."""

    run: object  # discover.Run
    design: designs.Design
    contrasts: tuple[designs.ContrastWeights, ...]
    dof: int


@dataclass(frozen=True, eq=False)
class LeftOut:
    """A run left out of its subject's maps, and why."""

    run: object  # discover.Run
    reason: str


@dataclass(frozen=True, eq=False)
class SubjectPlan:
    """The runs of one subject and task (in one space) that are combined into its maps."""

    subject: str
    task: str
    space: str | None
    runs: tuple[RunPlan, ...]
    left_out: tuple[LeftOut, ...] = ()

    @property
    def key(self) -> tuple:
        return (self.subject, self.task, self.space)


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything the participant level will do, checked."""

    subjects: tuple[SubjectPlan, ...]
    space: str | None
    notes: tuple[Note, ...]

    @property
    def runs(self) -> tuple[RunPlan, ...]:
        return tuple(plan for subject in self.subjects for plan in subject.runs)


def residual_dof(design: designs.Design, n_volumes: int) -> int:
    """Residual degrees of freedom of a run's fit, as nilearn counts them.

    Parameters
    ----------
    design : Design
    n_volumes : int

    Returns
    -------
    dof : int
        Volumes kept for the fit minus the rank of the design over them.
    """
    matrix = design.matrix.to_numpy()
    if design.sample_mask is not None:
        matrix = matrix[design.sample_mask]
        n_volumes = len(design.sample_mask)
    return int(n_volumes - np.linalg.matrix_rank(matrix))


def plan_runs(selection, settings, model=None) -> Plan:
    """Build and check every run's design and contrasts.

    Parameters
    ----------
    selection : discover.Selection
    settings : Settings
    model : bids_fixedfx.model.Model, optional
        A BIDS Stats Model (``-m``): its run node makes the designs and contrasts;
        without one, the options do.

    Returns
    -------
    plan : Plan

    Raises
    ------
    FixedFxError
        Anything wrong with the input (the message names the file or option).
    """
    notes = [Note("selection", str(w)) if not isinstance(w, Note) else w for w in selection.warnings]
    runs = selection.runs
    if settings.mask is not None:
        images.read_mask(settings.mask, "--mask")
        runs = tuple(replace(run, mask=settings.mask) for run in runs)
    node = run_node(model) if model is not None else None
    built = {}
    for run in runs:
        logger.debug(
            "%s: BOLD %s, mask %s, events %s, confounds %s, design %s, TR %g s, %d volumes",
            run.name, run.bold, run.mask, run.events, run.confounds, run.design, run.tr, run.n_volumes,
        )
        _check_images(run, given=settings.mask is not None)
        built[run] = designs.model_design(run, node) if node else designs.build_design(run, settings.model)
        notes += built[run].warnings
    if node is None:
        notes += designs.check_contrasts(settings.contrasts, built)
    plans, left_out = [], defaultdict(list)
    for run in runs:
        if node is None:
            contrasts = designs.contrast_weights(settings.contrasts, built[run])
        else:
            contrasts, skipped = designs.model_contrasts(run, node, built[run])
            notes += skipped
        if not contrasts:
            notes.append(Note.for_run(run, "run-left-out", f"{run.name} has no contrast to compute and was left out."))
            continue
        _check_labels(run, contrasts)
        dof = residual_dof(built[run], run.n_volumes)
        if dof < MIN_DOF:
            kept = run.n_volumes if built[run].sample_mask is None else len(built[run].sample_mask)
            reason = (
                f"its design has {built[run].matrix.shape[1]} columns (rank {kept - dof}) "
                f"for {kept} volumes, leaving {dof} residual degrees of freedom"
            )
            notes.append(Note.for_run(
                run, "run-left-out",
                f"{run.name} was left out: {reason} (at least {MIN_DOF} needed); "
                "check the BOLD series' length and the number of regressors",
            ))
            left_out[(run.subject, run.task)].append(LeftOut(run, reason))
            continue
        plans.append(RunPlan(run, built[run], contrasts, dof))
    if not plans:
        raise NoDataError(
            "No run can be fitted: "
            + ("every run has too few degrees of freedom" if left_out else "the designs have no condition columns")
            + " (see the warnings above)."
        )
    notes += _missing_contrasts(plans)
    subjects = _by_subject(plans, left_out, selection.space)
    for subject in subjects:
        _check_subject_grid(subject)
    return Plan(tuple(subjects), selection.space, tuple(notes))


# ----------------------------------------------------------------------------
# models

#: The levels of BIDS Stats Model nodes this version runs, and their model types.
SUPPORTED = {"run": ("glm",), "subject": ("meta", "glm"), "dataset": ("glm", "meta")}


def read_model(settings):
    """The BIDS Stats Model of ``-m``, checked against what the app runs; None without ``-m``.

    Raises
    ------
    ModelError
        The file is not a model, or asks for what this version does not run (named).
    """
    if settings.model_file is None:
        return None
    from .model import load_model
    from .model.bsm import ModelError

    model = load_model(settings.model_file)
    for node in model.nodes:
        if node.level not in SUPPORTED or node.model_type not in SUPPORTED[node.level]:
            raise ModelError(
                f"Node {node.name!r} of {settings.model_file} is a {node.level}-level {node.model_type} node; "
                "this version runs run-level glm, subject-level meta or glm, and dataset-level glm or meta "
                "nodes (session nodes are not run yet)."
            )
        if len(model.nodes_at(node.level)) > 1:
            raise ModelError(
                f"{settings.model_file} has several {node.level}-level nodes; this version runs one node per level."
            )
    if not model.nodes_at("run"):
        raise ModelError(f"{settings.model_file} has no run-level node.")
    return model


def run_node(model):
    """The model's run-level node."""
    return model.nodes_at("run")[0]


def model_settings(model, settings):
    """The first-level settings a model sets (HRF, drift, noise model, precision
    weighting), with the options a model does not state (smoothing) from the command line.

    Parameters
    ----------
    model : bids_fixedfx.model.Model
    settings : Settings

    Returns
    -------
    model_settings : ModelSettings
    """
    from .model.design import drift_settings, software

    node = run_node(model)
    drift_model, high_pass, drift_order = drift_settings(node)
    subject = model.nodes_at("subject")
    return replace(
        settings.model,
        hrf_model=node.hrf.model if node.hrf is not None else "none",
        drift_model=drift_model,
        high_pass=high_pass if high_pass is not None else settings.model.high_pass,
        drift_order=drift_order,
        noise_model=str(software(node).get("noise_model", "ar1")),
        # the X entries that are not convolved: what the model takes from the confounds file
        confounds=tuple(
            str(x) for x in node.x
            if x not in (1, "1") and (node.hrf is None or x not in node.hrf.variables)
        ) or ("*",),
        confounds_given=False,
        precision_weighted=bool(software(subject[0]).get("precision_weighted", False)) if subject else False,
    )


def default_model(plan, settings):
    """The model the options define (written to ``OUTPUT_DIR/models/``), or None with a
    reason when the options go beyond what a model file states (confound strategies,
    precomputed designs).

    Returns
    -------
    model : bids_fixedfx.model.Model or None
    reason : str or None
    """
    from .design import CONFOUND_STRATEGIES
    from .model.defaults import default_model as make

    model = settings.model
    if settings.design_dir is not None:
        return None, "--design-dir designs are not a model file"
    if any(name in CONFOUND_STRATEGIES for name in model.confounds):
        return None, "nilearn confound strategies are not model-file variables"
    conditions = sorted({c for run_plan in plan.runs for c in run_plan.design.conditions})
    contrasts = None
    if settings.contrasts:
        first = plan.runs[0]
        contrasts = {
            c.name: c.weights for c in first.contrasts if c.test == "t"
        }
    hrf, fir_delays = model.hrf_model, None
    made = make(
        conditions, confounds=model.confounds, hrf_model=hrf, fir_delays=fir_delays,
        drift_model=model.drift_model or "none", high_pass=model.high_pass, drift_order=model.drift_order,
        noise_model=model.noise_model, contrasts=contrasts, group_model=settings.group_model,
        precision_weighted=model.precision_weighted,
    )
    return made, None


def _by_subject(plans, left_out, space):
    grouped = defaultdict(list)
    for plan in plans:
        grouped[(plan.run.subject, plan.run.task)].append(plan)
    return [
        SubjectPlan(subject, task, space, tuple(runs), tuple(left_out.get((subject, task), ())))
        for (subject, task), runs in grouped.items()
    ]


def _check_images(run, given):
    """Read the BOLD header (and check the file holds its data) and the whole mask."""
    bold = images.check_image(run.bold, "BOLD series")
    if len(bold.shape) != 4:
        raise NoDataError(f"BOLD series {run.bold} is not 4D (shape {bold.shape}).")
    if run.mask is None:
        return
    option = "--mask " if given else ""
    mask = images.read_mask(run.mask, "--mask" if given else "Mask")
    if mask.shape[:3] != bold.shape[:3] or not np.allclose(mask.affine, bold.affine, atol=1e-3):
        raise UsageError(
            f"{option}{run.mask} is on another grid than {run.bold.name} "
            f"(shape {mask.shape[:3]} vs {bold.shape[:3]}); give a mask in the BOLD's space."
        )


def _check_labels(run, contrasts):
    """Two contrasts of a run must not share a file label (``go_left`` and ``go-left``)."""
    seen = {}
    for contrast in contrasts:
        if contrast.label in seen:
            raise UsageError(
                f"Contrasts {seen[contrast.label]!r} and {contrast.name!r} of {run.name} both make "
                f"the file label {contrast.label}; name them apart with --contrast NAME=SPEC."
            )
        seen[contrast.label] = contrast.name


def _missing_contrasts(plans):
    """Notes for runs of a subject that lack a contrast its other runs have."""
    notes = []
    by_subject = defaultdict(list)
    for plan in plans:
        by_subject[(plan.run.subject, plan.run.task)].append(plan)
    for group in by_subject.values():
        labels = {c.label: c.name for plan in group for c in plan.contrasts}
        for plan in group:
            missing = sorted(set(labels) - {c.label for c in plan.contrasts})
            if missing:
                notes.append(Note.for_run(
                    plan.run, "contrast-skipped",
                    f"{plan.run.name} has no {', '.join(labels[m] for m in missing)} "
                    "(no such events or column), so its subject's maps of that contrast "
                    "combine the other runs only",
                ))
    return notes


def _check_subject_grid(subject):
    """A subject's runs of a task are combined voxel by voxel: one grid for all."""
    from .combine import same_grid

    first = subject.runs[0].run
    for plan in subject.runs[1:]:
        if not same_grid([first.bold, plan.run.bold], atol=1e-3):
            raise NoDataError(
                f"The runs of sub-{subject.subject} task-{subject.task} are on different voxel grids "
                f"({first.bold.name} and {plan.run.bold.name}); choose a common --space "
                "(e.g. MNI152NLin2009cAsym)."
            )


# ----------------------------------------------------------------------------
# group level

#: The fewest subjects a group test needs.
MIN_SUBJECTS = 2


@dataclass(frozen=True, eq=False)
class SubjectMapFiles:
    """One subject's maps of one contrast, as the participant level wrote them."""

    subject: str
    task: str
    space: str | None
    contrast: str  # the file label
    effect: object  # Path
    variance: object
    sidecar: object
    mask: object
    info: object  # sidecars.StatmapSidecar


@dataclass(frozen=True, eq=False)
class GroupTest:
    """One group test: a task, space and contrast, over the subjects that have it.

    With a model's dataset node, ``design`` is its design matrix over ``inputs`` (subjects
    with missing values already left out) and ``contrasts`` its contrasts; without one,
    both are None (a one-sample test of the intercept, or fixed effects).
    """

    task: str
    space: str | None
    contrast: str
    inputs: tuple[SubjectMapFiles, ...]
    design: object = None  # pandas.DataFrame
    contrasts: tuple = ()

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(item.subject for item in self.inputs)

    @property
    def name(self) -> str:
        return self.inputs[0].info.contrast.name


@dataclass(frozen=True, eq=False)
class GroupPlan:
    """The group level's tests, and the contrasts left untested (fewer than two subjects)."""

    tests: tuple[GroupTest, ...]
    untested: tuple[GroupTest, ...]
    notes: tuple[Note, ...]

    @property
    def by_key(self) -> dict:
        """``(task, space, contrast) -> inputs`` of every test and untested contrast."""
        return {(t.task, t.space, t.contrast): list(t.inputs) for t in (*self.tests, *self.untested)}


def find_subject_maps(output_dir) -> list[SubjectMapFiles]:
    """Every subject-level effect map in OUTPUT_DIR, with its variance, sidecar and mask.

    Parameters
    ----------
    output_dir : Path

    Returns
    -------
    maps : list of SubjectMapFiles
        Their sidecars are not read yet (``info`` is None).
    """
    from . import naming

    found = []
    for effect in sorted(output_dir.glob("sub-*/func/sub-*_task-*_stat-effect_statmap.nii.gz")):
        entities = naming.parse(effect.relative_to(output_dir))
        if set(entities) - {"subject", "task", "space", "contrast", "stat", "suffix", "extension"}:
            continue  # a run-level map
        common = {"subject": entities["subject"], "task": entities["task"], "space": entities.get("space")}
        label = entities["contrast"]

        def path(kind, **more):
            return output_dir / naming.build(kind, **common, **more)

        found.append(SubjectMapFiles(
            **common, contrast=label, effect=effect,
            variance=path("subject_statmap", contrast=label, stat="variance", extension=".nii.gz"),
            sidecar=path("subject_statmap", contrast=label, stat="effect", extension=".json"),
            mask=path("subject_mask", extension=".nii.gz"),
            info=None,
        ))
    return found


def plan_group(settings, model=None) -> GroupPlan:
    """Find the subject maps to test and check them, before any group file is written.

    Parameters
    ----------
    settings : Settings
    model : bids_fixedfx.model.Model, optional
        Its dataset node designs each test from ``participants.tsv``.

    Returns
    -------
    plan : GroupPlan

    Raises
    ------
    NoDataError
        No subject maps, fewer than two subjects, missing files, masks on other grids.
    UsageError
        Subjects' maps made with different models.
    """
    from .combine import same_grid
    from .sidecars import StatmapSidecar

    output_dir = settings.output_dir
    found = find_subject_maps(output_dir) if output_dir.is_dir() else []
    if not found:
        raise NoDataError(f"OUTPUT_DIR {output_dir} has no subject-level maps; run the participant level first.")
    wanted_space = None if (settings.space or "").lower() == "none" else settings.space
    found = [
        item for item in found
        if (not settings.participant_label or item.subject in settings.participant_label)
        and (not settings.task or item.task in settings.task)
        and (settings.space is None or item.space == wanted_space)
    ]
    subjects = sorted({item.subject for item in found})
    if len(subjects) < MIN_SUBJECTS:
        raise NoDataError(
            f"The group level needs at least {MIN_SUBJECTS} subjects with maps in {output_dir}; "
            f"found {len(subjects)}{' (sub-' + subjects[0] + ')' if subjects else ''}."
        )
    grouped = defaultdict(list)
    for item in found:
        for path in (item.variance, item.sidecar, item.mask):
            if not path.is_file():
                raise NoDataError(f"{path} is missing; rerun the participant level for sub-{item.subject}.")
        item = replace(item, info=StatmapSidecar.read(item.sidecar))
        grouped[(item.task, item.space, item.contrast)].append(item)
    tests, untested, notes = [], [], []
    for (task, space, label), items in sorted(grouped.items(), key=lambda kv: tuple(map(str, kv[0]))):
        test = GroupTest(task, space, label, tuple(items))
        if len(items) < MIN_SUBJECTS:
            notes.append(Note(
                "selection",
                f"task-{task} contrast-{label} has maps for one subject only (sub-{items[0].subject}), "
                "so it is not tested; run the participant level for the other subjects first",
                subject=items[0].subject, task=task,
            ))
            untested.append(test)
            continue
        _check_same_model(test)
        if model is not None and model.nodes_at("dataset"):
            test, more = _model_test(test, model.nodes_at("dataset")[0], settings)
            notes += more
        if not same_grid([item.mask for item in test.inputs]):
            raise NoDataError(
                f"The subjects' task-{task} masks in {output_dir} are on different voxel grids; "
                "rerun the participant level with one --space for all subjects."
            )
        tests.append(test)
    if not tests:
        raise NoDataError(
            f"No contrast has maps for {MIN_SUBJECTS} or more subjects; nothing to test at the group level."
        )
    return GroupPlan(tuple(tests), tuple(untested), tuple(notes))


def read_participants(bids_dir):
    """``participants.tsv`` as a table indexed by subject label (``sub-`` removed); an empty
    table when the dataset has none."""
    import pandas as pd

    path = bids_dir / "participants.tsv"
    if not path.is_file():
        return pd.DataFrame(index=pd.Index([], name="subject"))
    table = designs.read_table(path, "participants file")
    if "participant_id" not in table:
        from .errors import InputFileError

        raise InputFileError(f"{path} has no participant_id column, which BIDS participants files need.")
    table["subject"] = table.pop("participant_id").astype(str).str.replace(r"^sub-", "", regex=True)
    return table.set_index("subject")


def _model_test(test, node, settings):
    """A test designed by a model's dataset node: its design over the subjects (from
    ``participants.tsv``) and its contrasts."""
    import pandas as pd

    from .model.contrasts import contrast_matrices
    from .model.group import build_group_design

    participants = read_participants(settings.bids_dir)
    rows = []
    for item in test.inputs:
        row = participants.loc[item.subject].to_dict() if item.subject in participants.index else {}
        rows.append({**row, "subject": item.subject, "contrast": item.info.contrast.name, "task": item.task})
    table = pd.DataFrame(rows)
    design = build_group_design(node, table, label="subject")
    kept = [item for item, keep in zip(test.inputs, ~table.index.isin(design.dropped)) if keep]
    notes = [Note("selection", text, task=test.task) for text in design.notes]
    if len(kept) < MIN_SUBJECTS:
        raise NoDataError(
            f"Node {node.name!r}: task-{test.task} contrast-{test.contrast} keeps {len(kept)} subject(s) "
            f"after leaving out those with missing values; at least {MIN_SUBJECTS} are needed."
        )
    matrix = design.matrix.reset_index(drop=True)
    contrasts, skipped = contrast_matrices(node, tuple(matrix.columns), incoming=test.name)
    notes += [Note("contrast-skipped", text, task=test.task) for text in skipped]
    dof = len(kept) - np.linalg.matrix_rank(matrix.to_numpy())
    if dof < 1:
        raise UsageError(
            f"Node {node.name!r}: the design of task-{test.task} contrast-{test.contrast} has "
            f"{matrix.shape[1]} columns for {len(kept)} subjects, leaving no degrees of freedom."
        )
    return replace(test, inputs=tuple(kept), design=matrix, contrasts=tuple(contrasts)), notes


def _check_same_model(test):
    """Refuse to test together subject maps made with different models (SPEC §4)."""
    first = test.inputs[0]
    reference = (first.info.model, first.info.contrast.weights,
                 (first.info.fixed_effects or {}).get("PrecisionWeighted"))
    for item in test.inputs[1:]:
        other = (item.info.model, item.info.contrast.weights,
                 (item.info.fixed_effects or {}).get("PrecisionWeighted"))
        if other != reference:
            differing = _differences(first.info, item.info)
            raise UsageError(
                f"sub-{first.subject} and sub-{item.subject} have task-{test.task} contrast-{test.contrast} "
                f"maps made with different models ({differing}); rerun the participant level "
                "for all subjects with the same options."
            )


def _differences(one, other) -> str:
    one_json, other_json = one.to_json(), other.to_json()
    keys = ["Contrast", "SmoothingFWHM", "NoiseModel", "HRFModel", "DriftModel", "HighPass", "FixedEffects"]
    parts = []
    for key in keys:
        a, b = one_json.get(key), other_json.get(key)
        if key == "FixedEffects":
            a, b = (a or {}).get("PrecisionWeighted"), (b or {}).get("PrecisionWeighted")
            key = "PrecisionWeighted"
        if key == "Contrast":
            a, b = a.get("Weights"), b.get("Weights")
            key = "contrast weights"
        if a != b:
            parts.append(f"{key} {json_text(a)} vs {json_text(b)}")
    return "; ".join(parts) or "sidecars differ"


def json_text(value) -> str:
    """A compact JSON rendering of a value, for messages."""
    import json

    return json.dumps(value, separators=(",", ":"))
