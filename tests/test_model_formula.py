"""Model.Formula: the Wilkinson subset that models use, parsed (never evaluated) and applied."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bids_fixedfx.model import ModelError, parse_model
from bids_fixedfx.model.design import build_run_design
from bids_fixedfx.model.formula import Formula, apply_formula, parse_formula
from bids_fixedfx.model.group import build_group_design
from test_model_design import MOTION, N_VOLUMES, TR, assert_same, nilearn_design, random_run, run_model

pytestmark = pytest.mark.filterwarnings("ignore:The following:UserWarning")  # nilearn, on reference designs


@pytest.mark.parametrize(("text", "terms", "intercept"), [
    ("0 + RT * gain", (("RT",), ("gain",), ("RT", "gain")), False),
    ("1 + a", (("a",),), True),
    ("a*b:c", (("a",), ("b", "c"), ("a", "b", "c")), None),
    ("a:b*c - 1", (("a", "b"), ("c",), ("a", "b", "c")), False),
    ("y ~ `trial_type.parametric gain` + RT", (("trial_type.parametric gain",), ("RT",)), None),
    ("a + a:b + a", (("a",), ("a", "b")), None),
])
def test_parse(text, terms, intercept):
    assert parse_formula(text, "Node 'n'") == Formula(terms, intercept)


@pytest.mark.parametrize(("text", "message"), [
    ("a + (b)", "notation this app does not read"),
    ("a^2", "notation this app does not read"),
    ('__import__("os")', "notation this app does not read"),
    ("- a", "removes a term other than the intercept"),
    ("a + ", "empty term"),
    ("a b", "two names without an operator"),
    (": a", "':' without a term before it"),
    ("0 + audio" + " * visual" * 200, "expands to more than 1024 terms"),  # took minutes from 22 '*' on
])
def test_parse_errors(text, message):
    with pytest.raises(ModelError, match=message):
        parse_formula(text, "Node 'n'")


def test_a_long_name_before_an_unread_character_is_refused_at_once():
    """A pattern of the whole formula backtracked exponentially: 26 characters took 5 s, 41 hung."""
    with pytest.raises(ModelError, match=r"'aaa.*\.\.\.' uses notation this app does not read at '!'"):
        parse_formula("a" * 100_000 + "!", "Node 'n'")


def test_apply_multiplies_columns_and_names_what_is_missing():
    columns = {"a": np.array([1.0, 2, 3]), "b": np.array([2.0, 0, -1])}
    made = apply_formula(columns, parse_formula("a*b", "n"), "Node 'n'")
    assert list(made) == ["a", "b", "a:b"]
    np.testing.assert_array_equal(made["a:b"], [2.0, 0, -3])
    with pytest.raises(ModelError, match="Model.Formula names 'c', which is not a column of Model.X"):
        apply_formula(columns, parse_formula("a + c", "n"), "Node 'n'")
    # X: ["group", "age"] with the category's levels as columns: it said 'group' was no column of X
    levels = {"group.control": np.ones(3), "group.patient": np.zeros(3), "age": np.arange(3.0)}
    with pytest.raises(ModelError, match="names 'group', a category that Model.X models as one column per level "
                                         r"\(group.control, group.patient\); name those columns in the Formula"):
        apply_formula(levels, parse_formula("0 + group * age", "n"), "Node 'n'")


def test_run_design_with_an_interaction_equals_nilearn_columns_multiplied():
    """pybids applies the formula to the design's columns: the interaction of two convolved
    regressors is their product; a contrast can name it."""
    events, confounds = random_run(5)
    node = run_model(["trial_type.face", "trial_type.house", *MOTION],
                     hrf={"Variables": ["trial_type.face", "trial_type.house"], "Model": "glover"},
                     contrasts=[{"Name": "both", "ConditionList": ["trial_type.face:trial_type.house"], "Weights": [1],
                                 "Test": "t"}])
    node = replace(node, formula="0 + trial_type.face * trial_type.house")
    design = build_run_design(node, events, confounds, tr=TR, n_volumes=N_VOLUMES)
    kept = events[events["trial_type"].isin(["face", "house"])].assign(trial_type=lambda e: "trial_type." + e["trial_type"])
    expected = nilearn_design(kept[["onset", "duration", "trial_type"]], confounds.iloc[:, :0], drift_model=None)
    product = expected["trial_type.face"] * expected["trial_type.house"]
    expected.insert(2, "trial_type.face:trial_type.house", product)
    assert_same(design.matrix, expected[["trial_type.face", "trial_type.house", "trial_type.face:trial_type.house",
                                         "constant"]])
    assert design.conditions == ("trial_type.face", "trial_type.house", "trial_type.face:trial_type.house")
    assert any("drops the intercept" in n for n in design.notes)


def test_group_formula_sets_the_columns_and_the_intercept():
    inputs = pd.DataFrame({"subject": ["01", "02", "03", "04"], "contrast": ["c"] * 4,
                           "age": [30.0, 40, 50, 35], "score": [1.0, 3, 2, 5]})
    node = parse_model({"Name": "m", "BIDSModelVersion": "1.0.0", "Nodes": [
        {"Level": "Dataset", "Name": "g", "GroupBy": ["contrast"],
         "Model": {"Type": "glm", "X": ["age", "score"], "Formula": "1 + age:score"},
         "DummyContrasts": {"Test": "t"}}]}).nodes[0]
    design = build_group_design(node, inputs)
    assert list(design.matrix.columns) == ["intercept", "age:score"]
    np.testing.assert_array_equal(design.matrix["age:score"], inputs["age"] * inputs["score"])


def test_a_formula_is_checked_when_the_model_is_read():
    with pytest.raises(ModelError, match="Node 'run': Model.Formula 'a \\^ b' uses notation"):
        parse_model({"Name": "m", "BIDSModelVersion": "1.0.0", "Nodes": [
            {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
             "Model": {"Type": "glm", "X": ["a", "b"], "Formula": "a ^ b"}, "DummyContrasts": {"Test": "t"}}]})
