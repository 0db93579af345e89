"""Reading input images with their integrity checked.

nibabel reads a ``.nii.gz`` only as far as the data go and never checks the gzip
stream's CRC, so a file with corrupted bytes inside reads as wrong numbers. Here:

- :func:`check_image` reads the header and checks, cheaply, that the file holds all its
  data (the gzip trailer's length, or the file size): a truncated file is found while
  planning, before anything is written;
- :func:`read_image` decompresses the whole stream, which checks its CRC, at the cost
  of the read that the fit needs anyway.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import InputFileError


def _expected_size(img) -> int:
    """Bytes of a single-file NIfTI: header and extensions up to the data, then the data."""
    shape = img.header.get_data_shape()
    return int(img.dataobj.offset) + int(np.prod(shape, dtype=np.int64)) * img.header.get_data_dtype().itemsize


def _load_header(path: Path, what: str):
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except FileNotFoundError:
        raise InputFileError(f"{what} {path} does not exist.") from None
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError, zlib.error) as error:
        raise InputFileError(f"{what} {path} cannot be read as NIfTI: {_reason(error)}.") from error
    return img


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
        with open(path, "rb") as stream:
            if size < 18:
                raise InputFileError(f"{what} {path} is truncated: the file is too short to hold its data.")
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
    after its data, whose trailer length differs from the header's)."""
    length = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 24):
                length += len(chunk)
    except (OSError, EOFError, zlib.error):
        return False
    return length >= expected


def read_image(path, what: str = "Image"):
    """Read a whole image into memory, verifying a gzip stream's CRC and length.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for messages.

    Returns
    -------
    img : nibabel.Nifti1Image
        With its data array in memory, in the on-disk data type (scaled as nibabel scales).

    Raises
    ------
    InputFileError
        The file is truncated, corrupt or not NIfTI.
    """
    import nibabel as nib

    path = Path(path)
    if not path.name.endswith(".gz"):
        img = check_image(path, what)
        try:
            data = np.asanyarray(img.dataobj)
        except (OSError, EOFError, ValueError) as error:
            raise InputFileError(f"{what} {path} cannot be read: {_reason(error)}.") from error
        return nib.Nifti1Image(data, img.affine, img.header)
    try:
        raw = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise InputFileError(f"{what} {path} does not exist.") from None
    except (OSError, EOFError, zlib.error) as error:
        raise InputFileError(f"{what} {path} is corrupt: {_reason(error)}.") from error
    try:
        img = nib.Nifti1Image.from_bytes(raw)
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as error:
        raise InputFileError(f"{what} {path} cannot be read as NIfTI: {_reason(error)}.") from error
    del raw
    return nib.Nifti1Image(data, img.affine, img.header)


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
        Unreadable, not 3D, empty, or with more than two values.
    """
    import nibabel as nib
    from nilearn.masking import load_mask_img

    img = read_image(path, what)
    try:
        values, affine = load_mask_img(img)
    except (ValueError, TypeError) as error:
        raise InputFileError(f"{what} {path} is not a usable mask: {_reason(error)}.") from error
    return nib.Nifti1Image(values.astype(np.int8), affine)
