"""Command-line tools of the test environment, shared by the shipping tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def tool(name: str, package: str) -> str:
    """The path of a command-line tool of the test environment; fail (not skip) if it is missing."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install {package} (.ci/run must install it)")
    return found


def app_command() -> list[str]:
    """The installed command line of the app."""
    script = Path(sys.executable).parent / "bids-fixedfx"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bids_fixedfx"]
