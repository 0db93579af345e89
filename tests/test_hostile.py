"""Hostile input, as an attacker or a careless web form would send it (SPEC §1, §4).

Each case asserts the exit code, one sentence naming the culprit, an input dataset that is
byte-identical afterwards, and no file written.
"""

from __future__ import annotations

import pytest

from tools import fails

EXPLOITS = [
    'audio.__class__.__init__.__globals__["sys"].modules["os"].system("touch PWNED")',
    'audio.to_csv("PWNED")',
    "audio.to_csv(PWNED)",
    '__import__("os").system("touch PWNED")',
    "@audio",
]


@pytest.fixture
def one_subject(fresh_dataset):
    return fresh_dataset(subjects=("01",))


@pytest.mark.parametrize("expression", EXPLOITS)
def test_contrast_expressions_are_never_evaluated(one_subject, tmp_path, capsys, monkeypatch, expression):
    monkeypatch.chdir(tmp_path)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation",
                   "--contrast", f"x={expression}"], 64, "--contrast x")
    assert not list(tmp_path.rglob("PWNED"))


def test_a_name_with_attribute_syntax_is_just_an_unknown_column(one_subject, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation",
                   "--contrast", "x=audio.__class__"], 64, "--contrast x", "audio.__class__")
