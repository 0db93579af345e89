"""What a researcher checks to spot a bad run: motion, the design's variance inflation, masks.

Pure functions over a run's records and arrays; the subject page (:mod:`.subject`) shows
their results in its runs table and figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..settings import MOTION_CONFOUNDS

#: Framewise displacement above which a volume is marked in the motion figure (mm;
#: Power et al., 2012, and fMRIPrep's report).
FD_LIMIT = 0.5
#: Radius (mm) of the sphere on which rotations are turned into displacements (Power et al., 2012).
HEAD_RADIUS = 50.0
#: Variance inflation above which a regressor is flagged.
VIF_LIMIT = 5.0


@dataclass(frozen=True, eq=False)
class Motion:
    """A run's framewise displacement (FD).

    Attributes
    ----------
    fd : numpy.ndarray
        FD of each volume in mm (the first is NaN: it has no predecessor).
    source : str
        Where it comes from (the confounds file's column, or computed from its motion
        parameters).
    """

    fd: np.ndarray
    source: str

    @property
    def mean(self) -> float:
        """Mean FD over the volumes that have one (mm)."""
        return float(np.nanmean(self.fd)) if np.isfinite(self.fd).any() else float("nan")

    @property
    def max(self) -> float:
        """Largest FD (mm)."""
        return float(np.nanmax(self.fd)) if np.isfinite(self.fd).any() else float("nan")

    @property
    def n_high(self) -> int:
        """Volumes with FD above :data:`FD_LIMIT`."""
        return int(np.sum(np.nan_to_num(self.fd) > FD_LIMIT))


def framewise_displacement(run) -> Motion | None:
    """A run's FD, from its confounds file: fMRIPrep's ``framewise_displacement`` column, else
    computed from the six motion parameters (Power et al., 2012); None without them.

    Parameters
    ----------
    run : discover.Run

    Returns
    -------
    motion : Motion or None

    Raises
    ------
    InputFileError
        The confounds file cannot be read.
    """
    from ..design import read_table

    if run.confounds is None:
        return None
    table = read_table(run.confounds, "confounds file")
    if "framewise_displacement" in table.columns:
        fd = _numbers(table["framewise_displacement"])
        return Motion(_first_missing(fd), f"column framewise_displacement of {run.confounds.name}")
    if not set(MOTION_CONFOUNDS) <= set(table.columns):
        return None
    moves = np.abs(np.diff(np.column_stack([_numbers(table[name]) for name in MOTION_CONFOUNDS]), axis=0))
    moves[:, 3:] *= HEAD_RADIUS  # rotations (radians) as displacements on a 50 mm sphere
    fd = np.concatenate([[np.nan], moves.sum(axis=1)])
    return Motion(fd, f"computed from the motion parameters of {run.confounds.name}")


def _numbers(column) -> np.ndarray:
    """A confounds column as floats, text that is no number as missing (the report only)."""
    import pandas as pd

    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)


def _first_missing(fd: np.ndarray) -> np.ndarray:
    fd = np.array(fd, dtype=float)
    if fd.size:
        fd[0] = np.nan
    return fd


def variance_inflation(design) -> dict[str, float]:
    """The variance inflation factor of each condition and confound column of a design.

    ``VIF_j = 1 / (1 - R²_j)``, with ``R²_j`` that of the column regressed on all the other
    columns and an intercept, over the volumes that were fitted.

    Parameters
    ----------
    design : design.Design

    Returns
    -------
    vif : dict
        Column -> VIF (``inf`` for a column that the others explain fully); constant
        columns are left out.
    """
    matrix = design.matrix.to_numpy(dtype=float)
    if design.sample_mask is not None:
        matrix = matrix[design.sample_mask]
    columns = [str(c) for c in design.matrix.columns]
    centred = matrix - matrix.mean(axis=0)
    totals = np.einsum("ij,ij->j", centred, centred)
    varying = totals > 1e-12 * np.maximum(1.0, np.einsum("ij,ij->j", matrix, matrix))
    wanted = [columns.index(name) for name in dict.fromkeys([*design.conditions, *design.confounds])
              if name in columns and varying[columns.index(name)]]
    # the diagonal of the inverse of the varying columns' correlation matrix (constant ones are the
    # intercept's): one inversion, not one regression per column (a design of 100 conditions and
    # 2,000 volumes took 1 to 11 s); a design near singular is regressed column by column
    kept = np.flatnonzero(varying)
    scaled = centred[:, kept] / np.sqrt(totals[kept])
    correlation = scaled.T @ scaled
    eigenvalues = np.linalg.eigvalsh(correlation) if kept.size else np.ones(1)
    if eigenvalues[0] > 1e-8 * eigenvalues[-1]:
        diagonal = np.diag(np.linalg.inv(correlation))
        return {columns[j]: float(diagonal[np.searchsorted(kept, j)]) for j in wanted}
    intercept = np.ones((matrix.shape[0], 1))
    vif = {}
    for j in wanted:
        target = matrix[:, j]
        others = np.hstack([np.delete(matrix, j, axis=1), intercept])
        coefficients, *_ = np.linalg.lstsq(others, target, rcond=None)
        residual = target - others @ coefficients
        explained = 1.0 - float(residual @ residual) / float(totals[j])
        vif[columns[j]] = float("inf") if explained >= 1 - 1e-10 else 1.0 / (1.0 - explained)
    return vif


def regressor_correlations(design) -> tuple[list[str], np.ndarray]:
    """Correlations between a design's condition and confound columns (over the fitted volumes).

    Returns
    -------
    names : list of str
    correlations : numpy.ndarray
        Square; NaN where a column is constant.
    """
    columns = [str(c) for c in design.matrix.columns]
    names = [n for n in dict.fromkeys([*design.conditions, *design.confounds]) if n in columns]
    matrix = design.matrix[names].to_numpy(dtype=float)
    if design.sample_mask is not None:
        matrix = matrix[design.sample_mask]
    centred = matrix - matrix.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = centred / norms
        correlations = scaled.T @ scaled
    correlations[:, norms == 0] = np.nan
    correlations[norms == 0, :] = np.nan
    return names, correlations


@dataclass(frozen=True)
class MaskFit:
    """How a run's mask compares to its subject's mask (their intersection).

    Attributes
    ----------
    n_voxels : int
        Voxels in the run's mask.
    kept : float
        Fraction of them inside the subject's mask.
    """

    n_voxels: int
    kept: float


def mask_fits(run_masks, subject_mask: np.ndarray) -> list[MaskFit | None]:
    """Each run's mask against the subject's mask (None for a run without a mask file).

    Parameters
    ----------
    run_masks : list of numpy.ndarray or None
        On the subject mask's grid.
    subject_mask : numpy.ndarray
    """
    inside = subject_mask > 0
    fits = []
    for mask in run_masks:
        if mask is None or mask.shape != inside.shape:
            fits.append(None)
            continue
        voxels = mask > 0
        n_voxels = int(voxels.sum())
        fits.append(MaskFit(n_voxels, float((voxels & inside).sum() / n_voxels) if n_voxels else 0.0))
    return fits
