"""Run-level GLM: a design and a BOLD series in, per-contrast effect/variance/t/z/p maps out.

The numbers are those of nilearn's ``FirstLevelModel`` (masking, smoothing,
percent-signal scaling, OLS or AR(1) noise model, ``compute_contrast(...,
output_type='all')``), computed with nilearn's own ``mean_scaling``, ``run_glm`` and
``compute_contrast`` functions. Two things differ, for speed and memory only:

- the BOLD series is smoothed volume by volume and masked as it goes, so the whole
  4D series is never held in double precision (``FirstLevelModel`` smooths a copy of
  the whole series);
- voxels are fitted in chunks, on ``n_threads`` threads. nilearn's AR(1) model bins
  each voxel's own AR coefficient, so every voxel's estimate is independent of the
  others and chunking gives the same numbers.

Tests compare every map with ``FirstLevelModel`` on the same data.
"""

from __future__ import annotations

import warnings as pywarnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import read_image, read_mask
from .settings import STATS

#: nilearn's output names for the maps of SPEC §3.
NILEARN_OUTPUTS = {
    "effect": "effect_size",
    "variance": "effect_variance",
    "t": "stat",
    "F": "stat",
    "z": "z_score",
    "p": "p_value",
}
#: The maps of an F contrast (its effects are several; its statistic is F).
F_STATS = ("F", "z", "p")
CHUNK_VOXELS = 5000
#: The value of each map outside the mask: 0, but 1 for p (nothing there looks significant).
OUTSIDE_MASK = {"effect": 0.0, "variance": 0.0, "t": 0.0, "F": 0.0, "z": 0.0, "p": 1.0}


def stats_of(test: str) -> tuple[str, ...]:
    """The maps written for a contrast of this test (``t`` or ``F``)."""
    return F_STATS if test == "F" else STATS


@dataclass(frozen=True, eq=False)
class ContrastMaps:
    """The five maps of one contrast (``effect``, ``variance``, ``t``, ``z``, ``p``)."""

    contrast: object  # ContrastWeights, or the group's intercept contrast
    maps: dict
    dof: float


@dataclass(frozen=True, eq=False)
class RunResult:
    """A fitted run: its mask, residual degrees of freedom and contrast maps."""

    name: str
    mask: object  # Nifti1Image
    dof: float
    contrasts: tuple[ContrastMaps, ...]
    warnings: tuple[str, ...] = ()

    def maps_of(self, label):
        """The :class:`ContrastMaps` of the contrast with this file label, or None."""
        for maps in self.contrasts:
            if maps.contrast.label == label:
                return maps
        return None


def load_mask(mask, bold_img):
    """The run's mask image: the given one, or the one nilearn computes from the BOLD.

    Parameters
    ----------
    mask : str, Path, Nifti1Image or None
    bold_img : Nifti1Image

    Returns
    -------
    mask_img : Nifti1Image
        Binary (int8), as nilearn's maskers hold it.
    """
    import nibabel as nib
    from nilearn.maskers import MultiNiftiMasker
    from nilearn.masking import load_mask_img

    if mask is None:  # as FirstLevelModel does: an EPI mask computed by its masker
        return MultiNiftiMasker(mask_strategy="epi").fit([bold_img]).mask_img_
    if isinstance(mask, (str, Path)):
        return read_mask(mask)
    values, affine = load_mask_img(mask)
    return nib.Nifti1Image(values.astype(np.int8), affine)


def read_bold(path):
    """Read a BOLD series into memory (decompressed, gzip CRC checked), keeping its
    on-disk data type.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    img : Nifti1Image
        With its data array in memory.

    Raises
    ------
    InputFileError
        The file is truncated or corrupt.
    """
    return read_image(path, "BOLD series")


def masked_series(bold_img, mask_img, smoothing_fwhm=None, n_threads=1) -> np.ndarray:
    """The BOLD series inside the mask, smoothed as nilearn smooths it.

    Non-finite values are set to 0 (as nilearn's ``smooth_array`` does, smoothing or
    not); each volume is smoothed with ``scipy.ndimage.gaussian_filter1d`` along the
    three spatial axes in single precision (nilearn's ``smooth_array``) and masked
    straight away.

    Parameters
    ----------
    bold_img : Nifti1Image
        4D series.
    mask_img : Nifti1Image
        Binary mask on the same grid.
    smoothing_fwhm : float or None
        Isotropic FWHM in mm.
    n_threads : int

    Returns
    -------
    series : numpy.ndarray, shape (n_volumes, n_voxels)
    """
    from scipy.ndimage import gaussian_filter1d

    inside = np.asanyarray(mask_img.dataobj).astype(bool)
    data = np.asanyarray(bold_img.dataobj)
    sigma = None
    if smoothing_fwhm:
        voxel_size = np.sqrt(np.sum(bold_img.affine[:3, :3] ** 2, axis=0))
        sigma = smoothing_fwhm / (np.sqrt(8 * np.log(2)) * voxel_size)
    if data.dtype.kind == "f":
        dtype = data.dtype
    elif sigma is not None:  # nilearn's smooth_array works on integers in single precision
        dtype = np.float64 if data.dtype.itemsize == 8 else np.float32
    else:
        dtype = np.float64
    series = np.empty((data.shape[3], int(inside.sum())), dtype=dtype)

    def one_volume(t):
        volume = np.array(data[..., t], dtype=dtype, copy=True)
        if volume.dtype.kind == "f":  # nilearn sets non-finite values to 0, smoothing or not
            volume[~np.isfinite(volume)] = 0
        if sigma is not None:
            for axis, s in enumerate(sigma):
                if s > 0:
                    gaussian_filter1d(volume, s, output=volume, axis=axis)
        series[t] = volume[inside]

    _map(one_volume, range(data.shape[3]), n_threads)
    return series


def _map(function, items, n_threads):
    items = list(items)
    if n_threads <= 1:
        for item in items:
            function(item)
        return
    with ThreadPoolExecutor(n_threads) as pool:
        for _ in pool.map(function, items):
            pass


def glm_maps(series, design_matrix, vectors, noise_model="ar1", n_threads=1, chunk=CHUNK_VOXELS, tests=None):
    """Fit the GLM voxel chunk by voxel chunk and compute t contrasts, with nilearn.

    Parameters
    ----------
    series : numpy.ndarray, shape (n_volumes, n_voxels)
        Masked (and smoothed) BOLD, before scaling.
    design_matrix : numpy.ndarray, shape (n_volumes, n_regressors)
    vectors : list of numpy.ndarray
        One weight vector (t) or matrix (F) per contrast.
    noise_model : {'ar1', 'ols'}
    n_threads : int
    chunk : int
        Voxels per chunk.
    tests : list of str, optional
        ``t`` or ``F`` per contrast (default: all ``t``).

    Returns
    -------
    maps : list of dict
        Per contrast, ``effect``, ``variance``, ``t``, ``z`` and ``p`` arrays (n_voxels,).
    dof : float
        Residual degrees of freedom.
    """
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.first_level import mean_scaling, run_glm

    n_voxels = series.shape[1]
    tests = list(tests) if tests is not None else ["t"] * len(vectors)
    maps = [{stat: np.zeros(n_voxels) for stat in stats_of(test)} for test in tests]
    dofs = []

    def one_chunk(bounds):
        start, stop = bounds
        scaled, _ = mean_scaling(series[:, start:stop], 0)
        labels, results = run_glm(scaled, design_matrix, noise_model=noise_model)
        for vector, test, out in zip(vectors, tests, maps):
            contrast = compute_contrast(labels, results, vector, test)
            for stat in out:
                out[stat][start:stop] = getattr(contrast, NILEARN_OUTPUTS[stat])()
        dofs.append(next(iter(results.values())).df_residuals)

    bounds = [(i, min(i + chunk, n_voxels)) for i in range(0, n_voxels, chunk)]
    limit = nullcontext()
    if n_threads > 1:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=1)
    with limit:
        _map(one_chunk, bounds, n_threads)
    return maps, float(dofs[0])


@dataclass(frozen=True, eq=False)
class MaskedRun:
    """A run's BOLD series inside its mask, smoothed: what the GLM is fitted on."""

    series: np.ndarray  # (n_volumes, n_voxels)
    mask: object  # Nifti1Image


def prepare_run(bold, mask=None, smoothing_fwhm=None, n_threads=1) -> MaskedRun:
    """Read a run's BOLD series, mask and smooth it (see :func:`masked_series`).

    Parameters
    ----------
    bold : str, Path or Nifti1Image
    mask : str, Path, Nifti1Image or None
        Brain mask; None lets nilearn compute one from the BOLD.
    smoothing_fwhm : float or None
    n_threads : int

    Returns
    -------
    masked : MaskedRun
    """
    from nilearn.image import load_img

    bold_img = read_bold(bold) if isinstance(bold, (str, Path)) else load_img(bold)
    mask_img = load_mask(mask, bold_img)
    return MaskedRun(masked_series(bold_img, mask_img, smoothing_fwhm, n_threads), mask_img)


def unmask_map(values, mask_img, outside=0.0):
    """A map image from its values inside the mask, ``outside`` elsewhere.

    Parameters
    ----------
    values : numpy.ndarray, shape (n_voxels,)
    mask_img : Nifti1Image
    outside : float

    Returns
    -------
    img : Nifti1Image
    """
    import nibabel as nib

    inside = np.asanyarray(mask_img.dataobj).astype(bool)
    data = np.full(inside.shape, outside, dtype=np.asarray(values).dtype)
    data[inside] = values
    return nib.Nifti1Image(data, mask_img.affine)


def set_outside(img, mask_img, outside):
    """A copy of a 3D map with ``outside`` wherever the mask is 0."""
    import nibabel as nib

    data = np.asarray(img.get_fdata(), dtype=np.float64).reshape(img.shape[:3])
    data[~np.asanyarray(mask_img.dataobj).astype(bool)] = outside
    return nib.Nifti1Image(data, img.affine)


def fit_masked(masked, design, contrasts, *, noise_model="ar1", name="run", n_threads=1) -> RunResult:
    """Fit a masked run's GLM and compute its contrasts (see :func:`fit_run`)."""
    series, mask_img = masked.series, masked.mask
    matrix = design.matrix.to_numpy()
    if design.sample_mask is not None:
        series = series[design.sample_mask]
        matrix = matrix[design.sample_mask]
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        maps, dof = glm_maps(
            series, matrix, [c.vector for c in contrasts], noise_model, n_threads,
            tests=[getattr(c, "test", "t") for c in contrasts],
        )
    notes = tuple(dict.fromkeys(
        f"{name}: {w.message}" for w in caught if issubclass(w.category, UserWarning)
    ))
    return RunResult(
        name=name,
        mask=mask_img,
        dof=dof,
        contrasts=tuple(
            ContrastMaps(
                contrast, {stat: unmask_map(values[stat], mask_img, OUTSIDE_MASK[stat]) for stat in values}, dof
            )
            for contrast, values in zip(contrasts, maps)
        ),
        warnings=notes,
    )


def fit_run(bold, design, contrasts, *, mask=None, smoothing_fwhm=None, noise_model="ar1",
            name="run", n_threads=1) -> RunResult:
    """Fit one run's GLM and compute its contrasts, as nilearn's ``FirstLevelModel``.

    Parameters
    ----------
    bold : str, Path or Nifti1Image
        The 4D BOLD series.
    design : Design
        Its design matrix (and sample mask, if any).
    contrasts : sequence of ContrastWeights
    mask : str, Path, Nifti1Image or None
        Brain mask; None lets nilearn compute one from the BOLD.
    smoothing_fwhm : float or None
    noise_model : {'ar1', 'ols'}
    name : str
        The run's name, for messages.
    n_threads : int
        Threads for smoothing and fitting.

    Returns
    -------
    result : RunResult
    """
    masked = prepare_run(bold, mask, smoothing_fwhm, n_threads)
    return fit_masked(masked, design, contrasts, noise_model=noise_model, name=name, n_threads=n_threads)
