"""``Model.Formula``: Wilkinson notation over the columns that ``Model.X`` made.

The subset that models use: terms joined by ``+``; ``a:b`` is the product of columns ``a``
and ``b`` (named ``a:b``, as formulaic names it); ``a*b`` is ``a + b + a:b``; ``1`` keeps the
intercept, ``0`` or ``-1`` drops it; a name with spaces or operators is quoted with
backticks (```trial_type.parametric gain```). The text is parsed, never evaluated.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

from .bsm import ModelError

#: The most terms a formula may expand to (a design has a column for each, and no run has
#: that many volumes to spare; 22 '*' took a minute to expand).
MAX_TERMS = 1024
_PART = r"`[^`]+`|[+\-*:]|[A-Za-z0-9_.\[\]]+"
_TOKEN = re.compile(rf"\s*({_PART})")


@dataclass(frozen=True)
class Formula:
    """A parsed formula.

    Attributes
    ----------
    terms : tuple of tuple of str
        Each term as the names it multiplies, in the formula's order (main effects of an
        ``a*b`` first, then their interactions).
    intercept : bool or None
        ``1`` (True), ``0`` or ``-1`` (False), or not said (None).
    """

    terms: tuple
    intercept: bool | None = None

    @staticmethod
    def name(term) -> str:
        """The column name of a term (``a:b``)."""
        return ":".join(term)


def parse_formula(text: str, where: str) -> Formula:
    """Parse the right-hand side of a Wilkinson formula.

    Parameters
    ----------
    text : str
        ``"0 + RT * gain"``; a leading ``y ~`` is ignored.
    where : str
        How errors name the node.

    Returns
    -------
    formula : Formula

    Raises
    ------
    ModelError
        Parentheses, powers or other operators this subset does not read, or an empty term.
    """
    text = text.split("~", 1)[-1]
    tokens, position = [], 0
    while match := _TOKEN.match(text, position):  # token after token: a pattern of the whole text backtracked
        tokens.append(match.group(1))  # exponentially over a long name followed by a character it does not read
        position = match.end()
    if text[position:].strip():
        shown = text.strip() if len(text.strip()) <= 80 else text.strip()[:77] + "..."
        raise ModelError(f"{where}: Model.Formula {shown!r} uses notation this app does not read at "
                         f"{text[position:].strip()[:20]!r} (it reads names, +, -1, 0, 1, : and *).")
    terms, intercept, sign, factors, operator = [], None, 1, [], None

    def close():
        nonlocal intercept, factors
        if not factors:
            raise ModelError(f"{where}: Model.Formula {text.strip()!r} has an empty term.")
        if len(factors) == 1 and factors[0][1] in ("0", "1"):
            intercept = (factors[0][1] == "1") == (sign > 0)
        elif sign < 0:
            raise ModelError(f"{where}: Model.Formula {text.strip()!r} removes a term other than the intercept.")
        else:
            groups = [[]]  # a*b:c is a + b:c + a:b:c: the products of every choice of '*'-groups
            for joiner, name in factors:
                if joiner == "*":
                    groups.append([])
                groups[-1].append(name)
            if 2 ** len(groups) - 1 + len(terms) > MAX_TERMS:  # a*b*c*... doubles the terms with each '*'
                raise ModelError(f"{where}: Model.Formula {text.strip()[:80]!r} expands to more than {MAX_TERMS} "
                                 "terms; write the interactions you need with ':'.")
            for size in range(1, len(groups) + 1):
                for chosen in itertools.combinations(groups, size):
                    term = tuple(name for group in chosen for name in group)
                    if term not in terms:
                        terms.append(term)
        factors = []

    for token in tokens:
        if token in "+-":
            if factors:
                close()
            sign = 1 if token == "+" else -1
        elif token in ("*", ":"):
            if not factors:
                raise ModelError(f"{where}: Model.Formula {text.strip()!r} has {token!r} without a term before it.")
            operator = token
        else:
            if factors and operator is None:
                raise ModelError(f"{where}: Model.Formula {text.strip()!r} has two names without an operator "
                                 "between them.")
            factors.append((operator, token.strip("`")))
            operator = None
    close()
    return Formula(tuple(terms), intercept)


def apply_formula(columns: dict, formula: Formula, where: str) -> dict:
    """The design columns of a formula, from the columns of ``Model.X``.

    Parameters
    ----------
    columns : dict of str to numpy.ndarray
        The columns that ``Model.X`` made, by name.
    formula : Formula
    where : str

    Returns
    -------
    columns : dict of str to numpy.ndarray
        One column per term, in the formula's order; an interaction is the product of its
        columns. The intercept is the caller's (``formula.intercept``).

    Raises
    ------
    ModelError
        A name that is not a column of ``Model.X``.
    """
    out = {}
    for term in formula.terms:
        missing = [name for name in term if name not in columns]
        if missing:
            levels = [column for column in columns if column.startswith(f"{missing[0]}.")]
            if levels:  # a category of X, modelled one column per level
                raise ModelError(f"{where}: Model.Formula names {missing[0]!r}, a category that Model.X models as one "
                                 f"column per level ({', '.join(levels)}); name those columns in the Formula.")
            raise ModelError(f"{where}: Model.Formula names {missing[0]!r}, which is not a column of Model.X "
                             f"({', '.join(columns) or 'none'}).")
        out[Formula.name(term)] = np.prod([np.asarray(columns[name], float) for name in term], axis=0)
    return out

