"""The images the maps are drawn over: a run's BOLD reference, or its first volume.

The reference is found among the BOLD series' neighbours by its entities (the BOLD's
own, suffix ``boldref``), parsed by :func:`bids_fixedfx.naming.parse` relative to the
dataset that holds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import naming
from ..notes import warn_once
from . import slices

#: BOLD references averaged into a group's background (the first subjects').
MAX_AVERAGED = 20
#: Entities that differ between a preprocessed BOLD series and its reference.
_NOT_COMPARED = ("desc", "suffix", "extension")
_NIFTI = (".nii.gz", ".nii")


def dataset_root(path) -> Path | None:
    """The nearest folder above ``path`` that holds a ``dataset_description.json``."""
    for folder in Path(path).parents:
        if (folder / "dataset_description.json").is_file():
            return folder
    return None


def boldref_of(bold) -> Path | None:
    """The BOLD reference image beside a BOLD series (fMRIPrep's ``_boldref``), if any.

    Parameters
    ----------
    bold : Path
        An absolute path to a BOLD series in a BIDS (derivatives) dataset.

    Returns
    -------
    path : Path or None
    """
    bold = Path(bold)
    root = dataset_root(bold)
    if root is None or not bold.parent.is_dir():
        return None
    wanted = _compared(naming.parse(bold.relative_to(root)))
    for candidate in sorted(bold.parent.iterdir()):
        if candidate == bold or not candidate.is_file():
            continue
        entities = naming.parse(candidate.relative_to(root))
        if entities.get("suffix") == "boldref" and entities.get("extension") in _NIFTI \
                and _compared(entities) == wanted:
            return candidate
    return None


def _compared(entities: dict) -> dict:
    return {key: value for key, value in entities.items() if key not in _NOT_COMPARED}


def run_background(bold) -> tuple[slices.Volume, str]:
    """A run's background: its BOLD reference, else the first volume of its series.

    Returns
    -------
    volume : slices.Volume
    what : str
        Which image it is, for captions.
    """
    reference = boldref_of(bold)
    volume = _reference(reference) if reference is not None else None
    if volume is not None and volume.data.ndim == 3:
        return volume, "the BOLD reference image"
    return slices.first_volume(bold), "the first volume of the BOLD series"


def _reference(path) -> slices.Volume | None:
    """A BOLD reference image, or None (said once) when it cannot be read: it is a background
    only, and an empty or corrupt one stopped the reports after every map was written."""
    try:
        return slices.load(path)
    except Exception as error:  # noqa: BLE001 - nibabel's errors of a bad file are of many kinds
        warn_once(f"The BOLD reference {path} cannot be read ({' '.join(str(error).split())[:200]}), so the "
                  "figures are drawn over other images; replace it, or remove it.")
        return None


def on_grid(background: slices.Volume | None, grid: slices.Volume, mask=None):
    """Grey levels of a background on the maps' grid, or None when it is on another grid."""
    if background is None or not background.same_grid(grid):
        return None
    return slices.grey(background, mask)


def mean_background(bolds, grid: slices.Volume, mask=None, limit: int = MAX_AVERAGED):
    """The mean of the BOLD references of several runs on the maps' grid (the first ``limit``
    found), as grey levels; None when none is."""
    total, count = None, 0
    for bold in bolds:
        if count == limit:
            break
        reference = boldref_of(bold) if bold is not None else None
        volume = _reference(reference) if reference is not None else None
        if volume is None or volume.data.ndim != 3 or not volume.same_grid(grid):
            continue
        total = volume.data.astype(np.float64) if total is None else total + volume.data
        count += 1
    if not count:
        return None
    return slices.grey(slices.Volume((total / count).astype(np.float32), grid.affine), mask)
