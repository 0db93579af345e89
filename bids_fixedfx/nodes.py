"""The participant level's nodes above the run: each session and subject node's maps for one
subject, task and space, from the inputs its edge lets through.

A session node combines a subject's runs within each session; a subject node combines the
runs, or the maps of a session node. ``meta`` is fixed effects with the real degrees of
freedom, ``glm`` a one-sample t-test across the inputs (one input: its own maps).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from . import combine
from .model.design import precision_weighted_of
from .plan.graph import run_values


@dataclass(frozen=True, eq=False)
class NodeMaps:
    """One node's maps for one subject, task and space (and session, at the session level).

    Attributes
    ----------
    step : bids_fixedfx.plan.graph.Step
    subject, task : str
    space, session : str or None
    mask : Nifti1Image
        The intersection of the inputs' masks.
    contrasts : tuple of ContrastMaps
    inputs_of : dict
        Contrast label -> the inputs that have it (run plans, or a session node's maps).
    runs : tuple of RunPlan
        Every run under the maps, in the subject plan's order.
    left_out : tuple of LeftOut
        The runs of this subject (and session) left out before fitting.
    """

    step: object
    subject: str
    task: str
    space: str | None
    session: str | None
    mask: object
    contrasts: tuple
    inputs_of: dict
    runs: tuple = ()
    left_out: tuple = ()

    @property
    def level(self) -> str:
        return self.step.level

    def maps_of(self, label):
        """The :class:`~bids_fixedfx.glm.ContrastMaps` of the contrast with this label, or None."""
        return next((maps for maps in self.contrasts if maps.contrast.label == label), None)

    def runs_of(self, label) -> tuple:
        """The run plans under a contrast's maps (through the session maps, if any)."""
        runs = []
        for item in self.inputs_of[label]:
            runs += item.runs_of(label) if isinstance(item, NodeMaps) else [item]
        return tuple(runs)


def precision_weighted(node, default: bool) -> bool:
    """A node's ``Software.nilearn.precision_weighted``, else the setting's."""
    return precision_weighted_of(node, default)


def node_maps(steps, subject_plan, results, default_weighting: bool = False) -> list[NodeMaps]:
    """Every participant-level node's maps for one subject, task and space.

    Parameters
    ----------
    steps : sequence of Step
        :func:`bids_fixedfx.plan.graph.participant_steps`, each after its source.
    subject_plan : SubjectPlan
    results : sequence of RunResult
        In the order of ``subject_plan.runs``.
    default_weighting : bool
        Precision weighting of nodes that do not state it.

    Returns
    -------
    maps : list of NodeMaps
        In the order of ``steps``; a node whose Filter lets nothing of this subject through
        makes none.
    """
    made = {}
    runs = list(zip(subject_plan.runs, results))
    for step in steps:
        if step.source_level == "run":
            items = [(plan, result) for plan, result in runs if step.passes(**run_values(plan.run))]
        else:
            items = [(maps, maps) for maps in made.get(step.source, ())
                     if step.passes(subject=maps.subject, session=maps.session, task=maps.task)]
        groups = defaultdict(list)
        for item, result in items:
            groups[_session_of(item) if step.level == "session" else None].append((item, result))
        weighted = precision_weighted(step.node, default_weighting)
        made[step.node.name] = []
        for session, group in groups.items():
            mask, contrasts, inputs_of = combine.combine_inputs(
                group, weighted, step.node.model_type, keep=lambda c: step.passes(contrast=c.name))
            if not contrasts:
                continue
            left_out = tuple(left for left in subject_plan.left_out
                             if session is None or left.run.session == session)
            under = [run for item, _ in group for run in (item.runs if isinstance(item, NodeMaps) else (item,))]
            made[step.node.name].append(NodeMaps(step, subject_plan.subject, subject_plan.task, subject_plan.space,
                                                 session, mask, contrasts, inputs_of, tuple(under), left_out))
    return [maps for step in steps for maps in made[step.node.name]]


def _session_of(item):
    return item.session if isinstance(item, NodeMaps) else item.run.session
