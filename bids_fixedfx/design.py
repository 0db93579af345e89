"""Designs: a run's design matrix (from events and confounds, or precomputed) and its contrasts."""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import io
import re
import zipfile
import warnings as pywarnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .dependence import NILEARN_SINGULAR, singular_design
from .errors import InputFileError, NoDataError, UsageError, check_regular_file
from .model.variables import is_wildcard
from .notes import Note, one_line
from .settings import CONFOUND_STRATEGIES

#: Columns of a precomputed design that are not conditions: drifts, constants and
#: fMRIPrep's confounds (default contrasts are made from the other columns).
NUISANCE_COLUMNS = re.compile(
    r"^(drift_\d+|cosine\d*|constant|intercept|(trans|rot)_[xyz](_derivative1)?(_power2)?"
    r"|(csf|white_matter|global_signal)(_derivative1)?(_power2)?|[at]_comp_cor_\d+|c_comp_cor_\d+"
    r"|w_comp_cor_\d+|framewise_displacement|std_dvars|dvars|rmsd|non_steady_state_outlier\d+"
    r"|motion_outlier\d+|aroma_motion_\d+)$"
)


#: fMRIPrep's columns that flag the volumes acquired before the signal reached a steady state
#: (dummy scans): one column per volume, 1 at that volume.
NON_STEADY_STATE = "non_steady_state_outlier*"


def is_confound_strategy(names) -> bool:
    """Whether ``--confounds`` names nilearn ``load_confounds`` strategies (not columns).

    Examples
    --------
    >>> is_confound_strategy(("motion", "wm_csf")), is_confound_strategy(("trans_x",)), is_confound_strategy(())
    (True, False, False)
    """
    return bool(names) and all(n in CONFOUND_STRATEGIES for n in names)


@dataclass(frozen=True)
class DummyScans:
    """Volumes at the start of a run that are left out of the fit (dummy scans).

    The design is built on all volumes (its frame times are those of the whole run) and
    these volumes are then left out of the fit, as nilearn's ``sample_masks`` do.

    Attributes
    ----------
    volumes : tuple of int
        Their indices, from 0.
    source : {'confounds', 'option'}
        ``confounds``: flagged by fMRIPrep's ``non_steady_state_outlier`` columns;
        ``option``: the first ``count`` volumes, as ``--dummy-scans`` (or the model's
        ``dummy_scans``) asks, for a run without such columns.
    """

    volumes: tuple[int, ...]
    source: str

    @property
    def reason(self) -> str:
        """Why they were left out, in words."""
        if self.source == "confounds":
            return "flagged as non-steady-state by fMRIPrep (non_steady_state_outlier columns of the confounds)"
        return f"the first {len(self.volumes)} volumes, as --dummy-scans {len(self.volumes)} asks"

    def to_json(self) -> dict:
        return {"Volumes": list(self.volumes), "Source": self.source, "Reason": self.reason}

    @classmethod
    def from_json(cls, data) -> DummyScans | None:
        return None if data is None else cls(tuple(int(v) for v in data["Volumes"]), str(data["Source"]))


@dataclass(frozen=True, eq=False)
class Design:
    """A run's design matrix and what it was built from.

    Attributes
    ----------
    matrix : pandas.DataFrame
        One row per volume (before any ``sample_mask``), one column per regressor.
    conditions : tuple of str
        The columns that model the task (default contrasts are made from them).
    confounds : tuple of str
        The confound columns.
    condition_counts : dict
        Number of events of each condition.
    sample_mask : numpy.ndarray or None
        Volumes kept for the fit (without the dummy scans and the volumes a scrubbing
        confound strategy censors).
    precomputed : bool
        Whether the matrix was read from ``--design-dir``.
    notes : tuple of Note
        What a user should know about how it was built.
    dummy_scans : DummyScans or None
        The volumes at the start of the run that are left out of the fit.
    modulation : str
        Whether the events had a ``modulation`` column (``none``), of numbers (``numbers``) or
        with n/a values (``some n/a``: those events were left out).
    untyped : bool
        Whether the events had no ``trial_type`` column (nilearn models them as one condition,
        ``dummy``).
    absent : tuple of str
        A model's run node: the levels its transformations take that no event of this run has
        (left out).
    left_out : tuple of str
        A model's run node: the names of its ``Model.X`` that no event of this run has.
    """

    matrix: pd.DataFrame
    conditions: tuple[str, ...]
    confounds: tuple[str, ...]
    condition_counts: dict = field(default_factory=dict)
    sample_mask: np.ndarray | None = None
    precomputed: bool = False
    notes: tuple[Note, ...] = ()
    dummy_scans: DummyScans | None = None
    modulation: str = "none"  # the events' modulation column: "none", "numbers", or "some n/a"
    untyped: bool = False
    absent: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()

    @property
    def n_excluded(self) -> int:
        """Volumes left out of the fit (dummy scans and censored volumes)."""
        return 0 if self.sample_mask is None else len(self.matrix) - len(self.sample_mask)

    @property
    def n_censored(self) -> int:
        """Volumes left out of the fit by a confound strategy, not being dummy scans."""
        return self.n_excluded - (len(self.dummy_scans.volumes) if self.dummy_scans else 0)


def read_events(path) -> pd.DataFrame:
    """Read a BIDS ``events.tsv`` (``n/a`` as missing) and check what the GLM relies on.

    ``trial_type`` values are text; a missing one stays missing (nilearn's design matrix
    leaves such events out: :func:`build_design` does so first, and says so).

    Raises
    ------
    InputFileError
        A missing ``onset`` or ``duration`` column, non-numeric or non-finite onsets, or
        negative durations.
    """
    events = read_table(path, "events file", text_columns=("trial_type",))  # 01 and 1e3 are labels, not numbers
    _check_header(path, "Events file")
    for column in ("onset", "duration"):
        if column not in events.columns:
            commas = len(events.columns) == 1 and "," in str(events.columns[0])  # a CSV file: one column
            raise InputFileError(f"{path} has no {column!r} column, which BIDS events files need"
                                 + ("; its columns are separated by commas, where BIDS tables use tabs." if commas
                                    else "."))
        events[column] = _numbers(events, column, path)
    if not np.isfinite(events["onset"]).all():
        raise InputFileError(f"{path} has onsets that are n/a or not finite; every event needs an onset.")
    durations = events["duration"].dropna()
    if (durations < 0).any() or not np.isfinite(durations).all():
        raise InputFileError(
            f"{path} has a negative or infinite duration ({durations[(durations < 0) | ~np.isfinite(durations)].iloc[0]:g}); "
            "BIDS durations are 0 or more seconds."
        )
    if "trial_type" in events.columns:
        events["trial_type"] = events["trial_type"].astype(str).where(events["trial_type"].notna(), np.nan)
        lengths = events["trial_type"].str.len()
        if (lengths > MAX_TRIAL_TYPE).any():
            raise InputFileError(
                f"{path} has a trial_type of {int(lengths.max())} characters (row {int(lengths.argmax()) + 1}), "
                f"which is no condition's name; trial types are names of at most {MAX_TRIAL_TYPE} characters."
            )
    return events


#: The longest ``trial_type`` read as a condition's name (a file name holds 255 bytes).
MAX_TRIAL_TYPE = 1000


#: The events columns nilearn's design matrix reads (it ignores, with a warning, any other).
NILEARN_EVENTS_COLUMNS = ("onset", "duration", "trial_type", "modulation")


def _nilearns_warning(run, text: str, columns=()) -> str:
    """A warning of nilearn's design matrix, said with what it means and what to do (others as
    nilearn words them); ``columns``: the events file's."""
    if text.startswith("The following conditions contain events with null duration"):
        listed = ", ".join(item.strip() for item in text.split(":", 1)[1].split(" - ") if item.strip(" -"))
        return (f"events of {listed} have duration 0 in {run.events.name}, which nilearn models as impulses (a "
                "regressor far weaker than a block's); if they last, give their durations there.")
    if text.startswith("'trial_type' column not found"):
        near = [c for c in columns if str(c).strip().lower() == "trial_type"]
        named = f" (its column {str(near[0])!r} is not spelled so)" if near else ""
        return (f"{run.events.name} has no trial_type column{named}, so nilearn models every event as one condition, "
                "'dummy' (maps named contrast-dummy); add a trial_type column to name the conditions.")
    return text


def _numbers(events, column, path, why: str = "") -> pd.Series:
    """An events column as numbers (``n/a`` missing); text in it is an error naming the file,
    followed by ``why``."""
    values = pd.to_numeric(events[column], errors="coerce")
    text = events[column][values.isna() & events[column].notna()]
    if len(text):
        raise InputFileError(f"{path} has a non-numeric {column} ({text.iloc[0]!r}){why}.")
    return values


def read_table(path, what: str = "table", text_columns=()) -> pd.DataFrame:
    """Read a BIDS TSV file (``n/a`` as missing, and an empty cell, which some tools write
    for it), naming the file in any error. Other text (``NA``, ``null``) stays text, and so
    do the ``text_columns`` (labels such as ``01`` are not numbers).

    Raises
    ------
    InputFileError
        The file cannot be read or parsed as a tab-separated table.
    """
    check_regular_file(path, f"The {what} {path}")
    try:
        with pywarnings.catch_warnings(record=True) as caught:
            pywarnings.simplefilter("always", pd.errors.ParserWarning)
            table = pd.read_csv(path, sep="\t", na_values=["n/a", ""], keep_default_na=False, index_col=False,
                                dtype={column: str for column in text_columns} or None)
    except FileNotFoundError:
        raise InputFileError(f"The {what} {path} does not exist.") from None
    except UnicodeDecodeError as error:  # Latin-1 or UTF-16 from a spreadsheet
        raise InputFileError(f"The {what} {path} is not UTF-8 text (byte {_first_not_utf8(path)} is not UTF-8, "
                             "as BIDS requires); save it again as UTF-8.") from error
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        reason = " ".join(str(error).split()).rstrip(".")
        raise InputFileError(f"The {what} {path} cannot be read as a TSV table: {reason}; write it again as a "
                             "tab-separated table with a header line.") from error
    if caught:  # rows with more fields than the header: pandas drops the extra ones (empty ones are harmless)
        _check_extra_fields(path, what)
    _check_no_line_break(table, path, what)
    while len(table.columns) and re.fullmatch(r"Unnamed: \d+", str(table.columns[-1])) and \
            table[table.columns[-1]].isna().all() and not header_names(path)[-1].strip():
        table = table.iloc[:, :-1]  # a tab ending the header (as spreadsheets write): no column
    if any(re.fullmatch(r".+\.\d+", str(name)) for name in table.columns):  # pandas' name of a column given twice?
        names = header_names(path)
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise InputFileError(f"The {what} {path} names the column {repeated[0]!r} more than once.")
    return table


def _check_no_line_break(table, path, what) -> None:
    """Refuse a cell (or a column name) holding a line break and a tab: a double quote that
    opens a cell and one that closes a later line's make one cell of the rows between (pandas
    reads quotes as CSV does), which merged three events into one of a trial type of them all.
    A quoted text of several lines (a free-text column) is read as it is."""
    names = [str(name) for name in table.columns]
    for column, name in zip(table.columns, names):
        if ("\n" in name or "\r" in name) and "\t" in name:
            raise InputFileError(f"The {what} {path} has a column name holding a line break ({name[:40]!r}): a double "
                                 "quote in its header opens a name that a later line closes; remove the stray quotes.")
        values = table[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        broken = values.map(lambda value: isinstance(value, str) and "\t" in value  # rows, not a text's lines
                            and ("\n" in value or "\r" in value))
        if broken.any():
            row = int(np.flatnonzero(broken.to_numpy())[0])
            raise InputFileError(
                f"The {what} {path} has a cell holding a line break (column {name!r}, row {row + 1}: "
                f"{values.iloc[row][:40]!r}): a double quote opens it on one line and another closes it on a later "
                "one, which makes one cell of the rows between; remove the stray quotes (a TSV cell holds no line "
                "break).")


def _check_extra_fields(path, what) -> None:
    """Refuse a TSV row with more fields than the header that are not empty (pandas would
    drop them, or read the first column as the rows' names), naming its line."""
    with open(path, encoding="utf-8-sig") as lines:
        width = len(next(lines, "").rstrip("\r\n").split("\t"))
        for number, line in enumerate(lines, start=2):
            extra = line.rstrip("\r\n").split("\t")[width:]
            if any(field.strip() for field in extra):
                raise InputFileError(f"The {what} {path} has {width + len(extra)} fields on line {number}, but its "
                                     f"header names {width} columns; give each row one field per column.")


#: The columns of fMRIPrep's confounds that each nilearn ``load_confounds`` strategy reads.
STRATEGY_COLUMNS = {
    "motion": "trans_x, trans_y, trans_z, rot_x, rot_y, rot_z", "wm_csf": "csf, white_matter",
    "global_signal": "global_signal", "compcor": "a_comp_cor_* or t_comp_cor_*", "high_pass": "cosine_*",
    "scrub": "framewise_displacement, std_dvars", "non_steady_state": "non_steady_state_outlier_*",
    "ica_aroma": "aroma_motion_*",
}


def _lacking_strategies(message) -> str | None:
    """What nilearn's ``load_confounds`` found missing, as a clause of a sentence on the confounds
    (``have no column of the strategy wm_csf (csf, white_matter)``), from its message ("The following
    keywords or parameters are missing: [] ['wm_csf']"); None for another message."""
    found = re.search(r"missing:\s*\[(.*?)\]\s*\[(.*?)\]", message)
    if not found:
        return None
    keywords, columns = (re.findall(r"'([^']+)'", found.group(index)) for index in (2, 1))
    if not keywords:  # the columns of a strategy's parameter (a motion derivative, say)
        return f"lack the columns {', '.join(columns)} that it reads" if columns else None
    return "have no column of the strategy " + ", ".join(
        f"{k} ({STRATEGY_COLUMNS[k]})" if k in STRATEGY_COLUMNS else k for k in keywords)


def _refuse_other_file(run, name, names) -> None:
    """A strategy is nilearn's ``load_confounds``, which reads the confounds file it finds beside
    the series: refused when ``--bids-filter-file`` chose another one for the run (its columns
    would not be those the sidecars cite)."""
    from nilearn.interfaces.fmriprep.load_confounds_utils import get_confounds_file

    if run.confounds is None:
        return
    try:
        found = Path(get_confounds_file(name, flag_full_aroma=False, flag_tedana=False))
    except (TypeError, ValueError, OSError):  # another nilearn, or none found: load_confounds said so
        return
    if found.resolve() != Path(run.confounds).resolve():
        raise UsageError(
            f"--confounds {' '.join(names)} is a strategy of nilearn's load_confounds, which reads {found.name} "
            f"beside {run.bold.name}, while the confounds file chosen for that run is {Path(run.confounds).name}; "
            "name that file's columns instead (--confounds trans_* rot_* ...), or leave the confounds filter out."
        )


#: The six motion parameters as fMRIPrep before 1.2 named them (``X`` ... ``RotZ``).
OLDER_MOTION = ("X", "Y", "Z", "RotX", "RotY", "RotZ")


def select_confounds(run, names, given=True):
    """Read a run's confounds: columns by name (wildcards allowed) or a nilearn strategy.

    Parameters
    ----------
    run : Run
        The run; its ``confounds`` file (fMRIPrep's ``desc-confounds_timeseries.tsv``).
    names : tuple of str
        Column names or patterns, or ``load_confounds`` strategies.
    given : bool
        Whether ``--confounds`` named them (else they are the default, and a column the
        table lacks is the table's fault).

    Returns
    -------
    confounds : pandas.DataFrame or None
    sample_mask : numpy.ndarray or None
    notes : list of Note
        What was imputed or censored, for the report.
    """
    if not names:
        return None, None, []
    if is_confound_strategy(names):
        from nilearn.interfaces.fmriprep import load_confounds

        try:
            # nilearn finds the confounds from the series' name, which it parses as *.nii.gz only
            name = str(run.bold) + (".gz" if str(run.bold).endswith(".nii") else "")
            with pywarnings.catch_warnings():  # scikit-learn on a column of n/a, which is refused below
                pywarnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
                pywarnings.filterwarnings("ignore", message="Numerical issues were encountered", category=UserWarning)
                confounds, sample_mask = load_confounds(name, strategy=tuple(names))
        except KeyError as error:
            raise UsageError(
                f"--confounds {' '.join(names)} needs column {error} that the confounds of "
                f"{run.name} do not have."
            ) from None
        except (ValueError, FileNotFoundError) as error:  # nilearn's missing columns or files
            lacking = _lacking_strategies(str(error))
            if lacking:
                raise NoDataError(
                    f"--confounds {' '.join(names)}: the confounds of {run.name}"
                    f"{f' ({run.confounds})' if run.confounds else ''} {lacking}; choose strategies, or columns, "
                    "that they have."
                ) from None
            reason = re.sub(r"\.(?=[A-Z])", ". ", " ".join(str(error).split())).rstrip(".")  # its sentences glued
            missing = isinstance(error, FileNotFoundError) or "could not find" in reason.lower()
            raise (NoDataError if missing else UsageError)(
                f"--confounds {' '.join(names)} cannot be applied to {run.bold.name}: {reason}."
            ) from error
        _refuse_other_file(run, name, names)
        _refuse_missing(confounds, run.confounds, f" (--confounds {' '.join(names)} selects it)")
        notes = []
        if sample_mask is not None and len(sample_mask) < run.n_volumes:
            notes.append(Note.for_run(
                run, "censored",
                f"{run.name}: --confounds {' '.join(names)} left out "
                f"{run.n_volumes - len(sample_mask)} of {run.n_volumes} volumes (high motion or "
                "non-steady state); check that enough remain",
            ))
        return confounds, sample_mask, notes
    if run.confounds is None:
        return None, None, [Note.for_run(
            run, "no-confounds",
            f"{run.name} has no confounds file{_other_timeseries(run)}, so it was modelled without confounds "
            "(the default is the six motion parameters); run fMRIPrep, or pass "
            "--confounds none to say so",
        )]
    table = read_table(run.confounds, "confounds file")
    columns, notes = [], []
    for pattern in names:
        matched = [c for c in table.columns if fnmatch.fnmatchcase(c, pattern)]
        if not matched and not given:
            older = [c for c in OLDER_MOTION if c in table.columns]
            advice = (f"--confounds {' '.join(older)} names them as fMRIPrep before 1.2 did"
                      if len(older) == len(OLDER_MOTION) else "name its columns with --confounds")
            raise InputFileError(
                f"{run.confounds} has no column {pattern}, one of the default confounds (the six motion "
                f"parameters of fMRIPrep); {advice}, or pass --confounds none."
            )
        if not matched and is_wildcard(pattern):  # motion_outlier*: fMRIPrep writes them for runs with outliers
            notes.append(Note.for_run(run, "confounds-unmatched",
                                      f"{run.name}: --confounds {pattern} matches no column of {run.confounds.name}, "
                                      "so the run has no such regressor"))
        elif not matched:
            raise UsageError(
                f"--confounds {pattern} matches no column of {run.confounds.name}."
            )
        columns += [c for c in matched if c not in columns and not is_non_steady_state(c)]
    try:
        confounds = table[columns].astype(float).copy()
    except ValueError:
        raise InputFileError(_text_confounds(table[columns], run.confounds)) from None
    infinite = [c for c in columns if np.isinf(confounds[c].to_numpy()).any()]
    if infinite:
        raise InputFileError(f"Confound column{'s' if len(infinite) > 1 else ''} {', '.join(infinite)} of "
                             f"{run.confounds} hold{'' if len(infinite) > 1 else 's'} infinite values.")
    huge = [c for c in columns if (confounds[c].abs() > MAX_MODULATION).any()]
    if huge:  # 1e308: the fit's SVD did not converge, naming nothing
        value = confounds[huge[0]][confounds[huge[0]].abs() > MAX_MODULATION].iloc[0]
        raise InputFileError(f"Confound column {huge[0]} of {run.confounds} holds {value:g}, above "
                             f"{MAX_MODULATION:g} in size, too large for a regression; check the file.")
    filled = fill_first_row(confounds)
    if filled:
        notes.append(Note.for_run(
            run, "imputed",
            f"{run.name}: first value of {', '.join(filled)} was n/a "
            "and was set to the second, as nilearn's load_confounds does",
        ))
    _refuse_missing(confounds, run.confounds)
    return confounds, None, notes


def check_confound_patterns(runs, model) -> None:
    """Raise :class:`UsageError` when a ``--confounds`` wildcard matches no column of any run's
    confounds file (a run without a match has no such regressor: fMRIPrep writes
    ``motion_outlier*`` columns only for runs with outliers); only the files' header lines are read.

    Parameters
    ----------
    runs : sequence of Run
    model : ModelSettings
    """
    patterns = [p for p in model.confounds if is_wildcard(p)]
    if not patterns or not model.confounds_given or is_confound_strategy(model.confounds):
        return
    files = sorted({run.confounds for run in runs if run.confounds is not None and run.design is None})
    columns = set()
    for path in files:
        try:
            columns.update(name.strip() for name in header_names(path))
        except OSError:
            return  # read (and its error said) with the run's design
    for pattern in patterns:
        if files and not any(fnmatch.fnmatchcase(column, pattern) for column in columns):
            raise UsageError(f"--confounds {pattern} matches no column of any run's confounds file "
                             f"(such as {files[0].name}).")


def _refuse_missing(confounds, path, why: str = "") -> None:
    """Refuse confounds with a missing value left (past the first row, which is filled as
    nilearn's ``load_confounds`` fills it): nilearn's design would blame its regressors.

    Parameters
    ----------
    confounds : pandas.DataFrame
    path : pathlib.Path
        The confounds file they come from.
    why : str
        What selected them, added to the end of the message.
    """
    if confounds.isna().to_numpy().any():
        bad = confounds.columns[confounds.isna().any()].tolist()
        raise InputFileError(f"Confound column {bad[0]} of {path} has n/a values past the first row{why}.")


def _check_condition_count(run, events) -> None:
    """Refuse events with more trial types than the run has volumes: each is a column of the
    design, which could not be fitted (20,000 of them hung the design). A run with a few too
    many for its volumes is left out later, as any run without degrees of freedom is."""
    if "trial_type" not in events:
        return
    n_types = events["trial_type"].nunique()
    if n_types > run.n_volumes:
        raise InputFileError(
            f"{run.events} has {n_types} trial types for the {run.n_volumes} volumes of {run.bold.name}: a design "
            "with a column for each cannot be fitted; give the events fewer trial types."
        )


#: The largest modulation in size: a design of regressors of 1e15 loses its effects in round-off.
MAX_MODULATION = 1e12


def _numeric_modulation(run, events):
    """The events with their ``modulation`` column (which nilearn's design matrix scales each
    event's regressor by) as numbers, and a note for the events whose modulation is n/a:
    they are left out, as nilearn's design matrix leaves them out.

    Raises
    ------
    InputFileError
        A modulation that is text or infinite.
    """
    values = _numbers(events, "modulation", run.events, "; nilearn scales each event's regressor by it, so it must "
                      "be a number (n/a leaves the event out)")
    if np.isinf(values).any():
        raise InputFileError(f"{run.events} has an infinite modulation; it must be a finite number.")
    if (values.abs() > MAX_MODULATION).any():  # regressors of 1e15 and more: nilearn's fit loses the effect
        raise InputFileError(f"{run.events} has a modulation of {values[values.abs() > MAX_MODULATION].iloc[0]:g}; "
                             f"modulations are at most {MAX_MODULATION:g} in size (scale them).")
    events = events.assign(modulation=values)
    missing = values.isna()
    if not missing.any():
        return events, []
    return events[~missing].reset_index(drop=True), [Note.for_run(
        run, "design",
        f"{run.name}: {int(missing.sum())} event(s) of {run.events.name} have the modulation n/a and were left "
        "out, as nilearn's design matrix leaves them out; give them a modulation to model them",
    )]


def _late_conditions(run, events) -> list:
    """Notes for the conditions every event of which starts after the run's last volume: their
    regressors are empty, so their maps hold no effect, whatever their t says."""
    if "trial_type" not in events or not len(events):
        return []
    end = (run.n_volumes - 1) * run.tr + (run.start_time or 0.0)
    starts = events.groupby(events["trial_type"].astype(str))["onset"].min()
    return [
        Note.for_run(run, "empty-condition",
                     f"{run.name}: every event of {name!r} starts after the run's last volume ({end:g} s), so "
                     "its regressor is empty and this run is left out of the contrasts that weigh it; check the onsets in "
                     f"{run.events.name} (seconds from the first volume)")
        for name, first in starts.items() if first > end
    ]


#: A condition whose regressor, in the run's volumes, peaks below this fraction of the peak its
#: events' full response reaches (the run extended by :data:`MARGIN` seconds on each side) is said.
FAINT = 0.01
MARGIN = 40.0


def _constant_confounds(run, confounds, sample_mask) -> list:
    """A note for the confounds that do not vary over the volumes fitted (a motion parameter
    of 0 throughout, as some older tools write): each repeats the constant, so the design is
    singular and nilearn fits it through its pseudo-inverse, warning of a singular matrix."""
    if confounds is None or not len(confounds.columns):
        return []
    values = confounds.to_numpy(dtype=float)
    if sample_mask is not None:
        values = values[sample_mask]
    constant = [str(name) for name, column in zip(confounds.columns, values.T) if np.ptp(column) == 0]
    if not constant:
        return []
    named = ", ".join(constant[:5]) + (f" and {len(constant) - 5} more" if len(constant) > 5 else "")
    return [Note.for_run(
        run, "design",
        f"{run.name}: the confound{'s' if len(constant) > 1 else ''} {named} of {Path(run.confounds).name} "
        f"{'do' if len(constant) > 1 else 'does'} not vary over the volumes fitted, so the design repeats its "
        "constant and is singular (nilearn warns of a singular matrix and fits it by its pseudo-inverse); leave "
        f"{'them' if len(constant) > 1 else 'it'} out with --confounds",
    )]


def _faint_conditions(run, events, matrix, hrf_model) -> list:
    """Notes for the conditions whose events lie (almost) wholly outside the run, before its first
    volume or at its very end: their regressors are tiny, so their effect maps are huge and their
    statistics rest on almost no signal (nilearn fits them all the same, and so does the app)."""
    from nilearn.glm.first_level import compute_regressor

    if "trial_type" not in events or not len(events) or hrf_model in (None, "fir"):
        return []
    times = frame_times(run.n_volumes, run.tr, run.start_time or 0.0)
    margin = int(np.ceil(MARGIN / run.tr))
    extended = np.concatenate([times[0] - run.tr * np.arange(margin, 0, -1), times,
                               times[-1] + run.tr * np.arange(1, margin + 1)])
    notes = []
    for name, group in events.groupby(events["trial_type"].astype(str)):
        if name not in matrix.columns:
            continue
        inside = float(np.abs(matrix[name].to_numpy(dtype=float)).max(initial=0.0))
        amplitude = group["modulation"].to_numpy(dtype=float) if "modulation" in group else np.ones(len(group))
        full, _ = compute_regressor(np.vstack([group["onset"], group["duration"], amplitude]),
                                    hrf_model.split(" + ")[0], extended, con_id=name,
                                    min_onset=float(extended[0] - times[0]) - 24.0)
        peak = float(np.abs(full[:, 0]).max(initial=0.0))
        if peak > 0 and 1e-10 < inside < FAINT * peak:  # (an empty one is said by _late_conditions, or left out)
            notes.append(Note.for_run(
                run, "design",
                f"{run.name}: the events of {name!r} lie almost wholly outside the run (before its first volume or "
                f"at its very end): in its volumes their regressor reaches {inside / peak:.1e} times their response's "
                "peak, so its effect maps are huge and their statistics rest on almost no signal; check the onsets "
                f"in {run.events.name} (seconds from the first volume)"))
    return notes


def _clashing_condition(events, confounds):
    """A ``trial_type`` that is also the name of a column nilearn adds to the design (its
    ``constant``, a ``drift_<n>``, a confound), or None."""
    if "trial_type" not in events:
        return None
    added = {"constant", *(map(str, confounds.columns) if confounds is not None else ())}
    for name in sorted(set(events["trial_type"].dropna().astype(str))):
        if name in added or re.fullmatch(r"drift_\d+", name):
            return name
    return None


def is_non_steady_state(column) -> bool:
    """Whether a confounds column is one of fMRIPrep's dummy-scan flags (never a regressor:
    the volumes it flags are left out of the fit, as nilearn's ``load_confounds`` does)."""
    return fnmatch.fnmatchcase(str(column), NON_STEADY_STATE)


def find_dummy_scans(run, table, *, non_steady_state: bool = True, count: int | None = None,
                     where: str = "--dummy-scans"):
    """A run's dummy scans: the volumes that fMRIPrep's ``non_steady_state_outlier``
    columns flag or, for a run without them, the first ``count`` volumes.

    Parameters
    ----------
    run : Run
    table : pandas.DataFrame or None
        The run's confounds table.
    non_steady_state : bool
        Whether the volumes flagged by those columns are left out (nilearn's ``load_confounds``
        always does).
    count : int or None
        ``--dummy-scans N``: the volumes to leave out where no column flags any.
    where : str
        How errors and notes name the setting.

    Returns
    -------
    dummy_scans : DummyScans or None
    notes : list of Note

    Raises
    ------
    UsageError
        ``count`` is negative or leaves no volume of the run.
    """
    if count is not None and not 0 <= count < run.n_volumes:
        raise UsageError(
            f"{where} {count} leaves no volume of {run.name}, which has {run.n_volumes} volumes."
            if count >= 0 else f"{where} {count} is negative; give 0 or more volumes."
        )
    columns = [c for c in table.columns if is_non_steady_state(c)] if non_steady_state and table is not None else []
    if columns:
        flags = table[columns].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy()
        flagged = tuple(int(v) for v in np.flatnonzero((flags != 0).any(axis=1)))
        notes = []
        if count is not None and count != len(flagged):
            notes.append(Note.for_run(
                run, "dummy-scans",
                f"{run.name}: fMRIPrep's non_steady_state_outlier columns flag {len(flagged)} volume(s), "
                f"which were left out; {where} {count} applies only to runs without those columns",
            ))
        return (DummyScans(flagged, "confounds") if flagged else None), notes
    if count:
        return DummyScans(tuple(range(count)), "option"), []
    return None, []


def with_dummy_scans(design: Design, run, table, *, non_steady_state: bool = True, count: int | None = None,
                     where: str = "--dummy-scans") -> Design:
    """``design`` with its run's dummy scans (:func:`find_dummy_scans`) left out of the fit.

    The matrix keeps every volume (the frame times of the whole run); the dummy scans
    leave its ``sample_mask``, as nilearn's ``FirstLevelModel.fit(..., sample_masks=...)``.
    """
    found, notes = find_dummy_scans(run, table, non_steady_state=non_steady_state, count=count, where=where)
    if found is None:
        return replace(design, notes=design.notes + tuple(notes))
    kept = np.arange(len(design.matrix)) if design.sample_mask is None else np.asarray(design.sample_mask)
    kept = kept[~np.isin(kept, found.volumes)]
    return replace(design, sample_mask=kept, dummy_scans=found, notes=design.notes + tuple(notes))


def frame_times(n_volumes: int, tr: float, start_time: float = 0.0) -> np.ndarray:
    """Acquisition times of the volumes, as nilearn's ``FirstLevelModel`` computes them
    (``slice_time_ref = start_time / tr``)."""
    return np.linspace(start_time, (n_volumes - 1) * tr + start_time, n_volumes)


def check_drift_order(run, drift_model, drift_order, source: str = "--drift-order") -> None:
    """Refuse a polynomial drift that leaves a run no degree of freedom, before its design is
    built (nilearn's polynomial basis takes minutes at orders in the hundreds).

    Parameters
    ----------
    run : Run
    drift_model : str or None
    drift_order : int
    source : str
        What set the order, as the message names it (``--drift-order``, a model's node).

    Raises
    ------
    UsageError
        The ``drift_order`` drift columns and the constant are as many as the run's volumes, or more.
    """
    if drift_model != "polynomial" or drift_order + 1 < run.n_volumes:
        return
    raise UsageError(
        f"{source} {drift_order} leaves {run.name} no degree of freedom: its polynomial drift and the constant "
        f"take {drift_order + 1} columns of a design over {run.n_volumes} volumes; give an order below "
        f"{max(run.n_volumes - 1, 1)}."
    )


def _other_timeseries(run) -> str:
    """The words that name a run's time series of another ``desc`` beside its BOLD (a
    ``desc-motion_timeseries.tsv``), which is not read as its confounds file; else nothing."""
    from .naming import parse

    folder = Path(run.bold).parent
    found = folder.glob(f"{glob.escape(run.name)}_desc-*_timeseries.tsv")
    descs = sorted({parse(path.name).get("desc") for path in found} - {None, "confounds"})
    if not descs:
        return ""
    return (f" (fMRIPrep's desc-confounds_timeseries.tsv; its {', '.join(f'desc-{d}' for d in descs)}_timeseries.tsv "
            "is not read as one: rename it if it is)")


def build_design(run, model) -> Design:
    """Build a run's design matrix from its events and confounds, as nilearn does.

    Parameters
    ----------
    run : Run
    model : ModelSettings

    Returns
    -------
    design : Design
    """
    dummy = {"non_steady_state": model.non_steady_state, "count": model.dummy_scans}
    if run.design is not None:  # events and confounds are not used: only --dummy-scans applies
        return with_dummy_scans(load_design(run), run, None, **dummy)
    from nilearn.glm.first_level import make_first_level_design_matrix

    check_drift_order(run, model.drift_model, model.drift_order)
    events = read_events(run.events)
    _check_condition_count(run, events)
    untyped = events["trial_type"].isna() if "trial_type" in events else None
    if untyped is not None and untyped.any():  # as nilearn's design matrix leaves them out, but said
        events = events[~untyped].reset_index(drop=True)
        early_notes = [Note.for_run(
            run, "design",
            f"{run.name}: {int(untyped.sum())} event(s) of {run.events.name} have the trial_type n/a and were "
            "left out, as nilearn's design matrix leaves them out; give them a trial_type to model them",
        )]
    else:
        early_notes = []
    if events["duration"].isna().any():  # (of the events modelled: those left out above may have none, as
        raise InputFileError(  # OpenNeuro's ds002, ds007, ds008... write for responses)
            f"{run.events} has events whose duration is n/a; nilearn's design needs a duration for every "
            "event (0 for an impulse)."
        )
    modulation = "none"
    if "modulation" in events:
        events, unmodulated = _numeric_modulation(run, events)
        early_notes += unmodulated
        modulation = "some n/a" if unmodulated else "numbers"
    if run.confounds is None and model.confounds_given and model.confounds and not (
        is_confound_strategy(model.confounds)
    ):
        raise NoDataError(f"--confounds {' '.join(model.confounds)} given, but {run.name} has no confounds file.")
    confounds, sample_mask, notes = select_confounds(run, model.confounds, model.confounds_given)
    notes = early_notes + notes
    if confounds is not None and len(confounds) != run.n_volumes:
        raise InputFileError(
            f"{run.confounds} has {len(confounds)} rows but {run.bold.name} has {run.n_volumes} volumes."
        )
    # the columns nilearn reads: it warns of every other one (response_time, HED, stim_file... that
    # BIDS defines), on every run, with nothing to do about it
    columns = list(events.columns)
    events = events[[c for c in columns if c in NILEARN_EVENTS_COLUMNS]]
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        try:  # nilearn prints that it uses a modulation column: logs go to stderr, and this is the default
            with contextlib.redirect_stdout(io.StringIO()):
                matrix = make_first_level_design_matrix(
                    frame_times(run.n_volumes, run.tr, run.start_time),
                    events,
                    hrf_model=model.hrf_model,
                    drift_model=model.drift_model,
                    high_pass=model.high_pass,
                    drift_order=model.drift_order,
                    add_regs=None if confounds is None else confounds.to_numpy(),
                    add_reg_names=None if confounds is None else list(confounds.columns),
                )
        except ValueError as error:
            clash = _clashing_condition(events, confounds)
            if clash is not None:
                raise InputFileError(
                    f"{run.events} has the trial_type {clash!r}, which is also the name of a column the design "
                    "adds (the constant, a drift or a confound); rename that condition."
                ) from error
            reason = " ".join(str(error).split()).rstrip(".")
            raise InputFileError(f"The design of {run.name} cannot be built from {run.events}: {reason}.") from error
    said = [one_line(w.message) for w in caught if issubclass(w.category, UserWarning)]
    explained = _late_conditions(run, events) + _constant_confounds(run, confounds, sample_mask)
    notes += [
        Note.for_run(run, "design", singular_design(run.name, matrix) if text.startswith(NILEARN_SINGULAR)
                     else f"{run.name}: {_nilearns_warning(run, text, columns)}")
        for text in said if not (text.startswith(NILEARN_SINGULAR) and explained)  # those notes say why
    ]
    notes += explained
    notes += _faint_conditions(run, events, matrix, model.hrf_model)
    trial_types = events["trial_type"] if "trial_type" in events else pd.Series(["dummy"] * len(events))
    counts = trial_types.value_counts().sort_index()
    conditions = tuple(c for c in matrix.columns if c in set(counts.index))
    design = Design(
        matrix=matrix,
        conditions=conditions,
        confounds=tuple(confounds.columns) if confounds is not None else (),
        condition_counts={str(k): int(v) for k, v in counts.items()},
        sample_mask=sample_mask,
        notes=tuple(notes),
        modulation=modulation,
        untyped="trial_type" not in events,
    )
    table = read_table(run.confounds, "confounds file") if run.confounds is not None else None
    return with_dummy_scans(design, run, table, **dummy)


def _check_npz_header(archive, path, run) -> None:
    """The shape and type of a ``.npz`` design's ``X``, from its header, before it is read: a
    matrix of real numbers, one row per volume and no more columns than volumes (a small file can
    hold gigabytes of zeros).

    Raises
    ------
    InputFileError
    """
    name = "X.npy" if "X.npy" in archive.namelist() else "X"  # np.load reads either as X
    with archive.open(name) as member:  # the zip file np.load opened
        version = np.lib.format.read_magic(member)
        shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                           np.lib.format.read_array_header_2_0)(member)
    if dtype.kind not in "biuf":
        raise InputFileError(f"Design file {path} holds {dtype} values, not real numbers.")
    if len(shape) != 2:
        raise InputFileError(f"Design file {path} holds a {len(shape)}-D array, not a matrix.")
    if shape[0] != run.n_volumes:
        raise InputFileError(f"Design file {path} has {shape[0]} rows but {run.bold.name} has {run.n_volumes} volumes.")
    _check_width(shape[1], path, run)


def _check_width(n_columns, path, run) -> None:
    """No fit: a design of more columns than volumes (and a file of 20,000 columns made as many
    default contrasts, in gigabytes)."""
    if n_columns > run.n_volumes:
        raise InputFileError(f"Design file {path} has {n_columns} columns for the {run.n_volumes} volumes of "
                             f"{run.bold.name}; a design needs fewer columns than volumes.")


def load_design(run) -> Design:
    """Read a precomputed design: ``.tsv`` with a header, or ``.npz`` with the matrix under ``X``.

    ``.npz`` columns are named by position (``X0``, ``X1``, ...). Default contrasts are
    made from every column that is not constant and not a drift term.
    """
    path = run.design
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                if "X" not in archive:
                    raise InputFileError(f"Design file {path} has no matrix under key 'X'.")
                _check_npz_header(archive.zip, path, run)
                values = np.asarray(archive["X"], dtype=float)
        except (ValueError, TypeError, OSError, EOFError, KeyError, NotImplementedError, RuntimeError,
                zipfile.BadZipFile) as error:  # NotImplementedError: a compression zipfile lacks; Runtime: encrypted
            reason = " ".join(str(error).split()).strip("'\"").rstrip(".")
            raise InputFileError(f"Design file {path} cannot be read as a numeric matrix: {reason}.") from error
        if values.ndim != 2:
            raise InputFileError(f"Design file {path} holds a {values.ndim}-D array, not a matrix.")
        matrix = pd.DataFrame(values, columns=[f"X{i}" for i in range(values.shape[1])])
    else:
        check_regular_file(path, f"The design file {path}")
        if path.is_file():  # before the table is read (a missing file is read_table's to say)
            _check_width(len(header_names(path)), path, run)
        matrix = read_table(path, "design file")
        _check_header(path, "Design file")
        try:
            matrix = matrix.astype(float)
        except ValueError:
            raise InputFileError(f"Design file {path} has non-numeric values.") from None
    if len(matrix) != run.n_volumes:
        raise InputFileError(
            f"Design file {path} has {len(matrix)} rows but {run.bold.name} has {run.n_volumes} volumes."
        )
    if not np.isfinite(matrix.to_numpy()).all():
        raise InputFileError(f"Design file {path} has missing or infinite values.")
    if (np.abs(matrix.to_numpy()) > MAX_MODULATION).any():
        raise InputFileError(f"Design file {path} has values above {MAX_MODULATION:g} in size, too large for a "
                             "regression; check the file.")
    conditions = tuple(
        c for c in matrix.columns
        if not NUISANCE_COLUMNS.match(str(c)) and np.ptp(matrix[c].to_numpy()) > 0
    )
    return Design(matrix=matrix, conditions=conditions, confounds=(), precomputed=True)


def _first_not_utf8(path) -> int:
    """The offset in the file of its first byte that is not UTF-8 (pandas' error gives it
    within the chunk it decoded), read a block at a time."""
    import codecs

    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                return offset + error.start - len(decoder.getstate()[0])
            offset += len(block)
    return offset


def header_names(path) -> list[str]:
    """The column names of a TSV file's header line, as written (a BOM and line end removed)."""
    with open(path, encoding="utf-8-sig", errors="replace") as table:
        return table.readline().rstrip("\r\n").split("\t")


def _check_header(path, what: str = "Design file") -> None:
    """Refuse a table whose header has an empty or repeated name: pandas would make a
    regressor of a table's index written beside it (``Unnamed: 0``) or rename a repeat
    (``a.1``, a second ``onset``), and the maps would be of another design than the one meant."""
    names = header_names(path)
    stripped = [name.strip() for name in names]
    while stripped and not stripped[-1]:  # a trailing tab, as spreadsheets write: no column
        stripped.pop()
    if "" in stripped:
        raise InputFileError(
            f"{what} {path} has a column without a name (column {stripped.index('') + 1}; a table's index "
            "written beside it?); write the table without it (pandas: index=False)."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputFileError(f"{what} {path} names the column {repeated[0]!r} more than once.")


# ----------------------------------------------------------------------------
# designs and contrasts from a BIDS Stats Model's run node


def read_confounds_table(path) -> pd.DataFrame | None:
    """A run's whole confounds table (``n/a`` as missing), for a model's ``X`` to choose from."""
    if path is None:
        return None
    table = read_table(path, "confounds file")
    numeric = table.apply(pd.to_numeric, errors="coerce")
    fill_first_row(numeric, complete_only=True)
    return numeric


def _text_confounds(table, path) -> str:
    """The error of confound columns that hold text: which columns, and a value."""
    def is_text(value):
        try:
            float(value)
        except (TypeError, ValueError):
            return True
        return False

    text = {c: [v for v in table[c].dropna() if is_text(v)] for c in table.columns}
    text = {c: values for c, values in text.items() if values}
    first = next(iter(text.values()), ["?"])[0]
    return (f"Confound column{'s' if len(text) > 1 else ''} {', '.join(text)} of {path} "
            f"hold{'' if len(text) > 1 else 's'} text ({first!r}), not numbers; write n/a for a missing value.")


def fill_first_row(confounds: pd.DataFrame, complete_only: bool = False) -> list[str]:
    """Set a confound's missing first value to the second, as nilearn's ``load_confounds``
    does for fMRIPrep's derivatives (in place).

    Parameters
    ----------
    confounds : pandas.DataFrame
    complete_only : bool
        Only columns with no other missing value (a table whose columns a model picks later).

    Returns
    -------
    filled : list of str
        The columns whose first value was set.
    """
    if len(confounds) < 2:
        return []
    first = confounds.iloc[0].isna()
    if complete_only:
        first &= confounds.iloc[1:].notna().all()
    first = first.to_numpy()
    confounds.iloc[0, first] = confounds.iloc[1, first]
    return [str(c) for c in confounds.columns[first]]


def model_design(run, node) -> Design:
    """A run's design under a model's run node: transformations, ``X``, HRF and drifts,
    convolved as nilearn convolves (equal to ``make_first_level_design_matrix``).

    Parameters
    ----------
    run : Run
    node : bids_fixedfx.model.Node
        A run-level node.

    Returns
    -------
    design : Design
    """
    from .model.design import SOFTWARE, build_run_design, drift_settings, dummy_scan_settings

    dummy = dummy_scan_settings(node)
    if run.design is not None:
        return with_dummy_scans(load_design(run), run, None, **dummy)
    drift_model, _, drift_order = drift_settings(node)
    check_drift_order(run, drift_model, drift_order, f"Node {node.name!r}: Software.{SOFTWARE}.drift_order")
    events = read_events(run.events)
    _check_condition_count(run, events)
    confounds = read_confounds_table(run.confounds)
    if confounds is not None and len(confounds) != run.n_volumes:
        raise InputFileError(
            f"{run.confounds} has {len(confounds)} rows but {run.bold.name} has {run.n_volumes} volumes."
        )
    built = build_run_design(node, events, confounds, tr=run.tr, n_volumes=run.n_volumes,
                             start_time=run.start_time, run_name=run.name)
    trial_types = events["trial_type"] if "trial_type" in events else pd.Series(["dummy"] * len(events))
    counts = trial_types.value_counts().sort_index()
    design = Design(
        matrix=built.matrix,
        conditions=tuple(built.conditions),
        confounds=tuple(c for c in built.confounds if c != "constant"),
        condition_counts={str(k): int(v) for k, v in counts.items()},
        notes=tuple(Note.for_run(run, "design", text) for text in built.notes),
        absent=built.absent,
        left_out=built.left_out,
    )
    return with_dummy_scans(design, run, confounds, **dummy)


# The contrasts of a design live in .contrasts; these names stay importable from here.
from .contrasts import (  # noqa: E402, F401  (re-exported)
    ContrastWeights,
    bids_label,
    check_contrasts,
    contrast_weights,
    expression_names,
    model_contrasts,
)

__all__ = [
    "CONFOUND_STRATEGIES", "NUISANCE_COLUMNS", "NON_STEADY_STATE", "is_confound_strategy", "ContrastWeights", "Design",
    "check_drift_order",
    "DummyScans", "bids_label", "build_design", "find_dummy_scans", "is_non_steady_state", "with_dummy_scans",
    "check_contrasts", "contrast_weights", "expression_names", "frame_times", "load_design", "model_contrasts",
    "fill_first_row", "model_design", "read_confounds_table", "read_events", "read_table", "select_confounds",
]
