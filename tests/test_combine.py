"""Combining maps: fixed effects across runs (nilearn compute_fixed_effects) and the group level."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm import compute_fixed_effects
from nilearn.glm.second_level import SecondLevelModel
from scipy import stats

from bids_fixedfx import combine
from bids_fixedfx import maps as map_reading
from bids_fixedfx.errors import NoDataError
from bids_fixedfx.glm import ContrastMaps, RunResult
from bids_fixedfx.settings import STATS

SHAPE = (7, 8, 6)
AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


def image(values):
    return nib.Nifti1Image(np.asarray(values, dtype=np.float64), AFFINE)


@pytest.fixture(scope="module")
def maps():
    """Effect and variance maps of four runs, a mask, and each run's dof."""
    rng = np.random.default_rng(7)
    inside = np.zeros(SHAPE, bool)
    inside[1:-1, 1:-1, 1:-2] = True
    effects, variances = [], []
    for _ in range(4):
        effect = rng.normal(0.8, 1.0, SHAPE) * inside
        variance = rng.uniform(0.05, 0.6, SHAPE) * inside
        effects.append(image(effect))
        variances.append(image(variance))
    mask = nib.Nifti1Image(inside.astype(np.int8), AFFINE)
    dofs = [83.0, 79.0, 85.0, 40.0]  # volumes minus design rank, different per run
    return effects, variances, mask, dofs


def values(img, mask):
    return np.asarray(img.get_fdata())[np.asarray(mask.get_fdata()) > 0]


@pytest.mark.parametrize("precision_weighted", [False, True])
def test_fixed_effects_equal_nilearn(maps, precision_weighted):
    effects, variances, mask, dofs = maps
    ours = combine.fixed_effects(effects, variances, mask, dofs, precision_weighted=precision_weighted)
    theirs = compute_fixed_effects(effects, variances, mask, precision_weighted=precision_weighted, dofs=dofs)
    assert set(ours) == set(STATS)
    for stat, expected in zip(("effect", "variance", "t", "z"), theirs):
        np.testing.assert_allclose(
            ours[stat].get_fdata(), expected.get_fdata(), rtol=1e-4, atol=0, err_msg=stat
        )
    t = values(ours["t"], mask)
    np.testing.assert_allclose(values(ours["p"], mask), stats.t.sf(t, np.sum(dofs)), rtol=1e-6, atol=0)
    # outside the mask nothing looks significant: 0, and p = 1
    outside = mask.get_fdata() == 0
    for stat in STATS:
        assert (ours[stat].get_fdata()[outside] == (1 if stat == "p" else 0)).all(), stat


def test_precision_weighting_changes_the_result(maps):
    effects, variances, mask, dofs = maps
    plain = combine.fixed_effects(effects, variances, mask, dofs)
    weighted = combine.fixed_effects(effects, variances, mask, dofs, precision_weighted=True)
    assert not np.allclose(values(plain["effect"], mask), values(weighted["effect"], mask))
    # nilearn's default: the plain mean of the effects
    np.testing.assert_allclose(
        values(plain["effect"], mask), np.mean([values(e, mask) for e in effects], axis=0), rtol=1e-10
    )


def test_real_dofs_are_used(maps):
    """The p map uses the runs' real dofs, not nilearn's default of 100 per run."""
    effects, variances, mask, dofs = maps
    ours = combine.fixed_effects(effects, variances, mask, dofs)
    default = combine.fixed_effects(effects, variances, mask, [100.0] * len(dofs))
    assert not np.allclose(values(ours["p"], mask), values(default["p"], mask), rtol=1e-6)


def _contrast_maps(effect, variance, dof, contrast="c"):
    return ContrastMaps(contrast, {"effect": effect, "variance": variance, "t": None, "z": None, "p": None}, dof)


def test_combine_runs_with_one_run_returns_its_maps(maps):
    effects, variances, mask, dofs = maps
    run = ContrastMaps("c", {stat: image(np.full(SHAPE, i + 1.0)) for i, stat in enumerate(STATS)}, dofs[0])
    combined = combine.combine_runs([run], mask)
    assert combined.dof == run.dof
    assert combined.contrast == run.contrast
    for stat in STATS:
        np.testing.assert_array_equal(combined.maps[stat].get_fdata(), run.maps[stat].get_fdata())


@pytest.mark.parametrize("precision_weighted", [False, True])
def test_combine_runs_is_fixed_effects_with_summed_dofs(maps, precision_weighted):
    effects, variances, mask, dofs = maps
    runs = [_contrast_maps(e, v, d) for e, v, d in zip(effects, variances, dofs)]
    combined = combine.combine_runs(runs, mask, precision_weighted=precision_weighted)
    assert combined.dof == np.sum(dofs)
    assert combined.contrast == "c"
    theirs = compute_fixed_effects(effects, variances, mask, precision_weighted=precision_weighted, dofs=dofs)
    for stat, expected in zip(("effect", "variance", "t", "z"), theirs):
        np.testing.assert_allclose(combined.maps[stat].get_fdata(), expected.get_fdata(), rtol=1e-4, err_msg=stat)
    t = values(combined.maps["t"], mask)
    np.testing.assert_allclose(values(combined.maps["p"], mask), stats.t.sf(t, np.sum(dofs)), rtol=1e-6)


NILEARN_NAMES = {"effect": "effect_size", "variance": "effect_variance", "t": "stat", "F": "stat",
                 "z": "z_score", "p": "p_value"}


def second_level(effects, mask, design, con_val, stat_type):
    """nilearn's SecondLevelModel maps of one contrast (what the group level must equal)."""
    model = SecondLevelModel(mask_img=mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(effects, design_matrix=design)
        return model.compute_contrast(con_val, second_level_stat_type=stat_type, output_type="all")


def assert_equal_to_nilearn(ours, theirs, mask, stats_=STATS):
    inside = mask.get_fdata() > 0
    for stat in stats_:
        expected = theirs[NILEARN_NAMES[stat]].get_fdata()
        np.testing.assert_allclose(ours.maps[stat].get_fdata()[inside], expected[inside], rtol=1e-6, atol=0,
                                   err_msg=stat)
        # outside the mask nothing looks significant: 0, and p = 1
        assert (ours.maps[stat].get_fdata()[~inside] == (1 if stat == "p" else 0)).all(), stat


@pytest.fixture(params=["whole", "blocks"])
def blocks(request, monkeypatch):
    """The group statistics on all voxels at once, and in blocks of 1000 voxels."""
    if request.param == "blocks":
        monkeypatch.setattr(map_reading, "GROUP_BLOCK_VALUES", 1)
    return request.param


@pytest.fixture(scope="module")
def group_maps():
    """Effect maps of 12 subjects (more voxels than one block) and a mask."""
    rng = np.random.default_rng(11)
    shape = (16, 14, 12)
    inside = np.zeros(shape, bool)
    inside[2:-2, 2:-2, 1:-1] = True  # 1,200 voxels
    effects = [image(rng.normal(0.4, 1.0, shape) * inside) for _ in range(12)]
    variances = [image(rng.uniform(0.05, 0.6, shape) * inside) for _ in range(12)]
    mask = nib.Nifti1Image(inside.astype(np.int8), AFFINE)
    return effects, variances, mask


def test_one_sample_test_equals_second_level_model(maps):
    effects, _, mask, _ = maps
    contrast = combine.GroupContrast("audio", "audio", {"intercept": 1.0})
    ours = combine.one_sample_test(effects, mask, contrast)
    assert ours.contrast is contrast
    assert ours.dof == len(effects) - 1
    assert set(ours.maps) == set(STATS)
    theirs = second_level(effects, mask, pd.DataFrame({"intercept": np.ones(len(effects))}), "intercept", "t")
    assert_equal_to_nilearn(ours, theirs, mask)
    # and that is the classical one-sample t-test across subjects
    data = np.array([values(e, mask) for e in effects])
    test = stats.ttest_1samp(data, 0.0, axis=0)
    np.testing.assert_allclose(values(ours.maps["t"], mask), test.statistic, rtol=1e-6)
    np.testing.assert_allclose(values(ours.maps["effect"], mask), data.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(values(ours.maps["p"], mask), stats.t.sf(test.statistic, len(effects) - 1), rtol=1e-5)


def test_one_sample_test_in_blocks_equals_second_level_model(group_maps, blocks):
    effects, _, mask = group_maps
    ours = combine.one_sample_test(effects, mask, combine.GroupContrast("c", "c", {"intercept": 1.0}))
    theirs = second_level(effects, mask, pd.DataFrame({"intercept": np.ones(len(effects))}), "intercept", "t")
    assert_equal_to_nilearn(ours, theirs, mask)


def test_non_finite_voxels_of_a_subject_map_are_zero_as_nilearn_reads_them(group_maps):
    """A few NaN voxels in one subject's effect map gave NaN group maps there; nilearn's masker
    reads them as 0 (SecondLevelModel's maps are finite)."""
    effects, _, mask = group_maps
    inside = np.asanyarray(mask.dataobj).astype(bool)
    broken = effects[1].get_fdata().astype(np.float32)
    broken[tuple(np.argwhere(inside)[:5].T)] = [np.nan, np.nan, np.inf, -np.inf, np.nan]
    effects = [effects[0], nib.Nifti1Image(broken, effects[1].affine), *effects[2:]]
    ours = combine.one_sample_test(effects, mask, combine.GroupContrast("c", "c", {"intercept": 1.0}))
    theirs = second_level(effects, mask, pd.DataFrame({"intercept": np.ones(len(effects))}), "intercept", "t")
    assert np.isfinite(values(ours.maps["t"], mask)).all()
    assert_equal_to_nilearn(ours, theirs, mask)


@pytest.mark.parametrize("weights", [[[0.0, 1.0, 0.0]], [[1.0, 0.0, -0.5]], [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]],
                         ids=["t-age", "t-mixed", "F"])
def test_group_glm_equals_second_level_model(group_maps, blocks, weights):
    """A design with covariates, t and F contrasts: SecondLevelModel's numbers."""
    effects, _, mask = group_maps
    rng = np.random.default_rng(5)
    design = pd.DataFrame({"intercept": np.ones(len(effects)), "age": rng.uniform(-10, 10, len(effects)),
                           "group": np.repeat([0.5, -0.5], len(effects) // 2)})
    matrix = np.array(weights)
    test = "t" if len(matrix) == 1 else "F"
    contrast = combine.GroupContrast("c", "c", {}, test)
    ours = combine.group_glm(effects, mask, design, matrix, contrast)
    assert ours.dof == len(effects) - 3
    theirs = second_level(effects, mask, design, matrix[0] if test == "t" else matrix, test)
    expected = STATS if test == "t" else ("F", "z", "p")
    assert set(ours.maps) == set(expected)
    assert_equal_to_nilearn(ours, theirs, mask, expected)


def test_group_glm_checks_its_inputs(group_maps):
    effects, _, mask = group_maps
    design = pd.DataFrame({"intercept": np.ones(len(effects))})
    contrast = combine.GroupContrast("c", "c", {"intercept": 1.0})
    with pytest.raises(ValueError, match="one effect map per row"):
        combine.group_glm(effects[:-1], mask, design, np.ones((1, 1)), contrast)
    with pytest.raises(ValueError, match="one per design column"):
        combine.group_glm(effects, mask, design, np.ones((1, 2)), contrast)
    with pytest.raises(ValueError, match="null"):
        combine.group_glm(effects, mask, design, np.zeros((1, 1)), contrast)
    with pytest.raises(ValueError, match="at least 2"):
        combine.one_sample_test(effects[:1], mask, contrast)


@pytest.mark.parametrize("precision_weighted", [False, True])
def test_streamed_fixed_effects_equal_nilearn(group_maps, precision_weighted):
    effects, variances, mask = group_maps
    dofs = list(np.linspace(30.0, 90.0, len(effects)))
    ours = combine.streamed_fixed_effects(effects, variances, mask, dofs, precision_weighted)
    theirs = compute_fixed_effects(effects, variances, mask, precision_weighted=precision_weighted, dofs=dofs)
    for stat, expected in zip(("effect", "variance", "t", "z"), theirs):
        np.testing.assert_allclose(ours[stat], values(expected, mask), rtol=1e-6, atol=0, err_msg=stat)
    np.testing.assert_allclose(ours["p"], stats.t.sf(ours["t"], np.sum(dofs)), rtol=1e-6)


@pytest.mark.parametrize("precision_weighted", [False, True])
def test_streamed_fixed_effects_take_non_finite_values_as_nilearn_does(group_maps, precision_weighted):
    """A NaN voxel of a subject's effect or variance map (precision weighting of a voxel constant
    in a run) was written NaN; nilearn's masker makes it 0."""
    effects, variances, mask = group_maps
    inside = np.flatnonzero(mask.get_fdata() > 0)
    effect, variance = effects[1].get_fdata().copy(), variances[2].get_fdata().copy()
    effect.flat[inside[:3]] = [np.nan, np.inf, -np.inf]
    variance.flat[inside[3:5]] = [np.nan, np.inf]
    effects = [effects[0], nib.Nifti1Image(effect, AFFINE), *effects[2:]]
    variances = [*variances[:2], nib.Nifti1Image(variance, AFFINE), *variances[3:]]
    dofs = [40.0] * len(effects)
    ours = combine.streamed_fixed_effects(effects, variances, mask, dofs, precision_weighted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn's: non-finite values replaced by 0
        theirs = compute_fixed_effects(effects, variances, mask, precision_weighted=precision_weighted, dofs=dofs)
    for stat, expected in zip(("effect", "variance", "t", "z"), theirs):
        assert np.isfinite(ours[stat]).all(), stat
        np.testing.assert_allclose(ours[stat], values(expected, mask), rtol=1e-6, atol=0, err_msg=stat)


def test_a_variance_map_with_negative_values_is_named(group_maps, tmp_path):
    """A tampered or corrupt subject variance map: nilearn's floor made its voxels 1e-16, and
    the subject outweighed the others without a word."""
    from bids_fixedfx.errors import InputFileError

    effects, variances, mask = group_maps
    data = variances[1].get_fdata().copy()  # not the fixture's cached array
    data[mask.get_fdata() > 0] *= -1
    bad = _save(nib.Nifti1Image(data, variances[1].affine), tmp_path / "sub-02_stat-variance_statmap.nii.gz")
    dofs = [40.0] * len(effects)
    with pytest.raises(InputFileError, match=f"{bad} holds negative values inside the mask"):
        combine.streamed_fixed_effects(effects, [variances[0], bad, *variances[2:]], mask, dofs)


def test_group_fixed_effects(maps):
    effects, variances, mask, dofs = maps
    contrast = combine.GroupContrast("audio", "audio", {"intercept": 1.0})
    ours = combine.group_fixed_effects(effects, variances, dofs, mask, contrast)
    assert ours.dof == np.sum(dofs)
    assert ours.contrast is contrast
    theirs = compute_fixed_effects(effects, variances, mask, dofs=dofs)
    inside = mask.get_fdata() > 0
    for stat, expected in zip(("effect", "variance", "t", "z"), theirs):
        np.testing.assert_allclose(ours.maps[stat].get_fdata(), expected.get_fdata(), rtol=1e-6, atol=0,
                                   err_msg=stat)
    # the same p as the runs' fixed effects
    np.testing.assert_allclose(ours.maps["p"].get_fdata(),
                               combine.fixed_effects(effects, variances, mask, dofs)["p"].get_fdata(), rtol=1e-6)
    assert (ours.maps["p"].get_fdata()[~inside] == 1).all()


def _save(img, path, dtype=np.float32):
    nib.save(nib.Nifti1Image(np.asarray(img.get_fdata(), dtype=dtype), img.affine), path)
    return str(path)


def test_group_level_from_files_equals_nilearn(group_maps, tmp_path):
    """From float32 .nii.gz files, as the participant level writes them: masks intersected, maps
    held in float32 (no value rounded), numbers as nilearn's on the same files."""
    from nilearn.masking import intersect_masks

    effects, variances, mask = group_maps
    rng = np.random.default_rng(2)
    inside = mask.get_fdata() > 0
    masks, effect_paths, variance_paths = [], [], []
    for i, (effect, variance) in enumerate(zip(effects, variances)):
        own = inside & (rng.random(inside.shape) > 0.02)  # each subject's mask slightly different
        masks.append(_save(nib.Nifti1Image(own.astype(np.uint8), AFFINE), tmp_path / f"m{i}.nii.gz", np.uint8))
        effect_paths.append(_save(effect, tmp_path / f"e{i}.nii.gz"))
        variance_paths.append(_save(variance, tmp_path / f"v{i}.nii.gz"))
    group_mask = combine.intersect_masks(masks)
    np.testing.assert_array_equal(group_mask.get_fdata(),
                                  intersect_masks(masks, threshold=1, connected=False).get_fdata())
    assert combine.masked_matrix(effect_paths, group_mask).dtype == np.float32
    contrast = combine.GroupContrast("c", "c", {"intercept": 1.0})
    dofs = [50.0] * len(effects)
    mask_out, ours = combine.group_level(effect_paths, variance_paths, dofs, masks, contrast, "random")
    np.testing.assert_array_equal(mask_out.get_fdata(), group_mask.get_fdata())
    theirs = second_level(effect_paths, group_mask, pd.DataFrame({"intercept": np.ones(len(effects))}),
                          "intercept", "t")
    assert_equal_to_nilearn(ours, theirs, group_mask)
    _, ours = combine.group_level(effect_paths, variance_paths, dofs, masks, contrast, "fixed")
    # nilearn sums float32 maps in float32; the sums here are in float64, as nilearn's on the same
    # values in float64
    as_float64 = [[image(nib.load(p).get_fdata()) for p in paths] for paths in (effect_paths, variance_paths)]
    theirs = compute_fixed_effects(*as_float64, group_mask, dofs=dofs)
    in_float32 = compute_fixed_effects(effect_paths, variance_paths, group_mask, dofs=dofs)
    for stat, expected, rounded in zip(("effect", "variance", "t", "z"), theirs, in_float32):
        np.testing.assert_allclose(ours.maps[stat].get_fdata(), expected.get_fdata(), rtol=1e-6, atol=0,
                                   err_msg=stat)
        scale = np.abs(expected.get_fdata()).max()
        np.testing.assert_allclose(ours.maps[stat].get_fdata(), rounded.get_fdata(), rtol=0, atol=1e-6 * scale)


def test_masked_matrix_keeps_float64_values(group_maps):
    effects, _, mask = group_maps
    matrix = combine.masked_matrix(effects, mask)
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [values(e, mask) for e in effects])


def test_masked_matrix_holds_little_beside_the_matrix():
    """Non-finite values were zeroed over the whole matrix at once: nan_to_num's temporaries held
    as much memory again (1,044 vs 676 MB for 500 subjects of 2 mm maps); a row at a time holds a row."""
    import tracemalloc

    rng = np.random.default_rng(0)
    shape, n_maps = (30, 30, 30), 40
    maps = [nib.Nifti1Image(rng.standard_normal(shape).astype(np.float32), AFFINE) for _ in range(n_maps)]
    np.asarray(maps[5].dataobj)[0, 0, 0] = np.nan
    mask = nib.Nifti1Image(np.ones(shape, dtype=np.int8), AFFINE)
    tracemalloc.start()
    try:
        matrix = combine.masked_matrix(maps, mask)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert matrix.shape == (n_maps, np.prod(shape)) and matrix[5, 0] == 0 and np.isfinite(matrix).all()
    assert peak < 1.3 * matrix.nbytes, (peak, matrix.nbytes)


def test_maps_and_masks_on_other_grids_are_refused(group_maps):
    effects, variances, mask = group_maps
    shifted = nib.Nifti1Image(np.asarray(effects[0].dataobj), np.diag([2.0, 3.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="not on the group mask's grid"):
        combine.one_sample_test([shifted, *effects[1:]], mask, None)
    with pytest.raises(ValueError, match="not on the grid of mask 0"):
        combine.intersect_masks([mask, nib.Nifti1Image(np.asarray(mask.dataobj), np.diag([2.0, 3.0, 3.0, 1.0]))])
    with pytest.raises(ValueError, match="No mask"):
        combine.intersect_masks([])


def test_intersect_masks():
    rng = np.random.default_rng(3)
    arrays = [rng.random(SHAPE) > 0.3 for _ in range(3)]
    result = combine.intersect_masks([nib.Nifti1Image(a.astype(np.int8), AFFINE) for a in arrays])
    np.testing.assert_array_equal(result.get_fdata() > 0, np.logical_and.reduce(arrays))
    np.testing.assert_allclose(result.affine, AFFINE)


def test_intersect_masks_of_the_example_runs(example_selection):
    """A subject's runs have different masks; the subject mask is their intersection."""
    runs = [run for run in example_selection.runs if run.subject == "01"]
    arrays = [nib.load(run.mask).get_fdata() > 0 for run in runs]
    assert not all(np.array_equal(arrays[0], a) for a in arrays[1:])
    result = combine.intersect_masks([run.mask for run in runs])
    np.testing.assert_array_equal(result.get_fdata() > 0, np.logical_and.reduce(arrays))


def test_intersect_one_mask_is_the_mask():
    array = np.zeros(SHAPE, bool)
    array[2:5, 1:3, 3:6] = True
    result = combine.intersect_masks([nib.Nifti1Image(array.astype(np.uint8), AFFINE)])
    np.testing.assert_array_equal(result.get_fdata() > 0, array)


def test_masks_apart_are_those_missing_the_voxels_most_masks_share():
    """The masks named when an intersection is empty: the one apart from the others, or none
    when each holds some of the most shared voxels (two overlapping pairs that miss each other)."""
    def mask(part):
        array = np.zeros(SHAPE, np.int8)
        array[part] = 1
        return nib.Nifti1Image(array, AFFINE)

    left, right, most = mask(np.s_[:3]), mask(np.s_[4:]), mask(np.s_[:4])
    assert map_reading.masks_apart([left, most, right, left]) == [2]
    assert map_reading.masks_apart([left, left, right, right]) == []
    assert map_reading.is_empty(combine.intersect_masks([left, right]))
    assert not map_reading.is_empty(combine.intersect_masks([left, most]))


def test_a_pair_of_masks_that_miss_each_other_is_found():
    """Two masks of four missing each other (each holds some of the most shared voxels): the
    error listed every subject."""
    def mask(part):
        array = np.zeros(SHAPE, np.int8)
        array[part] = 1
        return nib.Nifti1Image(array, AFFINE)

    whole, left, right = mask(np.s_[:]), mask(np.s_[:3]), mask(np.s_[4:])
    assert map_reading.masks_apart([whole, left, whole, right]) == []
    assert map_reading.disjoint_pair([whole, left, whole, right]) == (1, 3)
    assert map_reading.disjoint_pair([right, whole, left]) == (0, 2)
    # each pair overlaps, the three do not: no pair to name
    third = [mask(np.s_[:2]), mask(np.s_[1:3])]
    both = mask(np.s_[:1]).get_fdata() + mask(np.s_[2:3]).get_fdata()
    assert map_reading.disjoint_pair([*third, nib.Nifti1Image(both.astype(np.int8), AFFINE)]) is None
    assert map_reading.disjoint_pair([whole, left]) is None
    named = ["sub-01", "sub-02", "sub-03", "sub-04"]
    assert map_reading.why_empty([whole, left, whole, right], named) == "the masks of sub-02 and sub-04 share no voxel"
    assert map_reading.why_empty([left, left, whole, right], named).startswith("the masks of sub-04 share none")


def test_same_grid():
    a = nib.Nifti1Image(np.zeros(SHAPE), AFFINE)
    b = nib.Nifti1Image(np.ones(SHAPE), AFFINE.copy())
    four_d = nib.Nifti1Image(np.zeros(SHAPE + (3,)), AFFINE)
    shifted = AFFINE.copy()
    shifted[0, 3] = 1.5
    assert combine.same_grid([a, b])
    assert combine.same_grid([a, b, four_d])
    assert not combine.same_grid([a, nib.Nifti1Image(np.zeros(SHAPE), shifted)])
    assert not combine.same_grid([a, nib.Nifti1Image(np.zeros((7, 8, 5)), AFFINE)])
    assert not combine.same_grid([a, b, nib.Nifti1Image(np.zeros(SHAPE), np.diag([2.0, 3.0, 3.0, 1.0]))])


def test_same_grid_reads_each_file_once_with_a_memory_of_grids(tmp_path, monkeypatch):
    """Files are compared by their headers; with ``grids``, a file checked by an earlier call
    is not read again, and a file on another grid is still found."""
    paths = {}
    for name, affine in (("a", AFFINE), ("b", AFFINE), ("shifted", np.diag([2.0, 3.0, 3.0, 1.0]))):
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.Nifti1Image(np.ones(SHAPE, np.int8), affine).to_filename(paths[name])
    read = []
    original = map_reading.grid_of
    monkeypatch.setattr(map_reading, "grid_of", lambda img: read.append(img) or original(img))
    grids = {}
    assert combine.same_grid([paths["a"], paths["b"]], grids=grids)
    assert combine.same_grid([paths["a"], paths["b"]], grids=grids)
    assert not combine.same_grid([paths["a"], paths["shifted"]], grids=grids)
    assert read == [paths["a"], paths["b"], paths["shifted"]]
    assert not combine.same_grid([paths["b"], paths["shifted"]])  # without: read again
    assert len(read) == 5



def test_inputs_left_with_no_common_voxel_are_named():
    """Planning saw the mask files overlap; the voxels constant over time, left out of each
    run's mask after, can take the rest (nilearn said 'The mask is invalid as it is empty')."""
    affine = np.eye(4)
    halves = []
    for side in (slice(0, 2), slice(2, 4)):
        data = np.zeros((4, 4, 4), np.uint8)
        data[side] = 1
        halves.append(nib.Nifti1Image(data, affine))
    inputs = [(None, RunResult(name=name, mask=mask, dof=10.0, contrasts=()))
              for name, mask in zip(("sub-01_task-x_run-1", "sub-01_task-x_run-2"), halves)]
    with pytest.raises(NoDataError, match="sub-01_task-x_run-1, sub-01_task-x_run-2 have no voxel in common"):
        combine.combine_inputs(inputs)


def test_a_vertex_of_zeros_in_every_map_is_tested_without_numpy_s_warning():
    """A surface's medial wall (0 in every subject's map): nilearn's 1/0 of its sd printed numpy's
    'divide by zero' warning with its source line, even with -q; the numbers are nilearn's."""
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.regression import OLSModel, SimpleRegressionResults

    from bids_fixedfx.group import ols_contrast

    values = np.random.default_rng(3).normal(size=(6, 5))
    values[:, 2] = 0.0
    design = np.ones((6, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with np.errstate(all="warn"):
            found = ols_contrast(values, design, np.array([1.0]))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fit = SimpleRegressionResults(OLSModel(design).fit(values))
        theirs = compute_contrast(np.zeros(5), {0.0: fit}, np.array([1.0]), "t")
    np.testing.assert_allclose(found["t"], np.ravel(theirs.stat()), rtol=1e-10)
    np.testing.assert_allclose(found["z"], np.ravel(theirs.z_score()), rtol=1e-10)
    assert found["t"][2] == 0 and found["p"][2] == 0.5
