"""Designs above the run: one row per input map (run, session or subject contrast maps), from
the inputs' entities and metadata (``participants.tsv`` columns), for nilearn's
``SecondLevelModel``.

``1`` in X is a column of ones named ``intercept`` (nilearn's name); a categorical column
``group`` is used as ``group.<level>`` indicators (implicit ``Factor``, as at run level); a
name that is a value of ``contrast`` is the indicator of that incoming contrast (pybids).
Rows with a missing value in a used column are left out with a note that names them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bsm import INTERCEPT, ModelError
from .contrasts import GROUP_INTERCEPT
from .design import categories_as_levels, expand_names, implicit_factors
from .formula import apply_formula, parse_formula
from .transforms import apply_transformations
from .variables import table_variables

#: The name of the dataset node that ``--group-covariates`` makes (its model's too).
COVARIATES_NODE = "groupCovariates"


def node_named(node) -> str:
    """How a message names a dataset node: ``--group-covariates`` for the node that option made,
    which the user never wrote."""
    if node.name == COVARIATES_NODE:
        return f"--group-covariates (its design, node {node.name!r})"
    return f"Node {node.name!r}"


@dataclass(frozen=True, eq=False)
class GroupDesign:
    """A design over input maps.

    Attributes
    ----------
    matrix : pandas.DataFrame
        One row per kept input (indexed as the input table), one column per X variable.
    dropped : tuple
        Index labels of the inputs left out for missing values.
    notes : tuple of str
    """

    matrix: pd.DataFrame
    dropped: tuple = ()
    notes: tuple = ()


def build_group_design(node, inputs: pd.DataFrame, *, label: str = "subject", unlisted=()) -> GroupDesign:
    """The design of one group of a higher-level node.

    Parameters
    ----------
    node : Node
        A session, subject or dataset node.
    inputs : pandas.DataFrame
        One row per input map: entities (``subject``, ``session``, ``contrast``, ...) and
        metadata columns (``participants.tsv``: ``group``, ``age``, ...).
    label : str
        The column that names an input in notes (``subject``).
    unlisted : collection of str
        Inputs (by ``label``) without a row in ``participants.tsv``: notes say so rather than
        speak of missing values.

    Returns
    -------
    design : GroupDesign
    """
    where = node_named(node)
    if inputs.empty:
        raise ModelError(f"{where} has an empty group: no inputs to model.")
    _check_finite(node, inputs, label)
    matrix, notes = _design_matrix(node, inputs, where)
    missing = matrix.isna().any(axis=1).to_numpy()
    dropped = tuple(inputs.index[missing])
    if missing.any():
        index = inputs.index[missing]
        names = inputs.loc[missing, label].astype(str).tolist() if label in inputs else [str(d) for d in dropped]
        listed = [name not in set(unlisted) for name in names]
        prefix = {"subject": "sub-", "session": "ses-"}.get(label, "")
        names = [f"{prefix}{name}" for name in names]  # named as the folders are
        if not all(listed):
            absent = [name for name, known in zip(names, listed) if not known]
            notes.append(f"{where}: left out {', '.join(absent)} (no row in participants.tsv; add one to test "
                         f"{'it' if len(absent) == 1 else 'them'})")
        if any(listed):
            lacking = [f"{name} ({', '.join(dict.fromkeys(_source(c, inputs) for c in matrix.columns[row.isna()]))} "
                       "missing)"
                       for name, known, (_, row) in zip(names, listed, matrix.loc[index].iterrows()) if known]
            notes.append(f"{where}: left out {', '.join(lacking)}")
        if missing.all():
            raise ModelError(f"{where} has an empty group: every input has a missing value.")
        # the design again of the inputs tested: a Demean or Scale is over them, not those left out
        try:
            matrix, more = _design_matrix(node, inputs.loc[~missing], where)
        except ModelError as error:  # a Factor level only they held is gone: said with why
            were = "was" if len(names) == 1 else "were"
            raise ModelError(f"{str(error).rstrip('.')}, once {', '.join(names)} {were} left out for missing values "
                             "(a level of a factor may have been theirs alone).") from None
        notes += [note for note in more if note not in notes]
        matrix = matrix.dropna()
        dropped += tuple(i for i in inputs.index[~missing] if i not in matrix.index)
    if matrix.empty:
        raise ModelError(f"{where} has an empty group: every input has a missing value.")
    try:
        check_rank(matrix, where)
    except ModelError:
        _check_constant(matrix, inputs.loc[matrix.index].reset_index(drop=True), where)
        raise
    return GroupDesign(matrix, dropped, tuple(notes))


def _design_matrix(node, inputs, where):
    """:func:`build_group_design`'s matrix of these inputs (NaN where an input lacks a value),
    and its notes."""
    table = inputs.reset_index(drop=True)
    variables = table_variables(table)
    if "contrast" in table:
        wanted = {x for x in node.x if isinstance(x, str)} - set(table.columns)
        indicators = {name: variables["contrast"].replace(
            name=name, values=(table["contrast"].astype(str) == name).to_numpy(dtype=float))
            for name in sorted(wanted & set(table["contrast"].astype(str)))}
        variables = variables.with_variables({**variables.variables, **indicators})
    variables = implicit_factors(_as_events(variables), node)
    variables = apply_transformations(variables, node.transformations, where)
    x, variables, notes = categories_as_levels(node.x, variables, where)
    notes += _case_slips(table, node.x, where)
    if any(e not in node.x for e in x) and INTERCEPT in x:
        _check_intercept_not_contrasted(node, [e for e in x if e not in node.x], where)
        x = tuple(e for e in x if e != INTERCEPT)
        notes.append(f"{where}: the intercept is left out, as the levels of a category span it")
    columns = {}
    for entry in x:
        names = [GROUP_INTERCEPT] if entry == INTERCEPT else expand_names([entry], variables.names, f"{where}: Model.X")
        for name in names:
            if name == GROUP_INTERCEPT and entry == INTERCEPT:
                columns[name] = np.ones(len(table))
                continue
            variable = variables[name]
            if not variable.numeric:
                raise ModelError(f"{where}: Model.X variable {name!r} holds categories; "
                                 f"name its levels ({name}.<level>) or Factor it.")
            columns[name] = variable.values.astype(float)
    if node.formula is not None:
        formula = parse_formula(node.formula, where)
        made = apply_formula({k: v for k, v in columns.items() if k != GROUP_INTERCEPT}, formula, where)
        keep = formula.intercept if formula.intercept is not None else GROUP_INTERCEPT in columns
        columns = {GROUP_INTERCEPT: np.ones(len(table))} if keep else {}
        columns.update(made)
    matrix = pd.DataFrame(columns, index=inputs.index)
    for position, name in enumerate(matrix.columns):  # a level of a category is missing where the category is
        source = name.split(".", 1)[0]
        if "." in name and source in table.columns:
            matrix.iloc[np.flatnonzero(table[source].isna().to_numpy()), position] = np.nan
    return matrix, notes


#: The largest covariate in size (as design.MAX_MODULATION): beyond, beside the intercept, the
#: design loses its other columns in round-off.
MAX_COVARIATE = 1e12


def _check_finite(node, inputs, label) -> None:
    """Refuse an infinite (or huge) value in a column of numbers the node uses (``inf`` in
    participants.tsv): a Demean made every input's value NaN, and the inputs were said to miss
    values; ``1e308`` made the design rank deficient, the model blamed."""
    from ..errors import InputFileError

    used = {x for x in node.x if isinstance(x, str)} | {
        name for transformation in node.transformations for name in (transformation.input or ())}
    for column in sorted(used & set(inputs.columns)):
        if not pd.api.types.is_numeric_dtype(inputs[column]) or pd.api.types.is_bool_dtype(inputs[column]):
            continue
        values = inputs[column].to_numpy(dtype=float)
        huge = np.abs(values) > MAX_COVARIATE  # inf, and 1e308, whose design was said rank deficient
        if huge.any():
            row = inputs.loc[huge].iloc[0]
            prefix = {"subject": "sub-", "session": "ses-"}.get(label, "")
            name = f"{prefix}{row[label]}" if label in inputs else str(row.name)
            what = "not a finite number" if np.isinf(row[column]) else f"beyond {MAX_COVARIATE:g} in size"
            raise InputFileError(f"The {column} of {name} is {row[column]}, {what}; correct it where it "
                                 f"is given (participants.tsv), or write n/a to leave {name} out.")


def _source(column, inputs) -> str:
    """The input column a design column comes from: ``group`` for ``group.patient``."""
    source = column.split(".", 1)[0]
    return source if "." in column and source in inputs.columns else column


def _case_slips(table, x, where) -> list:
    """Notes for the text columns named in ``Model.X`` whose values differ only in case or
    spaces (``Patient`` and ``patient``): each is a level of its own, as written."""
    named = {str(entry).split(".", 1)[0] for entry in x if isinstance(entry, str)}
    notes = []
    for column in table.columns:
        if column not in named or pd.api.types.is_numeric_dtype(table[column]):
            continue
        spellings = defaultdict(set)
        for value in table[column].dropna().astype(str).unique():
            spellings[value.strip().casefold()].add(value)
        for values in (sorted(v) for v in spellings.values() if len(v) > 1):
            notes.append(f"{where}: the column {column!r} has the values {' and '.join(map(repr, values))}, which "
                         "differ only in case or spaces and are modelled as different levels; correct "
                         "participants.tsv if they are one")
    return notes


def _check_constant(matrix, table, where) -> None:
    """Name a design column whose variable has one value across the inputs (a rank-deficient
    design's usual cause: a covariate that does not vary in this group, zero once demeaned)."""
    for name in matrix.columns:
        if name == GROUP_INTERCEPT or name not in table.columns:
            continue
        values = table[name].dropna().unique()
        if len(values) == 1:
            raise ModelError(f"{where}: {name!r} has one value ({values[0]}) for all {len(table)} inputs of this test, "
                             "so its column cannot be estimated; leave it out of Model.X or test inputs that differ.")


def _check_intercept_not_contrasted(node, levels, where) -> None:
    """Refuse a contrast on the intercept of a design whose category's levels span it (the
    intercept is left out, and the contrast with it: the node's main result went missing)."""
    from .contrasts import _column

    def on_intercept(conditions):
        return any(_column(c, node.level) == GROUP_INTERCEPT for c in conditions)

    named = [contrast.name for contrast in node.contrasts if on_intercept(contrast.condition_list)]
    dummy = node.dummy_contrasts
    if dummy is not None and dummy.conditions is not None and on_intercept(dummy.conditions):
        named.append(GROUP_INTERCEPT)
    if named:
        shown = ", ".join(map(str, levels[:4])) + (", ..." if len(levels) > 4 else "")
        raise ModelError(
            f"{where}: contrast {named[0]!r} is on the intercept, which the levels of a category in Model.X "
            f"({shown}) span, so the design cannot hold it; keep the intercept by coding the category with one "
            "column fewer (Factor with Constraint 'drop_one' or 'mean_zero'), or drop 1 from Model.X and "
            "contrast the levels."
        )


def _as_events(variables):
    """Table columns as events without timing, so that run-level naming rules apply to them."""
    return variables.with_variables({
        n: v.replace(onset=np.zeros(len(v.values)), duration=np.zeros(len(v.values)))
        for n, v in variables.variables.items()
    })


def check_rank(matrix: pd.DataFrame, where: str = "The design") -> None:
    """Raise :class:`ModelError` naming the columns of a rank-deficient design.

    Parameters
    ----------
    matrix : pandas.DataFrame
    where : str
        How the error names the node or run.
    """
    values = matrix.to_numpy(dtype=float)
    if values.shape[0] < values.shape[1]:
        raise ModelError(f"{where}: the design has {values.shape[1]} columns but only {values.shape[0]} rows; "
                         "model fewer columns, or more inputs.")
    for k in range(values.shape[1]):
        if np.linalg.matrix_rank(values[:, : k + 1]) <= k:
            if not np.any(values[:, k]):
                raise ModelError(f"{where}: design column {matrix.columns[k]!r} is all zeros.")
            coefficients = np.linalg.lstsq(values[:, :k], values[:, k], rcond=None)[0]
            partners = [str(matrix.columns[i]) for i in np.flatnonzero(np.abs(coefficients) > 1e-8)]
            if not partners:  # the rank is lost to the column's scale, not to the others
                raise ModelError(
                    f"{where}: design column {matrix.columns[k]!r} has values so far apart in size (from "
                    f"{np.abs(values[:, k]).min():g} to {np.abs(values[:, k]).max():g}) that the design is rank "
                    "deficient in round-off; check its values (participants.tsv) or rescale them.")
            raise ModelError(f"{where}: design column {matrix.columns[k]!r} is a combination of "
                             f"{', '.join(map(repr, partners))}; the design is rank deficient.")
