"""Reports: each subject's HTML page and the group's, with their figures.

``OUTPUT_DIR/sub-<s>.html`` draws its figures under ``sub-<s>/figures/`` and
``OUTPUT_DIR/group.html`` under ``group/figures/``. Every link is relative to the
page, so the folder can be moved or zipped. The pages are rendered from the Jinja
templates in ``bids_fixedfx/data/report``; the figures are drawn by :mod:`.figures`
from the maps the analysis wrote to OUTPUT_DIR.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import naming, outputs
from .boilerplate import format_weights, software_versions

logger = logging.getLogger("bids_fixedfx")

#: Cluster tables list clusters of at least this many voxels (as nilearn's example does).
CLUSTER_MIN_VOXELS = 20
#: Rows of a cluster table shown in the page; the TSV beside the figures has them all.
MAX_CLUSTER_ROWS = 25


@dataclass(frozen=True)
class Figure:
    """A figure file, as the page links it."""

    src: str  # relative to the page
    alt: str
    caption: str = ""


@dataclass(frozen=True)
class ClusterTable:
    """The rows of nilearn's ``get_clusters_table`` to show, and a link to all of them."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    n_rows: int
    tsv: str | None


def write_participant_reports(settings, plans, notes) -> list[Path]:
    """Write ``sub-<s>.html`` and its figures for every subject of the plans.

    Parameters
    ----------
    settings : Settings
    plans : list of RunPlan
        The runs that were fitted (their maps are in ``settings.output_dir``).
    notes : list of Note
        Warnings raised while processing; each subject's page shows those about it.

    Returns
    -------
    paths : list of Path
        The pages written.
    """
    start = time.perf_counter()
    subjects = list(dict.fromkeys(plan.run.subject for plan in plans))
    jobs = [
        (subject, [p for p in plans if p.run.subject == subject], notes_about(notes, subject))
        for subject in subjects
    ]
    # A worker process takes about as long to start (imports) as a subject's figures take
    # to draw, so processes pay off from two subjects per worker on.
    n_jobs = min(settings.nprocs, len(jobs) // 2)
    if n_jobs > 1:
        from joblib import Parallel, delayed

        paths = Parallel(n_jobs=n_jobs)(delayed(write_subject_report)(settings, *job) for job in jobs)
    else:
        paths = [write_subject_report(settings, *job) for job in jobs]
    logger.info("Reports of %d subjects written in %.1f s", len(paths), time.perf_counter() - start)
    return paths


def notes_about(notes, subject) -> list:
    """The notes about ``subject``, or about no subject in particular (by their fields)."""
    return [note for note in notes if note.about(subject)]


def write_subject_report(settings, subject, plans, notes) -> Path:
    """Draw one subject's figures and write ``OUTPUT_DIR/sub-<subject>.html``.

    Parameters
    ----------
    settings : Settings
    subject : str
        The label, without ``sub-``.
    plans : list of RunPlan
        The subject's runs, every task.
    notes : list of str
        Warnings about this subject (or about every subject).

    Returns
    -------
    path : Path
    """
    output_dir = settings.output_dir
    page = output_dir / f"sub-{subject}.html"
    tasks = [
        _task_section(settings, subject, task, [p for p in plans if p.run.task == task], notes)
        for task in dict.fromkeys(p.run.task for p in plans)
    ]
    html = render(
        "subject.html.jinja",
        title=f"sub-{subject}",
        subject=subject,
        tasks=tasks,
        n_runs=len(plans),
        citation=_citation_link(output_dir),
        provenance=provenance(settings),
    )
    outputs.write_text(html, page)
    return page


def _task_section(settings, subject, task, plans, notes) -> dict:
    output_dir = settings.output_dir
    figures_dir = output_dir / f"sub-{subject}" / "figures"
    background = mean_epi(plans[0].run)
    return {
        "task": task,
        "anchor": f"task-{task}",
        "space": plans[0].run.space,
        "summary": summary(settings, plans),
        "warnings": [note.text for note in notes if note.about(subject, task)],
        "runs": [_run_figures(plan, figures_dir, output_dir) for plan in plans],
        "contrasts": [
            _contrast_section(settings, subject, task, label, name, plans, background, figures_dir)
            for label, name in _contrast_labels(plans).items()
        ],
    }


def _contrast_labels(plans) -> dict:
    labels = {}
    for plan in plans:
        for contrast in plan.contrasts:
            labels.setdefault(contrast.label, contrast.name)
    return labels


def summary(settings, plans) -> dict:
    """What a subject's task summary shows: runs, conditions, confounds and model settings."""
    runs, conditions, confounds = [], {}, []
    for plan in plans:
        run, design = plan.run, plan.design
        counts = design.condition_counts
        runs.append({
            "name": run.name,
            "session": run.session or "–",
            "run": dict(run.entities).get("run", "–"),
            "tr": f"{run.tr:g}",
            "n_volumes": run.n_volumes,
            "events": ", ".join(f"{c} ({n})" for c, n in counts.items())
            if not design.precomputed else "precomputed design",
            "n_confounds": len(design.confounds),
        })
        for condition, count in counts.items():
            conditions[condition] = conditions.get(condition, 0) + count
        confounds += [c for c in design.confounds if c not in confounds]
    contrasts = {}
    for plan in plans:
        for contrast in plan.contrasts:
            contrasts.setdefault(contrast.name, format_weights(contrast.weights))
    return {
        "runs": runs,
        "conditions": conditions,
        "confounds": confounds,
        "model": _model_rows(settings, plans),
        "contrasts": contrasts,
    }


def _model_rows(settings, plans) -> list[tuple[str, str]]:
    model = settings.model
    space = plans[0].run.space
    if model.drift_model == "cosine":
        drift = f"cosine, high-pass {model.high_pass:g} Hz"
    elif model.drift_model == "polynomial":
        drift = f"polynomial of order {model.drift_order}"
    else:
        drift = "none"
    if settings.mask is not None:
        mask = f"--mask {settings.mask.name}"
    elif all(p.run.mask is not None for p in plans):
        mask = "each run's brain mask from the derivatives"
    elif any(p.run.mask is not None for p in plans):
        mask = "the derivatives' brain mask where present, else computed by nilearn"
    else:
        mask = "computed by nilearn from the BOLD series"
    rows = [
        ("Space", space or "none (files without a space entity)"),
        ("Data", "preprocessed BOLD" if all(p.run.preprocessed for p in plans) else "raw BOLD (not preprocessed)"),
        ("Mask", mask),
        ("HRF model", model.hrf_model),
        ("Drift model", drift),
        ("Confounds", " ".join(model.confounds) if model.confounds else "none"),
        ("Noise model", "AR(1)" if model.noise_model == "ar1" else "OLS"),
        ("Smoothing", f"{model.smoothing_fwhm:g} mm FWHM" if model.smoothing_fwhm else "none"),
        ("Signal scaling", "percent signal change (voxel mean)"),
        ("Fixed effects", "precision-weighted" if model.precision_weighted else "unweighted (nilearn's default)"),
        ("Report threshold", f"|z| > {settings.report_threshold:g}, uncorrected"),
    ]
    censored = sum(
        p.run.n_volumes - int(len(p.design.sample_mask)) for p in plans if p.design.sample_mask is not None
    )
    if censored:
        rows.append(("Censored volumes", f"{censored} (left out of the fit by the confound strategy)"))
    return rows


def _run_figures(plan, figures_dir, output_dir) -> dict:
    """Draw a run's design matrix, the correlations of its regressors and its contrast weights."""
    from . import figures

    run, matrix = plan.run, plan.design.matrix
    design = figures.design_matrix(matrix, figures_dir / f"{run.name}_desc-design_matrix.png")
    correlation = figures.design_correlation(matrix, figures_dir / f"{run.name}_desc-correlation_matrix.png")
    weights = None
    if plan.contrasts:
        weights = figures.contrast_matrix(
            plan.contrasts, matrix, figures_dir / f"{run.name}_desc-contrasts_matrix.png"
        )
    return {
        "name": run.name,
        "anchor": run.name,
        "design": Figure(_rel(design, output_dir), f"Design matrix of {run.name}",
                         "Design matrix (each column scaled to unit norm for display)"),
        "correlation": correlation and Figure(
            _rel(correlation, output_dir), f"Correlations of the regressors of {run.name}",
            "Correlations between regressors (without drifts and constant)"),
        "contrasts": weights and Figure(_rel(weights, output_dir), f"Contrast weights of {run.name}",
                                        "Contrast weights"),
    }


def _contrast_section(settings, subject, task, label, name, plans, background, figures_dir) -> dict:
    from . import figures

    output_dir, threshold = settings.output_dir, settings.report_threshold
    space = plans[0].run.space
    common = {"subject": subject, "task": task, "space": space, "contrast": label}
    z_file = output_dir / naming.build("subject_statmap", stat="z", extension=".nii.gz", **common)
    section = {"name": name, "label": label, "anchor": f"task-{task}_contrast-{label}", "missing": None}
    if not z_file.is_file():
        section["missing"] = _rel(z_file, output_dir)
        return section
    sidecar = _read_json(z_file.with_name(z_file.name.replace(".nii.gz", ".json")))
    z_img = load_3d(z_file)
    run_maps = []
    for plan in plans:
        run_file = output_dir / naming.build(
            "run_statmap", contrast=label, stat="z", extension=".nii.gz", space=space,
            **naming.run_entities(plan.run),
        )
        if run_file.is_file():
            run_maps.append((plan.run, load_3d(run_file)))
    vmax = _vmax([z_img] + [img for _, img in run_maps], threshold)
    cuts = figures.cut_coords(z_img)
    stem = naming.build("subject_statmap", stat="z", extension=".nii.gz", **common).name.split("_stat-")[0]
    options = {"bg_img": background, "threshold": threshold, "cuts": cuts, "vmax": vmax}
    fixed = figures.stat_map(z_img, figures_dir / f"{stem}_desc-zmap_statmap.png",
                             title=f"{name}: fixed effects", **options)
    glass = figures.glass_brain(z_img, figures_dir / f"{stem}_desc-glassbrain_statmap.png",
                                threshold=threshold, vmax=vmax, title=f"{name}: fixed effects")
    runs = []
    for run, img in run_maps:
        run_stem = f"{run.name}{f'_space-{space}' if space else ''}_contrast-{label}"
        drawn = figures.stat_map(img, figures_dir / f"{run_stem}_desc-zmap_statmap.png",
                                 title=f"{name}: {_short_run_name(run)}", colorbar=False, **options)
        runs.append(Figure(_rel(drawn, output_dir), f"z map of {name} in {run.name}", run.name))
    shown = f"|z| > {threshold:g}"
    section.update({
        "dof": sidecar.get("DegreesOfFreedom"),
        "n_runs": sidecar.get("FixedEffects", {}).get("NumberOfRuns", len(run_maps)),
        "weights": format_weights(sidecar.get("Contrast", {}).get("Weights", {})),
        "peak": _peak(z_img),
        "threshold": shown,
        "fixed": Figure(_rel(fixed, output_dir), f"Fixed-effects z map of {name}, {shown}",
                        f"Fixed-effects z map, {shown}, over the mean EPI"),
        "glass": Figure(_rel(glass, output_dir), f"Glass brain of the z map of {name}",
                        _glass_caption(space, shown)),
        "runs": runs,
        "clusters": cluster_table(z_img, threshold, figures_dir / f"{stem}_desc-clusters_table.tsv", output_dir),
    })
    return section


def _short_run_name(run) -> str:
    entities = dict(run.entities)
    return "_".join(f"{k}-{v}" for k, v in run.entities if k not in ("sub", "task")) or entities["task"]


def _glass_caption(space, shown) -> str:
    caption = f"Glass brain, {shown}"
    if not (space or "").startswith("MNI"):
        caption += f" (the outline is of the MNI template; this map is in space {space or 'none'})"
    return caption


def write_group_report(settings, groups) -> Path | None:
    """Draw the group maps and write ``OUTPUT_DIR/group.html``.

    Parameters
    ----------
    settings : Settings
    groups : dict
        ``(task, space, contrast label) -> list of subject map records`` as the group
        level found them (:func:`outputs.find_subject_maps`); contrasts with fewer than
        two subjects were not tested and are listed as such.

    Returns
    -------
    path : Path or None
        None when no contrast was tested.
    """
    from . import figures

    start = time.perf_counter()
    output_dir, threshold = settings.output_dir, settings.report_threshold
    figures_dir = output_dir / "group" / "figures"
    tasks, backgrounds = {}, {}
    for (task, space, label), items in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        key = (task, space)
        section = tasks.setdefault(key, {
            "task": task, "space": space, "anchor": f"task-{task}" + (f"_space-{space}" if space else ""),
            "subjects": [], "contrasts": [], "untested": [],
        })
        for item in items:
            if item.subject not in [s["label"] for s in section["subjects"]]:
                report = output_dir / naming.build("subject_report", subject=item.subject)
                section["subjects"].append(
                    {"label": item.subject, "href": _rel(report, output_dir) if report.is_file() else None}
                )
        common = {"task": task, "space": space, "contrast": label}
        z_file = output_dir / naming.build("group_statmap", stat="z", extension=".nii.gz", **common)
        if len(items) < 2 or not z_file.is_file():
            section["untested"].append(label)
            continue
        sidecar = _read_json(z_file.with_name(z_file.name.replace(".nii.gz", ".json")))
        name = sidecar.get("Contrast", {}).get("Name", label)
        if key not in backgrounds:
            backgrounds[key] = group_background(items, output_dir)
        z_img = load_3d(z_file)
        vmax = _vmax([z_img], threshold)
        stem = z_file.name.split("_stat-")[0]
        shown = f"|z| > {threshold:g}"
        zmap = figures.stat_map(z_img, figures_dir / f"{stem}_desc-zmap_statmap.png", bg_img=backgrounds[key],
                                threshold=threshold, cuts=figures.cut_coords(z_img), vmax=vmax,
                                title=f"{name}: group")
        glass = figures.glass_brain(z_img, figures_dir / f"{stem}_desc-glassbrain_statmap.png",
                                    threshold=threshold, vmax=vmax, title=f"{name}: group")
        section["contrasts"].append({
            "name": name, "label": label, "anchor": f"{section['anchor']}_contrast-{label}",
            "model": sidecar.get("GroupModel"), "dof": sidecar.get("DegreesOfFreedom"),
            "subjects": sidecar.get("Subjects") or [i.subject for i in items],
            "peak": _peak(z_img), "threshold": shown,
            "zmap": Figure(_rel(zmap, output_dir), f"Group z map of {name}, {shown}",
                           f"Group z map, {shown}, over the subjects' mean EPI"),
            "glass": Figure(_rel(glass, output_dir), f"Glass brain of the group z map of {name}",
                            _glass_caption(space, shown)),
            "clusters": cluster_table(z_img, threshold, figures_dir / f"{stem}_desc-clusters_table.tsv", output_dir),
        })
    if not any(section["contrasts"] for section in tasks.values()):
        return None
    page = output_dir / "group.html"
    html = render(
        "group.html.jinja",
        title="group",
        tasks=list(tasks.values()),
        group_model="one-sample t-test (random effects)" if settings.group_model != "fixed" else "fixed effects",
        citation=_citation_link(output_dir),
        provenance=provenance(settings),
    )
    outputs.write_text(html, page)
    logger.info("Group report written in %.1f s", time.perf_counter() - start)
    return page


# ----------------------------------------------------------------------------
# images and tables


def load_3d(path):
    """Load a 3D image into memory (figures reuse it without reading the file again)."""
    import nibabel as nib
    import numpy as np

    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    return nib.Nifti1Image(data, img.affine)


def boldref_of(bold: Path) -> Path | None:
    """The fMRIPrep ``_boldref`` image beside a preprocessed BOLD series, if there is one."""
    name = bold.name
    for extension in (".nii.gz", ".nii"):
        if name.endswith(extension):
            name = name[: -len(extension)]
            break
    if not name.endswith("_bold"):
        return None
    stem = re.sub(r"_desc-[a-zA-Z0-9]+", "", name[: -len("_bold")])
    for extension in (".nii.gz", ".nii"):
        candidate = bold.parent / f"{stem}_boldref{extension}"
        if candidate.is_file():
            return candidate
    return None


def mean_epi(run):
    """The background of a subject's maps: the run's boldref, else the mean of its BOLD series."""
    import nibabel as nib
    import numpy as np
    from nilearn.image import mean_img

    reference = boldref_of(run.bold)
    if reference is not None:
        img = nib.load(str(reference))
        if len(img.shape) == 3:
            return nib.Nifti1Image(np.asanyarray(img.dataobj, dtype=np.float32), img.affine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mean_img(str(reference or run.bold), copy_header=True)


def group_background(items, output_dir):
    """The mean of the subjects' boldrefs, found through the sidecars' ``Sources``; None if none is."""
    import nibabel as nib
    import numpy as np

    images = []
    for item in items:
        bold = _first_bold(item.sidecar, output_dir)
        reference = boldref_of(bold) if bold is not None else None
        if reference is None:
            continue
        img = nib.load(str(reference))
        if len(img.shape) != 3:
            continue
        if images and (img.shape != images[0].shape or not np.allclose(img.affine, images[0].affine, atol=1e-3)):
            continue
        images.append(img)
    if not images:
        return None
    data = np.mean([np.asanyarray(i.dataobj, dtype=np.float32) for i in images], axis=0)
    return nib.Nifti1Image(data, images[0].affine)


def _first_bold(subject_sidecar, output_dir) -> Path | None:
    """The BOLD series of a subject map's first run, from the sidecars' ``Sources``."""
    for source in _read_json(subject_sidecar).get("Sources", []):
        path = _resolve(source, output_dir)
        if path.name.endswith("_statmap.nii.gz"):
            run_sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
            for run_source in _read_json(run_sidecar).get("Sources", []):
                candidate = _resolve(run_source, output_dir)
                if "_bold." in candidate.name and candidate.is_file():
                    return candidate
            return None
    return None


def _resolve(source: str, output_dir: Path) -> Path:
    if source.startswith("bids::"):
        return output_dir / source[len("bids::"):]
    return output_dir / source


def cluster_table(z_img, threshold, tsv_path, output_dir) -> ClusterTable:
    """nilearn's ``get_clusters_table`` of a z map: both signs, clusters of 20 voxels or more.

    The whole table is written to ``tsv_path``; the page shows its first rows.
    """
    from nilearn.reporting import get_clusters_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = get_clusters_table(
            z_img, stat_threshold=threshold, cluster_threshold=CLUSTER_MIN_VOXELS, two_sided=True
        )
    outputs.write_tsv(table, tsv_path)
    rows = []
    for record in table.head(MAX_CLUSTER_ROWS).itertuples(index=False):
        cluster, x, y, z, peak, size = record
        rows.append((str(cluster), f"{x:g}", f"{y:g}", f"{z:g}", f"{peak:.2f}", str(size)))
    return ClusterTable(
        columns=("Cluster", "X (mm)", "Y (mm)", "Z (mm)", "Peak z", "Size (mm³)"),
        rows=tuple(rows), n_rows=len(table), tsv=_rel(tsv_path, output_dir),
    )


def _vmax(images, threshold) -> float:
    import numpy as np

    peak = max(float(np.max(np.abs(img.get_fdata()))) if img.get_fdata().size else 0.0 for img in images)
    return max(peak, 1.25 * threshold, 1.0)


def _peak(img) -> float:
    import numpy as np

    return float(np.max(np.abs(img.get_fdata())))


# ----------------------------------------------------------------------------
# pages


def render(template: str, **context) -> str:
    """Render one of the report templates (``bids_fixedfx/data/report``)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=PackageLoader("bids_fixedfx", "data/report"),
        autoescape=select_autoescape(["html", "jinja"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["min_voxels"] = CLUSTER_MIN_VOXELS
    return environment.get_template(template).render(**context)


def provenance(settings) -> dict:
    """What made the report: the command line and the software versions."""
    return {"command": settings.command or "(not recorded)", "versions": software_versions()}


def _citation_link(output_dir) -> str | None:
    citation = Path(output_dir) / "logs" / "CITATION.html"
    return _rel(citation, output_dir) if citation.is_file() else None


def _rel(path, output_dir) -> str:
    """A link from a page in OUTPUT_DIR to ``path``."""
    return Path(os.path.relpath(path, output_dir)).as_posix()


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
