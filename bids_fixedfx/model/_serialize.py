"""Model records back to a BIDS Stats Model document (canonical spelling, BIDSModelVersion 1.0.0)."""

from __future__ import annotations

import re

from .bsm import TRANSFORMER


def _camel(name: str) -> str:
    """A snake_case argument name as BIDS Stats Models spell keys (``fir_delays`` -> ``FirDelays``)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"_+", name))


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _weight(value: float):
    return int(value) if float(value).is_integer() else value


def _weights(contrast):
    if contrast.weights and isinstance(contrast.weights[0], tuple):
        return [[_weight(w) for w in row] for row in contrast.weights]
    return [_weight(w) for w in contrast.weights]


def transformation_to_dict(transformation) -> dict:
    """One instruction as pybids-transforms-v1 JSON (``fir_delays`` as ``FirDelays``)."""
    out = {"Name": transformation.name, "Input": list(transformation.input)}
    if transformation.output is not None:
        out["Output"] = list(transformation.output)
    for key, value in transformation.arguments.items():
        out[_camel(key)] = _plain(value)
    return out


def node_to_dict(node) -> dict:
    """One node as a BIDS Stats Model ``Node`` object."""
    model = {"Type": node.model_type, "X": list(node.x)}
    if node.formula is not None:
        model["Formula"] = node.formula
    if node.hrf is not None:
        hrf = {"Variables": list(node.hrf.variables), "Model": node.hrf.model}
        if node.hrf.fir_delays is not None:
            hrf["Parameters"] = {"fir_delays": list(node.hrf.fir_delays)}
        model["HRF"] = hrf
    options = dict(_plain(node.options))
    if node.high_pass is not None:
        options = {"HighPassFilterCutoffHz": node.high_pass, **options}
    if options:
        model["Options"] = options
    if node.software:
        model["Software"] = _plain(node.software)
    out = {"Level": node.level.capitalize(), "Name": node.name, "GroupBy": list(node.group_by)}
    if node.description is not None:
        out["Description"] = node.description
    if node.transformations:
        out["Transformations"] = {
            "Transformer": TRANSFORMER,
            "Instructions": [transformation_to_dict(t) for t in node.transformations],
        }
    out["Model"] = model
    if node.contrasts:
        out["Contrasts"] = [
            {"Name": c.name, "ConditionList": list(c.condition_list), "Weights": _weights(c), "Test": c.test}
            for c in node.contrasts
        ]
    if node.dummy_contrasts is not None:
        dummy = {"Test": node.dummy_contrasts.test}
        if node.dummy_contrasts.conditions is not None:
            dummy = {"Contrasts": list(node.dummy_contrasts.conditions), **dummy}
        out["DummyContrasts"] = dummy
    return out


def model_to_dict(model) -> dict:
    """The whole model; edges are always written out."""
    out = {"Name": model.name, "BIDSModelVersion": model.version}
    if model.description is not None:
        out["Description"] = model.description
    if model.input:
        out["Input"] = _plain(model.input)
    out["Nodes"] = [node_to_dict(n) for n in model.nodes]
    out["Edges"] = []
    for edge in model.edges:
        item = {"Source": edge.source, "Destination": edge.destination}
        if edge.filter:
            item["Filter"] = _plain(edge.filter)
        out["Edges"].append(item)
    return out

