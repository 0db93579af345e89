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


def plan_runs(selection, settings) -> Plan:
    """Build and check every run's design and contrasts.

    Parameters
    ----------
    selection : discover.Selection
    settings : Settings

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
    built = {}
    for run in runs:
        logger.debug(
            "%s: BOLD %s, mask %s, events %s, confounds %s, design %s, TR %g s, %d volumes",
            run.name, run.bold, run.mask, run.events, run.confounds, run.design, run.tr, run.n_volumes,
        )
        _check_images(run, given=settings.mask is not None)
        built[run] = designs.build_design(run, settings.model)
        notes += built[run].warnings
    notes += designs.check_contrasts(settings.contrasts, built)
    plans, left_out = [], defaultdict(list)
    for run in runs:
        contrasts = designs.contrast_weights(settings.contrasts, built[run])
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
    """One group test: a task, space and contrast, over the subjects that have it."""

    task: str
    space: str | None
    contrast: str
    inputs: tuple[SubjectMapFiles, ...]

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


def plan_group(settings) -> GroupPlan:
    """Find the subject maps to test and check them, before any group file is written.

    Parameters
    ----------
    settings : Settings

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
        if not same_grid([item.mask for item in items]):
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
