"""Matching a run with its events (inherited ones included) and its --design-dir file."""

from __future__ import annotations

from pathlib import Path

from ..errors import NoDataError, UsageError
from ..naming import ENTITY_NAMES, run_name
from .bidsignore import ignoring_rule
from .metadata import _name_entities, inherited_files
from .query import _one, _unpadded


def _unmatched_designs(design_dir, runs):
    """Warnings for files of --design-dir that name a selected subject and task but no run,
    and for the selected runs it holds no design for (their designs are built from events)."""
    if design_dir is None:
        return []
    used = {run.design for run in runs}
    subjects = {run.subject for run in runs}
    tasks = {run.task for run in runs}
    warnings = [
        f"--design-dir file {path.name} matches no selected run (check its entities, "
        "e.g. ses- and run-), so it was not used."
        for entities, path in _design_files(design_dir)
        if path not in used and entities.get("subject") in subjects and entities.get("task") in tasks
    ]
    without = [run.name for run in runs if run.design is None]
    if without:
        some = "any of the" if len(without) == len(runs) else f"{len(without)} of the {len(runs)}"
        warnings.append(
            f"--design-dir {design_dir} holds no design for {some} selected runs ({', '.join(without[:3])}"
            f"{' ...' if len(without) > 3 else ''}; it would be {without[0]}_design.tsv or .npz), so their "
            "designs were built from their events files; check the folder and the files' names."
        )
    return warnings


def _events_for(events_files, layout, entities, raw, name, filtered=False, ignore=()):
    """A run's events file: its own (``events_files``: :func:`.runs.events_files`), else the
    nearest inherited one that the raw dataset's ``.bidsignore`` rules (``ignore``, read once
    a selection) do not name; with ``filtered`` (a ``--bids-filter-file`` query of events) its
    own only, so that a query matching none is said rather than replaced by other events."""
    events = events_files.of(entities)
    if not events and raw is not None and not filtered:  # events inherited from a higher level
        root = Path(layout.root)  # what the index leaves out, the folders listed here leave out too
        levels = [[f for f in level if ignoring_rule(ignore, root, f) is None]
                  for level in inherited_files(raw, root, "events", ".tsv")]
        nearest = next((level for level in levels if level), [])
        # the most specific of the nearest folder's (several equally specific: an error)
        most = len(_name_entities(nearest[-1].name)) if nearest else 0
        events = [f for f in nearest if len(_name_entities(f.name)) == most]
    return _one(events, "events", name, kind="events")


def _design_files(design_dir):
    """Every design file in ``design_dir`` with its entities (run numbers unpadded)."""
    if not design_dir.is_dir():
        raise NoDataError(f"--design-dir {design_dir} {'is not a directory' if design_dir.exists() else 'does not exist'}.")
    files = []
    for path in sorted(design_dir.iterdir()):
        if path.name.endswith(("_design.tsv", "_design.npz")) or path.suffix in (".tsv", ".npz"):
            entities = _name_entities(path.name)
            entities = {
                name: _unpadded(name, value)
                for name, value in entities.items()
                if name not in ("suffix", "extension")
            }
            files.append((entities, path))
    return files


def _design_for(design_dir, entities):
    if design_dir is None:
        return None
    wanted = {ENTITY_NAMES[key]: _unpadded(ENTITY_NAMES[key], value) for key, value in entities}
    found = [path for file_entities, path in _design_files(design_dir) if file_entities == wanted]
    if len(found) > 1:  # a .tsv and a .npz, or run-1 and run-01: which one was meant is the user's to say
        raise UsageError(f"--design-dir {design_dir} holds {len(found)} designs for {run_name(entities)} "
                         f"({', '.join(sorted(p.name for p in found))}); keep one of them.")
    return found[0] if found else None
