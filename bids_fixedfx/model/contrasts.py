"""A node's contrasts over a design's columns, and the names they take in later nodes.

Naming follows the specification and pybids: at a node that receives a single contrast
(grouped by ``contrast``), the intercept stands for that contrast, so the dummy contrast of
``1`` takes the incoming name (subject ``meta`` of ``IvC`` gives ``IvC``), and another
contrast ``c`` of that node is named ``<incoming>_c``. Contrasts naming a column the design
lacks are left out with a note, as pybids does; an F contrast is never passed on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

from .bsm import INTERCEPT, ModelError

#: The intercept column: nilearn's ``constant`` in a run's design, ``intercept`` above.
RUN_INTERCEPT = "constant"
GROUP_INTERCEPT = "intercept"
#: GroupBy variables that a dataset may lack (one run, one session): grouping by them is a no-op.
OPTIONAL_GROUPS = ("run", "session")


@dataclass(frozen=True, eq=False)
class ContrastMatrix:
    """A contrast of one design.

    Attributes
    ----------
    name : str
        The output name (after renaming for an incoming contrast).
    test : {'t', 'F', 'pass'}
    matrix : numpy.ndarray
        Shape ``(rows, n_columns)``: one row for t and pass, one per row of weights for F.
    columns : tuple of str
        The design's columns.
    source : str
        The contrast's name in the node (before renaming).
    """

    name: str
    test: str
    matrix: np.ndarray
    columns: tuple
    source: str

    @property
    def vector(self) -> np.ndarray:
        """The weights of a one-row contrast."""
        if self.matrix.shape[0] != 1:
            raise ValueError(f"contrast {self.name} has {self.matrix.shape[0]} rows")
        return self.matrix[0]

    @property
    def weights(self) -> dict:
        """Non-zero weights by column (one-row contrasts), as sidecars write them."""
        return {c: float(w) for c, w in zip(self.columns, self.vector) if w != 0}

    @property
    def passed_on(self) -> bool:
        """Whether later nodes receive it (t and pass contrasts; F contrasts are terminal)."""
        return self.test != "F"


def intercept_column(level: str) -> str:
    """The design column that ``1`` stands for at a level."""
    return RUN_INTERCEPT if level == "run" else GROUP_INTERCEPT


def output_name(name: str, *, intercept: bool = False, incoming: str | None = None) -> str:
    """The name a node's contrast takes in its outputs.

    Parameters
    ----------
    name : str
        The contrast's name in the node.
    intercept : bool
        Whether it is the dummy contrast of the intercept.
    incoming : str, optional
        The single contrast the node received (when grouped by contrast).
    """
    if intercept:
        return incoming or GROUP_INTERCEPT
    if incoming and name != incoming:
        return f"{incoming}_{name}"
    return name


def _column(condition, level):
    return intercept_column(level) if condition == INTERCEPT else condition


def _resolve(condition, index):
    """A condition named by its bare ``trial_type`` value stands for ``trial_type.<value>``
    when only that column exists (bidspm's convention)."""
    if condition not in index and f"trial_type.{condition}" in index:
        return f"trial_type.{condition}"
    return condition


def _matching(conditions, available, index):
    """Dummy-contrast conditions with wildcards (``trial_type.face*``) replaced by the columns
    of X they match, as Model.X matches them."""
    out = []
    for condition in conditions:
        if isinstance(condition, str) and condition not in index and re.search(r"[*?\[]", condition):
            out += [c for c in available if fnmatchcase(c, condition) and c not in out]
        else:
            out.append(condition)
    return tuple(out)


def _levels_of_category(spec, index):
    """A dummy contrast of a category that X modelled level by level (``trial_type``): one per
    level (``trial_type.a``, ``trial_type.b``); any other contrast as it is."""
    name, conditions, rows, test, is_intercept = spec
    levels = [c for c in index if conditions[0] != INTERCEPT and str(c).startswith(f"{conditions[0]}.")]
    if len(conditions) != 1 or conditions[0] in index or not levels or name != conditions[0]:
        return [spec]
    return [(level, (level,), rows, test, False) for level in levels]


def contrast_matrices(node, columns, *, x_columns=None, incoming: str | None = None) -> tuple:
    """The contrasts and dummy contrasts of a node over one design.

    Parameters
    ----------
    node : Node
    columns : sequence of str
        The design's columns, in order.
    x_columns : sequence of str, optional
        The columns that ``Model.X`` made (``RunDesign.x_columns``), for dummy contrasts of
        every variable; default: ``columns``.
    incoming : str, optional
        The single contrast the node received.

    Returns
    -------
    contrasts : tuple of ContrastMatrix
        Dummy contrasts first, then the explicit ones; an explicit contrast of a dummy
        contrast's name must have its weights and test.
    notes : tuple of str
        Contrasts left out because this design lacks a column they need.
    """
    columns = tuple(str(c) for c in columns)
    index = {c: i for i, c in enumerate(columns)}
    specs = []
    dummy = node.dummy_contrasts
    if dummy is not None:
        available = tuple(x_columns if x_columns is not None else columns)
        conditions = available if dummy.conditions is None else _matching(dummy.conditions, available, index)
        for condition in conditions:
            column = _column(condition, node.level)
            if incoming is not None and condition == incoming and column not in index \
                    and intercept_column(node.level) in index:
                column = intercept_column(node.level)  # the incoming contrast by name (bidspm's group nodes): its mean
            is_intercept = column == intercept_column(node.level)
            specs.append((str(column), (column,), ((1.0,),), dummy.test, is_intercept))
    dummies = [expanded for spec in specs for expanded in _levels_of_category(spec, index)]
    explicit = []
    for contrast in node.contrasts:
        conditions = tuple(_column(c, node.level) for c in contrast.condition_list)
        explicit.append((contrast.name, conditions, contrast.matrix_rows, contrast.test, False))
    explicit = [expanded for spec in explicit for expanded in _levels_of_category(spec, index)]
    dummy_names = {spec[0] for spec in dummies}
    chosen, notes = {}, []
    for name, conditions, rows, test, is_intercept in dummies + explicit:
        conditions = tuple(_resolve(c, index) for c in conditions)
        missing = [c for c in conditions if c not in index]
        if missing:
            delays = [c for c in columns if c.startswith(f"{missing[0]}_delay_")]
            if delays:  # the model's own HRF split it: no design of this model has it (a model error, not the data's)
                raise ModelError(f"Node {node.name!r}: contrast {name!r} names {missing[0]!r}, which its FIR HRF "
                                 f"splits into {', '.join(delays)}: name those.")
            notes.append(f"Node {node.name!r}: contrast {name!r} left out, the design has no column {missing[0]!r}")
            chosen.pop(name, None)
            continue
        matrix = np.zeros((len(rows), len(columns)))
        for r, row in enumerate(rows):
            for condition, weight in zip(conditions, row):
                matrix[r, index[condition]] += weight
        if not matrix.any():
            raise ModelError(f"Node {node.name!r}: contrast {name!r} has only zero weights.")
        if name in dummy_names and name in chosen and (
                chosen[name].test != test or not np.array_equal(chosen[name].matrix, matrix)):
            raise ModelError(
                f"Node {node.name!r}: contrast {name!r} has the name of one of its DummyContrasts (the effect of "
                f"{name} alone), whose maps it would replace with other weights; give it another Name."
            )
        chosen[name] = ContrastMatrix(output_name(name, intercept=is_intercept, incoming=incoming),
                                      test, matrix, columns, name)
    names = [c.name for c in chosen.values()]
    for name in names:
        if names.count(name) > 1:
            raise ModelError(f"Node {node.name!r} makes two contrasts named {name!r}.")
    return tuple(chosen.values()), tuple(notes)


def check_group_by(node, available) -> None:
    """Raise :class:`ModelError` when the node groups by a variable the data does not have.

    Parameters
    ----------
    node : Node
    available : collection of str
        Entities and metadata columns of the node's inputs (``subject``, ``session``,
        ``contrast``, ``participants.tsv`` columns, ...).
    """
    available = set(available)
    for variable in node.group_by:
        if variable not in available and variable not in OPTIONAL_GROUPS:
            raise ModelError(
                f"Node {node.name!r} groups by {variable!r}, which is not in the data "
                f"(available: {', '.join(sorted(available)) or 'none'})."
            )


def check_conditions(node, columns_by_unit: dict) -> list:
    """Check a node's contrasts across all its designs (runs, groups).

    Parameters
    ----------
    node : Node
    columns_by_unit : dict of str to sequence of str
        Each design's columns, by a name for it (``sub-01_task-x_run-1``).

    Returns
    -------
    notes : list of str
        The units that leave a contrast out.

    Raises
    ------
    ModelError
        A contrast names a variable that no design has.
    """
    notes = []
    for contrast in node.contrasts:
        conditions = [_column(c, node.level) for c in contrast.condition_list]
        lacking = {unit: next(c for c in conditions if c not in cols)
                   for unit, cols in columns_by_unit.items() if any(c not in cols for c in conditions)}
        if columns_by_unit and len(lacking) == len(columns_by_unit):
            condition = next(iter(lacking.values()))
            raise ModelError(f"Node {node.name!r}: contrast {contrast.name!r} names {condition!r}, "
                             "which no design has.")
        notes += [f"{unit}: contrast {contrast.name!r} left out, no column {c!r}" for unit, c in lacking.items()]
    return notes
