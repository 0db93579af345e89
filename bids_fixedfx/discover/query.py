"""pybids queries: fast ``get``, entity values, filters, and the files of one run."""

from __future__ import annotations

from pathlib import Path

from ..errors import NoDataError
from ..naming import RUN_ENTITIES

NIFTI = [".nii.gz", ".nii"]
CONFOUNDS_DESCS = ["confounds"]
CONFOUNDS_SUFFIXES = ["timeseries", "regressors"]


def _get(layout, **filters):
    """``layout.get`` with the subject filter first.

    pybids joins one copy of its tag table per filter, in the order given; SQLite then
    starts from the first of equally costed joins, so putting the subject first makes a
    query of one subject read that subject's rows, not those of every subject with the
    same suffix, in a saved index of a large dataset.
    """
    first = {"subject": filters.pop("subject")} if "subject" in filters else {}
    return layout.get(**first, **filters)


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
    entities = bids_file.get_entities()
    return tuple(
        (key, str(entities[name])) for name, key in RUN_ENTITIES if entities.get(name) is not None
    )


def _match_query(entities: tuple[tuple[str, str], ...]) -> dict:
    """A pybids query for the files of one run: its entities, the absent ones absent."""
    from bids.layout import Query

    given = dict(entities)
    query = {}
    for name, key in RUN_ENTITIES:
        if key in given:
            value = given[key]
            query[name] = int(value) if name in ("run", "echo") and value.isdigit() else value
        elif name != "echo":
            query[name] = Query.NONE
    return query


def _one(files, what, run_name):
    if not files:
        return None
    if len(files) > 1:
        names = ", ".join(sorted(Path(f).name for f in files))
        raise NoDataError(f"{run_name} has several {what} files ({names}); narrow with --bids-filter-file.")
    return Path(files[0])
