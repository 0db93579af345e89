"""The benchmarks' measurement of a command (``benchmarks/measure.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from measure import measure_tree  # noqa: E402


def test_wall_time_ends_with_the_command_not_at_the_next_sample():
    result = measure_tree([sys.executable, "-c", "import time; time.sleep(0.2)"], interval=5.0)
    assert result["code"] == 0
    assert 0.2 <= result["seconds"] < 2.0  # a sleep between samples would make it 5 s
    assert result["samples"] >= 1


def test_peak_memory_and_exit_code_of_a_process_tree(tmp_path):
    child = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.6)"
    parent = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {child!r}]) + 3)"
    result = measure_tree([sys.executable, "-c", parent], interval=0.05, log=tmp_path / "log")
    assert result["code"] == 3
    assert result["peak_mb"] > 200  # the child's memory counts with the parent's
    assert result["max_rss_mb"] > 200
    assert result["cpu_seconds"] > 0


@pytest.mark.parametrize("seconds", [0.0, 0.3])
def test_measures_short_and_longer_commands(seconds):
    result = measure_tree([sys.executable, "-c", f"import time; time.sleep({seconds})"], interval=0.05)
    assert result["seconds"] >= seconds
    assert result["code"] == 0
