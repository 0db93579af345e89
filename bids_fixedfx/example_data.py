"""Generate a small, realistic BIDS example dataset with known effects.

The dataset mimics a task-fMRI study (task ``checkerboard`` with the two
conditions ``audio`` and ``visual``) together with fMRIPrep-shaped
derivatives in ``derivatives/fmriprep``.  Every condition activates its own
box of voxels, so the output of a fixed-effects analysis can be checked
against a known ground truth.  The data serve both as the product's demo data
and as test data.

Examples
--------
>>> from bids_fixedfx.example_data import make_example_dataset
>>> ds = make_example_dataset("/tmp/example_bids")  # doctest: +SKIP
>>> ds.active["visual"]  # doctest: +SKIP
(slice(10, 15, None), slice(4, 8, None), slice(8, 12, None))

From the command line::

    bids-fixedfx-example /tmp/example_bids --subjects 4
    python -m bids_fixedfx.example_data /tmp/example_bids
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm.first_level import compute_regressor

__all__ = ["ExampleDataset", "make_example_dataset", "main"]

TASK = "checkerboard"
CONDITIONS = ("audio", "visual")
EFFECT_SIZE = 2.5
"""Amplitude (in percent of the baseline) of each condition's regressor."""

BIDS_VERSION = "1.9.0"
FMRIPREP_VERSION = "23.2.0"
VOXEL_SIZE = 3.0
NATIVE_PAD = (2, 2, 1)
"""Voxels added on each side of the template grid to make the native grid."""

BLOCK_DURATION = 12.0
NOISE_PERCENT = 2.0
AR_RHO = 0.3
BACKGROUND_SD = 2.0

_SCANNER = {
    "Manufacturer": "Synthetic",
    "ManufacturersModelName": "bids-fixedfx simulator",
    "DeviceSerialNumber": "0000",
    "StationName": "simulator",
    "SoftwareVersions": "n/a",
    "MagneticFieldStrength": 3,
    "ReceiveCoilName": "simulated 32-channel head coil",
    "ReceiveCoilActiveElements": "all",
    "MatrixCoilMode": "n/a",
    "CoilCombinationMethod": "rSOS",
    "NonlinearGradientCorrection": False,
    "InstitutionName": "n/a (synthetic data)",
    "InstitutionAddress": "n/a",
    "InstitutionalDepartmentName": "n/a",
}
"""Nominal scanner metadata: the data are simulated, not acquired."""

_BOLD_SEQUENCE = {
    "PulseSequenceType": "Gradient Echo EPI",
    "ScanningSequence": "EP",
    "SequenceVariant": "SK",
    "SequenceName": "epfid2d1",
    "PulseSequenceDetails": "nominal 2D GE-EPI (simulated)",
    "MRAcquisitionType": "2D",
    "PhaseEncodingDirection": "j-",
    "TotalReadoutTime": 0.03,
    "EchoTime": 0.03,
    "DwellTime": 0.0005,
    "FlipAngle": 75,
}

_T1W_SEQUENCE = {
    "PulseSequenceType": "MPRAGE",
    "ScanningSequence": ["GR", "IR"],
    "SequenceVariant": ["SK", "SP", "MP"],
    "SequenceName": "tfl3d1",
    "PulseSequenceDetails": "nominal MPRAGE (simulated)",
    "MRAcquisitionType": "3D",
    "EchoTime": 0.0029,
    "InversionTime": 0.9,
    "DwellTime": 0.0000075,
    "FlipAngle": 9,
}

MNI_REFERENCE = (
    "https://templateflow.s3.amazonaws.com/tpl-MNI152NLin2009cAsym/"
    "tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz"
)
AUTHORS = ["Example Author One", "Example Author Two"]

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
N_COMPCOR = 5
N_COSINE = 3

# Box centre and half-width of each condition, as fractions of the template
# grid (x: left->right, y: posterior->anterior, z: inferior->superior).
_BOX_FRACTIONS = {
    "audio": ((0.25, 0.55, 0.45), (0.10, 0.09, 0.10)),
    "visual": ((0.50, 0.22, 0.50), (0.10, 0.08, 0.10)),
}
_MASK_SEMI_AXES = 0.45  # ellipsoid semi-axes as a fraction of the grid shape


@dataclass(frozen=True)
class ExampleDataset:
    """Description of a dataset written by :func:`make_example_dataset`.

    Attributes
    ----------
    path : pathlib.Path
        Root of the raw BIDS dataset.
    subjects : tuple of str
        Subject labels without the ``sub-`` prefix, e.g. ``("01", "02")``.
    tasks : tuple of str
        Task labels, e.g. ``("checkerboard",)``.
    conditions : tuple of str
        ``trial_type`` values used in the events files.
    spaces : tuple of str
        Output spaces of the derivatives.
    active : Mapping of str to tuple of slice
        For each condition, the voxel box (indices into the template/MNI
        grid) in which that condition has a positive effect.  Boxes do not
        overlap.  In the ``T1w`` grid the same box is shifted by the padding
        (2, 2, 1) voxels; see :func:`make_example_dataset`.
    effect_size : float
        Percent signal change of the effect in the active box, as the
        amplitude of nilearn's Glover-convolved regressor of the condition.
    """

    path: Path
    subjects: tuple[str, ...]
    tasks: tuple[str, ...]
    conditions: tuple[str, ...]
    spaces: tuple[str, ...]
    active: Mapping[str, tuple[slice, slice, slice]]
    effect_size: float


@dataclass(frozen=True)
class _Grids:
    """Template (MNI) and native (T1w / raw) voxel grids."""

    template_shape: tuple[int, int, int]
    template_affine: np.ndarray
    native_shape: tuple[int, int, int]
    native_affine: np.ndarray
    crop: tuple[slice, slice, slice]  # template grid inside the native grid


def make_example_dataset(
    path,
    *,
    n_subjects=3,
    n_sessions=2,
    n_runs=2,
    shape=(24, 28, 20),
    n_volumes=90,
    tr=2.0,
    spaces=("MNI152NLin2009cAsym", "T1w"),
    seed=0,
    derivatives=True,
) -> ExampleDataset:
    """Write a small BIDS task-fMRI dataset with fMRIPrep-shaped derivatives.

    The raw dataset holds, for every subject, session and run, a BOLD series
    of the task ``checkerboard`` and its events (blocks of the conditions
    ``audio`` and ``visual`` in random order), plus one small T1w image per
    subject.  The repetition time lives only in the top-level
    ``task-checkerboard_bold.json`` (BIDS inheritance).  With
    ``derivatives=True``, ``derivatives/fmriprep`` holds per run and space a
    preprocessed BOLD series, a brain mask and a BOLD reference, and per run
    a confounds table.

    The signal inside the brain mask is::

        B(x) * (1 + drift(t) + motion(t, x)
                + effect_size / 100 * sum_c box_c(x) * X_c(t)
                + noise(t, x))

    where ``B`` is a smooth baseline between about 800 and 1200, ``X_c`` is
    the regressor of condition ``c`` computed by nilearn's
    ``compute_regressor`` with the ``glover`` HRF at frame times
    ``arange(n_volumes) * tr`` (so a GLM with that design and percent signal
    scaling recovers ``effect_size`` in the box of ``c``), ``drift`` is a slow
    drift of about 1 %, ``motion`` is a small contribution of the motion
    confounds, and ``noise`` is AR(1) noise (rho 0.3) with a standard
    deviation of 2 % of the baseline, drawn anew for every run.  Outside the
    mask the data are small non-negative noise, as in skull-stripped data.

    Grids: the template spaces (every space but ``T1w``) use ``shape`` with
    3 mm isotropic voxels.  The native grid, used by the raw BOLD series, the
    raw T1w image and the ``T1w`` space, is the template grid padded by
    (2, 2, 1) voxels on each side, with the same world coordinates; the
    subjects' anatomy is taken to coincide with the template.  Hence the
    active box of a condition in the ``T1w`` grid is ``ExampleDataset.active``
    shifted by (2, 2, 1) voxels, and the T1w-space data are the same data as
    the template-space data, padded.

    Layout: with ``n_sessions == 1`` there is no session level; otherwise the
    sessions are ``ses-1``, ``ses-2``, ...  Runs are ``run-01``, ``run-02``,
    ...  When ``n_subjects >= 3`` the last subject has a single run
    (``ses-1``, ``run-01``).  The brain mask is an ellipsoid whose superior
    face is one voxel lower in every other run, so a subject's runs have
    different masks.  Existing files at the same names are overwritten.

    Parameters
    ----------
    path : str or os.PathLike
        Root directory of the dataset to write; created if needed.
    n_subjects : int, default=3
        Number of subjects.
    n_sessions : int, default=2
        Number of sessions per subject.
    n_runs : int, default=2
        Number of runs per session.
    shape : tuple of 3 int, default=(24, 28, 20)
        Shape of the template (MNI) grid; each side at least 12 voxels.
    n_volumes : int, default=90
        Volumes per run.
    tr : float, default=2.0
        Repetition time in seconds.
    spaces : sequence of str, default=("MNI152NLin2009cAsym", "T1w")
        Output spaces of the derivatives.
    seed : int, default=0
        Seed of the random generator; the same seed gives identical data.
    derivatives : bool, default=True
        Whether to write ``derivatives/fmriprep``.

    Returns
    -------
    ExampleDataset
        Where the dataset is and which effects it holds.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """
    root = Path(path)
    shape = tuple(int(s) for s in shape)
    spaces = tuple(spaces)
    tr = float(tr)
    _check_parameters(n_subjects, n_sessions, n_runs, shape, n_volumes, tr, spaces)

    grids = _make_grids(shape)
    active = _active_boxes(shape)
    template_mask = _ellipsoid_mask(shape)
    for box in active.values():
        if not _variant_mask(template_mask, 1)[box].all():
            raise ValueError(f"shape {shape} is too small for the active boxes")
    subjects = tuple(f"{i + 1:02d}" for i in range(n_subjects))

    root.mkdir(parents=True, exist_ok=True)
    _write_raw_metadata(
        root, subjects, tr, grids.native_shape[2], np.random.default_rng(seed)
    )
    if derivatives:
        _write_derivative_metadata(root / "derivatives" / "fmriprep")

    baseline = _baseline(grids.native_shape)
    for i_sub, sub in enumerate(subjects):
        sub_rng = np.random.default_rng([seed, i_sub])
        gain = np.float32(sub_rng.uniform(0.97, 1.03))
        native_mask_base = np.pad(template_mask, _pad_width())
        _write_anat(root, sub, n_sessions, grids, native_mask_base, sub_rng)
        global_run = 0
        for ses, run in _runs_of_subject(i_sub, n_subjects, n_sessions, n_runs):
            run_rng = np.random.default_rng([seed, i_sub, ses or 0, run])
            t1w_reference = "bids:raw:" + _anat_relpath(sub, n_sessions)
            mask = _variant_mask(template_mask, global_run % 2)
            global_run += 1
            _write_run(
                root,
                sub,
                ses,
                run,
                grids=grids,
                template_mask=mask,
                baseline=baseline * gain,
                active=active,
                n_volumes=n_volumes,
                tr=tr,
                spaces=spaces,
                derivatives=derivatives,
                t1w_reference=t1w_reference,
                rng=run_rng,
            )

    return ExampleDataset(
        path=root,
        subjects=subjects,
        tasks=(TASK,),
        conditions=CONDITIONS,
        spaces=spaces,
        active=MappingProxyType(dict(active)),
        effect_size=EFFECT_SIZE,
    )


# --------------------------------------------------------------------------
# checks, grids, masks, boxes


def _check_parameters(n_subjects, n_sessions, n_runs, shape, n_volumes, tr, spaces):
    """Raise ValueError for parameters that cannot make a sensible dataset."""
    for name, value in (
        ("n_subjects", n_subjects),
        ("n_sessions", n_sessions),
        ("n_runs", n_runs),
        ("n_volumes", n_volumes),
    ):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_subjects > 99 or n_runs > 99:
        raise ValueError("at most 99 subjects and 99 runs are supported")
    if len(shape) != 3 or min(shape) < 12:
        raise ValueError(f"shape must be 3 sides of at least 12 voxels, got {shape}")
    if tr <= 0:
        raise ValueError(f"tr must be positive, got {tr}")
    if n_volumes * tr < 60:
        raise ValueError("a run must last at least 60 s (n_volumes * tr)")
    if not spaces:
        raise ValueError("at least one space is needed")
    for space in spaces:
        if not re.fullmatch(r"[A-Za-z0-9]+", space):
            raise ValueError(f"invalid space label {space!r}")


def _pad_width():
    """Padding of the template grid that gives the native grid."""
    return [(p, p) for p in NATIVE_PAD]


def _make_grids(shape):
    """Return the template and native grids for a template ``shape``."""
    affine = np.diag([VOXEL_SIZE] * 3 + [1.0])
    affine[:3, 3] = [-VOXEL_SIZE * (n // 2) for n in shape]
    affine[1, 3] -= 18.0  # centre the field of view a bit posterior, like MNI
    affine[2, 3] += 9.0
    native_affine = affine.copy()
    native_affine[:3, 3] -= VOXEL_SIZE * np.asarray(NATIVE_PAD)
    native_shape = tuple(n + 2 * p for n, p in zip(shape, NATIVE_PAD))
    crop = tuple(slice(p, p + n) for n, p in zip(shape, NATIVE_PAD))
    return _Grids(shape, affine, native_shape, native_affine, crop)


def _active_boxes(shape):
    """Non-overlapping voxel box of each condition in the template grid."""
    boxes = {}
    for condition in CONDITIONS:
        centre, half = _BOX_FRACTIONS[condition]
        box = []
        for n, c, h in zip(shape, centre, half):
            width = max(2, int(round(2 * h * n)))
            start = int(round(c * n - width / 2))
            box.append(slice(start, start + width))
        boxes[condition] = tuple(box)
    return boxes


def _ellipsoid_mask(shape):
    """Boolean ellipsoid centred in a grid of ``shape``."""
    coords = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    radius = sum(
        ((c - (n - 1) / 2) / (_MASK_SEMI_AXES * n)) ** 2 for c, n in zip(coords, shape)
    )
    return radius <= 1.0


def _variant_mask(mask, variant):
    """Mask of one run: variant 1 moves the superior face down one voxel."""
    if variant == 0:
        return mask
    out = mask.copy()
    top = np.nonzero(mask.any(axis=(0, 1)))[0].max()
    out[:, :, top] = False
    # voxels that were just below the old top become the new face
    out[:, :, top - 1] &= mask[:, :, top]
    return out


def _baseline(shape):
    """Smooth baseline between about 850 and 1150 (float32)."""
    u, v, w = np.meshgrid(
        *(np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape), indexing="ij"
    )
    smooth = 0.6 * np.cos(np.pi * u) + 0.4 * np.sin(np.pi * v) * np.cos(np.pi * w / 2)
    return (1000.0 + 150.0 * smooth).astype(np.float32)


def _runs_of_subject(i_sub, n_subjects, n_sessions, n_runs):
    """List of (session or None, run) pairs of a subject."""
    sessions = [None] if n_sessions == 1 else list(range(1, n_sessions + 1))
    if n_subjects >= 3 and i_sub == n_subjects - 1:
        return [(sessions[0], 1)]
    return [(ses, run) for ses in sessions for run in range(1, n_runs + 1)]


# --------------------------------------------------------------------------
# names and small writers


def _func_prefix(sub, ses, run):
    """Directory (relative) and file prefix of a run."""
    parts = [f"sub-{sub}"]
    directory = Path(f"sub-{sub}")
    if ses is not None:
        parts.append(f"ses-{ses}")
        directory = directory / f"ses-{ses}"
    parts += [f"task-{TASK}", f"run-{run:02d}"]
    return directory / "func", "_".join(parts)


def _write_json(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def _save_nifti(path, data, affine, *, tr=None, code=1):
    """Save ``data`` with mm (and s) units, the TR as 4th zoom, q/sform ``code``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.header.set_qform(affine, code=code)
    img.header.set_sform(affine, code=code)
    if tr is not None:
        img.header.set_zooms(tuple(img.header.get_zooms()[:3]) + (tr,))
        img.header.set_xyzt_units("mm", "sec")
    else:
        img.header.set_xyzt_units("mm")
    nib.save(img, path)


def _slice_timing(n_slices, tr):
    """Interleaved ascending slice times (s) of ``n_slices`` slices."""
    order = list(range(0, n_slices, 2)) + list(range(1, n_slices, 2))
    times = np.empty(n_slices)
    times[order] = np.arange(n_slices) * tr / n_slices
    return [round(float(t), 4) for t in times]


def _save_niftis(jobs):
    """Save several images at once; zlib releases the GIL while compressing."""
    jobs = sorted(jobs, key=lambda job: -job[0][1].nbytes)  # largest first
    workers = max(1, min(len(jobs), os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_save_nifti, *args, **kwargs) for args, kwargs in jobs]
        for future in futures:
            future.result()


def _write_raw_metadata(root, subjects, tr, n_slices, rng):
    """Write dataset_description, README, participants and task sidecars."""
    _write_json(
        root / "dataset_description.json",
        {
            "Name": "bids-fixedfx example dataset",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": AUTHORS,
            "GeneratedBy": [
                {
                    "Name": "bids-fixedfx example_data",
                    "Description": "Synthetic data with known effects",
                }
            ],
        },
    )
    (root / "README").write_text(
        "bids-fixedfx example dataset\n"
        "============================\n\n"
        "Synthetic task-fMRI data written by bids_fixedfx.example_data.\n"
        f"Task '{TASK}' alternates blocks of the conditions "
        f"{', '.join(repr(c) for c in CONDITIONS)} in random order; each\n"
        "condition raises the BOLD signal in its own box of voxels by a known\n"
        "amount. derivatives/fmriprep mimics fMRIPrep outputs. Not real data.\n"
    )
    ages = rng.integers(19, 45, size=len(subjects))
    sexes = rng.choice(["F", "M"], size=len(subjects))
    lines = ["participant_id\tage\tsex"]
    lines += [f"sub-{s}\t{a}\t{x}" for s, a, x in zip(subjects, ages, sexes)]
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    _write_json(
        root / "participants.json",
        {
            "age": {"Description": "Age of the participant", "Units": "year"},
            "sex": {
                "Description": "Sex of the participant",
                "Levels": {"F": "female", "M": "male"},
            },
        },
    )
    _write_json(
        root / f"task-{TASK}_bold.json",
        {
            "TaskName": TASK,
            "RepetitionTime": tr,
            "SliceTiming": _slice_timing(n_slices, tr),
            "TaskDescription": "Blocks of auditory or visual stimulation.",
            "Instructions": "Keep your eyes open and stay still.",
            **_SCANNER,
            **_BOLD_SEQUENCE,
        },
    )
    _write_json(root / "T1w.json", {**_SCANNER, **_T1W_SEQUENCE})
    _write_json(
        root / f"task-{TASK}_events.json",
        {
            "StimulusPresentation": {
                "SoftwareName": "none: simulated stimulation",
            },
            "onset": {"Description": "Block onset", "Units": "s"},
            "duration": {"Description": "Block duration", "Units": "s"},
            "trial_type": {
                "Description": "Stimulation of the block",
                "Levels": {
                    "audio": "auditory stimulation",
                    "visual": "flickering checkerboard",
                },
            },
        },
    )


def _write_derivative_metadata(deriv):
    """Write the dataset_description.json of derivatives/fmriprep."""
    _write_json(
        deriv / "dataset_description.json",
        {
            "Name": "fMRIPrep - fMRI PREProcessing workflow",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": FMRIPREP_VERSION}],
            "SourceDatasets": [{"URL": "bids:raw:"}],
            "DatasetLinks": {"raw": "../.."},
            "License": "CC0",
            "Authors": AUTHORS,
        },
    )
    (deriv / "README").write_text(
        "Synthetic fMRIPrep-shaped derivatives of the bids-fixedfx example\n"
        "dataset, written by bids_fixedfx.example_data (not by fMRIPrep).\n"
        "Files follow fMRIPrep 23.2 naming; .bidsignore lists the outputs\n"
        "(boldref, confounds) that the BIDS specification does not define yet.\n"
    )
    (deriv / ".bidsignore").write_text(
        "*_boldref.nii.gz\n*_desc-confounds_timeseries.*\n"
    )


def _anat_relpath(sub, n_sessions):
    """Path of the subject's T1w image, relative to the dataset root."""
    if n_sessions > 1:
        return f"sub-{sub}/ses-1/anat/sub-{sub}_ses-1_T1w.nii.gz"
    return f"sub-{sub}/anat/sub-{sub}_T1w.nii.gz"


def _write_anat(root, sub, n_sessions, grids, mask, rng):
    """Write a small int16 T1w image of the subject (first session)."""
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
    _save_nifti(
        root / _anat_relpath(sub, n_sessions),
        np.round(t1).astype(np.int16),
        grids.native_affine,
    )


# --------------------------------------------------------------------------
# one run


def _make_events(duration, rng):
    """Blocks of the conditions in random order; the last may overrun."""
    onsets = [round(float(rng.uniform(4.0, 8.0)), 1)]
    while True:
        onset = round(onsets[-1] + BLOCK_DURATION + float(rng.uniform(6.0, 12.0)), 1)
        if onset > duration - 6.0:
            break
        onsets.append(onset)
    # as balanced as possible, in random order; every condition occurs
    n_each = -(-len(onsets) // len(CONDITIONS))
    labels = rng.permutation(np.repeat(CONDITIONS, n_each))[: len(onsets)]
    return pd.DataFrame(
        {
            "onset": onsets,
            "duration": BLOCK_DURATION,
            "trial_type": [str(label) for label in labels],
        }
    )


def _regressors(events, n_volumes, tr):
    """Glover-convolved regressor of each condition (n_volumes x n_cond)."""
    frame_times = np.arange(n_volumes) * tr
    columns = []
    for condition in CONDITIONS:
        sel = events[events["trial_type"] == condition]
        exp_condition = np.vstack(
            [sel["onset"], sel["duration"], np.ones(len(sel))]
        ).astype(float)
        reg, _ = compute_regressor(exp_condition, "glover", frame_times)
        columns.append(reg[:, 0])
    return np.column_stack(columns).astype(np.float32)


def _motion(n_volumes, rng):
    """Random-walk motion parameters: translations (mm) and rotations (rad)."""
    trans = np.cumsum(rng.normal(0.0, 0.03, (n_volumes, 3)), axis=0)
    rot = np.cumsum(rng.normal(0.0, 0.0005, (n_volumes, 3)), axis=0)
    trans += np.linspace(0, 1, n_volumes)[:, None] * rng.normal(0, 0.2, 3)
    motion = np.hstack([trans, rot])
    return motion - motion[0]


def _drift(n_volumes, rng):
    """Slow drift, as a fraction of the baseline."""
    t = np.linspace(0.0, 1.0, n_volumes)
    a, b = rng.normal(0.0, 0.01, 2)
    return (a * (t - 0.5) + b * np.cos(np.pi * t)).astype(np.float32)


def _motion_weights(shape):
    """Spatial maps giving each translation's effect (fraction per mm)."""
    u, v, w = np.meshgrid(
        *(np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape), indexing="ij"
    )
    return (0.01 * u, 0.01 * v, 0.01 * w)


def _simulate_bold(grids, mask, baseline, active, n_volumes, tr, events, rng):
    """Simulate the BOLD series of one run on the native grid.

    Returns the float32 data (Fortran order, so each volume is contiguous),
    the motion parameters and the in-mask mean of each volume.
    """
    shape = grids.native_shape
    regs = _regressors(events, n_volumes, tr) * np.float32(EFFECT_SIZE / 100.0)
    motion = _motion(n_volumes, rng)
    drift = _drift(n_volumes, rng)
    weights = _motion_weights(shape)
    task_maps = []
    for condition in CONDITIONS:
        box_map = np.zeros(shape, np.float32)
        box = tuple(
            slice(s.start + p, s.stop + p)
            for s, p in zip(active[condition], NATIVE_PAD)
        )
        box_map[box] = 1.0
        task_maps.append(box_map)

    data = np.empty(shape + (n_volumes,), np.float32, order="F")
    outside = ~mask
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
        vol = baseline * (1.0 + frac)
        vol[outside] = np.abs(draw[outside]) * np.float32(BACKGROUND_SD)
        # 1/16 precision: invisible next to the noise, compresses much faster
        data[..., t] = np.round(vol * 16.0) / 16.0
        global_signal[t] = vol[mask].mean()
    return data, motion, global_signal


def _confounds(motion, global_signal, baseline_level, tr, rng):
    """fMRIPrep-like confounds table and its sidecar."""
    n = len(global_signal)
    table = {}
    for k, name in enumerate(MOTION_COLUMNS):
        table[name] = motion[:, k]
        deriv = np.empty(n)
        deriv[0] = np.nan
        deriv[1:] = np.diff(motion[:, k])
        table[f"{name}_derivative1"] = deriv
        table[f"{name}_power2"] = motion[:, k] ** 2
        table[f"{name}_derivative1_power2"] = deriv**2
    fd = np.empty(n)
    fd[0] = np.nan
    step = np.abs(np.diff(motion, axis=0))
    fd[1:] = step[:, :3].sum(axis=1) + 50.0 * step[:, 3:].sum(axis=1)
    table["framewise_displacement"] = fd
    dvars = np.empty(n)
    dvars[0] = np.nan
    dvars[1:] = np.abs(np.diff(global_signal)) + rng.gamma(4.0, 2.0, n - 1)
    table["dvars"] = dvars
    table["std_dvars"] = dvars / np.nanmean(dvars)
    table["global_signal"] = global_signal
    slow = np.convolve(rng.normal(0, 1, n + 9), np.ones(10) / 10, mode="valid")
    table["csf"] = 1.3 * baseline_level * (1 + 0.005 * slow + rng.normal(0, 0.004, n))
    slow = np.convolve(rng.normal(0, 1, n + 9), np.ones(10) / 10, mode="valid")
    table["white_matter"] = 0.9 * baseline_level * (
        1 + 0.003 * slow + rng.normal(0, 0.003, n)
    )
    raw = rng.normal(0, 1, (n + 4, N_COMPCOR))
    smooth = np.column_stack(
        [np.convolve(col, np.ones(5) / 5, "valid") for col in raw.T]
    )
    smooth -= smooth.mean(axis=0)
    q, r = np.linalg.qr(smooth)
    q *= np.sign(np.diag(r))
    singular = np.sort(np.abs(rng.normal(10, 3, N_COMPCOR)))[::-1]
    for k in range(N_COMPCOR):
        table[f"a_comp_cor_{k:02d}"] = q[:, k]
    frames = np.arange(n)
    for k in range(N_COSINE):
        table[f"cosine{k:02d}"] = np.sqrt(2.0 / n) * np.cos(
            np.pi * (2 * frames + 1) * (k + 1) / (2 * n)
        )
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
    return pd.DataFrame(table), sidecar


def _write_run(
    root,
    sub,
    ses,
    run,
    *,
    grids,
    template_mask,
    baseline,
    active,
    n_volumes,
    tr,
    spaces,
    derivatives,
    t1w_reference,
    rng,
):
    """Write the raw files and (optionally) the derivatives of one run."""
    func_dir, prefix = _func_prefix(sub, ses, run)
    events = _make_events(n_volumes * tr, rng)
    (root / func_dir).mkdir(parents=True, exist_ok=True)
    events.to_csv(
        root / func_dir / f"{prefix}_events.tsv",
        sep="\t",
        index=False,
        float_format="%.1f",
    )
    native_mask = np.pad(template_mask, _pad_width())
    data, motion, global_signal = _simulate_bold(
        grids, native_mask, baseline, active, n_volumes, tr, events, rng
    )
    # (args, kwargs) of _save_nifti calls, all made together at the end
    images = [
        (
            (
                root / func_dir / f"{prefix}_bold.nii.gz",
                np.round(data).astype(np.int16, order="F"),
                grids.native_affine,
            ),
            {"tr": tr, "code": 1},
        )
    ]
    if derivatives:
        _write_run_derivatives(
            root,
            func_dir,
            prefix,
            data=data,
            grids=grids,
            template_mask=template_mask,
            native_mask=native_mask,
            baseline_level=float(baseline.mean()),
            motion=motion,
            global_signal=global_signal,
            tr=tr,
            spaces=spaces,
            t1w_reference=t1w_reference,
            images=images,
            rng=rng,
        )
    _save_niftis(images)


def _write_run_derivatives(
    root,
    func_dir,
    prefix,
    *,
    data,
    grids,
    template_mask,
    native_mask,
    baseline_level,
    motion,
    global_signal,
    tr,
    spaces,
    t1w_reference,
    images,
    rng,
):
    """Write the derivative sidecars and tables; append the images to save."""

    out_dir = root / "derivatives" / "fmriprep" / func_dir
    raw_source = f"bids:raw:{func_dir.as_posix()}/{prefix}_bold.nii.gz"
    for space in spaces:
        if space == "T1w":
            bold, mask, affine, code = data, native_mask, grids.native_affine, 1
            reference = t1w_reference
        else:
            bold = data[grids.crop]
            mask, affine, code = template_mask, grids.template_affine, 4
            reference = MNI_REFERENCE if space == "MNI152NLin2009cAsym" else None
        spatial = {"SpatialReference": reference} if reference else {}
        stem = out_dir / f"{prefix}_space-{space}"
        images.append(
            (
                (Path(f"{stem}_desc-preproc_bold.nii.gz"), bold, affine),
                {"tr": tr, "code": code},
            )
        )
        _write_json(
            Path(f"{stem}_desc-preproc_bold.json"),
            {
                "Description": "Preprocessed BOLD series (simulated).",
                "RepetitionTime": tr,
                "SkullStripped": True,
                "SliceTimingCorrected": False,
                "TaskName": TASK,
                "Sources": [raw_source],
                **spatial,
            },
        )
        images.append(
            (
                (Path(f"{stem}_desc-brain_mask.nii.gz"), mask.astype(np.uint8), affine),
                {"code": code},
            )
        )
        _write_json(
            Path(f"{stem}_desc-brain_mask.json"),
            {
                "Description": "Brain mask of the BOLD series.",
                "Type": "Brain",
                "Sources": [raw_source],
                **spatial,
            },
        )
        boldref = bold.mean(axis=-1, dtype=np.float32)
        images.append(
            ((Path(f"{stem}_boldref.nii.gz"), boldref, affine), {"code": code})
        )
    table, sidecar = _confounds(motion, global_signal, baseline_level, tr, rng)
    table.to_csv(
        out_dir / f"{prefix}_desc-confounds_timeseries.tsv",
        sep="\t",
        index=False,
        na_rep="n/a",
        float_format="%.6g",
    )
    _write_json(out_dir / f"{prefix}_desc-confounds_timeseries.json", sidecar)


# --------------------------------------------------------------------------
# command line


def _parser():
    parser = argparse.ArgumentParser(
        prog="bids-fixedfx-example",
        description=(
            "Write a small synthetic BIDS task-fMRI dataset with fMRIPrep-shaped "
            "derivatives and known effects."
        ),
    )
    parser.add_argument("output_dir", type=Path, help="root of the dataset to write")
    parser.add_argument("--subjects", type=int, default=3, help="number of subjects")
    parser.add_argument("--sessions", type=int, default=2, help="sessions per subject")
    parser.add_argument("--runs", type=int, default=2, help="runs per session")
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=(24, 28, 20),
        metavar=("X", "Y", "Z"),
        help="template grid shape in voxels",
    )
    parser.add_argument("--volumes", type=int, default=90, help="volumes per run")
    parser.add_argument("--tr", type=float, default=2.0, help="repetition time (s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--no-derivatives",
        dest="derivatives",
        action="store_false",
        help="do not write derivatives/fmriprep",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bids-fixedfx-example`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments without the program name; defaults to
        ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 on success, 2 on invalid parameters.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        dataset = make_example_dataset(
            args.output_dir,
            n_subjects=args.subjects,
            n_sessions=args.sessions,
            n_runs=args.runs,
            shape=tuple(args.shape),
            n_volumes=args.volumes,
            tr=args.tr,
            seed=args.seed,
            derivatives=args.derivatives,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(dataset.path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
