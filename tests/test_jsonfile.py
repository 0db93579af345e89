"""Reading a JSON object from a file a user gave: one sentence naming the file per failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from bids_fixedfx.errors import EX_NO_INPUT, EX_USAGE, InputFileError, UsageError
from bids_fixedfx.jsonfile import read_object


def test_an_object_is_read_with_or_without_a_byte_order_mark(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"RepetitionTime": 2}', encoding="utf-8-sig")
    assert read_object(path) == {"RepetitionTime": 2}


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist; rerun it"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b'{"a": 1,}', "is not valid JSON: Expecting property name"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"a": ' + b"9" * 5000 + b"}", "too long a number"),
    (b"[1, 2]", "must hold a JSON object, not an array"),
    (b'"text"', "must hold a JSON object, not a string"),
    (b'{"StartTime": 1e-400}', "holds the number 1e-400, too small to be told from 0"),  # read as 0
])
def test_each_failure_is_one_sentence_naming_the_file(tmp_path, content, message):
    path = tmp_path / "b.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputFileError) as caught:
        read_object(path, "The sidecar", missing="rerun it")
    text = str(caught.value)
    assert text.startswith(f"The sidecar {path} ") and message in text and text.count("\n") == 0
    assert caught.value.exit_code == EX_NO_INPUT


def test_an_option_s_file_is_a_usage_error(tmp_path):
    path = tmp_path / "filters.json"
    path.write_text("{")
    with pytest.raises(UsageError, match="--bids-filter-file .*filters.json is not valid JSON") as caught:
        read_object(path, "--bids-filter-file", UsageError)
    assert caught.value.exit_code == EX_USAGE
    # a file missing is the input's fault (66), as a missing mask or events file, whatever option names it
    with pytest.raises(InputFileError, match="--bids-filter-file .*nothing.json does not exist") as caught:
        read_object(tmp_path / "nothing.json", "--bids-filter-file", UsageError)
    assert caught.value.exit_code == EX_NO_INPUT


def test_a_folder_or_a_device_is_not_read(tmp_path):
    with pytest.raises(InputFileError, match="is not a regular file"):
        read_object(tmp_path, "The sidecar")
    with pytest.raises(InputFileError, match="/dev/zero is not a regular file"):
        read_object("/dev/zero")


def test_a_file_larger_than_any_json_file_the_app_reads_is_refused_unread(tmp_path, monkeypatch):
    """A 3 GB sidecar (sparse) took 6.4 GB of memory and 20 s before 'not valid JSON'."""
    path = tmp_path / "huge.json"
    with open(path, "wb") as sparse:
        sparse.truncate(3 << 30)
    monkeypatch.setattr(Path, "read_text", lambda *args, **kwargs: pytest.fail("the file was read"))
    with pytest.raises(InputFileError, match=f"{path} holds 3,072 MB, more than any JSON file the app reads"):
        read_object(path)
