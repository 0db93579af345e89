"""Contrast expressions: user text parsed into a linear combination of design columns.

A contrast such as ``DSt+DSp-SSt-SSp`` or ``0.5*(faces + houses) - scrambled`` comes from a
command line, a web form or a model file, so it is parsed here and never handed to an
evaluator (nilearn's ``expression_to_contrast_vector`` runs ``DataFrame.eval``, which
allows attribute access and calls). The grammar is that of a linear combination::

    expression := term (("+" | "-") term)*
    term       := factor (("*" | "/") factor)*
    factor     := ("+" | "-") factor | NUMBER | NAME | "(" expression ")"

A product needs a number on one side, a division a non-zero number below it; a
constant term on its own (``faces + 1``) is refused. Names are design columns: letters
(accented ones too), digits, ``_`` and ``.`` (pybids' ``trial_type.face``), not starting
with a digit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

#: The largest weight: the maps are written in single precision (up to 3.4e38), and a contrast's
#: variance grows with the square of its weights (1e308 wrote infinite maps without a word).
MAX_WEIGHT = 1e12
#: The smallest weight but 0: nilearn's fixed effects floor each variance at 1e-16, so the maps
#: of a contrast of 1e-12 times a column came out wrong (t a hundred thousand times too small).
MIN_WEIGHT = 1e-6


def rounds_to_zero(text: str) -> bool:
    """Whether a number written as text (``1e-999``) is not 0 but reads as 0.0 (below the
    smallest double): a weight written so would be taken as 0 without a word."""
    return float(text) == 0 and any(digit in "123456789" for digit in text.lower().split("e")[0])


def weight_size_problem(weight: float) -> str | None:
    """What is wrong with the size of a weight (too large, or too small but not 0), or None."""
    if not np.isfinite(weight) or abs(weight) > MAX_WEIGHT:
        return (f"is not a finite number of at most {MAX_WEIGHT:g} in size (a variance map, in single "
                "precision, holds the square of the weight)")
    if weight != 0 and abs(weight) < MIN_WEIGHT:
        return (f"is below {MIN_WEIGHT:g} in size, so small that fixed effects (nilearn's, which floor a variance "
                "at 1e-16) would give wrong maps; scale the weights up (t, z and p do not depend on their scale)")
    return None

#: A number as user text writes it (``3``, ``0.5``, ``.5``, ``1e-3``), without a sign: the
#: pattern of every number the app reads from text. Its digits split one way only, so that a
#: run of many digits fails in linear time (``\d+\.?\d*`` tried every split: a cell of
#: 100,000 digits took minutes). ASCII digits only: Python's ``\d`` and ``float`` also read
#: other scripts' (``١`` as 1).
NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"

_TOKEN = re.compile(
    rf"\s*(?:(?P<number>{NUMBER})"
    r"|(?P<name>[^\W\d]\w*(?:\.\w+)*)"
    r"|(?P<op>[-+*/()]))"
)
#: A list of comma-separated weights (``-1,-1,1,1``), the other form of a contrast.
WEIGHT_LIST = re.compile(rf"^\s*[-+]?{NUMBER}(?:\s*,\s*[-+]?{NUMBER})*\s*$")
#: Longest expression accepted, in characters (a form field, not a program).
MAX_LENGTH = 10_000


@dataclass(frozen=True)
class LinearCombination:
    """A parsed contrast expression: a weight per column name and a constant.

    Attributes
    ----------
    weights : tuple of (str, float)
        Column names and their weights, in order of first appearance.
    constant : float
        The part that names no column (must be 0 for a contrast).
    """

    weights: tuple[tuple[str, float], ...]
    constant: float = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        """The column names the expression refers to."""
        return tuple(name for name, _ in self.weights)

    def vector(self, columns) -> np.ndarray:
        """The weight vector over ``columns`` (0 for columns the expression does not name).

        Raises
        ------
        KeyError
            A name of the expression is not among ``columns``.
        """
        columns = list(columns)
        index = {column: i for i, column in reversed(list(enumerate(columns)))}
        vector = np.zeros(len(columns))
        for name, weight in self.weights:
            vector[index[name]] += weight
        return vector


def _tokens(text: str, where: str = "Contrast expression", digit_names=None):
    """The (kind, value) tokens of an expression; ``digit_names`` collects the words that start
    with a digit (``2back``, read as the number 2 then the name back)."""
    position = 0
    tokens = []
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip() == "":
                break
            raise UsageError(
                f"{where} {text!r} has {text[position:].strip()[:1]!r} at character "
                f"{position + 1}; only numbers, column names, + - * / and parentheses are allowed."
            )
        kind = match.lastgroup
        if kind == "name" and tokens and tokens[-1][0] == "number" and match.start(kind) == position \
                and digit_names is not None:
            digit_names.append(tokens[-1][1] + match.group(kind))
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over the tokens; each rule returns (weights dict, constant)."""

    def __init__(self, text, where):
        self.text = text
        self.where = where
        self.digit_names = []
        self.tokens = _tokens(text, where, self.digit_names)
        self.index = 0

    def fail(self, why):
        raise UsageError(f"{self.where} {self.text!r} is not a linear combination of columns: {why}.")

    def peek(self):
        return self.tokens[self.index] if self.index < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        self.index += 1
        return token

    def parse(self):
        if not self.tokens:
            self.fail("it is empty")
        if self.digit_names:  # a condition such as 2back (a column of that name alone is taken as the column)
            raise UsageError(
                f"{self.where} {self.text!r} names {self.digit_names[0]!r}, which starts with a digit: an expression "
                "names columns that start with a letter or _ (a weight is written 2*name); give the contrast as "
                "comma-separated weights in the order of the design's columns (a run's _design.tsv), or rename "
                "the condition."
            )
        result = self.expression(depth=0)
        if self.index < len(self.tokens):
            (kind, previous), (_, value) = self.tokens[self.index - 1], self.peek()
            if kind == "name" and self.peek()[0] == "name":  # a column name holding a space: go nogo
                self.fail(
                    f"{previous!r} and {value!r} stand side by side without an operator; a column whose name holds a "
                    f"space or an operator (such as {previous + ' ' + value!r}) cannot be written in an expression: "
                    "give that column's name alone, or the contrast as comma-separated weights in the order of the "
                    "design's columns (a run's _design.tsv)"
                )
            self.fail(f"unexpected {value!r}")
        return result

    def expression(self, depth):
        weights, constant = self.term(depth)
        while self.peek() in (("op", "+"), ("op", "-")):
            sign = 1.0 if self.take()[1] == "+" else -1.0
            other, other_constant = self.term(depth)
            for name, weight in other.items():
                weights[name] = weights.get(name, 0.0) + sign * weight
            constant += sign * other_constant
        return weights, constant

    def term(self, depth):
        weights, constant = self.factor(depth)
        while self.peek() in (("op", "*"), ("op", "/")):
            operator = self.take()[1]
            other, other_constant = self.factor(depth)
            if operator == "/":
                if other:
                    self.fail("it divides by a column")
                if other_constant == 0:
                    self.fail("it divides by zero")
                weights = {n: w / other_constant for n, w in weights.items()}
                constant /= other_constant
            elif weights and other:
                self.fail("it multiplies two columns")
            elif other:
                weights = {n: w * constant for n, w in other.items()}
                constant *= other_constant
            else:
                weights = {n: w * other_constant for n, w in weights.items()}
                constant *= other_constant
        return weights, constant

    def factor(self, depth):
        if depth > 100:
            self.fail("it nests too deeply")
        kind, value = self.take()
        if kind == "op" and value in "+-":
            weights, constant = self.factor(depth + 1)
            sign = 1.0 if value == "+" else -1.0
            return {n: sign * w for n, w in weights.items()}, sign * constant
        if kind == "number":
            number = float(value)
            if not np.isfinite(number) or abs(number) > MAX_WEIGHT:
                self.fail(f"{value} is not a finite number of at most {MAX_WEIGHT:g}")
            if rounds_to_zero(value):
                self.fail(f"{value} is too small to be told from 0")
            return {}, number
        if kind == "name":
            return {value: 1.0}, 0.0
        if kind == "op" and value == "(":
            result = self.expression(depth + 1)
            if self.take() != ("op", ")"):
                self.fail("a parenthesis is not closed")
            return result
        self.fail("it ends too early" if kind is None else f"unexpected {value!r}")


def check_characters(text: str, where: str = "Contrast expression") -> None:
    """Refuse text with anything but numbers, names, ``+ - * /``, parentheses and spaces.

    Raises
    ------
    UsageError
    """
    _tokens(text, where)


def parse_expression(text: str, where: str = "Contrast expression") -> LinearCombination:
    """Parse a contrast expression into column weights, without evaluating it.

    Parameters
    ----------
    text : str
        For example ``"faces - houses"`` or ``"0.5*(DSt + DSp) - SSt"``.
    where : str
        Where the text came from, for messages (``"--contrast faces"``, a model's node).

    Returns
    -------
    combination : LinearCombination

    Raises
    ------
    UsageError
        The text is not a linear combination of column names (calls, attributes,
        subscripts, strings, products of columns, a constant term ...).

    Examples
    --------
    >>> parse_expression("2*(a - b)/4").weights
    (('a', 0.5), ('b', -0.5))
    """
    if not isinstance(text, str):
        raise UsageError(f"{where} {text!r} is not text.")
    if len(text) > MAX_LENGTH:
        raise UsageError(f"{where} has {len(text)} characters, too many for a contrast (at most {MAX_LENGTH}).")
    weights, constant = _Parser(text, where).parse()
    if constant != 0:
        raise UsageError(
            f"{where} {text!r} has a constant term ({constant:g}); "
            "a contrast weighs design columns only."
        )
    for name, weight in weights.items():
        problem = weight_size_problem(weight)
        if problem:
            raise UsageError(f"{where} {text!r} gives {name} the weight {weight:g}, which {problem}.")
    return LinearCombination(tuple((name, float(w)) for name, w in weights.items()), float(constant))
