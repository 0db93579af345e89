"""The group's page: for each task and space, the subjects and design, then each contrast.

The tests come from the group level's plan (:class:`~bids_fixedfx.plan.GroupPlan`); the
facts of each map from its sidecar record; the subjects' runs (for the background) from
their design sidecars (:class:`~bids_fixedfx.boilerplate.readback.Reader`).
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from dataclasses import replace

import numpy as np

from .. import naming, outputs
from ..boilerplate.readback import Reader, recorded_command
from ..combine import contrasts_of
from ..plan import MIN_SUBJECTS
from ..sidecars import StatmapSidecar
from ..surface import is_surface_file
from . import backgrounds, figures, page_maps, shown_maps, slices
from .corrected import corrected_section, permutation_section, tdp_section
from .figures import MapView
from .pages import EarlierSet, Files, citation_link, earlier_sections, provenance, subject_page
from .subject import N_CUTS, is_template, section_anchor
from .tables import cluster_table, listed

#: Subjects drawn in a contrast's grid of small maps (the first ones, by label).
MAX_SUBJECT_TILES = 100


def write_group_page(settings, group_plan, notes=(), earlier=None):
    """Draw the group's figures and write ``group.html``.

    Parameters
    ----------
    settings : Settings
    group_plan : plan.GroupPlan
    notes : sequence of Note
    earlier : list of EarlierSet, optional
        The sections of earlier jobs to keep (default: :func:`earlier_group_sets` of the
        other tasks and spaces than the plan's).

    Returns
    -------
    path : Path or None
        None when no contrast was tested and no earlier section is kept.
    """
    files, reader = Files(settings.output_dir), Reader(settings.output_dir)
    grouped = defaultdict(lambda: {"tests": [], "untested": []})
    for test in group_plan.tests:
        grouped[(test.task, test.space)]["tests"].append(test)
    for test in group_plan.untested:
        grouped[(test.task, test.space)]["untested"].append(test)
    tasks = [
        _task_section(settings, task, space, found["tests"], found["untested"], files, reader)
        for (task, space), found in grouped.items() if found["tests"]
    ]
    commands = []
    for test in group_plan.tests:
        for item in test.inputs:
            command = recorded_command(item.info)
            if command and command not in commands:
                commands.append(command)
    # the earlier page read and this one written in one turn (the lock of OUTPUT_DIR): a group job of
    # other tasks beside this one keeps this job's sections, and this job keeps that job's
    with outputs.folder_lock(settings.output_dir) if earlier is None else nullcontext():
        if earlier is None:
            earlier = earlier_group_sets(settings, {section_anchor(t.task, t.space) for t in group_plan.tests})
        if not tasks and not earlier:
            return None
        return files.write_page(naming.build("group_report"), _render(
            settings, files, tasks, earlier, commands, (*group_plan.notes, *notes)))


def _render(settings, files, tasks, earlier, commands, notes) -> str:
    """``group.html``: these tasks' sections and the earlier ones kept."""
    return files.render(
        "group.html.jinja",
        tasks=tasks,
        group_model=("fixed effects" if settings.group_model == "fixed"
                     else "general linear model (random effects)" if settings.group_design
                     else "one-sample t-test (random effects)"),
        random=settings.group_model != "fixed",
        earlier=earlier,
        maps_desc=page_maps(settings),
        design=settings.model_node_names.get("dataset") if settings.group_design else None,
        min_subjects=MIN_SUBJECTS,
        warnings=[note.text for note in notes],
        citation=citation_link(files),
        provenance=provenance(settings, {"participant": "\n".join(commands) or "(not recorded in the subject maps)",
                                         "group": settings.command or "(not recorded)"}),
    )


def earlier_group_sets(settings, anchors) -> list[EarlierSet]:
    """The sections of ``group.html`` for other tasks or spaces than this job's (``anchors``)
    whose maps (of this job's group model and design), figures and tables are all still
    there: a group level run task by task in separate jobs keeps one page of them all. A
    page of another group model's maps keeps none (the page shows one group model).

    Returns
    -------
    earlier : list of EarlierSet
    """
    output_dir = settings.output_dir
    try:
        text = (output_dir / naming.build("group_report")).read_text(encoding="utf-8")
    except (OSError, ValueError):  # no page yet, or not one of ours
        return []
    if shown_maps(text) != page_maps(settings):
        return []
    own = naming.statmap_desc(settings.group_model, design=settings.group_design)
    return earlier_sections(output_dir, text, anchors,
                            lambda task, space: _has_group_maps(output_dir, task, space, own))


def _has_group_maps(output_dir, task, space, own) -> bool:
    """Whether ``group/`` holds maps of ``task`` and ``space`` of the group model ``own``
    (:func:`~bids_fixedfx.naming.group_model_of` of their names)."""
    return any(path.name.endswith("_statmap.json") and not naming.is_temporary(path.name)
               and naming.group_model_of(naming.parse(path)) == own
               for path in outputs.existing_set(output_dir, "group", task=task, space=space))


def group_statmap(test, group_model: str, stat: str, extension: str, design: str | None = None,
                  label: str | None = None):
    """The name of one of a group test's maps (relative to OUTPUT_DIR): of its own contrast, or
    of the design contrast ``label``."""
    return naming.build("group_statmap", task=test.task, space=test.space, contrast=label or test.contrast,
                        stat=stat, desc=naming.statmap_desc(group_model, design=design), extension=extension)


def _task_section(settings, task, space, tests, untested, files: Files, reader: Reader) -> dict:
    output_dir, threshold = settings.output_dir, settings.report_threshold
    anchor = section_anchor(task, space)
    subjects = sorted({item.subject for test in (*tests, *untested) for item in test.inputs})
    view = None  # a surface or CIFTI space: its maps are drawn on the mesh (report.surfaces)
    if not is_surface_file(tests[0].inputs[0].effect):
        mask_volume = slices.load(output_dir / naming.build(
            "group_mask", task=task, space=space, extension=".nii.gz",
            desc=naming.group_mask_desc(settings.group_model, settings.group_design)))
        mask = mask_volume.data > 0
        first_runs = {}  # the first run of the first subjects: their BOLD references make the background
        for item in tests[0].inputs[:backgrounds.MAX_AVERAGED]:
            records = reader.runs_of(item.info)
            first_runs[item.subject] = reader.resolve(records[0].design.bold) if records else None
        grey = backgrounds.mean_background(first_runs.values(), mask_volume, mask)
        view = MapView(grey, mask, mask_volume, threshold, 1.25 * threshold, is_template(space))
    matrix = _design_matrix(tests)
    rows = []
    for subject in subjects:
        if matrix is not None:
            cells = matrix[1].get(subject, ["–"] * len(matrix[0]))
        else:
            cells = []
            for test in (*tests, *untested):
                included = test in tests and subject in test.subjects
                cells.append("1" if included else "untested" if subject in test.subjects else "–")
        rows.append({"label": subject, "href": files.page_link(subject_page(subject)), "cells": cells})
    return {
        "task": task, "space": space, "anchor": anchor,
        "columns": matrix[0] if matrix is not None else [test.name for test in (*tests, *untested)],
        "matrix": matrix is not None,
        "subjects": rows,
        "untested": [test.name for test in untested],
        "contrasts": [_passed(contrast, anchor) if contrast.test == "pass"
                      else _contrast(settings, test, contrast, view, files, anchor) if view is not None
                      else _surface_contrast(settings, test, contrast, files, anchor)
                      for test in tests for contrast, _ in contrasts_of(test, settings.group_model)],
    }


def _design_matrix(tests):
    """The group design the tests share (its columns, and each subject's row as text), when each
    test has a design of the same columns with a row per subject; else None (the table then
    marks which contrasts' maps each subject has)."""
    if not tests or any(t.design is None or len(set(t.subjects)) != len(t.subjects) for t in tests):
        return None
    columns = [str(c) for c in tests[0].design.columns]
    if any([str(c) for c in t.design.columns] != columns for t in tests):
        return None
    rows = {}
    for test in tests:
        for subject, values in zip(test.subjects, test.design.to_numpy()):
            rows.setdefault(subject, [f"{float(v):g}" for v in values])
    return columns, rows


def _passed(contrast, anchor) -> dict:
    """The section of a contrast of Test "pass": its effect and variance maps only, no test to show."""
    return {"name": contrast.name, "label": contrast.label, "anchor": f"{anchor}-contrast-{contrast.label}",
            "missing": None, "passed": True, "weights": contrast.weights}


def _contrast(settings, test, contrast, view, files: Files, anchor) -> dict:
    """The section of one group contrast: the test's own, or one of a group design's."""
    output_dir, threshold = settings.output_dir, settings.report_threshold
    label, name = contrast.label, contrast.name
    z_path = group_statmap(test, settings.group_model, "z", ".nii.gz", settings.group_design, label)
    section = {"name": name, "label": label, "anchor": f"{anchor}-contrast-{label}", "missing": None}
    if not (output_dir / z_path).is_file():
        section["missing"] = z_path.as_posix()
        return section
    sidecar = StatmapSidecar.read(output_dir / group_statmap(test, settings.group_model, "z", ".json",
                                                             settings.group_design, label))
    z_map = slices.load(output_dir / z_path).data
    peak = float(np.max(np.abs(np.nan_to_num(z_map)))) if z_map.size else 0.0
    view = replace(view, vmax=max(peak, 1.25 * threshold, 1.0))
    cuts = slices.choose_cuts(z_map, threshold, N_CUTS, view.box)
    shown = f"|z| > {threshold:g}"
    common = {"task": test.task, "space": test.space, "contrast": label}
    n_subjects = len(test.inputs)
    section["figure"] = files.figure(
        naming.build("group_figure", desc="zmap", suffix="statmap", extension=".png", **common),
        figures.stat_map(view, z_map, cuts, f"{name}: group, {n_subjects} subjects"),
        f"Group z map of {name}, {shown}",
        f"Group z map, {shown} (uncorrected, for display), "
        + ("over the mean of the subjects' BOLD reference images" if view.background is not None else "on black")
        + ("; projections show the strongest value along each axis." if view.template else "."),
    )
    tiles = []
    across = len({item.contrast for item in test.inputs}) > 1
    for item in test.inputs[:MAX_SUBJECT_TILES]:
        # the z map beside the input's effect map: of its own contrast and node (a test across contrasts
        # takes several per subject; a pass contrast has none)
        effect = output_dir / item.effect
        path = effect.with_name(effect.name.replace("_stat-effect_", "_stat-z_"))
        if path == effect or not path.is_file():
            continue
        volume = slices.load(path)
        if volume.same_grid(view.grid):
            tiles.append((naming.set_key(subject=item.subject, **({"contrast": item.contrast} if across else {})),
                          volume.data))
    section["subjects_figure"] = None
    if tiles:
        cut = slices.choose_cuts(z_map, threshold, 1, view.box)[0]
        largest = max(float(np.max(np.abs(np.nan_to_num(data)))) for _, data in tiles)
        subjects_view = replace(view, vmax=max(largest, 1.25 * threshold, 1.0))
        section["subjects_figure"] = files.figure(
            naming.build("group_figure", desc="subjects", suffix="statmap", extension=".png", **common),
            figures.tiles_grid(subjects_view, tiles, cut, f"{test.name}: each subject's fixed-effects z map"),
            f"Each subject's z map of {test.name}, {shown}",
            "One slice of each subject's z map, all on one colour scale"
            + (f" (the first {MAX_SUBJECT_TILES} subjects)" if n_subjects > MAX_SUBJECT_TILES else "") + ".",
        )
    table = cluster_table(slices.Volume(z_map, view.grid.affine), threshold, view.template)
    tsv_path = naming.build("group_figure", desc="clusters", suffix="table", extension=".tsv", **common)
    clusters = listed(table, files, tsv_path)
    section["corrected"] = corrected_section(
        settings, "group_statmap", common, "group_figure", common, view, files, name, settings.group_model)
    section["tdp"] = tdp_section(settings, "group_statmap", common, "group_figure", common, view, z_map, files, name,
                                 settings.group_model)
    section["permutation"] = permutation_section(settings, common, common, view, z_map, files, name,
                                                 settings.group_model)
    section.update({
        "model": (sidecar.group or {}).get("GroupModel"),
        "dof": sidecar.dof,
        "subjects": list(test.subjects),
        "peak": peak,
        "threshold": shown,
        "clusters": clusters,
    })
    return section


def _surface_contrast(settings, test, contrast, files: Files, anchor) -> dict:
    """A group contrast of a surface or CIFTI space (the test's own, or one of a group design's):
    its z map on the mesh (or a note), peak vertices."""
    from .. import surface
    from . import surfaces

    output_dir, threshold = settings.output_dir, settings.report_threshold
    label, name = contrast.label, contrast.name
    form = surface.read_form(test.inputs[0].effect)
    common = {"task": test.task, "space": test.space, "contrast": label}
    desc = naming.statmap_desc(settings.group_model, design=settings.group_design)
    z_path = outputs.map_paths("group_statmap", form, stat="z", desc=desc, **common)[0]
    section = {"name": name, "label": label, "anchor": f"{anchor}-contrast-{label}", "missing": None}
    if not (output_dir / z_path).is_file():
        section["missing"] = z_path.as_posix()
        return section
    sidecar = StatmapSidecar.read(
        output_dir / outputs.map_paths("group_statmap", form, sidecars=True, stat="z", desc=desc, **common)[0])
    section.update(surfaces.map_section(
        files, output_dir / z_path, form, threshold, f"{name}: group, {len(test.inputs)} subjects",
        "group_figure", common, "Group z map"))
    section.update({"subjects_figure": None, "corrected": None, "tdp": None, "permutation": None,
                    "model": (sidecar.group or {}).get("GroupModel"),
                    "dof": sidecar.dof, "subjects": list(test.subjects)})
    return section
