"""Progress of long work: what is left, with an estimate of the time it takes."""

from __future__ import annotations

import logging

#: Log level of a level's closing summary: shown by ``--quiet``, which hides INFO lines.
SUMMARY = 25


class WarningCount(logging.Handler):
    """Counts the warnings a job says (its closing summary tells how many are above)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record) -> None:
        self.count += 1


def warnings_above(logger_name: str = "bids_fixedfx") -> str | None:
    """`` (3 warning(s) above)`` for a closing summary, from the logger's :class:`WarningCount`:
    ``""`` when none was said, None when none is counted (the app run from Python)."""
    counted = [h.count for h in logging.getLogger(logger_name).handlers if isinstance(h, WarningCount)]
    if not counted:
        return None
    return f" ({counted[0]} warning(s) above)" if counted[0] else ""


def remaining(done: int, total: int, elapsed: float) -> str:
    """A suffix for a progress line: the time left at the pace so far.

    Parameters
    ----------
    done, total : int
        Steps done, and of how many.
    elapsed : float
        Seconds since the first step started.

    Returns
    -------
    text : str
        ``"; about 2 min 10 s left"``, or ``""`` when nothing is left or nothing is known.

    Examples
    --------
    >>> remaining(1, 4, 30.0)
    '; about 1 min 30 s left'
    >>> remaining(4, 4, 99.0)
    ''
    """
    if done <= 0 or done >= total or elapsed <= 0:
        return ""
    return f"; about {duration(elapsed / done * (total - done))} left"


def duration(seconds: float) -> str:
    """Seconds as ``"45 s"``, ``"2 min 10 s"`` or ``"1 h 5 min"``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
