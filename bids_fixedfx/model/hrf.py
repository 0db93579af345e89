"""Convolution with an HRF, by nilearn's ``compute_regressor`` at the run's frame times.

``Convolve`` and ``Model.HRF`` both come here, so that every convolved regressor is the one
``make_first_level_design_matrix`` makes for the same events: same HRF kernels, oversampling,
``min_onset``, resampling, orthogonalised derivatives and names (``face``,
``face_derivative``, ``face_dispersion``, ``face_delay_3``). pybids' own ``Convolve`` is not
used: it samples at other times with another oversampling.
"""

from __future__ import annotations

import numpy as np

from ._parse import check_hrf_model
from .bsm import ModelError
from .variables import Variable

#: nilearn's defaults in ``make_first_level_design_matrix``.
OVERSAMPLING = 50
MIN_ONSET = -24.0


def hrf_name(model: str = "spm", derivative: bool = False, dispersion: bool = False, where: str = "Convolve") -> str:
    """nilearn's HRF name from pybids' ``Convolve`` arguments (``spm`` + ``Derivative`` is
    ``spm + derivative``); a full nilearn name is taken as it is."""
    name = check_hrf_model(model, where)
    if name in ("spm", "glover"):
        if dispersion and not derivative:
            raise ModelError(f"{where}: a dispersion derivative needs Derivative too (nilearn has no HRF without it).")
        name += " + derivative" * bool(derivative) + " + dispersion" * bool(dispersion)
    elif (derivative and "derivative" not in name) or (dispersion and "dispersion" not in name):
        raise ModelError(f"{where}: Derivative and Dispersion do not apply to the HRF model {name!r}.")
    return name


def convolve(variable: Variable, hrf_model: str | None, frame_times, *, fir_delays=None,
             oversampling: int = OVERSAMPLING, min_onset: float = MIN_ONSET, where: str = "Convolve") -> list:
    """Convolve a variable, as nilearn does for one condition.

    Parameters
    ----------
    variable : Variable
        Sparse (events: onset, duration, amplitude) or dense (each sample an event as long as
        the sampling interval).
    hrf_model : str or None
        A nilearn HRF name; ``None`` samples the boxcar without convolution, as nilearn does.
    frame_times : numpy.ndarray
        Acquisition times of the volumes.
    fir_delays : sequence of int, optional
        For ``fir``.
    oversampling : int
    min_onset : float
        As in nilearn: events earlier than ``frame_times[0] + min_onset`` are left out.
    where : str
        How errors name the transformation or node.

    Returns
    -------
    regressors : list of Variable
        Dense at ``frame_times``, named as nilearn names them after ``variable.name``.
    """
    from nilearn.glm.first_level import compute_regressor

    if variable.kind == "simple":
        raise ModelError(f"{where}: {variable.name!r} has no timing to convolve.")
    if not variable.numeric:
        raise ModelError(f"{where}: {variable.name!r} holds categories; Factor it before convolving.")
    amplitude = variable.values.astype(float)
    if variable.kind == "sparse":
        onset, duration = variable.onset, variable.duration
    else:
        onset = variable.times
        step = np.diff(onset).min() if len(onset) > 1 else 1.0
        duration = np.full(len(onset), step)
    timing = np.asarray(onset, dtype=float), np.asarray(duration, dtype=float)
    if not all(np.isfinite(values).all() for values in timing):  # nilearn's boxcar of an n/a duration never ends
        what = "an onset" if not np.isfinite(timing[0]).all() else "a duration"
        raise ModelError(
            f"{where}: {variable.name!r} has events whose {what.split()[1]} is n/a (in the events file, or as a "
            f"transformation made it); nilearn's design needs {what} for every event: leave those events out "
            "(Filter, DropNA) or give them one (Replace, Assign) before convolving."
        )
    if np.isnan(amplitude).any():
        raise ModelError(
            f"{where}: {variable.name!r} has n/a values; drop them (DropNA) or replace them before convolving."
        )
    if hrf_model == "fir" and not fir_delays:
        raise ModelError(f"{where}: the 'fir' HRF needs fir_delays.")
    frame_times = np.asarray(frame_times, dtype=float)
    if hrf_model == "fir":
        _check_fir_delays(fir_delays, len(frame_times), where)
    regressors, names = compute_regressor(
        np.vstack([onset, duration, amplitude]), hrf_model, frame_times, con_id=variable.name,
        oversampling=oversampling, fir_delays=list(fir_delays) if fir_delays else None, min_onset=min_onset,
    )
    return [Variable(name, regressors[:, i], times=frame_times, source="convolved") for i, name in enumerate(names)]


def _check_fir_delays(delays, n_volumes, where) -> None:
    """FIR delays are whole numbers of scans, fewer than the run's volumes: a delay past the run
    is an empty regressor, and a hundred thousand of them filled 23 GB of memory."""
    delays = list(delays)
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in delays):
        raise ModelError(f"{where}: fir_delays must be whole numbers of scans (0 or more).")
    if len(delays) > n_volumes or max(delays) >= n_volumes:
        raise ModelError(f"{where}: fir_delays ({len(delays)} of them, up to {max(delays)}) reach past the run's "
                         f"{n_volumes} volumes; give fewer delays, each below {n_volumes} scans.")
