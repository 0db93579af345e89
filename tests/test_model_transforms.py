"""pybids-transforms-v1: our transformations give pybids' results; queries are parsed, not run."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bids_fixedfx.model import ModelError, parse_model
from bids_fixedfx.model.hrf import convolve, hrf_name
from bids_fixedfx.model.query import evaluate_query
from bids_fixedfx.model.transforms import apply_transformations
from bids_fixedfx.model.variables import run_variables, table_variables

TR, N_VOLUMES = 2.0, 30
EVENTS = pd.DataFrame({
    "onset": [1, 5, 9, 13, 17, 21, 25, 29.0], "duration": [1, 1, 2, 1, 1, 2, 1, 1.0],
    "trial_type": ["a", "b", "a", "b", "c", "a", "b", "c"],
    "RT": [0.5, 0.9, np.nan, 1.1, 0.7, 0.6, 1.3, 0.8],
    "gain": [10, 20, 10, 30, 20, 10, 30, 20.0], "loss": [1, 0, 1, 1, 0, 0, 1, 0],
})


def run_node(instructions, x=(1,)):
    return parse_model({"Name": "m", "Nodes": [{
        "Level": "Run", "Name": "run", "GroupBy": ["run"], "Model": {"X": list(x)},
        "Transformations": {"Transformer": "pybids-transforms-v1", "Instructions": instructions}}]}).nodes[0]


def ours(instructions, events=EVENTS, confounds=None):
    variables = run_variables(events, confounds, frame_times=np.arange(N_VOLUMES) * TR, tr=TR)
    return apply_transformations(variables, run_node(instructions).transformations, "Node 'run'")


def pybids(instructions, events=EVENTS):
    from bids.modeling.transformations import TransformerManager
    from bids.variables import SparseRunVariable
    from bids.variables.collections import BIDSRunVariableCollection
    from bids.variables.entities import RunInfo

    run_info = [RunInfo({"subject": "01"}, N_VOLUMES * TR, TR, "bold.nii.gz", N_VOLUMES)]
    collection = BIDSRunVariableCollection([
        SparseRunVariable(name=c, data=pd.DataFrame({"onset": events.onset, "duration": events.duration,
                                                     "amplitude": events[c]}), run_info=run_info, source="events")
        for c in events.columns if c not in ("onset", "duration")
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TransformerManager(keep_history=False).transform(collection, [dict(i) for i in instructions])
    return collection.variables


@pytest.mark.parametrize("instructions", [
    [{"Name": "Factor", "Input": ["trial_type"]}],
    [{"Name": "Factor", "Input": ["trial_type"], "Constraint": "mean_zero"}],
    [{"Name": "Factor", "Input": ["trial_type"], "Constraint": "drop_one", "RefLevel": "b"}],
    [{"Name": "Scale", "Input": ["gain"]}, {"Name": "Scale", "Input": ["RT"], "ReplaceNa": "after", "Output": ["RTs"]}],
    [{"Name": "Scale", "Input": ["gain", "loss"], "Demean": [True, False], "Rescale": False}],
    [{"Name": "Demean", "Input": ["loss"]}],
    [{"Name": "Threshold", "Input": ["gain"], "Threshold": 15, "Binarize": True, "Output": "high"}],
    [{"Name": "Threshold", "Input": ["gain"], "Threshold": -15, "Above": False, "Signed": False}],
    [{"Name": "Product", "Input": ["gain", "loss"], "Output": "p"},
     {"Name": "Sum", "Input": ["gain", "loss"], "Weights": [1, -2], "Output": "s"},
     {"Name": "And", "Input": ["gain", "loss"], "Output": "a"},
     {"Name": "Or", "Input": ["gain", "loss"], "Output": "o"},
     {"Name": "Not", "Input": ["loss"], "Output": "n"}],
    # n/a (RT's third event, where n is 0): Or skips it, as pandas' any (it counted as true)
    [{"Name": "Not", "Input": ["loss"], "Output": "n"}, {"Name": "Or", "Input": ["RT", "n"], "Output": "o"},
     {"Name": "And", "Input": ["RT", "loss"], "Output": "a"}],
    [{"Name": "Lag", "Input": ["gain"], "Output": "lagged"},
     {"Name": "Lag", "Input": ["gain"], "Shift": -1, "Order": 0, "Difference": True, "Output": "diff"}],
    [{"Name": "Filter", "Input": ["RT"], "Query": "trial_type == 'a'", "By": ["trial_type"], "Output": "RT_a"}],
    [{"Name": "Filter", "Input": ["gain"], "Query": "gain > 15"}],
    [{"Name": "Replace", "Input": ["trial_type"], "Replace": {"a": "x"}}],
    [{"Name": "Split", "Input": ["gain"], "By": ["trial_type"]}],
    [{"Name": "Split", "Input": ["gain"], "By": ["trial_type", "loss"]}],
    [{"Name": "DropNA", "Input": ["RT"]}],
    [{"Name": "Orthogonalize", "Input": ["gain"], "Other": ["loss"]}],
    [{"Name": "Assign", "Input": ["RT"], "Target": "gain", "Output": "gain_rt"}],
    [{"Name": "Assign", "Input": ["gain"], "Target": "loss", "TargetAttr": "duration"}],
    [{"Name": "Assign", "Input": ["RT"], "Target": ["gain"], "Output": "gain_rt"}],  # a list of one, as pybids reads
    [{"Name": "Rename", "Input": ["gain"], "Output": "G"}, {"Name": "Copy", "Input": ["G"], "Output": "G2"},
     {"Name": "Delete", "Input": ["loss"]}],
    [{"Name": "Select", "Input": ["gain", "RT"]}],
    [{"Name": "Scale", "Input": ["g*"], "OutputSuffix": "_z"}],
])
def test_transformations_equal_pybids(instructions):
    expected = pybids(instructions)
    got = ours(instructions)
    assert set(got.names) == set(expected)
    for name, variable in expected.items():
        values = variable.values.to_numpy().ravel()
        mine = got[name]
        if mine.numeric:
            np.testing.assert_allclose(mine.values, values.astype(float), equal_nan=True, err_msg=name)
        else:
            assert list(mine.values) == list(values), name
        np.testing.assert_allclose(mine.onset, variable.onset, err_msg=name)
        np.testing.assert_allclose(mine.duration, variable.duration, err_msg=name)


def test_names_split_makes_can_be_named_exactly():
    """``Split`` names its outputs as pybids does (``gain.trial_type[a]``): naming one was read as
    a wildcard class and refused ("no variable 'gain.trial_type[a]' (variables: gain.trial_type[a], ...)")."""
    split = {"Name": "Split", "Input": ["gain"], "By": ["trial_type"]}
    names = ours([split]).names
    assert "gain.trial_type[a]" in names
    got = ours([split, {"Name": "Copy", "Input": ["gain.trial_type[a]"], "Output": "ga"}])
    np.testing.assert_array_equal(got["ga"].values, got["gain.trial_type[a]"].values)


def test_input_is_not_changed():
    variables = run_variables(EVENTS, None, frame_times=np.arange(N_VOLUMES) * TR, tr=TR)
    apply_transformations(variables, run_node([{"Name": "Factor", "Input": ["trial_type"]},
                                               {"Name": "Delete", "Input": ["gain"]}]).transformations)
    assert "trial_type" in variables and "gain" in variables and "trial_type.a" not in variables


def test_convolve_is_nilearns_regressor():
    from nilearn.glm.first_level import compute_regressor

    frame_times = np.arange(N_VOLUMES) * TR
    got = ours([{"Name": "Convolve", "Input": ["gain"], "Model": "glover", "Derivative": True}])
    expected, names = compute_regressor(EVENTS[["onset", "duration", "gain"]].to_numpy().T, "glover + derivative",
                                        frame_times, con_id="gain")
    assert names == ["gain", "gain_derivative"]
    np.testing.assert_array_equal(got["gain"].values, expected[:, 0])
    np.testing.assert_array_equal(got["gain_derivative"].values, expected[:, 1])
    assert got["gain"].kind == "dense" and np.array_equal(got["gain"].times, frame_times)
    fir = ours([{"Name": "Convolve", "Input": ["loss"], "Model": "fir", "FirDelays": [0, 1, 2]}])
    assert {"loss_delay_0", "loss_delay_1", "loss_delay_2"} <= set(fir.names)


def test_convolve_dense_and_to_dense():
    got = ours([{"Name": "ToDense", "Input": ["loss"], "SamplingRate": 5, "Output": "dense"},
                {"Name": "Convolve", "Input": ["dense"], "Model": "spm"}])
    assert got["dense"].kind == "dense" and len(got["dense"].values) == N_VOLUMES
    assert np.ptp(got["dense"].values) > 0


def test_hrf_names():
    assert hrf_name("SPM", True, True) == "spm + derivative + dispersion"
    assert hrf_name("glover + derivative", derivative=True) == "glover + derivative"
    with pytest.raises(ModelError, match="needs Derivative"):
        hrf_name("spm", dispersion=True)
    with pytest.raises(ModelError, match="do not apply"):
        hrf_name("fir", derivative=True)


def test_dense_confounds_and_mixed_inputs():
    confounds = pd.DataFrame({"trans_x": np.linspace(0, 1, N_VOLUMES), "rot_x": np.ones(N_VOLUMES)})
    got = ours([{"Name": "Scale", "Input": ["trans_*"]},
                {"Name": "Product", "Input": ["trans_x", "loss"], "Output": "mixed"}], confounds=confounds)
    assert got["trans_x"].kind == "dense" and abs(got["trans_x"].values.mean()) < 1e-12
    assert got["mixed"].kind == "dense" and len(got["mixed"].values) == N_VOLUMES


def test_simple_variables_for_higher_levels():
    table = pd.DataFrame({"group": ["patient", "control", "patient"], "age": [30, 40, 50.0]})
    variables = apply_transformations(table_variables(table), run_node([
        {"Name": "Factor", "Input": ["group"]}, {"Name": "Demean", "Input": ["age"]}]).transformations)
    assert list(variables["group.patient"].values) == [1, 0, 1]
    assert list(variables["age"].values) == [-10, 0, 10]


@pytest.mark.parametrize(("instructions", "message"), [
    ([{"Name": "Scale", "Input": ["trial_type"]}], "cannot take 'trial_type', which holds categories"),
    ([{"Name": "Scale", "Input": ["missing"]}], "no variable 'missing'"),
    ([{"Name": "Filter", "Input": ["RT"], "Query": "RT > 0.5"}, {"Name": "Product", "Input": ["RT", "gain"],
      "Output": "x"}], "events at different times; set Dense"),
    ([{"Name": "Scale", "Input": ["gain", "loss"], "Output": ["x"]}], "1 Output names for 2 results"),
    ([{"Name": "Filter", "Input": ["gain"], "Query": "gain.mean() > 1"}], "Query 'gain.mean\\(\\) > 1' is not valid"),
    ([{"Name": "Filter", "Input": ["gain"], "Query": "RT > 1"}], "names 'RT', which is not an input or By"),
    ([{"Name": "Convolve", "Input": ["RT"]}], "'RT' has n/a values"),
    # an n/a duration: nilearn's boxcar never ends (the regressor stayed at 1 to the run's end)
    ([{"Name": "Assign", "Input": ["RT"], "Target": "gain", "TargetAttr": "duration", "Output": "gain_rt"},
      {"Name": "Convolve", "Input": ["gain_rt"]}], "'gain_rt' has events whose duration is n/a"),
    ([{"Name": "Convolve", "Input": ["trial_type"]}], "holds categories"),
    ([{"Name": "Scale", "Input": ["gain"], "Dense": True},
      {"Name": "Scale", "Input": ["loss"]}, {"Name": "Threshold", "Input": ["loss"], "Threshold": 9},
      {"Name": "Scale", "Input": ["loss"]}], "is constant"),
    ([{"Name": "Factor", "Input": ["trial_type"], "RefLevel": "z", "Constraint": "drop_one"}], "RefLevel 'z'"),
    # arguments of the wrong kind or size failed as 'Processing failed' (exit 1)
    ([{"Name": "Threshold", "Input": ["gain"], "Threshold": "1; rm -rf /"}],
     'its Threshold must be a number, not "1; rm -rf /"'),
    ([{"Name": "Assign", "Input": ["RT"], "Target": ["gain", "loss"]}],
     'its Target must name one variable, not \\["gain"'),
    ([{"Name": "Lag", "Input": ["gain"], "Order": 1000000000, "Dense": True}], "cannot be applied with the arguments"),
    # a flag or number as a string (from a web form) was read by its truth: "false" binarized
    ([{"Name": "Threshold", "Input": ["gain"], "Threshold": 15, "Binarize": "false"}],
     'transformation Threshold: its Binarize must be true or false, not "false"'),
    ([{"Name": "Scale", "Input": ["gain"], "Demean": "no"}], 'its Demean must be true or false, not "no"'),
    ([{"Name": "Scale", "Input": ["gain"], "ReplaceNa": {"x": 1}}], 'its ReplaceNa must be "before", "after" or null'),
    ([{"Name": "Lag", "Input": ["gain"], "Difference": "false", "Dense": True}], "its Difference must be true or"),
    ([{"Name": "Lag", "Input": ["gain"], "Shift": True, "Dense": True}], "its Shift must be a number, not true"),
    ([{"Name": "Scale", "Input": ["gain"], "Dense": "yes"}], 'its Dense must be true or false, not "yes"'),
    ([{"Name": "Scale", "Input": ["gain", "loss"], "Rescale": [True, "0"]}], 'its Rescale must be true or false'),
    ([{"Name": "Sum", "Input": ["gain", "loss"], "Weights": ["1", "2"], "Output": "s"}],
     'its Weights must be a number, not "1"'),
    ([{"Name": "Sum", "Input": ["gain", "loss"], "Weights": [True, False], "Output": "s"}],
     "its Weights must be a number, not true"),
    ([{"Name": "ToDense", "Input": ["gain"], "SamplingRate": "10"}], 'its SamplingRate must be a number, not "10"'),
])
def test_transformation_errors_name_the_culprit(instructions, message):
    with pytest.raises(ModelError, match=message) as caught:
        ours(instructions)
    assert caught.value.exit_code == 64


def test_a_transformation_given_categories_names_a_value_that_is_not_a_number():
    table = pd.DataFrame({"age": ["41,5", "35,2", "32"]})  # a decimal comma: text to pandas
    with pytest.raises(ModelError, match="'age', which holds categories \\('41,5' is not a number\\)"):
        apply_transformations(table_variables(table), run_node([{"Name": "Demean", "Input": ["age"]}]).transformations)


def test_factor_refuses_mixed_types():
    events = EVENTS.assign(mixed=pd.Series([1, "x", 2, "y", 1, 1, 1, 1], dtype=object))
    with pytest.raises(ModelError, match="'mixed' mixes numbers and text"):
        ours([{"Name": "Factor", "Input": ["mixed"]}], events=events)


def test_columns_from_small_events_are_bounded():
    """A Factor of a column unique to each of 15,000 events took 25 s and 2 GB; a Split by eight
    such columns of 6 events took 81 s and 1.7 GB (6**8 combinations); ToDense at 2 MHz 18 GB."""
    many = pd.DataFrame({"onset": np.arange(1500.0) / 100, "duration": 0.01, "trial_type": "a",
                         "stim": [f"s{i}" for i in range(1500)]})
    with pytest.raises(ModelError, match=r"Factor of 'stim' \(1500 levels\) makes 1,500 columns, more than 1,000"):
        ours([{"Name": "Factor", "Input": ["stim"]}], events=many)
    unique = EVENTS.assign(**{f"c{i}": np.arange(8.0) + i for i in range(4)})
    with pytest.raises(ModelError, match=r"Split of 'gain' by 'c0', 'c1', 'c2', 'c3' .* makes 4,096 columns"):
        ours([{"Name": "Split", "Input": ["gain"], "By": ["c0", "c1", "c2", "c3"]}], events=unique)
    assert len(ours([{"Name": "Split", "Input": ["gain"], "By": ["c0", "c1", "c2"]}], events=unique).names) > 512
    for rate in (2e6, 0):  # ("fast": not a number, refused when the model is read)
        with pytest.raises(ModelError, match="SamplingRate .* is not a rate in Hz above 0 and at most 1000"):
            ours([{"Name": "ToDense", "Input": ["loss"], "SamplingRate": rate}])


def test_unknown_transformation_is_refused_at_load():
    with pytest.raises(ModelError, match="transformation 'Concatenate'") as caught:
        run_node([{"Name": "Concatenate", "Input": ["a"]}])
    assert caught.value.exit_code == 64


COLUMNS = {
    "trial_type": np.array(["face", "house", np.nan, "face"], dtype=object),
    "RT": np.array([0.3, 0.7, np.nan, 0.9]),
    "trial_type.face": np.array([1.0, 0, 0, 1]),
}


@pytest.mark.parametrize(("query", "rows"), [
    ("trial_type == 'face'", [1, 0, 0, 1]),
    ('trial_type != "face"', [0, 1, 1, 0]),
    ("RT > 0.5", [0, 1, 0, 1]),
    ("RT >= 0.3 and RT < 0.8", [1, 1, 0, 0]),
    ("0.5 < RT < 1", [0, 1, 0, 1]),
    ("trial_type in ['house', 'cat'] or RT < 0.4", [1, 1, 0, 0]),
    ("trial_type not in ['house']", [1, 0, 1, 1]),  # missing is not in, as in pandas
    ("not (RT > 0.5) & ~(trial_type == 'house')", [1, 0, 1, 0]),
    ("trial_type_face == 1", [1, 0, 0, 1]),
    ("`trial_type.face` == True", [1, 0, 0, 1]),
    ("RT > -1", [1, 1, 0, 1]),
])
def test_queries(query, rows):
    assert list(evaluate_query(query, COLUMNS)) == [bool(r) for r in rows]


@pytest.mark.parametrize("query", [
    "__import__('os').system('true')", "RT.mean() > 0", "RT > ", "(RT > 1", "RT = 1", "lambda: 1", "RT; 1", "",
    "RT > 'a'",
])
def test_queries_are_parsed_never_run(query):
    with pytest.raises(ModelError):
        evaluate_query(query, COLUMNS)


def test_convolve_refuses_simple_variables():
    with pytest.raises(ModelError, match="no timing"):
        convolve(table_variables(pd.DataFrame({"age": [1.0]}))["age"], "spm", np.arange(3.0))


def test_a_missing_variable_lists_those_spelled_like_it_first_and_not_all():
    """A confounds table's hundreds of columns were all listed in the one-line error."""
    from bids_fixedfx.model.variables import listed

    names = ["trial_type", *(f"a_comp_cor_{i:02d}" for i in range(100)), "response_time"]
    text = listed(names, "response_tme")
    assert text.startswith("response_time, ") and text.endswith(" and 90 more") and len(text.split(", ")) == 12
    assert listed(["a", "b"], "c") == "a, b" and listed([], "c") == "none"


def test_a_level_the_run_has_no_event_of_is_a_zero_column():
    """pybids makes a factor's levels over the whole dataset, a zero column in a run without
    such events: Sum and Or of it are their other inputs (Sum was left out whole), Orthogonalize
    against it changes nothing (it stopped the job), Product and And of it have no event."""
    without_c = EVENTS[EVENTS.trial_type != "c"]
    factor = {"Name": "Factor", "Input": ["trial_type"]}
    a = ours([factor], without_c)["trial_type.a"].values
    found = ours([factor, {"Name": "Sum", "Input": ["trial_type.a", "trial_type.c"], "Weights": [2, 5],
                           "Output": "both"},
                  {"Name": "Or", "Input": ["trial_type.c", "trial_type.a"], "Output": "either"},
                  {"Name": "Orthogonalize", "Input": ["trial_type.a"], "Other": ["trial_type.c"],
                   "Output": "a_orth"},
                  {"Name": "Product", "Input": ["trial_type.a", "trial_type.c"], "Output": "ac"}], without_c)
    np.testing.assert_array_equal(found["both"].values, 2 * a)
    np.testing.assert_array_equal(found["either"].values, a)
    np.testing.assert_array_equal(found["a_orth"].values, a)
    assert "ac" not in found.names  # no event
