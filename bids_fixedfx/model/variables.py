"""Variables that transformations act on: events columns (sparse), confounds (dense), table
columns such as ``participants.tsv`` (simple), as pybids' variables are, without the I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Default sampling rate (Hz) of densified events, as pybids'.
SAMPLING_RATE = 10.0


@dataclass(frozen=True, eq=False)
class Variable:
    """One variable.

    Attributes
    ----------
    name : str
    values : numpy.ndarray
        Float for numbers; object (str, NaN for missing) for categories.
    onset, duration : numpy.ndarray or None
        Seconds, for a sparse (event) variable.
    times : numpy.ndarray or None
        Sample times in seconds, for a dense variable.
    source : str
        ``events``, ``confounds``, ``table`` or ``convolved``.
    """

    name: str
    values: np.ndarray
    onset: np.ndarray | None = None
    duration: np.ndarray | None = None
    times: np.ndarray | None = None
    source: str = "events"

    @property
    def kind(self) -> str:
        """``sparse``, ``dense`` or ``simple``."""
        if self.onset is not None:
            return "sparse"
        return "dense" if self.times is not None else "simple"

    @property
    def numeric(self) -> bool:
        """Whether the values are numbers (or booleans)."""
        return self.values.dtype.kind in "bifu"

    def replace(self, **changes) -> Variable:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def select(self, rows) -> Variable:
        """Keep some rows (events of a sparse variable, samples otherwise)."""
        rows = np.asarray(rows)
        return self.replace(
            values=self.values[rows],
            onset=None if self.onset is None else self.onset[rows],
            duration=None if self.duration is None else self.duration[rows],
            times=None if self.times is None else self.times[rows],
        )


@dataclass(frozen=True, eq=False)
class Variables:
    """The variables of one run (or one table), in order, with the run's timing.

    Attributes
    ----------
    variables : dict of str to Variable
    frame_times : numpy.ndarray or None
        Acquisition times of the volumes (run level).
    duration : float or None
        Run length in seconds (``n_volumes * tr``).
    sampling_rate : float
        Rate at which events are densified.
    """

    variables: dict = field(default_factory=dict)
    frame_times: np.ndarray | None = None
    duration: float | None = None
    sampling_rate: float = SAMPLING_RATE

    def __getitem__(self, name) -> Variable:
        return self.variables[name]

    def __contains__(self, name) -> bool:
        return name in self.variables

    @property
    def names(self) -> tuple:
        """Variable names, in order."""
        return tuple(self.variables)

    def with_variables(self, variables: dict) -> Variables:
        """The same run with other variables."""
        return dataclasses.replace(self, variables=dict(variables))


def _column_values(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    values = series.astype(object).to_numpy()
    return np.array([np.nan if pd.isna(v) else v for v in values], dtype=object)


def run_variables(events: pd.DataFrame | None, confounds: pd.DataFrame | None, *, frame_times,
                  tr: float, sampling_rate: float = SAMPLING_RATE) -> Variables:
    """A run's variables: each events column but ``onset``/``duration`` a sparse variable,
    each confounds column a dense variable at the frame times.

    Parameters
    ----------
    events : pandas.DataFrame or None
        BIDS events (``onset``, ``duration``, other columns; missing values as NaN).
    confounds : pandas.DataFrame or None
        One row per volume.
    frame_times : numpy.ndarray
    tr : float
    sampling_rate : float

    Returns
    -------
    variables : Variables
    """
    frame_times = np.asarray(frame_times, dtype=float)
    variables = {}
    if events is not None and len(events.columns):
        onset = events["onset"].to_numpy(dtype=float)
        duration = events["duration"].to_numpy(dtype=float)
        for column in events.columns:
            if column not in ("onset", "duration"):
                variables[str(column)] = Variable(str(column), _column_values(events[column]), onset, duration)
    if confounds is not None:
        if len(confounds) != len(frame_times):
            from .bsm import ModelError

            raise ModelError(f"The confounds have {len(confounds)} rows but the run has {len(frame_times)} volumes.")
        for column in confounds.columns:
            variables[str(column)] = Variable(str(column), _column_values(confounds[column]),
                                              times=frame_times, source="confounds")
    return Variables(variables, frame_times=frame_times, duration=len(frame_times) * float(tr),
                     sampling_rate=sampling_rate)


def table_variables(table: pd.DataFrame) -> Variables:
    """Simple variables from a table (``participants.tsv``, a node's inputs): one per column."""
    return Variables({str(c): Variable(str(c), _column_values(table[c]), source="table") for c in table.columns})


def dense_times(variables: Variables) -> np.ndarray:
    """Sample times at the collection's sampling rate over the run."""
    n = int(np.ceil(round(variables.duration * variables.sampling_rate, 3)))
    return np.arange(n) / variables.sampling_rate


def sample(variable: Variable, times: np.ndarray) -> np.ndarray:
    """A numeric variable's values at ``times``: a sparse one as a boxcar (the last event
    covering a time wins), a dense one interpolated (exact when the times are its own)."""
    times = np.asarray(times, dtype=float)
    values = variable.values.astype(float)
    if variable.kind == "dense":
        if len(variable.times) == len(times) and np.allclose(variable.times, times):
            return values.copy()
        return np.interp(times, variable.times, values)
    if variable.kind == "simple":
        raise ValueError(f"{variable.name} has no timing")
    out = np.zeros(len(times))
    for onset, duration, value in zip(variable.onset, variable.duration, values):
        out[(times >= onset) & (times < onset + duration)] = value
    return out


def densify(variable: Variable, variables: Variables, times=None) -> Variable:
    """A sparse variable as a dense one (at ``times``, default the collection's sampling rate)."""
    if variable.kind != "sparse":
        return variable
    times = dense_times(variables) if times is None else np.asarray(times, dtype=float)
    return Variable(variable.name, sample(variable, times), times=times, source=variable.source)


def is_wildcard(pattern: str) -> bool:
    """Whether a name is an ``fnmatch`` pattern (``trans_*``, ``motion_outlier??``), in ``X``,
    a transformation's ``Input`` or ``--confounds``."""
    return any(character in pattern for character in "*?[")


def listed(names, wanted: str, limit: int = 12) -> str:
    """Variable names for a message about ``wanted``, which is not one of them: those spelled
    like it first, at most ``limit`` in all (a confounds table holds hundreds)."""
    import difflib

    names = list(dict.fromkeys(map(str, names)))
    if not names:
        return "none"
    close = difflib.get_close_matches(str(wanted), names, n=limit, cutoff=0.6)
    shown = close + [n for n in names if n not in close][:max(limit - len(close), 0)]
    return ", ".join(shown) + (f" and {len(names) - len(shown)} more" if len(names) > len(shown) else "")
