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

import numpy as np

from .. import surface
from .draw import Canvas
from .tables import MAX_ROWS

#: Rows a peak table holds (in its TSV); the page shows :data:`.tables.MAX_ROWS`.
MAX_PEAKS = 100
#: Views drawn of each hemisphere.
VIEWS = ("lateral", "medial")


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


def _neighbour_max(values, mesh_part):
    """Each vertex's largest value among its mesh neighbours."""
    from scipy import sparse

    faces = np.asarray(mesh_part.faces)
    n = len(values)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    adjacency = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    adjacency.sum_duplicates()
    adjacency.data[:] = 1.0  # an edge of two faces is one neighbour
    shifted = values - values.min() + 1.0  # positive, so a sparse max over neighbours is their max
    return np.asarray(adjacency.multiply(shifted[None, :]).max(axis=1).todense()).ravel() + values.min() - 1.0


def _labels(form):
    """Each vertex's structure and index within it (GIFTI: hemisphere, vertex; CIFTI: the
    brain model's structure and vertex, or voxel ``i,j,k``)."""
    if form.kind == "gifti":
        n_left = form.n_vertices[0]
        return lambda v: ("left", v) if v < n_left else ("right", v - n_left)
    models = form.brain_models

    def label(v):
        structure = models.name[v].replace("CIFTI_STRUCTURE_", "").lower()
        if models.surface_mask[v]:
            return structure, int(models.vertex[v])
        return structure, ",".join(str(int(i)) for i in models.voxel[v])

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
    mesh = surface.load_mesh(form.space) if form.kind == "gifti" else None
    label = _labels(form)
    rows = []
    for sign in (1.0, -1.0):
        signed = sign * z
        above = signed > threshold
        if mesh is not None:
            n_left = form.n_vertices[0]
            neighbours = np.concatenate([_neighbour_max(signed[:n_left], mesh.parts["left"]),
                                         _neighbour_max(signed[n_left:], mesh.parts["right"])])
            above &= signed >= neighbours
        order = np.flatnonzero(above)
        order = order[np.argsort(-signed[order], kind="stable")]
        for vertex in order[:MAX_PEAKS]:
            structure, index = label(int(vertex))
            rows.append((structure, index, round(float(z[vertex]), 2)))
    rows.sort(key=lambda row: -abs(row[2]))
    rows = [(rank, *row) for rank, row in enumerate(rows[:MAX_PEAKS], start=1)]
    return PeakTable(("peak", "structure", "vertex", "z"), tuple(rows), int(np.sum(np.abs(z) > threshold)),
                     mesh is not None)


def map_figure(z, form, threshold: float, vmax: float, title: str) -> bytes:
    """A PNG of a z map: on nilearn's inflated mesh (lateral and medial views of each
    hemisphere) where nilearn ships the mesh, else a note that says why it is not drawn."""
    if form.kind != "gifti" or form.space not in surface.MESH_SPACES:
        return _note_figure(title, form)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from nilearn.datasets import load_fsaverage
    from nilearn.plotting import plot_surf_stat_map

    meshes = load_fsaverage(form.space)
    sulcal = _sulcal_depth(form.space)
    n_left = form.n_vertices[0]
    values = {"left": np.asarray(z[:n_left], dtype=float), "right": np.asarray(z[n_left:], dtype=float)}
    figure = Figure(figsize=(10, 2.8), dpi=90)
    FigureCanvasAgg(figure)
    for column, (hemi, view) in enumerate((h, v) for h in ("left", "right") for v in VIEWS):
        axes = figure.add_subplot(1, 4, column + 1, projection="3d")
        plot_surf_stat_map(
            meshes["inflated"].parts[hemi], values[hemi], hemi=hemi, view=view, threshold=threshold, vmax=vmax,
            bg_map=sulcal.data.parts[hemi] if sulcal is not None else None, axes=axes, figure=figure,
            colorbar=column == 3,
            cmap="RdBu_r", title=f"{hemi} {view}",
        )
    figure.suptitle(title, fontsize=11, y=0.99)
    figure.subplots_adjust(left=0.0, right=0.94, top=0.82, bottom=-0.1, wspace=0.0)
    from io import BytesIO

    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _sulcal_depth(space):
    """nilearn's sulcal depth of fsaverage5 (the figure's grey background), or None."""
    from nilearn.datasets import load_fsaverage_data

    try:
        return load_fsaverage_data(mesh=space, mesh_type="inflated", data_type="sulcal")
    except Exception:  # noqa: BLE001 - a background only: the map is drawn without it
        return None


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
    peak = float(np.max(np.abs(np.nan_to_num(z)))) if z.size else 0.0
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
    clusters = {"table": table, "rows": table.rows[:MAX_ROWS], "tsv": files.table(tsv_path, table.to_tsv()),
                "tsv_name": tsv_path.name}
    return {"figure": figure, "peak": peak, "threshold": shown, "clusters": clusters}
