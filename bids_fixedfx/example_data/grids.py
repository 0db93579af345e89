"""Voxel grids and what lies on them: brain masks, active boxes, baseline, T1w image.

Pure functions on arrays. The template grid (every space but ``T1w``) has 3 mm voxels; the
native grid (raw BOLD, raw T1w, space ``T1w``) is the template grid padded by
:data:`NATIVE_PAD` voxels on each side, at the same world coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .study import CONDITIONS

VOXEL_SIZE = 3.0
NATIVE_PAD = (2, 2, 1)
"""Voxels added on each side of the template grid to make the native grid."""

# Box centre and half-width of each condition, as fractions of the template
# grid (x: left->right, y: posterior->anterior, z: inferior->superior).
_BOX_FRACTIONS = {
    "audio": ((0.25, 0.55, 0.45), (0.10, 0.09, 0.10)),
    "visual": ((0.50, 0.22, 0.50), (0.10, 0.08, 0.10)),
}
_MASK_SEMI_AXES = 0.45  # ellipsoid semi-axes as a fraction of the grid shape

Box = tuple[slice, slice, slice]


@dataclass(frozen=True, eq=False)
class Grids:
    """Template (MNI) and native (T1w / raw) voxel grids.

    Attributes
    ----------
    template_shape, native_shape : tuple of 3 int
    template_affine, native_affine : numpy.ndarray
        4 x 4 voxel-to-world matrices (mm).
    crop : tuple of 3 slice
        The template grid inside the native grid.
    """

    template_shape: tuple[int, int, int]
    template_affine: np.ndarray
    native_shape: tuple[int, int, int]
    native_affine: np.ndarray
    crop: Box


def make_grids(shape) -> Grids:
    """The template and native grids of a template ``shape``.

    Parameters
    ----------
    shape : tuple of 3 int
        Shape of the template grid.

    Returns
    -------
    Grids
    """
    affine = np.diag([VOXEL_SIZE] * 3 + [1.0])
    affine[:3, 3] = [-VOXEL_SIZE * (n // 2) for n in shape]
    affine[1, 3] -= 18.0  # centre the field of view a bit posterior, like MNI
    affine[2, 3] += 9.0
    native_affine = affine.copy()
    native_affine[:3, 3] -= VOXEL_SIZE * np.asarray(NATIVE_PAD)
    native_shape = tuple(n + 2 * p for n, p in zip(shape, NATIVE_PAD))
    crop = tuple(slice(p, p + n) for n, p in zip(shape, NATIVE_PAD))
    return Grids(tuple(shape), affine, native_shape, native_affine, crop)


def to_native(template: np.ndarray) -> np.ndarray:
    """Pad a template-grid array (a mask) with zeros to the native grid."""
    return np.pad(template, [(p, p) for p in NATIVE_PAD])


def native_box(box: Box) -> Box:
    """The native-grid indices of a template-grid box."""
    return tuple(slice(s.start + p, s.stop + p) for s, p in zip(box, NATIVE_PAD))


def active_boxes(shape, conditions=CONDITIONS) -> dict[str, Box]:
    """The non-overlapping voxel box of each condition in the template grid.

    Parameters
    ----------
    shape : tuple of 3 int
        Shape of the template grid.
    conditions : sequence of str
        The first two take the boxes of ``audio`` and ``visual``; others have none.

    Returns
    -------
    dict of str to tuple of 3 slice
        One box per condition that has one.
    """
    boxes = {}
    for condition, (centre, half) in zip(conditions, _BOX_FRACTIONS.values()):
        box = []
        for n, c, h in zip(shape, centre, half):
            width = max(2, int(round(2 * h * n)))
            start = int(round(c * n - width / 2))
            box.append(slice(start, start + width))
        boxes[condition] = tuple(box)
    return boxes


def brain_mask(shape) -> np.ndarray:
    """The brain: a boolean ellipsoid centred in a grid of ``shape``."""
    coords = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    radius = sum(
        ((c - (n - 1) / 2) / (_MASK_SEMI_AXES * n)) ** 2 for c, n in zip(coords, shape)
    )
    return radius <= 1.0


def run_mask(mask: np.ndarray, variant: int) -> np.ndarray:
    """The brain mask of one run: variant 1 moves the superior face down one voxel.

    Parameters
    ----------
    mask : numpy.ndarray of bool
        The brain mask (:func:`brain_mask`).
    variant : {0, 1}
        0 gives ``mask`` itself.

    Returns
    -------
    numpy.ndarray of bool
    """
    if variant == 0:
        return mask
    out = mask.copy()
    top = np.nonzero(mask.any(axis=(0, 1)))[0].max()
    out[:, :, top] = False
    # voxels that were just below the old top become the new face
    out[:, :, top - 1] &= mask[:, :, top]
    return out


def baseline(shape) -> np.ndarray:
    """Smooth float32 baseline intensity between about 850 and 1150."""
    u, v, w = np.meshgrid(
        *(np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape), indexing="ij"
    )
    smooth = 0.6 * np.cos(np.pi * u) + 0.4 * np.sin(np.pi * v) * np.cos(np.pi * w / 2)
    return (1000.0 + 150.0 * smooth).astype(np.float32)


def t1w_image(grids: Grids, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small int16 T1w image on the native grid.

    Parameters
    ----------
    grids : Grids
    mask : numpy.ndarray of bool
        The brain mask on the native grid.
    rng : numpy.random.Generator
        Draws the image noise.

    Returns
    -------
    numpy.ndarray of int16
        White matter 900, grey matter 600, a scalp shell 300, plus noise.
    """
    shape = grids.native_shape
    coords = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    radius = np.sqrt(
        sum(
            ((c - (n - 1) / 2) / (_MASK_SEMI_AXES * (n - 2 * p))) ** 2
            for c, n, p in zip(coords, shape, NATIVE_PAD)
        )
    )
    t1 = np.where(radius < 0.75, 900.0, 600.0) * mask  # white / grey matter
    t1 += np.where((radius >= 1.0) & (radius < 1.15), 300.0, 0.0)  # scalp
    t1 += np.abs(rng.normal(0.0, 20.0, shape))
    return np.round(t1).astype(np.int16)


@dataclass(frozen=True, eq=False)
class Anatomy:
    """What every subject shares: the grids, the brain, the active boxes, the baseline.

    Attributes
    ----------
    grids : Grids
    brain : numpy.ndarray of bool
        The brain mask on the template grid (:func:`brain_mask`).
    active : dict of str to tuple of 3 slice
        Each condition's box on the template grid (:func:`active_boxes`).
    baseline : numpy.ndarray of float32
        Baseline intensity on the native grid (:func:`baseline`).
    """

    grids: Grids
    brain: np.ndarray
    active: dict[str, Box]
    baseline: np.ndarray

    @property
    def native_boxes(self) -> dict[str, Box]:
        """Each condition's box on the native grid."""
        return {c: native_box(box) for c, box in self.active.items()}


def make_anatomy(shape, conditions=CONDITIONS) -> Anatomy:
    """The grids, brain, boxes and baseline of a template ``shape``.

    Parameters
    ----------
    shape : tuple of 3 int
        Shape of the template grid.

    Returns
    -------
    Anatomy

    Raises
    ------
    ValueError
        If a box does not lie inside every run's brain mask (``shape`` too small).
    """
    grids = make_grids(shape)
    brain = brain_mask(shape)
    active = active_boxes(shape, conditions)
    smaller = run_mask(brain, 1)
    for box in active.values():
        if not smaller[box].all():
            raise ValueError(f"shape {shape} is too small for the active boxes")
    return Anatomy(grids, brain, active, baseline(grids.native_shape))
