"""Corrected inference in a model file (``Model.Software["bids-fixedfx"]``): read into the
settings the options make, written into the default model, equal maps either way."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bids_fixedfx.cli import main
from bids_fixedfx.inference import InferenceSettings
from bids_fixedfx.model.bsm import ModelError, Node
from bids_fixedfx.model.inference import inference_software, stated_inference
from tools import fails

QUICK = ["--skip-bids-validation", "--no-reports", "--nprocs", "1"]


def node(section, level="subject", model_type="meta"):
    return Node(name=level, level=level, group_by=(), x=(1,), model_type=model_type,
                software={"nilearn": {"precision_weighted": False}, "bids-fixedfx": section})


def test_a_node_states_the_settings_the_options_make():
    stated = stated_inference(node({"Threshold": "fdr", "Alpha": 0.01, "ClusterExtent": 10,
                                     "ClusterInference": True, "ClusterThreshold": 3.1}))
    assert stated == InferenceSettings(method="fdr", alpha=0.01, cluster_extent=10, cluster_inference=True,
                                       cluster_threshold=3.1)
    group = stated_inference(node({"NPerm": 1000, "TFCE": True}, "dataset", "glm"))
    assert group == InferenceSettings(n_perm=1000, tfce=True)
    assert stated_inference(Node(name="s", level="subject", group_by=(), x=(1,))) is None
    assert stated_inference(node({})) == InferenceSettings()


@pytest.mark.parametrize("settings, level", [
    (InferenceSettings(method="bonferroni", alpha=0.01, cluster_extent=5), "subject"),
    (InferenceSettings(cluster_inference=True, cluster_threshold=2.5), "subject"),
    (InferenceSettings(method="fpr", n_perm=500, tfce=True), "dataset"),
])
def test_what_is_written_reads_back_the_same(settings, level):
    written = inference_software(settings, level)
    assert stated_inference(node(written["bids-fixedfx"], level, "glm")) == settings


def test_nothing_is_written_when_nothing_is_asked():
    assert inference_software(InferenceSettings(), "subject") == {}
    assert inference_software(InferenceSettings(n_perm=100), "subject") == {}  # the group level's only


@pytest.mark.parametrize("section, level, model_type, named", [
    ({"Threshold": "fwe"}, "subject", "meta", "'fwe'"),
    ({"Treshold": "fdr"}, "subject", "meta", "'Treshold'"),
    ({"Alpha": 5}, "subject", "meta", "Alpha 5"),
    ({"ClusterExtent": 2.5}, "subject", "meta", "ClusterExtent"),
    ({"ClusterInference": "yes"}, "subject", "meta", "ClusterInference"),
    ({"NPerm": 100}, "subject", "meta", "dataset node"),
    ({"ClusterExtent": 10}, "subject", "meta", "without 'Threshold'"),
    ({"TFCE": True}, "dataset", "glm", "without 'NPerm'"),
    # given alone they change nothing (were accepted, exit 0)
    ({"Alpha": 0.01}, "subject", "meta", "'Alpha' without 'Threshold' or 'ClusterInference' or 'NPerm'"),
    ({"ClusterThreshold": 2.5}, "dataset", "glm", "'ClusterThreshold' without 'ClusterInference' or 'NPerm'"),
    ({"NPerm": 100}, "dataset", "meta", "fixed effects"),
    ({"NPerm": 1000000000}, "dataset", "glm", "at most 100,000 permutations"),  # ran for hours
    ("fdr", "subject", "meta", "must be an object"),
])
def test_a_bad_section_is_one_sentence_naming_the_node(section, level, model_type, named):
    with pytest.raises(ModelError, match="bids-fixedfx of node") as error:
        stated_inference(node(section, level, model_type))
    assert named in str(error.value)


def maps(folder, pattern):
    return {p.relative_to(folder): nib.load(str(p)).get_fdata() for p in sorted(folder.rglob(pattern))}


@pytest.mark.slow
def test_a_model_stating_the_settings_gives_the_maps_of_the_options(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    options = ["--threshold", "fdr", "--cluster-extent", "2", "--cluster-inference", "--alpha", "0.05"]
    by_options = tmp_path / "options"
    assert main([str(dataset.path), str(by_options), "participant", *QUICK, *options]) == 0
    written = by_options / "models" / "model-default_smdl.json"
    subject_node = json.loads(written.read_text())["Nodes"][1]
    assert subject_node["Model"]["Software"]["bids-fixedfx"] == {
        "Threshold": "fdr", "Alpha": 0.05, "ClusterExtent": 2, "ClusterInference": True}
    # the written model alone gives the same corrected maps
    by_model = tmp_path / "model"
    assert main([str(dataset.path), str(by_model), "participant", *QUICK, "-m", str(written)]) == 0
    expected = maps(by_options, "sub-*/func/*_desc-*_statmap.nii.gz")
    assert len(expected) == 3 * 2 * 2  # subjects, contrasts, fdr and cluster maps
    assert any(np.count_nonzero(data) for name, data in expected.items() if "desc-fdr" in str(name))
    ours = maps(by_model, "sub-*/func/*_desc-*_statmap.nii.gz")
    assert ours.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(ours[name], expected[name], err_msg=str(name))
    # the model and an inference option together: one or the other
    fails(capsys, [dataset.path, tmp_path / "both", "participant", *QUICK, "-m", written, "--threshold", "fpr"],
          64, "--threshold", "--model", "'subject'")

    # the group level: the dataset node's permutation test and threshold equal the options'
    document = json.loads(written.read_text())
    document["Nodes"][2]["Model"]["Software"] = {"bids-fixedfx": {"Threshold": "bonferroni", "NPerm": 20}}
    group_model = tmp_path / "model-groupInference_smdl.json"
    group_model.write_text(json.dumps(document))
    assert main([str(dataset.path), str(by_options), "group", "--no-reports", "--threshold", "bonferroni",
                 "--n-perm", "20"]) == 0
    assert main([str(dataset.path), str(by_model), "group", "--no-reports", "-m", str(group_model)]) == 0
    expected = maps(by_options / "group", "*_desc-*_statmap.nii.gz")
    assert {str(n).split("_desc-")[1] for n in expected} >= {"bonferroni_statmap.nii.gz", "permmaxt_statmap.nii.gz"}
    ours = maps(by_model / "group", "*_desc-*_statmap.nii.gz")
    assert ours.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(ours[name], expected[name], err_msg=str(name))
    # fixed effects over the subjects: their model's copy (the group level's own) states the options too
    # (it stated none): -m of it remakes the corrected maps
    assert main([str(dataset.path), str(by_options), "group", "--no-reports", "--group-model", "fixed",
                 "--threshold", "bonferroni"]) == 0
    fixed = by_options / "models" / "model-defaultFixedfx_smdl.json"
    assert json.loads(fixed.read_text())["Nodes"][2]["Model"]["Software"]["bids-fixedfx"] == {"Threshold": "bonferroni"}
    assert "Software" not in json.loads(written.read_text())["Nodes"][2]["Model"]  # the participant level's copy
    expected = maps(by_options / "group", "*_desc-fixedfxBonferroni_statmap.nii.gz")
    assert expected
    assert main([str(dataset.path), str(by_model), "group", "--no-reports", "-m", str(fixed)]) == 0
    ours = maps(by_model / "group", "*_desc-fixedfxBonferroni_statmap.nii.gz")
    assert ours.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(ours[name], expected[name], err_msg=str(name))
