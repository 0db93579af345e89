"""Spelling rules of model documents: keys, weights, HRF names, transformation instructions."""

from __future__ import annotations

import math
import re

from ..expression import NUMBER, weight_size_problem

#: nilearn's HRF models (``fir`` needs delays).
HRF_MODELS = (
    "glover", "glover + derivative", "glover + derivative + dispersion",
    "spm", "spm + derivative", "spm + derivative + dispersion", "fir",
)
#: Other names of nilearn's HRF models: FSL's double-gamma (pybids' default name) is SPM's canonical HRF.
HRF_ALIASES = {"doublegamma": "spm", "double gamma": "spm", "canonical": "spm"}
_NUMBER = rf"[-+]?{NUMBER}"
#: The most rows of an F contrast's weights (its rank is at most the design's number of columns).
MAX_F_ROWS = 1000
_WEIGHT = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*({_NUMBER})\s*)?$")
#: Arguments of each transformation besides Name, Input and Output (snake_case, as pybids).
ARGUMENTS = {
    "And": (), "Or": (), "Not": (), "Demean": (), "Product": (),
    "Rename": (), "Copy": (), "Delete": (), "Select": (), "DropNA": (),
    "Assign": ("target", "input_attr", "target_attr"),
    "Convolve": ("model", "derivative", "dispersion", "fir_delays"),
    "Factor": ("constraint", "ref_level", "sep"),
    "Filter": ("query", "by"),
    "Lag": ("shift", "order", "mode", "constant", "difference"),
    "Orthogonalize": ("other",),
    "Replace": ("replace", "attribute"),
    "Scale": ("demean", "rescale", "replace_na"),
    "Split": ("by",),
    "Sum": ("weights",),
    "Threshold": ("threshold", "binarize", "above", "signed"),
    "ToDense": ("sampling_rate",),
}
COMMON_ARGUMENTS = ("output_prefix", "output_suffix", "dense", "description")


def _key(name) -> str:
    return re.sub(r"[_\s-]", "", str(name)).lower()


def listify(value) -> list:
    """A list: ``None`` is empty, a scalar is one element."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def canonical(obj: dict, keys, where: str) -> dict:
    """Rename the keys of ``obj`` to the canonical spelling in ``keys``.

    Raises
    ------
    ModelError
        A key that is not one of ``keys``, or two spellings of one key.
    """
    from .bsm import ModelError

    if not isinstance(obj, dict):
        raise ModelError(f"{where} is not a JSON object.")
    lookup = {_key(k): k for k in keys}
    out = {}
    for key, value in obj.items():
        name = lookup.get(_key(key))
        if name is None:
            raise ModelError(f"{where} has an unknown key {key!r}; expected one of {', '.join(keys)}.")
        if name in out:
            raise ModelError(f"{where} has the key {name} twice (as {key!r} too).")
        out[name] = value
    return out


def check_hrf_model(value, where: str) -> str:
    """nilearn's name for an HRF model (``"SPM+Derivative"`` is ``"spm + derivative"``)."""
    from .bsm import ModelError

    name = " + ".join(HRF_ALIASES.get(p.strip(), p.strip()) for p in str(value).lower().split("+"))
    if name not in HRF_MODELS:
        raise ModelError(f"{where} has the HRF model {value!r}; known models are {', '.join(HRF_MODELS)}.")
    return name


def parse_weight(value, where: str) -> float:
    """A weight: a finite number, or a string such as ``"-1/3"`` or ``"0.5"`` (parsed, not
    evaluated)."""
    from .bsm import ModelError

    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ModelError(f"{where} has the weight {value!r}; weights are numbers or fractions like \"-1/3\".")
    try:
        weight = _weight_value(value, where)
    except OverflowError:  # an integer beyond any float
        weight = math.inf
    problem = weight_size_problem(weight)
    if problem:
        raise ModelError(f"{where} has the weight {str(value)[:40]!r}, which {problem}.")
    return weight


def _weight_value(value, where: str) -> float:
    from .bsm import ModelError

    if not isinstance(value, str):
        return float(value)
    match = _WEIGHT.match(value)
    if not match:
        raise ModelError(f"{where} has the weight {value!r}; weights are numbers or fractions like \"-1/3\".")
    numerator, denominator = match.groups()
    if denominator is None:
        _check_not_rounded(numerator, value, where)
        return float(numerator)
    if float(denominator) == 0:
        raise ModelError(f"{where} has the weight {value!r}, a division by zero.")
    for part in (numerator, denominator):  # "1/1e999" made 0 of an infinite denominator
        if not math.isfinite(float(part)):
            raise ModelError(f"{where} has the weight {value[:40]!r}, whose {part[:20]!r} is not a finite number.")
    _check_not_rounded(numerator, value, where)
    return float(numerator) / float(denominator)


def _check_not_rounded(number, value, where) -> None:
    from ..expression import rounds_to_zero
    from .bsm import ModelError

    if rounds_to_zero(number):
        raise ModelError(f"{where} has the weight {value[:40]!r}, whose {number[:20]!r} is too small to be told "
                         "from 0 (below 1e-308); write 0 if 0 is meant.")


def parse_weights(raw, n_conditions: int, test: str, where: str) -> tuple:
    """The weights of a contrast: a tuple (t) or a tuple of rows (F), each row as long as the
    ``ConditionList``."""
    from .bsm import ModelError

    rows = listify(raw)
    if not rows:
        raise ModelError(f"{where} has no Weights.")
    two_d = any(isinstance(r, (list, tuple)) for r in rows)
    if two_d:
        if not all(isinstance(r, (list, tuple)) for r in rows):
            raise ModelError(f"{where} mixes numbers and lists in its Weights.")
        if len(rows) > MAX_F_ROWS:  # an F test of more rows than a design has columns tests nothing more
            raise ModelError(f"{where} has {len(rows)} rows of weights; an F contrast has at most {MAX_F_ROWS}.")
        matrix = tuple(tuple(parse_weight(w, where) for w in row) for row in rows)
    else:
        matrix = (tuple(parse_weight(w, where) for w in rows),)
    for row in matrix:
        if len(row) != n_conditions:
            raise ModelError(
                f"{where} has {len(row)} weights for {n_conditions} conditions in its ConditionList."
            )
    if test != "F":
        if len(matrix) > 1:
            raise ModelError(f"{where} has {len(matrix)} rows of weights; only an F contrast can have several.")
        return matrix[0]
    if len(matrix) > 1:
        import numpy as np

        rank = np.linalg.matrix_rank(np.array(matrix, dtype=float))
        if rank < len(matrix):  # nilearn's compute_contrast inverts c cov c': singular
            raise ModelError(f"{where} has {len(matrix)} rows of weights that are linearly dependent (rank {rank}); "
                             "an F contrast's rows must be independent: leave out those the others make.")
    return matrix if two_d else matrix[0]


def parse_instruction(raw, where: str, names, record):
    """One transformation instruction as a ``record`` (:class:`~.bsm.Transformation`)."""
    from .bsm import ModelError

    if not isinstance(raw, dict):
        raise ModelError(f"{where}: a transformation is not a JSON object.")
    by_key = {_key(k): v for k, v in raw.items()}
    name = by_key.pop("name", None)
    known = {n.lower(): n for n in names} | {"and_": "And", "or_": "Or"}
    if str(name).lower() not in known:
        raise ModelError(
            f"{where} has the transformation {name!r}, which is not a pybids-transforms-v1 "
            f"transformation this app implements ({', '.join(names)})."
        )
    name = known[str(name).lower()]
    where = f"{where}, transformation {name}"
    inputs = tuple(str(v) for v in listify(by_key.pop("input", None)))
    if not inputs:
        raise ModelError(f"{where} has no Input.")
    output = by_key.pop("output", None)
    output = None if output is None else tuple(str(v) for v in listify(output))
    allowed = {_key(a): a for a in ARGUMENTS[name] + COMMON_ARGUMENTS}
    arguments = {}
    for key, value in by_key.items():
        if key not in allowed:
            raise ModelError(f"{where} has the unknown argument {key!r} (known: {', '.join(ARGUMENTS[name]) or 'none'}).")
        if allowed[key] != "description":
            arguments[allowed[key]] = value
    if name == "Convolve" and "model" in arguments:
        arguments["model"] = check_hrf_model(arguments["model"], where)
    if name in ("Filter",) and not isinstance(arguments.get("query"), str):
        raise ModelError(f"{where} needs a Query, such as \"trial_type == 'face'\".")
    if name in ("Copy", "Rename", "Product", "Sum", "And", "Or") and output is None:
        raise ModelError(f"{where} needs an Output.")
    from .transforms import check_arguments  # (transforms imports this package's models)

    check_arguments(name, arguments, where)
    return record(name=name, input=inputs, output=output, arguments=arguments)
