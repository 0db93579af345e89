"""Surface and CIFTI derivatives of a run, as fMRIPrep writes them with
``--output-spaces fsaverage5`` and ``--cifti-output``, with known effects.

Written only when the dataset is asked for surfaces (``--surfaces``), from a random stream
of their own (:meth:`.study.Study.surface_rng`), so the volume files are the same bytes
with or without them.

- ``..._hemi-L_space-fsaverage5_bold.func.gii`` and its ``hemi-R`` twin: 10242 vertices per
  hemisphere (fsaverage5's), one data array per volume. A medial-wall patch of each
  hemisphere is NaN at every volume (fMRIPrep's ``--medial-surface-nan``) and the
  :data:`FLAT` vertices are 0 (an empty patch): neither is fitted (:func:`gifti_layout`).
- ``..._space-fsLR_den-1k_bold.dtseries.nii``: a reduced CIFTI dense series with two
  cortical surface models (:data:`CIFTI_VERTICES` of a 1002-vertex mesh each) and one
  subcortical voxel model (a 4x4x4 block of 3 mm voxels, ``CIFTI_STRUCTURE_THALAMUS_LEFT``).

The signal of a fitted vertex is ``B(v) * (1 + drift(t) + effect_size / 100 * sum_c
active_c(v) X_c(t) + noise(t, v))`` with the run's events and nilearn's regressors
(:func:`.simulate.condition_regressors`), so a GLM with percent-signal scaling recovers
``effect_size`` on the patches of :data:`PATCHES` (GIFTI: :func:`gifti_layout`, vertex
indices into the left+right concatenation; patches on nilearn's fsaverage5 sphere)
and :data:`CIFTI_ACTIVE` (grayordinate indices), and about 0 elsewhere.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from . import metadata, names
from .files import save_image, write_json
from .simulate import NOISE_PERCENT, condition_regressors
from .study import CONDITIONS, EFFECT_SIZE

#: Vertices per hemisphere of fsaverage5.
FSAVERAGE5_VERTICES = 10242
#: Where the known effects and the left-out vertices lie on fsaverage5's sphere: for each,
#: the hemisphere, a direction and the largest angle (degrees) from it.
PATCHES = {
    "audio": ("left", (-1.0, -0.2, -0.2), 25.0),  # lateral temporal
    "visual": ("right", (0.2, -1.0, 0.0), 25.0),  # occipital
    "medial": (None, None, 20.0),  # the medial wall of each hemisphere: NaN
}
#: Vertices of each hemisphere set to 0 at every volume (an empty patch), besides the medial wall.
FLAT = slice(5000, 5020)


@lru_cache(maxsize=1)
def gifti_layout():
    """The GIFTI pair's vertex sets, as indices into the left+right concatenation.

    Returns
    -------
    active : dict
        Condition -> the vertices where it has its effect.
    not_finite, zero : numpy.ndarray
        The medial walls (NaN) and the flat patches (0): left out of the fit.
    """
    from nilearn.datasets import load_fsaverage

    sphere = load_fsaverage("fsaverage5")["sphere"]
    offset = {"left": 0, "right": FSAVERAGE5_VERTICES}

    def patch(hemi, direction, degrees):
        points = np.asarray(sphere.parts[hemi].coordinates, dtype=float)
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        direction = np.asarray(direction) / np.linalg.norm(direction)
        return np.flatnonzero(points @ direction > np.cos(np.radians(degrees))) + offset[hemi]

    active = {c: patch(*PATCHES[c]) for c in CONDITIONS}
    medial_angle = PATCHES["medial"][2]
    not_finite = np.concatenate([patch("left", (1.0, 0.0, 0.0), medial_angle),
                                 patch("right", (-1.0, 0.0, 0.0), medial_angle)])
    zero = np.setdiff1d(np.concatenate([np.arange(FLAT.start, FLAT.stop) + o for o in offset.values()]), not_finite)
    return active, not_finite, zero


#: The reduced CIFTI: vertices of each cortex model, on a mesh of ``CIFTI_MESH`` vertices.
CIFTI_VERTICES, CIFTI_MESH = 400, 1002
CIFTI_VOLUME_SHAPE = (4, 4, 4)
#: The active grayordinates of each condition in the CIFTI (left cortex; voxels).
CIFTI_ACTIVE = {"audio": slice(50, 150), "visual": slice(2 * CIFTI_VERTICES, 2 * CIFTI_VERTICES + 32)}
GIFTI_SPACE, CIFTI_SPACE, CIFTI_DENSITY = "fsaverage5", "fsLR", "1k"


def _signal(events, n_volumes, tr, n_vertices, active, rng):
    """(n_volumes, n_vertices) float32 series with the effects of ``active``."""
    regressors = condition_regressors(events, n_volumes, tr)
    baseline = rng.uniform(800.0, 1200.0, n_vertices).astype(np.float32)
    drift = np.linspace(-0.005, 0.005, n_volumes, dtype=np.float32)[:, None]
    relative = 1.0 + drift + NOISE_PERCENT / 100 * rng.standard_normal((n_volumes, n_vertices), dtype=np.float32)
    for index, condition in enumerate(CONDITIONS):
        relative[:, active[condition]] += EFFECT_SIZE / 100 * regressors[:, index:index + 1]
    return (baseline * relative).astype(np.float32)


def gifti_series(events, n_volumes, tr, rng):
    """The GIFTI pair's series: (n_volumes, 2 * 10242), left vertices then right."""
    active, not_finite, zero = gifti_layout()
    data = _signal(events, n_volumes, tr, 2 * FSAVERAGE5_VERTICES, active, rng)
    data[:, not_finite] = np.nan
    data[:, zero] = 0.0
    return data


def cifti_axes(tr, n_volumes):
    """The reduced CIFTI's series and brain-model axes."""
    from nibabel.cifti2 import cifti2_axes

    vertices = np.arange(CIFTI_VERTICES) * 2  # every other vertex of the mesh
    volume = np.ones(CIFTI_VOLUME_SHAPE, dtype=bool)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = -6.0
    models = (
        cifti2_axes.BrainModelAxis.from_surface(vertices, CIFTI_MESH, "CortexLeft")
        + cifti2_axes.BrainModelAxis.from_surface(vertices, CIFTI_MESH, "CortexRight")
        + cifti2_axes.BrainModelAxis.from_mask(volume, "ThalamusLeft", affine)
    )
    series = cifti2_axes.SeriesAxis(start=0.0, step=tr, size=n_volumes, unit="SECOND")
    return series, models


def write_surfaces(root: Path, key, events, n_volumes: int, tr: float, rng) -> None:
    """Write a run's GIFTI pair and CIFTI dense series (and their sidecars) under the
    derivatives of ``root``.

    Parameters
    ----------
    root : pathlib.Path
        Root of the raw dataset.
    key : RunKey
    events : pandas.DataFrame
        The run's events (the same as its volume series').
    n_volumes : int
    tr : float
    rng : numpy.random.Generator
        The run's surface stream: GIFTI noise, then CIFTI noise.
    """
    import nibabel as nib

    deriv = root / names.FMRIPREP
    source = names.bids_uri(names.run_file(key, "bold", ".nii.gz"))
    sidecar = metadata.preproc_bold_json(tr, source, {})
    data = gifti_series(events, n_volumes, tr, rng)
    for hemi, part in (("L", data[:, :FSAVERAGE5_VERTICES]), ("R", data[:, FSAVERAGE5_VERTICES:])):
        structure = "CortexLeft" if hemi == "L" else "CortexRight"
        arrays = [
            nib.gifti.GiftiDataArray(
                np.ascontiguousarray(volume), intent="NIFTI_INTENT_TIME_SERIES", datatype="NIFTI_TYPE_FLOAT32",
                meta={"AnatomicalStructurePrimary": structure},
            )
            for volume in part
        ]
        image = nib.gifti.GiftiImage(darrays=arrays)
        path = deriv / names.surface_file(key, ".func.gii", space=GIFTI_SPACE, hemi=hemi)
        save_image(path, image)
        write_json(path.with_name(path.name.replace(".func.gii", ".json")), sidecar)

    series_axis, models = cifti_axes(tr, n_volumes)
    values = _signal(events, n_volumes, tr, len(models), CIFTI_ACTIVE, rng)
    image = nib.Cifti2Image(values, header=(series_axis, models))
    image.nifti_header.set_intent("ConnDenseSeries")
    path = deriv / names.surface_file(key, ".dtseries.nii", space=CIFTI_SPACE, den=CIFTI_DENSITY)
    save_image(path, image)
    write_json(path.with_name(path.name.replace(".dtseries.nii", ".json")), sidecar)
