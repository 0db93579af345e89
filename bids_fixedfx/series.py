"""A run's BOLD series as the GLM is fitted on it: read (integrity checked), smoothed as
nilearn smooths it (non-finite values set to 0 first), and masked, volume by volume.

nilearn's ``FirstLevelModel`` smooths a double-precision copy of the whole 4D series; here
the series is decompressed, smoothed and masked volume by volume, so it is never held
whole in double precision, nor at all when a mask is given.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FixedFxError, InputFileError
from .images import check_image, no_memory, read_image, read_mask


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
        with warnings.catch_warnings():  # an empty mask: nilearn's warning, said below as an error
            warnings.filterwarnings("ignore", message="Computed an empty mask")
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
    return _masked_series(bold_img, mask_img, smoothing_fwhm, n_threads)[0]


def _masked_series(bold_img, mask_img, smoothing_fwhm, n_threads):
    """:func:`masked_series`, and the number of volumes that held non-finite values."""
    data = np.asanyarray(bold_img.dataobj)
    sigma = _sigma(bold_img.affine, smoothing_fwhm)
    box, where = _mask_box(mask_img, sigma)
    series = np.empty((data.shape[3], where.size), dtype=_series_dtype(data.dtype, sigma))

    def one_volume(t):
        return _masked_volume(data[box + (t,)], where, sigma, series.dtype, out=series[t])

    return series, sum(_map(one_volume, range(data.shape[3]), n_threads))


def streamed_series(bold, mask_img, smoothing_fwhm=None, n_threads=1, allocate=np.empty) -> np.ndarray:
    """:func:`masked_series` of a BOLD file read volume by volume, as it is decompressed
    (the whole series is never in memory; the gzip CRC is checked at the end).

    Parameters
    ----------
    bold : str or Path
    mask_img : Nifti1Image
    smoothing_fwhm : float or None
    n_threads : int
        Threads in all: one decompresses, the others smooth and mask the volumes it hands on
        (one thread does both in turn).
    allocate : callable
        ``allocate(shape, dtype)``: where the series is made (default ``numpy.empty``).

    Returns
    -------
    series : numpy.ndarray, shape (n_volumes, n_voxels)

    Raises
    ------
    InputFileError
        The file is truncated or corrupt.
    """
    return _streamed_series(bold, mask_img, smoothing_fwhm, n_threads, allocate)[0]


def _streamed_series(bold, mask_img, smoothing_fwhm, n_threads, allocate=np.empty):
    """:func:`streamed_series`, and the number of volumes that held non-finite values."""
    from .images import read_volumes

    header_img, volumes = read_volumes(bold, "BOLD series")
    sigma = _sigma(header_img.affine, smoothing_fwhm)
    box, where = _mask_box(mask_img, sigma)
    n_volumes = header_img.shape[3]
    series = None
    in_flight = []
    zeroed = 0  # volumes with non-finite values
    with ThreadPoolExecutor(max(1, n_threads - 1)) if n_threads > 1 else nullcontext() as pool:
        for t, volume in enumerate(volumes):
            volume = volume[box]
            if series is None:
                try:
                    series = allocate((n_volumes, where.size), _series_dtype(volume.dtype, sigma))
                except MemoryError:
                    raise _no_memory(bold, (n_volumes, where.size), _series_dtype(volume.dtype, sigma)) from None
            if pool is None:
                zeroed += _masked_volume(volume, where, sigma, series.dtype, out=series[t])
                continue
            in_flight.append(pool.submit(_masked_volume, volume, where, sigma, series.dtype, series[t]))
            if len(in_flight) >= 2 * n_threads:  # keep a few volumes in memory, not the series
                zeroed += in_flight.pop(0).result()
        for future in in_flight:
            zeroed += future.result()
    return series, zeroed


def _no_memory(bold, shape, dtype) -> FixedFxError:
    """The error of a series too large for the memory left (exit 1): a large run on a small
    job, or a header that declares more than the file holds (a gzip stream of zeros)."""
    return no_memory(bold, np.prod(shape, dtype=float) * np.dtype(dtype).itemsize,
                     f"{' x '.join(map(str, shape))} values of {np.dtype(dtype)}")


def _sigma(affine, smoothing_fwhm):
    """The Gaussian's standard deviation along each axis, in voxels (None: no smoothing)."""
    if not smoothing_fwhm:
        return None
    voxel_size = np.sqrt(np.sum(affine[:3, :3] ** 2, axis=0))
    return smoothing_fwhm / (np.sqrt(8 * np.log(2)) * voxel_size)


def _series_dtype(data_dtype, sigma):
    """The series' type as nilearn's masker gives it: a float's own; integers in single
    precision (64-bit integers smoothed in double)."""
    if data_dtype.kind == "f":
        return data_dtype
    if sigma is not None and data_dtype.itemsize == 8:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


#: ``scipy.ndimage.gaussian_filter1d``'s default: the kernel stops at 4 standard deviations.
TRUNCATE = 4.0


def _mask_box(mask_img, sigma):
    """The part of a volume that smoothing the mask's voxels needs, and where those voxels
    lie in it.

    The box is the mask's bounding box widened on each side by the Gaussian kernel's
    radius along that axis (``int(4 * sigma + 0.5)`` voxels, as scipy truncates it), cut
    at the volume's edges. A voxel's smoothed value depends only on the voxels within
    that radius of it along each axis, and where the box meets the volume's edge it ends
    where the volume does, so smoothing the box gives the mask's voxels the values that
    smoothing the whole volume gives them, for a fraction of the work.

    Returns
    -------
    box : tuple of slice
        Indexes the volume's three spatial axes.
    where : Offsets
        The offsets of the mask's voxels in the box, in the order of ``volume[mask]``.
    """
    inside = np.asanyarray(mask_img.dataobj).astype(bool)
    if not inside.any():
        return (slice(None),) * 3, Offsets(np.zeros(0, dtype=np.intp))
    box = []
    for axis in range(3):
        present = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
        radius = int(TRUNCATE * sigma[axis] + 0.5) if sigma is not None and sigma[axis] > 0 else 0
        box.append(slice(max(0, present[0] - radius), min(inside.shape[axis], present[-1] + 1 + radius)))
    box = tuple(box)
    inside = inside[box]
    padded = (inside.shape[0] + PAD,) + inside.shape[1:]
    return box, Offsets(np.ravel_multi_index(np.nonzero(inside), padded, order="F"))


#: Voxels added along x to the buffer a volume is smoothed in (see :func:`_masked_volume`).
PAD = 2


@dataclass(frozen=True, eq=False)
class Offsets:
    """Where the mask's voxels lie in a box, in the order of ``volume[mask]``: as offsets
    in the box stored in Fortran order (x fastest, NIfTI's), its x axis :data:`PAD` voxels
    longer (the buffer of :func:`_masked_volume`)."""

    padded: np.ndarray

    @property
    def size(self) -> int:
        """The number of voxels."""
        return self.padded.size


_scratch = threading.local()


def _masked_volume(volume, where, sigma, dtype, out=None):
    """One volume, non-finite values zeroed, smoothed (``sigma`` not None) and masked
    (``where``: see :func:`_mask_box`), into ``out`` if given.

    The volume is copied into a buffer of the calling thread's own, reused from volume to
    volume (a thread allocating and freeing a volume each time grows its allocator's heap),
    whose x axis is :data:`PAD` voxels longer than the volume's: the same sums on the same
    lines, but in a volume stored x fastest the elements of a z line lie a slice apart, and
    slices of a multiple of 4 KB (64 x 64 or 96 x 96 float32 voxels) put them all in one
    cache set, which made the pass along z alone cost more than the other two; a slice
    two voxels wider spreads them over the cache. Measured per volume against smoothing a
    copy stored z fastest: 64x64x40 1.40 vs 1.54 ms, 96x96x60 4.5 vs 5.7 ms, 97x115x97 9.8
    vs 10.9 ms, 80x80x48 and 104x104x72 within 1%.

    Returns whether the volume held non-finite values (set to 0).
    """
    from scipy.ndimage import gaussian_filter1d

    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.shape != volume.shape or buffer.dtype != dtype:
        padded = np.empty((volume.shape[0] + PAD,) + volume.shape[1:], dtype=dtype, order="F")
        buffer = _scratch.buffer = padded[:volume.shape[0]]
        _scratch.flat = padded.ravel(order="F")  # a view: the offsets of Offsets.padded
        _scratch.finite = np.empty(volume.shape, dtype=bool, order="F")
    buffer[...] = volume
    zeroed = False
    if buffer.dtype.kind == "f":  # nilearn sets non-finite values to 0, smoothing or not
        finite = np.isfinite(buffer, out=_scratch.finite)
        if not finite.all():
            buffer[~finite] = 0
            zeroed = True
    if sigma is not None:
        for axis in range(3):
            if sigma[axis] > 0:
                gaussian_filter1d(buffer, sigma[axis], output=buffer, axis=axis)
    np.take(_scratch.flat, where.padded, out=out)
    return zeroed


def _map(function, items, n_threads) -> list:
    """``function`` of each item, on ``n_threads`` threads; the results in order."""
    items = list(items)
    if n_threads <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(n_threads) as pool:
        return list(pool.map(function, items))


class SeriesPool:
    """An allocator (``allocate(shape, dtype)``) that hands out again a series it made, once
    given back: a run's series is tens of megabytes, which the kernel mapped and zeroed anew
    for every run (on the benchmark, 0.05 s of CPU a run, in the threads that smooth).

    It keeps one series at most, until the next call, which takes it if its shape and type
    fit, and drops it otherwise; :meth:`clear` drops it before a read that makes no series
    here (a surface, or a run whose mask nilearn computes).
    """

    def __init__(self):
        self._kept = None
        self._made = {}  # id -> weak reference, of the series made here and still alive
        self._lock = threading.Lock()

    def __call__(self, shape, dtype):
        with self._lock:
            kept, self._kept = self._kept, None
            self._made = {key: ref for key, ref in self._made.items() if ref() is not None}
        if kept is not None and kept.shape == tuple(shape) and kept.dtype == np.dtype(dtype):
            return kept
        del kept  # freed before a new one is made
        series = np.empty(shape, dtype)
        with self._lock:
            self._made[id(series)] = weakref.ref(series)
        return series

    def give_back(self, series) -> None:
        """Keep ``series`` for the next call, if it was made here; the caller no longer uses it."""
        with self._lock:
            ref = self._made.get(id(series))
            if ref is not None and ref() is series:
                self._kept = series

    def clear(self) -> None:
        """Drop the series kept."""
        with self._lock:
            self._kept = None


def is_streamed(bold, mask) -> bool:
    """Whether :func:`prepare_run` reads this run volume by volume (a volume's BOLD file, with
    a mask file or image): the reads that make a series with ``allocate``."""
    from .surface import is_surface_file

    return isinstance(bold, (str, Path)) and mask is not None and not is_surface_file(bold)


@dataclass(frozen=True, eq=False)
class MaskedRun:
    """A run's BOLD series inside its mask, smoothed: what the GLM is fitted on."""

    series: np.ndarray  # (n_volumes, n_voxels)
    mask: object  # Nifti1Image
    nonfinite_volumes: int = 0  # volumes that held NaN or infinity, set to 0 as nilearn does


@dataclass(frozen=True, eq=False)
class ReadAhead:
    """A run's series read by :func:`read_ahead`, with what it was read from."""

    bold: Path
    mask: Path
    smoothing_fwhm: float | None
    inside: np.ndarray  # the mask's voxels as read without nilearn
    series: np.ndarray
    nonfinite_volumes: int = 0

    def matches(self, bold, mask, smoothing_fwhm, mask_img) -> bool:
        """Whether this is the series :func:`streamed_series` gives for these files, this
        smoothing and this mask image (as nilearn read it)."""
        return (
            isinstance(bold, (str, Path)) and isinstance(mask, (str, Path))
            and (self.bold, self.mask, self.smoothing_fwhm) == (Path(bold), Path(mask), smoothing_fwhm)
            and np.array_equal(self.inside, np.asanyarray(mask_img.dataobj).astype(bool))
        )


def read_ahead(bold, mask, smoothing_fwhm=None, n_threads=1, allocate=np.empty) -> ReadAhead:
    """:func:`streamed_series` of a BOLD file with a mask file, the mask read by nibabel
    alone (its non-zero voxels; a 4D mask of one volume as its volume), so that nilearn need
    not be loaded: :func:`prepare_run` takes the series only if nilearn's reading of the
    mask gives the same voxels.

    Parameters
    ----------
    bold, mask : str or Path
    smoothing_fwhm : float or None
    n_threads : int
    allocate : callable
        See :func:`streamed_series`.

    Returns
    -------
    ahead : ReadAhead
    """
    import nibabel as nib

    img = read_image(mask, "brain mask")
    inside = np.asanyarray(img.dataobj) != 0
    if inside.ndim == 4 and inside.shape[3] == 1:
        inside = inside[..., 0]
    inside_img = nib.Nifti1Image(inside.astype(np.int8), img.affine)
    return ReadAhead(Path(bold), Path(mask), smoothing_fwhm, inside,
                     *_streamed_series(bold, inside_img, smoothing_fwhm, n_threads, allocate))


def prepare_run(bold, mask=None, smoothing_fwhm=None, n_threads=1, ahead=None, allocate=np.empty) -> MaskedRun:
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
    ahead : ReadAhead, optional
        The series already read (:func:`read_ahead`): taken when read from the same files,
        with the same smoothing and the same voxels in the mask.
    allocate : callable
        Where a series read volume by volume is made (see :func:`streamed_series`).

    Returns
    -------
    masked : MaskedRun
    """
    from nilearn.image import load_img

    from .surface import is_surface_file

    if isinstance(bold, (str, Path)) and is_surface_file(bold):  # a GIFTI pair or CIFTI: masked by its data
        from .surface import prepare_run as prepare_surface_run

        return prepare_surface_run(bold, smoothing_fwhm)
    if is_streamed(bold, mask):  # read, smoothed and masked as it is decompressed
        mask_img = load_mask(mask, None)
        if ahead is not None and ahead.matches(bold, mask, smoothing_fwhm, mask_img):
            return MaskedRun(ahead.series, mask_img, ahead.nonfinite_volumes)
        series, zeroed = _streamed_series(bold, mask_img, smoothing_fwhm, n_threads, allocate)
        return MaskedRun(series, mask_img, zeroed)
    try:
        bold_img = read_bold(bold) if isinstance(bold, (str, Path)) else load_img(bold)
    except MemoryError:
        header = check_image(bold, "BOLD series").header
        raise _no_memory(bold, header.get_data_shape(), header.get_data_dtype()) from None
    mask_img = load_mask(mask, bold_img, bold if isinstance(bold, (str, Path)) else None)
    series, zeroed = _masked_series(bold_img, mask_img, smoothing_fwhm, n_threads)
    return MaskedRun(series, mask_img, zeroed)
