"""The two analysis levels, end to end: discover -> design -> glm -> combine -> outputs -> report.

Everything that can be wrong with the input is checked before the first file is written.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import combine, design, discover, glm, outputs
from .errors import NoDataError, UsageError
from .settings import STATS

logger = logging.getLogger("bids_fixedfx")


@dataclass(frozen=True, eq=False)
class RunPlan:
    """A run ready to fit: its files, its design and its contrasts."""

    run: discover.Run
    design: design.Design
    contrasts: tuple[design.ContrastWeights, ...]


@dataclass(frozen=True, eq=False)
class SubjectResult:
    """A subject's fixed-effects maps for one task."""

    subject: str
    task: str
    space: str | None
    mask: object
    runs: tuple[discover.Run, ...]
    contrasts: tuple[glm.ContrastMaps, ...]
    runs_of: dict  # contrast label -> the runs that have it


def run(settings) -> None:
    """Run the analysis level the settings ask for."""
    check_output_dir(settings.bids_dir, settings.output_dir)
    if settings.work_dir is not None:  # scratch space for any temporary file
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(settings.work_dir)
    if settings.analysis_level == "participant":
        run_participant(settings)
    else:
        run_group(settings)


def check_output_dir(bids_dir: Path, output_dir: Path) -> None:
    """Refuse an OUTPUT_DIR equal to or inside BIDS_DIR, unless under ``BIDS_DIR/derivatives/``."""
    bids_dir, output_dir = bids_dir.resolve(), output_dir.resolve()
    if output_dir == bids_dir:
        raise UsageError(f"OUTPUT_DIR {output_dir} is BIDS_DIR; the input dataset is never written to.")
    if bids_dir in output_dir.parents and (bids_dir / "derivatives") not in output_dir.parents:
        raise UsageError(
            f"OUTPUT_DIR {output_dir} is inside BIDS_DIR; use a folder outside it "
            f"or under {bids_dir / 'derivatives'}."
        )


def plan_runs(selection, settings) -> tuple[list[RunPlan], list[str]]:
    """Build every run's design and contrasts, checking them before anything is written.

    Returns
    -------
    plans : list of RunPlan
    notes : list of str
        Warnings for the report.
    """
    notes = list(selection.warnings)
    designs = {}
    for run in selection.runs:
        logger.debug(
            "%s: BOLD %s, mask %s, events %s, confounds %s, design %s, TR %g s, %d volumes",
            run.name, run.bold, run.mask, run.events, run.confounds, run.design, run.tr, run.n_volumes,
        )
        designs[run.name] = design.build_design(run, settings.model)
        notes += designs[run.name].warnings
        _check_mask_grid(run, given=settings.mask is not None)
    notes += design.check_contrasts(settings.contrasts, designs)
    plans = []
    for run in selection.runs:
        contrasts = design.contrast_weights(settings.contrasts, designs[run.name])
        if not contrasts:
            notes.append(f"{run.name} has no contrast to compute and was left out.")
            continue
        _check_labels(run, contrasts)
        plans.append(RunPlan(run, designs[run.name], contrasts))
    if not plans:
        raise NoDataError("No run has a contrast to compute: the designs have no condition columns.")
    notes += _missing_contrasts(plans)
    _check_subject_grids(plans)
    return plans, notes


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
                notes.append(
                    f"{plan.run.name} has no {', '.join(labels[m] for m in missing)} "
                    "(no such events or column), so its subject's maps of that contrast "
                    "combine the other runs only"
                )
    return notes


def _check_subject_grids(plans):
    """A subject's runs of a task are combined voxel by voxel: one grid for all."""
    by_subject = defaultdict(list)
    for plan in plans:
        by_subject[(plan.run.subject, plan.run.task)].append(plan.run)
    for (subject, task), runs in by_subject.items():
        for run in runs[1:]:
            if not combine.same_grid([runs[0].bold, run.bold], atol=1e-3):
                raise NoDataError(
                    f"The runs of sub-{subject} task-{task} are on different voxel grids "
                    f"({runs[0].bold.name} and {run.bold.name}); choose a common --space "
                    "(e.g. MNI152NLin2009cAsym)."
                )


def _check_mask_grid(run, given):
    import nibabel as nib
    import numpy as np

    mask = run.mask
    if mask is None:
        return
    try:
        mask_img = nib.load(str(mask))
    except (OSError, nib.filebasedimages.ImageFileError) as error:
        raise NoDataError(f"Mask {mask} cannot be read: {error}.") from None
    bold_img = nib.load(str(run.bold))
    if mask_img.shape[:3] != bold_img.shape[:3] or not np.allclose(mask_img.affine, bold_img.affine, atol=1e-3):
        option = "--mask " if given else ""
        raise UsageError(
            f"{option}{mask} is on another grid than {run.bold.name} "
            f"(shape {mask_img.shape[:3]} vs {bold_img.shape[:3]}); give a mask in the BOLD's space."
        )


def _prepare(plan, bold, settings):
    """Mask and smooth one run's BOLD series (a path, or an image read ahead)."""
    model = settings.model
    return glm.prepare_run(bold, plan.run.mask, model.smoothing_fwhm, settings.nprocs)


def _fit(plan, masked, settings):
    """Fit one prepared run with ``--nprocs`` threads."""
    return glm.fit_masked(
        masked, plan.design, plan.contrasts, noise_model=settings.model.noise_model,
        name=plan.run.name, n_threads=settings.nprocs,
    )


def run_participant(settings) -> None:
    """Fit every selected run, combine each subject's runs, write it all."""
    discover.check_bids_dir(settings.bids_dir)
    if not settings.skip_bids_validation:
        discover.validate_input_dir(settings.bids_dir)
    selection = discover.select_runs(settings)
    if settings.mask is not None and not settings.mask.is_file():
        raise NoDataError(f"--mask {settings.mask} does not exist.")
    if settings.mask is not None:
        selection = _with_mask(selection, settings.mask)
    plans, notes = plan_runs(selection, settings)
    for note in notes:
        logger.warning(note)
    logger.info(
        "%d runs of %d subjects (%s), space %s",
        len(plans), len({p.run.subject for p in plans}),
        ", ".join(sorted({p.run.task for p in plans})), selection.space or "none",
    )

    if settings.boilerplate_only:
        _write_boilerplate(settings, plans, None)
        return
    outputs.write_dataset_files(settings.bids_dir, settings.output_dir)

    expected = defaultdict(int)
    for plan in plans:
        expected[(plan.run.subject, plan.run.task)] += 1
    collected = defaultdict(list)
    for index, (plan, result, seconds) in enumerate(_fit_all(plans, settings), start=1):
        logger.info("[%d/%d] %s fitted in %.1f s", index, len(plans), plan.run.name, seconds)
        for note in result.warnings:
            logger.warning(note)
            notes.append(note)
        write_run(plan, result, settings)
        key = (plan.run.subject, plan.run.task)
        collected[key].append((plan, result))
        if len(collected[key]) == expected[key]:
            subject = combine_subject(collected.pop(key), settings)
            write_subject(subject, settings)
            logger.info("sub-%s task-%s: fixed effects over %d run(s) written",
                        subject.subject, subject.task, len(subject.runs))
    _write_boilerplate(settings, plans, None)
    if settings.reports:
        _write_reports(settings, plans, notes)


def _with_mask(selection, mask):
    from dataclasses import replace

    return replace(selection, runs=tuple(replace(run, mask=mask) for run in selection.runs))


def _fit_all(plans, settings):
    """Yield (plan, result, seconds) for every run, in order.

    Runs are fitted one at a time, each on ``--nprocs`` threads (voxels and volumes
    are independent), so memory stays that of about two runs whatever the dataset's
    size. With more than one core, the next run's series is read (decompressed)
    while the current one is fitted.
    """
    if settings.nprocs <= 1:
        for plan in plans:
            start = time.perf_counter()
            result = _fit(plan, _prepare(plan, plan.run.bold, settings), settings)
            yield plan, result, time.perf_counter() - start
        return
    with ThreadPoolExecutor(max_workers=1) as reader:
        following = reader.submit(glm.read_bold, plans[0].run.bold)
        for index, plan in enumerate(plans):
            start = time.perf_counter()
            bold = following.result()
            following = None  # the future would keep the series alive
            if index + 1 < len(plans):
                following = reader.submit(glm.read_bold, plans[index + 1].run.bold)
            read = time.perf_counter()
            masked = _prepare(plan, bold, settings)
            del bold  # only the masked series is kept while fitting
            prepared = time.perf_counter()
            result = _fit(plan, masked, settings)
            logger.debug(
                "%s: waited %.1f s for the read-ahead, masked and smoothed %d voxels in %.1f s, "
                "GLM and contrasts in %.1f s", plan.run.name, read - start, masked.series.shape[1],
                prepared - read, time.perf_counter() - prepared,
            )
            del masked
            yield plan, result, time.perf_counter() - start


def write_run(plan, result, settings) -> None:
    """Write a run's design and contrast maps with their sidecars."""
    run, output_dir, model = plan.run, settings.output_dir, settings.model
    entities = outputs.run_entities(run)
    design_tsv = outputs.build("design", extension=".tsv", **entities)
    outputs.write_tsv(plan.design.matrix, output_dir / design_tsv)
    outputs.write_json(
        {
            "RepetitionTime": run.tr,
            "StartTime": run.start_time,
            "Columns": [str(c) for c in plan.design.matrix.columns],
            "Conditions": list(plan.design.conditions),
            "Confounds": list(plan.design.confounds),
            "Precomputed": plan.design.precomputed,
            "ConfoundsOption": list(model.confounds),
            "VolumesExcluded": (
                0 if plan.design.sample_mask is None
                else run.n_volumes - len(plan.design.sample_mask)
            ),
            "HRFModel": model.hrf_model,
            "DriftModel": model.drift_model or "none",
            "HighPass": model.high_pass if model.drift_model == "cosine" else None,
            "DriftOrder": model.drift_order if model.drift_model == "polynomial" else None,
            "Sources": [outputs.source(p, output_dir) for p in (run.design, run.events, run.confounds) if p],
        },
        output_dir / outputs.build("design", extension=".json", **entities),
    )
    sources = [run.bold, run.mask, run.events, run.confounds if not plan.design.precomputed else None,
               run.design, design_tsv]
    sources = [outputs.source(p, output_dir) for p in sources if p is not None]
    for maps in result.contrasts:
        sidecar = outputs.contrast_sidecar(maps, model, sources)
        outputs.write_statmaps("run_statmap", maps, output_dir, sidecar, space=run.space, **entities)


def combine_subject(fitted, settings) -> SubjectResult:
    """Fixed effects over one subject's runs of one task."""
    plans = [p for p, _ in fitted]
    results = [r for _, r in fitted]
    run = plans[0].run
    # one grid for all runs: checked by plan_runs before anything was written
    masks = [r.mask for r in results]
    mask = results[0].mask if len(results) == 1 else combine.intersect_masks(masks)
    labels = list(dict.fromkeys(m.contrast.label for r in results for m in r.contrasts))
    contrasts, runs_of = [], {}
    for label in labels:
        having = [(p.run, r.maps_of(label)) for p, r in fitted if r.maps_of(label) is not None]
        runs_of[label] = tuple(run for run, _ in having)
        contrasts.append(combine.combine_runs(
            [maps for _, maps in having], mask, settings.model.precision_weighted))
    return SubjectResult(
        subject=run.subject, task=run.task, space=run.space, mask=mask,
        runs=tuple(p.run for p in plans), contrasts=tuple(contrasts), runs_of=runs_of,
    )


def write_subject(subject, settings) -> None:
    """Write a subject's fixed-effects maps, sidecars and mask."""
    output_dir, model = settings.output_dir, settings.model
    common = {"subject": subject.subject, "task": subject.task, "space": subject.space}
    mask_path = outputs.build("subject_mask", extension=".nii.gz", **common)
    outputs.write_nifti(subject.mask, output_dir / mask_path)
    run_masks = [outputs.source(run.mask, output_dir) for run in subject.runs if run.mask is not None]
    outputs.write_json(
        outputs.mask_sidecar("Intersection of the masks of the subject's runs", subject.space, run_masks),
        output_dir / outputs.build("subject_mask", extension=".json", **common),
    )
    for maps in subject.contrasts:
        run_files = [
            outputs.build("run_statmap", contrast=maps.contrast.label, stat=stat, extension=".nii.gz",
                          space=run.space, **outputs.run_entities(run))
            for run in subject.runs_of[maps.contrast.label] for stat in ("effect", "variance")
        ]
        own = outputs.build("subject_statmap", contrast=maps.contrast.label, stat="effect",
                            extension=".nii.gz", **common)
        if own in run_files:
            # A single run named by sub and task only: its run maps are the subject maps,
            # whose sidecars get the subject level's FixedEffects key.
            for stat in STATS:
                path = output_dir / outputs.build("subject_statmap", contrast=maps.contrast.label,
                                                  stat=stat, extension=".json", **common)
                sidecar = json.loads(path.read_text())
                sidecar["FixedEffects"] = {"PrecisionWeighted": model.precision_weighted, "NumberOfRuns": 1}
                outputs.write_json(sidecar, path)
            continue
        sources = [outputs.source(f, output_dir) for f in [*run_files, mask_path]]
        sidecar = outputs.contrast_sidecar(maps, model, sources)
        sidecar["FixedEffects"] = {
            "PrecisionWeighted": model.precision_weighted,
            "NumberOfRuns": len(subject.runs_of[maps.contrast.label]),
        }
        outputs.write_statmaps("subject_statmap", maps, output_dir, sidecar, **common)


def run_group(settings) -> None:
    """Test every task, space and contrast across subjects; write ``group/``."""
    output_dir = settings.output_dir
    found = outputs.find_subject_maps(output_dir) if output_dir.is_dir() else []
    if not found:
        raise NoDataError(
            f"OUTPUT_DIR {output_dir} has no subject-level maps; run the participant level first."
        )
    if settings.participant_label:
        found = [f for f in found if f["subject"] in settings.participant_label]
    if settings.task:
        found = [f for f in found if f["task"] in settings.task]
    if settings.space:
        wanted = None if settings.space.lower() == "none" else settings.space
        found = [f for f in found if f["space"] == wanted]
    subjects = sorted({f["subject"] for f in found})
    if len(subjects) < 2:
        raise NoDataError(
            f"The group level needs at least two subjects with maps in {output_dir}; "
            f"found {len(subjects)}{' (sub-' + subjects[0] + ')' if subjects else ''}."
        )
    groups = defaultdict(list)
    for item in found:
        groups[(item["task"], item["space"], item["contrast"])].append(item)
    testable = {}
    for (task, space, label), items in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if len(items) < 2:
            logger.warning(
                "task-%s contrast-%s has maps for one subject only (sub-%s), so it is not tested; "
                "run the participant level for the other subjects first.", task, label, items[0]["subject"])
            continue
        for item in items:
            for key in ("variance", "sidecar", "mask"):
                if not item[key].is_file():
                    raise NoDataError(
                        f"{item[key]} is missing; rerun the participant level for sub-{item['subject']}.")
        if not combine.same_grid([item["mask"] for item in items]):
            raise NoDataError(
                f"The subjects' task-{task} masks in {output_dir} are on different voxel grids; "
                "rerun the participant level with one --space for all subjects."
            )
        testable[(task, space, label)] = items
    if not testable:
        raise NoDataError("No contrast has maps for two or more subjects; nothing to test at the group level.")
    if settings.boilerplate_only:
        _write_boilerplate(settings, None, groups)
        return
    for (task, space, label), items in testable.items():
        write_group(task, space, label, items, settings)
        logger.info("task-%s contrast-%s: group %s over %d subjects written", task, label,
                    settings.group_model, len(items))
    outputs.write_dataset_files(settings.bids_dir, output_dir)
    _write_boilerplate(settings, None, groups)
    if settings.reports:
        _write_group_report(settings, groups)


#: First-level settings that the group sidecars carry over from the subjects' sidecars.
MODEL_KEYS = ("SmoothingFWHM", "NoiseModel", "HRFModel", "DriftModel", "HighPass")


def write_group(task, space, label, items, settings) -> None:
    """Compute and write one group-level contrast."""
    output_dir = settings.output_dir
    sidecars = [json.loads(item["sidecar"].read_text()) for item in items]
    mask = combine.intersect_masks([item["mask"] for item in items])
    model_keys = {key: sidecars[0].get(key) for key in MODEL_KEYS}
    differing = [key for key in MODEL_KEYS if any(s.get(key) != model_keys[key] for s in sidecars)]
    if differing:
        logger.warning(
            "The subjects of task-%s contrast-%s were fitted with different %s; rerun the "
            "participant level with the same options for all of them.", task, label, ", ".join(differing))
    name = sidecars[0].get("Contrast", {}).get("Name", label)
    contrast = combine.GroupContrast(name, label, {"intercept": 1.0})
    effects = [item["effect"] for item in items]
    if settings.group_model == "fixed":
        dofs = [float(s["DegreesOfFreedom"]) for s in sidecars]
        maps = combine.group_fixed_effects(effects, [i["variance"] for i in items], dofs, mask, contrast)
        model_name = "fixed effects"
    else:
        maps = combine.one_sample_test(effects, mask, contrast)
        model_name = "one-sample t-test"
    common = {"task": task, "space": space}
    mask_path = outputs.build("group_mask", extension=".nii.gz", **common)
    outputs.write_nifti(mask, output_dir / mask_path)
    outputs.write_json(
        outputs.mask_sidecar(
            "Intersection of the subjects' fixed-effects masks", space,
            [outputs.source(item["mask"], output_dir) for item in items],
        ),
        output_dir / outputs.build("group_mask", extension=".json", **common),
    )
    sources = [outputs.source(p, output_dir) for p in effects]
    if settings.group_model == "fixed":
        sources += [outputs.source(i["variance"], output_dir) for i in items]
    sidecar = {
        "Sources": sources + [outputs.source(mask_path, output_dir)],
        "Contrast": {"Name": name, "Test": "t", "Weights": {"intercept": 1.0}},
        "DegreesOfFreedom": maps.dof,
        **{key: value for key, value in model_keys.items() if key not in differing},
        "GroupModel": model_name,
        "NumberOfSubjects": len(items),
        "Subjects": [item["subject"] for item in items],
    }
    outputs.write_statmaps("group_statmap", maps, output_dir, sidecar, **common)


def _write_boilerplate(settings, plans, groups):
    """Write the methods boilerplate (``logs/CITATION.*``)."""
    from . import boilerplate

    boilerplate.write(settings, plans, groups)


def _write_reports(settings, plans, notes):
    """Write each subject's HTML report and its figures."""
    from . import report

    report.write_participant_reports(settings, plans, notes)


def _write_group_report(settings, groups):
    """Write the group's HTML report and its figures."""
    from . import report

    report.write_group_report(settings, groups)
