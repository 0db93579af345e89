"""A subject's page: for each task, its runs at a glance, their quality, and each contrast.

The facts come from the records of the plan (:class:`~bids_fixedfx.plan.SubjectPlan`,
its :class:`~bids_fixedfx.plan.RunPlan` and :class:`~bids_fixedfx.discover.Run`), the
maps from OUTPUT_DIR under the names :mod:`bids_fixedfx.naming` gives them. The page
stays short with many runs: runs are rows of one table whose thumbnails expand, motion
and masks are one figure each, and each contrast is one figure with its details folded.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import naming, outputs
from ..notes import KINDS
from ..sidecars import StatmapSidecar
from . import backgrounds, figures, quality, slices
from .corrected import corrected_section, tdp_section
from .figures import MapView
from .pages import EarlierSet, Files, citation_link, earlier_sections, provenance, subject_page
from .tables import cluster_table, listed

#: Axial slices of a contrast's map.
N_CUTS = 4


def plural(count: int, noun: str) -> str:
    """``1 run``, ``12 runs``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def is_template(space) -> bool:
    """Whether a space is a template nilearn knows (MNI), where MNI coordinates apply."""
    return bool(space) and str(space).startswith("MNI")


def write_subject_report(settings, subject: str, plans, notes, files: Files | None = None, estimator: str = "meta",
                         earlier=None):
    """Draw one subject's figures and write its page (``sub-<subject>.html``).

    Parameters
    ----------
    settings : Settings
    subject : str
        The label, without ``sub-``.
    plans : sequence of SubjectPlan
        The subject's plans (one per task).
    notes : sequence of Note
        Notes about this subject, or about every subject.
    files : Files or None
        Shared by the pages of one run (templates compiled once).
    estimator : str
        How the subject node combined the runs: ``meta`` (fixed effects) or ``glm`` (a
        one-sample t-test).
    earlier : list of EarlierSet, optional
        The sections of earlier jobs to keep (default: :func:`earlier_sets` of the others than
        these plans').

    Returns
    -------
    path : Path
    """
    files = files or Files(settings.output_dir)
    tasks = [task_section(settings, plan, [n for n in notes if n.about(subject, plan.task)], files, estimator)
             for plan in plans]
    # the earlier page read and this one written in one turn: a job of the subject's other task
    # beside this one keeps this job's section, and this job keeps that job's
    with outputs.folder_lock(settings.output_dir) if earlier is None else nullcontext():
        if earlier is None:
            earlier = earlier_sets(settings.output_dir, subject, {task["anchor"] for task in tasks})
        page = files.render(
            "subject.html.jinja",
            subject=subject,
            tasks=tasks,
            earlier=earlier,
            n_runs=len({p.run.name for plan in plans for p in plan.runs}),  # a run fitted in two spaces is one run
            combined=any(len(plan.runs) > 1 for plan in plans),  # a task's runs combined (not a single run's maps)
            citation=citation_link(files),
            provenance=provenance(settings),
        )
        return files.write_page(subject_page(subject), page)


def section_anchor(task, space) -> str:
    """The id of a task and space's section of a subject's page (``task-x-space-MNI...``)."""
    return "-".join(["task", task] + (["space", space] if space else []))


def keep_earlier_sections(settings, subject: str, anchors) -> Path | None:
    """Rewrite a subject's page with only the sections of other tasks and spaces than this
    job's (``anchors``) that earlier jobs wrote and that are still written, when a job writes
    no report of its own (``--no-reports``); remove the page when none is left.

    Returns
    -------
    path : Path or None
        The page rewritten, or None when it was removed (or there was none).
    """
    with outputs.folder_lock(settings.output_dir):  # in one turn (see write_subject_report)
        earlier = earlier_sets(settings.output_dir, subject, set(anchors))
        if earlier:
            return write_subject_report(settings, subject, [], [], earlier=earlier)
        page = settings.output_dir / subject_page(subject)
        outputs.remove_files(settings.output_dir, [subject_page(subject)] if page.is_file() else [])
    return None


def earlier_sets(output_dir, subject: str, anchors) -> list[EarlierSet]:
    """The sections of the subject's page in OUTPUT_DIR for other tasks or spaces than this
    job's (``anchors``) whose maps, figures and tables are all still there: a subject run by
    task or by space in separate jobs keeps one page of them all.

    Parameters
    ----------
    output_dir : Path
    subject : str
    anchors : set of str
        The sections this job writes.

    Returns
    -------
    earlier : list of EarlierSet
    """
    output_dir = Path(output_dir)
    try:
        text = (output_dir / subject_page(subject)).read_text(encoding="utf-8")
    except (OSError, ValueError):  # no page yet, or not one of ours
        return []
    return earlier_sections(output_dir, text, anchors,
                            lambda task, space: _has_effect_maps(output_dir, subject, task, space))


def _has_effect_maps(output_dir, subject, task, space) -> bool:
    """Whether OUTPUT_DIR still holds a subject's effect maps of ``task`` and ``space``."""
    return any(not naming.is_temporary(p.name) and naming.parse(p).get("stat") == "effect"
               for p in outputs.existing_set(output_dir, f"sub-{subject}", subject=subject, task=task, space=space))


def task_section(settings, plan, notes, files: Files, estimator: str = "meta") -> dict:
    """What the page shows of one subject and task (a dict for the template)."""
    output_dir, threshold = settings.output_dir, settings.report_threshold
    common = {"subject": plan.subject, "task": plan.task, "space": plan.space}
    anchor = section_anchor(plan.task, plan.space)
    form = plan.runs[0].form
    template = is_template(plan.space)
    if form is None:
        mask_volume = slices.load(output_dir / naming.build("subject_mask", extension=".nii.gz", **common))
        mask = mask_volume.data > 0
        background, what = backgrounds.run_background(plan.runs[0].run.bold)
        grey = backgrounds.on_grid(background, mask_volume, mask)
        underlay = f"over {what} of {_short_name(plan.runs[0].run)}" if grey is not None else "on black"
        run_masks = [slices.load(p.run.mask).data if p.run.mask is not None else None for p in plan.runs]
        fits = quality.mask_fits(run_masks, mask)
        view = MapView(grey, mask, mask_volume, threshold, 1.25 * threshold, template)
        fit_view, r_squares = _r_square_maps(output_dir, plan, view)
    else:  # a surface or CIFTI space: maps on the mesh, peak vertices (report.surfaces); no R² slices
        run_masks, fits, view, underlay = [], [None] * len(plan.runs), None, ""
        fit_view, r_squares = None, _surface_r_squares(output_dir, plan)
    from ..surface import run_model

    noise_model = run_model(plan.runs[0].run, settings.model).noise_model
    runs = [_run_row(p, fit, files, anchor) | {"r_square": _r_square(p, r2, fit_view, files, noise_model)}
            for p, fit, r2 in zip(plan.runs, fits, r_squares)]
    section = {
        "task": plan.task,
        "space": plan.space,
        "anchor": anchor,
        "template": template,
        "model": _model_rows(settings, plan, estimator),
        "conditions": _conditions(plan),
        "contrasts_table": _contrast_weights(plan),
        "confounds": _confounds(plan),
        "runs": runs,
        "left_out": _left_out(plan, notes),
        "warnings": _warnings(notes),
        "motion": _motion_figure(plan, runs, files, common),
        "coverage": _coverage_figure(view, plan, run_masks, files, common) if form is None else None,
        "contrasts": [],
        "f_tests": [],
    }
    for label, name in _contrast_labels(plan).items():
        if form is None:
            section["contrasts"].append(_contrast(settings, plan, label, name, view, files, anchor, underlay))
        else:
            section["contrasts"].append(_surface_contrast(settings, plan, label, name, files, anchor))
    if form is None:  # (a surface's F maps are in its files only)
        section["f_tests"] = [_f_test(settings, plan, label, name, view, files, anchor, underlay)
                              for label, name in _contrast_labels(plan, f_tests=True).items()]
    return section


# ----------------------------------------------------------------------------
# runs


def _short_name(run) -> str:
    """A run's entities besides subject and task (``ses-1_run-02``), or its task."""
    return naming.run_name([(k, v) for k, v in run.entities if k not in ("sub", "task")]) or run.task


def _weight_rows(contrasts) -> list:
    """(name, weights) of each row of each contrast: a t contrast is one row, an F
    contrast one row per test it joins (``anyTask (F, 1 of 2)``)."""
    rows = []
    for contrast in contrasts:
        matrix = np.atleast_2d(np.asarray(contrast.vector, dtype=float))
        if len(matrix) == 1:
            rows.append((contrast.name, matrix[0]))
        else:
            rows.extend((f"{contrast.name} (F, {i} of {len(matrix)})", row) for i, row in enumerate(matrix, start=1))
    return rows


def _run_row(run_plan, fit, files: Files, anchor: str) -> dict:
    run, design = run_plan.run, run_plan.design
    motion = quality.framewise_displacement(run)
    vif = quality.variance_inflation(design)
    kept = None if design.sample_mask is None else np.isin(np.arange(run.n_volumes), design.sample_mask)
    censored = None if kept is None else ~kept
    contrasts = _weight_rows(run_plan.contrasts)
    png = figures.design(
        design.matrix, design.conditions, design.confounds, contrasts, vif,
        quality.regressor_correlations(design), censored, f"{run.name}: design, contrasts, correlations",
    )
    figure = files.figure(
        naming.build_run("run_figure", run, space=None, desc="design", suffix="matrix", extension=".png"), png,
        f"Design matrix, contrast weights and regressor correlations of {run.name}",
        "Design matrix (columns scaled to their largest value; conditions in blue) with the contrast weights "
        "above its columns; correlations between conditions and confounds, and their variance inflation "
        "factors (VIF, red above 5).",
    )
    condition_vif = [vif[c] for c in design.conditions if c in vif]
    return {
        "name": run.name,
        "label": _short_name(run),
        "anchor": f"{anchor}-{_short_name(run)}",
        "tr": run.tr,
        "n_volumes": run.n_volumes,
        "n_kept": run.n_volumes if design.sample_mask is None else len(design.sample_mask),
        "events": design.condition_counts if not design.precomputed else None,
        "n_confounds": len(design.confounds),
        "dof": run_plan.dof,
        "motion": motion,
        "censored": censored,
        "fit": fit,
        "surface": run.is_surface,
        "max_vif": max(condition_vif) if condition_vif else None,
        "vif_high": bool(condition_vif) and max(condition_vif) > quality.VIF_LIMIT,
        "fd_high": motion is not None and motion.mean > quality.FD_LIMIT,
        "figure": figure,
    }


def _r_square_maps(output_dir, plan, view):
    """The runs' R² maps (None where a run has none on the subject's grid) and the view that draws
    them: from 0 to the largest 99th percentile of the runs, rounded up to a tenth."""
    maps = []
    for run_plan in plan.runs:
        path = output_dir / naming.build_run("run_fit", run_plan.run, extension=".nii.gz")
        volume = slices.load(path) if path.is_file() else None
        maps.append(volume.data if volume is not None and volume.same_grid(view.grid) else None)
    tops = [float(np.percentile(np.nan_to_num(m[view.mask]), 99)) for m in maps if m is not None]
    vmax = float(np.clip(np.ceil(max(tops + [0.0]) * 10) / 10, 0.1, 1.0))
    return replace(view, threshold=0.0, vmax=vmax, template=False), maps


def _surface_r_squares(output_dir, plan) -> list:
    """The runs' R² values in the subject's vertex mask (None where a run's map is not there);
    a surface's R² maps are summed up in the runs table, not drawn."""
    from ..errors import FixedFxError
    from ..surface import read_map

    form = plan.runs[0].form
    mask_path = outputs.map_paths("subject_mask", form, subject=plan.subject, task=plan.task, space=plan.space)[0]
    try:
        inside = np.asarray(read_map(output_dir / mask_path).dataobj).ravel() > 0
    except FixedFxError:
        return [None] * len(plan.runs)
    values = []
    for run_plan in plan.runs:
        path = outputs.map_paths("run_fit", run_plan.form, space=run_plan.run.space,
                                 **naming.run_entities(run_plan.run))[0]
        try:
            data = np.asarray(read_map(output_dir / path).dataobj).ravel()
        except FixedFxError:
            data = None
        values.append(data[inside] if data is not None and data.shape == inside.shape else None)
    return values


def _r_square(run_plan, data, view: MapView | None, files: Files, noise_model: str = "ar1") -> dict | None:
    """A run's median R² in the subject's mask and its figure (a thumbnail in the runs table);
    ``view`` None: ``data`` holds the subject mask's vertices, which are not drawn."""
    if data is None:
        return None
    if view is None:
        return {"median": float(np.median(np.nan_to_num(data))) if data.size else float("nan"), "figure": None}
    run = run_plan.run
    how = ("on the whitened data (a pseudo-R² with AR(1), as nilearn's r_square)" if noise_model == "ar1"
           else "the plain R² of the OLS fit, as nilearn's r_square")
    figure = files.figure(
        naming.build_run("run_figure", run, desc="rsquared", suffix="statmap", extension=".png"),
        figures.r_square(view, data, slices.even_cuts(view.box, N_CUTS), f"{run.name}: R-squared"),
        f"R² map of {run.name}",
        f"R² of each voxel: the share of the variance of the run's scaled BOLD series that its model "
        f"(conditions, confounds, drift) explains, {how}; 0 to {view.vmax:g}, one scale for the task's runs. "
        "A map low everywhere, unlike the other runs', points to a run or design to check.",
    )
    return {"median": float(np.median(np.nan_to_num(data[view.mask]))), "figure": figure}


def _left_out(plan, notes) -> list[dict]:
    """Runs of this subject and task left out of its maps, with the reason."""
    rows = [{"name": left.run.name, "reason": left.reason} for left in plan.left_out]
    known = {row["name"] for row in rows}
    rows += [{"name": note.run, "reason": note.text} for note in notes
             if note.kind == "run-left-out" and note.run and note.run not in known]
    return rows


def _warnings(notes) -> list[dict]:
    """The notes, grouped by kind (what each kind means, and its texts)."""
    grouped = defaultdict(list)
    for note in notes:
        grouped[note.kind].append(note.text)
    return [{"kind": kind, "meaning": KINDS[kind], "texts": texts} for kind, texts in grouped.items()]


def _motion_figure(plan, runs, files: Files, common):
    if all(row["motion"] is None for row in runs):
        return None
    png = figures.motion([(row["label"], row["motion"], row["censored"]) for row in runs],
                         f"Framewise displacement of the runs of task {plan.task}")
    return files.figure(
        naming.build("subject_figure", desc="fd", suffix="motion", extension=".png", **{**common, "space": None}),
        png, f"Framewise displacement of each run of task {plan.task}",
        f"Framewise displacement (FD) of each volume, from the runs' confounds files, with the "
        f"{quality.FD_LIMIT:g} mm line; volumes left out of the fit are ticked in red.",
    )


def _coverage_figure(view, plan, run_masks, files: Files, common):
    known = [m for m in run_masks if m is not None and m.shape == view.mask.shape]
    if len(known) < 2:
        return None
    count = np.sum([m > 0 for m in known], axis=0)
    view = replace(view, mask=count > 0)  # every run's voxels shown, those outside the subject's mask too
    cuts = coverage_cuts(count, len(known), view.box)
    png = figures.coverage(view, count, len(known), cuts, f"Masks of the {len(known)} runs of task {plan.task}")
    return files.figure(
        naming.build("subject_figure", desc="coverage", suffix="mask", extension=".png", **common), png,
        f"How many run masks cover each voxel, task {plan.task}",
        "Voxels in every run's mask form the subject's mask, where the maps are computed; "
        "voxels in only some runs' masks are left out of it.",
    )


def coverage_cuts(count, n_runs, box, n_cuts=5) -> list[int]:
    """The axial slices of the masks' figure: through the most voxels that only some runs' masks
    cover (``0 < count < n_runs``), evenly spaced ones where none do (evenly spaced slices alone
    missed a rim of them at the top of the brain, and the figure looked all in agreement)."""
    return slices.choose_cuts(((count > 0) & (count < n_runs)).astype(float), 0.5, n_cuts, box)


# ----------------------------------------------------------------------------
# summary


def _conditions(plan) -> dict:
    counts = defaultdict(int)
    for run_plan in plan.runs:
        for condition, count in run_plan.design.condition_counts.items():
            counts[condition] += count
    return dict(counts)


def _contrast_labels(plan, f_tests=False) -> dict:
    """The contrasts (label -> name) that have subject maps; with ``f_tests``, the runs' F
    tests instead, whose maps are the runs' alone (the contrasts table says so)."""
    labels = {}
    for run_plan in plan.runs:
        for contrast in run_plan.contrasts:
            if (contrast.test == "F") == f_tests:
                labels.setdefault(contrast.label, contrast.name)
    return labels


def _f_test(settings, plan, label, name, view, files: Files, anchor, underlay: str) -> dict:
    """A run F test: each run's z map (from its F map: the runs' maps are not combined), on
    the slices where the runs' z maps peak, with each run's peak z."""
    threshold = settings.report_threshold
    runs = []
    for run_plan in plan.runs:
        if any(c.label == label and c.test == "F" for c in run_plan.contrasts):
            path = settings.output_dir / naming.build_run("run_statmap", run_plan.run, contrast=label, stat="z",
                                                          extension=".nii.gz")
            if path.is_file():  # an F test's z is one-sided: below 0 is p above 0.5, not an effect of opposite sign
                runs.append((_short_name(run_plan.run), np.clip(np.nan_to_num(slices.load(path).data), 0.0, None)))
    peaks = [float(np.max(np.nan_to_num(z), initial=0.0)) for _, z in runs]
    section = {"name": name, "label": label, "anchor": f"{anchor}-contrast-{label}", "figure": None,
               "peaks": [(run, peak) for (run, _), peak in zip(runs, peaks)]}
    if runs:
        largest = max(peaks)
        cuts = slices.choose_cuts(runs[peaks.index(largest)][1], threshold, N_CUTS, view.box)
        shown = f"z > {threshold:g}"
        common = {"subject": plan.subject, "task": plan.task, "space": plan.space, "contrast": label}
        section["figure"] = files.figure(
            naming.build("subject_figure", desc="runs", suffix="statmap", extension=".png", **common),
            figures.map_grid(replace(view, vmax=max(largest, 1.25 * threshold, 1.0)), runs, cuts,
                             f"{name}: each run's F test as z (same slices and colour scale)", signed=False),
            f"z maps of the F test {name} in each run, {shown}",
            f"z of each run's F statistic, {shown} (uncorrected, for display), {underlay}.",
        )
    return section


def _contrast_weights(plan) -> list[dict]:
    """Each contrast's numeric weights (those of its first run; the runs' columns may differ)."""
    from ..boilerplate import format_weights

    rows = {}
    for run_plan in plan.runs:
        for contrast in run_plan.contrasts:
            rows.setdefault(contrast.label, {
                "name": contrast.name, "label": contrast.label,
                "weights": contrast.weights, "expression": format_weights(contrast.weights),
                "n_runs": sum(1 for p in plan.runs if any(c.label == contrast.label for c in p.contrasts)),
                "f_test": contrast.test == "F",  # no subject maps: a section of the runs' maps (volumes)
            })
    return list(rows.values())


def _confounds(plan) -> dict:
    """The confound columns of the runs' designs: those of every run, and per run if they differ."""
    per_run = [tuple(p.design.confounds) for p in plan.runs]
    return {"common": list(per_run[0]) if len(set(per_run)) == 1 else None,
            "union": list(dict.fromkeys(c for columns in per_run for c in columns))}


#: What a map's values belong to, by the form of its data (a volume's: None).
_ELEMENT = {None: "voxel", "gifti": "vertex", "cifti": "grayordinate"}


def _model_rows(settings, plan, estimator="meta") -> list[tuple[str, str]]:
    from ..surface import run_model

    model = run_model(plan.runs[0].run, settings.model)
    runs = [p.run for p in plan.runs]
    if model.drift_model == "cosine":
        drift = f"cosine, high-pass {model.high_pass:g} Hz"
    elif model.drift_model == "polynomial":
        drift = f"polynomial of order {model.drift_order}"
    else:
        drift = "none"
    if plan.runs[0].form is not None:
        mask = "every vertex whose series is finite and not constant (the surface mask rule)"
    elif settings.mask is not None:
        mask = f"--mask {settings.mask.name}"
    elif all(run.mask is not None for run in runs):
        mask = "each run's brain mask from the derivatives"
    elif any(run.mask is not None for run in runs):
        mask = "the derivatives' brain mask where present, else computed by nilearn"
    else:
        mask = "computed by nilearn from the BOLD series"
    return [
        ("Space", plan.space or "none (files without a space entity)"),
        ("Data", "preprocessed BOLD" if all(r.preprocessed for r in runs) else "raw BOLD (not preprocessed)"),
        ("Mask", mask),
        ("HRF model", model.hrf_model if model.hrf_model != "none" or not model.convolution
         else f"{', '.join(model.convolution)} (the model's Convolve transformation)"),
        ("Drift model", drift),
        ("Confounds", " ".join(_confounds(plan)["union"]) or "none"),
        ("Noise model", "AR(1)" if model.noise_model == "ar1" else "OLS"),
        ("Smoothing", f"{model.smoothing_fwhm:g} mm FWHM" if model.smoothing_fwhm else "none"),
        ("Signal scaling", f"percent signal change (each {_ELEMENT[getattr(plan.runs[0].form, 'kind', None)]}'s mean)"),
        ("Fixed effects", "precision-weighted" if model.precision_weighted else "unweighted (nilearn's default)")
        if estimator == "meta" else ("Subject maps", "a one-sample t-test across the runs or sessions (OLS)"),
        ("Figure threshold", f"|z| > {settings.report_threshold:g}, uncorrected, for display"),
    ]


# ----------------------------------------------------------------------------
# contrasts


def _contrast(settings, plan, label, name, view, files: Files, anchor, underlay: str) -> dict:
    output_dir, threshold = settings.output_dir, settings.report_threshold
    common = {"subject": plan.subject, "task": plan.task, "space": plan.space, "contrast": label}
    z_path = naming.build("subject_statmap", stat="z", extension=".nii.gz", **common)
    section = {"name": name, "label": label, "anchor": f"{anchor}-contrast-{label}", "missing": None}
    if not (output_dir / z_path).is_file():
        section["missing"] = z_path.as_posix()
        return section
    sidecar = StatmapSidecar.read(output_dir / naming.build("subject_statmap", stat="z", extension=".json",
                                                             **common))
    z_map = slices.load(output_dir / z_path).data
    run_maps = []
    for run_plan in plan.runs:
        if not any(c.label == label for c in run_plan.contrasts):
            continue
        path = output_dir / naming.build_run("run_statmap", run_plan.run, contrast=label, stat="z",
                                             extension=".nii.gz")
        if path.is_file():
            run_maps.append((_short_name(run_plan.run), slices.load(path).data))
    peak = float(np.max(np.abs(np.nan_to_num(z_map)))) if z_map.size else 0.0
    largest = max([peak] + [float(np.max(np.abs(np.nan_to_num(m)))) for _, m in run_maps])
    view = replace(view, vmax=max(largest, 1.25 * threshold, 1.0))
    cuts = slices.choose_cuts(z_map, threshold, N_CUTS, view.box)
    shown = f"|z| > {threshold:g}"
    section["figure"] = files.figure(
        naming.build("subject_figure", desc="zmap", suffix="statmap", extension=".png", **common),
        figures.stat_map(view, z_map, cuts, f"{name}: {_combined(sidecar)} over {plural(len(run_maps) or 1, 'run')}"),
        f"{_combined(sidecar, adjective=True)} z map of {name}, {shown}",
        f"z map, {shown} (uncorrected, for display), {underlay}"
        + ("; projections show the strongest value along each axis." if view.template else "."),
    )
    section["runs_figure"] = None
    if len(run_maps) > 1:
        section["runs_figure"] = files.figure(
            naming.build("subject_figure", desc="runs", suffix="statmap", extension=".png", **common),
            figures.map_grid(view, run_maps, cuts, f"{name}: each run (same slices and colour scale)"),
            f"z maps of {name} in each run, {shown}", "",
        )
    table = cluster_table(slices.Volume(z_map, view.grid.affine), threshold, view.template)
    tsv_path = naming.build("subject_figure", desc="clusters", suffix="table", extension=".tsv", **common)
    clusters = listed(table, files, tsv_path)
    section["corrected"] = corrected_section(
        settings, "subject_statmap", common, "subject_figure", common, view, files, name)
    section["tdp"] = tdp_section(settings, "subject_statmap", common, "subject_figure", common, view, z_map, files,
                                 name)
    section.update({
        "dof": sidecar.dof,
        "n_runs": (sidecar.combination or {}).get("NumberOfRuns", len(run_maps) or 1),
        "weights": sidecar.contrast.weights,
        "peak": peak,
        "threshold": shown,
        "clusters": clusters,
    })
    return section


def _combined(sidecar, adjective=False) -> str:
    """How the subject node combined its inputs, as the figures say it (``adjective``: before
    "z map", capitalised)."""
    words = sidecar.combined_by
    return words.capitalize().replace("Fixed effects", "Fixed-effects") if adjective else words


def _surface_contrast(settings, plan, label, name, files: Files, anchor) -> dict:
    """A contrast of a surface or CIFTI space: its z map on the mesh (or a note), peak vertices."""
    from .. import outputs
    from . import surfaces

    output_dir, threshold = settings.output_dir, settings.report_threshold
    form = plan.runs[0].form
    common = {"subject": plan.subject, "task": plan.task, "space": plan.space, "contrast": label}
    z_path = outputs.map_paths("subject_statmap", form, stat="z", **common)[0]
    section = {"name": name, "label": label, "anchor": f"{anchor}-contrast-{label}", "missing": None}
    if not (output_dir / z_path).is_file():
        section["missing"] = z_path.as_posix()
        return section
    sidecar = StatmapSidecar.read(output_dir / outputs.map_paths("subject_statmap", form, sidecars=True, stat="z",
                                                                 **common)[0])
    n_runs = (sidecar.combination or {}).get("NumberOfRuns", 1)
    section.update(surfaces.map_section(
        files, output_dir / z_path, form, threshold, f"{name}: {_combined(sidecar)} over {plural(n_runs, 'run')}",
        "subject_figure", common, f"{_combined(sidecar, adjective=True)} z map"))
    section.update({"runs_figure": None, "corrected": None, "tdp": None, "dof": sidecar.dof, "n_runs": n_runs,
                    "weights": sidecar.contrast.weights})
    return section
