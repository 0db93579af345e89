"""Corrected results on a page: the thresholded z map that ``--threshold`` wrote, the
proportion of true discoveries that ``--cluster-inference`` wrote, the group's permutation
maps (``--n-perm``), and their clusters.

The maps and their sidecars are found by their names (:func:`bids_fixedfx.naming.statmap_desc`
gives the ``desc`` of a method); the threshold, method and alpha come from the sidecar
record, as :mod:`bids_fixedfx.inference` wrote them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import naming
from ..inference import PERMUTATION_MAPS
from ..sidecars import StatmapSidecar
from . import figures, slices
from .tables import cluster_table, listed


def corrected_section(settings, kind: str, map_entities: dict, figure_kind: str, figure_entities: dict,
                      view, files, name: str, group_model=None) -> dict | None:
    """The thresholded z map of one contrast, drawn, with its cluster table; None without one.

    Parameters
    ----------
    settings : Settings
        ``inference.method`` says whether a thresholded map was written.
    kind : str
        ``subject_statmap`` or ``group_statmap``.
    map_entities : dict
        The contrast's entities (subject, task, space, contrast).
    figure_kind : str
        ``subject_figure`` or ``group_figure``.
    figure_entities : dict
    view : figures.MapView
        The contrast's view (its colour scale is kept).
    files : pages.Files
    name : str
        The contrast's name.
    group_model : str or None
        At the group level, the model whose maps these are.

    Returns
    -------
    section : dict or None
    """
    method = settings.inference.method
    if not method:
        return None
    desc = naming.statmap_desc(group_model, method, settings.group_design if group_model else None)
    path = settings.output_dir / naming.build(kind, stat="z", desc=desc, extension=".nii.gz", **map_entities)
    if not path.is_file():
        return None
    info = StatmapSidecar.read(settings.output_dir / naming.build(kind, stat="z", desc=desc, extension=".json",
                                                                  **map_entities))
    threshold = info.extra.get("Threshold")
    threshold = np.inf if threshold is None else float(threshold)  # null: no voxel passes
    extent = int(info.extra.get("ClusterExtent", 0))
    cut = f"|z| ≥ {threshold:.2f}" if np.isfinite(threshold) else "no voxel passes"
    what = f"{info.extra.get('Method', method)}, alpha {info.extra.get('Alpha')}: {cut}" + (
        f", clusters of {extent} voxels or more" if extent else "")
    volume = slices.Volume(slices.load(path).data, view.grid.affine)
    if not np.isfinite(threshold) or not np.any(volume.data):  # no figure of a cut-off above the colour scale
        return {"what": what, "figure": None, "none": f"No voxel passes the correction ({what}).",
                "threshold": f"corrected ({what})"}
    survivors = replace(view, threshold=min(threshold, view.vmax) * (1 - 1e-6))
    table = cluster_table(volume, 0.0, view.template, min_voxels=1)
    tsv_path = naming.build(figure_kind, desc="corrected", suffix="table", extension=".tsv", **figure_entities)
    cuts = slices.choose_cuts(volume.data, 0.0, 4, view.box)
    return {
        "what": what,
        "figure": files.figure(
            naming.build(figure_kind, desc="corrected", suffix="statmap", extension=".png", **figure_entities),
            figures.stat_map(survivors, volume.data, cuts, f"{name}: corrected ({what})"),
            f"Corrected z map of {name} ({what})", f"Voxels that survive the correction ({what}).",
        ),
        "clusters": listed(table, files, tsv_path),
        "threshold": f"corrected ({what})",
    }


def permutation_section(settings, map_entities: dict, figure_entities: dict, view, z_map, files,
                        name: str, group_model=None) -> dict | None:
    """A group contrast's permutation maps (``stat-logp``), drawn where family-wise p < alpha,
    and the clusters of the z map that survive each; None without them.

    Parameters
    ----------
    settings : Settings
        ``inference.permutation_alpha`` is the error rate shown.
    map_entities, figure_entities : dict
        The contrast's entities (task, space, contrast).
    view : figures.MapView
    z_map : numpy.ndarray
        The contrast's group z map, whose surviving clusters the tables list.
    files : pages.Files
    name : str
    group_model : str or None

    Returns
    -------
    section : dict or None
        ``what`` (method, permutations, alpha), ``figure`` (None when nothing survives, then
        ``none`` says so) and one cluster ``tables`` entry per map.
    """
    found = []
    for desc in PERMUTATION_MAPS:
        names = {ext: naming.build("group_statmap", stat="logp", desc=naming.statmap_desc(group_model, desc, settings.group_design),
                                   extension=ext, **map_entities) for ext in (".nii.gz", ".json")}
        if (settings.output_dir / names[".nii.gz"]).is_file():
            info = StatmapSidecar.read(settings.output_dir / names[".json"])
            found.append((desc, info, np.nan_to_num(slices.load(settings.output_dir / names[".nii.gz"]).data)))
    if not found:
        return None
    alpha = settings.inference.permutation_alpha
    height = -np.log10(alpha)
    methods = [info.extra.get("Method", desc).removeprefix("permutation test, ") for desc, info, _ in found]
    permutations = found[0][1].extra.get("Permutations")
    forming = [info.extra["ClusterFormingThreshold"] for _, info, _ in found if "ClusterFormingThreshold" in info.extra]
    subjects = (found[0][1].group or {}).get("NumberOfSubjects")  # n subjects: 2^n distinct sign flips
    few = (f" ({2 ** subjects} distinct with {subjects} subjects)" if isinstance(permutations, int)
           and isinstance(subjects, int) and 2 ** subjects < permutations else "")
    what = f"{permutations} permutations{few}, family-wise p < {alpha:g}: {', '.join(methods)}"
    largest = max(float(data.max()) for _, _, data in found)
    section = {"what": what, "figure": None, "tables": [],
               "none": f"No voxel survives: the smallest family-wise p is {10 ** -largest:.3g}."}
    shown = replace(view, threshold=height, vmax=max(largest, 1.25 * height), template=False)
    if largest <= height:
        return section  # no figure and no cluster: the note says so
    strongest = max(found, key=lambda item: float(item[2].max()))[2]
    cuts = slices.choose_cuts(strongest, height, 4, view.box)
    section["figure"] = files.figure(
        naming.build("group_figure", desc="permutation", suffix="statmap", extension=".png", **figure_entities),
        figures.map_grid(shown, [(m, data) for m, (_, _, data) in zip(methods, found)], cuts,
                         f"{name}: permutation test, -log10 family-wise p", label="-log10 p", signed=False,
                         scale=0.4),
        f"Permutation maps of {name}, family-wise p < {alpha:g}",
        f"-log10 of the family-wise error corrected p of a two-sided one-sample permutation test (sign "
        f"flipping, {permutations} permutations, nilearn's non_parametric_inference), one row per statistic"
        + (f" (clusters formed at |z| > {forming[0]:g})" if forming else "")
        + f"; voxels with p < {alpha:g} (-log10 p > {height:.2f}) coloured.",
    )
    for method, (desc, _, data) in zip(methods, found):
        survivors = slices.Volume(np.where(data > height, z_map, 0.0), view.grid.affine)
        table = cluster_table(survivors, 0.0, view.template, min_voxels=1)
        tsv_path = naming.build("group_figure", desc=desc, suffix="table", extension=".tsv", **figure_entities)
        section["tables"].append({
            "clusters": listed(table, files, tsv_path),
            "threshold": f"permutation {method}, family-wise p < {alpha:g}",
        })
    return section


def tdp_section(settings, kind: str, map_entities: dict, figure_kind: str, figure_entities: dict, view, z_map,
                files, name: str, group_model=None) -> dict | None:
    """The proportion of true discoveries (``stat-tdp``, ``--cluster-inference``) of one
    contrast, drawn where it is above 0, and the clusters of the z map there; None without it.

    Parameters
    ----------
    settings, kind, map_entities, figure_kind, figure_entities, view, files, name, group_model
        As :func:`corrected_section` takes them (``settings.inference.cluster_inference`` says
        whether the map was written).
    z_map : numpy.ndarray
        The contrast's z map, whose clusters with true discoveries the table lists.

    Returns
    -------
    section : dict or None
        ``what`` (method, cluster-forming threshold, alpha), ``figure`` (None when no
        cluster holds a true discovery, then ``none`` says so) and the cluster ``clusters``.
    """
    if not settings.inference.cluster_inference:
        return None
    desc = naming.statmap_desc(group_model, "cluster", settings.group_design if group_model else None)
    path = settings.output_dir / naming.build(kind, stat="tdp", desc=desc, extension=".nii.gz", **map_entities)
    if not path.is_file():
        return None
    info = StatmapSidecar.read(path.with_name(path.name.removesuffix(".nii.gz") + ".json"))
    data = np.nan_to_num(slices.load(path).data)
    forming, alpha = info.extra.get("ClusterFormingThreshold"), info.extra.get("Alpha")
    what = f"clusters at z > {forming:g}, alpha {alpha:g}" if forming is not None and alpha is not None else "clusters"
    section = {"what": what, "figure": None, "clusters": None,
               "none": "No cluster holds a true discovery: the proportion is 0 everywhere."}
    if not (data > 0).any():
        return section
    shown = replace(view, threshold=0.0, vmax=1.0, template=False)
    cuts = slices.choose_cuts(data, 0.0, 4, view.box)
    section["figure"] = files.figure(
        naming.build(figure_kind, desc="tdp", suffix="statmap", extension=".png", **figure_entities),
        figures.map_grid(shown, [("TDP", data)], cuts, f"{name}: proportion of true discoveries", label="TDP",
                         signed=False, scale=0.6),
        f"Proportion of true discoveries of {name} ({what})",
        "The lower bound, at the error rate alpha, on the proportion of voxels of each cluster of the z map "
        f"({what}; positive z) that hold a true effect: nilearn's cluster_level_inference (all-resolution "
        "inference, Rosenblatt et al. 2018); voxels of clusters with a bound above 0 coloured.",
    )
    table = with_tdp(cluster_table(slices.Volume(np.where(data > 0, z_map, 0.0), view.grid.affine), 0.0,
                                   view.template, min_voxels=1), data, view.grid.affine)
    tsv_path = naming.build(figure_kind, desc="tdp", suffix="table", extension=".tsv", **figure_entities)
    section["clusters"] = {**listed(table, files, tsv_path), "threshold": f"clusters with true discoveries ({what})"}
    return section


def with_tdp(table, tdp, affine):
    """A cluster table with a ``TDP`` column: the proportion of true discoveries at each row's
    peak (the map holds each cluster's bound in its voxels), the point of the table."""
    inverse = np.linalg.inv(affine)
    rows = []
    for row in table.rows:
        voxel = np.rint(inverse @ np.array([*map(float, row[1:4]), 1.0]))[:3].astype(int)
        inside = all(0 <= v < n for v, n in zip(voxel, tdp.shape))
        rows.append((*row, round(float(tdp[tuple(voxel)]), 3) if inside else ""))
    return replace(table, columns=(*table.columns, "TDP"), rows=tuple(rows))
