"""Atomic writes: text, JSON, TSV and NIfTI files.

Each file is written under a hidden temporary name in its own folder and renamed into place,
so a reader never sees half a file and an interrupted run leaves no truncated file behind.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd


def _write_atomically(path: Path, write, suffix: str = "") -> None:
    """Call ``write(temporary_path)``, then rename the temporary file to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp{suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_image(path: Path, image) -> None:
    """Save a nibabel image (GIFTI, CIFTI) at ``path`` atomically; the temporary name keeps
    the extension, which tells nibabel the format."""
    extension = "".join(path.suffixes[-2:])
    _write_atomically(path, lambda tmp: nib.save(image, str(tmp)), extension)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    _write_atomically(path, lambda tmp: tmp.write_bytes(text.encode("utf-8")))


def write_json(path: Path, content) -> None:
    """Write ``content`` as JSON indented by 2, with a final newline, atomically."""
    write_text(path, json.dumps(content, indent=2) + "\n")


def write_tsv(path: Path, table: pd.DataFrame, *, float_format: str, na_rep="n/a") -> None:
    """Write ``table`` as a tab-separated file without its index, atomically.

    Parameters
    ----------
    path : pathlib.Path
    table : pandas.DataFrame
    float_format : str
        For example ``"%.6g"``.
    na_rep : str
        How a missing value is written.
    """
    text = table.to_csv(
        sep="\t",
        index=False,
        na_rep=na_rep,
        float_format=float_format,
        lineterminator="\n",
    )
    write_text(path, text)


@dataclass(frozen=True, eq=False)
class Nifti:
    """An image to save.

    Attributes
    ----------
    path : pathlib.Path
    data : numpy.ndarray
    affine : numpy.ndarray
        Written as both qform and sform, with ``code``.
    tr : float, optional
        Repetition time (s), the 4th zoom; time units are then seconds.
    code : int
        1 (scanner) for native grids, 4 (MNI) for templates.
    """

    path: Path
    data: np.ndarray
    affine: np.ndarray
    tr: float | None = None
    code: int = 1


def save_nifti(image: Nifti) -> None:
    """Save one image atomically, with mm (and s) units."""
    img = nib.Nifti1Image(image.data, image.affine)
    img.header.set_qform(image.affine, code=image.code)
    img.header.set_sform(image.affine, code=image.code)
    if image.tr is not None:
        img.header.set_zooms(tuple(img.header.get_zooms()[:3]) + (image.tr,))
        img.header.set_xyzt_units("mm", "sec")
    else:
        img.header.set_xyzt_units("mm")
    _write_atomically(image.path, lambda tmp: nib.save(img, tmp), suffix=".nii.gz")


def save_niftis(images: Iterable[Nifti]) -> None:
    """Save several images at once, largest first; zlib releases the GIL while compressing."""
    images = sorted(images, key=lambda image: -image.data.nbytes)
    workers = max(1, min(len(images), os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(save_nifti, image) for image in images]:
            future.result()
