"""A raw dataset's ``.bidsignore``: the files its authors declare outside BIDS.

The BIDS validator skips the files that ``.bidsignore`` names (``.gitignore`` syntax); the
index skips them too, so that a file the dataset declares not to be BIDS (an old events file
beside the current one, a subject moved aside) is never read as a run's. Only the raw
dataset's is read: a derivatives dataset's ``.bidsignore`` names files the app needs
(fMRIPrep's lists ``*_timeseries.tsv``, the confounds).
"""

from __future__ import annotations

import re
from pathlib import Path

#: Lines read at most (a ``.bidsignore`` of a real dataset holds a few).
MAX_LINES = 1000


def bidsignore_patterns(bids_dir: Path) -> list[str]:
    """Regexes of the paths ``BIDS_DIR/.bidsignore`` names, matched as the index matches its
    own (against ``/``-led paths relative to the dataset's root).

    ``.gitignore`` syntax: a pattern without a slash but at its end matches a name at any
    depth, one with a slash is anchored at the root; ``*`` and ``?`` stay within a folder,
    ``**`` crosses folders; a pattern naming a folder names everything in it. Blank lines
    and ``#`` comments are skipped; so are ``!`` lines, which re-include files: a file
    they would re-include stays out.

    Parameters
    ----------
    bids_dir : Path

    Returns
    -------
    patterns : list of str
        Empty when the dataset has no readable ``.bidsignore``.
    """
    try:
        text = (Path(bids_dir) / ".bidsignore").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    patterns = []
    for line in text.splitlines()[:MAX_LINES]:
        line = line.strip()
        if line and not line.startswith(("#", "!")) and line.strip("/*"):
            regex = glob_regex(line)
            try:
                re.compile(regex)
            except re.error:  # a bracket no glob reads as a set (``[z-a]``): the name as written
                regex = glob_regex(re.sub(r"([\\\[\]*?])", r"\\\1", line))
            patterns.append(regex)
    return patterns


def declared_subjects(bids_dir: Path, subjects) -> list[str]:
    """The subjects among ``subjects`` whose folder in ``bids_dir`` its ``.bidsignore`` names.

    Parameters
    ----------
    bids_dir : Path
    subjects : iterable of str
        Labels, without ``sub-``.

    Returns
    -------
    labels : list of str
    """
    patterns = [re.compile(pattern) for pattern in bidsignore_patterns(bids_dir)]
    return [label for label in subjects if any(p.search(f"/sub-{label}") for p in patterns)]


def glob_regex(pattern: str) -> str:
    """The regex of one ``.gitignore`` pattern (see :func:`bidsignore_patterns`)."""
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.strip("/")
    parts, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            members = pattern[i + 1:end]
            negated = members[:1] in ("!", "^")
            members = members[1:] if negated else members
            parts.append("[" + ("^" if negated else "") + members.replace("\\", "\\\\").replace("[", "\\[") + "]")
            i = end + 1
        elif pattern[i] == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return ("^/" if anchored else "(?:^|/)") + "".join(parts) + "(?:/|$)"
