"""A raw dataset's ``.bidsignore``: the files its authors declare outside BIDS.

The BIDS validator skips the files that ``.bidsignore`` names (``.gitignore`` syntax); the
index skips them too, so that a file the dataset declares not to be BIDS (an old events file
beside the current one, a subject moved aside) is never read as a run's. Only the raw
dataset's is read: a derivatives dataset's ``.bidsignore`` names files the app needs
(fMRIPrep's lists ``*_timeseries.tsv``, the confounds).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

#: Lines read at most, and the longest line used (a real dataset's file holds a few short ones).
MAX_LINES, MAX_LENGTH = 1000, 1000


@dataclass(frozen=True)
class IgnoreRule:
    """One ``.gitignore`` pattern, matched against a path relative to the dataset's root
    (``/sub-01/func/x.tsv``) by :meth:`search`, as the index matches its regexes.

    A pattern without a slash but at its end names a file or folder of that name at any depth;
    one with a slash is anchored at the root, its ``**`` parts standing for any number of
    folders. Each part is matched with :func:`fnmatch.fnmatchcase` (``*``, ``?``, ``[...]``,
    within one name; its matching does not backtrack without end on hostile patterns). A
    path inside a folder the rule names is named too.
    """

    pattern: str

    @functools.cached_property  # once a rule: the index asks for every entry it lists
    def parts(self) -> tuple[str, ...]:
        """The pattern's names, runs of ``**`` made one."""
        parts = []
        for part in self.pattern.strip("/").split("/"):
            if part and not (part == "**" and parts[-1:] == ["**"]):
                parts.append(part)
        return tuple(parts)

    @functools.cached_property
    def anchored(self) -> bool:
        return "/" in self.pattern.rstrip("/")

    def search(self, path: str) -> bool:
        """Whether the rule names ``path`` (``/``-led, relative to the dataset's root)."""
        names = tuple(name for name in path.split("/") if name)
        if not self.anchored:
            return any(fnmatchcase(name, self.parts[0]) for name in names)
        return any(_matches(self.parts, names[:end]) for end in range(1, len(names) + 1))


@functools.lru_cache(maxsize=4096)
def _matches(parts: tuple[str, ...], names: tuple[str, ...]) -> bool:
    """Whether the names match the parts, ``**`` standing for any number of names (``a/**``:
    everything inside ``a``). Each (parts, names) pair is solved once: no blow-up."""
    if not parts:
        return not names
    if parts[0] == "**":
        if len(parts) == 1:
            return bool(names)
        return any(_matches(parts[1:], names[i:]) for i in range(len(names) + 1))
    return bool(names) and fnmatchcase(names[0], parts[0]) and _matches(parts[1:], names[1:])


def bidsignore_rules(bids_dir: Path) -> list[IgnoreRule]:
    """The rules of ``BIDS_DIR/.bidsignore`` (see :class:`IgnoreRule`).

    Blank lines and ``#`` comments are skipped; so are ``!`` lines, which re-include files:
    a file they would re-include stays out.

    Parameters
    ----------
    bids_dir : Path

    Returns
    -------
    rules : list of IgnoreRule
        Empty when the dataset has no readable ``.bidsignore`` (or one that is no regular
        file); of a longer file, its first :data:`MAX_LINES` lines' worth of bytes is read.
    """
    path = Path(bids_dir) / ".bidsignore"
    try:
        if not path.is_file():  # missing, or a folder, a device or a pipe (/dev/zero would be read for ever)
            return []
        with open(path, "rb") as file:  # at most the lines read, at their longest
            text = file.read(MAX_LINES * (MAX_LENGTH + 1)).decode("utf-8", errors="replace")
    except OSError:
        return []
    rules = []
    for line in text.splitlines()[:MAX_LINES]:
        line = line.strip()
        if line and len(line) <= MAX_LENGTH and not line.startswith(("#", "!")) and line.strip("/*"):
            rules.append(IgnoreRule(line))
    return rules


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
    rules = bidsignore_rules(bids_dir)
    return [label for label in subjects if any(rule.search(f"/sub-{label}") for rule in rules)]


def ignoring_rule(rules, root: Path, path: Path) -> IgnoreRule | None:
    """The first of ``rules`` (a dataset's, :func:`bidsignore_rules`) that names ``path``, a
    file under ``root``; None when none does (or ``path`` is not under ``root``)."""
    try:
        relative = "/" + Path(path).relative_to(root).as_posix()
    except ValueError:
        return None
    return next((rule for rule in rules if rule.search(relative)), None)


def ignored_events(bids_dir: Path, entities) -> tuple[str, str] | None:
    """An events file of a run in ``bids_dir`` that its ``.bidsignore`` hides, and the rule that
    hides it, so that a run without events can say why; None when there is none.

    Parameters
    ----------
    bids_dir : Path
    entities : sequence of (str, str)
        The run's entities (``("sub", "01"), ("task", "x"), ("run", "3")``); run numbers
        compare as numbers (``run-03`` is run 3).

    Returns
    -------
    found : (str, str) or None
        The file's path relative to ``bids_dir``, and the rule's pattern.
    """
    rules = bidsignore_rules(bids_dir)
    wanted = dict(entities)
    if not rules or "sub" not in wanted:
        return None
    folder = Path(bids_dir) / f"sub-{wanted['sub']}" / (f"ses-{wanted['ses']}" if "ses" in wanted else "") / "func"
    try:
        names = sorted(p.name for p in folder.iterdir() if p.name.endswith("_events.tsv"))
    except OSError:
        return None
    for name in names:
        parts = dict(part.split("-", 1) for part in name.removesuffix("_events.tsv").split("_") if "-" in part)
        if all(_same_label(parts.get(key), value) for key, value in wanted.items()):
            rule = ignoring_rule(rules, Path(bids_dir), folder / name)
            if rule is not None:
                return (folder / name).relative_to(bids_dir).as_posix(), rule.pattern
    return None


def _same_label(found, wanted) -> bool:
    if found is None:
        return False
    return found == wanted or (found.isdigit() and str(wanted).isdigit() and int(found) == int(wanted))
