"""pybids queries: fast ``get``, entity values, filters, and the files of each run
(:class:`RunFiles`: one query per kind of file, matched to the runs by their entities)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from ..errors import InputFileError, NoDataError
from ..naming import ENTITY_KEYS, RUN_ENTITIES

NIFTI = [".nii.gz", ".nii"]
CONFOUNDS_DESCS = ["confounds"]
CONFOUNDS_SUFFIXES = ["timeseries", "regressors"]


#: Entities of fMRIPrep's names that pybids does not index (``cohort`` of a template with
#: cohorts, ``space-MNIPediatricAsym_cohort-1``): a filter on them is applied to the names.
NAME_ONLY_ENTITIES = ("cohort",)


def _get(layout, **filters):
    """``layout.get`` with the subject filter first, and the filters of
    :data:`NAME_ONLY_ENTITIES` applied to the files' names (a value, a list of values, or
    None: the entity absent).

    pybids joins one copy of its tag table per filter, in the order given; SQLite then
    starts from the first of equally costed joins, so putting the subject first makes a
    query of one subject read that subject's rows, not those of every subject with the
    same suffix, in a saved index of a large dataset.
    """
    by_name = {key: filters.pop(key) for key in NAME_ONLY_ENTITIES if key in filters}
    first = {"subject": filters.pop("subject")} if "subject" in filters else {}
    found = layout.get(**first, **filters)
    for key, wanted in by_name.items():
        found = [f for f in found if _name_has(getattr(f, "path", f), key, wanted)]
    return found


def _name_has(path, key, wanted) -> bool:
    """Whether a file's name has the entity ``key`` with a value of ``wanted`` (a value, a
    list of them, pybids' ``Query.NONE``/``Query.ANY``)."""
    from bids.layout import Query

    parts = dict(part.partition("-")[::2] for part in Path(str(path)).name.split(".")[0].split("_"))
    value = parts.get(key)
    if wanted is Query.NONE:
        return value is None
    if wanted is Query.ANY:
        return value is not None
    return value is not None and value in {str(v) for v in (wanted if isinstance(wanted, list) else [wanted])}


def _values(layout, entity, **filters):
    """The values of an entity among the files that match the filters.

    pybids' ``get_<entity>()`` reads every tag of every indexed file, which costs seconds
    in a saved index of a large dataset; this reads only the matching files' tags.
    """
    from bids.layout import Query

    found = _get(layout, return_type="object", **{entity: Query.ANY, **filters})
    return sorted({str(f.get_entities()[entity]) for f in found})


def _pybids_filters(query: dict) -> dict:
    """Translate fMRIPrep-style filter values (null, "*") into pybids queries."""
    from bids.layout import Query

    translated = {}
    for key, value in query.items():
        if value is None:
            value = Query.NONE
        elif value == "*":
            value = Query.ANY
        translated[key] = value
    return translated


def _run_entities(bids_file) -> tuple[tuple[str, str], ...]:
    """A run's entities as (key, label), from its file's name; a label of these entities that is
    not ASCII letters and digits in the name is refused (pybids reads ``run-０2``, fullwidth
    digits, as run 2, whose events it took, and ``run-0²`` as run 0)."""
    keys = {key for _, key in RUN_ENTITIES}
    for part in Path(bids_file.path).name.split(".")[0].split("_"):
        key, _, label = part.partition("-")
        if key in keys and not (label.isascii() and label.isalnum()):
            raise InputFileError(f"{bids_file.path} has the {key} label {label!r}, which is not ASCII letters and "
                                 "digits, as BIDS labels are; rename the file.")
    entities = bids_file.get_entities()
    return tuple(
        (key, str(entities[name])) for name, key in RUN_ENTITIES if entities.get(name) is not None
    )


class RunFiles:
    """Files of one kind for many runs: one pybids query over the selected subjects, then
    each run's files picked by its entities.

    A run's files are those that pybids gives for a query of the run's entities with the
    absent ones absent (``Query.NONE``): every entity of the run equal (run numbers as
    numbers, as pybids compares them: ``run-1`` is ``run-01``; echo numbers too, where
    pybids compares echo labels as text and so found no ``echo-01`` file for a run queried
    by its echo number), no entity the run lacks (echo excepted: a run without echo- takes
    files of any echo), and, of the ``shared`` entities, a file may lack what the run has
    (as BIDS inheritance has it: ``events.tsv`` without echo- serves every echo, one with
    ``echo-2`` only that echo). One query per kind instead of one per run and kind: each pybids
    query costs about 14 ms whatever it returns. The query is made when the first run's
    files are asked for (a kind no run needs, such as events with ``--design-dir``, is
    never queried).

    Parameters
    ----------
    layout : BIDSLayout
    subjects : list of str
        The selected subjects.
    given : iterable of str
        Entities (pybids names) that ``filters`` fix for every run (a ``--bids-filter-file``
        entry): not matched to the run's, as a run's query takes the filter's value.
    shared : iterable of str
        Entities that a file may lack and still be the run's (``echo``: fMRIPrep writes one
        mask and one confounds table for every echo of a run).
    prefer_own : bool
        Of a file that has the run's value of a shared entity and one that lacks it, the first
        only (events leave that choice to BIDS inheritance: :mod:`.matching`).
    **filters
        The query's other filters (suffix, extension, scope, desc...).
    """

    def __init__(self, layout, subjects, given=(), shared=(), prefer_own=False, **filters):
        self.layout = layout
        self.skipped = set(given)
        self.shared = set(shared)
        self.prefer_own = prefer_own
        if "subject" not in filters:
            filters["subject"] = list(subjects)
        self.filters = filters

    @cached_property
    def by_subject(self) -> dict:
        """The files found, as (entities, file) pairs by subject label."""
        by_subject = {}
        for found in _get(self.layout, return_type="object", **self.filters):
            entities = dict(_run_entities(found))
            by_subject.setdefault(entities.get("sub"), []).append((entities, found))
        return by_subject

    def of(self, entities) -> list:
        """The files of the run with these entities.

        Parameters
        ----------
        entities : tuple of (str, str)
            The run's (key, value) pairs, as :class:`.runs.Run` holds them.

        Returns
        -------
        files : list of BIDSFile
        """
        run = dict(entities)
        candidates = self.by_subject.get(run.get("sub"), [])
        if "subject" in self.skipped:
            candidates = [c for files in self.by_subject.values() for c in files]
        found = [(own, file) for own, file in candidates if self._same_run(own, run)]
        exact = [(own, file) for own, file in found  # one of the run's echo (say) and one of all its echoes:
                 if all(own.get(ENTITY_KEYS[name]) is not None for name in self.shared  # the echo's
                        if run.get(ENTITY_KEYS[name]) is not None)]
        return [file for _, file in (exact if self.prefer_own and exact and len(found) > 1 else found)]

    def _same_run(self, own, run) -> bool:
        for name, key in RUN_ENTITIES:
            if name in self.skipped:
                continue
            wanted, value = run.get(key), own.get(key)
            if wanted is None:
                if value is not None and name != "echo":
                    return False
            elif value is None:
                if name not in self.shared:
                    return False
            elif _unpadded(name, value) != _unpadded(name, wanted):
                return False
        return True


def _unpadded(name, value):
    """An entity's value as text, run and echo numbers without their padding (``01`` -> ``1``)."""
    value = str(value)
    return str(int(value)) if name in ("run", "echo") and value.isdigit() else value


def _one(files, what, run_name, kind=None):
    if not files:
        return None
    if len(files) > 1:
        names = sorted(Path(f).name for f in files)
        if len(set(names)) < len(names):  # one name in two folders: the folders tell them apart
            names = sorted(str(f) for f in files)
        hint = filter_hint(kind, files) if kind else None
        raise NoDataError(f"{run_name} has several {what} files ({', '.join(names)}); "
                          + (f"narrow with --bids-filter-file, e.g. {hint}." if hint else "keep one of them."))
    return Path(files[0])


def filter_hint(kind, files) -> str | None:
    """A ``--bids-filter-file`` entry that keeps one of ``files``: their first entity (pybids'
    name; ``hemi`` aside) whose values differ, or their extension (``{"bold": {"res": "2"}}``);
    None when their names differ in neither (a filter could not tell them apart)."""
    import json

    from ..naming import match_entities

    found = [match_entities("/" + Path(f).name, statmaps=False) for f in files]
    found = [{**entities, **name_only_entities(f), "extension": _extension(f)} for entities, f in zip(found, files)]
    names = [name for name in dict.fromkeys(k for entities in found for k in entities)
             if name not in ("extension", "hemi")]  # a GIFTI series is its pair: the app takes both hemispheres
    for name in [*names, "extension"]:
        values = [entities.get(name) for entities in found]
        if len(set(map(str, values))) > 1:
            value = next((v for v in values if v is not None), None)
            return json.dumps({kind: {name: value if isinstance(value, (int, float)) else str(value)}})
    return None


def name_only_entities(path) -> dict:
    """The :data:`NAME_ONLY_ENTITIES` a file's name carries (``cohort-1``), which pybids does not index."""
    import re

    name = Path(path).name
    return {key: found.group(1) for key in NAME_ONLY_ENTITIES
            if (found := re.search(rf"(?:^|_){key}-([A-Za-z0-9]+)(?=_|\.)", name))}


def _extension(path) -> str:
    name = Path(path).name
    return name[name.index("."):] if "." in name else ""
