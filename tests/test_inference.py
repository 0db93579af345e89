"""Corrected inference equals nilearn's threshold_stats_img, cluster_level_inference and
non_parametric_inference on the same input; the maps and sidecars are written as asked."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_fixedfx import inference
from bids_fixedfx.cli import main
from bids_fixedfx.inference import InferenceSettings

SHAPE = (12, 13, 10)


@pytest.fixture(scope="module")
def z_and_mask():
    rng = np.random.default_rng(3)
    z = rng.normal(size=SHAPE)
    z[3:7, 3:7, 3:6] += 8.0  # an effect
    mask = np.zeros(SHAPE, np.int8)
    mask[1:-1, 1:-1, 1:-1] = 1
    z[mask == 0] = 0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    return nib.Nifti1Image(z, affine), nib.Nifti1Image(mask, affine)


@pytest.mark.parametrize("method", inference.METHODS)
@pytest.mark.parametrize("extent", [0, 5])
def test_thresholded_map_equals_nilearn(z_and_mask, method, extent):
    from nilearn.glm import threshold_stats_img

    z, mask = z_and_mask
    settings = InferenceSettings(method=method, cluster_extent=extent)
    ours = inference.threshold_map(z, mask, settings)
    expected, threshold = threshold_stats_img(z, mask_img=mask, alpha=inference.DEFAULT_ALPHA[method],
                                              height_control=method, cluster_threshold=extent, two_sided=True)
    np.testing.assert_array_equal(ours.img.get_fdata(), expected.get_fdata())
    assert ours.sidecar["Threshold"] == pytest.approx(threshold)
    assert ours.sidecar["Alpha"] == inference.DEFAULT_ALPHA[method] and "two-sided" in ours.sidecar["Tail"]
    assert ours.sidecar["ClusterExtent"] == extent
    assert ours.img.get_fdata()[4, 4, 4] != 0  # the effect survives
    assert (ours.img.get_fdata()[mask.get_fdata() == 0] == 0).all()


def test_a_threshold_no_voxel_passes_is_null_not_infinity(z_and_mask, recwarn):
    """FDR over noise alone: nilearn's threshold is infinite, which JSON cannot hold (the sidecar
    said ``Infinity``, invalid JSON) and nilearn warned about its own value."""
    import json

    z, mask = z_and_mask
    noise = nib.Nifti1Image(np.random.default_rng(4).normal(size=SHAPE) * 0.1 * mask.get_fdata(), z.affine)
    ours = inference.threshold_map(noise, mask, InferenceSettings(method="fdr"))
    assert not ours.img.get_fdata().any()
    assert ours.sidecar["Threshold"] is None and "No voxel passes" in ours.sidecar["Description"]
    json.loads(json.dumps(ours.sidecar), parse_constant=lambda name: pytest.fail(f"{name} in the sidecar"))
    assert not [w for w in recwarn if "threshold=" in str(w.message)]
    bonferroni = inference.threshold_map(noise, mask, InferenceSettings(method="bonferroni"))
    assert bonferroni.sidecar["Threshold"] > np.abs(noise.get_fdata()).max() and "No voxel" in bonferroni.sidecar["Description"]
    assert not [w for w in recwarn if "threshold=" in str(w.message)]
    assert "Description" not in inference.threshold_map(z, mask, InferenceSettings(method="fdr")).sidecar
    assert "above every |z|" in bonferroni.sidecar["Description"]
    # voxels above the threshold, in clusters too small: said so (it said the threshold was above every |z|)
    clustered = inference.threshold_map(z, mask, InferenceSettings(method="fpr", cluster_extent=100_000))
    assert not clustered.img.get_fdata().any() and np.abs(z.get_fdata()).max() > clustered.sidecar["Threshold"]
    assert "lie in clusters of fewer than 100000 voxels (ClusterExtent)" in clustered.sidecar["Description"]


def test_cluster_inference_equals_nilearn(z_and_mask):
    from nilearn.glm import cluster_level_inference

    z, mask = z_and_mask
    ours = inference.cluster_map(z, mask, InferenceSettings(cluster_inference=True, cluster_threshold=3.0))
    expected = cluster_level_inference(z, mask_img=mask, threshold=3.0, alpha=0.05)
    np.testing.assert_array_equal(ours.img.get_fdata(), expected.get_fdata())
    assert ours.stat == "tdp" and ours.sidecar["Alpha"] == 0.05
    assert ours.img.get_fdata()[4, 4, 4] > 0


def test_permutation_test_equals_nilearn(z_and_mask):
    """Clusters are formed at |z| > 3 (both tails: a two-sided p of 2 sf(3), which nilearn halves;
    the app gave it sf(3), so clusters were formed at |z| > 3.29 while the sidecars said 3)."""
    from nilearn.glm.second_level import non_parametric_inference
    from scipy.stats import norm

    _, mask = z_and_mask
    rng = np.random.default_rng(5)
    effects = []
    for _ in range(6):
        data = rng.normal(size=SHAPE)
        data[3:7, 3:7, 3:6] += 3.0
        effects.append(nib.Nifti1Image(data, mask.affine))
    settings = InferenceSettings(n_perm=40, tfce=True)
    ours = {m.desc: m for m in inference.permutation_maps(effects, mask, settings)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = non_parametric_inference(
            effects, design_matrix=pd.DataFrame({"intercept": np.ones(6)}), second_level_contrast="intercept",
            mask=mask, n_perm=40, two_sided_test=True, random_state=0, threshold=2 * norm.sf(3.0), tfce=True)
    for desc, key in [("permmaxt", "logp_max_t"), ("permsize", "logp_max_size"), ("permmass", "logp_max_mass"),
                      ("permtfce", "logp_max_tfce")]:
        np.testing.assert_allclose(ours[desc].img.get_fdata(), expected[key].get_fdata())
        assert ours[desc].stat == "logp" and ours[desc].sidecar["Permutations"] == 40


def test_nothing_is_asked_by_default():
    assert not InferenceSettings().any
    assert inference.inference_maps({}, None, InferenceSettings()) == []


@pytest.mark.slow
def test_corrected_maps_are_written_at_subject_and_group_level(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    out = tmp_path / "out"
    common = [str(dataset.path), str(out)]
    assert main([*common, "participant", "--skip-bids-validation", "--no-reports", "--threshold", "fdr",
                 "--cluster-inference"]) == 0
    subject = sorted((out / "sub-01" / "func").glob("*_contrast-audio_stat-z_desc-fdr_statmap.nii.gz"))
    assert len(subject) == 1
    side = json.loads(subject[0].with_name(subject[0].name.replace(".nii.gz", ".json")).read_text())
    assert side["HeightControl"] == "fdr" and side["Alpha"] == 0.05 and "Threshold" in side
    assert side["Sources"][0].endswith("_contrast-audio_stat-z_statmap.nii.gz")
    assert list((out / "sub-01" / "func").glob("*_contrast-audio_stat-tdp_desc-cluster_statmap.nii.gz"))
    # the thresholded subject map is nilearn's threshold of the written z map
    from nilearn.glm import threshold_stats_img

    z = subject[0].with_name(subject[0].name.replace("_desc-fdr", ""))
    mask = next((out / "sub-01" / "func").glob("*_desc-fixedfx_mask.nii.gz"))
    expected, _ = threshold_stats_img(str(z), mask_img=str(mask), alpha=0.05, height_control="fdr", two_sided=True)
    np.testing.assert_allclose(nib.load(str(subject[0])).get_fdata(), expected.get_fdata(), rtol=1e-4, atol=1e-5)

    capsys.readouterr()
    assert main([*common, "group", "--no-reports", "--threshold", "bonferroni", "--n-perm", "30", "--tfce"]) == 0
    # three subjects have 8 sign flips: the 30 permutations asked for cannot resolve p below 1/8
    said = capsys.readouterr().err
    assert "3 subjects have only 8 distinct sign flips, fewer than the --n-perm 30" in said
    # the closing line counts the warnings above it (the group level's did not)
    warned = len([line for line in said.splitlines() if " WARNING: " in line])
    assert warned and f"({warned} warning(s) above)" in said.splitlines()[-1]
    group = out / "group"
    for name in ("stat-z_desc-bonferroni", "stat-logp_desc-permmaxt", "stat-logp_desc-permtfce"):
        assert list(group.glob(f"*_contrast-audio_{name}_statmap.nii.gz")), name
    # a threshold of the z map names it; the permutations' maps, the subject maps they permuted (the z map, once)
    sources = {name: json.loads(next(group.glob(f"*_contrast-audio_{name}_statmap.json")).read_text())["Sources"]
               for name in ("stat-z_desc-bonferroni", "stat-logp_desc-permmaxt", "stat-t")}
    assert len(sources["stat-z_desc-bonferroni"]) == 1 and sources["stat-z_desc-bonferroni"][0].endswith(
        "_contrast-audio_stat-z_statmap.nii.gz")
    assert sources["stat-logp_desc-permmaxt"] == sources["stat-t"] and len(sources["stat-t"]) >= 3
    # fixed effects over subjects: other names, the random-effects maps stay
    assert main([*common, "group", "--no-reports", "--group-model", "fixed", "--threshold", "fdr"]) == 0
    assert list(group.glob("*_contrast-audio_stat-z_desc-fixedfx_statmap.nii.gz"))
    assert list(group.glob("*_contrast-audio_stat-z_desc-fixedfxFdr_statmap.nii.gz"))
    assert list(group.glob("*_contrast-audio_stat-z_statmap.nii.gz"))
    assert list(group.glob("*_contrast-audio_stat-logp_desc-permmaxt_statmap.nii.gz"))
    # too few permutations to reach p < 0.05: said, once per contrast; nilearn's note on its n_jobs is not shown
    capsys.readouterr()
    assert main([*common, "group", "--no-reports", "--n-perm", "3"]) == 0
    said = capsys.readouterr().err
    assert said.count("3 permutations cannot give a corrected p value below 1/4, so no voxel can reach p < 0.05 "
                      "(the alpha); ask for at least 20") == 2
    assert main([*common, "group", "--no-reports", "--n-perm", "7", "--alpha", "0.2"]) == 0  # 1/8 < 0.2: can
    assert "permutations cannot give" not in capsys.readouterr().err
    assert main([*common, "group", "--no-reports", "--n-perm", "7", "--alpha", "0.1"]) == 0  # 1/8 > 0.1: cannot
    assert "no voxel can reach p < 0.1 (the alpha); ask for at least 10" in capsys.readouterr().err
    assert "UserWarning" not in said and "number of jobs" not in said
    p = json.loads(next(group.glob("*_contrast-audio_stat-p_statmap.json")).read_text())
    assert p["ValueOutsideMask"] == 1 and "one-sided" in p["Tail"]
    p_map = nib.load(str(next(group.glob("*_contrast-audio_stat-p_statmap.nii.gz"))))
    group_mask = nib.load(str(next(group.glob("*_desc-group_mask.nii.gz")))).get_fdata() > 0
    assert p_map.get_data_dtype() == np.float32
    assert (p_map.get_fdata()[~group_mask] == 1).all()


@pytest.mark.slow
def test_a_group_f_test_with_corrected_inference_asked_says_it_has_none(fresh_dataset, tmp_path, capsys):
    """Corrected inference applies to t contrasts: a dataset node's F test got none, in silence."""
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    nodes = [
        {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"], "Model": {"Type": "glm", "X": ["audio", 1]},
         "DummyContrasts": {"Test": "t"}},
        {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"], "Model": {"Type": "meta", "X": [1]},
         "DummyContrasts": {"Test": "t"}},
        {"Level": "Dataset", "Name": "dataset", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": [1]},
         "Contrasts": [{"Name": "anyEffect", "ConditionList": [1], "Weights": [[1]], "Test": "F"},
                       {"Name": "mean", "ConditionList": [1], "Weights": [1], "Test": "t"}]},
    ]
    model = tmp_path / "model-f_smdl.json"
    model.write_text(json.dumps({"Name": "f", "BIDSModelVersion": "1.0.0", "Nodes": nodes}))
    out = tmp_path / "out"
    common = [str(dataset.path), str(out), "--no-reports", "-m", str(model)]
    assert main([*common[:2], "participant", "--skip-bids-validation", *common[2:]]) == 0
    capsys.readouterr()
    assert main([*common[:2], "group", *common[2:], "--threshold", "fpr"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "contrast-audioAnyEffect is an F test: the corrected inference asked for (--threshold fpr)" in said, said
    assert list(out.glob("group/*contrast-audioMean_stat-z_desc-fpr_statmap.nii.gz"))
    assert not list(out.glob("group/*contrast-audioAnyEffect_*desc-fpr*"))
