"""Brain slices as arrays: orientation, the slices to show, colour overlays (numpy only).

Volumes are turned to the closest RAS+ orientation once (:func:`load`), so that an axial
tile shows the subject's left on the left and anterior at the top (nilearn's neurological
convention). Overlays are RGB ``uint8`` arrays that :mod:`.draw` places on a canvas;
nothing here draws text or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Colours of the thresholded maps (nilearn's ``cold_hot``): from the threshold to the end
#: of the scale, positive values go red -> yellow, negative ones blue -> cyan.
POSITIVE = np.array([[200, 0, 0], [255, 110, 0], [255, 255, 0]], dtype=float)
NEGATIVE = np.array([[0, 0, 200], [0, 110, 255], [0, 255, 255]], dtype=float)


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image in RAS+ voxel order.

    Attributes
    ----------
    data : numpy.ndarray
        float32, shape (x, y, z), axes pointing right, anterior, superior.
    affine : numpy.ndarray
        Voxel to world (mm) of ``data``.
    """

    data: np.ndarray
    affine: np.ndarray

    @property
    def zooms(self) -> np.ndarray:
        """Voxel sizes in mm along x, y, z."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    def world(self, axis: int, index: int) -> float:
        """The world coordinate (mm) along ``axis`` of slice ``index`` (at the volume's centre)."""
        point = (np.array(self.data.shape, dtype=float) - 1) / 2
        point[axis] = index
        return float((self.affine @ np.append(point, 1.0))[axis])

    def same_grid(self, other: Volume) -> bool:
        """Whether both volumes have one shape and affine."""
        return self.data.shape == other.data.shape and np.allclose(self.affine, other.affine, atol=1e-3)


def as_volume(img) -> Volume:
    """A nibabel image (3D, or 4D with one volume) as a :class:`Volume` in RAS+ order."""
    import nibabel as nib

    if len(img.shape) == 4 and img.shape[3] == 1:
        img = img.slicer[..., 0]
    canonical = nib.as_closest_canonical(img)
    return Volume(np.asarray(canonical.dataobj, dtype=np.float32), canonical.affine)


def load(path) -> Volume:
    """Read a 3D NIfTI file as a :class:`Volume`."""
    import nibabel as nib

    return as_volume(nib.load(str(path)))


def first_volume(path) -> Volume:
    """The first volume of a (4D) series, read without the rest, as a background."""
    import nibabel as nib

    img = nib.load(str(path))
    if len(img.shape) == 3:
        return as_volume(img)
    return as_volume(img.slicer[..., :1])


def extent(mask: np.ndarray, margin: int = 2) -> tuple[slice, slice, slice]:
    """The bounding box of a mask's voxels, widened by ``margin`` voxels (all if it is empty)."""
    found = np.nonzero(mask)
    if not found[0].size:
        return tuple(slice(0, n) for n in mask.shape)
    return tuple(
        slice(max(int(f.min()) - margin, 0), min(int(f.max()) + margin + 1, n))
        for f, n in zip(found, mask.shape)
    )


def choose_cuts(stat: np.ndarray, threshold: float, n_cuts: int, box) -> list[int]:
    """Axial slices through the largest suprathreshold areas, apart from one another.

    Slices are taken in order of their number of voxels with ``|stat| > threshold``, at
    least ``depth / (2 n_cuts)`` apart; when fewer qualify, evenly spaced slices of the
    box fill the rest.

    Parameters
    ----------
    stat : numpy.ndarray
        3D, RAS+ order.
    threshold : float
    n_cuts : int
    box : tuple of slice
        The part of the volume to choose in (:func:`extent`).

    Returns
    -------
    cuts : list of int
        Slice indices, inferior to superior.
    """
    low, high = box[2].start, box[2].stop
    depth = high - low
    n_cuts = max(1, min(n_cuts, depth))
    counts = (np.abs(np.nan_to_num(stat[box])) > threshold).sum(axis=(0, 1))
    gap = max(1, depth // (2 * n_cuts))
    chosen = []
    for index in np.argsort(-counts, kind="stable"):
        if counts[index] == 0 or len(chosen) == n_cuts:
            break
        if all(abs(int(index) - c) >= gap for c in chosen):
            chosen.append(int(index))
    for index in np.linspace(0, depth - 1, n_cuts + 2)[1:-1].round().astype(int):
        if len(chosen) == n_cuts:
            break
        if all(abs(int(index) - c) >= gap for c in chosen):
            chosen.append(int(index))
    return sorted(low + c for c in chosen)


def even_cuts(box, n_cuts: int) -> list[int]:
    """``n_cuts`` axial slices evenly spaced through the box (its ends left out)."""
    low, high = box[2].start, box[2].stop
    n_cuts = max(1, min(n_cuts, high - low))
    return sorted({int(k) for k in np.linspace(low, high - 1, n_cuts + 2)[1:-1].round()})


def peak_cut(stat: np.ndarray, box) -> int:
    """The axial slice, inside the box, of the largest ``|stat|``."""
    values = np.abs(np.nan_to_num(stat[box]))
    return box[2].start + int(np.unravel_index(int(np.argmax(values)), values.shape)[2])


def axial(data: np.ndarray, k: int, box) -> np.ndarray:
    """Axial slice ``k`` as an image: rows anterior to posterior, columns left to right."""
    return data[box[0], box[1], k].T[::-1]


def projection(data: np.ndarray, axis: int, box) -> np.ndarray:
    """The signed maximum-intensity projection along ``axis`` (0 sagittal, 1 coronal,
    2 axial), oriented as that view's slices (superior, or anterior, at the top)."""
    part = np.nan_to_num(data[box])
    top, bottom = part.max(axis=axis), part.min(axis=axis)
    return np.where(top >= -bottom, top, bottom).T[::-1]


def grey(background: Volume, mask: np.ndarray | None = None) -> np.ndarray:
    """A background scaled to [0, 1] between its 2nd and 98th percentiles (inside the mask)."""
    values = background.data
    inside = values[mask > 0] if mask is not None and mask.shape == values.shape else values[values > 0]
    if not inside.size:
        return np.zeros_like(values)
    low, high = np.percentile(inside, [2, 98])
    return np.clip((values - low) / (high - low if high > low else 1.0), 0, 1)


def colour(values: np.ndarray, threshold: float, vmax: float) -> np.ndarray:
    """RGB (float, 0-255) of stat values beyond the threshold (:data:`POSITIVE`, :data:`NEGATIVE`)."""
    level = np.clip((np.abs(values) - threshold) / max(vmax - threshold, 1e-6), 0, 1) * 2
    low = np.minimum(level, 1.999).astype(int)
    weight = (level - low)[..., None]
    positive = POSITIVE[low] * (1 - weight) + POSITIVE[low + 1] * weight
    negative = NEGATIVE[low] * (1 - weight) + NEGATIVE[low + 1] * weight
    return np.where((values >= 0)[..., None], positive, negative)


def overlay(grey_slice, stat_slice: np.ndarray, threshold: float, vmax: float) -> np.ndarray:
    """A stat slice thresholded at ``|stat| > threshold`` over a grey slice (None: black), RGB uint8."""
    if grey_slice is None:
        base = np.zeros(stat_slice.shape + (3,), dtype=float)
    else:
        base = np.repeat(grey_slice[..., None] * 255.0, 3, axis=2)
    stat_slice = np.nan_to_num(stat_slice)
    shown = np.abs(stat_slice) > threshold
    if shown.any():
        base[shown] = colour(stat_slice[shown], threshold, vmax)
    return base.astype(np.uint8)


def upscale(rgb: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Each pixel repeated ``rows`` x ``columns`` times (nearest neighbour)."""
    return np.repeat(np.repeat(rgb, rows, axis=0), columns, axis=1)


def pixel_repeats(zooms, row_axis: int, column_axis: int, width_mm: float, pixels: int) -> tuple[int, int]:
    """Integer pixel repeats that make a tile ``width_mm`` wide about ``pixels`` wide, keeping
    the voxels' aspect ratio (rows along ``row_axis``, columns along ``column_axis``)."""
    per_mm = pixels / max(width_mm, 1e-6)
    return (max(1, round(float(zooms[row_axis]) * per_mm)), max(1, round(float(zooms[column_axis]) * per_mm)))


def voxel_decimals(zooms) -> int:
    """Decimals that tell voxels apart: 0 for voxels of 1 mm or more, 1 below 1 mm, ..."""
    smallest = float(np.min(zooms))
    return 0 if smallest >= 1 else int(np.ceil(-np.log10(smallest)))


def round_to_voxels(value: float, decimals: int):
    """A coordinate at the grid's precision (no float noise like ``17.04999828``): an int
    when ``decimals`` is 0."""
    rounded = round(float(value), decimals)
    if decimals == 0:
        return int(rounded)
    return rounded + 0.0  # no "-0.0"
