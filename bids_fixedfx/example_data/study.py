"""The simulated study: its task and conditions, and the checked parameters of one dataset.

:class:`Study` holds what a caller asked for (subjects, sessions, runs, grid, volumes, TR,
spaces, seed); it says which runs each subject has (:meth:`Study.runs_of`) and which random
stream feeds which file (:meth:`Study.dataset_rng`, :meth:`Study.subject_rng`,
:meth:`Study.run_rng`), so that the same parameters always give the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

TASK = "checkerboard"
CONDITIONS = ("audio", "visual")
EFFECT_SIZE = 2.5
"""Amplitude (in percent of the baseline) of each condition's regressor."""


@dataclass(frozen=True)
class RunKey:
    """The entities of one run: subject label, session (None without sessions) and run."""

    subject: str
    session: int | None
    run: int
    task: str = TASK


@dataclass(frozen=True)
class Study:
    """The parameters of one example dataset, checked when the record is made.

    Attributes
    ----------
    n_subjects, n_sessions, n_runs : int
        Subjects; sessions per subject; runs per session (1 to 99 subjects and runs).
    shape : tuple of 3 int
        Shape of the template grid, each side at least 12 voxels.
    n_volumes : int
        Volumes per run; ``n_volumes * tr`` is at least 60 s.
    tr : float
        Repetition time in seconds.
    spaces : tuple of str
        Output spaces of the derivatives (alphanumeric labels).
    seed : int
        Seed of every random stream.
    derivatives : bool
        Whether ``derivatives/fmriprep`` is written.
    surfaces : bool
        Whether the derivatives hold surface (fsaverage5 GIFTI) and CIFTI series too.
    task : str
        The task label (alphanumeric).
    conditions : tuple of str
        The ``trial_type`` values; the first two have an effect in their own box, any others
        none.

    Raises
    ------
    ValueError
        If a parameter is out of range; the message names it.
    """

    n_subjects: int = 3
    n_sessions: int = 2
    n_runs: int = 2
    shape: tuple[int, int, int] = (24, 28, 20)
    n_volumes: int = 90
    tr: float = 2.0
    spaces: tuple[str, ...] = ("MNI152NLin2009cAsym", "T1w")
    seed: int = 0
    derivatives: bool = True
    surfaces: bool = False
    task: str = TASK
    conditions: tuple[str, ...] = CONDITIONS

    def __post_init__(self):
        set_ = object.__setattr__  # normalise the frozen fields once, then check them
        set_(self, "shape", tuple(int(s) for s in self.shape))
        set_(self, "spaces", tuple(self.spaces))
        set_(self, "tr", float(self.tr))
        for name in ("n_subjects", "n_sessions", "n_runs", "n_volumes"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            set_(self, name, int(value))
        if self.n_subjects > 99 or self.n_runs > 99:
            raise ValueError("at most 99 subjects and 99 runs are supported")
        if len(self.shape) != 3 or min(self.shape) < 12:
            raise ValueError(
                f"shape must be 3 sides of at least 12 voxels, got {self.shape}"
            )
        if self.tr <= 0:
            raise ValueError(f"tr must be positive, got {self.tr}")
        if self.n_volumes * self.tr < 60:
            raise ValueError("a run must last at least 60 s (n_volumes * tr)")
        if not self.spaces:
            raise ValueError("at least one space is needed")
        for space in self.spaces:
            if not re.fullmatch(r"[A-Za-z0-9]+", space):
                raise ValueError(f"invalid space label {space!r}")
        if not re.fullmatch(r"[A-Za-z0-9]+", self.task):
            raise ValueError(f"invalid task label {self.task!r}")
        set_(self, "conditions", tuple(self.conditions))
        if not self.conditions or len(set(self.conditions)) != len(self.conditions):
            raise ValueError("conditions must be one or more distinct names")
        for condition in self.conditions:
            if not condition or re.search(r"[\t\n\r]", condition) or condition == "n/a":
                raise ValueError(f"invalid condition name {condition!r}")

    @property
    def subjects(self) -> tuple[str, ...]:
        """Subject labels without ``sub-``: ``("01", "02", ...)``."""
        return tuple(f"{i + 1:02d}" for i in range(self.n_subjects))

    @property
    def sessions(self) -> tuple[int | None, ...]:
        """Session numbers, or ``(None,)`` when there is no session level."""
        if self.n_sessions == 1:
            return (None,)
        return tuple(range(1, self.n_sessions + 1))

    def runs_of(self, i_subject: int) -> tuple[RunKey, ...]:
        """The runs of the subject at index ``i_subject``, in the order they are written.

        Parameters
        ----------
        i_subject : int
            Index of the subject in :attr:`subjects`.

        Returns
        -------
        tuple of RunKey
            Every session and run; with three subjects or more, the last subject has a
            single run (first session, ``run-01``).
        """
        label = self.subjects[i_subject]
        if self.n_subjects >= 3 and i_subject == self.n_subjects - 1:
            return (RunKey(label, self.sessions[0], 1, self.task),)
        return tuple(
            RunKey(label, ses, run, self.task)
            for ses in self.sessions
            for run in range(1, self.n_runs + 1)
        )

    def dataset_rng(self) -> np.random.Generator:
        """The random stream of the dataset-level files (``participants.tsv``)."""
        return np.random.default_rng(self.seed)

    def subject_rng(self, i_subject: int) -> np.random.Generator:
        """The random stream of a subject: its signal gain, then its T1w image."""
        return np.random.default_rng([self.seed, i_subject])

    def run_rng(self, i_subject: int, key: RunKey) -> np.random.Generator:
        """The random stream of a run: events, then BOLD series, then confounds."""
        return np.random.default_rng([self.seed, i_subject, key.session or 0, key.run])

    def surface_rng(self, i_subject: int, key: RunKey) -> np.random.Generator:
        """The random stream of a run's surface and CIFTI series (apart from the volume
        files' streams, so that these are the same with or without surfaces)."""
        return np.random.default_rng([self.seed, i_subject, key.session or 0, key.run, 1])
