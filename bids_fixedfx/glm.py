"""Run-level GLM: a design and a BOLD series in, per-contrast effect/variance/t/z/p maps out.

The numbers are those of nilearn's ``FirstLevelModel`` (masking, smoothing,
percent-signal scaling, OLS or AR(1) noise model, ``compute_contrast(...,
output_type='all')``), computed with nilearn's own regression models (``OLSModel``,
``ARModel``) and ``Contrast``, and its ``mean_scaling`` formula. What differs is for speed
and memory only:

- the BOLD series is decompressed, smoothed and masked volume by volume, so the whole
  4D series is never held in double precision (``FirstLevelModel`` smooths a copy of
  the whole series), nor at all when a mask is given;
- ``run_glm``'s AR(1) model is fitted on whole arrays: each voxel's coefficient is
  computed as nilearn's ``_yule_walker`` computes it and truncated to nilearn's bins,
  and the voxels of a bin are whitened and fitted together with that bin's ``ARModel``
  (nilearn builds a ``RegressionResults`` per bin, and a Toeplitz system per voxel);
  contrasts are computed from the fitted arrays as ``compute_contrast`` computes them;
- each voxel's R² is ``RegressionResults.r_square`` (the variance of the whitened fit
  over that of the whitened data: a pseudo-R² with AR(1)), from the same arrays; the
  fit's variance is that of the column-centred design times the parameters (the fitted
  values less their mean), and the residuals are computed in place by BLAS (``gemm``),
  instead of holding the fitted values in an array of the data's size;
- voxels are fitted in chunks small enough to stay in a core's cache (:data:`CHUNK_BYTES`),
  on ``n_threads`` threads: first the OLS fit that gives each voxel's AR(1) bin, chunk by
  chunk, then each bin's voxels together (in chunks; the voxels are first put in the order
  of their bins, so that a bin's voxels are next to one another), then every contrast's
  statistics at once. nilearn's AR(1) model bins each voxel's own AR coefficient, so every
  voxel's estimate is independent of the others, and chunking gives the same numbers (the
  mean residual that ``_yule_walker`` removes is the whole run's: :func:`residual_mean`).
  Each voxel's mean is taken over the whole series at once, as nilearn takes it (a
  single-precision mean's rounding depends on the order it is summed in).

Tests compare every map with ``FirstLevelModel`` on the same data, and the fit with
``run_glm`` and ``compute_contrast`` to 1e-10.
"""

from __future__ import annotations

import warnings as pywarnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .notes import one_line
from .series import (  # noqa: F401  (a run's series; re-exported for the callers of glm)
    MaskedRun,
    SeriesPool,
    _map,
    is_streamed,
    load_mask,
    masked_series,
    prepare_run,
    read_ahead,
    read_bold,
    streamed_series,
)
from .settings import STATS
from .surface import hide_carrier_warning

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
#: The maps of a BIDS Stats Model contrast of Test "pass": no statistical test, only the
#: effect and its variance, which the next node takes.
PASS_STATS = ("effect", "variance")
#: The size of a chunk of voxels fitted together, in double precision, chosen for a core's L2
#: cache: on the benchmark machine (1 MB of L2 a core), chunks of 2,000 voxels of 200 volumes
#: (3.2 MB) made the fit 1.7 times as long, and chunks of 256 to 512 voxels were the quickest.
CHUNK_BYTES = 2**19
#: A run's maps as they are held until written (and combined): in single precision, as they
#: are written (``outputs.as_float32``); a run's maps span the whole grid, and in double
#: precision ten maps of a 1 mm grid took 680 MB.
MAP_DTYPE = np.float32
#: The value of each map outside the mask: 0, but 1 for p (nothing there looks significant).
OUTSIDE_MASK = {"effect": 0.0, "variance": 0.0, "t": 0.0, "F": 0.0, "z": 0.0, "p": 1.0}


def stats_of(test: str) -> tuple[str, ...]:
    """The maps written for a contrast of this test (``t``, ``F`` or ``pass``)."""
    return {"F": F_STATS, "pass": PASS_STATS}.get(test, STATS)


def fitted_test(test: str) -> str:
    """The statistic computed for a contrast of this test: a ``pass`` contrast's effect and
    variance are those of the same weights tested by t."""
    return "F" if test == "F" else "t"


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


def fit_contrasts(series, design_matrix, vectors, noise_model="ar1", n_threads=1, chunk=None, tests=None,
                  overwrite_series=False, means=None, left_out=(0.0, 0)):
    """Fit the GLM and compute t and F contrasts, as nilearn, on whole arrays.

    The numbers are those of nilearn's ``mean_scaling``, ``run_glm`` and
    ``compute_contrast``: with AR(1), each voxel's coefficient is estimated from its OLS
    residuals (voxel chunk by voxel chunk, see :func:`ar1_coefficients`) and truncated to
    nilearn's bins; then the voxels of each bin are fitted together with that bin's
    ``ARModel`` (see :func:`fit_voxels`), as ``run_glm`` fits them, in chunks; the
    contrasts' statistics are computed once over all voxels with nilearn's ``Contrast``.

    Parameters
    ----------
    series : numpy.ndarray, shape (n_volumes, n_voxels)
        Masked (and smoothed) BOLD, before scaling.
    design_matrix : numpy.ndarray, shape (n_volumes, n_regressors)
    vectors : list of numpy.ndarray
        One weight vector (t) or matrix (F) per contrast.
    noise_model : {'ar1', 'ols'}
    n_threads : int
    chunk : int, optional
        Voxels fitted together at most (default: :func:`chunk_voxels`).
    tests : list of str, optional
        ``t`` or ``F`` per contrast (default: all ``t``).
    overwrite_series : bool
        Scale a writable floating-point ``series`` in place instead of scaling a copy: one
        pass less over the series, and no second copy of it in memory. It then holds
        nilearn's mean-scaled series, its voxels (columns) in the order of their AR(1) bins
        (:func:`sort_voxels`; with OLS, as they were).
    means : numpy.ndarray, shape (n_voxels,), optional
        The voxels' means (:func:`voxel_means`), when taken over a larger series than
        ``series`` (the run's mask before its constant voxels were left out, as nilearn
        takes them); by default those of ``series``.
    left_out : (float, int)
        Those voxels left out (:func:`left_out_scaled`), whose residuals nilearn's AR(1)
        estimate counts too.

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
    from threadpoolctl import threadpool_limits

    n_voxels = series.shape[1]
    chunk = chunk or chunk_voxels(series.shape[0])
    tests = list(tests) if tests is not None else ["t"] * len(vectors)
    models = NoiseModels(np.asarray(design_matrix, dtype=np.float64), vectors, tests)
    fitted = FittedVoxels(n_voxels, models)
    scaled = mean_scaled(series, voxel_means(series) if means is None else means, in_place=overwrite_series)
    # n_threads in all: the products are small, and BLAS's own threads would compete
    # with these (and with other processes, with --nprocs 1)
    with threadpool_limits(limits=1):
        if noise_model == "ols":
            groups = [(None, slice(start, stop)) for start, stop in _chunks(n_voxels, chunk)]
        else:
            bins = np.empty(n_voxels, dtype=int)
            mean = residual_mean(scaled, models, left_out)  # every chunk's: nilearn removes the mean of all

            def estimate(bounds):
                start, stop = bounds
                bins[start:stop] = ar1_bins(ar1_coefficients(ols_residuals(scaled[:, start:stop], models), mean))

            _map(estimate, _chunks(n_voxels, chunk), n_threads)
            order = np.argsort(bins, kind="stable")
            sort_voxels(scaled, order, n_threads)
            groups = bin_groups(bins[order], chunk)
        _map(lambda group: fit_voxels(scaled, *group, models, fitted), groups, n_threads)
        if noise_model != "ols":
            fitted.unsort(order)
    return fitted.contrast_maps(), float(models.dof), fitted.r_square


def chunk_voxels(n_volumes: int) -> int:
    """Voxels fitted together: a chunk of :data:`CHUNK_BYTES` (at least 16 voxels)."""
    return max(16, CHUNK_BYTES // (8 * max(n_volumes, 1)))


def _chunks(n_voxels, chunk):
    return [(i, min(i + chunk, n_voxels)) for i in range(0, n_voxels, chunk)]


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

        Returns (whitened design, its pseudo-inverse, the design with each column's mean
        subtracted (the fit less its mean is ``centred @ theta``), the factor per contrast: the
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
            design = model.whitened_design
            self._models[rho_bin] = (design, model.calc_beta, design - design.mean(axis=0), factors)
        return self._models[rho_bin]


#: nilearn's ``run_glm(bins=100)``: AR(1) coefficients are truncated to multiples of 1/100.
AR_BINS = 100


def ar1_coefficients(residuals, mean=None):
    """Each voxel's lag-1 autocorrelation of its OLS residuals, as nilearn's
    ``_yule_walker(residuals.T, 1)`` computes it (the mean removed is that of all
    the residuals, every voxel's).

    Parameters
    ----------
    residuals : numpy.ndarray, shape (n_volumes, n_voxels)
    mean : float, optional
        The mean of all the run's residuals (:func:`residual_mean`), when ``residuals``
        are some of its voxels'; by default the mean of ``residuals``.

    Returns
    -------
    rho : numpy.ndarray, shape (n_voxels,)
    """
    n_times = residuals.shape[0]
    y = residuals - (residuals.mean() if mean is None else mean)
    r = np.empty((y.shape[1], 2), np.float64)
    r[:, 0] = np.einsum("ij,ij->j", y, y)  # each voxel's products, over time
    r[:, 1] = np.einsum("ij,ij->j", y[:-1], y[1:])
    r /= (n_times - np.arange(2)) * n_times
    with np.errstate(divide="ignore", invalid="ignore"):
        return r[:, 1] / r[:, 0]  # nilearn solves this 1x1 Toeplitz system per voxel


def residual_mean(scaled, models, left_out=(0.0, 0)) -> float:
    """The mean of the OLS residuals of all voxels and volumes (which nilearn's
    ``_yule_walker`` removes before its products), without the residuals: their sum is
    ``(1 - H 1)' Y 1``, ``H`` the design's hat matrix and ``Y 1`` the volumes' sums over
    the voxels. About 0 with an intercept in the design; without one (a ``--design-dir``
    design), the mean of a chunk of voxels was not the run's, and moved voxels to other
    AR(1) bins.

    Parameters
    ----------
    scaled : numpy.ndarray, shape (n_volumes, n_voxels)
        The mean-scaled series.
    models : NoiseModels
    left_out : (float, int)
        The voxels of the mask left out of ``scaled`` as constant (:func:`left_out_scaled`):
        the sum of their scaled values, and their number.
    """
    design, pinv, _, _ = models.model(None)
    ones = np.ones(design.shape[0])
    total, count = left_out
    sums = scaled.sum(axis=1, dtype=np.float64) + total
    return float((ones - design @ (pinv @ ones)) @ sums) / (scaled.shape[0] * (scaled.shape[1] + count))


def ar1_bins(rho):
    """The AR(1) bin of each voxel, as ``run_glm`` bins: ``int(rho * 100)``, truncated
    towards 0 (the model's coefficient is then ``bin / 100``). A voxel without residual
    variance (no coefficient) gets bin 0, the OLS model."""
    rho = np.where(np.isfinite(rho), rho, 0.0)
    return (rho * AR_BINS).astype(int)


def voxel_means(series, mean=None):
    """Each voxel's mean as nilearn's ``mean_scaling`` takes it: computed over the whole
    series at once (a single-precision mean's rounding depends on the order it is summed
    in: ``mean``, when given, is some voxels' of the means of all), and at least 1. Warns as
    nilearn does of a mean of 0."""
    mean = series.mean(axis=0) if mean is None else mean
    if (mean == 0).any():
        pywarnings.warn("Mean values of 0 observed. The data have probably been centered. "
                        "Scaling might not work as expected.", UserWarning, stacklevel=2)
    return np.maximum(mean, 1)


def left_out_scaled(series, left_out, mean) -> tuple[float, int]:
    """The sum of the mean-scaled values of voxels constant over time that the fit leaves
    out (one value per voxel, the same in every volume), and their number: the mean of the
    residuals that nilearn's Yule-Walker estimate removes is over every voxel of the mask
    (:func:`residual_mean`), and theirs is not 0 without an intercept in the design.
    ``mean``: every voxel's mean over the whole series."""
    means = np.maximum(mean[left_out], 1)  # as voxel_means, unwarned
    values = mean_scaled(series[:1, left_out], means)  # in the series' precision, as the voxels it keeps
    return float(values.sum(dtype=np.float64)), int(np.count_nonzero(left_out))


def mean_scaled(voxels, means, in_place=False):
    """nilearn's ``mean_scaling``: each voxel's series in percent of its mean, minus 100.

    ``in_place``: written over ``voxels`` (the same operations in the same precision, so
    the same values) when they are a writable floating-point array; else a new array.
    """
    if not (in_place and voxels.dtype.kind == "f" and voxels.flags.writeable):
        return 100 * (voxels / means - 1)
    np.divide(voxels, means, out=voxels)
    np.subtract(voxels, 1, out=voxels)
    return np.multiply(voxels, 100, out=voxels)


def ols_residuals(scaled, models):
    """The residuals of nilearn's OLS fit of the mean-scaled series (``run_glm``'s first
    pass, from which the AR(1) coefficients are estimated)."""
    design, pinv, _, _ = models.model(None)
    data = np.array(scaled, dtype=np.float64)  # as np.dot casts it; gemm then writes over it
    return subtract_fit(data, design, np.dot(pinv, data))


def sort_voxels(scaled, order, n_threads=1):
    """Put the voxels (columns) of ``scaled`` in ``order``, in place, a volume at a time (so
    that the voxels of an AR(1) bin are next to one another: gathering them from all over
    each volume, bin by bin, took as long as fitting them)."""
    def volumes(bounds):
        row = np.empty(scaled.shape[1], dtype=scaled.dtype)
        for t in range(*bounds):
            np.take(scaled[t], order, out=row)
            scaled[t] = row

    _map(volumes, _chunks(scaled.shape[0], -(-scaled.shape[0] // max(n_threads, 1))), n_threads)


def bin_groups(bins, chunk):
    """The voxels of each AR(1) bin, in chunks of at most ``chunk``, ``bins`` sorted.

    Returns
    -------
    groups : list of (int, slice)
        A bin and some of its voxels.
    """
    values, starts = np.unique(bins, return_index=True)
    stops = np.append(starts[1:], len(bins))
    return [
        (int(value), slice(first, min(first + chunk, stop)))
        for value, start, stop in zip(values, starts, stops)
        for first in range(start, stop, chunk)
    ]


class FittedVoxels:
    """What the contrasts need of each voxel's fit, filled group of voxels by group."""

    def __init__(self, n_voxels, models):
        self.models = models
        self.dispersion = np.empty(n_voxels)
        self.r_square = np.empty(n_voxels)
        # per contrast: the effect (one row per F row) and, for t, the variance factor
        self.effects = [np.empty(n_voxels) if test == "t" else np.empty((len(vector), n_voxels))
                        for vector, test in zip(models.vectors, models.tests)]
        self.factors = [np.empty(n_voxels) if test == "t" else None for test in models.tests]

    def unsort(self, order):
        """Put the voxels back where they were, those fitted being in ``order`` (:func:`sort_voxels`)."""
        def unsorted(values):
            if values is None:
                return None
            back = np.empty_like(values)
            back[..., order] = values
            return back

        self.dispersion, self.r_square = unsorted(self.dispersion), unsorted(self.r_square)
        self.effects = [unsorted(values) for values in self.effects]
        self.factors = [unsorted(values) for values in self.factors]

    def contrast_maps(self):
        """Per contrast, its maps (see :func:`fit_contrasts`), through nilearn's ``Contrast``."""
        from nilearn.glm.contrasts import Contrast

        maps = []
        for vector, test, factor, effect in zip(self.models.vectors, self.models.tests, self.factors, self.effects):
            if test == "t":
                variance = np.sqrt(factor * self.dispersion) ** 2  # Tcontrast's sd, squared back
            else:
                variance = self.dispersion
            contrast = Contrast(effect=effect, variance=variance, dim=len(vector), dof=self.models.dof,
                                stat_type=test)
            values = {}
            for stat in stats_of(test):
                if stat == "p" and contrast.p_value_ is not None:  # z_score computed it
                    values[stat] = np.asarray(contrast.p_value_, dtype=np.float64).reshape(-1)
                else:
                    values[stat] = np.asarray(getattr(contrast, NILEARN_OUTPUTS[stat])(), np.float64).reshape(-1)
            maps.append(values)
        return maps


def fit_voxels(scaled, rho_bin, columns, models, fitted):
    """nilearn's ``ARModel(design, bin / 100).fit`` (``OLSModel`` for bin None) on some
    voxels, with what each contrast needs of the fit written to ``fitted``.

    Parameters
    ----------
    scaled : numpy.ndarray, shape (n_volumes, n_voxels)
        Masked BOLD, mean-scaled (:func:`mean_scaled`).
    rho_bin : int or None
        The voxels' AR(1) bin (None: OLS).
    columns : slice
        The voxels.
    models : NoiseModels
    fitted : FittedVoxels
    """
    data = scaled[:, columns]  # a view; OLSModel fits it as it is
    design, pinv, centred, contrast_factors = models.model(rho_bin)
    if rho_bin is not None:  # ARModel.whiten, in double precision: x[1:] - rho * x[:-1], x[0] kept
        scaled, data = data, np.empty_like(data, dtype=np.float64)  # in its layout: sums run as before
        data[:1] = scaled[:1]
        np.multiply(scaled[:-1], rho_bin * 1.0 / AR_BINS, out=data[1:], dtype=np.float64)
        np.subtract(scaled[1:], data[1:], out=data[1:], dtype=np.float64)
    theta = np.dot(pinv, data)
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant voxel: NaN, as nilearn
        # the fit's variance as RegressionResults.r_square takes it (np.var of the fitted values):
        # theta' S theta (S the design's covariance) was 3e-4 off in designs of condition 1e7
        fit = centred @ theta
        explained = np.einsum("ij,ij->j", fit, fit) / design.shape[0]
        fitted.r_square[columns] = explained / np.var(data, 0)
    residuals = subtract_fit(data, design, theta)
    fitted.dispersion[columns] = np.sum(residuals**2, 0) / (design.shape[0] - design.shape[1])
    for index, (vector, test, factor) in enumerate(zip(models.vectors, models.tests, contrast_factors)):
        if test == "t":
            fitted.factors[index][columns] = factor
            fitted.effects[index][columns] = np.dot(vector, theta)[0]
        else:  # the effect whitened by the contrast's covariance, as compute_contrast
            fitted.effects[index][:, columns] = np.dot(factor, np.atleast_2d(np.dot(vector, theta)))


def subtract_fit(data, design, theta):
    """The residuals ``data - design @ theta``, written over ``data`` when it is float64 and
    contiguous (BLAS's ``gemm``: no array of fitted values is made), else in a new array.

    Parameters
    ----------
    data : numpy.ndarray, shape (n_volumes, n_voxels)
    design : numpy.ndarray, shape (n_volumes, n_regressors)
    theta : numpy.ndarray, shape (n_regressors, n_voxels)

    Returns
    -------
    residuals : numpy.ndarray, shape (n_volumes, n_voxels)
    """
    from scipy.linalg.blas import dgemm

    theta = np.ascontiguousarray(theta, dtype=np.float64)
    design = np.ascontiguousarray(design, dtype=np.float64)
    if data.dtype == np.float64 and data.flags.f_contiguous:
        return dgemm(-1.0, design.T, theta.T, 1.0, data, trans_a=1, trans_b=1, overwrite_c=1)
    if data.dtype == np.float64 and data.flags.c_contiguous:
        return dgemm(-1.0, theta.T, design.T, 1.0, data.T, overwrite_c=1).T
    return data - np.dot(design, theta)


def unmask_map(values, mask_img, outside=0.0, dtype=None):
    """A map image from its values inside the mask, ``outside`` elsewhere.

    Parameters
    ----------
    values : numpy.ndarray, shape (n_voxels,)
    mask_img : Nifti1Image
    outside : float
    dtype : numpy dtype, optional
        The image's (default: that of ``values``).

    Returns
    -------
    img : Nifti1Image
    """
    import nibabel as nib

    inside = np.asanyarray(mask_img.dataobj).astype(bool)
    data = np.full(inside.shape, outside, dtype=dtype or np.asarray(values).dtype)
    data[inside] = values
    return nib.Nifti1Image(data, mask_img.affine)


def set_outside(img, mask_img, outside):
    """A copy of a 3D map with ``outside`` wherever the mask is 0."""
    import nibabel as nib

    data = np.asarray(img.get_fdata(), dtype=np.float64).reshape(img.shape[:3])
    data[~np.asanyarray(mask_img.dataobj).astype(bool)] = outside
    return nib.Nifti1Image(data, img.affine)


def fit_masked(masked, design, contrasts, *, noise_model="ar1", name="run", n_threads=1,
               overwrite_series=False) -> RunResult:
    """Fit a masked run's GLM and compute its contrasts (see :func:`fit_run`);
    ``overwrite_series``: the run's series may be used as the fit's work space (scaled in place,
    its voxels reordered: see :func:`fit_contrasts`)."""
    series, mask_img = masked.series, masked.mask
    matrix = design.matrix.to_numpy()
    if design.sample_mask is not None:
        series = series[design.sample_mask]  # a copy
        matrix = matrix[design.sample_mask]
        overwrite_series = True
    varies = varying_voxels(series)
    constant = int(varies.size - np.count_nonzero(varies))
    means, left_out = None, (0.0, 0)
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        hide_carrier_warning()
        if 0 < constant < varies.size:  # left out of the run's mask (all constant: fitted, and said below)
            every = series.mean(axis=0)  # over the whole mask, as nilearn's: a subset's are summed otherwise
            means, left_out = voxel_means(series, every[varies]), left_out_scaled(series, ~varies, every)
            series, mask_img, overwrite_series = series[:, varies], mask_without(mask_img, ~varies), True
        maps, dof, r_square = fit_contrasts(
            series, matrix, [c.vector for c in contrasts], noise_model, n_threads,
            tests=[fitted_test(getattr(c, "test", "t")) for c in contrasts], overwrite_series=overwrite_series,
            means=means, left_out=left_out,
        )
    notes = tuple(dict.fromkeys(
        f"{name}: {one_line(w.message)}" for w in caught if issubclass(w.category, UserWarning)
    ))
    if constant == varies.size and varies.size:
        notes += (f"{name}: its series does not vary over time in any voxel of its mask, so its maps say "
                  "nothing and it only adds degrees of freedom to its subject's fixed effects; check the file",)
    elif constant:
        notes += (f"{name}: {constant} of the {varies.size} voxels of its mask do not vary over time (zero outside "
                  "the field of view, say), so they are left out of its mask (their maps are 0, p 1, as "
                  "outside it): their fit would be round-off alone",)
    if masked.nonfinite_volumes:
        notes += (f"{name}: {masked.nonfinite_volumes} of its {masked.series.shape[0]} volumes hold non-finite "
                  "values (NaN or infinity), which nilearn sets to 0 before smoothing and fitting, so its maps "
                  "are biased there; check the preprocessed series",)
    return RunResult(
        name=name,
        mask=mask_img,
        dof=dof,
        contrasts=tuple(
            ContrastMaps(contrast, {stat: unmask_map(values[stat], mask_img, OUTSIDE_MASK[stat], MAP_DTYPE)
                                    for stat in stats_of(getattr(contrast, "test", "t"))}, dof)
            for contrast, values in zip(contrasts, maps)
        ),
        notes=notes,
        r_square=unmask_map(r_square, mask_img, dtype=MAP_DTYPE),
    )


def varying_voxels(series) -> np.ndarray:
    """Which voxels' series vary over time (a constant one, zero included, has no variance
    to model: its fit is round-off, whose z can reach 5 or more).

    Parameters
    ----------
    series : numpy.ndarray, shape (n_volumes, n_voxels)

    Returns
    -------
    varies : numpy.ndarray of bool, shape (n_voxels,)
    """
    return (series != series[:1]).any(axis=0)


def mask_without(mask_img, dropped):
    """The mask with some of its voxels (``dropped``, in the order of ``volume[mask]``) left out."""
    import nibabel as nib

    inside = np.asanyarray(mask_img.dataobj).astype(bool)
    data = inside.astype(np.uint8)
    data.flat[np.flatnonzero(inside)[dropped]] = 0
    return nib.Nifti1Image(data, mask_img.affine, mask_img.header)


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
    return fit_masked(masked, design, contrasts, noise_model=noise_model, name=name, n_threads=n_threads,
                      overwrite_series=True)
