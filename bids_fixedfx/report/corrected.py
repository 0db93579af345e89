"""Corrected results on a page: the thresholded z map that ``--threshold`` wrote, and its clusters.

The map and its sidecar are found by their names (:func:`bids_fixedfx.naming.statmap_desc`
gives the ``desc`` of a method); the threshold, method and alpha come from the sidecar
record, as :mod:`bids_fixedfx.inference` wrote them.
"""

from __future__ import annotations

from dataclasses import replace

from .. import naming
from ..sidecars import StatmapSidecar
from . import figures, slices
from .tables import MAX_ROWS, cluster_table


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
    desc = naming.statmap_desc(group_model, method)
    path = settings.output_dir / naming.build(kind, stat="z", desc=desc, extension=".nii.gz", **map_entities)
    if not path.is_file():
        return None
    info = StatmapSidecar.read(settings.output_dir / naming.build(kind, stat="z", desc=desc, extension=".json",
                                                                  **map_entities))
    threshold = float(info.extra["Threshold"])
    extent = int(info.extra.get("ClusterExtent", 0))
    volume = slices.Volume(slices.load(path).data, view.grid.affine)
    survivors = replace(view, threshold=threshold * (1 - 1e-6))
    what = f"{info.extra.get('Method', method)}, alpha {info.extra.get('Alpha')}: |z| ≥ {threshold:.2f}" + (
        f", clusters of {extent} voxels or more" if extent else "")
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
        "clusters": {"table": table, "rows": table.rows[:MAX_ROWS], "tsv": files.table(tsv_path, table.to_tsv()),
                     "tsv_name": tsv_path.name},
        "threshold": f"corrected ({what})",
    }
