"""The official BIDS validator, run on the input dataset (or on the selected subjects)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import InvalidBIDSError
from .folders import _selected

logger = logging.getLogger("bids_fixedfx")


def validator_command() -> str | None:
    """Find the official BIDS validator (``bids-validator-deno``).

    Returns
    -------
    command : str or None
        Its path, on PATH or beside this Python interpreter; None when it is not installed.
    """
    beside = Path(sys.executable).parent / "bids-validator-deno"
    return shutil.which("bids-validator-deno") or (str(beside) if beside.is_file() else None)


def validate_input_dir(bids_dir: Path, participant_label: tuple[str, ...] = ()) -> None:
    """Run the official BIDS validator on the input dataset.

    Parameters
    ----------
    bids_dir : Path
        The root of the BIDS dataset.
    participant_label : tuple of str, optional
        Validate only these subjects' folders, their rows of ``participants.tsv`` and the
        files outside every subject's folder (through a temporary folder of links), so that a
        job of one subject of a large dataset does not validate every other subject (a
        top-level sidecar is then not required to have data files among them); all subjects
        when empty or when none of them has a folder.

    Raises
    ------
    InvalidBIDSError
        When the validator reports an error; the message names the first file at fault.
    """
    Validation(bids_dir, participant_label).verdict()


#: Top-level folders that the validator does not validate (without ``--recursive``) but walks
#: all the same: a job of one subject does not show it every subject's derivatives (2.3 s
#: against 0.5 s for 1,000 subjects) or source data.
UNREAD_FOLDERS = frozenset({"derivatives", "sourcedata"})


class Validation:
    """The official BIDS validator, started at once in a process of its own on the input
    dataset (see :func:`validate_input_dir`); :meth:`verdict` waits for it.

    The work done meanwhile may fork (:mod:`..forked`): no thread waits for the validator.
    """

    def __init__(self, bids_dir: Path, participant_label: tuple[str, ...] = ()):
        self.bids_dir = bids_dir
        self._process = self._scratch = None
        self._subset = False
        command = validator_command()
        if command is None:
            logger.warning(
                "bids-validator-deno is not installed, so %s was not validated; "
                "install it (pip install bids-validator-deno) or pass --skip-bids-validation.",
                bids_dir,
            )
            return
        entries = list(os.scandir(bids_dir))
        subjects = [e.name for e in entries if e.is_dir() and e.name.startswith("sub-")]
        self._subset = bool(participant_label) and any(_selected(name, participant_label) for name in subjects)
        logger.info("Validating %s%s with the BIDS validator", bids_dir,
                    f" (the files of {', '.join(f'sub-{label}' for label in participant_label)})" if self._subset else "")
        target = bids_dir
        if self._subset:  # (labels that match no subject: the whole dataset, whose run then stops at them)
            self._scratch = tempfile.TemporaryDirectory(prefix="bids-fixedfx-validate-")
            target = Path(self._scratch.name) / "dataset"
            target.mkdir()
            for entry in entries:
                if entry.name in UNREAD_FOLDERS:
                    continue
                if entry.name == "participants.tsv" and entry.is_file():
                    _selected_rows(Path(entry.path), target / entry.name, participant_label)
                elif _selected(entry.name, participant_label) or not entry.is_dir():
                    (target / entry.name).symlink_to(Path(bids_dir, entry.name).absolute())
        self._process = subprocess.Popen(
            [command, "--format", "json", "--ignoreWarnings", str(target)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def verdict(self) -> None:
        """Wait for the validator, and raise if the dataset is not valid.

        Raises
        ------
        InvalidBIDSError
            When the validator reports an error; the message names the first file at fault.
        """
        if self._process is None:
            return
        try:
            stdout, stderr = self._process.communicate()
        finally:
            self.close()
        errors = _validator_errors(stdout)
        if errors and self._subset:  # a top-level sidecar's data files may all lie in other subjects
            errors = [(code, location) for code, location in errors
                      if not (code == "SIDECAR_WITHOUT_DATAFILE" and location.count("/") == 1)]
        if errors is None:
            if self._process.returncode != 0:
                raise InvalidBIDSError(
                    f"The BIDS validator stopped on {self.bids_dir} without a report "
                    f"({_first_reason(stderr or stdout, self._process.returncode)}); run bids-validator-deno "
                    f"{self.bids_dir} to see why (a link to a system folder, say), or pass --skip-bids-validation."
                )
            return
        if errors:
            code, location, count = errors[0][0], errors[0][1], len(errors)
            raise InvalidBIDSError(
                f"{self.bids_dir} is not valid BIDS: {code} at {location or 'the dataset root'} "
                f"({count} error{'s' if count > 1 else ''}; run bids-validator-deno {self.bids_dir} "
                f"for details, or pass --skip-bids-validation)."
            )

    def close(self) -> None:
        """End the validator if it still runs (an interrupted run); remove its folder of links."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None


def _first_reason(text, returncode) -> str:
    """The first line of a validator's output that is not a stack frame, without its colours
    (deno's traces end with one), or its exit code."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text or "")
    lines = [line.strip() for line in plain.splitlines() if line.strip() and not line.strip().startswith("at ")]
    return " ".join(lines[0].split())[:200].rstrip(".") if lines else f"exit code {returncode}"


def _selected_rows(source: Path, target: Path, participant_label) -> None:
    """``participants.tsv`` for a validation of some subjects: its header and the rows of
    those subjects, so that a validator that checks its rows against the subjects' folders
    finds the ones it is shown (a table without a ``participant_id`` column, or that cannot
    be read as text, is linked as it is, for the validator to judge)."""
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
        column = lines[0].split("\t").index("participant_id")
    except (OSError, UnicodeDecodeError, IndexError, ValueError):
        target.symlink_to(source.absolute())
        return
    wanted = {f"sub-{label}" for label in participant_label}
    kept = [line for line in lines[1:] if (line.split("\t") + [""] * (column + 1))[column].strip() in wanted]
    target.write_text("\n".join([lines[0], *kept]) + "\n", encoding="utf-8")


def _validator_errors(stdout):
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    issues = report.get("issues", {}).get("issues", [])
    return [
        (issue.get("code", "ERROR"), issue.get("location", ""))
        for issue in issues
        if issue.get("severity") == "error"
    ]
