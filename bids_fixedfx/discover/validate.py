"""The official BIDS validator, run on the input dataset (or on the selected subjects)."""

from __future__ import annotations

import json
import logging
import os
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
        Validate only these subjects' folders and the files outside every subject's folder
        (through a temporary folder of links), so that a job of one subject of a large
        dataset does not validate every other subject; all subjects when empty.

    Raises
    ------
    InvalidBIDSError
        When the validator reports an error; the message names the first file at fault.
    """
    command = validator_command()
    if command is None:
        logger.warning(
            "bids-validator-deno is not installed, so %s was not validated; "
            "install it (pip install bids-validator-deno) or pass --skip-bids-validation.",
            bids_dir,
        )
        return
    logger.info("Validating %s with the BIDS validator", bids_dir)
    with tempfile.TemporaryDirectory(prefix="bids-fixedfx-validate-") as scratch:
        target = bids_dir
        if participant_label:
            target = Path(scratch) / "dataset"
            target.mkdir()
            for entry in os.scandir(bids_dir):
                if _selected(entry.name, participant_label) or not entry.is_dir():
                    (target / entry.name).symlink_to(Path(bids_dir, entry.name).absolute())
        done = subprocess.run(
            [command, "--format", "json", "--ignoreWarnings", str(target)],
            capture_output=True, text=True, check=False,
        )
    errors = _validator_errors(done.stdout)
    if errors is None:
        if done.returncode != 0:
            raise InvalidBIDSError(
                f"The BIDS validator failed on {bids_dir}: "
                f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}."
            )
        return
    if errors:
        code, location, count = errors[0][0], errors[0][1], len(errors)
        raise InvalidBIDSError(
            f"{bids_dir} is not valid BIDS: {code} at {location or 'the dataset root'} "
            f"({count} error{'s' if count > 1 else ''}; run bids-validator-deno {bids_dir} "
            f"for details, or pass --skip-bids-validation)."
        )


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
