"""Run plans: every run's design and contrasts built and checked before a file is written.

Every header, mask, table and design the selection needs is read and checked here
(SPEC §4). A run whose model leaves fewer than :data:`MIN_DOF` residual degrees of
freedom, or without a contrast to compute, is left out of its subject's maps, with a note
that the subject's sidecars record.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import design as designs
from .. import images, naming, surface
from ..maps import grid_difference
from ..dependence import column_span, empty_columns
from ..errors import InputFileError, NoDataError, UsageError
from ..notes import Note
from .graph import check_participant_inputs, participant_steps
from .models import run_node

logger = logging.getLogger("bids_fixedfx")

#: The fewest residual degrees of freedom a run may have to be fitted and combined.
MIN_DOF = 1

#: Why a run without a contrast to compute (no events of any contrast's conditions) is left out.
NO_CONTRAST = "it has no contrast to compute: its design lacks the conditions of every contrast"


@dataclass(frozen=True, eq=False)
class RunPlan:
    """A run ready to fit: its files, its design, its contrasts and its residual dofs."""

    run: object  # discover.Run
    design: designs.Design
    contrasts: tuple[designs.ContrastWeights, ...]
    dof: int
    form: object = None  # surface.Form of a surface or CIFTI run (its maps are written in it); None: a volume


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
    space: str | None  # the space modelled (None: files without one, or several spaces)
    notes: tuple[Note, ...]
    steps: tuple = ()  # plan.graph.Step: the session and subject nodes, each after its source

    @property
    def runs(self) -> tuple[RunPlan, ...]:
        return tuple(plan for subject in self.subjects for plan in subject.runs)

    @property
    def spaces(self) -> tuple[str | None, ...]:
        """Every space modelled, in the order of the subjects' plans."""
        return tuple(dict.fromkeys(subject.space for subject in self.subjects))


def residual_dof(design: designs.Design, n_volumes: int) -> int:
    """Residual degrees of freedom of a run's fit, as nilearn counts them.

    Parameters
    ----------
    design : Design
    n_volumes : int

    Returns
    -------
    dof : int
        Volumes kept for the fit minus the rank of the design over them, with the tolerance
        of nilearn's ``OLSModel`` (the sum of the design's absolute values times the machine
        epsilon), whose ``df_residuals`` the fit reports: a regressor of rounding noise
        (events after the run's end, ~1e-16) counts as a column there as here.
    """
    matrix = design.matrix.to_numpy(dtype=np.float64)
    if design.sample_mask is not None:
        matrix = matrix[design.sample_mask]
        n_volumes = len(design.sample_mask)
    return int(n_volumes - np.linalg.matrix_rank(matrix, np.abs(matrix).sum() * np.finfo(np.float64).eps))


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
    notes = [Note("model", text) for text in (model.notes if model is not None else ())]
    notes += [Note("selection", str(w)) if not isinstance(w, Note) else w for w in selection.warnings]
    runs = selection.runs
    if settings.mask is not None:
        images.read_mask(settings.mask, "--mask")
        runs = tuple(replace(run, mask=settings.mask) for run in runs)
    node = run_node(model) if model is not None else None
    if node is None:
        designs.check_confound_patterns(runs, settings.model)
    built, forms, inside = {}, {}, {}
    for run in runs:
        logger.debug(
            "%s: BOLD %s, mask %s, events %s, confounds %s%s, TR %g s, %d volumes",
            run.name, run.bold, run.mask or "none (nilearn computes one)", run.events or "none",
            run.confounds or "none", f", design {run.design}" if run.design else "", run.tr, run.n_volumes,
        )
        forms[run], mask = _check_images(run, settings)
        if mask is not None and settings.mask is None:
            _intersect(inside, (run.subject, run.task, run.space), mask)
        built[run] = designs.model_design(run, node) if node else designs.build_design(run, settings.model)
    notes += _design_notes(runs, built)
    _check_one_design_per_run(runs)
    if node is None:
        notes += designs.check_contrasts(settings.contrasts, built)
    else:
        _check_levels_some_run_has(node, built, settings.bids_dir)
        _check_contrast_levels(node, built, settings.bids_dir)
    plans, left_out, why, skips = [], defaultdict(list), [], {}
    for run in runs:
        if node is None:
            contrasts = designs.contrast_weights(settings.contrasts, built[run], run.events)
        else:
            contrasts, skipped = designs.model_contrasts(run, node, built[run])
            skips[run] = skipped
        if not contrasts:
            if node is not None and skipped and not why:
                why.append(skipped[0].text.removeprefix(f"{run.name}: "))
            elif node is None and not why:
                why.append(_design_said(run, built[run]) or (
                    f"its design file {run.design} has no column to contrast (each is constant or a drift term)"
                    if built[run].precomputed else
                    "it has no events file" if run.events is None else
                    f"its events file {run.events} holds no event to model (a condition is a trial_type)"))
            notes.append(Note.for_run(run, "run-left-out", f"{run.name} has no contrast to compute and was left out."))
            left_out[(run.subject, run.task, run.space)].append(LeftOut(run, NO_CONTRAST))
            continue
        _check_labels(run, contrasts, built[run], settings.model_file)
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
            left_out[(run.subject, run.task, run.space)].append(LeftOut(run, reason))
            continue
        contrasts, dependent = _estimable(contrasts, built[run], run)
        notes += dependent
        if not contrasts:
            if not why:
                why.append(dependent[0].text.removeprefix(f"{run.name}: ") if dependent else
                           _design_said(run, built[run]) or "each of its contrasts weighs an empty regressor")
            cause = "of linearly dependent columns" if dependent else "an empty regressor"
            notes.append(Note.for_run(run, "run-left-out", f"{run.name} has no contrast to compute (each weighs "
                                                           f"{cause}) and was left out."))
            left_out[(run.subject, run.task, run.space)].append(LeftOut(run, NO_CONTRAST))
            continue
        plans.append(RunPlan(run, built[run], contrasts, dof, forms[run]))
    notes += _said_once_per_task(runs, skips)
    if not plans:
        raise NoDataError(_nothing_to_fit(runs, left_out, why))
    for run in selection.unprocessed:  # a run of the subject's task that was not preprocessed in that space
        left_out[(run.subject, run.task, run.space)].append(
            LeftOut(run, f"it has a raw BOLD series but no preprocessed one in space {run.space or 'none'}"))
    _check_labels_across_runs(plans)
    notes += _weights_across_runs(plans)
    notes += _missing_contrasts(plans)
    notes += _contrasts_other_subjects_have(plans, notes)
    notes += _earlier_maps_unfitted(left_out, plans, settings.output_dir)
    surface.check_inference(settings.inference, [p.run.space for p in plans if p.run.is_surface],
                            settings.model_file if _states_inference(model, "subject") else None)
    subjects = _by_subject(plans, left_out)
    for subject in subjects:
        _check_subject_grid(subject)
        _check_masks_overlap(subject, inside.get(subject.key))
    notes += _runs_in_their_own_space(subjects)
    steps = participant_steps(model)
    for subject in subjects:
        _check_names_apart(subject, {step.level for step in steps})
    check_participant_inputs(steps, plans)
    return Plan(tuple(subjects), selection.space, tuple(notes), steps)


def _states_inference(model, level) -> bool:
    """Whether the model's nodes of ``level`` ask for corrected inference themselves (else the
    options did, beside a model without it)."""
    from ..model.inference import stated_inference

    return model is not None and any(stated_inference(node) is not None for node in model.nodes_at(level))


def _earlier_maps_unfitted(left_out, plans, output_dir) -> list[Note]:
    """A warning for each subject, task and space of which every run was left out while OUTPUT_DIR
    holds its maps from an earlier job: nothing replaces them, and the group level would test
    maps that the data no longer make."""
    from ..outputs import existing_set

    fitted = {(plan.run.subject, plan.run.task, plan.run.space) for plan in plans}
    notes = []
    for subject, task, space in sorted(set(left_out) - fitted, key=lambda key: tuple(map(str, key))):
        folder = Path(output_dir) / f"sub-{subject}"
        maps = [path for path in (existing_set(output_dir, f"sub-{subject}", subject=subject, task=task, space=space)
                                  if folder.is_dir() else ())
                if "_statmap." in path.name and not path.name.endswith(".json")]  # (volumes, GIFTI, CIFTI)
        if maps:
            where = f"sub-{subject} task-{task}" + (f" space-{space}" if space else "")
            notes.append(Note("run-left-out", f"{where}: every run was left out (see above), so the {len(maps)} maps "
                              f"of it that an earlier job wrote in {folder} stay as they were, and the group level "
                              "would test them; correct the runs and rerun, or remove those maps.",
                              subject=subject, task=task))
    return notes


def _check_names_apart(subject, levels) -> None:
    """A run named by ``sub`` and ``task`` only (``ses`` too, with a session node) has its
    subject's (session's) map names (SPEC §3), which are its maps when it is the only one: beside
    other runs of its task, its maps would be written over by the fixed effects, and cite them."""
    keys = {"sub", "task"}
    for plan in subject.runs:
        own = {key for key, _ in plan.run.entities}
        if own == keys or ("session" in levels and own == keys | {"ses"}):
            shared = [p for p in subject.runs if set(plan.run.entities) <= set(p.run.entities)]  # its sub, ses, task
            if len(shared) > 1:
                other = next(p.run for p in shared if p is not plan)
                key, value = sorted(set(other.entities) - set(plan.run.entities))[0]  # what tells them apart
                name = naming.ENTITY_NAMES.get(key, key)
                value = json.dumps(int(value) if key == "run" and str(value).isdigit() else str(value))
                raise UsageError(
                    f"{plan.run.bold.name} has no run- entity, beside other runs of its task ({other.bold.name}): "
                    f"its maps would have the names of its {'session' if 'ses' in own else 'subject'}'s; name it "
                    "with a run- entity in the dataset (run-1), or fit only it or only the others with "
                    f'--bids-filter-file {{"bold": {{"{name}": null}}}} or {{"bold": {{"{name}": {value}}}}}.'
                )


def _design_said(run, design) -> str | None:
    """What a run's design said of its conditions' regressors (every event of a condition after
    the run's end, say), else the first thing it said of its events: why it may have no contrast
    to compute (what it said of its confounds is not why: a run without a confounds file and
    with an events file of a header alone was said to lack the confounds)."""
    notes = sorted((note for note in design.notes if note.kind not in _NOT_WHY),
                   key=lambda note: note.kind != "empty-condition")  # stable: else in order
    return notes[0].text.removeprefix(f"{run.name}: ") if notes else None


#: Notes of a design that do not say why it has no contrast.
_NOT_WHY = ("no-confounds", "confounds-unmatched")


def _nothing_to_fit(runs, left_out, why=()) -> str:
    """The error when no run can be fitted: it names a run and why, since the app stops before
    the notes that say so for each run are shown.

    Parameters
    ----------
    runs : sequence of discover.Run
        The selected runs, none of which can be fitted.
    left_out : dict
        The runs left out (:class:`LeftOut`), by subject, task and space.
    why : sequence of str
        Why the first run without a contrast has none (a contrast left out and why).

    Returns
    -------
    message : str
    """
    short = [item for items in left_out.values() for item in items if item.reason != NO_CONTRAST]
    if not short:
        because = f"; {why[0]}" if why else ""
        return f"No run can be fitted: no run has a contrast to compute ({runs[0].name}, of {len(runs)}){because}."
    count = (
        "the only run has" if len(runs) == 1
        else f"every one of the {len(runs)} runs has" if len(short) == len(runs)
        else f"{len(short)} of the {len(runs)} runs have (the others no contrast to compute)"
    )
    return (
        f"No run can be fitted: {count} too few degrees of freedom "
        f"({short[0].run.name}: {short[0].reason}; at least {MIN_DOF} needed)."
    )


def _by_subject(plans, left_out):
    grouped = defaultdict(list)
    for plan in plans:
        grouped[(plan.run.subject, plan.run.task, plan.run.space)].append(plan)
    return [
        SubjectPlan(subject, task, space, tuple(runs), tuple(left_out.get((subject, task, space), ())))
        for (subject, task, space), runs in grouped.items()
    ]


def _check_images(run, settings):
    """Read the BOLD header (and check the file holds its data) and the whole mask; a surface
    or CIFTI series is read whole and its smoothing checked.

    Returns
    -------
    form : surface.Form or None
        A surface or CIFTI series' form; None for a volume.
    mask : Nifti1Image or None
        A volume's mask, read (None without a mask file).
    """
    if run.is_surface:
        surface.run_model(run, settings.model)  # --smoothing-fwhm on a space that cannot take it: 64
        return surface.read_series(run.bold)[1], None
    given = settings.mask is not None
    bold = images.check_image(run.bold, "BOLD series")
    if len(bold.shape) != 4:
        raise NoDataError(f"BOLD series {run.bold} is not 4D (shape {bold.shape}).")
    _check_smoothing_width(run, bold, settings)
    if run.mask is None:
        return None, None
    option = "--mask " if given else ""
    mask = images.read_mask(run.mask, "--mask" if given else "Mask")
    if mask.shape[:3] != bold.shape[:3] or not np.allclose(mask.affine, bold.affine, atol=1e-3):
        difference = grid_difference((tuple(mask.shape[:3]), mask.affine), (tuple(bold.shape[:3]), bold.affine))
        grid = f"is on another grid than {run.bold.name} ({difference})"
        if given:  # the option's value is at fault
            raise UsageError(f"{option}{run.mask} {grid}; give a mask in the BOLD's space.")
        raise InputFileError(f"{run.mask} {grid}; the preprocessing wrote a mask that does not fit its BOLD series "
                             "(rerun it, or give one with --mask).")
    return None, mask


def _intersect(inside, key, mask) -> None:
    """Narrow ``inside[key]`` (shape, bits) to the voxels of ``mask`` as well: the voxels inside
    the masks of every run of a subject, task and space read so far, one bit a voxel (so that
    the check costs no second reading of the masks, and an eighth of a mask a subject). A mask
    on another grid is left to :func:`_check_subject_grid`."""
    values = np.packbits(np.asanyarray(mask.dataobj) != 0)
    shape, bits = inside.get(key, (mask.shape, None))
    if shape == mask.shape:
        inside[key] = (shape, values if bits is None else bits & values)


def _check_masks_overlap(subject, inside) -> None:
    """Refuse, before any run is fitted, a subject whose runs' masks have no voxel in common:
    its maps would have none (nilearn's fixed effects then fail with 'The mask is invalid as
    it is empty'). ``inside``: what :func:`_intersect` made of all the subject's runs, those
    left out too; the masks are read again only then."""
    from ..maps import intersect_masks, is_empty, why_empty

    if inside is None or inside[1].any() or len(subject.runs) < 2:
        return
    masks = [plan.run.mask for plan in subject.runs]
    if subject.left_out and not is_empty(intersect_masks(masks)):
        return  # the runs left out made it empty
    where = f"sub-{subject.subject} task-{subject.task}" + (f" space-{subject.space}" if subject.space else "")
    told = why_empty(masks, [plan.run.name for plan in subject.runs])
    raise InputFileError(f"The brain masks of the runs of {where} have no voxel in common ({told}), so its maps "
                         "would have none; check those masks in the derivatives (or give one with --mask).")


#: Smoothing is refused when wider than this many times the volume's extent and than
#: :data:`MAX_SMOOTHING_MM` (a small test image still takes the default 5 mm).
SMOOTHING_EXTENTS, MAX_SMOOTHING_MM = 2, 100.0


def _check_smoothing_width(run, bold, settings):
    """Refuse a smoothing far wider than the whole volume: its kernel (4 standard deviations
    each side) would cost time in proportion to its width for no information (every voxel
    tends to the volume's mean; 1e6 mm is a kernel of millions of taps per line)."""
    fwhm = settings.model.smoothing_fwhm
    if not fwhm:
        return
    extent = float(np.max(np.array(bold.shape[:3]) * np.sqrt((bold.affine[:3, :3] ** 2).sum(axis=0))))
    if fwhm > max(SMOOTHING_EXTENTS * extent, MAX_SMOOTHING_MM):
        source = f"the smoothing of {settings.model_file}" if settings.model_file else "--smoothing-fwhm"
        raise UsageError(f"{source} ({fwhm:g} mm FWHM) is far wider than {run.bold.name} ({extent:g} mm across "
                         "at most); give a width of a few voxels (the default is 5 mm).")


def _check_labels(run, contrasts, design, model_file=None):
    """Two contrasts of a run must not share a file label (``go_left`` and ``go-left``, nor
    ``audio`` and ``Audio``, one file where case is ignored), and
    each label must leave the longest name of its maps (and its temporary name) within
    :data:`~bids_fixedfx.naming.NAME_MAX` bytes. Two trial types of the events that differ only
    in spaces at their ends or in case (``audio`` and ``audio `` in one row) are a slip of the
    events file, named as its fault (``go-left`` and ``go_left`` are two conditions to name apart)."""
    seen = {}
    for contrast in contrasts:
        longest = naming.build_run(
            "run_statmap", run, hemi="L", contrast=contrast.label, stat="variance",
            desc=max(naming.INFERENCE_DESCS, key=len), extension=".dscalar.nii",
        ).name
        if naming.temporary_length(longest) > naming.NAME_MAX:
            shortest = longest.replace(f"_contrast-{contrast.label}_", "_contrast-a_")
            if naming.temporary_length(shortest) > naming.NAME_MAX:  # the run's own labels leave no room
                raise InputFileError(
                    f"{run.bold.name} has labels too long to name its maps after, whatever their contrast: "
                    f"{shortest[:60]}... is longer than file systems allow ({naming.NAME_MAX} bytes); "
                    "rename the run with shorter labels (its task-, acq- ...)."
                )
            shown = contrast.name if len(contrast.name) <= 40 else contrast.name[:40] + "..."
            raise UsageError(
                f"Contrast {shown!r} of {run.name} is too long a name for the files of its maps "
                f"(at most {naming.NAME_MAX} bytes); give it a shorter name (--contrast NAME=SPEC, "
                "or a shorter trial_type)."
            )
        key = contrast.label.casefold()  # audio and Audio: one file on macOS and Windows
        if key in seen:
            first, label = seen[key]
            slip = first.strip().casefold() == contrast.name.strip().casefold()
            if slip and run.events is not None and {first, contrast.name} <= set(design.condition_counts):
                raise InputFileError(
                    f"{run.events} has the trial types {first!r} and {contrast.name!r}, one condition spelled "
                    f"two ways (a stray space or letter case) that make one file label {label}; spell it alike "
                    + ("in every row." if first.strip() == contrast.name.strip() else  # a space: never two conditions
                       "in every row (or, if they are two conditions, name their contrasts apart "
                       + (f"in {model_file})." if model_file else "with --contrast NAME=SPEC)."))
                )
            raise UsageError(
                f"Contrasts {first!r} and {contrast.name!r} of {run.name} both make the file label "
                + (f"{label}" if label == contrast.label else f"{label} (or {contrast.label}: one name on "
                   "file systems that ignore case)")
                + (f"; name them apart in {model_file}." if model_file else "; name them apart with --contrast NAME=SPEC.")
            )
        seen[key] = (contrast.name, contrast.label)


def _check_one_design_per_run(runs) -> None:
    """A run's spaces share its design file (``<run>_design.tsv`` names no space): their
    series must give one design, of one repetition time, number of volumes and StartTime
    (the frame times of slice-timing corrected series)."""
    first = {}
    for run in runs:
        other = first.setdefault(run.name, run)
        if other.n_volumes != run.n_volumes or not math.isclose(other.tr, run.tr, rel_tol=1e-6):
            raise InputFileError(
                f"{run.name} is {other.n_volumes} volumes of {other.tr:g} s in {other.bold} but {run.n_volumes} "
                f"volumes of {run.tr:g} s in {run.bold}; a run's spaces share one design, so correct the sidecar "
                "or the series that is wrong."
            )
        if not math.isclose(other.start_time, run.start_time, rel_tol=1e-6, abs_tol=1e-9):
            raise InputFileError(
                f"{run.name} has StartTime {other.start_time:g} s in the sidecar of {other.bold} but "
                f"{run.start_time:g} s in that of {run.bold} (0 where a sidecar gives none); a run's spaces share "
                "one design, so correct the sidecar that is wrong."
            )


def _check_labels_across_runs(plans):
    """A subject's runs of a task are combined contrast by contrast through their file labels:
    two differently named contrasts with one label (``face-1`` in one run, ``face_1`` in
    another) would be combined as one."""
    seen = {}
    for plan in plans:
        for contrast in plan.contrasts:
            key = (plan.run.subject, plan.run.task, plan.run.space, contrast.label.casefold())
            first = seen.setdefault(key, (contrast.name, plan.run.name))
            if first[0] != contrast.name:
                spaces = " (they differ in spaces only)" if first[0].strip() == contrast.name.strip() else ""
                raise UsageError(
                    f"Contrast {first[0]!r} of {first[1]} and {contrast.name!r} of {plan.run.name} both make the "
                    f"file label {contrast.label}{spaces}, so sub-{plan.run.subject}'s maps would combine them as "
                    "one; name them alike in the events files, or apart with --contrast NAME=SPEC."
                )


def _weights_across_runs(plans) -> list[Note]:
    """Notes of the contrasts that weigh other columns in other runs of a subject (a weight
    list such as ``0,1`` follows each run's column order, as nilearn pads it: in a run
    without the second condition it weighs a confound), which fixed effects would average."""
    seen, said, notes = {}, set(), []

    def shown(weights):
        return ", ".join(f"{c} {w:g}" for c, w in weights.items()) or "nothing"

    for plan in plans:
        for contrast in plan.contrasts:
            if contrast.test == "F":
                continue
            key = (plan.run.subject, plan.run.task, plan.run.space, contrast.label)
            first = seen.setdefault(key, (contrast.weights, plan.run.name))
            if first[0] != contrast.weights and key not in said:
                said.add(key)
                notes.append(Note("contrast-weights", (
                    f"Contrast {contrast.name!r} weighs other columns in other runs of sub-{plan.run.subject} "
                    f"({first[1]}: {shown(first[0])}; {plan.run.name}: {shown(contrast.weights)}), and its subject "
                    "maps average them; name the columns (NAME=visual-audio) to weigh the same regressors in every "
                    "run"), subject=plan.run.subject, task=plan.run.task))
    return notes


def _estimable(contrasts, design, run) -> tuple[tuple, list]:
    """The contrasts a run's design can estimate, and notes for those it cannot but for an
    empty column.

    A column that is zero in every volume fitted (a condition whose events all start after
    the run's last volume or fall in its dummy scans, or whose modulation is zero) has no
    estimate, so a contrast weighing it is left out of that run; the subject's maps of it
    combine the other runs (said by :func:`_missing_contrasts`). So is a contrast of columns
    that are linearly dependent (a model's ``Or`` of two conditions beside them), whose
    weights do not lie in the rows' span: nilearn fits such a design through its
    pseudo-inverse and writes maps of it that say nothing.
    """
    values = design.matrix.to_numpy(dtype=float)
    if design.sample_mask is not None:
        values = values[design.sample_mask]
    empty = empty_columns(values)  # each column alone: one huge confound is no scale
    kept = [c for c in contrasts if not np.any(np.atleast_2d(c.vector)[:, empty[:np.shape(c.vector)[-1]]])]
    full = values[:, ~empty]
    if not full.size:
        return tuple(kept), []
    span, lengths, columns = column_span(full, np.asarray(design.matrix.columns)[~empty])
    if len(span) == full.shape[1]:
        return tuple(kept), []
    estimable, notes = [], []
    for contrast in kept:
        weights = np.atleast_2d(contrast.vector)[:, ~empty] / lengths  # the weights of the scaled columns
        residual = weights - (weights @ span.T) @ span
        if np.linalg.norm(residual) <= 1e-6 * np.linalg.norm(weights):
            estimable.append(contrast)
            continue
        shown = ", ".join(columns[:6]) + (", ..." if len(columns) > 6 else "")
        notes.append(Note.for_run(
            run, "contrast-not-estimable",
            f"{run.name}: the design's columns {shown} are linearly dependent (rank {len(span)} of {full.shape[1]}), so "
            f"contrast {contrast.name!r} cannot be estimated and this run is left out of it; remove a column "
            "that the others make (Model.X, the transformations or the confounds)"))
    return tuple(estimable), notes


def _missing_contrasts(plans):
    """Notes for runs of a subject that lack a contrast its other runs have."""
    notes = []
    by_subject = defaultdict(list)
    for plan in plans:
        by_subject[(plan.run.subject, plan.run.task)].append(plan)
    for group in by_subject.values():
        labels = {c.label: (c.name, c.test) for plan in group for c in plan.contrasts}
        for plan in group:
            missing = sorted(set(labels) - {c.label for c in plan.contrasts})
            if missing:
                only_f = all(labels[m][1] == "F" for m in missing)  # F tests are the runs' alone
                notes.append(Note.for_run(
                    plan.run, "contrast-skipped",
                    f"{plan.run.name} has no {', '.join(labels[m][0] for m in missing)} "
                    "(no such events or column, or its regressor is empty), so "
                    + ("that F test has no map of this run" if only_f
                       else "its subject's maps of that contrast combine the other runs only"),
                ))
    return notes


def _design_notes(runs, built):
    """The notes of the runs' designs, those of a name of ``Model.X`` that no run of a task has
    said once for the task (a default model of several tasks, given back with ``-m``, names the
    other tasks' conditions: a line for every run of each)."""
    from ..model.design import absent_note

    by_task = defaultdict(list)
    for run in runs:
        by_task[run.task].append(run)
    everywhere = {task: set.intersection(*(set(built[run].left_out) for run in task_runs))
                  for task, task_runs in by_task.items() if len(task_runs) > 1}
    notes = []
    for run in runs:
        said = {absent_note(run.name, name) for name in everywhere.get(run.task, ())}
        notes += [note for note in built[run].notes if note.text not in said]
    for task, names in everywhere.items():
        if names:
            listed = ", ".join(map(repr, sorted(names)))
            notes.append(Note("design", f"task-{task}: no event has {listed} in any of its {len(by_task[task])} "
                                        f"runs, so {'they are' if len(names) > 1 else 'it is'} left out of their "
                                        "designs", task=task))
    return notes


def _said_once_per_task(runs, skips):
    """The runs' notes of contrasts left out (``skips``: run -> its notes), those that every run
    of a task has alike said once for the task."""
    by_task = defaultdict(list)
    for run in runs:
        if run in skips:
            by_task[run.task].append(run)
    notes = []
    for task, task_runs in by_task.items():
        texts = [[note.text.removeprefix(f"{run.name}: ") for note in skips[run]] for run in task_runs]
        everywhere = set.intersection(*map(set, texts)) if len(task_runs) > 1 else set()
        for run, run_texts in zip(task_runs, texts):
            notes += [note for note, text in zip(skips[run], run_texts) if text not in everywhere]
        notes += [Note("contrast-skipped", f"task-{task}, each of its {len(task_runs)} runs: {text}", task=task)
                  for text in dict.fromkeys(t for t in texts[0] if t in everywhere)]
    return notes


def _contrasts_other_subjects_have(plans, notes):
    """Notes for subjects none of whose runs of a task has a contrast that other subjects' runs
    of the task have (no such events): they get no maps of it, which their runs' notes did not
    say when no run of theirs was expected to have it (the options' contrasts, one per condition)."""
    by_task = defaultdict(dict)  # task -> subject -> contrast labels
    names = {}
    for plan in plans:
        labels = by_task[plan.run.task].setdefault(plan.run.subject, set())
        for contrast in plan.contrasts:
            labels.add(contrast.label)
            names.setdefault(contrast.label, contrast.name)
    said = {(note.subject, note.task) for note in notes if note.kind == "contrast-skipped" and note.subject}
    found = []
    for task, subjects in by_task.items():
        every = set().union(*subjects.values())
        for subject, labels in sorted(subjects.items()):
            missing = sorted(every - labels)
            if missing and (subject, task) not in said:
                others = sum(1 for s, own in subjects.items() if s != subject and own & set(missing))
                found.append(Note(
                    "contrast-skipped",
                    f"sub-{subject} task-{task}: none of its runs has {', '.join(names[m] for m in missing)} "
                    f"(no such events, or an empty regressor), which the runs of {others} other subject(s) have, "
                    "so it has no maps of it; check its events files if it should",
                    subject=subject, task=task,
                ))
    return found


def _check_levels_some_run_has(node, built, bids_dir) -> None:
    """Refuse a level a model's run node takes as a transformation's input that no event of any
    selected run has, nor any other events file of the dataset: a misspelt trial type, as pybids
    refuses it (a level that only some runs lack is left out of theirs, where pybids makes it a
    zero column, and so in a job of one subject whose runs all lack a condition that other
    subjects have; ``Model.X`` may name levels no run has, as bidspm's templates do, each left
    out with a note).

    Raises
    ------
    ModelError
        Naming the level and the runs' trial types.
    """
    from ..model import ModelError

    designs_built = [design for design in built.values() if not design.precomputed]
    nowhere = set.intersection(*(set(design.absent) for design in designs_built)) if designs_built else set()
    nowhere -= levels_in_other_events(nowhere, bids_dir, {run.events for run in built if run.events})
    if not nowhere:
        return
    present = sorted({c for design in designs_built for c in design.condition_counts})
    listed = ", ".join(present[:12]) + (f" and {len(present) - 12} more" if len(present) > 12 else "")
    named = ", ".join(map(repr, sorted(nowhere)))
    raise ModelError(f"Node {node.name!r} names {named}, which no event of the selected runs has (their trial types: "
                     f"{listed}); check the spelling in the model file.")


def _check_contrast_levels(node, built, bids_dir) -> None:
    """Refuse a contrast's condition that reads as a level of a variable of ``Model.X``
    (``audio.typo`` of ``audio``) when no selected run's design has it and no events file of
    the dataset holds that level: a misspelling, which each run left out with a warning (a
    level that ``Model.X`` names itself is left out of the runs that lack it, with a note).

    Raises
    ------
    ModelError
        Naming the contrast, the condition and the designs' columns.
    """
    from ..model import ModelError
    from ..model.variables import listed
    from .models import condition_names

    designs_built = [design for design in built.values() if not design.precomputed]
    if not designs_built:
        return
    columns = set().union(*(map(str, design.matrix.columns) for design in designs_built))
    named = set(node.x)  # a level X names itself may be missing from every run (bidspm's templates): left out
    named |= {name for t in node.transformations for name in (t.output or ())}  # and names the node makes
    wanted = {}
    for contrast in node.contrasts:
        for condition in contrast.condition_list:
            if not isinstance(condition, str) or "." not in condition or "[" in condition:  # (Split's rt.x[a])
                continue
            names = condition_names(condition)  # (itself, the variable an HRF column comes from, ...)
            if set(names[:2]) & named:
                continue
            if not set(names) & columns:
                wanted.setdefault(names[1], (contrast.name, condition))
    nowhere = sorted(set(wanted) - levels_in_other_events(set(wanted), bids_dir)) if wanted else []
    if nowhere:
        name, condition = wanted[nowhere[0]]
        raise ModelError(f"Node {node.name!r}: contrast {name!r} names {condition!r}, which no design of the selected "
                         f"runs has and no events file of the dataset holds (the designs' columns: "
                         f"{listed(sorted(columns), condition)}); check the spelling in the model file.")


def levels_in_other_events(levels, bids_dir, read=(), known=None) -> set:
    """The levels (``column.value``; a value may hold dots, as ``trial_type.2.5``) that an events
    file of the dataset other than those ``read`` has: each file's header read, and its rows
    only when it has such a column; files that cannot be read are passed over (this only
    spares a job a refusal, or keeps a condition in the default model). ``known``: a dict of
    the levels an earlier call of the same job looked for (level -> found), which it updates:
    those are not looked for again."""
    known = {} if known is None else known
    found = {level for level in levels if known.get(level)}
    levels = {level for level in levels if level not in known}
    if not levels:
        return found
    found |= _levels_in_events(levels, bids_dir, read)
    known.update({level: level in found for level in levels})
    return found


def _levels_in_events(levels, bids_dir, read) -> set:
    """:func:`levels_in_other_events` of levels not looked for before."""
    import csv

    found = set()
    read = {Path(path) for path in read}  # passed over to save time: they lack the levels looked for
    for path in _events_files(bids_dir):
        try:
            if path in read:
                continue
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as stream:
                rows = csv.reader(stream, delimiter="\t")
                header = [name.strip() for name in next(rows, [])]
                wanted = {i: {level[len(name) + 1:]: level for level in levels if level.startswith(f"{name}.")}
                          for i, name in enumerate(header)}
                wanted = {i: values for i, values in wanted.items() if values}
                if not wanted:
                    continue
                for row in rows:
                    for i, values in wanted.items():
                        if i < len(row) and row[i].strip() in values:
                            found.add(values[row[i].strip()])
        except (OSError, csv.Error):
            continue
        if found == levels:
            break
    return found


def _events_files(bids_dir):
    """The events files of a dataset, one folder at a time (a generator: a caller that finds what
    it wants stops early): those at its top level (inherited), then each subject's, in its
    folder, its ``func``, its sessions and their ``func`` folders, where BIDS puts them; the
    subjects' other folders (``anat``, ``dwi``, ``fmap``...) are not listed."""
    def listed(folder):  # (events files, folders)
        try:
            with os.scandir(folder) as entries:
                found = [(entry.name, entry.is_dir()) for entry in entries]
        except OSError:
            return [], []
        return (sorted(name for name, is_dir in found if not is_dir and name.endswith("_events.tsv")),
                sorted(name for name, is_dir in found if is_dir))

    def events_in(folder, listing):  # the folder's events files, then its func folder's
        yield from (Path(folder, name) for name in listing[0])
        if "func" in listing[1]:
            yield from (Path(folder, "func", name) for name in listed(os.path.join(folder, "func"))[0])

    root = str(bids_dir)
    top = listed(root)
    yield from (Path(root, name) for name in top[0])
    for subject in top[1]:
        if not subject.startswith("sub-"):
            continue
        folder = os.path.join(root, subject)
        listing = listed(folder)
        yield from events_in(folder, listing)
        for session in listing[1]:
            if session.startswith("ses-"):
                yield from events_in(os.path.join(folder, session), listed(os.path.join(folder, session)))


#: Volume spaces in which each run is in its own BOLD reference (fMRIPrep's ``--output-spaces
#: func``, whose files have no ``space-``): a subject's runs there are not aligned to each other.
RUN_SPACES = (None, "func", "boldref", "run")


def _runs_in_their_own_space(subjects) -> list:
    """A note for each subject whose preprocessed runs, combined voxel by voxel, are each in
    its own BOLD reference rather than one space."""
    notes = []
    for subject in subjects:
        runs = [plan.run for plan in subject.runs]
        if subject.space in RUN_SPACES and len(runs) > 1 and subject.runs[0].form is None and all(
                run.preprocessed for run in runs):
            where = "have no space- entity" if subject.space is None else f"are in space {subject.space}"
            notes.append(Note(
                "selection",
                f"The preprocessed runs of sub-{subject.subject} task-{subject.task} {where}: each is in its own "
                "BOLD reference (fMRIPrep's --output-spaces func), so its fixed effects combine voxels that are one "
                "place only if the runs were aligned; model a space the runs share (--space T1w, or a template)",
                subject=subject.subject, task=subject.task,
            ))
    return notes


def _check_subject_grid(subject):
    """A subject's runs of a task are combined voxel by voxel: one grid (or one set of
    vertices) for all."""
    from ..maps import other_grid

    first = subject.runs[0].run
    for plan in subject.runs[1:]:
        if subject.runs[0].form is not None:
            if not subject.runs[0].form.same_as(plan.form):
                raise NoDataError(
                    f"The runs of sub-{subject.subject} task-{subject.task} space-{subject.space} lie on "
                    f"different vertices ({first.bold.name} and {plan.run.bold.name}); they cannot be combined."
                )
            continue
        differ = other_grid([first.bold, plan.run.bold], atol=1e-3)
        if differ is not None:
            advice = ("choose a common --space (e.g. MNI152NLin2009cAsym)" if subject.space is None else
                      f"resample them to one grid of space {subject.space} (fMRIPrep writes a space's runs on one)")
            raise NoDataError(
                f"The runs of sub-{subject.subject} task-{subject.task} are on different voxel grids "
                f"({first.bold.name} and {plan.run.bold.name}: {differ[1]}), which fixed effects cannot combine "
                f"voxel by voxel; {advice}."
            )
