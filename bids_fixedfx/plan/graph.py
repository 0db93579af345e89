"""The node graph of a model: which nodes run above the run level, what each receives (its
edge and the edge's ``Filter``), and how their maps are named apart.

The participant level runs the session and subject nodes, the group level the dataset nodes.
Every node above the run is fed by one edge: a session node by the run node; a subject node
by the run node or a session node; a dataset node by a subject or a session node (an edge
from the run node to a dataset node passes through the subject maps that every model has).
A model without a subject node still gets its subject maps: fixed effects over the runs,
as the default model's ``subject`` node makes them.

Naming rule: a node's maps carry its name (as ``desc-<node>``) only when its level has
more than one node; one node per level keeps the names of SPEC §3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.bsm import PASSED_ON, ModelError, Node, is_intercept
from .models import SUPPORTED as TYPES

#: The variables every level may group by (the BIDS Stats Models reserved ones, and the task,
#: by which every node's inputs are grouped anyway).
RESERVED = ("run", "session", "subject", "contrast", "task")
#: What each level's node may be fed by.
SOURCES = {"session": ("run",), "subject": ("run", "session"), "dataset": ("subject", "session")}
#: The GroupBy each participant-level node needs: one group per subject (and session) and contrast.
PARTICIPANT_GROUPS = {"session": {"subject", "session", "contrast"}, "subject": {"subject", "contrast"}}
#: Entities an edge's Filter may select on at the participant level.
FILTER_ENTITIES = ("contrast", "subject", "session", "run", "task")
#: The subject node a model without one gets (fixed effects over the runs).
IMPLICIT_SUBJECT = Node(name="subject", level="subject", group_by=("subject", "contrast"), x=(1,), model_type="meta")


@dataclass(frozen=True)
class Step:
    """A node above the run level, as it runs.

    Attributes
    ----------
    node : Node
    source : str
        The name of the node that feeds it.
    source_level : str
        ``run``, ``session`` or ``subject``.
    filter : dict
        The edge's ``Filter``: variable -> tuple of allowed values (as strings).
    desc : str or None
        The node's label in its file names (``desc-<label>``), when its level has several nodes.
    source_desc : str or None
        The same for the source node, to find its maps.
    """

    node: Node
    source: str
    source_level: str
    filter: dict = field(default_factory=dict)
    desc: str | None = None
    source_desc: str | None = None

    @property
    def level(self) -> str:
        return self.node.level

    def passes(self, **values) -> bool:
        """Whether an input with these variables (``contrast="audio"``, ``session=None``) passes
        the edge's Filter; a contrast passes by its name or its file label, a number by its value
        (run ``01`` passes ``[1]``), an input without a filtered variable does not pass."""
        from ..naming import label_of

        for variable, allowed in self.filter.items():
            if variable not in values:
                continue
            value = values[variable]
            if value is None:
                return False
            if variable == "contrast":
                if label_of(str(value)) not in {label_of(a) for a in allowed}:
                    return False
            elif not any(_same_value(value, a) for a in allowed):
                return False
        return True


def _same_value(value, allowed: str) -> bool:
    """Equal as text, or as numbers (run ``01`` is run 1, age 41.0 is 41)."""
    if str(value) == allowed:
        return True
    try:
        return float(value) == float(allowed)
    except (TypeError, ValueError):
        return False


def node_desc(model, node) -> str | None:
    """The label that names a node's maps apart: its name when its level has several nodes."""
    from ..naming import label_of

    if model is None or len(model.nodes_at(node.level)) < 2:
        return None
    return label_of(node.name)


def design_desc(node) -> str | None:
    """The ``desc`` of a dataset node's maps when it is a group design: its label
    (:func:`bids_fixedfx.naming.group_design_desc`), unless the node is fixed effects (``meta``)
    or a one-sample test (``X`` only the intercept), whose maps are named as those of
    ``--group-model`` (so ``-m`` of the default model gives the same names)."""
    from ..naming import group_design_desc

    if node.model_type != "glm" or all(is_intercept(x) for x in node.x):
        return None
    return group_design_desc(node.name)


def check_graph(model, source: str) -> None:
    """Raise :class:`ModelError` when the model asks for a graph this app does not run.

    Parameters
    ----------
    model : Model
    source : str
        How errors name the model file.
    """
    runs = model.nodes_at("run")
    if not runs:
        raise ModelError(f"{source} has no run-level node.")
    if len(runs) > 1:
        raise ModelError(f"{source} has {len(runs)} run-level nodes ({', '.join(n.name for n in runs)}); "
                         "the runs are fitted by one run node, whose contrasts several later nodes may receive.")
    labels = {}  # (level, label in any case) -> (node name, label): olsX and OlsX both name maps fixedfxOlsX
    for node in model.nodes:
        desc = node_desc(model, node)
        key = (node.level, desc.casefold() if desc is not None else None)
        if desc is not None and key in labels:
            first, first_desc = labels[key]
            alike = f"desc-{desc}" if desc == first_desc else f"desc-{first_desc} and desc-{desc} differ only in case"
            raise ModelError(f"Nodes {first!r} and {node.name!r} of {source} would name their maps alike "
                             f"({alike}); rename one.")
        labels[key] = (node.name, desc)
        if node.model_type not in TYPES[node.level]:
            raise ModelError(f"Node {node.name!r} of {source} is a {node.level}-level {node.model_type} node; "
                             f"a {node.level} node is of type {' or '.join(TYPES[node.level])}.")
        if node.level == "run":
            continue
        edges = model.parents(node.name)
        if len(edges) != 1:
            raise ModelError(f"Node {node.name!r} of {source} is fed by {len(edges)} edges; a node above the run "
                             "level receives the contrasts of exactly one node.")
        feeder = model.node(edges[0].source)
        allowed = SOURCES[node.level] + (("run",) if node.level == "dataset" else ())
        if feeder.level not in allowed:
            raise ModelError(f"Node {node.name!r} ({node.level}) of {source} is fed by node {feeder.name!r} "
                             f"({feeder.level}); a {node.level} node is fed by a {' or '.join(SOURCES[node.level])} node.")
        stated = _own_design(node)
        if node.level == "dataset" and node.model_type == "meta" and stated:
            raise ModelError(f"Node {node.name!r} of {source} is a meta (fixed effects) node with {stated}; fixed "
                             "effects combine the subjects' maps with Model.X [1] alone, and a design of other "
                             "columns is a glm node's.")  # the columns and their contrasts were dropped unsaid
        if node.level in PARTICIPANT_GROUPS:
            _check_participant_group_by(node)
            _check_participant_design(node, source)
            for variable in edges[0].filter:
                if variable not in FILTER_ENTITIES:
                    raise ModelError(f"The edge {feeder.name} -> {node.name} of {source} filters on {variable!r}; "
                                     f"a {node.level} node's inputs are selected by {', '.join(FILTER_ENTITIES)}.")


def _own_design(node) -> str | None:
    """A node's design beyond the intercept, as messages name it (``Model.X [1, 'age']``,
    ``Model.Formula '1 + age'``); None for the intercept alone."""
    if node.formula not in (None, "1"):
        return f"Model.Formula {node.formula!r}"
    if any(not is_intercept(x) for x in node.x):
        return f"Model.X {list(node.x)}"
    return None


def _check_participant_design(node, source: str) -> None:
    """A session or subject node combines each incoming contrast over its inputs: its design is
    the intercept and its contrasts are its inputs' (DummyContrasts, or a contrast of one incoming
    contrast under its own name with weight 1); a design of its own (``Model.X`` or ``Formula``
    beyond ``1``, other ``Contrasts``) is refused, not ignored."""
    stated = _own_design(node)
    if stated:
        raise ModelError(f"Node {node.name!r} of {source} has {stated}; a {node.level} node combines each incoming "
                         "contrast over its inputs (Model.X [1]), and a design across sessions or contrasts is a "
                         "dataset node's (see the paired design in the README).")
    if node.dummy_contrasts is not None and node.dummy_contrasts.test == "F":
        raise ModelError(f"Node {node.name!r} of {source} has DummyContrasts with Test 'F'; a {node.level} node "
                         "combines each incoming contrast by fixed effects into t maps (Test 't'; the F of one "
                         "contrast is t squared), and F tests across conditions belong in the run node.")
    for contrast in node.contrasts:  # one that passes an incoming contrast on, under its name, is that
        if not (contrast.test in PASSED_ON and tuple(contrast.condition_list) == (contrast.name,)
                and tuple(contrast.weights) == (1.0,)):
            raise ModelError(f"Node {node.name!r} of {source} states the contrast {contrast.name!r}; a "
                             f"{node.level} node passes each incoming contrast on (DummyContrasts), so contrasts "
                             "between conditions belong in the run node.")


def _check_participant_group_by(node) -> None:
    """A session node groups by subject, session and contrast; a subject node not by session
    or run (a subject node's GroupBy without subject or contrast is read as grouping by them,
    as this app always has)."""
    wanted = PARTICIPANT_GROUPS[node.level]
    for variable in node.group_by:
        if variable not in RESERVED:
            raise ModelError(f"Node {node.name!r} groups by {variable!r}, which is not a variable of a {node.level} "
                             f"node's inputs (a {node.level} node groups by {', '.join(sorted(wanted))}).")
    extra = sorted(set(node.group_by) - wanted - {"task"})
    missing = sorted(wanted - set(node.group_by)) if node.level == "session" else []
    if extra or missing:
        raise ModelError(f"Node {node.name!r} {'groups' if extra else 'does not group'} by {(extra or missing)[0]!r}; "
                         f"a {node.level} node groups by {', '.join(sorted(wanted))}.")


def participant_steps(model) -> tuple[Step, ...]:
    """The session and subject nodes the participant level runs, each after its source.

    Parameters
    ----------
    model : Model or None
        None (no model file: the options' designs): fixed effects over each subject's runs.

    Returns
    -------
    steps : tuple of Step
        Session nodes first, then subject nodes, in model order; a model without a subject
        node gets :data:`IMPLICIT_SUBJECT` fed by its run node.
    """
    if model is None:
        return (Step(IMPLICIT_SUBJECT, "run", "run"),)
    steps = [_step(model, node) for node in model.nodes_at("session", "subject")]
    run = model.nodes_at("run")[0]
    if not model.nodes_at("subject") and (_states_t(run) or model.nodes_at("dataset")):
        steps.append(Step(IMPLICIT_SUBJECT, run.name, "run"))
    return tuple(steps)


def _states_t(node) -> bool:
    """Whether a node makes any t or pass contrast (a model of run-level F tests only has run
    maps alone: fixed effects combine t contrasts)."""
    dummy_t = node.dummy_contrasts is not None and node.dummy_contrasts.test in PASSED_ON
    return dummy_t or any(contrast.test in PASSED_ON for contrast in node.contrasts)


def dataset_steps(model) -> tuple[Step, ...]:
    """The dataset nodes the group level runs (an edge from the run node, or none, reads the
    subject maps)."""
    if model is None:
        return ()
    steps = []
    for node in model.nodes_at("dataset"):
        if not model.parents(node.name):  # a model of the group level only (--group-covariates)
            steps.append(Step(node, IMPLICIT_SUBJECT.name, "subject", desc=node_desc(model, node)))
            continue
        step = _step(model, node)
        if step.source_level == "run":
            subject = model.nodes_at("subject")
            name = subject[0].name if len(subject) == 1 else IMPLICIT_SUBJECT.name
            step = Step(node, name, "subject", step.filter, step.desc, None)
        steps.append(step)
    return tuple(steps)


def _step(model, node) -> Step:
    edge = model.parents(node.name)[0]
    feeder = model.node(edge.source)
    flt = {str(k): tuple(str(v) for v in values) for k, values in edge.filter.items()}
    named = _passed_on(node) if node.level in PARTICIPANT_GROUPS else None
    if named is not None:  # the node's list narrows the edge's Filter (or is the Filter)
        from ..naming import label_of

        labels = {label_of(name) for name in named}
        flt["contrast"] = tuple(c for c in flt.get("contrast", named) if label_of(c) in labels)
    return Step(node, feeder.name, feeder.level, flt, node_desc(model, node), node_desc(model, feeder))


def _passed_on(node) -> tuple | None:
    """The incoming contrasts a session or subject node names: its ``DummyContrasts.Contrasts``
    and its pass-through ``Contrasts`` (see :func:`_check_participant_design`); None when it
    names none (``DummyContrasts`` without a list: every incoming contrast passes on)."""
    named = list(node.dummy_contrasts.conditions or ()) if node.dummy_contrasts is not None else []
    named += [contrast.name for contrast in node.contrasts]
    return tuple(dict.fromkeys(map(str, named))) or None


def check_participant_inputs(steps, run_plans) -> None:
    """Raise :class:`ModelError` when a session or subject node would receive nothing: its
    edge's Filter lets no run or contrast through, or a session node meets runs without a
    session.

    Parameters
    ----------
    steps : sequence of Step
    run_plans : sequence of RunPlan
        Every run that is fitted, with its contrasts.
    """
    reaching = {}
    for step in steps:
        if step.source_level == "run":
            units = [(plan.run, tuple(c for c in plan.contrasts if c.test in PASSED_ON)) for plan in run_plans]
            units = [(run, contrasts) for run, contrasts in units if step.passes(**run_values(run))]
        else:
            units = [(run, contrasts) for run, contrasts in reaching.get(step.source, ())
                     if step.passes(subject=run.subject, session=run.session, task=run.task)]
        units = [(run, tuple(c for c in contrasts if step.passes(contrast=c.name))) for run, contrasts in units]
        units = [(run, contrasts) for run, contrasts in units if contrasts]
        if not units:
            raise ModelError(f"Node {step.node.name!r} receives no map: the Filter {filter_text(step.filter)} of "
                             f"its edge from {step.source!r} lets none of the selected runs' contrasts through."
                             if step.filter else f"Node {step.node.name!r} receives no t contrast from {step.source!r}.")
        if step.level == "session":
            lacking = next((run for run, _ in units if run.session is None), None)
            if lacking is not None:
                raise ModelError(f"Node {step.node.name!r} is a session node but {lacking.name} has no session; "
                                 "remove the session node or select runs with sessions.")
        reaching[step.node.name] = units


def run_values(run) -> dict:
    """The variables of a run that an edge's Filter may select on."""
    return {"subject": run.subject, "session": run.session, "task": run.task, "run": dict(run.entities).get("run")}


def filter_text(flt) -> str:
    """An edge's Filter as compact JSON, for messages."""
    import json

    return json.dumps({k: list(v) for k, v in flt.items()}, separators=(", ", ": "))
