"""Contrast expressions are parsed into linear combinations, never evaluated."""

from __future__ import annotations

import numpy as np
import pytest

from bids_fixedfx.errors import UsageError
from bids_fixedfx.expression import WEIGHT_LIST, check_characters, parse_expression


@pytest.mark.parametrize(
    ("text", "weights"),
    [
        ("faces", {"faces": 1}),
        ("DSt+DSp-SSt-SSp", {"DSt": 1, "DSp": 1, "SSt": -1, "SSp": -1}),
        ("0.5*(faces + houses) - scrambled", {"faces": 0.5, "houses": 0.5, "scrambled": -1}),
        ("-(a - 2*b)*3", {"a": -3, "b": 6}),
        ("2*(a - b)/4", {"a": 0.5, "b": -0.5}),
        ("a/3 + a/3 + a/3", {"a": 1}),
        ("1e-1 * a - .5*b", {"a": 0.1, "b": -0.5}),
        ("  trial_type.face -  trial_type.house ", {"trial_type.face": 1, "trial_type.house": -1}),
        ("--a", {"a": 1}),
        ("áudio - visual", {"áudio": 1, "visual": -1}),
    ],
)
def test_linear_combinations(text, weights):
    parsed = dict(parse_expression(text).weights)
    assert parsed.keys() == weights.keys()
    for name, weight in weights.items():
        assert parsed[name] == pytest.approx(weight)


def test_vector_over_the_design_columns():
    combination = parse_expression("b - 0.5*a + b")
    assert combination.vector(["a", "b", "c"]).tolist() == [-0.5, 2.0, 0.0]
    with pytest.raises(KeyError):
        combination.vector(["a", "c"])


def test_same_vector_as_nilearn_on_plain_expressions():
    """Where nilearn's evaluator is harmless, the parser gives its vectors."""
    from nilearn.glm.contrasts import expression_to_contrast_vector

    columns = ["audio", "visual", "drift_1", "constant"]
    for text in ("audio - visual", "audio + visual", "0.5*audio - 2*visual", "(audio - visual)/2"):
        expected = expression_to_contrast_vector(text, columns)
        np.testing.assert_allclose(parse_expression(text).vector(columns), expected)


HOSTILE = [
    'audio.__class__.__init__.__globals__["sys"].modules["os"].system("touch PWNED")',
    'audio.to_csv("f")',
    "audio.to_csv(f)",
    '__import__("os").system("touch PWNED")',
    "@audio",
    "audio[0]",
    "audio if 1 else 0",
    "lambda: 0",
    "audio ** 2",
    "audio * visual",
    "audio / visual",
    "audio / 0",
    "audio + 1",
    "audio; visual",
    "audio, visual",
    "`audio`",
    "audio == visual",
    "(audio",
    "audio)",
    "",
    "   ",
    "1e999 * audio",
    "1e300 * audio",  # finite, but its variance map overflowed single precision
    "audio * 1e-999 - visual",  # a weight that read as 0
    "(" * 500 + "audio" + ")" * 500,
    "a" * 20_000,
    "audio\x00",
    "audio - visual\u202e",
    "\u0661*audio",  # an Arabic-Indic 1, which Python's \\d and float() read as 1
    "audio - \uff12*visual",  # a fullwidth 2
]


@pytest.mark.parametrize("text", HOSTILE)
def test_anything_but_a_linear_combination_is_refused(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as error:
        parse_expression(text, where="--contrast x")
    message = str(error.value)
    assert message.startswith("--contrast x")
    assert "\n" not in message
    assert not list(tmp_path.iterdir())  # nothing was run


def test_character_check_refuses_code_but_allows_names():
    check_characters("audio - visual")
    check_characters("go-left")  # may still be one column's name
    with pytest.raises(UsageError, match="--contrast x"):
        check_characters('audio.to_csv("f")', "--contrast x")


def test_weight_lists():
    assert WEIGHT_LIST.match("-1,-1,1,1")
    assert WEIGHT_LIST.match(" 0.5 , -.5 ,1e-3")
    assert not WEIGHT_LIST.match("1,,2")
    assert not WEIGHT_LIST.match("a,1")


@pytest.mark.parametrize("text, name", [("2back-0back", "2back"), ("a - 2b", "2b"), ("0.5*(1st+2nd)", "1st")])
def test_a_name_that_starts_with_a_digit_is_said_to(text, name):
    """n-back conditions (2back): the error was "unexpected 'back'"."""
    with pytest.raises(UsageError) as error:
        parse_expression(text, "--contrast d")
    assert f"names {name!r}, which starts with a digit" in str(error.value)
    assert "comma-separated weights" in str(error.value) and "2*name" in str(error.value)
    assert parse_expression("2*back - 0.5 * a").weights == (("back", 2.0), ("a", -0.5))  # weights still read
    check_characters(text)  # a column's whole name may start with a digit (the column, as nilearn reads it)


@pytest.mark.parametrize("text, column", [("go-nogo - face house", "face house"), ("face house", "face house"),
                                          ("2*left hand + right", "left hand")])
def test_a_column_name_with_a_space_is_said_to_be_given_alone_or_by_weights(text, column):
    """A column of events' trial type 'face house': the error was "unexpected 'house'"."""
    with pytest.raises(UsageError) as error:
        parse_expression(text, "--contrast d")
    said = str(error.value)
    assert f"(such as {column!r})" in said
    assert "name alone" in said and "comma-separated weights" in said
    with pytest.raises(UsageError, match="unexpected '2'"):  # a number after a name is another slip
        parse_expression("face 2", "--contrast d")
