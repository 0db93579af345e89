"""Cluster tables of thresholded z maps, with coordinates at the grid's precision.

Clusters are formed as nilearn's ``get_clusters_table`` forms them (voxels beyond
``±threshold`` that share a face, each sign apart, at least :data:`CLUSTER_MIN_VOXELS`
voxels); each has its peak and up to :data:`MAX_SUBPEAKS` sub-peaks (local maxima at least
:data:`SUBPEAK_DISTANCE` mm from the stronger ones), labelled ``1``, ``1a``, ``1b`` ...
Coordinates are world coordinates of voxel centres, rounded to what tells voxels apart
(:func:`.slices.voxel_decimals`), so a TSV never shows ``17.04999828``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .slices import round_to_voxels, voxel_decimals

#: Clusters smaller than this many voxels are not listed (as nilearn's example does).
CLUSTER_MIN_VOXELS = 20
#: Sub-peaks closer than this (mm) to a stronger peak of their cluster are not listed.
SUBPEAK_DISTANCE = 8.0
#: Sub-peaks listed per cluster.
MAX_SUBPEAKS = 3
#: Rows of a cluster table shown in a page; the TSV has them all.
MAX_ROWS = 10


@dataclass(frozen=True)
class ClusterTable:
    """Peaks of a map's clusters.

    Attributes
    ----------
    columns : tuple of str
    rows : tuple of tuple
        ``(cluster, x, y, z, peak, size)``; ``size`` (mm³) is empty for sub-peaks.
    n_clusters : int
    min_voxels : int
        The smallest cluster listed.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    n_clusters: int
    min_voxels: int = CLUSTER_MIN_VOXELS

    def to_tsv(self) -> str:
        """The table as BIDS TSV text."""
        lines = ["\t".join(self.columns)]
        lines += ["\t".join("n/a" if v == "" else str(v) for v in row) for row in self.rows]
        return "\n".join(lines) + "\n"


def listed(table, files, tsv_path) -> dict:
    """A cluster or peak table as a page shows it: its first :data:`MAX_ROWS` rows, with all of
    them written to ``tsv_path`` (relative to OUTPUT_DIR) and linked (``files``: the page's
    :class:`.pages.Files`)."""
    return {"table": table, "rows": table.rows[:MAX_ROWS], "tsv": files.table(tsv_path, table.to_tsv()),
            "tsv_name": tsv_path.name}


def coordinate_columns(template: bool) -> tuple[str, str, str]:
    """Headers of the coordinates: MNI in a template space, the image's own (scanner) mm otherwise."""
    frame = "MNI mm" if template else "mm"
    return tuple(f"{axis} ({frame})" for axis in "XYZ")


def cluster_table(volume, threshold: float, template: bool, min_voxels: int = CLUSTER_MIN_VOXELS) -> ClusterTable:
    """The clusters of ``|z| > threshold`` in a map, largest peaks first.

    Parameters
    ----------
    volume : slices.Volume
        The z map.
    threshold : float
    template : bool
        Whether the map is in a template (MNI) space; names the coordinate columns.
    min_voxels : int

    Returns
    -------
    table : ClusterTable
    """
    from scipy import ndimage

    data = np.nan_to_num(volume.data)
    faces = ndimage.generate_binary_structure(3, 1)
    zooms = volume.zooms
    decimals = voxel_decimals(zooms)
    voxel_mm3 = float(abs(np.linalg.det(volume.affine[:3, :3])))
    found = []
    for sign in (1.0, -1.0):
        signed = sign * data
        labels, n_labels = ndimage.label(signed > threshold, structure=faces)
        if not n_labels:
            continue
        sizes = np.bincount(labels.ravel())
        members = np.flatnonzero(labels)
        owners = labels.ravel()[members]
        order = np.argsort(owners, kind="stable")
        members, bounds = members[order], np.searchsorted(owners[order], np.arange(n_labels + 2))
        local_max = signed == ndimage.maximum_filter(signed, size=3, mode="constant", cval=-np.inf)
        for label in np.nonzero(sizes >= min_voxels)[0]:
            if label == 0:
                continue
            inside = np.column_stack(np.unravel_index(members[bounds[label]:bounds[label + 1]], data.shape))
            values = signed[tuple(inside.T)]
            order = np.argsort(-values, kind="stable")
            peak = inside[order[0]]
            candidates = [inside[i] for i in order[1:] if local_max[tuple(inside[i])]]
            subpeaks = _apart([peak], candidates, zooms)
            found.append((float(values[order[0]]) * sign, sign, peak, subpeaks, int(sizes[label])))
    found.sort(key=lambda item: -abs(item[0]))
    rows = []
    for number, (peak_value, sign, peak, subpeaks, size) in enumerate(found, start=1):
        rows.append((str(number), *_world(volume, peak, decimals), round(peak_value, 3),
                     round_to_voxels(size * voxel_mm3, 0)))
        for letter, subpeak in zip("abcdefghij", subpeaks):
            value = float(data[tuple(subpeak)])
            rows.append((f"{number}{letter}", *_world(volume, subpeak, decimals), round(value, 3), ""))
    columns = ("Cluster", *coordinate_columns(template), "Peak z", "Size (mm³)")
    return ClusterTable(columns, tuple(rows), len(found), min_voxels)


def _apart(kept, candidates, zooms):
    """Candidates (strongest first) at least :data:`SUBPEAK_DISTANCE` mm from every kept peak."""
    chosen = []
    for candidate in candidates:
        if len(chosen) == MAX_SUBPEAKS:
            break
        distances = [np.linalg.norm((candidate - other) * zooms) for other in [*kept, *chosen]]
        if min(distances) >= SUBPEAK_DISTANCE:
            chosen.append(candidate)
    return chosen


def _world(volume, voxel, decimals):
    point = volume.affine @ np.append(np.asarray(voxel, dtype=float), 1.0)
    return tuple(round_to_voxels(v, decimals) for v in point[:3])
