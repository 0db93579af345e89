"""Linear dependence among a design's columns: which columns the others make.

nilearn's ``make_first_level_design_matrix`` regularises a design whose columns are linearly
dependent and warns "Matrix is singular at working precision, regularizing...", naming no
column. :func:`singular_design` says the same with the columns at fault and what to do;
:func:`column_span` is what the planning of contrasts tests their weights against.
"""

from __future__ import annotations

import numpy as np

#: A design column whose values are all at most this is empty (nilearn's convolution of events
#: after the last volume leaves about 1e-14).
EMPTY = 1e-10

#: A design's singular values at most this fraction of its largest (its columns scaled to unit
#: length) are those of linearly dependent columns.
DEPENDENT = 1e-10

#: How nilearn's warning of a singular design begins (``nilearn.glm._utils.full_rank``).
NILEARN_SINGULAR = "Matrix is singular at working precision"


def empty_columns(values) -> np.ndarray:
    """Which columns of ``values`` (volumes x columns) are empty (see :data:`EMPTY`)."""
    return np.abs(values).max(axis=0, initial=0.0) <= EMPTY


def column_span(values, names):
    """The span of a design's columns, each scaled to unit length, and the columns in a
    linear dependence.

    Parameters
    ----------
    values : numpy.ndarray, shape (n_volumes, n_columns)
        The design's values; no column empty (:func:`empty_columns`).
    names : sequence of str
        The columns' names.

    Returns
    -------
    span : numpy.ndarray, shape (rank, n_columns)
        Orthonormal rows spanning the scaled columns' row space.
    lengths : numpy.ndarray, shape (n_columns,)
        The columns' lengths (weights of the scaled columns are ``weights / lengths``).
    dependent : list of str
        The columns that take part in a linear dependence (empty when the design has full rank).
    """
    lengths = np.linalg.norm(values, axis=0)
    _, singular, rows = np.linalg.svd(values / lengths, full_matrices=False)
    span = rows[singular > DEPENDENT * singular.max(initial=0.0)]
    null = np.abs(rows[len(span):]).max(axis=0, initial=0.0)
    return span, lengths, [str(name) for name, weight in zip(names, null) if weight > 1e-6]


def singular_design(run_name: str, matrix) -> str:
    """What nilearn's warning of a singular design means for one run, naming the columns.

    Parameters
    ----------
    run_name : str
        The run's name, which begins the text.
    matrix : pandas.DataFrame
        The design nilearn built (regularised: its dependent columns still stand out).

    Returns
    -------
    text : str
    """
    values = matrix.to_numpy(dtype=float)
    names = [str(c) for c in matrix.columns]
    empty = empty_columns(values)
    if empty.any():
        shown = ", ".join(np.asarray(names)[empty][:6])
        return (f"{run_name}: the design's column {shown} is zero in every volume, so the design is singular and "
                "nilearn regularises it (its maps have no estimate); leave it out of the model or the confounds")
    span, _, dependent = column_span(values, names)
    if not dependent:  # nearly dependent at nilearn's precision only
        return (f"{run_name}: the design is singular at working precision (nilearn regularises it); look for "
                "columns that nearly repeat others among the confounds or the model's X")
    shown = ", ".join(dependent[:6]) + (", ..." if len(dependent) > 6 else "")
    return (f"{run_name}: the design's columns {shown} are linearly dependent (rank {len(span)} of {len(names)}: "
            "one is made of the others, such as a column given twice or a constant one), so nilearn regularises the "
            "design; contrasts of the other columns keep their values, but remove the column the others make "
            "(--confounds, or the model's X and transformations)")
