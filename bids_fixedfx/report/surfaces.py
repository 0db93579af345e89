"""Report figures and tables of surface and CIFTI maps: the z map drawn on the mesh where
nilearn ships it (fsaverage5), else a note saying why it is not drawn; peak-vertex tables
in place of cluster tables.

A peak vertex is a vertex beyond the threshold whose |z| is at least that of every
neighbour on the mesh (fsaverage5); without a mesh (other surface spaces, CIFTI) the
strongest vertices (grayordinates) beyond the threshold are listed. Each sign is listed
apart, strongest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import surface
from . import mesh, slices
from .draw import MUTED, Canvas, colour_bar
from .figures import BAR, GAP, TITLE, draw_title
from .tables import listed

#: Rows a peak table holds (in its TSV); the page shows :data:`.tables.MAX_ROWS`.
MAX_PEAKS = 100
#: Width of each view of a hemisphere in a figure, pixels.
PANEL = 220
#: Pixels computed per figure pixel along each axis (averaged: smooth edges).
SUPERSAMPLE = 2


@dataclass(frozen=True)
class PeakTable:
    """Peak vertices of a map (the report's cluster macro shows it as a peak table).

    Attributes
    ----------
    columns : tuple of str
        ``peak``, ``structure``, ``vertex``, ``z``.
    rows : tuple of tuple
    n_above : int
        Vertices beyond the threshold.
    on_mesh : bool
        Whether the peaks are local maxima on a mesh (else the strongest vertices).
    """

    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    n_above: int
    on_mesh: bool

    @property
    def vertex_peaks(self) -> bool:
        """Tells the page's macro that this is a peak-vertex table."""
        return True

    def to_tsv(self) -> str:
        """The table as BIDS TSV text."""
        lines = ["\t".join(self.columns)] + ["\t".join(str(v) for v in row) for row in self.rows]
        return "\n".join(lines) + "\n"


def _neighbour_max(values, adjacency):
    """Each vertex's largest value among its mesh neighbours (``adjacency``: :func:`_adjacency`)."""
    shifted = values - values.min() + 1.0  # positive, so a sparse max over neighbours is their max
    return np.asarray(adjacency.multiply(shifted[None, :]).max(axis=1).todense()).ravel() + values.min() - 1.0


@lru_cache(maxsize=4)
def _adjacency(space: str) -> dict:
    """Each hemisphere's vertex adjacency on the mesh of ``space`` (sparse, 1 per edge), built once."""
    from scipy import sparse

    adjacency = {}
    for hemi, part in surface.load_mesh(space).parts.items():
        faces = np.asarray(part.faces)
        n = len(np.asarray(part.coordinates))
        rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
        cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
        matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0  # an edge of two faces is one neighbour
        adjacency[hemi] = matrix
    return adjacency


def _labels(form):
    """Each vertex's structure and index within it (GIFTI: hemisphere, vertex; CIFTI: the
    brain model's structure and vertex, or voxel ``i,j,k``)."""
    if form.kind == "gifti":
        n_left = form.n_vertices[0]
        return lambda v: ("left", v) if v < n_left else ("right", v - n_left)
    models = form.brain_models
    names = [name.replace("CIFTI_STRUCTURE_", "").lower() for name in models.name]
    on_surface, vertices, voxels = models.surface_mask, models.vertex, models.voxel

    def label(v):
        if on_surface[v]:
            return names[v], int(vertices[v])
        return names[v], ",".join(str(int(i)) for i in voxels[v])

    return label


def peak_table(z, form, threshold: float) -> PeakTable:
    """The peak vertices of a z map beyond ``±threshold`` (see the module's docstring).

    Parameters
    ----------
    z : numpy.ndarray, shape (n_vertices,)
    form : surface.Form
    threshold : float

    Returns
    -------
    table : PeakTable
    """
    z = np.nan_to_num(np.asarray(z, dtype=np.float64))
    adjacency = _adjacency(form.space) if form.kind == "gifti" and form.space in surface.MESH_SPACES else None
    label = _labels(form)
    rows = []
    for sign in (1.0, -1.0):
        signed = sign * z
        above = signed > threshold
        if adjacency is not None:
            n_left = form.n_vertices[0]
            neighbours = np.concatenate([_neighbour_max(signed[:n_left], adjacency["left"]),
                                         _neighbour_max(signed[n_left:], adjacency["right"])])
            above &= signed >= neighbours
        order = np.flatnonzero(above)
        order = order[np.argsort(-signed[order], kind="stable")]
        for vertex in order[:MAX_PEAKS]:
            structure, index = label(int(vertex))
            rows.append((structure, index, round(float(z[vertex]), 2)))
    rows.sort(key=lambda row: -abs(row[2]))
    rows = [(rank, *row) for rank, row in enumerate(rows[:MAX_PEAKS], start=1)]
    where = "vertex" if form.kind == "gifti" else "vertex or voxel (i,j,k)"  # CIFTI: subcortical voxels too
    return PeakTable(("peak", "structure", where, "z"), tuple(rows), int(np.sum(np.abs(z) > threshold)),
                     adjacency is not None)


def map_figure(z, form, threshold: float, vmax: float, title: str) -> bytes:
    """A PNG of a z map on nilearn's inflated mesh (lateral and medial views of each
    hemisphere, over its sulcal depth) where nilearn ships the mesh, else a note that says
    why it is not drawn.

    Each face is coloured by the mean of its vertices' z (as nilearn's ``plot_surf``
    colours faces), on the colour scale of the volume figures; the views of the mesh are
    computed once per process (:func:`.mesh.hemisphere_views`).
    """
    if form.kind != "gifti" or form.space not in surface.MESH_SPACES:
        return _note_figure(title, form)
    views = mesh.hemisphere_views(form.space, PANEL, SUPERSAMPLE)
    n_left = form.n_vertices[0]
    values = {"left": np.asarray(z[:n_left], dtype=float), "right": np.asarray(z[n_left:], dtype=float)}
    panels = []
    for hemi, side in mesh.CAMERAS:
        shown = views.views[hemi, side]
        panels.append((_panel(shown, values[hemi][views.faces[hemi]].mean(axis=1),
                              None if views.sulcal is None else views.sulcal[hemi], threshold, vmax),
                       f"{hemi} {side}"))
    height = max(p.shape[0] for p, _ in panels)
    canvas = Canvas(len(panels) * (PANEL + GAP) + GAP, TITLE + 14 + height + GAP + BAR)
    draw_title(canvas, title)
    for index, (rgb, label) in enumerate(panels):
        x = GAP + index * (PANEL + GAP)
        canvas.text((x + 3, TITLE + 1), label, size=10, fill=MUTED)
        canvas.paste(rgb, (x, TITLE + 14))
    bar_y = canvas.size[1] - BAR + 8
    colour_bar(canvas, (40, bar_y), 220, threshold, vmax, label="z")
    canvas.text((280, bar_y), f"|z| > {threshold:.3g} shown (each face: the mean of its vertices); "
                f"{form.space} inflated mesh", size=10, fill=MUTED)
    return canvas.png()


def _panel(shown, face_z, sulcal, threshold, vmax) -> np.ndarray:
    """One view as RGB: faces beyond the threshold in colour over a grey background (lighter
    on gyri, darker in sulci, shaded by how squarely each face faces the viewer), white
    around the mesh; averaged down from the supersampled view."""
    grey = 0.75 if sulcal is None else 0.95 - 0.6 * shown.paint(sulcal, fill=0.0)
    grey = np.where(shown.covered, grey * (0.55 + 0.45 * shown.facing), 1.0)
    rgb = slices.overlay(grey, shown.paint(face_z, fill=0.0), threshold, vmax)
    return np.rint(mesh.downsample(rgb.astype(np.float64), SUPERSAMPLE)).astype(np.uint8)


def _note_figure(title: str, form) -> bytes:
    """A small image saying why the map is not drawn."""
    if form.kind == "cifti":
        why = "CIFTI maps are not drawn: the mesh of their surface vertices is not shipped with nilearn"
    else:
        why = f"Space {form.space}: its mesh is not shipped with nilearn, so the map is not drawn"
    canvas = Canvas(760, 70)
    canvas.text((8, 8), title, size=13)
    canvas.text((8, 32), why + "; see the table of peak vertices and the map files.", size=11)
    return canvas.png()


def map_section(files, z_file, form, threshold: float, title: str, figure_kind: str, entities: dict,
                what: str) -> dict:
    """What a page shows of a surface or CIFTI z map: its figure, peak |z|, threshold and
    peak-vertex table (the keys a volume contrast's section has for them).

    Parameters
    ----------
    files : pages.Files
    z_file : Path
        The z map (a GIFTI pair's left file, or a ``.dscalar.nii``).
    form : surface.Form
    threshold : float
    title : str
        The figure's title.
    figure_kind : str
        ``subject_figure`` or ``group_figure`` (:mod:`bids_fixedfx.naming`).
    entities : dict
        The figure's and table's entities (subject, task, space, contrast).
    what : str
        What the map is, for the figure's text (``Fixed-effects z map``).
    """
    from .. import naming
    from ..images import read_image

    z = surface.values_of(read_image(z_file)).astype(np.float64)
    finite = np.abs(z[np.isfinite(z)])
    peak = float(finite.max()) if finite.size else 0.0
    png = map_figure(z, form, threshold, max(peak, 1.25 * threshold, 1.0), title)
    table = peak_table(z, form, threshold)
    shown = f"|z| > {threshold:g}"
    figure = files.figure(
        naming.build(figure_kind, desc="zmap", suffix="statmap", extension=".png", **entities), png,
        f"{what} of {entities['contrast']}, {shown}",
        f"{what}, {shown} (uncorrected, for display), "
        + ("on the mesh." if table.on_mesh else "not drawn: no mesh ships with nilearn for this space."),
    )
    tsv_path = naming.build(figure_kind, desc="peaks", suffix="table", extension=".tsv", **entities)
    clusters = listed(table, files, tsv_path)
    return {"figure": figure, "peak": peak, "threshold": shown, "clusters": clusters}
