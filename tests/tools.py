"""Command-line tools of the test environment, shared by the shipping tests."""

from __future__ import annotations

import hashlib
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


def checksums(root) -> dict:
    """SHA-256 of every file under ``root`` (to show that an input was not written to)."""
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def fails(capsys, args, code, *named, output=None) -> str:
    """Run the app; check the exit code, that the message is one line naming each of
    ``named``, that nothing was written to the output and that the input is unchanged."""
    from bids_fixedfx.cli import main

    bids_dir = Path(args[0])
    before = checksums(bids_dir) if bids_dir.is_dir() else None
    assert main([str(a) for a in args]) == code
    message = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line or "error:" in line]
    assert len(message) == 1, message
    for name in named:
        assert str(name) in message[0], (name, message[0])
    out = Path(output or args[1])
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], "files were written"
    if before is not None:
        assert checksums(bids_dir) == before
    return message[0]
