"""Which columns of a design the others make."""

import numpy as np
import pandas as pd

from bids_fixedfx.dependence import column_span, empty_columns, singular_design


def design(**columns):
    return pd.DataFrame(columns)


def test_full_rank_design_has_no_dependent_column():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((40, 3))
    span, lengths, dependent = column_span(values, ["a", "b", "c"])
    assert span.shape == (3, 3) and dependent == []
    np.testing.assert_allclose(lengths, np.linalg.norm(values, axis=0))


def test_the_columns_of_a_dependence_are_named_and_no_others():
    rng = np.random.default_rng(1)
    a, b, c, d = rng.standard_normal((4, 40))
    values = np.column_stack([a, b, c, a - 3 * c, d])  # the fourth is made of the first and third
    span, _, dependent = column_span(values, ["a", "b", "c", "a_minus_c", "d"])
    assert len(span) == 4 and dependent == ["a", "c", "a_minus_c"]


def test_singular_design_text_names_the_columns_or_the_empty_one():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 30))
    text = singular_design("sub-01_task-x_run-1", design(a=a, b=b, twice=2 * b, constant=np.ones(30)))
    assert text.startswith("sub-01_task-x_run-1: the design's columns b, twice are linearly dependent (rank 3 of 4")
    empty = design(a=a, late=np.zeros(30), constant=np.ones(30))
    assert empty_columns(empty.to_numpy()).tolist() == [False, True, False]
    assert "column late is zero in every volume" in singular_design("run", empty)


def test_a_design_singular_at_nilearns_precision_only_is_said_without_naming_columns(monkeypatch):
    from bids_fixedfx import dependence

    rng = np.random.default_rng(3)
    a, b, d = rng.standard_normal((3, 30))
    near = design(a=a, b=b, c=a + 1e-6 * d)  # independent, if barely
    assert column_span(near.to_numpy(), list(near.columns))[2] == []
    monkeypatch.setattr(dependence, "column_span", lambda values, names: (np.eye(3), np.ones(3), []))
    assert singular_design("run", near) == ("run: the design is singular at working precision (nilearn regularises "
                                            "it); look for columns that nearly repeat others among the confounds or "
                                            "the model's X")
