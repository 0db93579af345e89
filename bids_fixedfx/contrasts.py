"""Contrasts: the weights of each contrast over one run's design, from the options
(``--contrast``, default one per condition) or from a model's run node.

User text is parsed by :mod:`.expression`, never evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputFileError, UsageError
from .expression import WEIGHT_LIST as _WEIGHTS
from .expression import parse_expression, rounds_to_zero, weight_size_problem
from .naming import label_of
from .notes import Note


@dataclass(frozen=True, eq=False)
class ContrastWeights:
    """A contrast over one design: its name, file label, weights and test.

    ``vector`` is a weight vector for a t contrast, a matrix (one row per tested
    combination) for an F contrast. ``test`` is the model's: ``t``, ``F``, or ``pass`` (the
    effect and variance of a weight vector, passed on untested).
    """

    name: str
    label: str
    vector: np.ndarray
    columns: tuple[str, ...]
    test: str = "t"

    @property
    def weights(self):
        """Weights by design column, as written to the sidecars (non-zero ones); for an F
        contrast, one such mapping per row."""
        if self.test == "F":
            return [{c: float(w) for c, w in zip(self.columns, row) if w != 0} for row in np.atleast_2d(self.vector)]
        return {c: float(w) for c, w in zip(self.columns, self.vector) if w != 0}


def bids_label(name: str) -> str:
    """Turn a contrast name into a BIDS label: letters and digits, camel-cased.

    Parameters
    ----------
    name : str

    Returns
    -------
    label : str

    Examples
    --------
    >>> bids_label("faces_vs_houses")
    'facesVsHouses'
    >>> bids_label("DSt+DSp-SSt-SSp")
    'DStDSpSStSSp'
    >>> bids_label("áudio")
    'audio'
    """
    try:
        return label_of(name)
    except ValueError:
        raise UsageError(f"Contrast name {name!r} has no letters or digits to make a BIDS label of.") from None


def expression_names(expression: str, columns=(), where: str = "Contrast expression") -> list[str]:
    """The design-column names an expression refers to (numbers like ``5e-1`` are not names).

    An expression that is exactly one of ``columns`` names that column, whatever its
    characters (as in nilearn).

    Raises
    ------
    UsageError
        When the expression is not a linear combination of names (see :mod:`.expression`).
    """
    if expression in columns:
        return [expression]
    return sorted(set(parse_expression(expression, where).names))


def _unit(column, columns):
    vector = np.zeros(len(columns))
    vector[list(columns).index(column)] = 1.0
    return vector


def contrast_weights(specs, design, events=None) -> tuple[ContrastWeights, ...]:
    """The t contrasts of one run's design.

    Parameters
    ----------
    specs : sequence of ContrastSpec
        User-given contrasts; when empty, one contrast per condition.
    design : Design
    events : Path, optional
        The events file of the run, named when a condition cannot name its default contrast.

    Returns
    -------
    contrasts : tuple of ContrastWeights
        A contrast whose expression names a column absent from this design is left out
        (its absence is checked across runs by :func:`check_contrasts`).

    Raises
    ------
    UsageError
        A weight list longer than the design, or an expression that is not valid.
    """
    columns = tuple(str(c) for c in design.matrix.columns)
    if not specs:
        contrasts = []
        for condition in design.conditions:
            try:
                label = bids_label(condition)
            except UsageError:
                raise InputFileError(
                    f"The trial type {condition!r} of {events or 'the events'} has no letter or digit (A-Z, 0-9) "
                    f"to name its contrast's files by; rename it there, or choose the contrasts with --contrast "
                    f"(--contrast fixation={condition} names its column)."
                ) from None
            contrasts.append(ContrastWeights(condition, label, _unit(str(condition), columns), columns))
        return tuple(contrasts)
    contrasts = []
    for spec in specs:
        if spec.definition.strip() in columns:  # a column named like a weight list ("2"): the column, as nilearn reads it
            vector = _unit(spec.definition.strip(), columns)
        elif _WEIGHTS.match(spec.definition):
            written = spec.definition.split(",")
            small = next((w.strip() for w in written if rounds_to_zero(w.strip())), None)
            if small is not None:
                raise UsageError(f"--contrast {spec.name} has the weight {small[:20]!r}, too small to be told from 0 "
                                 "(below 1e-308); write 0 if 0 is meant.")
            weights = np.array([float(w) for w in written])
            for weight in weights:
                problem = weight_size_problem(weight)
                if problem:
                    raise UsageError(f"--contrast {spec.name} has the weight {weight:g}, which {problem}.")
            if len(weights) > len(columns):
                raise UsageError(
                    f"--contrast {spec.name} has {len(weights)} weights but the design has "
                    f"only {len(columns)} columns ({', '.join(columns)})."
                )
            vector = np.pad(weights, (0, len(columns) - len(weights)))
        else:
            if spec.definition in columns:
                vector = _unit(spec.definition, columns)
            else:
                combination = parse_expression(spec.definition, f"--contrast {spec.name}")
                if [n for n in combination.names if n not in columns]:
                    continue
                vector = combination.vector(columns)
        if not np.any(vector):
            raise UsageError(f"--contrast {spec.name} has only zero weights.")
        contrasts.append(ContrastWeights(spec.name, bids_label(spec.name), vector, columns))
    return tuple(contrasts)


def check_contrasts(specs, designs) -> list[Note]:
    """Check user contrasts against all designs; return notes for the runs they skip.

    Parameters
    ----------
    specs : sequence of ContrastSpec
    designs : dict
        :class:`Design` by :class:`~bids_fixedfx.discover.Run`.

    Raises
    ------
    UsageError
        A contrast names a column that no design has, or two contrasts share a label.
    """
    notes = []
    labels = {}
    for spec in specs:
        label = bids_label(spec.name)
        if label in labels:
            raise UsageError(
                f"--contrast {spec.name} and --contrast {labels[label]} both make the file label {label}."
            )
        labels[label] = spec.name
        if _WEIGHTS.match(spec.definition):
            _check_weights_or_column(spec, designs)
            continue
        missing = []
        for run, design in designs.items():
            columns = [str(c) for c in design.matrix.columns]
            unknown = [
                n for n in expression_names(spec.definition, columns, f"--contrast {spec.name}")
                if n not in columns
            ]
            if unknown:
                missing.append((run, unknown[0], columns))
        if len(missing) == len(designs):
            _, column, columns = missing[0]
            spaced = [c for c in columns if c != column and c.strip() == column]
            raise UsageError(
                f"--contrast {spec.name} names {column}, which is not a design column "
                f"(columns: {', '.join(columns)})"
                + (f"; the column {spaced[0]!r} differs from it in spaces only: correct the events file." if spaced
                   else ".")
            )
        notes += [
            Note.for_run(run, "contrast-skipped", f"{run.name}: contrast {spec.name} skipped, this run has no column "
                                                  f"{col} (no event of it in the run's events file)")
            for run, col, _ in missing
        ]
    return notes


def _check_weights_or_column(spec, designs) -> None:
    """A weight list that is also the name of a design column (trial types coded ``1``, ``2``)
    names the column, as nilearn reads a column's name; it must then name it in every design,
    or some runs would take it as weights by position and others as the column.

    Raises
    ------
    UsageError
    """
    name = spec.definition.strip()
    having = [run for run, design in designs.items() if name in {str(c) for c in design.matrix.columns}]
    if having and len(having) < len(designs):
        lacking = next(run for run in designs if run not in having)
        raise UsageError(
            f"--contrast {spec.name}={spec.definition} names the design column {name!r} of "
            f"{getattr(having[0], 'name', having[0])} but is a list of weights by position for "
            f"{getattr(lacking, 'name', lacking)}, which has no such column; give every weight of "
            "the design's columns in order, with commas, or leave that run out."
        )


def model_contrasts(run, node, design) -> tuple[tuple[ContrastWeights, ...], list[Note]]:
    """The contrasts of a model's run node over one run's design.

    Returns
    -------
    contrasts : tuple of ContrastWeights
        t and pass contrasts (one row) and F contrasts (several rows).
    notes : list of Note
        Contrasts left out because this run lacks a column they need.
    """
    from .model.bsm import is_intercept
    from .model.contrasts import contrast_matrices

    columns = tuple(str(c) for c in design.matrix.columns)
    x_columns = tuple(c for c in columns if c in design.conditions or c in design.confounds)
    if "constant" in columns and any(is_intercept(x) for x in node.x):
        x_columns += ("constant",)
    matrices, skipped = contrast_matrices(node, columns, x_columns=x_columns)
    contrasts = tuple(
        ContrastWeights(m.name, bids_label(m.name), m.matrix[0] if m.test != "F" else m.matrix, columns,
                        test=m.test)
        for m in matrices if m.test in ("t", "F", "pass")
    )
    return contrasts, [Note.for_run(run, "contrast-skipped", f"{run.name}: {text}") for text in skipped]
