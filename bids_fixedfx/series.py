"""A run's BOLD series as the GLM is fitted on it: read (integrity checked), smoothed as
nilearn smooths it (non-finite values set to 0 first), and masked, volume by volume.

nilearn's ``FirstLevelModel`` smooths a double-precision copy of the whole 4D series; here
the series is decompressed, smoothed and masked volume by volume, so it is never held
whole in double precision, nor at all when a mask is given.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputFileError
from .images import read_image, read_mask


def load_mask(mask, bold_img, name=None):
    """The run's mask image: the given one, or the one nilearn computes from the BOLD.

    Parameters
    ----------
    mask : str, Path, Nifti1Image or None
    bold_img : Nifti1Image
    name : str or Path, optional
        The BOLD file, named in the error.

    Returns
    -------
    mask_img : Nifti1Image
        Binary (int8), as nilearn's maskers hold it.

    Raises
    ------
    InputFileError
        The mask nilearn computes is empty (no voxel of the series looks like brain).
    """
    import nibabel as nib
    from nilearn.maskers import MultiNiftiMasker
    from nilearn.masking import load_mask_img

    if mask is None:  # as FirstLevelModel does: an EPI mask computed by its masker
        computed = MultiNiftiMasker(mask_strategy="epi").fit([bold_img]).mask_img_
        if not np.any(np.asanyarray(computed.dataobj)):
            name = name or bold_img.get_filename() or "the BOLD series"
            raise InputFileError(
                f"nilearn computed an empty brain mask from {name} (no voxel looks like brain in the "
                "series); give preprocessed derivatives with their brain masks, or --mask."
            )
        return computed
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
    where = _mask_offsets(mask_img)
    data = np.asanyarray(bold_img.dataobj)
    sigma = _sigma(bold_img.affine, smoothing_fwhm)
    series = np.empty((data.shape[3], where.size), dtype=_series_dtype(data.dtype, sigma))

    def one_volume(t):
        series[t] = _masked_volume(data[..., t], where, sigma, series.dtype)

    _map(one_volume, range(data.shape[3]), n_threads)
    return series


def streamed_series(bold, mask_img, smoothing_fwhm=None, n_threads=1) -> np.ndarray:
    """:func:`masked_series` of a BOLD file read volume by volume, as it is decompressed
    (the whole series is never in memory; the gzip CRC is checked at the end).

    Parameters
    ----------
    bold : str or Path
    mask_img : Nifti1Image
    smoothing_fwhm : float or None
    n_threads : int
        Threads smoothing volumes while the next ones are decompressed.

    Returns
    -------
    series : numpy.ndarray, shape (n_volumes, n_voxels)

    Raises
    ------
    InputFileError
        The file is truncated or corrupt.
    """
    from .images import read_volumes

    header_img, volumes = read_volumes(bold, "BOLD series")
    where = _mask_offsets(mask_img)
    sigma = _sigma(header_img.affine, smoothing_fwhm)
    n_volumes = header_img.shape[3]
    series = None
    in_flight = []
    with ThreadPoolExecutor(max(1, n_threads - 1)) if n_threads > 1 else nullcontext() as pool:
        for t, volume in enumerate(volumes):
            if series is None:
                series = np.empty((n_volumes, where.size), dtype=_series_dtype(volume.dtype, sigma))
            if pool is None:
                series[t] = _masked_volume(volume, where, sigma, series.dtype)
                continue
            in_flight.append(pool.submit(_masked_volume, volume, where, sigma, series.dtype))
            if len(in_flight) >= 2 * n_threads:  # keep a few volumes in memory, not the series
                oldest = t + 1 - len(in_flight)
                series[oldest] = in_flight.pop(0).result()
        for offset, future in enumerate(in_flight):
            series[n_volumes - len(in_flight) + offset] = future.result()
    return series


def _sigma(affine, smoothing_fwhm):
    """The Gaussian's standard deviation along each axis, in voxels (None: no smoothing)."""
    if not smoothing_fwhm:
        return None
    voxel_size = np.sqrt(np.sum(affine[:3, :3] ** 2, axis=0))
    return smoothing_fwhm / (np.sqrt(8 * np.log(2)) * voxel_size)


def _series_dtype(data_dtype, sigma):
    if data_dtype.kind == "f":
        return data_dtype
    if sigma is not None:  # nilearn's smooth_array works on integers in single precision
        return np.dtype(np.float64 if data_dtype.itemsize == 8 else np.float32)
    return np.dtype(np.float64)


def _mask_offsets(mask_img):
    """Where the mask's voxels lie in a volume stored in Fortran order (NIfTI's), in the
    order of ``volume[mask]``."""
    inside = np.asanyarray(mask_img.dataobj).astype(bool)
    return np.ravel_multi_index(np.nonzero(inside), inside.shape, order="F")


def _masked_volume(volume, where, sigma, dtype):
    """One volume, non-finite values zeroed, smoothed (``sigma`` not None) and masked
    (``where``: see :func:`_mask_offsets`)."""
    from scipy.ndimage import gaussian_filter1d

    volume = np.array(volume, dtype=dtype, copy=True, order="F")
    if volume.dtype.kind == "f":  # nilearn sets non-finite values to 0, smoothing or not
        volume[~np.isfinite(volume)] = 0
    if sigma is not None:
        for axis, s in enumerate(sigma):
            if s > 0:
                gaussian_filter1d(volume, s, output=volume, axis=axis)
    return volume.ravel(order="F")[where]


def _map(function, items, n_threads):
    items = list(items)
    if n_threads <= 1:
        for item in items:
            function(item)
        return
    with ThreadPoolExecutor(n_threads) as pool:
        for _ in pool.map(function, items):
            pass


@dataclass(frozen=True, eq=False)
class MaskedRun:
    """A run's BOLD series inside its mask, smoothed: what the GLM is fitted on."""

    series: np.ndarray  # (n_volumes, n_voxels)
    mask: object  # Nifti1Image


def prepare_run(bold, mask=None, smoothing_fwhm=None, n_threads=1) -> MaskedRun:
    """Read a run's BOLD series, mask and smooth it (see :func:`masked_series`).

    A BOLD file with a given mask is read volume by volume (:func:`streamed_series`);
    without a mask, nilearn computes one from the whole series.

    Parameters
    ----------
    bold : str, Path or Nifti1Image
        A GIFTI pair (its left file) or CIFTI series is read by :func:`.surface.prepare_run`.
    mask : str, Path, Nifti1Image or None
        Brain mask; None lets nilearn compute one from the BOLD.
    smoothing_fwhm : float or None
    n_threads : int

    Returns
    -------
    masked : MaskedRun
    """
    from nilearn.image import load_img

    from .surface import is_surface_file

    if isinstance(bold, (str, Path)) and is_surface_file(bold):  # a GIFTI pair or CIFTI: masked by its data
        from .surface import prepare_run as prepare_surface_run

        return prepare_surface_run(bold, smoothing_fwhm)
    if isinstance(bold, (str, Path)) and mask is not None:  # read, smoothed and masked as it is decompressed
        mask_img = load_mask(mask, None)
        return MaskedRun(streamed_series(bold, mask_img, smoothing_fwhm, n_threads), mask_img)
    bold_img = read_bold(bold) if isinstance(bold, (str, Path)) else load_img(bold)
    mask_img = load_mask(mask, bold_img, bold if isinstance(bold, (str, Path)) else None)
    return MaskedRun(masked_series(bold_img, mask_img, smoothing_fwhm, n_threads), mask_img)
