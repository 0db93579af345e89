"""The methods text as LaTeX, through pandoc when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def to_latex(keyed: str, logs: Path) -> str | None:
    """A LaTeX document of the methods text citing ``CITATION.bib`` (biblatex).

    Parameters
    ----------
    keyed : str
        Markdown with pandoc citations.
    logs : Path
        The folder of ``CITATION.bib`` (pandoc runs there).

    Returns
    -------
    tex : str or None
        None when pandoc is not installed or fails.
    """
    pandoc = shutil.which("pandoc")
    if pandoc is None:
        return None
    done = subprocess.run(
        [pandoc, "--from", "markdown", "--to", "latex", "--standalone", "--biblatex",
         "--bibliography", "CITATION.bib"],
        input=keyed, capture_output=True, text=True, cwd=logs, check=False,
    )
    return done.stdout if done.returncode == 0 and done.stdout else None
