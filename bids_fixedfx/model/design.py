"""A run's design matrix from a run node: transformations, HRF, confounds and drift, as nilearn.

For the model that the command-line options define, the matrix equals
``make_first_level_design_matrix`` of the run's events and confounds: the convolved columns
come from nilearn's ``compute_regressor`` at the frame times, and the drift, the constant, the
column order (X order, then drift, then ``constant``) and the rank check are
``make_first_level_design_matrix``'s own, called with the model's columns as ``add_regs``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np
import pandas as pd

from ..dependence import NILEARN_SINGULAR, singular_design
from ..notes import one_line
from ..settings import MAX_DRIFT_ORDER
from .bsm import INTERCEPT, ModelError
from .formula import apply_formula, parse_formula
from .hrf import MIN_ONSET, OVERSAMPLING, convolve
from .transforms import apply_transformations
from .variables import Variable, is_wildcard, listed, run_variables, sample

#: The ``Model.Software`` key whose settings are read (``drift_model``, ``drift_order``).
SOFTWARE = "nilearn"


@dataclass(frozen=True, eq=False)
class RunDesign:
    """A run's design matrix and where its columns come from.

    Attributes
    ----------
    matrix : pandas.DataFrame
        One row per volume (indexed by frame time), one column per regressor.
    conditions : tuple of str
        Convolved columns (the task).
    confounds : tuple of str
        Other columns from ``Model.X``.
    drift : tuple of str
        Drift columns and ``constant``.
    notes : tuple of str
        What a user should know about how it was built.
    absent : tuple of str
        The levels of categorical variables that the node's transformations take as inputs and
        that no event of this run has: left out (a level ``Model.X`` names that no run has, as
        bidspm's templates name them, is left out with a note).
    left_out : tuple of str
        The names of ``Model.X`` that no event of this run has (each said in a note,
        :func:`absent_note`).
    """

    matrix: pd.DataFrame
    conditions: tuple
    confounds: tuple
    drift: tuple
    notes: tuple = ()
    absent: tuple = ()
    left_out: tuple = ()

    @property
    def x_columns(self) -> tuple:
        """The columns that ``Model.X`` asked for, in design order (``constant`` for ``1``)."""
        return tuple(c for c in self.matrix.columns if c in self.conditions or c in self.confounds)


def software(node) -> dict:
    """The node's ``Model.Software.nilearn`` settings (key case ignored)."""
    for key, value in node.software.items():
        if key.lower() == SOFTWARE and isinstance(value, dict):
            return value
    return {}


def noise_model_of(node) -> str:
    """A run node's ``Software.nilearn.noise_model``: ``ar1`` (the default) or ``ols``."""
    value = software(node).get("noise_model", "ar1")
    if value not in ("ar1", "ols"):
        raise ModelError(f"Node {node.name!r} has Software.{SOFTWARE}.noise_model {value!r}; expected 'ar1' or 'ols'.")
    return value


def smoothing_of(node) -> float | None:
    """A run node's ``Software.nilearn.smoothing_fwhm`` in mm (0: none), or None when it
    states none (``--smoothing-fwhm``, or its default, applies)."""
    value = software(node).get("smoothing_fwhm")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value == 0 or 0.01 <= value):
        raise ModelError(f"Node {node.name!r} has Software.{SOFTWARE}.smoothing_fwhm {value!r}; expected 0 (no "
                         "smoothing) or a width of at least 0.01 mm, as --smoothing-fwhm takes.")
    return float(value)


def precision_weighted_of(node, default: bool) -> bool:
    """A node's ``Software.nilearn.precision_weighted`` (true or false), else ``default``
    (text such as ``"false"`` is refused: Python reads it as true)."""
    value = software(node).get("precision_weighted", default)
    if not isinstance(value, bool):
        raise ModelError(f"Node {node.name!r} has Software.{SOFTWARE}.precision_weighted {value!r}; "
                         "expected true or false.")
    return value


def dummy_scan_settings(node) -> dict:
    """Which volumes a run node leaves out of the fit, from ``Model.Software.nilearn``:
    ``non_steady_state`` (true: those that fMRIPrep's ``non_steady_state_outlier`` columns
    flag, as nilearn's ``load_confounds``) and ``dummy_scans`` (N: the first N volumes of a
    run without such columns). BIDS Stats Models has no key for them; without these keys no
    volume is left out (``non_steady_state_outlier*`` in ``X`` are regressors, as in FitLins).

    Returns
    -------
    settings : dict
        ``non_steady_state``, ``count`` and ``where`` for :func:`bids_fixedfx.design.with_dummy_scans`.
    """
    settings = software(node)
    flag, count = settings.get("non_steady_state", False), settings.get("dummy_scans")
    where = f"Node {node.name!r}: Software.{SOFTWARE}.dummy_scans"
    if not isinstance(flag, bool):
        raise ModelError(
            f"Node {node.name!r}: Software.{SOFTWARE}.non_steady_state must be true or false, not {flag!r}.")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ModelError(f"{where} must be a whole number of volumes, 0 or more, not {count!r}.")
    return {"non_steady_state": flag, "count": count, "where": where}


def drift_settings(node) -> tuple:
    """``(drift_model, high_pass, drift_order)`` for nilearn: a cosine basis at
    ``HighPassFilterCutoffHz`` when given, else ``Software.nilearn.drift_model`` (``polynomial``
    with ``drift_order``), else none (only the constant)."""
    settings = software(node)
    model = settings.get("drift_model")
    if model is None:
        model = "cosine" if node.high_pass is not None else None
    model = None if model in (None, "none") else str(model).lower()
    if model == "cosine" and node.high_pass is None:
        raise ModelError(f"Node {node.name!r} asks for a cosine drift without HighPassFilterCutoffHz.")
    if model not in (None, "cosine", "polynomial"):
        raise ModelError(f"Node {node.name!r} has drift_model {model!r}; expected cosine, polynomial or none.")
    if model != "cosine" and node.high_pass is not None:  # the cut-off of a cosine basis only
        raise ModelError(f"Node {node.name!r} gives HighPassFilterCutoffHz with drift_model {model or 'none'}, "
                         "which has no cut-off; give one of the two.")
    order = settings.get("drift_order", 1)
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_DRIFT_ORDER:
        raise ModelError(f"Node {node.name!r} has Software.{SOFTWARE}.drift_order {order!r}; expected a whole "
                         f"number from 1 to {MAX_DRIFT_ORDER}.")
    return model, node.high_pass, order


def _referenced(node) -> set:
    names = {x for x in node.x if isinstance(x, str)}
    names |= set(node.hrf.variables) if node.hrf else set()
    for t in node.transformations:
        names |= set(t.input)
    for c in node.contrasts:
        names |= {x for x in c.condition_list if isinstance(x, str)}
    return names


def implicit_factors(variables, node):
    """Indicator variables for names the node uses but no variable or transformation makes.

    ``column.level`` is the indicator of that level of a categorical events column that has no
    ``Factor`` of its own (bidspm's convention); a bare value of ``trial_type`` is the indicator
    of that condition (nilearn's convention: conditions are named by their ``trial_type``).
    """
    factored = {i for t in node.transformations if t.name == "Factor" for i in t.input}
    made = {o for t in node.transformations for o in (t.output or ())}
    added = dict(variables.variables)
    for name in sorted(_referenced(node) - made):
        column, level = name.rsplit(".", 1) if "." in name else ("trial_type", name)
        if name in added or column not in variables or column in factored:
            continue
        source = variables[column]
        if source.kind != "sparse" or source.numeric:
            continue
        if "." not in name:  # a bare condition name
            if level in set(source.values):
                added[name] = source.replace(name=name, values=(source.values == level).astype(float))
            continue
        for value in sorted({v for v in source.values if isinstance(v, str)}):
            added.setdefault(f"{column}.{value}", source.replace(
                name=f"{column}.{value}", values=(source.values == value).astype(float)))
    return variables.with_variables(added)


def categories_as_levels(x, variables, where: str, missing: float = np.nan):
    """``Model.X`` with each categorical variable named alone replaced by the indicators of its
    levels (``group`` -> ``group.control``, ``group.patient``), as an implicit ``Factor``.

    Parameters
    ----------
    x : sequence of (str or int)
    variables : Variables
    where : str
        How notes name the node (and run).
    missing : float
        The indicators' value where the category is missing: NaN (the row is left out, above
        the run) or 0 (an event of no level, at the run).

    Returns
    -------
    x : tuple
    variables : Variables
        With the indicators added.
    notes : list of str
    """
    entries, added, notes = [], dict(variables.variables), []
    for entry in x:
        variable = variables.variables.get(entry) if isinstance(entry, str) else None
        if variable is None or variable.numeric:
            entries.append(entry)
            continue
        values = np.asarray(variable.values, dtype=object)
        known = ~pd.isna(pd.Series(values)).to_numpy()
        levels = sorted({str(v) for v in values[known]})
        for level in levels:
            name = f"{entry}.{level}"
            indicator = np.where(known, values.astype(str) == level, missing).astype(float)
            added.setdefault(name, variable.replace(name=name, values=indicator))
            entries.append(name)
        notes.append(f"{where}: Model.X {entry!r} holds categories, modelled as one column per level "
                     f"({', '.join(levels)})")
    return tuple(entries), variables.with_variables(added), notes


def absent_levels(patterns, available, columns) -> list:
    """The names ``column.level`` among ``patterns`` of a level that no event of the run has.

    Parameters
    ----------
    patterns : sequence of (str or int)
        ``Model.X``.
    available : collection of str
        The run's variables after the transformations.
    columns : collection of str
        The run's events and confounds columns as given.

    Returns
    -------
    names : list of str
        Plain names (no wildcard) that are not variables but whose ``column`` is one of the
        run's columns: a condition that does not occur in this run (pybids and bidspm leave
        it out of that run). The derivative columns of ``Model.HRF`` (``x_derivative``,
        ``x_dispersion`` of a variable ``x``) are made by the convolution, not missing.
    """
    return [p for p in patterns if isinstance(p, str) and p not in available and not is_wildcard(p)
            and "." in p and p.rsplit(".", 1)[0] in columns and not convolution_made(p, available)]


def convolution_made(name, available) -> bool:
    """Whether a ``Model.X`` name is a column that ``Model.HRF``'s convolution makes of a
    variable (``x_derivative``, ``x_dispersion``), rather than a variable."""
    return (isinstance(name, str) and name not in available
            and re.sub(r"_(derivative|dispersion)$", "", name) in available)


def expand_names(patterns, available, where: str) -> list:
    """Names matching each pattern (exact, or wildcards ``*``/``?``/``[...]``), in order; a
    variable's exact name first (``Split`` makes names such as ``trial_type.a.response[left]``)."""
    names = []
    for pattern in patterns:
        if pattern == INTERCEPT:
            continue
        if pattern in available:
            matched = [pattern]
        elif is_wildcard(pattern):
            matched = [n for n in available if fnmatchcase(n, pattern)]
        else:
            raise ModelError(f"{where} names {pattern!r}, which is not a variable "
                             f"(variables: {listed(available, pattern)}).")
        names += [n for n in matched if n not in names]
    return names


def _unused_derivatives(node, x_names, variables) -> list:
    """A note for the columns a ``Convolve`` made with ``Derivative`` or ``Dispersion`` that
    ``Model.X`` does not name: as in pybids, X alone chooses the design's columns."""
    unused = [name for name in variables.names if name not in x_names and re.fullmatch(r".+_(derivative|dispersion)", name)
              and re.sub(r"_(derivative|dispersion)$", "", name) in x_names]
    if not unused:
        return []
    return [f"Node {node.name!r}: Convolve made {', '.join(map(repr, unused))}, which Model.X does not name, so "
            "the design leaves them out; add them to Model.X to model them"]


def _check_not_split_by_fir(node, x_names, variables) -> None:
    """A ``Convolve`` of the FIR model makes ``<name>_delay_<n>`` columns and leaves the events
    it was given as they are: ``Model.X`` naming those events modelled them unconvolved."""
    for name in x_names:
        delays = [other for other in variables.names if re.fullmatch(re.escape(name) + r"_delay_\d+", other)]
        if delays and variables[name].source != "convolved":
            raise ModelError(f"Node {node.name!r}: Model.X names {name!r}, which its Convolve with the FIR model "
                             f"splits into {', '.join(delays)}: name those (the events themselves are not convolved).")


def build_run_design(node, events, confounds, *, tr: float, n_volumes: int, start_time: float = 0.0,
                     run_name: str = "the run", oversampling: int = OVERSAMPLING,
                     min_onset: float = MIN_ONSET) -> RunDesign:
    """The design matrix of one run under a run node.

    Parameters
    ----------
    node : Node
        A run-level node.
    events : pandas.DataFrame or None
        The run's events (``onset``, ``duration``, other columns; missing values as NaN).
    confounds : pandas.DataFrame or None
        One row per volume.
    tr : float
    n_volumes : int
    start_time : float
        Time of the first volume's reference slice (nilearn's ``slice_time_ref * tr``).
    run_name : str
        How errors name the run.
    oversampling : int
    min_onset : float
        nilearn's convolution settings.

    Returns
    -------
    design : RunDesign
    """
    from nilearn.glm.first_level import make_first_level_design_matrix

    from ..design import frame_times as nilearn_frame_times

    where = f"Node {node.name!r} ({run_name})"
    times = nilearn_frame_times(n_volumes, tr, start_time)
    given = run_variables(events, confounds, frame_times=times, tr=tr)
    variables = implicit_factors(given, node)
    with warnings.catch_warnings(record=True) as said:  # what a transformation warns of: the run's notes
        warnings.simplefilter("always", UserWarning)
        unmade, absent_inputs = set(), set()  # made of a level no event of this run has; such levels
        variables = apply_transformations(variables, node.transformations, where, unmade, absent_inputs)
    x, variables, notes = categories_as_levels(node.x, variables, where, missing=0.0)
    notes = [one_line(w.message) for w in said if issubclass(w.category, UserWarning)] + list(notes)
    absent = absent_levels(x, variables.names, given.names)
    absent += [name for name in x if name in unmade - set(variables.names) and name not in absent]
    notes += [absent_note(run_name, name) for name in absent]
    made_by_hrf = [e for e in x if node.hrf is not None and convolution_made(e, variables.names)]
    x_names = expand_names([e for e in x if e not in absent and e not in made_by_hrf], variables.names,
                           f"{where}: Model.X")
    notes += _unused_derivatives(node, x_names, variables)
    notes += [f"{run_name}: Model.X {pattern!r} matches no variable of this run (no event or confound column of "
              "that name), so the design has no column of it; check the pattern if it should"
              for pattern in x if isinstance(pattern, str) and is_wildcard(pattern) and pattern not in absent
              and pattern not in made_by_hrf and pattern not in variables.names  # Split's rt.trial_type[a]: a name
              and not any(fnmatchcase(name, pattern) for name in variables.names)]
    _check_not_split_by_fir(node, x_names, variables)
    hrf_x = categories_as_levels(node.hrf.variables, variables, where, missing=0.0)[0] if node.hrf else ()
    hrf_names = {n for n in x_names if any(n == pattern or fnmatchcase(n, pattern) for pattern in hrf_x)}
    columns, conditions = {}, []
    for name in x_names:
        variable = variables[name]
        if not variable.numeric:
            raise ModelError(f"{where}: Model.X variable {name!r} holds categories; "
                             f"Factor it or name its levels ({name}.<level>).")
        if name in hrf_names and variable.source == "convolved":
            raise ModelError(f"{where}: {name!r} would be convolved twice, by a Convolve transformation and by "
                             "Model.HRF (its Variables name it); convolve it once: leave it out of one of them.")
        if name in hrf_names:
            made = convolve(variable, node.hrf.model, times, fir_delays=node.hrf.fir_delays,
                            oversampling=oversampling, min_onset=min_onset, where=where)
        elif variable.kind == "sparse":
            made = convolve(variable, None, times, oversampling=oversampling, min_onset=min_onset, where=where)
        elif variable.kind == "dense":
            made = [_confound(variable, times, where, notes)]
        else:
            raise ModelError(f"{where}: Model.X variable {name!r} has no timing in a run.")
        for column in made:
            if column.name in columns:
                raise ModelError(f"{where}: two design columns are named {column.name!r}.")
            columns[column.name] = column.values
            if variable.source == "convolved" or name in hrf_names or variable.kind == "sparse":
                conditions.append(column.name)  # the events' regressors, convolved or boxcars
    if node.formula is not None:
        formula = parse_formula(node.formula, where)
        columns = apply_formula(columns, formula, where)
        conditions = [c for c in columns if any(part in conditions for part in c.split(":"))]
        if formula.intercept is False:
            notes.append(f"{where}: Model.Formula drops the intercept; the run's design keeps nilearn's constant")
    drift_model, high_pass, drift_order = drift_settings(node)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            matrix = make_first_level_design_matrix(
                times, events=None, drift_model=drift_model, high_pass=high_pass or 0.01,
                drift_order=drift_order,
                add_regs=np.column_stack(list(columns.values())) if columns else None,
                add_reg_names=list(columns) if columns else None,
            )
        except ValueError as error:
            raise ModelError(f"{where}: the design cannot be built ({error}).") from None
    said = [one_line(w.message) for w in caught if issubclass(w.category, UserWarning)]
    notes += [singular_design(run_name, matrix) if text.startswith(NILEARN_SINGULAR) else f"{run_name}: {text}"
              for text in said]
    confound_names = tuple(c for c in columns if c not in conditions)
    drift = tuple(c for c in matrix.columns if c not in columns)
    if INTERCEPT in node.x:
        confound_names += ("constant",)
    return RunDesign(matrix, tuple(conditions), confound_names, drift, tuple(notes), tuple(sorted(absent_inputs)),
                     tuple(absent))


def absent_note(run_name, name) -> str:
    """The note of a name of ``Model.X`` that no event of a run has."""
    return f"{run_name}: no event has {name!r}, which is left out of this run's design"


def _confound(variable: Variable, times, where, notes) -> Variable:
    values = sample(variable, times)
    missing = np.isnan(values)
    if missing[0] and len(values) > 1 and not missing[1]:
        values[0] = values[1]  # as nilearn's load_confounds: a derivative's first value
        notes.append(f"{where}: the first value of {variable.name} was n/a and was set to the second")
        missing = np.isnan(values)
    if missing.any():
        raise ModelError(f"{where}: {variable.name!r} has n/a values past the first row.")
    return variable.replace(values=values, times=np.asarray(times))
