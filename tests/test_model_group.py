"""Designs above the run: one-sample, two-sample, covariates, incoming contrasts, rank checks."""

import numpy as np
import pandas as pd
import pytest
from nilearn.glm.second_level import make_second_level_design_matrix

from bids_fixedfx.model import ModelError, parse_model
from bids_fixedfx.model.group import build_group_design, check_rank

PARTICIPANTS = pd.DataFrame({
    "subject": ["01", "02", "03", "04", "05"],
    "contrast": ["IvC"] * 5,
    "group": ["patient", "control", "patient", "control", "patient"],
    "age": [31.0, 45.0, np.nan, 52.0, 28.0],
})


def dataset_node(x, transformations=()):
    node = {"Level": "Dataset", "Name": "group", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": x},
            "DummyContrasts": {"Test": "t"}}
    if transformations:
        node["Transformations"] = {"Transformer": "pybids-transforms-v1", "Instructions": list(transformations)}
    return parse_model({"Name": "m", "BIDSModelVersion": "1.0.0", "Nodes": [node]}).nodes[0]


def test_one_sample():
    design = build_group_design(dataset_node([1]), PARTICIPANTS)
    assert list(design.matrix.columns) == ["intercept"] and len(design.matrix) == 5 and not design.dropped


@pytest.mark.filterwarnings("ignore:Attention. Design matrix is singular")  # nilearn on 4 rows
def test_covariate_equals_nilearn_and_missing_values_are_left_out():
    design = build_group_design(dataset_node(["age", 1]), PARTICIPANTS)
    kept = PARTICIPANTS.dropna()
    expected = make_second_level_design_matrix(
        [f"sub-{s}" for s in kept["subject"]],
        pd.DataFrame({"subject_label": [f"sub-{s}" for s in kept["subject"]], "age": kept["age"]}))
    np.testing.assert_array_equal(design.matrix.to_numpy(), expected.to_numpy())
    assert design.dropped == (2,) and design.notes == ("Node 'group': left out sub-03 (age missing)",)


def test_an_infinite_covariate_is_refused_naming_the_subject():
    """inf in participants.tsv: a Demean made every age NaN (numpy's RuntimeWarning), and each
    subject was said to miss a value."""
    from bids_fixedfx.errors import InputFileError

    participants = PARTICIPANTS.assign(age=[np.inf, 45.0, 30.0, 52.0, 28.0])
    with pytest.raises(InputFileError, match=r"The age of sub-01 is inf, not a finite number; correct it where it is "
                                             r"given \(participants.tsv\), or write n/a to leave sub-01 out."):
        build_group_design(dataset_node(["age", 1], [{"Name": "Demean", "Input": ["age"]}]), participants)
    assert len(build_group_design(dataset_node(["group.patient", "group.control"]), participants).matrix) == 5
    huge = PARTICIPANTS.assign(age=[35.0, 1e308, 30.0, 52.0, 28.0])  # the design was said rank deficient
    with pytest.raises(InputFileError, match=r"The age of sub-02 is 1e\+308, beyond 1e\+12 in size; correct it"):
        build_group_design(dataset_node(["age", 1]), huge)


def test_two_sample_with_demeaned_covariate():
    node = dataset_node(["group.patient", "group.control", "age"],
                        [{"Name": "Demean", "Input": ["age"]}])
    design = build_group_design(node, PARTICIPANTS.fillna({"age": 40.0}))
    assert list(design.matrix["group.patient"]) == [1, 0, 1, 0, 1]
    assert abs(design.matrix["age"].mean()) < 1e-12


def test_a_covariate_is_demeaned_over_the_inputs_tested_not_those_left_out():
    """A subject left out for a missing group still counted in the mean of age: the groups'
    contrasts were taken at another age than the tested sample's (3% off nilearn's effect)."""
    table = PARTICIPANTS.fillna({"age": 40.0}).assign(group=["patient", np.nan, "patient", "control", "control"])
    node = dataset_node(["group.patient", "group.control", "age"], [{"Name": "Demean", "Input": ["age"]}])
    design = build_group_design(node, table)
    tested = table.drop(index=[1])
    assert design.dropped == (1,) and list(design.matrix.index) == list(tested.index)
    np.testing.assert_allclose(design.matrix["age"], tested["age"] - tested["age"].mean())
    assert design.notes == ("Node 'group': left out sub-02 (group missing)",)


def test_a_level_that_only_subjects_left_out_held_is_said_to_be_theirs():
    """sub-03, without an age, alone of site 3: 'Model.X names 'site.3', which is not a
    variable', though participants.tsv has site 3, and sub-03's note was never shown."""
    table = PARTICIPANTS.assign(site=["1", "2", "3", "1", "2"])
    node = dataset_node([1, "age", "site.2", "site.3"], [{"Name": "Factor", "Input": ["site"]}])
    with pytest.raises(ModelError, match=r"'site.3', which is not a variable.*, once sub-03 was left out for "
                                         r"missing values \(a level of a factor may have been theirs alone\)\."):
        build_group_design(node, table)
    assert len(build_group_design(node, table.fillna({"age": 40.0})).matrix) == 5


def test_a_level_named_in_x_is_missing_where_its_category_is():
    """group n/a gave the subject a row of zeros in group.patient and group.control (exit 0,
    wrong degrees of freedom), where X: ["group"] left it out."""
    table = PARTICIPANTS.fillna({"age": 40.0}).assign(group=["patient", np.nan, "patient", "control", np.nan])
    design = build_group_design(dataset_node(["group.patient", "group.control"]), table)
    assert design.dropped == (1, 4) and list(design.matrix["group.patient"]) == [1, 1, 0]
    assert design.notes == ("Node 'group': left out sub-02 (group missing), sub-05 (group missing)",)


def test_levels_that_differ_only_in_case_are_named():
    """Was silent: 'Patient' once made a third group of one subject."""
    slip = PARTICIPANTS.fillna({"age": 40.0}).assign(group=["Patient", "control", "patient", "control", "patient"])
    design = build_group_design(dataset_node([1, "group"]), slip)
    assert list(design.matrix.columns) == ["group.Patient", "group.control", "group.patient"]
    said = [n for n in design.notes if "differ only in case" in n]
    assert len(said) == 1 and "'Patient' and 'patient'" in said[0] and "'group'" in said[0]
    assert not [n for n in build_group_design(dataset_node([1, "group"]), PARTICIPANTS).notes if "case" in n]


def test_incoming_contrasts_as_indicators():
    inputs = pd.DataFrame({"subject": ["01", "01", "02", "02"], "contrast": ["A", "B", "A", "B"]})
    design = build_group_design(dataset_node(["A", "B"]), inputs)
    assert design.matrix.to_dict("list") == {"A": [1, 0, 1, 0], "B": [0, 1, 0, 1]}


def test_rank_deficient_designs_name_the_columns():
    with pytest.raises(ModelError, match="'group.control' is a combination of 'intercept', 'group.patient'"):
        build_group_design(dataset_node([1, "group.patient", "group.control"]), PARTICIPANTS.fillna(40))
    with pytest.raises(ModelError, match="'zeros' is all zeros"):
        check_rank(pd.DataFrame({"a": [1.0, 2, 3], "zeros": [0.0, 0, 0]}), "Node 'x'")
    with pytest.raises(ModelError, match="2 columns but only 1 rows"):
        check_rank(pd.DataFrame({"a": [1.0], "b": [2.0]}), "Node 'x'")


def test_a_covariate_with_one_value_is_named_with_its_value():
    """A covariate that does not vary across the test's subjects (demeaned to zeros, or the
    intercept's twin) was 'all zeros' or 'a combination of intercept', with no word of why."""
    table = PARTICIPANTS.fillna({"age": 40.0}).assign(age=30.0)
    for node in (dataset_node([1, "age"], [{"Name": "Demean", "Input": ["age"]}]), dataset_node([1, "age"])):
        with pytest.raises(ModelError, match=r"Node 'group': 'age' has one value \(30.0\) for all 5 inputs"):
            build_group_design(node, table)
    varying = build_group_design(dataset_node([1, "age"], [{"Name": "Demean", "Input": ["age"]}]),
                                 PARTICIPANTS.fillna({"age": 40.0}))
    assert list(varying.matrix.columns) == ["intercept", "age"]


@pytest.mark.parametrize("contrast", [
    {"Name": "mean", "ConditionList": [1], "Weights": [1], "Test": "t"},
    {"Name": "mean", "ConditionList": ["intercept", "age"], "Weights": [1, 0], "Test": "t"},
])
def test_a_contrast_on_an_intercept_a_category_spans_is_refused(contrast):
    """X [1, "group", "age"] with a contrast on the intercept: the intercept and the contrast
    were left out with notes, exit 0, the node's main result missing."""
    node = {"Level": "Dataset", "Name": "group", "GroupBy": ["contrast"],
            "Model": {"Type": "glm", "X": [1, "group", "age"]}, "Contrasts": [contrast]}
    node = parse_model({"Name": "m", "BIDSModelVersion": "1.0.0", "Nodes": [node]}).nodes[0]
    with pytest.raises(ModelError, match=r"contrast 'mean' is on the intercept, which the levels of a category in "
                                         r"Model.X \(group.control, group.patient\) span") as caught:
        build_group_design(node, PARTICIPANTS)
    assert caught.value.exit_code == 64
    # the category coded with one column fewer keeps the intercept
    kept = dataset_node([1, "group.patient", "age"], [{"Name": "Factor", "Input": ["group"], "Constraint": "drop_one"}])
    assert "intercept" in build_group_design(kept, PARTICIPANTS).matrix.columns


def test_a_category_alone_in_x_is_one_column_per_level_without_intercept():
    """bidspm's one-way designs name the participants column: its levels are the columns (a
    cell-means design, as nilearn's design of the indicators), the intercept they span is left out."""
    design = build_group_design(dataset_node([1, "group", "age"]), PARTICIPANTS)
    kept = PARTICIPANTS.dropna()
    assert list(design.matrix.columns) == ["group.control", "group.patient", "age"]
    expected = pd.DataFrame({"group.control": (kept["group"] == "control").astype(float),
                             "group.patient": (kept["group"] == "patient").astype(float), "age": kept["age"]})
    np.testing.assert_array_equal(design.matrix.to_numpy(), expected.to_numpy())
    assert any("one column per level (control, patient)" in n for n in design.notes)
    assert any("intercept is left out" in n for n in design.notes)
    one_level = build_group_design(dataset_node([1, "site"]), PARTICIPANTS.assign(site="north"))
    assert list(one_level.matrix.columns) == ["site.north"]
    explicit = build_group_design(dataset_node(["group.control", "group.patient", "age"]), PARTICIPANTS)
    np.testing.assert_array_equal(explicit.matrix.to_numpy(), design.matrix.to_numpy())


@pytest.mark.parametrize(("x", "inputs", "message"), [
    (["site"], PARTICIPANTS, "Model.X names 'site'"),
    ([1], PARTICIPANTS.iloc[:0], "empty group"),
    (["age"], PARTICIPANTS.assign(age=np.nan), "every input has a missing value"),
])
def test_group_design_errors(x, inputs, message):
    with pytest.raises(ModelError, match=message):
        build_group_design(dataset_node(x), inputs)


def test_a_column_too_far_apart_in_size_for_the_rank_is_named():
    """'design column 'age' is a combination of ; the design is rank deficient' named nothing."""
    matrix = pd.DataFrame({"intercept": np.ones(3), "age": [-1e20, 1e20, 0.0]})
    with pytest.raises(ModelError, match="column 'age' has values so far apart in size .* rescale them"):
        check_rank(matrix, "Node 'x'")
