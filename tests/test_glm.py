"""Run-level GLM: glm.fit_run gives nilearn FirstLevelModel's maps and degrees of freedom."""

from __future__ import annotations

import warnings
from dataclasses import replace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix

from bids_fixedfx import design, glm, series
from bids_fixedfx.settings import STATS, ContrastSpec, ModelSettings

TR = 2.0
N_VOLUMES = 48
SHAPE = (8, 9, 7)


def nilearn_fit(bold, matrix, *, mask, smoothing_fwhm, noise_model, sample_mask=None):
    model = FirstLevelModel(t_r=TR, mask_img=mask, smoothing_fwhm=smoothing_fwhm, noise_model=noise_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(bold, design_matrices=[matrix], sample_masks=None if sample_mask is None else [sample_mask])
    return model


def assert_same_maps(result, reference, tr_contrasts):
    """Every map of every contrast equals nilearn's compute_contrast(..., output_type='all')."""
    assert len(result.contrasts) == len(tr_contrasts)
    for maps, contrast in zip(result.contrasts, tr_contrasts):
        assert maps.contrast is contrast
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = reference.compute_contrast(contrast.vector, output_type="all")
        assert set(maps.maps) == set(STATS)
        inside = result.mask.get_fdata() > 0
        for stat in STATS:
            ours = maps.maps[stat]
            theirs = expected[glm.NILEARN_OUTPUTS[stat]]
            assert ours.shape == theirs.shape
            np.testing.assert_allclose(ours.affine, theirs.affine)
            assert np.abs(theirs.get_fdata()).max() > 0
            theirs = theirs.get_fdata().copy()
            # nilearn leaves 0 outside the mask; nothing outside looks significant here: p = 1
            assert (ours.get_fdata()[~inside] == glm.OUTSIDE_MASK[stat]).all(), stat
            theirs[~inside] = glm.OUTSIDE_MASK[stat]
            # 1e-4 relative; values near zero (where a relative error means nothing) are
            # compared to the map's own scale, at float32 round-off
            np.testing.assert_allclose(
                ours.get_fdata(), theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max(),
                err_msg=f"{contrast.name} {stat}",
            )


@pytest.fixture(scope="module")
def synthetic():
    """A small BOLD series made from a known design plus noise, with a mask."""
    rng = np.random.default_rng(42)
    frame_times = np.arange(N_VOLUMES) * TR
    events = pd.DataFrame(
        {"onset": [4.0, 22.0, 40.0, 58.0, 76.0], "duration": [8.0] * 5, "trial_type": ["a", "b", "a", "b", "a"]}
    )
    matrix = make_first_level_design_matrix(frame_times, events, hrf_model="glover", drift_model="cosine", high_pass=0.01)
    betas = rng.normal(0.0, 4.0, SHAPE + (matrix.shape[1],))
    betas[..., list(matrix.columns).index("constant")] = rng.uniform(500, 1500, SHAPE)
    noise = rng.normal(0.0, 5.0, SHAPE + (N_VOLUMES,))
    noise[..., 1:] += 0.3 * noise[..., :-1]  # some autocorrelation for the AR(1) model
    data = betas @ matrix.to_numpy().T + noise
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:-1, 1:-1, 1:-1] = 1
    # outside the brain: small non-negative noise, as in skull-stripped data
    data[mask == 0] = np.abs(rng.normal(0.0, 2.0, (int((mask == 0).sum()), N_VOLUMES)))
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-12.0, -13.5, -9.0]
    bold = nib.Nifti1Image(data.astype(np.float32), affine)
    mask_img = nib.Nifti1Image(mask, affine)
    run_design = design.Design(matrix=matrix, conditions=("a", "b"), confounds=())
    contrasts = design.contrast_weights((), run_design) + design.contrast_weights(
        [ContrastSpec("a-b", "a-b"), ContrastSpec("w", "1,1")], run_design
    )
    return bold, mask_img, run_design, contrasts


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
@pytest.mark.parametrize("smoothing_fwhm", [None, 6.0])
def test_fit_run_equals_first_level_model(synthetic, noise_model, smoothing_fwhm):
    bold, mask, run_design, contrasts = synthetic
    result = glm.fit_run(
        bold, run_design, contrasts, mask=mask, smoothing_fwhm=smoothing_fwhm,
        noise_model=noise_model, name="sub-01_task-x",
    )
    reference = nilearn_fit(bold, run_design.matrix, mask=mask, smoothing_fwhm=smoothing_fwhm, noise_model=noise_model)
    assert_same_maps(result, reference, contrasts)
    np.testing.assert_array_equal(result.mask.get_fdata(), reference.masker_.mask_img_.get_fdata())
    np.testing.assert_array_equal(result.mask.get_fdata(), mask.get_fdata())
    assert result.name == "sub-01_task-x"
    assert result.maps_of("aB").contrast.name == "a-b"
    assert result.maps_of("nothing") is None


def test_run_maps_are_held_as_written(synthetic):
    """A run's maps span the whole grid: they are held in single precision, as written, not
    in double (half the memory of a run's maps on a large grid)."""
    bold, mask, run_design, contrasts = synthetic
    result = glm.fit_run(bold, run_design, contrasts, mask=mask, noise_model="ols")
    held = [img for maps in result.contrasts for img in maps.maps.values()] + [result.r_square]
    assert {img.get_data_dtype() for img in held} == {np.dtype(np.float32)}
    assert {np.asanyarray(img.dataobj).dtype for img in held} == {np.dtype(np.float32)}


def test_smoothing_and_noise_model_are_applied(synthetic):
    """The options reach nilearn: other options give other maps."""
    bold, mask, run_design, contrasts = synthetic
    plain = glm.fit_run(bold, run_design, contrasts[:1], mask=mask, noise_model="ols")
    smooth = glm.fit_run(bold, run_design, contrasts[:1], mask=mask, smoothing_fwhm=8.0, noise_model="ols")
    ar1 = glm.fit_run(bold, run_design, contrasts[:1], mask=mask, noise_model="ar1")
    t = plain.contrasts[0].maps["t"].get_fdata()
    assert not np.allclose(t, smooth.contrasts[0].maps["t"].get_fdata(), rtol=1e-3)
    assert not np.allclose(t, ar1.contrasts[0].maps["t"].get_fdata(), rtol=1e-3)


def test_dof_is_volumes_minus_design_rank(synthetic):
    bold, mask, run_design, contrasts = synthetic
    result = glm.fit_run(bold, run_design, contrasts, mask=mask)
    rank = np.linalg.matrix_rank(run_design.matrix.to_numpy())
    assert result.dof == N_VOLUMES - rank
    assert all(maps.dof == result.dof for maps in result.contrasts)


def test_dof_of_a_rank_deficient_design(synthetic):
    bold, mask, run_design, _ = synthetic
    matrix = run_design.matrix.copy()
    matrix.insert(2, "a_again", 2.0 * matrix["a"])  # linearly dependent column
    deficient = design.Design(matrix=matrix, conditions=("a", "b"), confounds=())
    contrasts = design.contrast_weights([ContrastSpec("b", "b")], deficient)
    result = glm.fit_run(bold, deficient, contrasts, mask=mask, noise_model="ols")
    rank = np.linalg.matrix_rank(matrix.to_numpy())
    assert rank == matrix.shape[1] - 1
    assert result.dof == N_VOLUMES - rank
    reference = nilearn_fit(bold, matrix, mask=mask, smoothing_fwhm=None, noise_model="ols")
    assert_same_maps(result, reference, contrasts)


def test_the_planned_dof_is_the_fits_with_a_regressor_of_rounding_noise(synthetic):
    """Events after a short run's end left a column of ~1e-15: the plan counted 1 residual
    degree of freedom where nilearn's fit had 0 (an infinite variance, folded into the
    subject's fixed effects)."""
    from nilearn.glm.regression import OLSModel

    from bids_fixedfx.plan import residual_dof

    rng = np.random.default_rng(3)
    n = 9  # a run cut short: an intercept, a condition, small motion parameters
    matrix = pd.DataFrame(np.column_stack([np.ones(n), rng.standard_normal(n), 0.01 * rng.standard_normal((n, n - 3))]),
                          columns=[f"c{i}" for i in range(n - 1)])
    values = matrix.to_numpy()
    nilearn_tolerance = np.abs(values).sum() * np.finfo(np.float64).eps
    numpy_tolerance = np.linalg.svd(values, compute_uv=False).max() * n * np.finfo(np.float64).eps
    assert nilearn_tolerance < numpy_tolerance
    late = np.linalg.svd(values)[0][:, -1]  # the empty regressor, apart from the others, sized between the tolerances
    matrix.insert(1, "late", late / np.linalg.norm(late) * (nilearn_tolerance + numpy_tolerance) / 2)
    short = design.Design(matrix=matrix, conditions=("c0", "late"), confounds=())
    fitted = OLSModel(matrix.to_numpy()).df_residuals
    assert np.linalg.matrix_rank(matrix.to_numpy()) == n - 1  # numpy's default tolerance drops the column
    assert residual_dof(short, n) == fitted == 0
    # and with volumes left out
    censored = design.Design(matrix=matrix, conditions=("c0",), confounds=(), sample_mask=np.arange(1, n))
    assert residual_dof(censored, n) == OLSModel(matrix.to_numpy()[1:]).df_residuals


def test_sample_mask_is_used(synthetic):
    bold, mask, run_design, contrasts = synthetic
    keep = np.arange(3, N_VOLUMES)
    censored = design.Design(matrix=run_design.matrix, conditions=("a", "b"), confounds=(), sample_mask=keep)
    result = glm.fit_run(bold, censored, contrasts, mask=mask, noise_model="ols")
    reference = nilearn_fit(bold, run_design.matrix, mask=mask, smoothing_fwhm=None, noise_model="ols", sample_mask=keep)
    assert_same_maps(result, reference, contrasts)
    assert result.dof == len(keep) - np.linalg.matrix_rank(run_design.matrix.to_numpy()[keep])


def test_fit_run_without_a_mask_lets_nilearn_compute_one(synthetic):
    bold, _, run_design, contrasts = synthetic
    result = glm.fit_run(bold, run_design, contrasts[:1], mask=None, noise_model="ols")
    reference = nilearn_fit(bold, run_design.matrix, mask=None, smoothing_fwhm=None, noise_model="ols")
    np.testing.assert_array_equal(result.mask.get_fdata(), reference.masker_.mask_img_.get_fdata())
    assert_same_maps(result, reference, contrasts[:1])


def test_fit_run_on_an_example_run(example_run):
    model = ModelSettings()
    run_design = design.build_design(example_run, model)
    contrasts = design.contrast_weights([ContrastSpec("av", "audio-visual")], run_design)
    result = glm.fit_run(
        example_run.bold, run_design, contrasts, mask=example_run.mask,
        smoothing_fwhm=model.smoothing_fwhm, noise_model=model.noise_model, name=example_run.name,
    )
    reference = FirstLevelModel(
        t_r=example_run.tr, mask_img=str(example_run.mask), smoothing_fwhm=model.smoothing_fwhm,
        noise_model=model.noise_model,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(str(example_run.bold), design_matrices=[run_design.matrix])
    assert_same_maps(result, reference, contrasts)
    assert result.dof == example_run.n_volumes - np.linalg.matrix_rank(run_design.matrix.to_numpy())


@pytest.mark.parametrize("smoothing_fwhm", [None, 5.0])
def test_integer_bold_equals_first_level_model(synthetic, smoothing_fwhm):
    """Raw BOLD series are stored as integers; nilearn converts them its own way."""
    bold, mask, run_design, contrasts = synthetic
    as_int = nib.Nifti1Image(np.round(bold.get_fdata()).astype(np.int16), bold.affine)
    result = glm.fit_run(as_int, run_design, contrasts, mask=mask, smoothing_fwhm=smoothing_fwhm, noise_model="ar1")
    reference = nilearn_fit(as_int, run_design.matrix, mask=mask, smoothing_fwhm=smoothing_fwhm, noise_model="ar1")
    assert_same_maps(result, reference, contrasts)


def test_threads_give_the_same_maps(synthetic):
    bold, mask, run_design, contrasts = synthetic
    one = glm.fit_run(bold, run_design, contrasts, mask=mask, smoothing_fwhm=4.0, n_threads=1)
    two = glm.fit_run(bold, run_design, contrasts, mask=mask, smoothing_fwhm=4.0, n_threads=2)
    assert one.dof == two.dof
    for a, b in zip(one.contrasts, two.contrasts):
        for stat in STATS:
            np.testing.assert_array_equal(a.maps[stat].get_fdata(), b.maps[stat].get_fdata())


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_voxel_chunks_give_the_same_maps(synthetic, noise_model):
    bold, mask, run_design, contrasts = synthetic
    series = glm.masked_series(bold, glm.load_mask(mask, bold))
    vectors = [c.vector for c in contrasts]
    whole, dof, _ = glm.fit_contrasts(series, run_design.matrix.to_numpy(), vectors, noise_model)
    chunked, chunked_dof, _ = glm.fit_contrasts(series, run_design.matrix.to_numpy(), vectors, noise_model, n_threads=2, chunk=17)
    assert series.shape[1] > 17 * 2
    assert dof == chunked_dof
    for a, b in zip(whole, chunked):
        for stat in STATS:
            np.testing.assert_allclose(a[stat], b[stat], rtol=1e-10, atol=0)


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_series_scaled_in_place_gives_the_same_maps(synthetic, noise_model):
    """overwrite_series: the series becomes nilearn's mean-scaled series (its voxels in the
    order of their AR(1) bins), the maps do not change; a read-only series is scaled in a copy
    and left as it was."""
    bold, mask, run_design, contrasts = synthetic
    series = glm.masked_series(bold, glm.load_mask(mask, bold))
    matrix, vectors = run_design.matrix.to_numpy(), [c.vector for c in contrasts]
    kept, dof, r_square = glm.fit_contrasts(series, matrix, vectors, noise_model)
    expected = 100 * (series / np.maximum(series.mean(axis=0), 1) - 1)
    read_only = series.copy()
    read_only.flags.writeable = False
    for given in (series.copy(), read_only):
        maps, in_place_dof, in_place_r_square = glm.fit_contrasts(given, matrix, vectors, noise_model,
                                                                 overwrite_series=True)
        if given.flags.writeable and noise_model == "ols":
            np.testing.assert_array_equal(given, expected)
        elif given.flags.writeable:  # every volume's voxels put in the order of their AR(1) bins
            models = glm.NoiseModels(matrix, vectors, ["t"] * len(vectors))
            bins = glm.ar1_bins(glm.ar1_coefficients(glm.ols_residuals(expected, models)))
            assert len(set(bins)) > 1
            np.testing.assert_array_equal(given, expected[:, np.argsort(bins, kind="stable")])
        else:
            np.testing.assert_array_equal(given, series)
        assert in_place_dof == dof
        np.testing.assert_array_equal(in_place_r_square, r_square)
        for a, b in zip(kept, maps):
            for stat in STATS:
                np.testing.assert_array_equal(a[stat], b[stat])


def test_fit_run_on_a_raw_example_run_without_mask(example_dataset, example_run):
    """Without a mask (raw BOLD, no derivatives), the mask is the one FirstLevelModel computes."""
    raw = example_run.raw_bold
    run_design = design.build_design(example_run, ModelSettings())
    contrasts = design.contrast_weights((), run_design)
    result = glm.fit_run(raw, run_design, contrasts, mask=None, smoothing_fwhm=None, noise_model="ols")
    reference = nilearn_fit(str(raw), run_design.matrix, mask=None, smoothing_fwhm=None, noise_model="ols")
    reference_mask = reference.masker_.mask_img_.get_fdata()
    assert 0 < reference_mask.sum() < reference_mask.size
    np.testing.assert_array_equal(result.mask.get_fdata(), reference_mask)
    assert_same_maps(result, reference, contrasts)


def test_the_example_effects_are_recovered(example_dataset, example_run):
    """The test grid is small, but each condition's known effect is found in its own box."""
    run_design = design.build_design(example_run, ModelSettings())
    contrasts = design.contrast_weights((), run_design)
    result = glm.fit_run(example_run.bold, run_design, contrasts, mask=example_run.mask, smoothing_fwhm=None)
    for condition, box in example_dataset.active.items():
        maps = result.maps_of(condition)
        effect = maps.maps["effect"].get_fdata()
        z = maps.maps["z"].get_fdata()
        assert effect[box].mean() == pytest.approx(example_dataset.effect_size, rel=0.25)
        assert z[box].mean() > 3
        for other, other_box in example_dataset.active.items():
            if other != condition:
                assert abs(effect[other_box].mean()) < 0.25 * example_dataset.effect_size


@pytest.mark.parametrize("smoothing_fwhm", [None, 6.0])
def test_non_finite_values_are_zeroed_as_nilearn_does(synthetic, smoothing_fwhm):
    bold, mask, run_design, contrasts = synthetic
    data = np.array(bold.dataobj, dtype=np.float32)  # a copy: get_fdata's cached array is the image's
    data[3, 3, 3, 5] = np.nan
    data[2, 4, 3, :] = np.inf
    data[4, 2, 2, 7] = -np.inf
    bad = nib.Nifti1Image(data, bold.affine)
    result = glm.fit_run(bad, run_design, contrasts, mask=mask, smoothing_fwhm=smoothing_fwhm, noise_model="ols")
    reference = nilearn_fit(bad, run_design.matrix, mask=mask, smoothing_fwhm=smoothing_fwhm, noise_model="ols")
    assert np.isfinite(result.contrasts[0].maps["z"].get_fdata()).all()
    assert_same_maps(result, reference, contrasts)
    # said, not only zeroed: every volume has the infinite voxel
    n_volumes = data.shape[3]
    said = [n for n in result.notes if "non-finite" in n]
    assert said == [f"run: {n_volumes} of its {n_volumes} volumes hold non-finite values (NaN or infinity), which "
                    "nilearn sets to 0 before smoothing and fitting, so its maps are biased there; check the "
                    "preprocessed series"]
    clean = glm.fit_run(bold, run_design, contrasts, mask=mask, smoothing_fwhm=smoothing_fwhm, noise_model="ols")
    assert not any("non-finite" in n for n in clean.notes)


@pytest.mark.parametrize("value", [0.0, 100.0])
def test_a_series_constant_in_every_voxel_is_said(synthetic, value):
    """An all-zero or constant run was fitted and combined without a word (its maps all 0)."""
    bold, mask, run_design, contrasts = synthetic
    flat = nib.Nifti1Image(np.full(bold.shape, value, dtype=np.float32), bold.affine)
    result = glm.fit_run(flat, run_design, contrasts, mask=mask, noise_model="ols")
    assert any("does not vary over time in any voxel" in n for n in result.notes), result.notes
    clean = glm.fit_run(bold, run_design, contrasts, mask=mask, noise_model="ols")
    assert not any("does not vary" in n for n in clean.notes)


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_voxels_constant_over_time_are_left_out_of_the_mask(synthetic, noise_model):
    """Zero outside the field of view inside the mask: their fit was round-off with z of
    +-5.8 (nilearn's round-off gives other values); now outside the run's mask, the other
    voxels' maps nilearn's."""
    bold, mask, run_design, contrasts = synthetic
    data = np.array(bold.dataobj, dtype=np.float32)
    data[:, :, 1] = 0.0  # a slab of the mask
    data[2, 2, 2] = 7.0  # one constant, not zero
    cut = nib.Nifti1Image(data, bold.affine)
    result = glm.fit_run(cut, run_design, contrasts, mask=mask, noise_model=noise_model)
    inside = mask.get_fdata() > 0
    constant = inside & (data == data[..., :1]).all(axis=-1)
    assert constant.sum() == inside[:, :, 1].sum() + 1
    np.testing.assert_array_equal(result.mask.get_fdata() > 0, inside & ~constant)
    for maps in result.contrasts:
        assert (maps.maps["z"].get_fdata()[constant] == 0).all() and (maps.maps["p"].get_fdata()[constant] == 1).all()
    assert_same_maps(result, nilearn_fit(cut, run_design.matrix, mask=mask, smoothing_fwhm=None,
                                         noise_model=noise_model), contrasts)
    said = [n for n in result.notes if "do not vary over time" in n]
    assert said and f"{constant.sum()} of the {inside.sum()} voxels of its mask" in said[0]


@pytest.fixture(scope="module")
def large_constant_slab():
    """A float32 run of about 7,000 voxels with AR(1) noise (coefficients spread over many
    bins), unsmoothed, and a slab of its mask at 0 over time (outside the field of view)."""
    rng = np.random.default_rng(11)
    shape, n_volumes = (24, 24, 14), 80
    frame_times = np.arange(n_volumes) * TR
    events = pd.DataFrame({"onset": [10.0, 50.0, 90.0, 130.0], "duration": [10.0] * 4, "trial_type": ["a", "b"] * 2})
    matrix = make_first_level_design_matrix(frame_times, events, hrf_model="glover", drift_model="cosine",
                                            high_pass=0.01)
    rho = rng.uniform(-0.3, 0.8, shape)
    noise = rng.normal(0.0, 1.0, shape + (n_volumes,))  # small beside the mean: single precision's rounding shows
    for t in range(1, n_volumes):
        noise[..., t] += rho * noise[..., t - 1]
    data = (rng.uniform(400, 1200, shape)[..., None] + noise).astype(np.float32)
    data[:, :, 3:5] = 0.0
    mask = np.ones(shape, np.uint8)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    run_design = design.Design(matrix=matrix, conditions=("a", "b"), confounds=())
    contrasts = design.contrast_weights((), run_design)
    return nib.Nifti1Image(data, affine), nib.Nifti1Image(mask, affine), run_design, contrasts


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("dropped", [True, False])
def test_voxels_left_out_keep_nilearns_means_and_ar1_bins(large_constant_slab, dropped, intercept):
    """The voxels' means were taken over the series without its constant voxels, a copy
    whose single-precision sums are rounded otherwise: a voxel in 1,500 moved to the next
    AR(1) bin (variance maps 0.7% off). Without an intercept (a --design-dir design), the
    mean of the residuals the AR(1) estimate removes is every voxel's of the mask, the
    constant ones' included (variance maps were up to 98% off)."""
    bold, mask, run_design, contrasts = large_constant_slab
    if not intercept:
        run_design = replace(run_design, matrix=run_design.matrix.drop(columns="constant"))
        contrasts = design.contrast_weights((), run_design)
    if not dropped:  # the same voxels, the constant slab outside the mask instead
        inside = np.asarray(mask.dataobj).copy()
        inside[:, :, 3:5] = 0
        mask = nib.Nifti1Image(inside, mask.affine)
    result = glm.fit_run(bold, run_design, contrasts, mask=mask, noise_model="ar1")
    assert result.mask.get_fdata().sum() == 24 * 24 * 12
    assert_same_maps(result, nilearn_fit(bold, run_design.matrix, mask=mask, smoothing_fwhm=None, noise_model="ar1"),
                     contrasts)


@pytest.mark.parametrize("smoothing_fwhm", [None, 5.0])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int32, np.float32, np.float64])
def test_the_series_has_the_type_nilearns_masker_gives(synthetic, tmp_path, smoothing_fwhm, dtype):
    """Unsmoothed integers were fitted in double precision, nilearn's masker gives single:
    the AR(1) coefficients differed by 4e-6, enough to move a voxel near a bin's edge."""
    from nilearn.maskers import NiftiMasker

    bold, mask, _, _ = synthetic
    image = nib.Nifti1Image(np.clip(np.round(bold.get_fdata()), 0, 255).astype(dtype), bold.affine)
    nib.save(image, tmp_path / "bold.nii.gz")
    nib.save(mask, tmp_path / "mask.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = NiftiMasker(mask, smoothing_fwhm=smoothing_fwhm).fit_transform(image).dtype
    assert glm.masked_series(image, glm.load_mask(mask, image), smoothing_fwhm).dtype == expected
    read = glm.prepare_run(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz", smoothing_fwhm, 2)
    assert read.series.dtype == expected


def test_non_finite_volumes_of_a_file_are_counted(synthetic, tmp_path):
    """Read as the workflow reads a file (volume by volume, on threads): two volumes with a NaN."""
    bold, mask, run_design, contrasts = synthetic
    data = np.array(bold.dataobj, dtype=np.float32)
    data[3, 3, 3, 5] = np.nan
    data[1, 1, 1, 2] = -np.inf
    nib.save(nib.Nifti1Image(data, bold.affine), tmp_path / "bold.nii.gz")
    nib.save(mask if isinstance(mask, nib.Nifti1Image) else nib.load(mask), tmp_path / "mask.nii.gz")
    for n_threads in (1, 3):
        masked = glm.prepare_run(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz", 5.0, n_threads)
        assert masked.nonfinite_volumes == 2
        ahead = glm.read_ahead(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz", 5.0, n_threads)
        assert ahead.nonfinite_volumes == 2


def nilearn_chunk(series, matrix, vectors, tests, noise_model):
    """nilearn's own functions on a block of voxels: what glm.fit_contrasts reproduces."""
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.first_level import mean_scaling, run_glm

    scaled, _ = mean_scaling(series, 0)
    labels, results = run_glm(scaled, matrix, noise_model=noise_model)
    maps = []
    for vector, test in zip(vectors, tests):
        contrast = compute_contrast(labels, results, vector, test)
        maps.append({stat: getattr(contrast, glm.NILEARN_OUTPUTS[stat])() for stat in glm.stats_of(test)})
    return maps, next(iter(results.values())).df_residuals, labels


@pytest.fixture(scope="module")
def random_glm():
    """Random series with AR(1) noise whose coefficients span many bins, and a design
    with a drift and a few regressors; t and F contrasts (one of them shorter than the design)."""
    rng = np.random.default_rng(7)
    n_times, n_voxels = 120, 3000
    matrix = np.column_stack([
        rng.normal(size=(n_times, 3)), np.linspace(-1, 1, n_times), np.ones(n_times),
    ])
    rho = rng.uniform(-0.6, 0.9, n_voxels)
    noise = rng.normal(size=(n_times, n_voxels))
    for t in range(1, n_times):
        noise[t] += rho * noise[t - 1]
    series = (matrix @ rng.normal(0, 2, (5, n_voxels)) + 5 * noise + 800).astype(np.float32)
    vectors = [np.array([1.0, 0, 0, 0, 0]), np.array([1.0, -1.0, 0, 0, 0]), np.array([0, 0, 1.0]),
               np.array([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]]), np.array([[0, 0, 1.0, 0, 0]])]
    tests = ["t", "t", "t", "F", "F"]
    return series, matrix, vectors, tests


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_fit_equals_run_glm_and_compute_contrast(random_glm, noise_model, dtype):
    series, matrix, vectors, tests = random_glm
    series = series.astype(dtype)
    expected, expected_dof, labels = nilearn_chunk(series, matrix, vectors, tests, noise_model)
    if noise_model == "ar1":
        assert len(np.unique(labels)) > 100  # many bins, positive and negative
    maps, dof, _ = glm.fit_contrasts(series, matrix, vectors, noise_model, chunk=series.shape[1], tests=tests)
    assert dof == expected_dof
    for ours, theirs in zip(maps, expected):
        assert set(ours) == set(theirs)
        for stat in ours:
            assert np.isfinite(theirs[stat]).all()
            np.testing.assert_allclose(ours[stat], theirs[stat], rtol=1e-10, atol=1e-12, err_msg=stat)


def test_ar1_bins_are_those_of_run_glm(random_glm):
    """Each voxel's AR(1) coefficient lands in nilearn's bin, truncated as run_glm truncates."""
    from nilearn.glm.first_level import mean_scaling
    from nilearn.glm.first_level.first_level import _yule_walker
    from nilearn.glm.regression import OLSModel

    series, matrix, _, _ = random_glm
    scaled, _ = mean_scaling(series, 0)
    residuals = OLSModel(matrix).fit(scaled).residuals
    theirs = _yule_walker(residuals.T, 1)[:, 0]
    ours = glm.ar1_coefficients(residuals)
    # summed in another order: a few units in the last place apart (a bin is 0.01 wide)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-16)
    expected = np.array([(value * 100).astype(int) for value in theirs])
    np.testing.assert_array_equal(glm.ar1_bins(ours), expected)
    assert (expected < 0).any() and (expected > 50).any()
    np.testing.assert_array_equal(glm.ar1_bins(np.array([-0.019, 0.019, np.nan])), [-1, 1, 0])


@pytest.mark.parametrize("n_threads", [1, 2])
def test_voxels_sorted_in_place_and_back(n_threads):
    """sort_voxels reorders every volume's voxels alike, in place; FittedVoxels.unsort puts
    the per-voxel results back in the voxels' first order."""
    rng = np.random.default_rng(3)
    scaled = rng.standard_normal((9, 50)).astype(np.float32)
    order = np.argsort(rng.integers(0, 5, 50), kind="stable")
    expected = scaled[:, order]
    glm.sort_voxels(scaled, order, n_threads)
    np.testing.assert_array_equal(scaled, expected)
    models = glm.NoiseModels(rng.standard_normal((9, 2)), [np.array([1.0, 0.0]), np.eye(2)], ["t", "F"])
    fitted = glm.FittedVoxels(50, models)
    fitted.dispersion[:] = fitted.effects[0][:] = np.arange(50)
    fitted.effects[1][:] = [np.arange(50), -np.arange(50)]
    fitted.unsort(order)
    np.testing.assert_array_equal(fitted.dispersion[order], np.arange(50))
    np.testing.assert_array_equal(fitted.effects[0][order], np.arange(50))
    np.testing.assert_array_equal(fitted.effects[1][:, order], [np.arange(50), -np.arange(50)])
    assert fitted.factors[1] is None


def test_bin_groups_are_slices_of_sorted_bins():
    groups = glm.bin_groups(np.array([-2, -2, 0, 3, 3, 3, 3, 3]), chunk=3)
    assert groups == [(-2, slice(0, 2)), (0, slice(2, 3)), (3, slice(3, 6)), (3, slice(6, 8))]
    for n_volumes in (200, 1500):  # the most voxels of n_volumes in double precision within CHUNK_BYTES
        chunk_bytes = glm.chunk_voxels(n_volumes) * n_volumes * 8
        assert chunk_bytes <= glm.CHUNK_BYTES < chunk_bytes + n_volumes * 8
    assert glm.chunk_voxels(10**6) == 16


def test_vectorised_fit_in_chunks_and_threads(random_glm):
    series, matrix, vectors, tests = random_glm
    whole, dof, _ = glm.fit_contrasts(series, matrix, vectors, "ar1", chunk=series.shape[1], tests=tests)
    chunked, chunked_dof, _ = glm.fit_contrasts(series, matrix, vectors, "ar1", n_threads=2, chunk=701, tests=tests)
    assert dof == chunked_dof
    for a, b in zip(whole, chunked):
        for stat in a:
            np.testing.assert_allclose(a[stat], b[stat], rtol=1e-10, atol=1e-12)


def test_chunks_of_a_design_without_an_intercept_share_nilearns_ar1_bins(random_glm):
    """A --design-dir design without a constant column: the mean its Yule-Walker estimate
    removes (nilearn's: all the residuals') was each chunk's own, and moved voxels to other bins."""
    series, matrix, vectors, tests = random_glm
    matrix, vectors = matrix[:, :4], [v[..., :4] if v.shape[-1] > 4 else v for v in vectors]
    expected, expected_dof, labels = nilearn_chunk(series, matrix, vectors, tests, "ar1")
    maps, dof, _ = glm.fit_contrasts(series, matrix, vectors, "ar1", n_threads=2, chunk=701, tests=tests)
    assert dof == expected_dof
    for ours, theirs in zip(maps, expected):
        for stat in ours:
            np.testing.assert_allclose(ours[stat], theirs[stat], rtol=1e-10, atol=1e-12, err_msg=stat)


def test_an_unknown_noise_model_is_refused(random_glm):
    series, matrix, vectors, _ = random_glm
    with pytest.raises(ValueError, match="noise_model"):
        glm.fit_contrasts(series, matrix, vectors[:1], "ar2")


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("smoothing_fwhm", [None, 5.0])
def test_a_series_read_volume_by_volume_is_the_masked_series(synthetic, tmp_path, n_threads, smoothing_fwhm):
    bold, mask, _, _ = synthetic
    path = tmp_path / "bold.nii.gz"
    bold.to_filename(path)
    mask_img = glm.load_mask(mask, bold)
    expected = glm.masked_series(bold, mask_img, smoothing_fwhm)
    streamed = glm.streamed_series(path, mask_img, smoothing_fwhm, n_threads=n_threads)
    assert streamed.dtype == expected.dtype
    np.testing.assert_array_equal(streamed, expected)
    prepared = glm.prepare_run(path, mask, smoothing_fwhm, n_threads)
    np.testing.assert_array_equal(prepared.series, expected)
    as_int = tmp_path / "int.nii.gz"
    nib.Nifti1Image(np.round(bold.get_fdata()).astype(np.int16), bold.affine).to_filename(as_int)
    np.testing.assert_array_equal(
        glm.streamed_series(as_int, mask_img, smoothing_fwhm, n_threads),
        glm.masked_series(nib.load(as_int), mask_img, smoothing_fwhm),
    )


def test_a_series_too_large_for_the_memory_left_is_named(synthetic, tmp_path, monkeypatch):
    """A header may declare gigabytes that a gzip stream of zeros holds in megabytes: numpy's
    allocation error (exit 1, naming nothing) becomes a sentence naming the file and its size."""
    bold, mask, _, _ = synthetic
    path = tmp_path / "bold.nii.gz"
    bold.to_filename(path)

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate")

    n = int(np.count_nonzero(mask.get_fdata()))
    with pytest.raises(series.FixedFxError, match=rf"not enough memory to read {path}: it needs .* GiB "
                       rf"\({bold.shape[3]} x {n} values of float32\); give the job more memory"):
        glm.streamed_series(path, glm.load_mask(mask, bold), 5.0, allocate=no_memory)
    monkeypatch.setattr(series, "read_bold", no_memory)  # no mask: the whole series is read
    shape = " x ".join(map(str, bold.shape))
    with pytest.raises(series.FixedFxError, match=rf"not enough memory to read {path}: it needs .* \({shape} values"):
        glm.prepare_run(path, None, 5.0)


def test_a_series_read_ahead_is_taken_only_when_read_as_it_would_be(synthetic, tmp_path):
    """The series read ahead (the mask read without nilearn) is the one prepare_run reads,
    and is taken only for the same BOLD, mask and smoothing, the mask giving the same voxels."""
    bold, mask, _, _ = synthetic
    path, mask_path, other_mask = tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz", tmp_path / "other.nii.gz"
    bold.to_filename(path)
    nib.Nifti1Image(mask.get_fdata().astype(np.float32) * 7, mask.affine).to_filename(mask_path)  # 0 and 7
    ahead = glm.read_ahead(path, mask_path, 5.0, n_threads=2)
    expected = glm.prepare_run(path, mask_path, 5.0, 1)
    np.testing.assert_array_equal(ahead.series, expected.series)
    taken = glm.prepare_run(path, mask_path, 5.0, 1, ahead)
    assert taken.series is ahead.series
    np.testing.assert_array_equal(taken.mask.get_fdata(), expected.mask.get_fdata())
    assert glm.prepare_run(path, mask_path, 6.0, 1, ahead).series is not ahead.series
    shrunk = mask.get_fdata().astype(np.uint8)
    shrunk[2, 2, 2] = 0
    nib.Nifti1Image(shrunk, mask.affine).to_filename(other_mask)
    assert glm.prepare_run(path, other_mask, 5.0, 1, ahead).series is not ahead.series
    different = replace(ahead, mask=other_mask)  # named as the other mask, but read from the first
    again = glm.prepare_run(path, other_mask, 5.0, 1, different)
    assert again.series is not ahead.series and again.series.shape[1] == expected.series.shape[1] - 1
    one_volume = tmp_path / "mask4d.nii.gz"  # nilearn reads a 4D mask of one volume as 3D
    nib.Nifti1Image(mask.get_fdata()[..., np.newaxis].astype(np.uint8), mask.affine).to_filename(one_volume)
    ahead = glm.read_ahead(path, one_volume, 5.0, n_threads=1)
    assert glm.prepare_run(path, one_volume, 5.0, 1, ahead).series is ahead.series


@pytest.mark.parametrize("shape", [(64, 64, 12), (96, 96, 7), (21, 23, 19), (33, 40, 9)])
def test_the_series_is_smoothed_bit_for_bit_as_nilearn_smooths(shape):
    """The same values as nilearn's ``smooth_img`` of the whole 4D series, to the bit (what
    keeps every voxel's AR(1) coefficient in nilearn's bin), on grids whose slices are a
    multiple of 4 KB (see ``series._masked_volume``) and others."""
    from nilearn.image import smooth_img

    rng = np.random.default_rng(7)
    data = rng.normal(100.0, 10.0, shape + (3,)).astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    mask[2:-2, 3:-3, 1:-1] = 1
    affine = np.diag([3.0, 3.0, 3.5, 1.0])
    bold, mask_img = nib.Nifti1Image(data, affine), nib.Nifti1Image(mask, affine)
    expected = np.asarray(smooth_img(bold, 5.0).dataobj)[mask.astype(bool)].T
    assert expected.dtype == np.float32
    np.testing.assert_array_equal(glm.masked_series(bold, mask_img, 5.0), expected)


@pytest.mark.parametrize(("where", "shape"), [("inside", (21, 23, 19)), ("at an edge", (21, 23, 19)),
                                             ("across the slices", (64, 64, 19))])  # 16 KB: see _masked_volume
def test_smoothing_only_around_the_mask_gives_nilearns_values(tmp_path, where, shape):
    """Only the mask's box (widened by the kernel's radius) is smoothed: the values inside
    the mask are those of nilearn smoothing the whole volume, anisotropic voxels included."""
    from nilearn.masking import apply_mask

    rng = np.random.default_rng(3)
    data = rng.normal(100.0, 10.0, shape + (6,)).astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    mask[6:12, 8:15, 5:11] = 1
    mask[9, 15:17, 8] = 1
    if where == "at an edge":
        mask[0:3, 0:4, 16:] = 1
    if where == "across the slices":  # the box is whole slices
        mask[1:-1, 1:-1, 8:12] = 1
    affine = np.diag([2.0, 2.5, 3.5, 1.0])
    bold, mask_img = nib.Nifti1Image(data, affine), nib.Nifti1Image(mask, affine)
    box, _ = series._mask_box(mask_img, series._sigma(affine, 7.0))
    assert np.prod([s.stop - s.start for s in box]) < mask.size  # a part of the volume only
    assert where != "across the slices" or [s.stop - s.start for s in box[:2]] == [64, 64]
    expected = apply_mask(bold, mask_img, smoothing_fwhm=7.0)
    np.testing.assert_allclose(glm.masked_series(bold, mask_img, 7.0), expected, rtol=1e-6)
    bold.to_filename(tmp_path / "bold.nii.gz")
    np.testing.assert_allclose(glm.streamed_series(tmp_path / "bold.nii.gz", mask_img, 7.0, 2), expected, rtol=1e-6)


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_r_square_equals_regression_results_r_square(random_glm, noise_model):
    """Each voxel's R² is that of the RegressionResults of its AR(1) bin (or of the OLS fit)."""
    from nilearn.glm.first_level import mean_scaling, run_glm

    series, matrix, vectors, tests = random_glm
    labels, results = run_glm(mean_scaling(series, 0)[0], matrix, noise_model=noise_model)
    expected = np.empty(series.shape[1])
    for label, result in results.items():
        expected[labels == label] = result.r_square
    _, _, ours = glm.fit_contrasts(series, matrix, vectors, noise_model, n_threads=2, chunk=701, tests=tests)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)
    assert 0.05 < np.median(ours) < 0.95


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_r_square_of_an_ill_conditioned_design_equals_nilearns(random_glm, noise_model):
    """A design with nearly collinear columns (condition about 1e7, as cosine drifts with
    fMRIPrep's cosine confounds): the R² taken as theta' S theta was 3e-4 off nilearn's."""
    from nilearn.glm.first_level import mean_scaling, run_glm

    series, matrix, vectors, tests = random_glm
    rng = np.random.default_rng(11)
    matrix = np.column_stack([matrix, matrix[:, 3] + 1e-6 * rng.normal(size=len(matrix))])
    assert np.linalg.cond(matrix) > 1e6
    labels, results = run_glm(mean_scaling(series, 0)[0], matrix, noise_model=noise_model)
    expected = np.empty(series.shape[1])
    for label, result in results.items():
        expected[labels == label] = result.r_square
    _, _, ours = glm.fit_contrasts(series, matrix, vectors, noise_model, tests=tests)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_constant_voxel_has_no_r_square_as_in_nilearn(random_glm, noise_model):
    """A voxel without variance gets NaN (0 / 0), as RegressionResults.r_square; the others do not."""
    from nilearn.glm.first_level import mean_scaling, run_glm

    series, matrix, vectors, tests = random_glm
    series = series.copy()
    series[:, 5] = 700.0
    labels, results = run_glm(mean_scaling(series, 0)[0], matrix, noise_model=noise_model)
    expected = np.empty(series.shape[1])
    for label, result in results.items():
        expected[labels == label] = result.r_square
    _, _, ours = glm.fit_contrasts(series, matrix, vectors, noise_model, tests=tests)
    assert np.isnan(expected[5]) and np.isnan(ours[5])
    np.testing.assert_allclose(np.delete(ours, 5), np.delete(expected, 5), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("order", ["C", "F"])
def test_subtract_fit_writes_the_residuals_over_double_precision_data(order):
    rng = np.random.default_rng(3)
    design, theta = rng.normal(size=(50, 4)), rng.normal(size=(4, 30))
    data = np.asarray(rng.normal(size=(50, 30)), order=order)
    expected = data - design @ theta
    residuals = glm.subtract_fit(data, design, theta)
    np.testing.assert_allclose(residuals, expected, rtol=1e-12, atol=1e-12)
    assert residuals.shape == (50, 30) and np.shares_memory(residuals, data)


@pytest.mark.parametrize("make", [lambda d: d.astype(np.float32), lambda d: d[:, ::2], lambda d: d[::2]])
def test_subtract_fit_leaves_other_data_as_it_is(make):
    """Single precision or a strided view: a new array, the data untouched."""
    rng = np.random.default_rng(4)
    data = make(rng.normal(size=(50, 30)))
    design, theta = rng.normal(size=(data.shape[0], 3)), rng.normal(size=(3, data.shape[1]))
    before = data.copy()
    residuals = glm.subtract_fit(data, design, theta)
    np.testing.assert_allclose(residuals, data.astype(np.float64) - design @ theta, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(data, before)
    assert not np.shares_memory(residuals, data)


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_r_square_map_equals_first_level_models(example_dataset, example_run, noise_model):
    """The run's R² map is FirstLevelModel(minimize_memory=False).r_square_, with the same design,
    mask, smoothing and noise model; it is higher where the example's effects are (drift and motion
    explain much of every voxel's variance, so only by a margin)."""
    run_design = design.build_design(example_run, ModelSettings())
    contrasts = design.contrast_weights((), run_design)
    result = glm.fit_run(example_run.bold, run_design, contrasts, mask=example_run.mask, smoothing_fwhm=5.0,
                         noise_model=noise_model)
    reference = FirstLevelModel(t_r=example_run.tr, mask_img=str(example_run.mask), smoothing_fwhm=5.0,
                                noise_model=noise_model, minimize_memory=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(str(example_run.bold), design_matrices=[run_design.matrix])
        theirs = getattr(reference, "r_square_", None) or reference.r_square
    theirs = theirs[0].get_fdata().reshape(result.mask.shape)  # nilearn: one volume
    ours = result.r_square.get_fdata()
    inside = result.mask.get_fdata() > 0
    assert (ours[~inside] == 0).all()
    np.testing.assert_allclose(ours[inside], theirs[inside], rtol=1e-4, atol=1e-7)
    print(f"R² ({noise_model}): largest relative difference from nilearn "
          f"{np.max(np.abs(ours[inside] - theirs[inside]) / np.abs(theirs[inside])):.2e}")
    active = np.zeros(inside.shape, bool)
    for box in example_dataset.active.values():
        active[box] = True
    assert np.median(ours[active & inside]) > np.median(ours[~active & inside]) + 0.05


def test_series_pool_hands_a_fitted_series_out_again():
    """A series it made, given back, is where the next series of its shape is made; one of
    another shape is dropped, one it did not make is not kept, and clear drops it."""
    pool = glm.SeriesPool()
    first = pool((4, 6), np.float32)
    pool.give_back(first)
    assert pool((4, 6), np.float32) is first
    assert pool((4, 6), np.float32) is not first  # handed out once
    pool.give_back(first)
    assert pool((5, 6), np.float32) is not first and pool((4, 6), np.float32) is not first  # dropped
    for other in (np.zeros((4, 6), np.float32), np.zeros((2, 4, 6), np.float32)[0]):  # not made by the pool
        pool.give_back(other)
        assert pool((4, 6), np.float32) is not other
    made = pool((4, 6), np.float32)
    pool.give_back(made)
    pool.clear()
    assert pool((4, 6), np.float32) is not made


def test_a_run_read_over_a_fitted_runs_series_is_read_whole(synthetic, tmp_path):
    """prepare_run with a SeriesPool reads a run's files over the series of a run already fitted."""
    bold_img, mask_img, _, _ = synthetic
    bold, mask = tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz"
    bold_img.to_filename(bold)
    mask_img.to_filename(mask)
    alone = glm.prepare_run(bold, mask, 5.0)
    pool = glm.SeriesPool()
    used = glm.prepare_run(bold, mask, 5.0, allocate=pool).series
    used[:] = -1.0
    pool.give_back(used)
    again = glm.prepare_run(bold, mask, 5.0, allocate=pool)
    assert again.series is used
    np.testing.assert_array_equal(again.series, alone.series)
