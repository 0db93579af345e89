"""Reading input images with their integrity checked.

nibabel reads a ``.nii.gz`` only as far as the data go and never checks the gzip
stream's CRC, so a file with corrupted bytes inside reads as wrong numbers. Here:

- :func:`check_image` reads the header and checks, cheaply, that the file holds all its
  data (the gzip trailer's length, or the file size): a truncated file is found while
  planning, before anything is written;
- :func:`read_image` decompresses the whole stream, which checks its CRC, at the cost
  of the read that the fit needs anyway; :func:`read_volumes` does the same one volume
  at a time, so that a series can be processed without holding it whole.

The stream is decompressed in blocks straight into the image's array (no second copy
of the file in memory), with ISA-L's inflate (the ``isal`` package, about twice as fast
as zlib's) when it is installed, zlib's otherwise: both check the CRC and length.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import FixedFxError, InputFileError, check_regular_file

try:  # ISA-L's inflate: the same streams, about twice as fast
    from isal import isal_zlib as _inflate_module

    _INFLATE_ERRORS = (zlib.error, _inflate_module.error)
except ImportError:  # pragma: no cover - depends on the installation
    _inflate_module = zlib
    _INFLATE_ERRORS = (zlib.error,)

#: Compressed bytes read at a time.
READ_BLOCK = 1 << 20
#: Decompressed bytes at most handed on at a time (no large buffer is held).
INFLATE_BLOCK = 1 << 20
#: Deflate's largest compression ratio (zlib's documentation: 1032 to 1), rounded up: a gzip
#: file whose header describes more than this many times its size cannot hold its data.
DEFLATE_MAX_RATIO = 1040


def _expected_size(img) -> int:
    """Bytes of a single-file NIfTI: header and extensions up to the data, then the data."""
    shape = img.header.get_data_shape()
    return int(img.dataobj.offset) + int(np.prod(shape, dtype=np.int64)) * img.header.get_data_dtype().itemsize


def _load_header(path: Path, what: str):
    import nibabel as nib

    check_regular_file(path, f"{what} {path}")
    if path.is_file() and path.stat().st_size == 0:  # as the BIDS examples' placeholders are
        raise InputFileError(f"{what} {path} is empty (0 bytes), not an image; copy or download the file again.")
    try:
        img = nib.load(str(path))
    except FileNotFoundError:
        raise InputFileError(f"{what} {path} does not exist.") from None
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
            zlib.error) as error:  # HeaderDataError: a scaling (scl_slope, scl_inter) nibabel refuses
        raise InputFileError(f"{what} {path} cannot be read as NIfTI: {_reason(error)}.") from error
    _check_shape_and_type(img, path, what)
    affine = getattr(img, "affine", None)
    if affine is not None and np.shape(affine) == (4, 4):
        if not np.isfinite(affine).all():
            raise InputFileError(f"{what} {path} has a voxel-to-world affine with NaN or infinite values; "
                                 "correct its header (sform or qform).")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:  # smoothing and resampling divide by the voxel sizes
            raise InputFileError(f"{what} {path} has a voxel-to-world affine that maps the voxels to a plane or a "
                                 "point (a voxel size of 0); correct its header (sform or qform, pixdim).")
    return img


def _check_shape_and_type(img, path, what) -> None:
    """Refuse a header whose dimensions are not all at least 1 (numpy, or nilearn's checks of
    another file, failed on them later) or whose values are not real numbers (RGB or complex
    voxels: a cast that failed, or the imaginary part silently dropped)."""
    header = getattr(img, "header", None)
    if not (hasattr(header, "get_data_shape") and hasattr(header, "get_data_dtype")):
        return
    shape = tuple(int(n) for n in header.get_data_shape())
    if any(n < 1 for n in shape):
        raise InputFileError(f"{what} {path} has a header that gives its data the dimensions {shape}, where each "
                             "must be at least 1: the header is corrupt; write the image again.")
    dtype = header.get_data_dtype()
    if dtype.kind not in "biuf":
        kind = "complex" if dtype.kind == "c" else "RGB" if dtype.names else str(dtype)
        raise InputFileError(f"{what} {path} holds {kind} values, where an image the app reads holds real numbers; "
                             "convert it to a real type (float32, say).")


def _reason(error) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text.rstrip(".")


def check_image(path, what: str = "Image"):
    """Read an image's header and check that the file holds all its data.

    Parameters
    ----------
    path : str or Path
        A ``.nii`` or ``.nii.gz`` file.
    what : str
        What the file is, for messages (``"BOLD series"``, ``"Mask"``).

    Returns
    -------
    img : nibabel image
        Proxy image (data not read).

    Raises
    ------
    InputFileError
        The file cannot be read or is shorter than its header says.
    """
    path = Path(path)
    img = _load_header(path, what)
    if not hasattr(getattr(img, "dataobj", None), "offset"):
        return img
    expected = _expected_size(img)
    size = path.stat().st_size
    if path.name.endswith(".gz"):
        if size < 18 or expected > DEFLATE_MAX_RATIO * size:  # (ISIZE, modulo 2**32, cannot tell)
            raise InputFileError(f"{what} {path} is truncated or corrupt: its {size}-byte gzip stream cannot hold "
                                 f"the {expected} bytes its header describes.")
        with open(path, "rb") as stream:
            stream.seek(-4, os.SEEK_END)
            (stored,) = struct.unpack("<I", stream.read(4))  # ISIZE: length modulo 2**32
        if stored != expected % 2**32 and not _holds(path, expected):
            raise InputFileError(
                f"{what} {path} is truncated or corrupt: its gzip stream does not hold the "
                f"{expected} bytes its header describes."
            )
    elif size < expected:
        raise InputFileError(
            f"{what} {path} is truncated: {size} bytes where its header describes {expected}."
        )
    return img


def _holds(path: Path, expected: int) -> bool:
    """Whether a gzip file decompresses to at least ``expected`` bytes (a file with bytes
    after its data, whose trailer length differs from the header's); read no further."""
    length = 0
    try:
        with gzip.open(path, "rb") as stream:
            while length < expected and (chunk := stream.read(min(1 << 24, expected - length))):
                length += len(chunk)
    except (OSError, EOFError, zlib.error):
        return False
    return length >= expected


#: Decompressed bytes allowed after the data a header describes (padding), before a file is
#: refused: a small file can hold gigabytes of zeros after its data, each read to its end.
TRAILING_BYTES = 1 << 20


def no_memory(path, size, detail: str = "") -> FixedFxError:
    """The error of a file too large to read in the memory left (exit 1): a large image on a
    small job, or a header that declares more than the file holds. ``size`` in bytes;
    ``detail`` follows it in parentheses."""
    detail = f" ({detail})" if detail else ""
    return FixedFxError(
        f"There is not enough memory to read {path}: it needs {size / 2**30:.1f} GiB{detail}; give the job more "
        "memory, or check that the file's header states its real size."
    )


def _past_end(path, what, expected) -> InputFileError:
    return InputFileError(
        f"{what} {path} holds more than the {expected} bytes its header describes (over {TRAILING_BYTES} bytes "
        "after its data); it is not the image its header describes, so check the file."
    )


def _inflate(path: Path, what: str):
    """The decompressed bytes of a gzip file, block by block, every member's CRC and
    length checked (a stream that ends early or holds anything but gzip members and
    zero padding is an error)."""
    try:
        stream = open(path, "rb")
    except FileNotFoundError:
        raise InputFileError(f"{what} {path} does not exist.") from None
    with stream:
        decompressor = _inflate_module.decompressobj(31)
        pending = False  # a member has begun and not ended
        try:
            while block := stream.read(READ_BLOCK):
                while block:
                    if not pending:  # zero padding between or after members, as gzip accepts
                        block = block.lstrip(b"\0")
                        if not block:
                            break
                    pending = True
                    while True:  # in pieces of at most INFLATE_BLOCK bytes
                        out = decompressor.decompress(block, INFLATE_BLOCK)
                        if out:
                            yield out
                        block = decompressor.unconsumed_tail
                        if decompressor.eof or (not block and len(out) < INFLATE_BLOCK):
                            break
                    if decompressor.eof:  # another member may follow
                        block = decompressor.unused_data
                        decompressor = _inflate_module.decompressobj(31)
                        pending = False
                    else:
                        block = b""
        except _INFLATE_ERRORS as error:
            raise InputFileError(f"{what} {path} is corrupt: {_reason(error)}.") from error
        if pending:
            raise InputFileError(
                f"{what} {path} is corrupt: compressed file ended before the end-of-stream marker was reached."
            )


def _scaled(img, raw):
    """The data as nibabel's array proxy gives it: scaled by the header's slope and
    intercept when they are not 1 and 0."""
    from nibabel.volumeutils import apply_read_scaling

    return apply_read_scaling(raw, img.dataobj.slope, img.dataobj.inter)


def read_image(path, what: str = "Image", check=None):
    """Read a whole image into memory, verifying a gzip stream's CRC and length.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for messages.
    check : callable, optional
        Called with a NIfTI file's header image (its data not read) before its data are read,
        to refuse it from its header (a map off the expected grid can declare gigabytes).

    Returns
    -------
    img : nibabel.Nifti1Image
        With its data array in memory, in the on-disk data type (scaled as nibabel scales).

    Raises
    ------
    InputFileError
        The file is truncated, corrupt or not NIfTI.

    Notes
    -----
    A surface or CIFTI map (``.func.gii``, ``.dscalar.nii``) is read as the ``(n, 1, 1)``
    image that :mod:`.surface` holds maps in.
    """
    import nibabel as nib

    from .surface import is_surface_file, read_map

    path = Path(path)
    if is_surface_file(path):  # a map we wrote as GIFTI or CIFTI: as its (n, 1, 1) image
        return read_map(path, what)
    img = check_image(path, what)
    if check is not None:
        check(img)
    if not path.name.endswith(".gz"):
        try:
            data = np.asanyarray(img.dataobj)
        except (OSError, EOFError, ValueError) as error:
            raise InputFileError(f"{what} {path} cannot be read: {_reason(error)}.") from error
        return nib.Nifti1Image(data, img.affine, img.header)
    offset, shape = int(img.dataobj.offset), img.header.get_data_shape()
    dtype = img.header.get_data_dtype()
    try:
        buffer = np.empty(_expected_size(img), dtype=np.uint8)
    except MemoryError:
        raise no_memory(path, _expected_size(img)) from None
    filled = past = 0
    for block in _inflate(path, what):  # read to the end: the CRC is checked there
        take = min(len(block), buffer.size - filled)
        buffer[filled:filled + take] = np.frombuffer(block, np.uint8, take)
        filled, past = filled + take, past + len(block) - take
        if past > TRAILING_BYTES:
            raise _past_end(path, what, buffer.size)
    if filled < buffer.size:
        raise InputFileError(f"{what} {path} is truncated: it holds {filled} of its {buffer.size} bytes.")
    raw = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset, order="F")
    return nib.Nifti1Image(_scaled(img, raw), img.affine, img.header)


def read_volumes(path, what: str = "Image"):
    """Read a 4D image volume by volume, verifying a gzip stream's CRC and length.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for messages.

    Returns
    -------
    img : nibabel image
        Proxy image (header, affine, shape).
    volumes : iterator of numpy.ndarray
        Each 3D volume in turn, in the on-disk data type (scaled as nibabel scales);
        the stream's CRC is checked after the last one.

    Raises
    ------
    InputFileError
        The file is truncated, corrupt or not NIfTI (from the iterator, when found).
    """
    path = Path(path)
    img = check_image(path, what)
    shape = img.header.get_data_shape()
    if len(shape) != 4:
        raise InputFileError(f"{what} {path} is not a 4D series: its shape is {shape}.")
    if not path.name.endswith(".gz"):  # each volume read from the file in turn, not the whole series
        return img, _file_volumes(path, what, img)
    return img, _gzip_volumes(path, what, img)


def _file_volumes(path, what, img):
    """The volumes of an uncompressed image, each read (and scaled) on its own."""
    for t in range(img.header.get_data_shape()[3]):
        try:
            yield np.asanyarray(img.dataobj[..., t])
        except (OSError, EOFError, ValueError) as error:
            raise InputFileError(f"{what} {path} cannot be read: {_reason(error)}.") from error


def _gzip_volumes(path, what, img):
    shape = img.header.get_data_shape()
    dtype = img.header.get_data_dtype()
    volume_bytes = int(np.prod(shape[:3], dtype=np.int64)) * dtype.itemsize
    skip = int(img.dataobj.offset)  # header and extensions
    volume = np.empty(volume_bytes, dtype=np.uint8)
    filled = done = past = 0
    for block in _inflate(path, what):
        block = memoryview(block)
        if skip:
            cut = min(skip, len(block))
            block, skip = block[cut:], skip - cut
        while len(block) and done < shape[3]:
            take = min(len(block), volume_bytes - filled)
            volume[filled:filled + take] = np.frombuffer(block, np.uint8, take)
            block, filled = block[take:], filled + take
            if filled == volume_bytes:
                yield _scaled(img, np.ndarray(shape[:3], dtype=dtype, buffer=volume, order="F").copy(order="F"))
                filled, done = 0, done + 1
        past += len(block)
        if past > TRAILING_BYTES:
            raise _past_end(path, what, _expected_size(img))
    if done < shape[3]:
        raise InputFileError(f"{what} {path} is truncated: it holds {done} of its {shape[3]} volumes.")


def read_mask(path, what: str = "Mask"):
    """Read a binary mask as nilearn does, with its file named in any error.

    Parameters
    ----------
    path : str or Path
    what : str

    Returns
    -------
    mask_img : nibabel.Nifti1Image
        int8, 0 and 1.

    Raises
    ------
    InputFileError
        Unreadable, not 3D, empty, with more than two values, or non-finite ones.
    """
    import nibabel as nib
    from nilearn.masking import load_mask_img

    img = read_image(path, what)
    data = np.asanyarray(img.dataobj)
    if data.dtype.kind in "fc" and not np.isfinite(data).all():  # nilearn zeroes them, warning in Python's words
        count = np.count_nonzero(~np.isfinite(data))
        raise InputFileError(f"{what} {path} is not a usable mask: it holds {count} non-finite value"
                             f"{'s' if count > 1 else ''} (NaN or infinity), where a mask holds 0 outside and one "
                             "value inside; set them to 0.")
    try:
        values, affine = load_mask_img(img)
    except (ValueError, TypeError) as error:
        raise InputFileError(f"{what} {path} is not a usable mask: {_mask_fault(img, error)}.") from error
    return nib.Nifti1Image(values.astype(np.int8), affine)


def _mask_fault(img, error) -> str:
    """What nilearn refused in a mask, in one clause: its values counted, not listed (nilearn's
    message lists them all, over lines, and adds a sentence of its own)."""
    data = np.asanyarray(img.dataobj)
    if data.ndim == 3 and np.issubdtype(data.dtype, np.number):
        values = np.unique(data)
        if len(values) > 2:
            return (f"it holds {len(values)} distinct values ({values[0]:g} to {values[-1]:g}), where a mask holds 0 "
                    "outside and one value inside; binarize it (a probability map at 0.5, say)")
        if len(values) == 2 and 0 not in values:
            return (f"it holds the values {values[0]:g} and {values[1]:g}, where a mask holds 0 outside; set the "
                    "voxels outside the brain to 0")
    return _reason(error)
