"""The first run's series, read by a process of its own while this one loads nilearn and
makes the plan.

Loading modules holds Python's global lock, so a reading *thread* would wait for it at
every volume; a separate process reads, smooths and masks the first run (with the mask
read as nilearn reads a valid one: its finite non-zero voxels) and saves the series to a
temporary file. The series is used only if the plan then names the same run, mask and
smoothing, and the mask that nilearn reads has the same voxels; otherwise, or if the
process failed, the run is read as any other. Nothing is written to the outputs.

``python -m bids_fixedfx.prefetch BOLD MASK FWHM THREADS TARGET`` is the reading process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def provisional_mask(path):
    """A mask file read without nilearn, as nilearn reads a valid mask: its finite,
    non-zero voxels (a trailing axis of length 1 dropped); nothing is checked.

    Returns
    -------
    mask_img : Nifti1Image
        int8, 0 and 1.
    """
    import nibabel as nib

    from .images import read_image

    img = read_image(path, "Mask")
    values = np.asanyarray(img.dataobj)
    if values.ndim == 4 and values.shape[3] == 1:
        values = values[..., 0]
    return nib.Nifti1Image((np.isfinite(values) & (values != 0)).astype(np.int8), img.affine)


class Prefetch:
    """A run being read by another process.

    Parameters
    ----------
    run : discover.Run
        A volume run with a mask file.
    mask : Path
        The mask the plan will use (``--mask`` or the run's).
    smoothing_fwhm : float or None
    n_threads : int
        Threads of the reading process.
    """

    def __init__(self, run, mask, smoothing_fwhm, n_threads):
        self.key = (Path(run.bold), Path(mask), smoothing_fwhm)
        self._folder = Path(tempfile.mkdtemp(prefix="bids-fixedfx-prefetch-"))
        self._target = self._folder / "series.npy"
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bids_fixedfx.prefetch", str(run.bold), str(mask),
                 str(smoothing_fwhm or 0), str(n_threads), str(self._target)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        except OSError:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise

    @classmethod
    def start(cls, run, mask, smoothing_fwhm, n_threads=3):
        """Start reading ``run``, or return None for a run that is not a volume with a mask file."""
        mask = mask if mask is not None else run.mask
        if mask is None or run.is_surface or not str(run.bold).endswith((".nii", ".nii.gz")):
            return None
        try:
            return cls(run, mask, smoothing_fwhm, n_threads)
        except OSError:  # no temporary folder, or no process: the run is read as the others
            return None

    def take(self, run, smoothing_fwhm, mask_img):
        """The run's series if it is the one read and ``mask_img`` (the mask as nilearn
        read it) holds the voxels the reading process used; else None. Either way the
        process and its file are gone afterwards.

        Returns
        -------
        series : numpy.ndarray, shape (n_volumes, n_voxels), or None
        """
        try:
            if (Path(run.bold), Path(run.mask) if run.mask else None, smoothing_fwhm) != self.key:
                return None
            if self._process.wait() != 0:
                return None
            if not _same_mask(provisional_mask(self.key[1]), mask_img):
                return None
            return np.load(self._target)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the process if it still runs, and remove its file."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


def _same_mask(a, b) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine) and np.array_equal(
        np.asanyarray(a.dataobj) != 0, np.asanyarray(b.dataobj) != 0
    )


def _read(bold, mask, fwhm, n_threads, target) -> None:
    from .series import streamed_series

    series = streamed_series(bold, provisional_mask(mask), float(fwhm) or None, int(n_threads))
    partial = Path(str(target) + ".part")
    with open(partial, "wb") as stream:
        np.save(stream, series)
    partial.rename(target)


if __name__ == "__main__":
    _read(*sys.argv[1:6])
