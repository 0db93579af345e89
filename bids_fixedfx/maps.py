"""Maps and masks as the combining steps read them: one at a time, in-mask values only,
on one voxel grid (the intersection of masks, the check that images share a grid)."""

from __future__ import annotations

import numpy as np

GRID_ATOL = 1e-4
#: Subject-voxel values held at once by the group-level statistics (a block of voxels of all
#: subjects, in float64): with a few temporary copies in ``OLSModel``, about 100 MB whatever the
#: number of subjects.
GROUP_BLOCK_VALUES = 4_000_000


def intersect_masks(mask_imgs, sizes=None):
    """The voxels inside every mask (nilearn's ``intersect_masks`` with threshold 1).

    The masks are read one at a time, so memory does not grow with their number.

    Parameters
    ----------
    mask_imgs : list of Nifti1Image or paths
        Masks on one grid.
    sizes : list, optional
        Where each mask's number of voxels is appended, as it is read.

    Returns
    -------
    mask : Nifti1Image
        int8, 0 and 1, with the first mask's affine.

    Raises
    ------
    ValueError
        No mask, or masks on different grids.
    """
    import nibabel as nib

    mask_imgs = list(mask_imgs)
    if not mask_imgs:
        raise ValueError("No mask to intersect: expected at least one mask image.")
    inside = affine = None
    for index, mask_img in enumerate(mask_imgs):
        values, this_affine = _read_mask(mask_img)
        if sizes is not None:
            sizes.append(int(np.count_nonzero(values)))
        if inside is None:
            inside, affine = values.copy(), this_affine
            continue
        if values.shape != inside.shape or not np.allclose(this_affine, affine, atol=GRID_ATOL):
            raise ValueError(
                f"Mask {index} ({_name(mask_img)}) is not on the grid of mask 0: shape {values.shape} "
                f"and affine {this_affine.round(4).tolist()}, expected {inside.shape} and {affine.round(4).tolist()}."
            )
        inside &= values
    return nib.Nifti1Image(inside.astype(np.int8), affine)


def is_empty(mask_img) -> bool:
    """Whether a mask (an image of 0 and 1, as :func:`intersect_masks` makes) holds no voxel."""
    return not np.asanyarray(mask_img.dataobj).any()


def _coverage(mask_imgs) -> np.ndarray:
    """How many of the masks (on one grid, read one at a time) hold each voxel."""
    counts = None
    for mask_img in mask_imgs:
        values, _ = _read_mask(mask_img)
        counts = values.astype(np.int32) if counts is None else counts + values
    return counts


def least_shared(mask_imgs) -> int:
    """Which mask (its position) holds the smallest part of the voxels that at least half the
    masks share (the masks on one grid, read twice, one at a time)."""
    mask_imgs = list(mask_imgs)
    shared = _coverage(mask_imgs) >= (len(mask_imgs) + 1) // 2
    return int(np.argmin([np.count_nonzero(_read_mask(mask_img)[0] & shared) for mask_img in mask_imgs]))


def masks_apart(mask_imgs) -> list[int]:
    """Which masks leave the intersection of masks on one grid empty: those that hold none of
    the voxels that the most masks share.

    Parameters
    ----------
    mask_imgs : list of Nifti1Image or paths
        Masks on one grid, read twice, one at a time.

    Returns
    -------
    indices : list of int
        The positions of those masks; empty when none stands apart (each holds some of the
        voxels most shared, as two pairs of overlapping masks that miss each other).
    """
    mask_imgs = list(mask_imgs)
    counts = _coverage(mask_imgs)
    most = counts == counts.max()
    return [index for index, mask_img in enumerate(mask_imgs) if not (_read_mask(mask_img)[0] & most).any()]


def disjoint_pair(mask_imgs) -> tuple[int, int] | None:
    """Two masks (their positions) that share no voxel, where the intersection of masks on one
    grid comes out empty: the first mask that empties the intersection of those before it,
    and the first of those that it misses wholly; None when no two miss each other (each
    pair overlaps, but not all of them at once). Masks are read one at a time.
    """
    mask_imgs = list(mask_imgs)
    common = None
    for later, mask_img in enumerate(mask_imgs):
        values = _read_mask(mask_img)[0]
        if common is not None and not (common & values).any():
            return next(((earlier, later) for earlier in range(later)
                         if not (_read_mask(mask_imgs[earlier])[0] & values).any()), None)
        common = values if common is None else common & values
    return None


def why_empty(mask_imgs, names) -> str:
    """Why the intersection of masks on one grid is empty, the masks named by ``names``: those
    apart from the others (:func:`masks_apart`), else two that miss each other
    (:func:`disjoint_pair`), else all of them."""
    apart = [names[index] for index in masks_apart(mask_imgs)]
    if apart:
        return f"the masks of {', '.join(apart)} share none of the voxels that the others share"
    pair = disjoint_pair(mask_imgs)
    if pair:
        return f"the masks of {names[pair[0]]} and {names[pair[1]]} share no voxel"
    return f"no voxel lies inside the masks of all of {', '.join(names)}"


def _is_path(img) -> bool:
    """Whether ``img`` names a file (rather than being an image in memory)."""
    return isinstance(img, (str, bytes)) or hasattr(img, "__fspath__")


def _name(img) -> str:
    return str(img) if _is_path(img) else "in-memory image"


def _read_mask(mask_img):
    """A mask's boolean array and affine, checked as nilearn checks masks (two values, 0 outside)."""
    from nilearn.masking import load_mask_img

    from .images import read_mask

    if _is_path(mask_img):
        mask_img = read_mask(mask_img)  # checked there, and made 0 and 1
        values, affine = np.asanyarray(mask_img.dataobj) != 0, mask_img.affine
    else:
        values, affine = load_mask_img(mask_img, allow_empty=True)
    return np.asarray(values, dtype=bool), np.asarray(affine, dtype=np.float64)


def _read_map(img, check=None):
    """A 3D map's data (in its stored type, as nibabel scales it) and affine, read whole
    (``check``: see :func:`.images.read_image`)."""
    from .images import read_image

    if _is_path(img):
        img = read_image(img, "Subject map", check)
    return np.asanyarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)


def _masked_values(img, inside, affine):
    """The values of one map inside the mask (``inside``, on the grid of ``affine``)."""
    from .errors import InputFileError

    error = InputFileError if _is_path(img) else ValueError  # a file on disk: the input's fault

    def on_grid(shape, this_affine):
        if int(np.prod(shape, dtype=float)) != inside.size or tuple(shape[:3]) != inside.shape or not np.allclose(
            np.asarray(this_affine, dtype=np.float64), affine, atol=GRID_ATOL
        ):
            raise error(
                f"Map {_name(img)} is not on the group mask's grid: shape {tuple(shape)}, "
                f"expected {inside.shape} with affine {affine.round(4).tolist()}."
            )

    data, this_affine = _read_map(img, check=lambda header: on_grid(header.shape, header.affine))  # before its data
    on_grid(data.shape, this_affine)
    values = data.reshape(inside.shape)[inside]
    if _is_path(img) and values.dtype.kind == "f" and values.size and not np.isfinite(values).any():
        # a voxel or a few may be NaN (a voxel constant in a run, under precision weighting), as
        # nilearn's are; a map with no number at all is broken
        raise error(f"Map {_name(img)} holds no finite value inside the mask (NaN or infinite in all "
                    f"{values.size} voxels); rerun the participant level for this subject.")
    return values


def masked_matrix(imgs, mask_img) -> np.ndarray:
    """The maps' values inside the mask, one row per map, reading one map at a time.

    Parameters
    ----------
    imgs : list of Nifti1Image or paths
        3D maps on the mask's grid.
    mask_img : Nifti1Image

    Returns
    -------
    values : numpy.ndarray, shape (n_maps, n_voxels)
        float32 when every map's values are exactly float32 (the app writes its maps in
        float32), else float64: no value is rounded. Non-finite values are 0, as nilearn's
        maskers give them (``SecondLevelModel``, ``compute_fixed_effects``).
    """
    inside = np.asanyarray(mask_img.dataobj).astype(bool)
    affine = np.asarray(mask_img.affine, dtype=np.float64)
    imgs = list(imgs)
    matrix = None
    for row, img in enumerate(imgs):
        values = _masked_values(img, inside, affine)
        dtype = np.float32 if np.can_cast(values.dtype, np.float32, "safe") else np.float64
        if matrix is None:
            matrix = np.empty((len(imgs), values.size), dtype=dtype)
        elif matrix.dtype != np.result_type(matrix.dtype, dtype):
            matrix = matrix.astype(np.float64)
        matrix[row] = values
        if matrix.dtype.kind == "f":  # a row at a time: on the whole matrix, nan_to_num's temporaries
            zero_non_finite(matrix[row])  # held as much again (1,044 vs 676 MB for 500 subjects of 2 mm)
    return matrix


def zero_non_finite(values: np.ndarray) -> np.ndarray:
    """``values`` (floating point) with NaN and infinity set to 0, in place, as nilearn's maskers
    give maps to ``SecondLevelModel`` and ``compute_fixed_effects`` (``ensure_finite``)."""
    return np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def _voxel_blocks(n_rows: int, n_voxels: int):
    size = max(1000, GROUP_BLOCK_VALUES // max(n_rows, 1))
    for start in range(0, n_voxels, size):
        yield slice(start, min(start + size, n_voxels))


def same_grid(imgs, atol=1e-4, grids=None) -> bool:
    """Whether all images share one voxel grid (shape, and affine within ``atol``).

    ``grids``: a dict in which the grid of each file is kept (:func:`grid_of`), so that a
    file checked in several calls is read once."""
    return other_grid(imgs, atol, grids) is None


def other_grid(imgs, atol=1e-4, grids=None) -> tuple | None:
    """The first image on another voxel grid than the first image (see :func:`same_grid`).

    Returns
    -------
    found : tuple of (int, str) or None
        Its index in ``imgs`` and what differs (:func:`grid_difference`); None when all
        share the first image's grid.
    """
    first = None
    for index, img in enumerate(imgs):
        if grids is not None and _is_path(img):
            if img not in grids:
                grids[img] = grid_of(img)
            grid = grids[img]
        else:
            grid = grid_of(img)
        if first is None:
            first = grid
        elif grid[0] != first[0] or not np.allclose(grid[1], first[1], atol=atol):
            return index, grid_difference(first, grid)
    return None


def grid_difference(first, other) -> str:
    """What tells two voxel grids (:func:`grid_of`) apart, in words for a message."""
    (shape, affine), (other_shape, other_affine) = first, other
    if shape != other_shape:
        return f"shape {shape} vs {other_shape}"
    return (f"the same shape {shape} but affines that differ by up to "
            f"{np.abs(np.asarray(affine) - np.asarray(other_affine)).max():.3g} (mm, or rotation and zoom terms)")


def grid_of(img) -> tuple:
    """An image's voxel grid: its first three dimensions and its affine; a file's read from
    its header (:func:`.images.check_image`)."""
    from .images import check_image, read_image
    from .surface import is_surface_file

    if _is_path(img):
        img = read_image(img) if is_surface_file(img) else check_image(img)
    return tuple(img.shape[:3]), np.asarray(img.affine, dtype=np.float64)
