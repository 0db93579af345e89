"""pybids-transforms-v1 transformations that reshape variables rather than compute on them."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd

from .bsm import ModelError
from .query import evaluate_query
from .transforms import _aligned, _expand, _numbers, _transformation
from .variables import dense_times, densify


@_transformation("Rename", numeric=False)
def _rename(v, context, where):
    return v


@_transformation("Copy", numeric=False)
def _copy(v, context, where):
    return v


@_transformation("Delete", numeric=False, each=False)
def _delete(inputs, context, where):
    for v in inputs:
        context.variables.pop(v.name, None)


@_transformation("Select", numeric=False, each=False)
def _select(inputs, context, where):
    kept = {v.name for v in inputs}
    for name in list(context.variables):
        if name not in kept:
            context.variables.pop(name)


@_transformation("DropNA", numeric=False)
def _drop_na(v, context, where):
    return v.select(~pd.isna(pd.Series(v.values)).to_numpy())


@_transformation("Filter", numeric=False)
def _filter(v, context, where, query=None, by=None):
    others = [context[n] for n in _expand(by if isinstance(by, list) else ([by] if by else []),
                                          context.variables, where)]
    aligned = _aligned([v] + others, context, where) if others else [v]
    columns = {a.name: a.values for a in aligned}
    return aligned[0].select(evaluate_query(query, columns, where))


@_transformation("Replace", numeric=False)
def _replace(v, context, where, replace=None, attribute="value"):
    if not isinstance(replace, dict):
        raise ModelError(f"{where}: Replace must map old values to new ones, such as {{\"n/a\": 0}}.")
    def swap(values):
        return _numbers([replace.get(x, replace.get(str(x), x)) if not _is_missing(x) else
                         replace.get("n/a", x) for x in values])
    if attribute == "value":
        return v.replace(values=swap(v.values))
    if attribute in ("onset", "duration") and v.kind == "sparse":
        return v.replace(**{attribute: swap(getattr(v, attribute)).astype(float)})
    raise ModelError(f"{where}: Attribute {attribute!r} is not one of value, onset, duration (of events).")


def _is_missing(value):
    return isinstance(value, float) and np.isnan(value)


@_transformation("Assign", numeric=False)
def _assign(v, context, where, target=None, input_attr="amplitude", target_attr="amplitude"):
    if isinstance(target, list) and len(target) == 1:  # ["x"], as pybids reads a Target list of one
        target = target[0]
    if not isinstance(target, str):
        raise ModelError(f"{where}: its Target must name one variable, not {json.dumps(target)[:80]}.")
    if target not in context:
        raise ModelError(f"{where}: no target variable {target!r}.")
    goal = context[target]
    if v.kind != "sparse" or goal.kind != "sparse":
        raise ModelError(f"{where} applies to events only; {v.name!r} or {target!r} is a time series.")
    if len(v.values) != len(goal.values):
        raise ModelError(f"{where}: {v.name!r} and {target!r} have {len(v.values)} and {len(goal.values)} events.")
    attributes = {"amplitude": "values", "onset": "onset", "duration": "duration"}
    if input_attr not in attributes or target_attr not in attributes:
        raise ModelError(f"{where}: InputAttr and TargetAttr are amplitude, onset or duration.")
    values = getattr(v, attributes[input_attr])
    if target_attr != "amplitude":
        values = values.astype(float)
    return goal.replace(**{attributes[target_attr]: values})


def _levels(v, where):
    present = [x for x in v.values if not _is_missing(x)]
    if any(isinstance(x, str) for x in present) and not all(isinstance(x, str) for x in present):
        raise ModelError(f"{where}: {v.name!r} mixes numbers and text; make it one type (Replace) first.")
    levels = sorted(set(present))
    return levels


def _level_name(level):
    if isinstance(level, float) and level.is_integer():
        return str(int(level))
    return str(level)


#: The most columns one Factor or Split may make (one per level, or combination of levels): a
#: design has a column for each, and a column of unique values made thousands, quadratically.
MAX_COLUMNS = 1000
#: ToDense's highest SamplingRate (Hz): a run of 1,000 s then makes a million samples a variable.
MAX_SAMPLING_RATE = 1000.0


def _check_columns(n, what, where):
    if n > MAX_COLUMNS:
        raise ModelError(f"{where}: {what} makes {n:,} columns, more than {MAX_COLUMNS:,}; a design has a column for "
                         "each (a column of values unique to each event is no condition).")


@_transformation("Factor", numeric=False)
def _factor(v, context, where, constraint="none", ref_level=None, sep="."):
    levels = _levels(v, where)
    _check_columns(len(levels), f"Factor of {v.name!r} ({len(levels)} levels)", where)
    if constraint not in ("none", "drop_one", "mean_zero"):
        raise ModelError(f"{where}: Constraint {constraint!r} is not one of none, drop_one, mean_zero.")
    if ref_level is not None:
        matches = [lv for lv in levels if lv == ref_level or _level_name(lv) == str(ref_level)]
        if not matches:
            raise ModelError(f"{where}: RefLevel {ref_level!r} is not a value of {v.name!r}.")
        ref_level = matches[0]
    elif len(levels) > 1 and constraint != "none":
        ref_level = levels[0]
    if levels:  # a run without events (or with none valued) keeps the column: its levels are absent here
        context.variables.pop(v.name, None)
    out = []
    for level in levels:
        if constraint != "none" and level == ref_level:
            continue
        values = np.array([float(x == level) for x in v.values])
        if constraint == "mean_zero" and ref_level is not None:
            values[np.array([x == ref_level for x in v.values])] = -1.0 / (len(levels) - 1)
        out.append(v.replace(name=f"{v.name}{sep}{_level_name(level)}", values=values))
    return out


@_transformation("Split", numeric=False)
def _split(v, context, where, by=None):
    names = _expand(by if isinstance(by, list) else [by], context.variables, where)
    groups = [context[n] for n in names]
    if v.kind == "dense" or any(g.kind == "dense" for g in groups):
        base = v if v.kind == "dense" else densify(v, context)
        groups = [densify(g, context, base.times) for g in groups]
        v = base
    else:
        _aligned([v] + groups, context, where)
    level_sets = [_levels(g, where) for g in groups]
    _check_columns(math.prod(len(levels) for levels in level_sets),
                   f"Split of {v.name!r} by {', '.join(map(repr, names))} (every combination of their levels)", where)
    out = []
    for combination in itertools.product(*level_sets):
        rows = np.all([[x == lv for x in g.values] for g, lv in zip(groups, combination)], axis=0)
        name = v.name + "".join(f".{n}[{_level_name(lv)}]" for n, lv in zip(names, combination))
        if v.kind == "dense":
            out.append(v.replace(name=name, values=np.where(rows, v.values.astype(float), 0.0)))
        else:
            out.append(v.select(rows).replace(name=name))
    return out


@_transformation("ToDense")
def _to_dense(v, context, where, sampling_rate=None):
    if v.kind == "simple" or context.duration is None:
        raise ModelError(f"{where}: {v.name!r} is not a run variable.")
    if v.kind == "dense":
        return v
    try:
        rate = float(context.sampling_rate if sampling_rate is None else sampling_rate)
    except (TypeError, ValueError):
        rate = math.nan
    if not 0 < rate <= MAX_SAMPLING_RATE:
        raise ModelError(f"{where}: SamplingRate {sampling_rate!r} is not a rate in Hz above 0 and at most "
                         f"{MAX_SAMPLING_RATE:g}.")
    return densify(v, context, dense_times(context.__class__(duration=context.duration, sampling_rate=rate)))

