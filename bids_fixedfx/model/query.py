"""The ``Query`` of pybids' ``Filter``, parsed (never evaluated as code).

The language is the part of pandas' ``query`` that models use::

    query      := or_expr
    or_expr    := and_expr (("or" | "|") and_expr)*
    and_expr   := not_expr (("and" | "&") not_expr)*
    not_expr   := ("not" | "~") not_expr | comparison
    comparison := operand ((== | != | < | <= | > | >= | in | not in) operand)*
    operand    := NAME | `any name` | 'text' | "text" | NUMBER | True | False
                  | "[" operand ("," operand)* "]" | "(" query ")"

Names are variables (``trial_type``, ``trial_type.face``, or their pybids spelling with ``_``
for other characters). Missing values compare as false.
"""

from __future__ import annotations

import operator
import re

import numpy as np

from ..expression import NUMBER
from .bsm import ModelError

_TOKEN = re.compile(
    rf"\s*(?:(?P<number>{NUMBER})"
    r"|(?P<string>'[^']*'|\"[^\"]*\")"
    r"|(?P<quoted>`[^`]+`)"
    r"|(?P<name>[^\W\d][\w.]*)"
    r"|(?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|&|\||~|-))"
)
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}
MAX_LENGTH = 2000


def _tokens(text: str, where: str) -> list:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ModelError(f"{where}: the Query {text!r} cannot be read at {text[position:].strip()[:20]!r}.")
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "name" and value in ("and", "or", "not", "in"):
            kind = "op"
        tokens.append((kind, value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text, where):
        self.text, self.where = text, where
        self.tokens = _tokens(text, where)
        self.i = 0

    def fail(self, what):
        raise ModelError(f"{self.where}: the Query {self.text!r} is not valid ({what}).")

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self, value=None):
        token = self.peek()
        if token[0] is None or (value is not None and token[1] != value):
            self.fail(f"expected {value!r}" if value else "it ends too early")
        self.i += 1
        return token

    def parse(self):
        tree = self.or_expr()
        if self.i != len(self.tokens):
            self.fail(f"unexpected {self.peek()[1]!r}")
        return tree

    def or_expr(self):
        tree = self.and_expr()
        while self.peek()[1] in ("or", "|"):
            self.take()
            tree = ("or", tree, self.and_expr())
        return tree

    def and_expr(self):
        tree = self.not_expr()
        while self.peek()[1] in ("and", "&"):
            self.take()
            tree = ("and", tree, self.not_expr())
        return tree

    def not_expr(self):
        if self.peek()[1] in ("not", "~"):
            self.take()
            return ("not", self.not_expr())
        return self.comparison()

    def comparison(self):
        left = self.operand()
        terms = []
        while True:
            kind, value = self.peek()
            if value in _COMPARE or value == "in":
                self.take()
                terms.append((value, self.operand()))
            elif value == "not" and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1][1] == "in":
                self.take(), self.take()
                terms.append(("not in", self.operand()))
            else:
                break
        if not terms:
            return left
        tree, previous = None, left
        for op, right in terms:  # a < b < c is (a < b) and (b < c), as in pandas
            part = ("compare", op, previous, right)
            tree = part if tree is None else ("and", tree, part)
            previous = right
        return tree

    def operand(self):
        kind, value = self.take()
        if kind == "number":
            return ("value", float(value))
        if value == "-" and self.peek()[0] == "number":
            return ("value", -float(self.take()[1]))
        if kind == "string":
            return ("value", value[1:-1])
        if kind == "quoted":
            return ("name", value[1:-1])
        if kind == "name":
            if value in ("True", "False"):
                return ("value", value == "True")
            return ("name", value)
        if value == "(":
            tree = self.or_expr()
            self.take(")")
            return tree
        if value == "[":
            items = [self.operand()]
            while self.peek()[1] == ",":
                self.take()
                items.append(self.operand())
            self.take("]")
            if any(item[0] != "value" for item in items):
                self.fail("a list holds only values")
            return ("list", tuple(item[1] for item in items))
        self.fail(f"unexpected {value!r}")


def parse_query(text: str, where: str = "Filter"):
    """Parse a query into a tree (raises :class:`ModelError` when it is not valid)."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_LENGTH:
        raise ModelError(f"{where}: the Query must be a short non-empty text, such as \"trial_type == 'face'\".")
    return _Parser(text, where).parse()


def _sanitize(name):
    return re.sub(r"[^a-zA-Z0-9_]+", "_", name)


def evaluate_query(text: str, columns: dict, where: str = "Filter") -> np.ndarray:
    """The rows where the query holds.

    Parameters
    ----------
    text : str
        The query, e.g. ``"trial_type == 'face'"`` or ``"RT > 0.5 and accuracy == 1"``.
    columns : dict of str to numpy.ndarray
        Row-aligned values of the variables the query may name.
    where : str
        How errors name the transformation.

    Returns
    -------
    rows : numpy.ndarray of bool
    """
    tree = parse_query(text, where)
    lookup = {**{_sanitize(k): v for k, v in columns.items()}, **columns}
    n_rows = len(next(iter(columns.values()))) if columns else 0

    def value(node):
        kind = node[0]
        if kind == "name":
            if node[1] not in lookup:
                raise ModelError(f"{where}: the Query names {node[1]!r}, which is not an input or By variable.")
            return np.asarray(lookup[node[1]], dtype=object)
        if kind in ("value", "list"):
            return node[1]
        return truth(node)

    def compare(op, left, right):
        if op in ("in", "not in"):
            members = right if isinstance(right, tuple) else (right,)
            result = np.array([_member(v, members) for v in np.atleast_1d(left)], dtype=bool)
            return ~result if op == "not in" else result
        out = np.zeros(n_rows, dtype=bool)
        left_values = np.broadcast_to(np.asarray(left, dtype=object), (n_rows,))
        right_values = np.broadcast_to(np.asarray(right, dtype=object), (n_rows,))
        for i, (a, b) in enumerate(zip(left_values, right_values)):
            if _missing(a) or _missing(b):
                out[i] = op == "!="
            elif isinstance(a, str) != isinstance(b, str):
                if op not in ("==", "!="):
                    raise ModelError(f"{where}: the Query {text!r} orders text against a number ({a!r} {op} {b!r}).")
                out[i] = op == "!="
            else:
                out[i] = bool(_COMPARE[op](a, b))
        return out

    def truth(node):
        kind = node[0]
        if kind == "and":
            return truth(node[1]) & truth(node[2])
        if kind == "or":
            return truth(node[1]) | truth(node[2])
        if kind == "not":
            return ~truth(node[1])
        if kind == "compare":
            return compare(node[1], value(node[2]), value(node[3]))
        result = value(node)
        if isinstance(result, np.ndarray) and len(result) == n_rows:
            return np.array([not _missing(v) and bool(v) for v in result], dtype=bool)
        raise ModelError(f"{where}: the Query {text!r} does not compare anything.")

    return truth(tree)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _member(value, members) -> bool:
    if _missing(value):
        return False
    return any(not _missing(m) and type(m) is not bool and (m == value or (
        not isinstance(m, str) and not isinstance(value, str) and float(m) == float(value))) for m in members)
