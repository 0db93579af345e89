"""Notes: what a user should know about a run, a subject or the whole analysis, as data.

Reports and the methods text pick notes by their fields (``subject``, ``task``, ``run``,
``kind``), never by matching their wording.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

#: The kinds of note, and what each means.
KINDS = {
    "selection": "about what was selected (labels, derivatives, files not used)",
    "model": "how the model file was read (legacy spellings, blanks, defaults it left open)",
    "no-confounds": "a run was modelled without confounds",
    "confounds-unmatched": "a --confounds wildcard matched no column of a run's confounds (it matched others')",
    "imputed": "a confound's missing first value was set to the second (as nilearn does)",
    "censored": "volumes were left out of a fit by a confound strategy",
    "dummy-scans": "the non-steady-state columns of fMRIPrep's confounds were used instead of --dummy-scans",
    "design": "a remark of nilearn's while building a design",
    "empty-condition": "a condition none of whose events falls within its run",
    "fit": "a remark of nilearn's while fitting",
    "contrast-skipped": "a contrast was not computed in a run that lacks one of its columns",
    "contrast-not-estimable": "a contrast was not computed in a run whose design's columns are linearly dependent",
    "contrast-weights": "a contrast weighs other columns in other runs of a subject (a weight list)",
    "run-left-out": "a run was left out of its subject's maps",
    "subject-left-out": "a subject was left out of a group test, having no maps of its contrast",
    "mask": "about a run's mask, or a group mask that subject masks shrink",
}


@dataclass(frozen=True)
class Note:
    """One warning, with what it is about.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    text : str
        The sentence shown to the user (says what to do about it).
    subject, task, run : str or None
        What it is about: ``run`` is the run's name (``sub-01_task-x_run-01``); None
        where the note is about more than one.
    """

    kind: str
    text: str
    subject: str | None = None
    task: str | None = None
    run: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Unknown kind of note {self.kind!r}.")

    def __str__(self) -> str:
        return self.text

    def about(self, subject=None, task=None) -> bool:
        """Whether the note concerns this subject (and task): its own, or everyone's."""
        return (self.subject in (None, subject)) and (task is None or self.task in (None, task))

    @classmethod
    def for_run(cls, run, kind: str, text: str) -> Note:
        """A note about one run (a :class:`~bids_fixedfx.discover.Run`)."""
        return cls(kind, text, subject=run.subject, task=run.task, run=run.name)


def one_line(message) -> str:
    """A library's warning as one log line: nilearn's lists (``conditions:\\n- 'press'\\n``) joined
    with spaces, the trailing colon and blanks gone."""
    return " ".join(str(message).split()).rstrip(":")


#: A subject's or run's name in a note (``sub-01``, ``sub-01_ses-1_task-x_run-02``).
_NAMED = re.compile(r"sub-[A-Za-z0-9]+(?:_[a-z]+-[A-Za-z0-9]+)*")
#: How many notes of one wording the log says in full before it names the others only.
SAID_IN_FULL = 3


def said_once(texts) -> list[str]:
    """The log's lines for notes: those of one wording about different runs or subjects (a
    hundred runs without a brain mask) said in full up to :data:`SAID_IN_FULL` times, then once
    more naming the others; the sidecars and reports keep every note.

    Parameters
    ----------
    texts : iterable of str

    Returns
    -------
    lines : list of str
    """
    groups = {}
    for text in dict.fromkeys(texts):
        groups.setdefault(_NAMED.sub("…", text), []).append(text)
    lines = []
    for members in groups.values():
        lines += members[:SAID_IN_FULL]
        if members[SAID_IN_FULL:]:
            lines.append(f"The same for {_others(members[SAID_IN_FULL:])}.")
    return lines


def _others(rest) -> str:
    """``"7 more: sub-04_task-x_run-1, ... and 2 others"``: the runs or subjects notes name."""
    names = [found.group(0) for found in map(_NAMED.search, rest) if found]
    others = f" and {len(names) - 5} others" if len(names) > 5 else ""
    return f"{len(rest)} more: {', '.join(names[:5])}{others}"


class Repeats:
    """:func:`said_once` for notes that come one at a time (those said while the runs are
    fitted): :meth:`say` tells whether to log a note now (the first :data:`SAID_IN_FULL` of its
    wording), :meth:`rest` gives the lines that name the others, for the end."""

    def __init__(self):
        self._groups = {}

    def say(self, text: str) -> bool:
        """Whether ``text`` is to be logged now (a note said before is not said again)."""
        members = self._groups.setdefault(_NAMED.sub("…", text), [])
        if text in members:
            return False
        members.append(text)
        return len(members) <= SAID_IN_FULL

    def rest(self) -> list[str]:
        """One line for each wording said more than :data:`SAID_IN_FULL` times, naming the others."""
        lines = []
        for members in self._groups.values():
            if members[SAID_IN_FULL:]:
                first = _NAMED.search(members[0])
                lines.append(f"The warning about {first.group(0) if first else 'the first'} above holds for "
                             f"{_others(members[SAID_IN_FULL:])}.")
        return lines


@lru_cache(maxsize=None)
def warn_once(text: str) -> None:
    """Log a warning once in this process: a file found bad by a step run for every run or
    subject (an unreadable BOLD reference, another pipeline's broken description)."""
    logging.getLogger("bids_fixedfx").warning("%s", text)
