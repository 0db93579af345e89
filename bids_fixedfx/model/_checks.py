"""Checks of a whole model: its graph, what each level allows, and the specification's schema."""

from __future__ import annotations

from .bsm import LEVELS, ModelError
from .variables import is_wildcard


def check_model(model, source: str, schema: bool = True) -> list:
    """Raise :class:`ModelError` for the first thing wrong with ``model``; return notes.

    Checks that edges go up the levels without cycles, that run-only features (HRF, high-pass
    filter, convolution) sit in run nodes, that contrast names are unique within a node, that
    no F contrast is passed on, and, with ``schema`` and ``bsmschema`` installed, the schema.
    """
    for edge in model.edges:
        low, high = model.node(edge.source), model.node(edge.destination)
        if LEVELS.index(high.level) < LEVELS.index(low.level):
            raise ModelError(
                f"{source} has an edge from node {low.name!r} ({low.level}) down to node "
                f"{high.name!r} ({high.level}); edges go from lower to higher levels."
            )
    _check_acyclic(model, source)
    notes = []
    for node in model.nodes:
        notes += _check_node(node)
    for edge in model.edges:
        _check_f_not_passed(model.node(edge.source), model.node(edge.destination), edge)
    if schema:
        _check_schema(model, source)
    return notes


def _check_acyclic(model, source):
    state = {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            raise ModelError(f"{source} has edges that form a cycle ({' -> '.join(path + [name])}).")
        state[name] = "open"
        for edge in model.children(name):
            visit(edge.destination, path + [name])
        state[name] = "done"

    for node in model.nodes:
        visit(node.name, [])


def _check_node(node):
    where = f"Node {node.name!r}"
    notes = []
    if node.level != "run":
        if node.hrf is not None:
            raise ModelError(f"{where} is at {node.level} level but has Model.HRF, which applies to Run nodes only.")
        if node.high_pass is not None:
            notes.append(f"{where}: HighPassFilterCutoffHz has no effect at {node.level} level and is ignored")
        if any(t.name == "Convolve" for t in node.transformations):
            raise ModelError(f"{where} is at {node.level} level but convolves; Convolve applies to Run nodes only.")
    elif node.model_type == "meta":
        raise ModelError(f"{where} is a meta model at Run level; meta (fixed effects) combines the runs' contrasts at a higher level.")
    if node.hrf is not None:
        x = set(node.x)
        patterns = [p for p in x if isinstance(p, str) and is_wildcard(p)]
        unknown = [v for v in node.hrf.variables if v not in x and not _matches_any(v, patterns)
                   and not any(v[:i] in x for i, c in enumerate(v) if c == ".")]  # a level of a category of X
        if unknown:
            notes.append(f"{where}: Model.HRF names {', '.join(map(repr, unknown))}, not in Model.X, so not in "
                         "the design")
    seen = set()
    for contrast in node.contrasts:
        if contrast.name in seen:
            raise ModelError(f"{where} has two contrasts named {contrast.name!r}.")
        seen.add(contrast.name)
    return notes


def _matches_any(name, patterns):
    from fnmatch import fnmatchcase

    return any(isinstance(p, str) and fnmatchcase(name, p) for p in patterns)


def _check_f_not_passed(source, destination, edge):
    f_names = {c.name for c in source.contrasts if c.test == "F"}
    if not f_names:
        return
    used = [v for v in destination.x if v in f_names]
    for contrast in destination.contrasts:
        used += [v for v in contrast.condition_list if v in f_names]
    if destination.dummy_contrasts and destination.dummy_contrasts.conditions:
        used += [v for v in destination.dummy_contrasts.conditions if v in f_names]
    used += [v for v in edge.filter.get("contrast", ()) if v in f_names]
    if used:
        raise ModelError(
            f"Node {destination.name!r} uses {used[0]!r} of node {source.name!r}, an F contrast; "
            "F contrasts are terminal and are not passed on to later nodes."
        )


def _check_schema(model, source):
    try:
        from bsmschema.models import BIDSStatsModel
    except ImportError:  # structural checks above stand in for the schema
        return
    from pydantic import ValidationError

    document = model.to_dict()
    try:
        BIDSStatsModel.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        location = list(first["loc"])
        if len(location) > 1 and location[0] == "Nodes" and isinstance(location[1], int):
            location[:2] = [f"node {model.nodes[location[1]].name!r}"]
        path = ".".join(str(p) for p in location if not str(p).startswith(("literal[", "str", "int", "float")))
        raise ModelError(f"{source} does not follow the BIDS Stats Models schema at {path}: {first['msg']}.") from None
