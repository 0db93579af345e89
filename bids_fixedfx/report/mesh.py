"""Views of a surface mesh as images: which face each pixel shows (numpy only).

A view looks at a hemisphere from one side, as nilearn's ``plot_surf`` views do (lateral
and medial: along the x axis), in orthographic projection. Each pixel shows the face
nearest the viewer at the pixel's centre (a depth buffer over every face that covers the
centre), so a figure only has to colour faces: the view of a mesh is computed once and
kept, and each map drawn on it is a lookup of its face values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: For each (hemisphere, view): where the viewer stands (a unit vector, RAS) and the
#: image's rightward axis. Up is superior. Lateral views put anterior on the outer side.
CAMERAS = {
    ("left", "lateral"): ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    ("left", "medial"): ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    ("right", "lateral"): ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    ("right", "medial"): ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
}


@dataclass(frozen=True, eq=False)
class MeshView:
    """One view of a mesh.

    Attributes
    ----------
    face : numpy.ndarray
        ``(height, width)`` int: the face each pixel shows, -1 where none does.
    facing : numpy.ndarray
        ``(height, width)`` float: how squarely the face shown faces the viewer (|cosine|
        of its normal and the viewing direction), 0 where no face is shown.
    """

    face: np.ndarray
    facing: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        """Pixels that show a face."""
        return self.face >= 0

    def paint(self, face_values: np.ndarray, fill=np.nan) -> np.ndarray:
        """Per-face values (any trailing shape) as an image; ``fill`` where no face is shown."""
        face_values = np.asarray(face_values)
        image = np.full(self.face.shape + face_values.shape[1:], fill, dtype=np.result_type(face_values, fill))
        covered = self.covered
        image[covered] = face_values[self.face[covered]]
        return image


def project(coords, camera, per_mm: float, size: tuple[int, int]):
    """Vertex positions in pixels (x right, y down; the mesh centred in the image) and depths
    (smaller is nearer the viewer) for a view from ``camera`` (see :data:`CAMERAS`).

    Parameters
    ----------
    coords : numpy.ndarray
        ``(n_vertices, 3)``, mm.
    camera : tuple
        Where the viewer stands and the image's rightward axis (unit vectors).
    per_mm : float
        Pixels per mm.
    size : tuple of int
        ``(height, width)`` of the image.

    Returns
    -------
    xy : numpy.ndarray
        ``(n_vertices, 2)`` positions in pixels.
    depth : numpy.ndarray
        ``(n_vertices,)``: smaller is nearer the viewer.
    """
    coords = np.asarray(coords, dtype=np.float64)
    towards, right = (np.asarray(v, dtype=np.float64) for v in camera)
    up = np.cross(towards, right)
    across, height = coords @ right, coords @ up
    x = (across - (across.min() + across.max()) / 2) * per_mm + size[1] / 2
    y = ((height.min() + height.max()) / 2 - height) * per_mm + size[0] / 2
    return np.column_stack([x, y]), -(coords @ towards)


def rasterise(xy: np.ndarray, depth: np.ndarray, faces: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The face nearest the viewer at each pixel's centre, -1 where no face covers it.

    Parameters
    ----------
    xy : numpy.ndarray
        ``(n_vertices, 2)`` positions in pixels; pixel ``(row, column)`` has its centre at
        ``(column + 0.5, row + 0.5)``.
    depth : numpy.ndarray
        ``(n_vertices,)``: smaller is nearer; interpolated linearly over each face.
    faces : numpy.ndarray
        ``(n_faces, 3)`` vertex indices, in either winding.
    size : tuple of int
        ``(height, width)``.

    Returns
    -------
    face : numpy.ndarray
        ``(height, width)`` int64.
    """
    height, width = size
    faces = np.asarray(faces, dtype=np.int64)
    corners = xy[faces]  # (n_faces, 3, 2)
    first = np.ceil(corners.min(axis=1) - 0.5).astype(np.int64)  # first pixel centre inside the box
    last = np.floor(corners.max(axis=1) - 0.5).astype(np.int64)
    first, last = np.maximum(first, 0), np.minimum(last, [width - 1, height - 1])
    spans = last - first + 1  # pixel centres along x and y within each face's box
    extent = spans.max(axis=1)
    pixels, depths, owners = [], [], []
    for group in _size_groups(extent):
        side = int(extent[group].max())
        offset_x, offset_y = (a.ravel() for a in np.meshgrid(np.arange(side), np.arange(side)))
        column = first[group, 0:1] + offset_x  # (n, side * side)
        row = first[group, 1:2] + offset_y
        inside_box = (offset_x < spans[group, 0:1]) & (offset_y < spans[group, 1:2])
        a, b, c = (corners[group, k, :] for k in range(3))
        area = _cross(b - a, c - a)[:, None]
        px, py = column + 0.5, row + 0.5
        weight_a = _edge(b, c, px, py) / np.where(area == 0, 1.0, area)
        weight_b = _edge(c, a, px, py) / np.where(area == 0, 1.0, area)
        weight_c = 1.0 - weight_a - weight_b
        inside = inside_box & (area != 0) & (weight_a >= 0) & (weight_b >= 0) & (weight_c >= 0)
        d = depth[faces[group]]
        z = weight_a * d[:, 0:1] + weight_b * d[:, 1:2] + weight_c * d[:, 2:3]
        pixels.append((row * width + column)[inside])
        depths.append(z[inside])
        owners.append(np.broadcast_to(group[:, None], inside.shape)[inside])
    face = np.full(height * width, -1, dtype=np.int64)
    if pixels:
        pixels, depths, owners = np.concatenate(pixels), np.concatenate(depths), np.concatenate(owners)
        order = np.lexsort((depths, pixels))  # by pixel, nearest first
        pixels, owners = pixels[order], owners[order]
        nearest = np.ones(pixels.size, dtype=bool)
        nearest[1:] = pixels[1:] != pixels[:-1]
        face[pixels[nearest]] = owners[nearest]
    return face.reshape(height, width)


def _size_groups(extent):
    """Faces grouped by the side of their pixel box (powers of two), so that each group's
    candidate pixels are a small square per face; faces covering no pixel centre are left out."""
    kept = np.flatnonzero(extent > 0)
    bucket = np.ceil(np.log2(np.maximum(extent[kept], 1))).astype(int)
    return [kept[bucket == b] for b in np.unique(bucket)]


def _cross(u, v):
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]


def _edge(p, q, px, py):
    """Twice the signed area of the triangle (p, q, pixel centre), per face and pixel."""
    return ((q[:, 0:1] - p[:, 0:1]) * (py - p[:, 1:2])) - ((q[:, 1:2] - p[:, 1:2]) * (px - p[:, 0:1]))


def facing(coords, faces, camera) -> np.ndarray:
    """How squarely each face faces the viewer.

    Parameters
    ----------
    coords : numpy.ndarray
        ``(n_vertices, 3)``.
    faces : numpy.ndarray
        ``(n_faces, 3)`` vertex indices.
    camera : tuple
        See :data:`CAMERAS`.

    Returns
    -------
    cosine : numpy.ndarray
        ``(n_faces,)``: |cosine| of each face's normal with the viewing direction (0 for a
        degenerate face).
    """
    coords = np.asarray(coords, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    a, b, c = (coords[faces[:, k]] for k in range(3))
    normal = np.cross(b - a, c - a)
    length = np.linalg.norm(normal, axis=1)
    return np.abs(normal @ np.asarray(camera[0], dtype=np.float64)) / np.where(length == 0, 1.0, length)


def view(coords, faces, camera, per_mm: float, size: tuple[int, int]) -> MeshView:
    """A view of a mesh: the face each pixel shows, and how squarely it faces the viewer.

    Parameters
    ----------
    coords : numpy.ndarray
        ``(n_vertices, 3)``, mm.
    faces : numpy.ndarray
        ``(n_faces, 3)`` vertex indices.
    camera : tuple
        See :data:`CAMERAS`.
    per_mm : float
        Pixels per mm.
    size : tuple of int
        ``(height, width)``.

    Returns
    -------
    view : MeshView
    """
    xy, depth = project(coords, camera, per_mm, size)
    face = rasterise(xy, depth, faces, size)
    shown = face >= 0
    cosine = np.zeros(face.shape)
    cosine[shown] = facing(coords, faces, camera)[face[shown]]
    return MeshView(face, cosine)


@dataclass(frozen=True, eq=False)
class HemisphereViews:
    """The views of one space's inflated hemispheres that the report draws maps on.

    Attributes
    ----------
    views : dict
        ``(hemisphere, view)`` -> :class:`MeshView`, all at one scale.
    faces : dict
        Hemisphere -> ``(n_faces, 3)`` vertex indices.
    sulcal : dict
        Hemisphere -> per-face sulcal depth scaled to [0, 1] (nilearn's background), or
        None when nilearn has none.
    """

    views: dict
    faces: dict
    sulcal: dict | None


@lru_cache(maxsize=4)
def hemisphere_views(space: str, width: int, supersample: int = 2) -> HemisphereViews:
    """The lateral and medial views of both hemispheres of nilearn's inflated mesh of
    ``space``, ``width`` pixels wide (times ``supersample``), computed once per process.

    Parameters
    ----------
    space : str
        A space whose meshes nilearn ships (``fsaverage5``).
    width : int
        Width of each view in the figure, pixels.
    supersample : int
        Pixels per figure pixel along each axis (the figure averages them: smooth edges).

    Returns
    -------
    views : HemisphereViews
        All four views at one scale: the widest fills ``width`` (less a 2-pixel margin on
        each side), the tallest sets the height.
    """
    from nilearn.datasets import load_fsaverage

    inflated = load_fsaverage(space)["inflated"]
    coords = {h: np.asarray(inflated.parts[h].coordinates, dtype=np.float64) for h in ("left", "right")}
    faces = {h: np.asarray(inflated.parts[h].faces, dtype=np.int64) for h in ("left", "right")}
    extents = [np.ptp(project(coords[hemi], camera, 1.0, (0, 0))[0], axis=0)
               for (hemi, _), camera in CAMERAS.items()]  # mm across and up
    across, up = np.max(extents, axis=0)
    per_mm = (width - 4) / across
    size = (int(np.ceil(up * per_mm)) + 4, width)
    big = tuple(s * supersample for s in size)
    views = {key: view(coords[key[0]], faces[key[0]], camera, per_mm * supersample, big)
             for key, camera in CAMERAS.items()}
    return HemisphereViews(views, faces, _sulcal_faces(space, faces))


def _sulcal_faces(space, faces):
    """nilearn's sulcal depth of the mesh, averaged over each face and scaled to [0, 1]
    per hemisphere (as ``plot_surf`` does for its background); None when nilearn has none."""
    from nilearn.datasets import load_fsaverage_data

    try:
        data = load_fsaverage_data(mesh=space, mesh_type="inflated", data_type="sulcal").data.parts
    except Exception:  # noqa: BLE001 - a background only: the maps are drawn without it
        return None
    scaled = {}
    for hemi, hemi_faces in faces.items():
        values = np.asarray(data[hemi], dtype=np.float64)[hemi_faces].mean(axis=1)
        low, high = np.nanmin(values), np.nanmax(values)
        scaled[hemi] = np.clip((values - low) / (high - low if high > low else 1.0), 0, 1)
    return scaled


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """An image shrunk by averaging blocks of pixels.

    Parameters
    ----------
    image : numpy.ndarray
        Height and width first (any trailing axes, such as RGB).
    factor : int
        The side of each block; the image's height and width are cut to multiples of it.

    Returns
    -------
    image : numpy.ndarray
        The mean of each ``factor`` x ``factor`` block (float).
    """
    if factor == 1:
        return image
    height, width = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[:height * factor, :width * factor].reshape(height, factor, width, factor, *image.shape[2:])
    return blocks.mean(axis=(1, 3))
