"""Run designs from run nodes equal nilearn's; contrasts over them; names passed to later nodes."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import make_first_level_design_matrix

from bids_fixedfx.model import INTERCEPT, ModelError, parse_model
from bids_fixedfx.model.contrasts import (
    check_conditions, check_group_by, contrast_matrices, output_name,
)
from bids_fixedfx.model.defaults import MOTION, default_model
from bids_fixedfx.model.design import build_run_design, drift_settings

N_VOLUMES, TR = 60, 2.0
pytestmark = pytest.mark.filterwarnings("ignore:The following:UserWarning")  # nilearn, on reference designs


def random_run(seed=0, n_events=20):
    rng = np.random.default_rng(seed)
    events = pd.DataFrame({
        "onset": np.sort(rng.uniform(-5, N_VOLUMES * TR - 10, n_events)),
        "duration": rng.choice([0.0, 0.5, 1.0, 3.2], n_events),
        "trial_type": rng.choice(["face", "house", "scrambled face"], n_events),
        "modulation": rng.uniform(0.5, 2, n_events),
        "response_time": rng.uniform(0.2, 1.5, n_events),
    })
    confounds = pd.DataFrame(rng.normal(size=(N_VOLUMES, 8)),
                             columns=list(MOTION) + ["non_steady_state_outlier00", "csf"])
    return events, confounds


def frame_times(start_time=0.0):
    return np.linspace(start_time, (N_VOLUMES - 1) * TR + start_time, N_VOLUMES)


def nilearn_design(events, confounds, start_time=0.0, **options):
    return make_first_level_design_matrix(frame_times(start_time), events, add_regs=confounds.to_numpy(),
                                          add_reg_names=list(confounds.columns), **options)


def assert_same(design, expected):
    assert list(design.columns) == list(expected.columns)
    np.testing.assert_allclose(design.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(design.index.to_numpy(), expected.index.to_numpy())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("options", "model_options"), [
    ({}, {}),
    ({"hrf_model": "spm"}, {"hrf_model": "spm"}),
    ({"hrf_model": "glover + derivative"}, {"hrf_model": "glover + derivative"}),
    ({"hrf_model": "spm + derivative + dispersion"}, {"hrf_model": "spm + derivative + dispersion"}),
    ({"hrf_model": "fir", "fir_delays": [0, 1, 3]}, {"hrf_model": "fir", "fir_delays": [0, 1, 3]}),
    ({"high_pass": 0.02}, {"high_pass": 0.02}),
    ({"drift_model": "polynomial", "drift_order": 3}, {"drift_model": "polynomial", "drift_order": 3}),
    ({"drift_model": None}, {"drift_model": "none"}),
])
def test_default_model_design_equals_nilearn(seed, options, model_options):
    events, confounds = random_run(seed)
    plain = events.drop(columns=["modulation"])
    model = default_model(plain["trial_type"].unique(), **model_options)
    design = build_run_design(model.nodes[0], plain, confounds[list(MOTION)], tr=TR, n_volumes=N_VOLUMES,
                              start_time=0.7)
    assert_same(design.matrix, nilearn_design(plain, confounds[list(MOTION)], start_time=0.7, **options))
    assert set(design.conditions) | set(design.confounds) | set(design.drift) == set(design.matrix.columns)


def test_modulation_and_wildcard_confounds_equal_nilearn():
    events, confounds = random_run(3)
    model = default_model(events["trial_type"].unique(), modulation=True,
                          confounds=["trans_?", "rot_*", "*outlier*"])
    design = build_run_design(model.nodes[0], events, confounds, tr=TR, n_volumes=N_VOLUMES)
    columns = list(MOTION) + ["non_steady_state_outlier00"]
    assert_same(design.matrix, nilearn_design(events.drop(columns=["response_time"]), confounds[columns]))
    assert design.confounds == tuple(columns) + ("constant",)


def run_model(x, hrf=None, transformations=(), contrasts=(), dummy=None, options=None, software=None):
    node = {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"], "Model": {"Type": "glm", "X": x}}
    if software:
        node["Model"]["Software"] = software
    if hrf:
        node["Model"]["HRF"] = hrf
    if options:
        node["Model"]["Options"] = options
    if transformations:
        node["Transformations"] = {"Transformer": "pybids-transforms-v1", "Instructions": list(transformations)}
    if contrasts:
        node["Contrasts"] = list(contrasts)
    if dummy:
        node["DummyContrasts"] = dummy
    return parse_model({"Name": "m", "BIDSModelVersion": "1.0.0", "Nodes": [node]}).nodes[0]


def test_implicit_trial_type_levels_and_bare_condition_names():
    events, confounds = random_run(4)
    events = events.drop(columns=["modulation"])
    expected = nilearn_design(events, confounds[["csf"]], hrf_model="spm", high_pass=0.008)
    dotted = run_model(["trial_type.face", "trial_type.house", "trial_type.scrambled face", "csf", 1],
                       hrf={"Variables": ["trial_type.face", "trial_type.house", "trial_type.scrambled face"],
                            "Model": "spm"}, options={"HighPassFilterCutoffHz": 0.008})
    design = build_run_design(dotted, events, confounds, tr=TR, n_volumes=N_VOLUMES).matrix
    np.testing.assert_allclose(design.to_numpy(), expected.to_numpy(), atol=1e-10)
    assert list(design.columns[:3]) == ["trial_type.face", "trial_type.house", "trial_type.scrambled face"]
    bare = run_model(["face", "house", "scrambled face", "csf", "1"],
                     hrf={"Variables": ["face", "house", "scrambled face"], "Model": "spm"},
                     options={"HighPassFilterCutoffHz": 0.008})
    assert_same(build_run_design(bare, events, confounds, tr=TR, n_volumes=N_VOLUMES).matrix, expected)


def test_parametric_modulator_by_transformations():
    events, confounds = random_run(5)
    node = run_model(
        ["trial_type.face", "rt_face", 1],
        transformations=[{"Name": "Factor", "Input": ["trial_type"]},
                         {"Name": "Product", "Input": ["trial_type.face", "response_time"], "Output": "rt_face"},
                         {"Name": "Demean", "Input": ["rt_face"]}],
        hrf={"Variables": ["trial_type.face", "rt_face"], "Model": "glover"})
    design = build_run_design(node, events, None, tr=TR, n_volumes=N_VOLUMES)
    rt = events["response_time"].where(events["trial_type"] == "face", 0)
    expected = make_first_level_design_matrix(
        frame_times(), pd.concat([
            events.assign(trial_type="trial_type.face", modulation=(events["trial_type"] == "face").astype(float)),
            events.assign(trial_type="rt_face", modulation=rt - rt.mean())]), drift_model=None)
    assert_same(design.matrix, expected[["trial_type.face", "rt_face", "constant"]])
    assert design.conditions == ("trial_type.face", "rt_face") and design.drift == ("constant",)


def test_unconvolved_events_are_nilearns_boxcar():
    events, _ = random_run(6)
    node = run_model(["response_time"])
    design = build_run_design(node, events, None, tr=TR, n_volumes=N_VOLUMES)
    expected = make_first_level_design_matrix(
        frame_times(), events.assign(trial_type="response_time", modulation=events["response_time"]),
        hrf_model=None, drift_model=None)
    assert_same(design.matrix, expected)


def test_first_confound_value_is_filled_as_load_confounds():
    events, confounds = random_run(7)
    confounds.loc[0, "csf"] = np.nan
    design = build_run_design(run_model(["csf"]), events, confounds, tr=TR, n_volumes=N_VOLUMES)
    assert design.matrix["csf"].iloc[0] == confounds["csf"].iloc[1] and "first value of csf" in design.notes[0]
    confounds.loc[5, "csf"] = np.nan
    with pytest.raises(ModelError, match="'csf' has n/a values past the first row"):
        build_run_design(run_model(["csf"]), events, confounds, tr=TR, n_volumes=N_VOLUMES)


def test_a_design_of_dependent_columns_names_them():
    """A model's X naming a confound and its copy: nilearn's warning names no column."""
    events, confounds = random_run(8)
    confounds["csf_again"] = 2 * confounds["csf"]
    design = build_run_design(run_model(["csf", "csf_again", "trans_x"]), events, confounds, tr=TR,
                              n_volumes=N_VOLUMES, run_name="sub-01_task-x_run-1")
    assert [n for n in design.notes if "linearly dependent" in n] == [
        n for n in design.notes if n.startswith("sub-01_task-x_run-1: the design's columns csf, csf_again are")]
    assert len(design.notes) == 1 and "Matrix is singular" not in design.notes[0]


@pytest.mark.parametrize(("x", "message"), [
    (["kind.cat"], "Model.X names 'kind.cat', which is not a variable"),
    (["nothing"], "Model.X names 'nothing'"),
    (["constant"], "not a variable"),
])
def test_design_errors_name_the_variable(x, message):
    events, confounds = random_run(8)
    with pytest.raises(ModelError, match=message) as caught:
        build_run_design(run_model(x), events, confounds, tr=TR, n_volumes=N_VOLUMES, run_name="sub-01_run-1")
    assert "sub-01_run-1" in str(caught.value) and caught.value.exit_code == 64


def test_a_category_alone_in_x_is_one_column_per_level():
    """X ["trial_type"] models each condition, as nilearn's design of the events does; a dummy
    contrast of the category is one contrast per level."""
    events, confounds = random_run(4)
    events.loc[3, "trial_type"] = np.nan  # an event of no condition: in no column
    node = run_model(["trial_type", *MOTION], hrf={"Variables": ["trial_type"], "Model": "glover"},
                     dummy={"Contrasts": ["trial_type"], "Test": "t"})
    design = build_run_design(node, events, confounds, tr=TR, n_volumes=N_VOLUMES)
    named = events.dropna().assign(trial_type=lambda e: "trial_type." + e["trial_type"])
    expected = nilearn_design(named[["onset", "duration", "trial_type"]], confounds[list(MOTION)], drift_model=None)
    assert_same(design.matrix, expected)
    assert any("holds categories, modelled as one column per level (face, house, scrambled face)" in n
               for n in design.notes)
    contrasts, _ = contrast_matrices(node, design.matrix.columns, x_columns=design.x_columns)
    assert [c.name for c in contrasts] == ["trial_type.face", "trial_type.house", "trial_type.scrambled face"]
    assert all(c.vector[list(design.matrix.columns).index(c.name)] == 1 and c.vector.sum() == 1 for c in contrasts)


def test_dummy_contrasts_with_wildcards_are_one_per_matching_column():
    events, confounds = random_run(6)
    node = run_model(["trial_type.*", "csf"], hrf={"Variables": ["trial_type.*"], "Model": "glover"},
                     dummy={"Contrasts": ["trial_type.*s*", "csf"], "Test": "t"})
    design = build_run_design(node, events, confounds, tr=TR, n_volumes=N_VOLUMES)
    contrasts, notes = contrast_matrices(node, design.matrix.columns, x_columns=design.x_columns)
    assert [c.name for c in contrasts] == ["trial_type.house", "trial_type.scrambled face", "csf"] and not notes


def test_a_contrast_named_as_a_dummy_contrast_must_have_its_weights():
    """Was silent: contrast-trialTypeAudio held the visual effect, replacing the dummy contrast."""
    columns = ["trial_type.audio", "trial_type.visual", "intercept"]
    dummy = {"Contrasts": ["trial_type.audio", "trial_type.visual"], "Test": "t"}
    same = {"Name": "trial_type.audio", "ConditionList": ["trial_type.audio"], "Weights": [1], "Test": "t"}
    contrasts, _ = contrast_matrices(run_model(columns, dummy=dummy, contrasts=[same]), columns)
    assert [c.name for c in contrasts] == ["trial_type.audio", "trial_type.visual"]
    other = {**same, "ConditionList": ["trial_type.visual"]}
    with pytest.raises(ModelError, match="contrast 'trial_type.audio' has the name of one of its DummyContrasts"):
        contrast_matrices(run_model(columns, dummy=dummy, contrasts=[other]), columns)


def test_an_absent_level_holding_dots_is_left_out_as_the_others():
    """A trial type 2.5 that a run lacks: the transformation refused 'trial_type.2.5' (no
    variable), taking it for the level 5 of a column trial_type.2."""
    events, confounds = random_run(3)
    events = events.assign(trial_type=events["trial_type"].map({"face": "1.5"}).fillna("0.5"))
    node = run_model(["1.5", "2.5", *MOTION], hrf={"Variables": ["1.5", "2.5"], "Model": "glover"},
                     transformations=[{"Name": "Factor", "Input": ["trial_type"]},
                                      {"Name": "Rename", "Input": ["trial_type.1.5", "trial_type.2.5"],
                                       "Output": ["1.5", "2.5"]}])
    design = build_run_design(node, events, confounds, tr=TR, n_volumes=N_VOLUMES, run_name="sub-01_run-1")
    assert "sub-01_run-1: no event has '2.5', which is left out of this run's design" in design.notes
    assert "1.5" in design.matrix.columns and "2.5" not in design.matrix.columns


def test_a_condition_absent_from_a_run_is_left_out_with_a_note():
    """pybids and bidspm leave a level that a run lacks out of that run's design (and the
    contrasts that name it); the other columns equal nilearn's design of the run."""
    events, confounds = random_run(3)
    node = run_model(["trial_type.face", "trial_type.cat", *MOTION],
                     hrf={"Variables": ["trial_type.face", "trial_type.cat"], "Model": "glover"}, contrasts=[
        {"Name": "face", "ConditionList": ["trial_type.face"], "Weights": [1], "Test": "t"},
        {"Name": "cat", "ConditionList": ["trial_type.cat"], "Weights": [1], "Test": "t"}])
    design = build_run_design(node, events, confounds, tr=TR, n_volumes=N_VOLUMES, run_name="sub-01_run-1")
    assert "sub-01_run-1: no event has 'trial_type.cat', which is left out of this run's design" in design.notes
    faces = events[events["trial_type"] == "face"].assign(trial_type="trial_type.face")
    expected = nilearn_design(faces[["onset", "duration", "trial_type"]], confounds[list(MOTION)], drift_model=None)
    assert_same(design.matrix, expected)
    contrasts, notes = contrast_matrices(node, design.matrix.columns, x_columns=design.x_columns)
    assert [c.name for c in contrasts] == ["face"] and "'cat' left out" in notes[0]


def test_convolve_derivatives_that_x_does_not_name_are_said():
    """Was silent: Derivative true made columns that the design left out (as pybids leaves them out)."""
    events, confounds = random_run(5)
    convolve = {"Name": "Convolve", "Input": ["trial_type.face"], "Model": "spm", "Derivative": True}
    factor = {"Name": "Factor", "Input": ["trial_type"]}
    design = build_run_design(run_model(["trial_type.face", 1], transformations=[factor, convolve]), events, confounds,
                              tr=TR, n_volumes=N_VOLUMES)
    assert "trial_type.face_derivative" not in design.matrix.columns
    assert any("Convolve made 'trial_type.face_derivative', which Model.X does not name" in n for n in design.notes)
    named = build_run_design(run_model(["trial_type.face", "trial_type.face_derivative", 1],
                                       transformations=[factor, convolve]), events, confounds, tr=TR, n_volumes=N_VOLUMES)
    assert "trial_type.face_derivative" in named.matrix.columns and not [n for n in named.notes if "Convolve" in n]


def test_a_wildcard_of_model_x_that_matches_nothing_is_said():
    """X: ["motion_*"] with no such confound was dropped without a word."""
    events, confounds = random_run(5)
    factor = {"Name": "Factor", "Input": ["trial_type"]}
    design = build_run_design(run_model(["trial_type.face", "motion_*", "trans_?", 1], transformations=[factor]),
                              events, confounds, tr=TR, n_volumes=N_VOLUMES, run_name="sub-01_task-x_run-1")
    said = [n for n in design.notes if "matches no variable" in n]
    assert said == ["sub-01_task-x_run-1: Model.X 'motion_*' matches no variable of this run (no event or confound "
                    "column of that name), so the design has no column of it; check the pattern if it should"]
    assert "trans_x" in design.matrix.columns


def test_events_a_fir_convolve_splits_are_not_modelled_unconvolved():
    """Convolve with the FIR model made trial_type.face_delay_0/1 and X naming trial_type.face
    modelled its boxcar, without a word; naming the delays gives nilearn's FIR design."""
    events, confounds = random_run(5)
    factor = {"Name": "Factor", "Input": ["trial_type"]}
    convolve = {"Name": "Convolve", "Input": ["trial_type.face"], "Model": "fir", "FirDelays": [0, 1]}
    with pytest.raises(ModelError, match="Model.X names 'trial_type.face', which its Convolve with the FIR model "
                                         "splits into trial_type.face_delay_0, trial_type.face_delay_1: name those"):
        build_run_design(run_model(["trial_type.face", 1], transformations=[factor, convolve]), events, confounds,
                         tr=TR, n_volumes=N_VOLUMES)
    delays = ["trial_type.face_delay_0", "trial_type.face_delay_1"]
    design = build_run_design(run_model([*delays, 1], transformations=[factor, convolve]), events, confounds,
                              tr=TR, n_volumes=N_VOLUMES)
    faces = events[events["trial_type"] == "face"].assign(trial_type="trial_type.face")
    expected = make_first_level_design_matrix(frame_times(0.0), faces[["onset", "duration", "trial_type"]],
                                              hrf_model="fir", fir_delays=[0, 1], drift_model=None)
    np.testing.assert_allclose(design.matrix[delays].to_numpy(), expected[delays].to_numpy(), atol=1e-10)


@pytest.mark.parametrize("hrf_variables", [["trial_type.face"], ["trial_type.*"]])
def test_a_variable_is_not_convolved_twice(hrf_variables):
    """Convolve, then Model.HRF naming the same variable: it was convolved again, silently
    (its regressor peaked 8 s late, correlation with nilearn's -0.1)."""
    events, confounds = random_run(5)
    node = run_model(["trial_type.face", 1], transformations=[
        {"Name": "Factor", "Input": ["trial_type"]}, {"Name": "Convolve", "Input": ["trial_type.face"], "Model": "spm"}],
        hrf={"Variables": hrf_variables, "Model": "spm"})
    with pytest.raises(ModelError, match="'trial_type.face' would be convolved twice") as caught:
        build_run_design(node, events, confounds, tr=TR, n_volumes=N_VOLUMES)
    assert caught.value.exit_code == 64


def test_model_hrf_derivatives_named_in_x_are_not_said_missing():
    """``Model.HRF`` "spm + derivative" with ``trial_type.face_derivative`` in X: the design held it,
    and a warning said no event had it and it was left out."""
    events, confounds = random_run(5)
    node = run_model(["trial_type.face", "trial_type.house", "trial_type.face_derivative", 1],
                     transformations=[{"Name": "Factor", "Input": ["trial_type"]}],
                     hrf={"Variables": ["trial_type.face", "trial_type.house"], "Model": "spm + derivative"})
    design = build_run_design(node, events, confounds, tr=TR, n_volumes=N_VOLUMES)
    assert "trial_type.face_derivative" in design.matrix.columns
    assert not [n for n in design.notes if "no event has" in n]
    # without Model.HRF the name is no variable: an error, not a silent drop
    plain = run_model(["trial_type.face", "trial_type.face_derivative", 1],
                      transformations=[{"Name": "Factor", "Input": ["trial_type"]}])
    with pytest.raises(ModelError, match="names 'trial_type.face_derivative', which is not a variable"):
        build_run_design(plain, events, confounds, tr=TR, n_volumes=N_VOLUMES)


def test_events_combined_with_a_time_series_at_its_times_say_the_events_missed():
    """A Product of events and a confounds column (a PPI term) samples the events at the
    volumes: events between two volumes were dropped in silence."""
    events = pd.DataFrame({"onset": [10.5, 20.0, 31.0, 40.5], "duration": [0.5] * 4, "trial_type": ["face"] * 4})
    _, confounds = random_run(1)
    product = {"Name": "Product", "Input": ["trial_type.face", "csf"], "Output": "ppi"}
    factor = {"Name": "Factor", "Input": ["trial_type"]}
    design = build_run_design(run_model(["ppi", 1], transformations=[factor, product]), events, confounds,
                              tr=TR, n_volumes=N_VOLUMES, run_name="sub-01_run-1")
    said = [n for n in design.notes if "are missed" in n]
    assert len(said) == 1 and "3 of its 4 events" in said[0] and "set Dense to true" in said[0], design.notes
    dense = build_run_design(run_model(["ppi", 1], transformations=[factor, {**product, "Dense": True}]), events,
                             confounds, tr=TR, n_volumes=N_VOLUMES, run_name="sub-01_run-1")
    assert not [n for n in dense.notes if "are missed" in n]


def test_drift_settings():
    assert drift_settings(run_model(["a"], options={"HighPassFilterCutoffHz": 0.01})) == ("cosine", 0.01, 1)
    assert drift_settings(run_model(["a"])) == (None, None, 1)
    polynomial = default_model(["a"], drift_model="polynomial", drift_order=2).nodes[0]
    assert drift_settings(polynomial) == ("polynomial", None, 2)


@pytest.mark.parametrize("drift", ["polynomial", "none"])
def test_a_high_pass_cutoff_with_a_drift_that_has_none_is_a_model_error(drift):
    """It was ignored without a word (HighPass null in the sidecars)."""
    node = run_model(["a"], options={"HighPassFilterCutoffHz": 0.02}, software={"nilearn": {"drift_model": drift}})
    with pytest.raises(ModelError, match=f"gives HighPassFilterCutoffHz with drift_model {drift}, which has no cut-off"):
        drift_settings(node)


@pytest.mark.parametrize("order", [0, 101, 100000, 2.5, "3", True])
def test_a_drift_order_outside_1_to_100_is_a_model_error(order):
    node = run_model(["a"], software={"nilearn": {"drift_model": "polynomial", "drift_order": order}})
    with pytest.raises(ModelError, match=f"Node 'run' has Software.nilearn.drift_order {order!r}; expected"):
        drift_settings(node)


def test_run_contrasts_over_the_design():
    events, confounds = random_run(9)
    node = run_model(
        ["face", "house", "trans_x", 1], hrf={"Variables": ["face", "house"], "Model": "glover + derivative"},
        contrasts=[{"Name": "face_vs_house", "ConditionList": ["face", "house"], "Weights": [1, "-1"], "Test": "t"},
                   {"Name": "task", "ConditionList": ["face", "house"], "Weights": [[1, 0], [0, 1]], "Test": "F"},
                   {"Name": "cat", "ConditionList": ["cat"], "Weights": [1], "Test": "t"}],
        dummy={"Contrasts": ["face", "house"], "Test": "t"})
    design = build_run_design(node, events, confounds, tr=TR, n_volumes=N_VOLUMES)
    columns = list(design.matrix.columns)
    contrasts, notes = contrast_matrices(node, columns, x_columns=design.x_columns)
    by_name = {c.name: c for c in contrasts}
    assert list(by_name) == ["face", "house", "face_vs_house", "task"]
    assert by_name["face_vs_house"].weights == {"face": 1.0, "house": -1.0}
    assert by_name["face"].vector[columns.index("face")] == 1 and by_name["face"].vector.sum() == 1
    assert by_name["task"].matrix.shape == (2, len(columns)) and not by_name["task"].passed_on
    assert notes == ("Node 'run': contrast 'cat' left out, the design has no column 'cat'",)
    everything, _ = contrast_matrices(run_model(["face", "house", 1], dummy={"Test": "t"}), columns,
                                      x_columns=["face", "house", "constant"])
    assert [c.name for c in everything] == ["face", "house", "intercept"]


def test_bare_trial_type_values_in_contrasts():
    events, _ = random_run(10)
    node = run_model(["trial_type.face", "trial_type.house"],
                     contrasts=[{"Name": "f", "ConditionList": ["face", "house"], "Weights": [[1, 0], [0, 1]], "Test": "F"}])
    design = build_run_design(node, events, None, tr=TR, n_volumes=N_VOLUMES)
    (f_test,), notes = contrast_matrices(node, design.matrix.columns)
    assert f_test.matrix.tolist() == [[1, 0, 0], [0, 1, 0]] and not notes


def test_names_in_later_nodes():
    subject = parse_model({"Name": "m", "Nodes": [{
        "Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"],
        "Model": {"Type": "glm", "X": [1, "age"]}, "DummyContrasts": {"Contrasts": [1], "Test": "t"},
        "Contrasts": [{"Name": "age", "ConditionList": ["age"], "Weights": [1], "Test": "t"}]}]}).nodes[0]
    contrasts, _ = contrast_matrices(subject, ["intercept", "age"], incoming="IvC")
    assert [c.name for c in contrasts] == ["IvC", "IvC_age"]
    assert [c.source for c in contrasts] == ["intercept", "age"]
    assert output_name("intercept", intercept=True) == "intercept"
    assert output_name("IvC", incoming="IvC") == "IvC"


def test_a_dummy_contrast_naming_the_incoming_contrast_tests_its_mean():
    """bidspm's dataset nodes: X [1], DummyContrasts {"Contrasts": ["<incoming contrast>"]}. The
    subject node took it; the dataset node refused it (no column of that name)."""
    dataset = parse_model({"Name": "m", "Nodes": [{
        "Level": "Dataset", "Name": "dataset", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": [1]},
        "DummyContrasts": {"Contrasts": ["IvC"], "Test": "t"}}]}).nodes[0]
    named, notes = contrast_matrices(dataset, ["intercept"], incoming="IvC")
    plain, _ = contrast_matrices(replace(dataset, dummy_contrasts=replace(dataset.dummy_contrasts, conditions=(1,))),
                                 ["intercept"], incoming="IvC")
    assert not notes and [c.name for c in named] == [c.name for c in plain] == ["IvC"]
    assert named[0].matrix.tolist() == plain[0].matrix.tolist() == [[1.0]]
    _, notes = contrast_matrices(dataset, ["intercept"], incoming="other")
    assert notes and "left out" in notes[0]


def test_group_by_and_conditions_across_designs():
    node = run_model(["a", INTERCEPT], contrasts=[{"Name": "a", "ConditionList": ["a"], "Weights": [1], "Test": "t"}])
    check_group_by(node, ["run", "subject"])
    check_group_by(parse_model({"Name": "m", "Nodes": [{"Level": "Run", "Name": "r", "GroupBy": ["run", "session", "subject"],
                                                        "Model": {"X": ["a"]}}]}).nodes[0], ["subject"])
    group = parse_model({"Name": "m", "Nodes": [{"Level": "Dataset", "Name": "d", "GroupBy": ["contrast", "site"],
                                                 "Model": {"X": [1]}}]}).nodes[0]
    with pytest.raises(ModelError, match="Node 'd' groups by 'site', which is not in the data"):
        check_group_by(group, ["contrast", "subject"])
    assert check_conditions(node, {"run-1": ["a", "constant"], "run-2": ["b", "constant"]}) == [
        "run-2: contrast 'a' left out, no column 'a'"]
    with pytest.raises(ModelError, match="contrast 'a' names 'a', which no design has"):
        check_conditions(node, {"run-2": ["b", "constant"]})


@pytest.mark.parametrize(("delays", "said"), [([0, 1, 10**15], "reach past the run's"),
                                              (list(range(1000)), "1000 of them"), ([0, 1.5], "whole numbers")])
def test_fir_delays_past_the_run_are_refused(delays, said):
    """100,000 delays filled 23 GB of memory; 1e15 asked numpy for petabytes."""
    from bids_fixedfx.model.hrf import convolve
    from bids_fixedfx.model.variables import Variable

    variable = Variable("audio", np.ones(3), onset=np.array([0.0, 20.0, 40.0]), duration=np.ones(3))
    with pytest.raises(ModelError, match=said):
        convolve(variable, "fir", np.arange(100) * 2.0, fir_delays=delays)


def test_a_variable_s_exact_name_is_found_before_a_wildcard_reading():
    """``Split`` names variables ``x.by[level]``; ``Model.X`` naming one read it as a wildcard class."""
    from bids_fixedfx.model.design import expand_names

    assert expand_names(["a.b[c]"], ["a.b[c]", "a.bc"], "Model.X") == ["a.b[c]"]
    assert expand_names(["a.b[cd]"], ["a.b[c]", "a.bc", "a.bd"], "Model.X") == ["a.bc", "a.bd"]  # a pattern still


def test_a_name_that_split_makes_is_not_read_as_a_wildcard_in_x():
    """``rt.trial_type[face]`` in Model.X: the column was made, and every run warned that the
    pattern matched no variable (its brackets read as a character class)."""
    events, confounds = random_run(11)
    node = run_model(["response_time.trial_type[face]", 1],
                     transformations=[{"Name": "Split", "Input": ["response_time"], "By": ["trial_type"]}])
    design = build_run_design(node, events, confounds, tr=TR, n_volumes=N_VOLUMES)
    assert "response_time.trial_type[face]" in design.matrix.columns
    assert not [note for note in design.notes if "matches no variable" in note], design.notes
