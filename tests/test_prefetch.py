"""prefetch: the first run read by another process equals the run read here, and is used
only when it is the run and mask the plan names."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bids_fixedfx import glm
from bids_fixedfx.discover.runs import Run
from bids_fixedfx.prefetch import Prefetch, provisional_mask


@pytest.fixture()
def run(tmp_path):
    rng = np.random.default_rng(5)
    shape = (12, 13, 11)
    affine = np.diag([3.0, 3.0, 3.5, 1.0])
    bold = tmp_path / "sub-01_task-x_space-MNI_desc-preproc_bold.nii.gz"
    nib.Nifti1Image(rng.normal(100, 5, shape + (30,)).astype(np.float32), affine).to_filename(bold)
    mask = np.zeros(shape, np.uint8)
    mask[3:9, 2:10, 4:9] = 1
    mask_path = tmp_path / "sub-01_task-x_space-MNI_desc-brain_mask.nii.gz"
    nib.Nifti1Image(mask, affine).to_filename(mask_path)
    return Run(entities=(("sub", "01"), ("task", "x")), space="MNI", bold=bold, mask=mask_path, events=None,
               confounds=None, design=None, raw_bold=None, tr=2.0, n_volumes=30, preprocessed=True)


def test_the_prefetched_series_is_the_series_read_here(run):
    prefetch = Prefetch.start(run, None, 5.0, 2)
    folder = prefetch._folder
    series = prefetch.take(run, 5.0, glm.load_mask(run.mask, None))
    expected = glm.streamed_series(run.bold, glm.load_mask(run.mask, None), 5.0)
    assert series is not None
    np.testing.assert_array_equal(series, expected)
    assert not folder.exists()


def test_another_run_smoothing_or_mask_is_not_taken(run, tmp_path):
    mask_img = glm.load_mask(run.mask, None)
    prefetch = Prefetch.start(run, None, 5.0, 2)
    assert prefetch.take(run, 6.0, mask_img) is None  # the plan smooths otherwise
    other = np.asanyarray(mask_img.dataobj).copy()
    other[3, 2, 4] = 0
    prefetch = Prefetch.start(run, None, 5.0, 2)
    assert prefetch.take(run, 5.0, nib.Nifti1Image(other, mask_img.affine)) is None  # nilearn read other voxels


def test_a_corrupt_series_is_not_taken(run):
    data = run.bold.read_bytes()
    run.bold.write_bytes(data[: len(data) // 2])  # truncated: the reading process fails
    prefetch = Prefetch.start(run, None, 5.0, 2)
    assert prefetch.take(run, 5.0, glm.load_mask(run.mask, None)) is None


def test_only_a_volume_with_a_mask_file_is_prefetched(run):
    from dataclasses import replace

    assert Prefetch.start(replace(run, mask=None), None, 5.0, 2) is None
    prefetch = Prefetch.start(replace(run, mask=None), run.mask, 5.0, 2)  # --mask
    assert prefetch is not None
    prefetch.close()
    assert not prefetch._folder.exists()


@pytest.mark.filterwarnings("ignore:Non-finite values detected")
def test_the_provisional_mask_is_nilearns_for_a_valid_mask(tmp_path):
    values = np.zeros((4, 5, 6, 1), np.float32)
    values[1:3, 1:4, 2:5] = 2.0
    values[0, 0, 0] = np.nan
    path = tmp_path / "mask.nii.gz"
    nib.Nifti1Image(values, np.eye(4)).to_filename(path)
    ours = provisional_mask(path)
    theirs = glm.load_mask(path, None)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))
