"""Sidecars are typed records: written with to_json, read back with from_json, never guessed."""

from __future__ import annotations

import json

import pytest

from bids_fixedfx.errors import InputFileError
from bids_fixedfx.settings import ModelSettings
from bids_fixedfx.sidecars import (
    ContrastInfo,
    DesignSidecar,
    FitSidecar,
    FirstLevelModelInfo,
    StatmapSidecar,
    read_json,
)


def test_drift_keys_follow_the_drift_model():
    assert FirstLevelModelInfo.from_settings(ModelSettings()).high_pass == 0.01
    polynomial = FirstLevelModelInfo.from_settings(ModelSettings(drift_model="polynomial", smoothing_fwhm=None))
    assert polynomial.high_pass is None and polynomial.smoothing_fwhm == 0.0


@pytest.mark.parametrize(
    "sidecar",
    [
        StatmapSidecar(("bids::a",), ContrastInfo("a - b", {"a": 1.0, "b": -1.0}), 80.0,
                       FirstLevelModelInfo.from_settings(ModelSettings()), statistic="z"),
        StatmapSidecar(("bids::a",), ContrastInfo("a", {"a": 1.0}), 160.0,
                       FirstLevelModelInfo.from_settings(ModelSettings(noise_model="ols")),
                       combination={"PrecisionWeighted": False, "NumberOfRuns": 2}, statistic="t"),
        StatmapSidecar(("bids::a",), ContrastInfo("a", {"a": 1.0}), 2.0,
                       FirstLevelModelInfo.from_settings(ModelSettings()),
                       combination={"NumberOfRuns": 3}, estimator="glm", statistic="t"),
        StatmapSidecar(("bids::a", "bids::b"), ContrastInfo("a", {"intercept": 1.0}), 2.0, None,
                       group={"GroupModel": "one-sample t-test", "NumberOfSubjects": 3, "Subjects": ["1", "2", "3"]}),
    ],
)
def test_statmap_sidecars_round_trip(tmp_path, sidecar):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(sidecar.to_json()))
    assert StatmapSidecar.read(path) == sidecar
    assert sidecar.level in ("run", "subject", "group")


def test_keys_in_the_spec_order():
    sidecar = StatmapSidecar(("s",), ContrastInfo("a", {"a": 1.0}), 10.0,
                             FirstLevelModelInfo.from_settings(ModelSettings()),
                             combination={"PrecisionWeighted": False, "NumberOfRuns": 1}, statistic="p")
    assert list(sidecar.to_json()) == ["Sources", "Contrast", "DegreesOfFreedom", "SmoothingFWHM", "NoiseModel",
                                       "HRFModel", "DriftModel", "HighPass", "ConfoundsOption", "DummyScansOption",
                                       "NonSteadyState", "FixedEffects", "Statistic"]


def test_the_combination_key_says_how_the_node_combined_its_inputs():
    """Fixed effects (meta) or a one-sample t-test across the inputs (glm): never FixedEffects for the latter."""
    info = FirstLevelModelInfo.from_settings(ModelSettings())
    meta = StatmapSidecar(("s",), ContrastInfo("a", {"a": 1.0}), 10.0, info,
                          combination={"PrecisionWeighted": True, "NumberOfRuns": 2})
    glm = StatmapSidecar(("s",), ContrastInfo("a", {"a": 1.0}), 1.0, info, combination={"NumberOfRuns": 2},
                         estimator="glm")
    assert meta.to_json()["FixedEffects"] == {"PrecisionWeighted": True, "NumberOfRuns": 2}
    assert "FixedEffects" not in glm.to_json() and glm.to_json()["RandomEffects"] == {"NumberOfRuns": 2}
    assert (meta.level, glm.level) == ("subject", "subject")
    assert (meta.precision_weighted, glm.precision_weighted) == (True, None)


def test_an_unreadable_sidecar_is_an_error_naming_it(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(InputFileError, match="broken.json"):
        StatmapSidecar.read(path)
    path.write_text(json.dumps({"Sources": [], "DegreesOfFreedom": 3}))
    with pytest.raises(InputFileError, match="broken.json has no"):
        StatmapSidecar.read(path)
    with pytest.raises(InputFileError, match="missing.json"):
        read_json(tmp_path / "missing.json")


@pytest.mark.parametrize(("change", "said"), [
    ({"Contrast": {"Name": "a", "Weights": "x"}}, "Contrast.Weights that are not"),
    ({"Contrast": {"Name": "a", "Weights": 5}}, "Contrast.Weights that are not"),
    ({"Contrast": {"Name": "a", "Weights": [1, 2]}}, "Contrast.Weights that are not"),
    ({"Contrast": {"Name": "a", "Test": "F", "Weights": [{"a": "1"}]}}, "Contrast.Weights that are not"),
    ({"FixedEffects": "x"}, "FixedEffects \"x\", not an object"),
])
def test_a_tampered_sidecar_is_an_error_naming_it(tmp_path, change, said):
    """Each was exit 1 at the group level ('dictionary update sequence element ...')."""
    sidecar = StatmapSidecar(("bids::a",), ContrastInfo("a", {"a": 1.0}), 160.0,
                             FirstLevelModelInfo.from_settings(ModelSettings()),
                             combination={"PrecisionWeighted": False, "NumberOfRuns": 2}, statistic="t")
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps({**sidecar.to_json(), **change}))
    with pytest.raises(InputFileError, match=f"tampered.json has {said}"):
        StatmapSidecar.read(path)


def test_design_sidecar_round_trip(tmp_path):
    sidecar = DesignSidecar(2.0, 0.0, 60, ("a", "constant"), ("a",), (), False, ("trans_x",), 0, "glover",
                            "cosine", 0.01, None, "../bids/sub-01_bold.nii.gz", None, True, ())
    path = tmp_path / "d.json"
    path.write_text(json.dumps(sidecar.to_json()))
    assert DesignSidecar.read(path) == sidecar


@pytest.mark.parametrize("noise_model, says, not_said", [("ar1", "pseudo-R2", "plain R2"),
                                                          ("ols", "plain R2", "whitened")])
def test_the_r_square_description_follows_the_noise_model(noise_model, says, not_said):
    info = FirstLevelModelInfo.from_settings(ModelSettings(noise_model=noise_model))
    data = FitSidecar(("bids:raw:sub-01/func/x_bold.nii.gz",), 180.0, info).to_json()
    assert data["NoiseModel"] == noise_model
    assert says in data["Description"] and not_said not in data["Description"]
