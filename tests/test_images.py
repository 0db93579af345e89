"""Input images are read with their integrity checked (truncation, gzip CRC, masks)."""

from __future__ import annotations

import gzip
import warnings

import nibabel as nib
import numpy as np
import pytest

from bids_fixedfx.errors import InputFileError
from bids_fixedfx.images import check_image, read_image, read_mask


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(100, 5, (6, 7, 5, 12)).astype(np.float32)
    path = tmp_path / "bold.nii.gz"
    nib.Nifti1Image(data, np.eye(4)).to_filename(path)
    return path, data


def test_a_sound_image_reads_as_nibabel_reads_it(image):
    path, data = image
    assert check_image(path).shape == data.shape
    np.testing.assert_array_equal(read_image(path).get_fdata(dtype=np.float32), data)


def test_uncompressed_image(tmp_path, image):
    _, data = image
    path = tmp_path / "bold.nii"
    nib.Nifti1Image(data, np.eye(4)).to_filename(path)
    np.testing.assert_array_equal(read_image(path).get_fdata(dtype=np.float32), data)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputFileError, match="truncated"):
        check_image(path, "BOLD series")


def test_truncated_gzip_is_found_from_the_header_alone(image):
    path, _ = image
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(InputFileError, match=f"BOLD series {path}.*truncated"):
        check_image(path, "BOLD series")
    with pytest.raises(InputFileError, match=str(path)):
        read_image(path, "BOLD series")


def test_a_header_larger_than_any_gzip_stream_of_the_file_is_found_from_the_header_alone(tmp_path):
    """A header describing 2**43 bytes over a gzip stream of the header alone, whose length
    modulo 2**32 (gzip's trailer) is the header's: read_image tried to allocate 8 TiB (exit 1)."""
    header = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4)).header.copy()
    header.set_data_dtype(np.float64)
    header.set_data_shape((16384, 16384, 4096))
    header["vox_offset"] = 352
    path = tmp_path / "mask.nii.gz"
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))  # 2**43 + 352 bytes: 352 modulo 2**32
    for read in (check_image, read_image):
        with pytest.raises(InputFileError, match=f"Mask {path} is truncated or corrupt: its {path.stat().st_size}-byte "
                           f"gzip stream cannot hold the {2**43 + 352} bytes"):
            read(path, "Mask")


def test_an_image_larger_than_the_memory_left_is_said_so(image, monkeypatch):
    """A sound image the memory cannot hold: one sentence naming it (exit 1), not numpy's."""
    from bids_fixedfx import images
    from bids_fixedfx.errors import FixedFxError

    path, _ = image

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(images.np, "empty", no_memory)
    with pytest.raises(FixedFxError, match=f"There is not enough memory to read {path}: it needs 0.0 GiB"):
        read_image(path, "BOLD series")


def test_data_far_past_what_the_header_describes_is_refused_without_reading_it_all(image):
    """A gzip stream holding its image then a gigabyte of zeros (a file of 1 MB) was read to
    its end twice and accepted; a little padding still is."""
    from bids_fixedfx.images import TRAILING_BYTES, read_volumes

    path, data = image
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw + bytes(TRAILING_BYTES // 2)))
    np.testing.assert_array_equal(read_image(path).get_fdata(dtype=np.float32), data)
    assert len(list(read_volumes(path)[1])) == data.shape[3]
    path.write_bytes(gzip.compress(raw + bytes(64 * TRAILING_BYTES)))
    said = f"BOLD series {path} holds more than the {len(raw)} bytes its header describes"
    with pytest.raises(InputFileError, match=said):
        read_image(path, "BOLD series")
    with pytest.raises(InputFileError, match=said):
        list(read_volumes(path, "BOLD series")[1])


@pytest.mark.parametrize("kind", ["link", "pointer"])
def test_a_datalad_file_not_fetched_says_to_get_it(tmp_path, kind):
    """A DataLad clone's file without its content (a git-annex link leading nowhere, or the pointer
    file of an unlocked one) was said not to exist, or not to be gzip."""
    path = tmp_path / "sub-01_bold.nii.gz"
    target = "../.git/annex/objects/Xx/Yy/MD5E-s123--abc.nii.gz/MD5E-s123--abc.nii.gz"
    if kind == "link":
        path.symlink_to(target)
    else:
        path.write_text("/annex/objects/MD5E-s123--abc.nii.gz\n")
    with pytest.raises(InputFileError, match=f"BOLD series {path} is a DataLad \\(git-annex\\) file whose content "
                       f"was not fetched; run `datalad get {path}`"):
        check_image(path, "BOLD series")
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.nii.gz")  # a link to nothing else: as before
    with pytest.raises(InputFileError, match="does not exist"):
        check_image(path, "BOLD series")


@pytest.mark.parametrize("name", ["bold.nii.gz", "bold.nii"])
def test_an_empty_file_is_said_to_be_empty(tmp_path, name):
    """A file of 0 bytes (the BIDS examples' placeholders, a copy interrupted) was named twice
    in nibabel's words ("cannot be read as NIfTI: Empty file: '<path>'"), with nothing to do."""
    path = tmp_path / name
    path.write_bytes(b"")
    for read in (check_image, read_image, read_mask):
        with pytest.raises(InputFileError) as error:
            read(path, "BOLD series")
        assert str(error.value) == f"BOLD series {path} is empty (0 bytes), not an image; copy or download the file " \
                                   "again."


def test_a_scaling_nibabel_refuses_is_an_unusable_file(tmp_path):
    """scl_slope 1e38 with scl_inter NaN: nibabel's HeaderDataError ended the run as an
    unexpected failure (exit 1) naming no file."""
    img = nib.Nifti1Image(np.ones((4, 4, 4, 5), np.int16), np.eye(4))
    img.header["scl_slope"], img.header["scl_inter"] = 1e38, np.nan
    path = tmp_path / "bold.nii.gz"
    img.to_filename(path)
    for read in (check_image, read_image):
        with pytest.raises(InputFileError, match=f"BOLD series {path} cannot be read as NIfTI: .*intercept"):
            read(path, "BOLD series")


def test_corrupted_bytes_inside_fail_the_crc(tmp_path, image):
    path, data = image
    # a stored (uncompressed) gzip member, so that a flipped byte still decompresses
    raw = gzip.decompress(path.read_bytes())
    stored = gzip.compress(raw, compresslevel=0)
    damaged = bytearray(stored)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    check_image(path)  # length intact: only the CRC can tell
    assert not np.array_equal(nib.load(path).get_fdata(dtype=np.float32), data)  # nibabel reads wrong numbers
    with pytest.raises(InputFileError, match=f"{path} is corrupt"):
        read_image(path, "BOLD series")


def test_not_an_image(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_bytes(b"not an image")
    with pytest.raises(InputFileError, match=str(path)):
        check_image(path)


@pytest.mark.parametrize(
    ("values", "reason"),
    [(np.zeros((4, 4, 4)), "empty"),
     (np.arange(64).reshape(4, 4, 4) % 3, r"it holds 3 distinct values \(0 to 2\), where a mask holds 0 outside"),
     (np.linspace(0.001, 1, 64).reshape(4, 4, 4), "it holds 64 distinct values .*; binarize it"),
     (np.arange(64).reshape(4, 4, 4) % 2 + 1, "it holds the values 1 and 2, where a mask holds 0 outside")],
)
def test_unusable_masks_are_named(tmp_path, values, reason):
    path = tmp_path / "mask.nii.gz"
    nib.Nifti1Image(values.astype(np.int16 if values.max() > 1 or not values.any() else np.float32),
                    np.eye(4)).to_filename(path)
    with pytest.raises(InputFileError, match=f"Mask {path} is not a usable mask.*{reason}") as error:
        read_mask(path)
    assert "\n" not in str(error.value) and str(error.value).count(". ") == 0  # one sentence


@pytest.mark.parametrize(("bad", "said"), [((np.nan,), "1 non-finite value "), ((np.inf, -np.inf), "2 non-finite values")])
def test_a_mask_with_non_finite_values_is_named(tmp_path, bad, said):
    """nilearn zeroed them, with two lines of Python's warning on the terminal, and the job went on."""
    path = tmp_path / "mask.nii.gz"
    values = np.zeros((4, 4, 4), dtype=np.float32)
    values[1:3, 1:3, 1:3] = 1
    values.flat[:len(bad)] = bad
    nib.Nifti1Image(values, np.eye(4)).to_filename(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning of nilearn's
        with pytest.raises(InputFileError, match=f"Mask {path} is not a usable mask: it holds {said}.*set them to 0"):
            read_mask(path)


def test_a_binary_mask(tmp_path):
    path = tmp_path / "mask.nii.gz"
    values = np.zeros((4, 4, 4))
    values[1:3, 1:3, 1:3] = 1
    nib.Nifti1Image(values, np.eye(4)).to_filename(path)
    assert read_mask(path).get_fdata().sum() == 8


def test_volumes_read_one_by_one_are_the_image(image):
    from bids_fixedfx.images import read_volumes

    path, data = image
    img, volumes = read_volumes(path, "BOLD series")
    assert img.shape == data.shape
    stacked = np.stack(list(volumes), axis=-1)
    assert stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked, data)


@pytest.mark.parametrize("scaled", [False, True])
def test_volumes_of_an_uncompressed_series_are_read_one_at_a_time(tmp_path, monkeypatch, scaled):
    """A .nii series was read whole before its volumes were handed on (a 21 GB file, whole)."""
    from bids_fixedfx import images

    data = np.arange(6 * 5 * 4 * 3, dtype=np.int16 if scaled else np.float32).reshape(6, 5, 4, 3)
    img = nib.Nifti1Image(data, np.eye(4))
    if scaled:
        img.header.set_slope_inter(0.5, 10.0)
    path = tmp_path / "bold.nii"
    img.to_filename(path)
    expected = np.asanyarray(nib.load(path).dataobj)
    monkeypatch.setattr(images, "read_image", None)  # nothing reads the whole image
    header, volumes = images.read_volumes(path, "BOLD series")
    first = next(volumes)
    assert first.shape == data.shape[:3] and first.dtype == expected.dtype
    np.testing.assert_array_equal(np.stack([first, *volumes], axis=-1), expected)


def test_volumes_of_a_damaged_stream_fail_the_crc(image):
    from bids_fixedfx.images import read_volumes

    path, _ = image
    raw = gzip.decompress(path.read_bytes())
    damaged = bytearray(gzip.compress(raw, compresslevel=0))
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    _, volumes = read_volumes(path, "BOLD series")
    with pytest.raises(InputFileError, match=f"{path} is corrupt"):
        list(volumes)


def test_scaled_integers_multi_member_streams_and_padding(tmp_path):
    """Read as nibabel reads them: slope and intercept applied; several gzip members and
    zero bytes between and after them accepted, as gzip accepts them."""
    from bids_fixedfx.images import read_volumes

    data = np.arange(6 * 5 * 4 * 3, dtype=np.int16).reshape(6, 5, 4, 3)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(0.5, 10.0)
    path = tmp_path / "scaled.nii.gz"
    img.to_filename(path)
    expected = nib.load(path).get_fdata()
    np.testing.assert_array_equal(read_image(path).get_fdata(), expected)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:1000]) + b"\0" * 8 + gzip.compress(raw[1000:]) + b"\0" * 16)
    assert gzip.decompress(path.read_bytes()) == raw
    np.testing.assert_array_equal(read_image(path).get_fdata(), expected)
    _, volumes = read_volumes(path)
    np.testing.assert_array_equal(np.stack(list(volumes), axis=-1), expected)


def test_zlib_is_used_without_isal(monkeypatch, image):
    import zlib

    from bids_fixedfx import images

    path, data = image
    monkeypatch.setattr(images, "_inflate_module", zlib)
    monkeypatch.setattr(images, "_INFLATE_ERRORS", (zlib.error,))
    np.testing.assert_array_equal(read_image(path).get_fdata(dtype=np.float32), data)


@pytest.mark.parametrize(("affine", "said"), [
    (np.diag([2.0, 2.0, 0.0, 1.0]), "maps the voxels to a plane or a point"),
    (np.full((4, 4), np.nan), "NaN or infinite values"),
])
def test_a_degenerate_affine_is_named(tmp_path, affine, said):
    """A zero or NaN affine ended in nibabel's 'Could not decompose affine', exit 1, naming no file."""
    path = tmp_path / "bold.nii.gz"
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4, 3))
    header.set_data_dtype(np.float32)
    header["sform_code"] = 1
    for row, key in enumerate(("srow_x", "srow_y", "srow_z")):  # as a damaged header holds them
        header[key] = affine[row]
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 3), dtype=np.float32), None, header), path)
    with pytest.raises(InputFileError, match=f"BOLD series {path} has a voxel-to-world affine .*{said}"):
        check_image(path, "BOLD series")


@pytest.mark.parametrize("where", [1, 4])
def test_a_header_with_a_dimension_below_1_is_named(tmp_path, image, where):
    """A negative dimension ended in numpy's 'negative dimensions are not allowed' (exit 1), and a
    BOLD of 0 or -40 volumes was blamed on its events file."""
    path, _ = image
    raw = bytearray(gzip.decompress(path.read_bytes()))
    for value in (0, -3):
        raw[40 + 2 * where:42 + 2 * where] = np.int16(value).tobytes()  # dim[where]
        damaged = tmp_path / f"damaged{value}.nii.gz"
        damaged.write_bytes(gzip.compress(bytes(raw)))
        with pytest.raises(InputFileError, match=f"BOLD series {damaged} has a header that gives its data the "
                                                 r"dimensions \(.*\), where each must be at least 1"):
            check_image(damaged, "BOLD series")


@pytest.mark.parametrize(("values", "said"), [
    (np.ones((4, 4, 4, 3), dtype=np.complex64), "complex"),
    (np.zeros((4, 4, 4, 3), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")]), "RGB"),
])
def test_an_image_of_other_than_real_numbers_is_named(tmp_path, values, said):
    """An RGB series failed its cast to float32 (exit 1, naming no file); a complex one was fitted on
    its real part, with a bare ComplexWarning."""
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(values, np.eye(4)), path)
    with pytest.raises(InputFileError, match=f"BOLD series {path} holds {said} values, where an image the app reads "
                                             "holds real numbers"):
        check_image(path, "BOLD series")
    with pytest.raises(InputFileError, match=f"Mask {path} holds {said} values"):
        read_mask(path)
