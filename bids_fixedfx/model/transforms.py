"""pybids-transforms-v1: the transformations of a node, applied to :class:`~.variables.Variables`.

Arguments and behaviour follow pybids (``bids.modeling.transformations``): ``Input`` names
variables (wildcards allowed), ``Output`` names the results (default: in place), with
``OutputPrefix``/``OutputSuffix``; an argument given as a list as long as ``Input`` is taken one
per input. Differences, on purpose: ``Convolve`` is nilearn's (see :mod:`.hrf`); ``Filter``'s
``Query`` is parsed by :mod:`.query`, never evaluated; ``Factor`` makes no level of missing
values and refuses inputs that mix numbers and text.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from fnmatch import fnmatchcase

import numpy as np
import pandas as pd

from .bsm import TRANSFORMATION_NAMES, ModelError
from .hrf import convolve, hrf_name
from .variables import Variables, densify, is_wildcard, listed, sample

_REGISTRY = {}
#: Arguments whose value is itself a list (never split one per input).
_LIST_ARGUMENTS = ("fir_delays", "other", "weights", "by")


def _transformation(name, *, numeric=True, each=True):
    def register(function):
        _REGISTRY[name] = (function, numeric, each)
        return function
    return register


def apply_transformations(variables: Variables, transformations, where: str = "The node", unmade=None,
                          absent=None) -> Variables:
    """Apply transformations in order.

    Parameters
    ----------
    variables : Variables
    transformations : sequence of Transformation
    where : str
        How errors name the node (``"Node 'run'"``).
    unmade : set, optional
        Where to add the names of the outputs not made because their inputs are levels of a
        categorical variable that no event of this run has (:func:`_without_absent_levels`).
    absent : set, optional
        Where to add the names of those inputs.

    Returns
    -------
    variables : Variables
        A new collection; the input is not changed.
    """
    work = dict(variables.variables)
    for transformation in transformations:
        name = transformation.name
        if name not in _REGISTRY:
            raise ModelError(f"{where} has the transformation {name!r}, which this app does not implement.")
        function, numeric, each = _REGISTRY[name]
        here = f"{where}, transformation {name}"
        given = transformation
        transformation = _without_absent_levels(transformation, work, each)
        if unmade is not None and transformation is not given:
            unmade.update(_outputs(given) - (_outputs(transformation) if transformation is not None else set()))
            if absent is not None:
                other = given.arguments.get("other") or () if given.name == "Orthogonalize" else ()
                named = [*given.input, *(other if isinstance(other, list) else [other])]
                absent.update(name for name in named if _is_absent_level(name, work))
        if transformation is None:  # what it makes has no event in this run: left out of its design, as X says
            continue
        if transformation.name != name:  # an Orthogonalize against zero columns only: a Copy
            function, numeric, each = _REGISTRY[transformation.name]
        context = dataclasses.replace(variables, variables=work)  # Delete, Select, Factor change work
        arguments = dict(transformation.arguments)
        prefix, suffix = arguments.pop("output_prefix", None) or "", arguments.pop("output_suffix", None) or ""
        dense = arguments.pop("dense", False)
        inputs = [work[n] for n in _expand(transformation.input, work, here)]
        if dense:
            inputs = [densify(v, context) for v in inputs]
        if numeric:
            for variable in inputs:
                if not variable.numeric:
                    raise ModelError(f"{here} cannot take {_categories(variable)}; Factor it first.")
        try:
            if each:
                results = [function(v, context, here, **_argument_for(arguments, i, len(inputs)))
                           for i, v in enumerate(inputs)]
            else:
                results = [function(inputs, context, here, **arguments)]
        except (TypeError, ValueError, OverflowError, RuntimeError) as error:  # an argument of the wrong kind or size
            reason = " ".join(str(error).split()).rstrip(".")[:200]
            raise ModelError(f"{here} cannot be applied with the arguments given ({reason}).") from error
        _store(work, transformation, inputs if each else inputs[:1], results, prefix, suffix, here)
    return variables.with_variables(work)


#: Transformations whose result is zero where any input is (a level no event has is a zero
#: column in pybids): such a result has no event either, and is left out whole.
ZERO_IF_ANY_ZERO = ("Product", "And")


def _without_absent_levels(transformation, work, each):
    """The transformation without the inputs that name a level of a categorical variable that
    has no event in this run (``trial_type.visual`` in a run without visual trials; pybids
    makes the levels of the whole dataset, a zero column in such a run), with their outputs and
    their values of per-input arguments (``Sum``'s ``Weights``), and without such levels among
    ``Orthogonalize``'s ``Other`` (a zero column changes nothing: against such levels only, it is
    a ``Copy`` to its Output); None when that leaves nothing to do (every input absent, or one
    input of a ``Product`` or ``And``)."""
    if transformation.name == "Orthogonalize":
        other = transformation.arguments.get("other") or ()
        other = other if isinstance(other, list) else [other]
        kept_other = [name for name in other if not _is_absent_level(name, work)]
        if len(kept_other) < len(other):
            arguments = {**transformation.arguments, "other": kept_other}
            if not kept_other:  # against zero columns only: the input as it is, under its Output names
                arguments = {k: v for k, v in arguments.items() if k in ("output_prefix", "output_suffix")}
                return dataclasses.replace(transformation, name="Copy", arguments=arguments) \
                    if transformation.output or arguments else None
            transformation = dataclasses.replace(transformation, arguments=arguments)
    absent = [i for i, name in enumerate(transformation.input) if _is_absent_level(name, work)]
    if not absent:
        return transformation
    if transformation.name in ZERO_IF_ANY_ZERO or len(absent) == len(transformation.input):
        return None
    n = len(transformation.input)
    keep = [i for i in range(n) if i not in absent]

    def kept(values):
        return tuple(values[i] for i in keep)

    split = each or transformation.name == "Sum"  # Sum's Weights: one per input
    arguments = {key: list(kept(value)) if isinstance(value, list) and len(value) == n and (
        key not in _LIST_ARGUMENTS or (key == "weights" and split)) else value
        for key, value in transformation.arguments.items()}
    output = kept(transformation.output) if each and transformation.output is not None and \
        len(transformation.output) == n else transformation.output
    return dataclasses.replace(transformation, input=kept(transformation.input), output=output, arguments=arguments)


def _outputs(transformation) -> set:
    """The names a transformation makes (its Output, else its inputs, with prefix and suffix)."""
    arguments = transformation.arguments
    prefix, suffix = arguments.get("output_prefix") or "", arguments.get("output_suffix") or ""
    return {f"{prefix}{name}{suffix}" for name in (transformation.output or transformation.input)}


def _is_absent_level(name, work) -> bool:
    """Whether ``name`` (``column.level``, not a variable here) is a level of a categorical
    events variable of this run that no event of it has: the column is here, or other levels
    of it that ``Factor`` made."""
    if name in work or is_wildcard(name) or "." not in name:
        return False
    # the column is the name up to one of its dots: a level may hold dots (trial_type.2.5)
    columns = [name[:i] for i, character in enumerate(name) if character == "."]
    for column_name in columns:
        column = work.get(column_name)
        if column is not None:  # (a column of no event, or of missing values only, has any level absent)
            return column.kind == "sparse" and (not column.numeric or not np.isfinite(
                np.asarray(column.values, dtype=float)).any())
    return any(other.startswith(f"{column_name}.") and work[other].kind == "sparse" for other in work
               for column_name in columns)


def _expand(patterns, work, where) -> list:
    names = []
    for pattern in patterns:  # a variable's exact name first (Split makes names with brackets)
        if pattern in work:
            matched = [pattern]
        elif is_wildcard(pattern):
            matched = [n for n in work if fnmatchcase(n, pattern)]
        else:
            matched = []
        if not matched:
            raise ModelError(f"{where}: no variable {pattern!r} (variables: {listed(work, pattern)}).")
        names += [n for n in matched if n not in names]
    return names


def check_arguments(name, arguments, where) -> None:
    """Refuse an argument of another type than its default's: a flag must be true or false
    (JSON's ``"false"``, a string, was true), a number a number.

    Raises
    ------
    ModelError
        Naming the node, the transformation and the argument.
    """
    import inspect

    if name not in _REGISTRY:
        return
    function = _REGISTRY[name][0]
    defaults = {key: parameter.default for key, parameter in inspect.signature(function).parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    defaults["dense"] = False
    for key, value in arguments.items():
        default = defaults.get(key)
        if key in _NUMBER_ARGUMENTS and value is not None:
            flag = False  # numbers (or a list of them) whatever the default
        elif key in _LIST_ARGUMENTS or default is None or not isinstance(default, (bool, int, float)):
            continue
        else:
            flag = isinstance(default, bool)
        for one in value if isinstance(value, list) else [value]:
            if isinstance(one, bool) != flag or not isinstance(one, (bool, int, float)):
                raise ModelError(f"{where}: its {''.join(part.capitalize() for part in key.split('_'))} must be "
                                 f"{'true or false' if flag else 'a number'}, not {json.dumps(one)[:80]}.")


#: Arguments that are numbers or lists of numbers, whose defaults (None) do not say so.
_NUMBER_ARGUMENTS = ("weights", "fir_delays", "sampling_rate")


def _argument_for(arguments, i, n):
    return {k: v[i] if isinstance(v, list) and len(v) == n and n > 1 and k not in _LIST_ARGUMENTS else v
            for k, v in arguments.items()}


def _store(work, transformation, inputs, results, prefix, suffix, where):
    """Put results in the collection under the Output names (default: the inputs' names)."""
    output = transformation.output
    if output is not None and len(output) != len(inputs):
        raise ModelError(f"{where} has {len(output)} Output names for {len(inputs)} results.")
    for i, (variable, result) in enumerate(zip(inputs, results)):
        if transformation.name == "Rename":
            work.pop(variable.name, None)
        if result is None or (isinstance(result, list) and not result):  # a Factor of no events: no level
            continue
        many = isinstance(result, list)
        result = result if many else [result]
        first = result[0].name if output is None else output[i]
        first = prefix + first + suffix
        if first != result[0].name or not many:
            result[0] = result[0].replace(name=first)
        for r in result:
            work[r.name] = r


def _numbers(values) -> np.ndarray:
    values = np.asarray(values, dtype=object)
    try:
        return values.astype(float)
    except (TypeError, ValueError):
        return values


def _aligned(inputs, context, where):
    """The inputs on one time base: sparse ones with identical events, or all dense."""
    if all(v.kind == "sparse" for v in inputs):
        first = inputs[0]
        for v in inputs[1:]:
            if len(v.onset) != len(first.onset) or not (np.allclose(v.onset, first.onset)
                                                       and np.allclose(v.duration, first.duration)):
                raise ModelError(
                    f"{where}: {first.name!r} and {v.name!r} are events at different times; "
                    "set Dense to true to combine them as time series."
                )
        return inputs
    if all(v.kind == "simple" for v in inputs):
        if len({len(v.values) for v in inputs}) > 1:
            raise ModelError(f"{where}: the inputs have different numbers of rows.")
        return inputs
    base = next(v for v in inputs if v.kind == "dense")
    times = np.asarray(base.times, dtype=float)
    for v in inputs:
        if v.kind == "sparse" and v.onset.size:
            events = [(onset, duration) for onset, duration, value in zip(v.onset, v.duration, v.values) if value]
            missed = sum(not np.any((times >= onset) & (times < onset + duration)) for onset, duration in events)
            if missed:
                warnings.warn(
                    f"{where}: {v.name!r} (events) is combined with {base.name!r} (a time series) at its "
                    f"{times.size} times, so {missed} of its {len(events)} events, which fall between them, "
                    "are missed; set Dense to true to combine them on a fine time grid",
                    UserWarning, stacklevel=2)
    return [densify(v, context, base.times) if v.kind == "sparse" else
            v.replace(values=sample(v, base.times), times=base.times) for v in inputs]


# --- compute ----------------------------------------------------------------------------

@_transformation("Scale")
def _scale(v, context, where, demean=True, rescale=True, replace_na=None):
    if replace_na not in (None, "before", "after"):
        raise ModelError(f"{where}: its ReplaceNa must be \"before\", \"after\" or null, not "
                         f"{json.dumps(replace_na)[:80]}.")
    data = pd.Series(v.values.astype(float))
    if data.nunique() == 1 and replace_na in (None, "before"):
        raise ModelError(f"{where}: {v.name!r} is constant ({data.dropna().iloc[0]}) and cannot be scaled; "
                         "set ReplaceNa to 'after' for a column of zeros.")
    if replace_na == "before":
        data = data.fillna(0.0)
    if demean:
        data = data - data.mean()
    if rescale:
        data = data / data.std()
    if replace_na == "after":
        data = data.fillna(0.0)
    return v.replace(values=data.to_numpy())


@_transformation("Demean")
def _demean(v, context, where):
    return v.replace(values=v.values - np.nanmean(v.values))


@_transformation("Threshold")
def _threshold(v, context, where, threshold=0.0, binarize=False, above=True, signed=True):
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ModelError(f"{where}: its Threshold must be a number, not {json.dumps(threshold)[:80]}.")
    data = v.values.astype(float)
    if not signed:
        threshold, data = abs(threshold), np.abs(data)
    with np.errstate(invalid="ignore"):
        keep = data >= threshold if above else data <= threshold
    data = np.where(keep, 1.0 if binarize else data, 0.0)
    return v.replace(values=data)


@_transformation("Not")
def _not(v, context, where):
    return v.replace(values=(~v.values.astype(bool)).astype(float))


@_transformation("Lag")
def _lag(v, context, where, shift=1, order=3, mode="nearest", constant=0.0, difference=False):
    from scipy import ndimage

    data = v.values.astype(float)
    shifted = ndimage.shift(data, shift=shift, order=order, mode=mode, cval=constant)
    if difference:
        shifted = data - shifted if shift >= 0 else shifted - data
    return v.replace(values=shifted)


def _categories(variable) -> str:
    """A variable of categories, named with a value that is not a number (a decimal comma,
    a unit, a word)."""
    for value in variable.values:
        try:
            float(value)
        except (TypeError, ValueError):
            return f"{variable.name!r}, which holds categories ({value!r} is not a number)"
    return f"{variable.name!r}, which holds categories"


@_transformation("Orthogonalize")
def _orthogonalize(v, context, where, other=()):
    others = [context[n] for n in _expand(other if isinstance(other, list) else [other], context.variables, where)]
    for o in others:
        if not o.numeric:
            raise ModelError(f"{where} cannot take {_categories(o)}; Factor it first.")
    try:
        aligned = _aligned([v] + others, context, where)
    except ModelError:  # events at other times: as time series, as pybids does
        aligned = [densify(x, context) for x in [v] + others]
    y = aligned[0].values.astype(float)
    x = np.column_stack([o.values.astype(float) for o in aligned[1:]])
    coefficients = np.linalg.lstsq(np.column_stack([np.ones(len(y)), x]), y, rcond=None)[0]
    return aligned[0].replace(values=y - x @ coefficients[1:])


@_transformation("Product", each=False)
def _product(inputs, context, where):
    inputs = _aligned(inputs, context, where)
    table = pd.DataFrame({i: v.values.astype(float) for i, v in enumerate(inputs)})
    return inputs[0].replace(values=table.product(axis=1).to_numpy())


@_transformation("Sum", each=False)
def _sum(inputs, context, where, weights=None):
    inputs = _aligned(inputs, context, where)
    weights = np.ones(len(inputs)) if weights is None else np.asarray(weights, dtype=float).ravel()
    if len(weights) != len(inputs):
        raise ModelError(f"{where} has {len(weights)} Weights for {len(inputs)} inputs.")
    table = pd.DataFrame({i: v.values.astype(float) * w for i, (v, w) in enumerate(zip(inputs, weights))})
    return inputs[0].replace(values=table.sum(axis=1).to_numpy())


@_transformation("And", each=False)
def _and(inputs, context, where):
    inputs = _aligned(inputs, context, where)
    return inputs[0].replace(values=np.all([v.values.astype(bool) for v in inputs], axis=0).astype(float))


@_transformation("Or", each=False)
def _or(inputs, context, where):
    inputs = _aligned(inputs, context, where)
    # n/a is skipped (pandas' any, as pybids): false, where astype(bool) makes it true
    return inputs[0].replace(values=np.any([np.nan_to_num(v.values.astype(float), nan=0.0).astype(bool)
                                            for v in inputs], axis=0).astype(float))


@_transformation("Convolve")
def _convolve(v, context, where, model="spm", derivative=False, dispersion=False, fir_delays=None):
    if context.frame_times is None:
        raise ModelError(f"{where}: {v.name!r} is not a run variable and cannot be convolved.")
    return convolve(v, hrf_name(model, derivative, dispersion, where), context.frame_times,
                    fir_delays=fir_delays, where=where)


from . import _munge  # noqa: E402,F401  (registers the munging transformations)

assert set(_REGISTRY) == set(TRANSFORMATION_NAMES), sorted(set(TRANSFORMATION_NAMES) ^ set(_REGISTRY))
