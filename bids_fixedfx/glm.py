"""Run-level GLM: a design and a BOLD series in, per-contrast effect/variance/t/z/p maps out.

The numbers are those of nilearn's ``FirstLevelModel`` (masking, smoothing,
percent-signal scaling, OLS or AR(1) noise model, ``compute_contrast(...,
output_type='all')``), computed with nilearn's own ``mean_scaling``, regression models
(``OLSModel``, ``ARModel``) and ``Contrast``. What differs is for speed and memory only:

- the BOLD series is decompressed, smoothed and masked volume by volume, so the whole
  4D series is never held in double precision (``FirstLevelModel`` smooths a copy of
  the whole series), nor at all when a mask is given;
- ``run_glm``'s AR(1) model is fitted on whole arrays: each voxel's coefficient is
  computed as nilearn's ``_yule_walker`` computes it and truncated to nilearn's bins,
  and the voxels of a bin are whitened and fitted together with that bin's ``ARModel``
  (nilearn builds a ``RegressionResults`` per bin, and a Toeplitz system per voxel);
  contrasts are computed from the fitted arrays as ``compute_contrast`` computes them;
- each voxel's R² is ``RegressionResults.r_square`` (the variance of the whitened fit
  over that of the whitened data: a pseudo-R² with AR(1)), from the same arrays;
- voxels are fitted in chunks, on ``n_threads`` threads. nilearn's AR(1) model bins
  each voxel's own AR coefficient, so every voxel's estimate is independent of the
  others and chunking gives the same numbers (up to the mean residual that
  ``_yule_walker`` removes: that of the chunk, about 1e-16 of the residuals).

Tests compare every map with ``FirstLevelModel`` on the same data, and the fit with
``run_glm`` and ``compute_contrast`` to 1e-10.
"""

from __future__ import annotations

import warnings as pywarnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .series import (  # noqa: F401  (a run's series; re-exported for the callers of glm)
    MaskedRun,
    _map,
    load_mask,
    masked_series,
    prepare_run,
    read_bold,
    streamed_series,
)
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
#: Voxels fitted together: small enough that a chunk's arrays stay in cache (and memory low).
CHUNK_VOXELS = 2000
#: The value of each map outside the mask: 0, but 1 for p (nothing there looks significant).
OUTSIDE_MASK = {"effect": 0.0, "variance": 0.0, "t": 0.0, "F": 0.0, "z": 0.0, "p": 1.0}


def stats_of(test: str) -> tuple[str, ...]:
    """The maps written for a contrast of this test (``t`` or ``F``)."""
    return F_STATS if test == "F" else STATS


class Contrast(Protocol):
    """What a map says it is of: a run's ``ContrastWeights``, or a group's ``GroupContrast``."""

    name: str  # as the user or the model named it
    label: str  # as file names carry it
    weights: object  # {column: weight}, or one such mapping per row of an F contrast
    test: str  # "t" or "F"


@dataclass(frozen=True, eq=False)
class ContrastMaps:
    """The maps of one contrast (``effect``, ``variance``, ``t``, ``z``, ``p``; ``F``, ``z``,
    ``p`` for an F contrast) and their degrees of freedom."""

    contrast: Contrast
    maps: dict
    dof: float


@dataclass(frozen=True, eq=False)
class RunResult:
    """A fitted run: its mask, residual degrees of freedom, contrast maps and R² map."""

    name: str
    mask: object  # Nifti1Image
    dof: float
    contrasts: tuple[ContrastMaps, ...]
    notes: tuple[str, ...] = ()  # nilearn's remarks while fitting, prefixed with the run's name
    r_square: object = None  # Nifti1Image: nilearn's RegressionResults.r_square, 0 outside the mask

    def maps_of(self, label):
        """The :class:`ContrastMaps` of the contrast with this file label, or None."""
        for maps in self.contrasts:
            if maps.contrast.label == label:
                return maps
        return None


def fit_contrasts(series, design_matrix, vectors, noise_model="ar1", n_threads=1, chunk=CHUNK_VOXELS, tests=None):
    """Fit the GLM voxel chunk by voxel chunk and compute t and F contrasts, as nilearn.

    The numbers are those of nilearn's ``mean_scaling``, ``run_glm`` and
    ``compute_contrast`` (see :func:`fit_chunk`), computed on whole arrays.

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
        Per contrast, ``effect``, ``variance``, ``t`` (or ``F``), ``z`` and ``p`` arrays (n_voxels,).
    dof : float
        Residual degrees of freedom.
    r_square : numpy.ndarray, shape (n_voxels,)
        Each voxel's R², as nilearn's ``RegressionResults.r_square``.
    """
    if noise_model not in ("ar1", "ols"):
        raise ValueError(f"noise_model must be 'ar1' or 'ols', not {noise_model!r}.")
    n_voxels = series.shape[1]
    tests = list(tests) if tests is not None else ["t"] * len(vectors)
    maps = [{stat: np.zeros(n_voxels) for stat in stats_of(test)} for test in tests]
    r_square = np.zeros(n_voxels)
    models = NoiseModels(np.asarray(design_matrix, dtype=np.float64), vectors, tests)

    def one_chunk(bounds):
        start, stop = bounds
        chunk_maps, r_square[start:stop] = fit_chunk(series[:, start:stop], models, noise_model)
        for out, values in zip(maps, chunk_maps):
            for stat in out:
                out[stat][start:stop] = values[stat]

    bounds = [(i, min(i + chunk, n_voxels)) for i in range(0, n_voxels, chunk)]
    from threadpoolctl import threadpool_limits

    # n_threads in all: the products of a chunk are small, and BLAS's own threads
    # would compete with the chunks' (and with other processes, with --nprocs 1)
    with threadpool_limits(limits=1):
        _map(one_chunk, bounds, n_threads)
    return maps, float(models.dof), r_square


class NoiseModels:
    """nilearn's regression models of one design, one per AR(1) bin, and what each
    contrast needs of them (built once per bin, shared by all voxel chunks).

    Parameters
    ----------
    design_matrix : numpy.ndarray, shape (n_volumes, n_regressors)
    vectors : list of numpy.ndarray
        Contrast weights, padded with zeros as nilearn pads them.
    tests : list of str
        ``t`` or ``F`` per contrast.
    """

    def __init__(self, design_matrix, vectors, tests):
        from nilearn.glm._utils import pad_contrast
        from nilearn.glm.regression import OLSModel

        self.design_matrix = design_matrix
        self.ols = OLSModel(design_matrix)
        theta = np.empty((design_matrix.shape[1], 1))
        self.tests = list(tests)
        self.vectors = [
            pad_contrast(con_val=np.atleast_2d(np.asarray(v, dtype=np.float64)), theta=theta, stat_type=test)
            for v, test in zip(vectors, self.tests)
        ]
        self.dof = self.ols.df_residuals
        self._models = {}

    def model(self, rho_bin):
        """nilearn's model and per-contrast factors for an AR(1) bin (None: OLS).

        Returns (whitened design, its pseudo-inverse, the factor per contrast: the
        variance factor ``c cov c'`` of a t contrast, ``sqrtm(inv(c cov c'))`` of an F one).
        """
        if rho_bin not in self._models:  # computed twice at worst, by two threads: same values
            from nilearn.glm.regression import ARModel
            from scipy.linalg import sqrtm

            model = self.ols if rho_bin is None else ARModel(self.design_matrix, rho_bin * 1.0 / AR_BINS)
            factors = []
            for vector, test in zip(self.vectors, self.tests):
                variance = np.dot(vector, np.dot(model.normalized_cov_beta, np.transpose(vector)))
                if test == "t":
                    factors.append(variance[0, 0])
                else:  # compute_contrast: vcov(matrix=con_val, dispersion=1.0)
                    factors.append(sqrtm(np.linalg.inv(np.atleast_2d(variance * 1.0))))
            self._models[rho_bin] = (model.whitened_design, model.calc_beta, factors)
        return self._models[rho_bin]


#: nilearn's ``run_glm(bins=100)``: AR(1) coefficients are truncated to multiples of 1/100.
AR_BINS = 100


def ar1_coefficients(residuals):
    """Each voxel's lag-1 autocorrelation of its OLS residuals, as nilearn's
    ``_yule_walker(residuals.T, 1)`` computes it (the mean removed is that of all
    the residuals given).

    Parameters
    ----------
    residuals : numpy.ndarray, shape (n_volumes, n_voxels)

    Returns
    -------
    rho : numpy.ndarray, shape (n_voxels,)
    """
    x = residuals.T
    n_times = x.shape[-1]
    y = x - x.mean()
    r = np.zeros((x.shape[0], 2), np.float64)
    r[:, 0] += (y[:, np.newaxis, :] @ y[:, :, np.newaxis])[:, 0, 0]
    r[:, 1] += (y[:, np.newaxis, 0:-1] @ y[:, 1:, np.newaxis])[:, 0, 0]
    r /= (n_times - np.arange(2)) * n_times
    with np.errstate(divide="ignore", invalid="ignore"):
        return r[:, 1] / r[:, 0]  # nilearn solves this 1x1 Toeplitz system per voxel


def ar1_bins(rho):
    """The AR(1) bin of each voxel, as ``run_glm`` bins: ``int(rho * 100)``, truncated
    towards 0 (the model's coefficient is then ``bin / 100``). A voxel without residual
    variance (no coefficient) gets bin 0, the OLS model."""
    rho = np.where(np.isfinite(rho), rho, 0.0)
    return (rho * AR_BINS).astype(int)


def fit_chunk(series, models, noise_model="ar1"):
    """nilearn's ``mean_scaling``, ``run_glm`` and ``compute_contrast`` on a block of voxels.

    Each voxel is fitted with the model of its AR(1) bin (ARModel(design, bin / 100)),
    whitened and fitted as nilearn's ``ARModel.fit`` does, but voxels of a bin are fitted
    together in one product and the contrasts are computed on whole arrays instead of
    one ``RegressionResults`` per bin.

    Parameters
    ----------
    series : numpy.ndarray, shape (n_volumes, n_voxels)
        Masked BOLD before scaling.
    models : NoiseModels
    noise_model : {'ar1', 'ols'}

    Returns
    -------
    maps : list of dict
        Per contrast, its maps (see :func:`fit_contrasts`).
    r_square : numpy.ndarray, shape (n_voxels,)
        ``RegressionResults.r_square``: ``var(whitened X @ beta) / var(whitened Y)``.
    """
    from nilearn.glm.contrasts import Contrast
    from nilearn.glm.first_level import mean_scaling

    scaled, _ = mean_scaling(series, 0)
    n_times, n_voxels = scaled.shape
    ols_design, ols_pinv, _ = models.model(None)
    if noise_model == "ols":
        bins = np.zeros(n_voxels, dtype=int)
        order = np.arange(n_voxels)
        whitened = scaled
        groups = [(None, 0, n_voxels)]
    else:
        residuals = scaled - np.dot(ols_design, np.dot(ols_pinv, scaled))
        bins = ar1_bins(ar1_coefficients(residuals))
        del residuals
        order = np.argsort(bins, kind="stable")
        bins = bins[order]
        data = np.asarray(scaled, dtype=np.float64)[:, order]
        # ARModel.whiten: x[1:] - rho * x[:-1], the first volume kept
        whitened = data.copy()
        whitened[1:] = data[1:] - (bins * 1.0 / AR_BINS) * data[:-1]
        del data
        values, starts = np.unique(bins, return_index=True)
        stops = np.append(starts[1:], n_voxels)
        groups = list(zip(values.tolist(), starts.tolist(), stops.tolist()))

    beta = np.empty((ols_design.shape[1], n_voxels))
    dispersion = np.empty(n_voxels)
    r_square = np.empty(n_voxels)
    factors = [np.empty(n_voxels) if test == "t" else None for test in models.tests]
    effects = [
        np.empty(n_voxels) if test == "t" else np.empty((len(vector), n_voxels))
        for vector, test in zip(models.vectors, models.tests)
    ]
    for rho_bin, start, stop in groups:
        design, pinv, contrast_factors = models.model(rho_bin)
        w_y = whitened[:, start:stop]
        theta = np.dot(pinv, w_y)
        predicted = np.dot(design, theta)
        residuals = w_y - predicted
        beta[:, start:stop] = theta
        with np.errstate(divide="ignore", invalid="ignore"):  # a constant voxel: NaN, as nilearn
            r_square[start:stop] = np.var(predicted, 0) / np.var(w_y, 0)
        dispersion[start:stop] = np.sum(residuals**2, 0) / (design.shape[0] - design.shape[1])
        for index, (vector, test, factor) in enumerate(zip(models.vectors, models.tests, contrast_factors)):
            if test == "t":
                factors[index][start:stop] = factor
            else:  # the effect whitened by the contrast's covariance, as compute_contrast
                effects[index][:, start:stop] = np.dot(factor, np.atleast_2d(np.dot(vector, theta)))
    del whitened

    maps = []
    for vector, test, factor, effect in zip(models.vectors, models.tests, factors, effects):
        if test == "t":
            effect = np.dot(vector, beta)[0]
            variance = np.sqrt(factor * dispersion) ** 2  # Tcontrast's sd, squared back
        else:
            variance = dispersion
        contrast = Contrast(effect=effect, variance=variance, dim=len(vector), dof=models.dof, stat_type=test)
        values = {}
        for stat in stats_of(test):
            value = getattr(contrast, NILEARN_OUTPUTS[stat])()
            values[stat] = np.empty(value.shape[-1])
            values[stat][order] = value
        maps.append(values)
    in_order = np.empty(n_voxels)
    in_order[order] = r_square
    return maps, in_order


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
        maps, dof, r_square = fit_contrasts(
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
        notes=notes,
        r_square=unmask_map(r_square, mask_img),
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
