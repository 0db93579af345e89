"""The signals of one run: events, condition regressors, motion, drift and the BOLD series.

Pure functions on arrays; every random draw comes from the generator passed in, in a fixed
order (events, then motion, drift and noise), so a seed gives the same data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from nilearn.glm.first_level import compute_regressor

from .study import CONDITIONS, EFFECT_SIZE

BLOCK_DURATION = 12.0
NOISE_PERCENT = 2.0
AR_RHO = 0.3
BACKGROUND_SD = 2.0


@dataclass(frozen=True, eq=False)
class Scene:
    """What a run's BOLD series is made of, on the native grid.

    Attributes
    ----------
    mask : numpy.ndarray of bool
        The run's brain mask; outside it the data are small non-negative noise.
    baseline : numpy.ndarray of float32
        Baseline intensity (the subject's gain applied).
    boxes : Mapping of str to tuple of 3 slice
        Native-grid box of each condition, where its regressor adds the effect.
    """

    mask: np.ndarray
    baseline: np.ndarray
    boxes: Mapping[str, tuple[slice, slice, slice]]


@dataclass(frozen=True, eq=False)
class SimulatedRun:
    """The simulated data of one run.

    Attributes
    ----------
    events : pandas.DataFrame
        ``onset``, ``duration``, ``trial_type``.
    data : numpy.ndarray of float32
        The BOLD series on the native grid (Fortran order: each volume is contiguous).
    motion : numpy.ndarray
        ``n_volumes x 6`` motion parameters: translations (mm), rotations (rad).
    global_signal : numpy.ndarray
        In-mask mean of each volume.
    """

    events: pd.DataFrame
    data: np.ndarray
    motion: np.ndarray
    global_signal: np.ndarray


def make_events(duration: float, rng: np.random.Generator, conditions=CONDITIONS) -> pd.DataFrame:
    """Blocks of the conditions, as balanced as possible, in random order.

    Parameters
    ----------
    duration : float
        Length of the run in seconds; the last block starts at least 6 s before its end
        (and may overrun it).
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        ``onset`` and ``duration`` (s, one decimal) and ``trial_type``; every condition
        occurs when the run has room for as many blocks as there are conditions.
    """
    onsets = [round(float(rng.uniform(4.0, 8.0)), 1)]
    while True:
        onset = round(onsets[-1] + BLOCK_DURATION + float(rng.uniform(6.0, 12.0)), 1)
        if onset > duration - 6.0:
            break
        onsets.append(onset)
    n_each = -(-len(onsets) // len(conditions))
    labels = rng.permutation(np.tile(conditions, n_each)[: len(onsets)])  # the counts differ by one at most
    return pd.DataFrame(
        {
            "onset": onsets,
            "duration": BLOCK_DURATION,
            "trial_type": [str(label) for label in labels],
        }
    )


def condition_regressors(events: pd.DataFrame, n_volumes: int, tr: float, conditions=CONDITIONS) -> np.ndarray:
    """nilearn's Glover-convolved regressor of each condition, at ``arange(n_volumes) * tr``.

    Parameters
    ----------
    events : pandas.DataFrame
        ``onset``, ``duration``, ``trial_type``.
    n_volumes : int
    tr : float

    Returns
    -------
    numpy.ndarray of float32
        ``n_volumes x len(conditions)``, columns in the order of ``conditions``.
    """
    frame_times = np.arange(n_volumes) * tr
    columns = []
    for condition in conditions:
        sel = events[events["trial_type"] == condition]
        exp_condition = np.vstack(
            [sel["onset"], sel["duration"], np.ones(len(sel))]
        ).astype(float)
        reg, _ = compute_regressor(exp_condition, "glover", frame_times)
        columns.append(reg[:, 0])
    return np.column_stack(columns).astype(np.float32)


def motion_parameters(n_volumes: int, rng: np.random.Generator) -> np.ndarray:
    """Random-walk motion: ``n_volumes x 6`` translations (mm) and rotations (rad), 0 first."""
    trans = np.cumsum(rng.normal(0.0, 0.03, (n_volumes, 3)), axis=0)
    rot = np.cumsum(rng.normal(0.0, 0.0005, (n_volumes, 3)), axis=0)
    trans += np.linspace(0, 1, n_volumes)[:, None] * rng.normal(0, 0.2, 3)
    motion = np.hstack([trans, rot])
    return motion - motion[0]


def slow_drift(n_volumes: int, rng: np.random.Generator) -> np.ndarray:
    """A slow float32 drift of about 1 %, as a fraction of the baseline."""
    t = np.linspace(0.0, 1.0, n_volumes)
    a, b = rng.normal(0.0, 0.01, 2)
    return (a * (t - 0.5) + b * np.cos(np.pi * t)).astype(np.float32)


def _motion_weights(shape):
    """Spatial maps giving each translation's effect (fraction per mm)."""
    u, v, w = np.meshgrid(
        *(np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape), indexing="ij"
    )
    return (0.01 * u, 0.01 * v, 0.01 * w)


def simulate_bold(
    scene: Scene, events: pd.DataFrame, n_volumes: int, tr: float, rng
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The BOLD series of one run.

    Inside the mask, ``baseline * (1 + drift + motion + effect + noise)``: the effect is
    ``EFFECT_SIZE`` percent times each condition's regressor in its box, the noise is AR(1)
    (rho 0.3) with a standard deviation of 2 % of the baseline. Values are rounded to 1/16.

    Parameters
    ----------
    scene : Scene
    events : pandas.DataFrame
    n_volumes : int
    tr : float
    rng : numpy.random.Generator
        Draws the motion, the drift and the noise, in that order.

    Returns
    -------
    data : numpy.ndarray of float32
        Native grid plus time, Fortran order.
    motion : numpy.ndarray
        ``n_volumes x 6``.
    global_signal : numpy.ndarray
        In-mask mean of each volume.
    """
    shape = scene.mask.shape
    regs = condition_regressors(events, n_volumes, tr, tuple(scene.boxes)) * np.float32(EFFECT_SIZE / 100.0)
    motion = motion_parameters(n_volumes, rng)
    drift = slow_drift(n_volumes, rng)
    weights = _motion_weights(shape)
    task_maps = []
    for condition in scene.boxes:
        box_map = np.zeros(shape, np.float32)
        box_map[scene.boxes[condition]] = 1.0
        task_maps.append(box_map)

    data = np.empty(shape + (n_volumes,), np.float32, order="F")
    outside = ~scene.mask
    sd = np.float32(NOISE_PERCENT / 100.0)
    innov = np.float32(np.sqrt(1.0 - AR_RHO**2))
    global_signal = np.empty(n_volumes)
    noise = None
    for t in range(n_volumes):
        draw = rng.standard_normal(shape, dtype=np.float32)
        noise = draw if noise is None else np.float32(AR_RHO) * noise + innov * draw
        frac = sd * noise + drift[t]
        for k in range(3):
            frac += np.float32(motion[t, k]) * weights[k]
        for c, box_map in enumerate(task_maps):
            frac += regs[t, c] * box_map
        vol = scene.baseline * (1.0 + frac)
        vol[outside] = np.abs(draw[outside]) * np.float32(BACKGROUND_SD)
        # 1/16 precision: invisible next to the noise, compresses much faster
        data[..., t] = np.round(vol * 16.0) / 16.0
        global_signal[t] = vol[scene.mask].mean()
    return data, motion, global_signal


def simulate_run(
    scene: Scene, n_volumes: int, tr: float, rng: np.random.Generator, conditions=CONDITIONS
) -> SimulatedRun:
    """The events and the BOLD series of one run (:func:`make_events`, :func:`simulate_bold`).

    Parameters
    ----------
    scene : Scene
    n_volumes : int
    tr : float
    rng : numpy.random.Generator
        The run's stream; the confounds are drawn from it afterwards.

    Returns
    -------
    SimulatedRun
    """
    events = make_events(n_volumes * tr, rng, conditions)
    data, motion, global_signal = simulate_bold(scene, events, n_volumes, tr, rng)
    return SimulatedRun(events, data, motion, global_signal)
