"""An fMRIPrep-shaped confounds table (``desc-confounds_timeseries``) and its sidecar.

Pure functions on arrays: the motion parameters and the global signal come from the
simulation (:mod:`.simulate`); the other columns are drawn from the run's random stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
N_COMPCOR = 5
N_COSINE = 3


@dataclass(frozen=True, eq=False)
class Confounds:
    """A confounds table and its JSON sidecar.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per volume; the first row of derivative columns is missing (NaN).
    sidecar : dict
        Metadata of the CompCor, cosine and framewise-displacement columns.
    """

    table: pd.DataFrame
    sidecar: dict


def _with_first_missing(values):
    """``values`` after a leading NaN: the shape of fMRIPrep's difference columns."""
    out = np.empty(len(values) + 1)
    out[0] = np.nan
    out[1:] = values
    return out


def _slow(n, rng):
    """A 10-volume moving average of white noise, ``n`` values."""
    return np.convolve(rng.normal(0, 1, n + 9), np.ones(10) / 10, mode="valid")


def make_confounds(
    motion: np.ndarray,
    global_signal: np.ndarray,
    baseline_level: float,
    tr: float,
    rng: np.random.Generator,
    non_steady_state: int = 0,
) -> Confounds:
    """fMRIPrep-like confounds of one run.

    Parameters
    ----------
    motion : numpy.ndarray
        ``n_volumes x 6`` motion parameters, in the order of :data:`MOTION_COLUMNS`.
    global_signal : numpy.ndarray
        In-mask mean of each volume.
    baseline_level : float
        Mean baseline intensity; sets the level of ``csf`` and ``white_matter``.
    tr : float
        Repetition time (s), for the cosines' cutoff periods.
    rng : numpy.random.Generator
        Draws ``dvars``, ``csf``, ``white_matter`` and the CompCor components, in that order.
    non_steady_state : int
        Volumes at the start flagged by fMRIPrep's ``non_steady_state_outlier00``, ... columns
        (one per volume, 1 there and 0 elsewhere); none by default.

    Returns
    -------
    Confounds
        Columns: the motion parameters with their derivatives and squares,
        ``framewise_displacement``, ``dvars``, ``std_dvars``, ``global_signal``, ``csf``,
        ``white_matter``, ``a_comp_cor_00`` ... and ``cosine00`` ...
    """
    n = len(global_signal)
    table = {}
    for k, name in enumerate(MOTION_COLUMNS):
        table[name] = motion[:, k]
        deriv = _with_first_missing(np.diff(motion[:, k]))
        table[f"{name}_derivative1"] = deriv
        table[f"{name}_power2"] = motion[:, k] ** 2
        table[f"{name}_derivative1_power2"] = deriv**2
    step = np.abs(np.diff(motion, axis=0))
    table["framewise_displacement"] = _with_first_missing(
        step[:, :3].sum(axis=1) + 50.0 * step[:, 3:].sum(axis=1)
    )
    dvars = _with_first_missing(
        np.abs(np.diff(global_signal)) + rng.gamma(4.0, 2.0, n - 1)
    )
    table["dvars"] = dvars
    table["std_dvars"] = dvars / np.nanmean(dvars)
    table["global_signal"] = global_signal
    table["csf"] = 1.3 * baseline_level * (
        1 + 0.005 * _slow(n, rng) + rng.normal(0, 0.004, n)
    )
    table["white_matter"] = 0.9 * baseline_level * (
        1 + 0.003 * _slow(n, rng) + rng.normal(0, 0.003, n)
    )
    components, singular = _compcor(n, rng)
    for k in range(N_COMPCOR):
        table[f"a_comp_cor_{k:02d}"] = components[:, k]
    frames = np.arange(n)
    for k in range(N_COSINE):
        table[f"cosine{k:02d}"] = np.sqrt(2.0 / n) * np.cos(
            np.pi * (2 * frames + 1) * (k + 1) / (2 * n)
        )
    for k in range(non_steady_state):
        table[f"non_steady_state_outlier{k:02d}"] = (frames == k).astype(float)
    return Confounds(pd.DataFrame(table), _sidecar(n, tr, singular))


def _compcor(n, rng):
    """Smooth orthonormal components and their (decreasing) singular values."""
    raw = rng.normal(0, 1, (n + 4, N_COMPCOR))
    smooth = np.column_stack(
        [np.convolve(col, np.ones(5) / 5, "valid") for col in raw.T]
    )
    smooth -= smooth.mean(axis=0)
    q, r = np.linalg.qr(smooth)
    q *= np.sign(np.diag(r))
    singular = np.sort(np.abs(rng.normal(10, 3, N_COMPCOR)))[::-1]
    return q, singular


def _sidecar(n, tr, singular):
    """The sidecar of the CompCor, cosine and framewise-displacement columns."""
    variance = singular**2 / np.sum(singular**2) * 0.5
    sidecar = {
        f"a_comp_cor_{k:02d}": {
            "CumulativeVarianceExplained": float(variance[: k + 1].sum()),
            "Mask": "combined",
            "Method": "aCompCor",
            "Retained": True,
            "SingularValue": float(singular[k]),
            "VarianceExplained": float(variance[k]),
        }
        for k in range(N_COMPCOR)
    }
    for k in range(N_COSINE):
        sidecar[f"cosine{k:02d}"] = {
            "Description": "Discrete cosine basis for high-pass filtering",
            "CutoffPeriod": round(2.0 * n * tr / (k + 1), 3),
        }
    sidecar["framewise_displacement"] = {
        "Description": "Framewise displacement (Power et al., 2012)",
        "Units": "mm",
    }
    return sidecar
