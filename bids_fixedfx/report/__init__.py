"""Reports: each subject's HTML page and the group's, with their figures and tables.

``OUTPUT_DIR/sub-<s>.html`` shows figures under ``sub-<s>/figures/`` and
``OUTPUT_DIR/group.html`` under ``group/figures/``, every file named by
:mod:`bids_fixedfx.naming` and linked relative to the page, so the folder can be moved or
zipped. The pages are rendered from the Jinja templates in ``bids_fixedfx/data/report``.

- :mod:`.subject`, :mod:`.group`: what each page shows, from the plan's records;
- :mod:`.quality`: motion, variance inflation, masks; :mod:`.tables`: cluster tables;
- :mod:`.figures`, :mod:`.slices`, :mod:`.draw`: the figures, drawn straight into images;
- :mod:`.pages`, :mod:`.backgrounds`: templates, files and links; the images maps are drawn over.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections import defaultdict

logger = logging.getLogger("bids_fixedfx")

__all__ = ["notes_about", "write_group_report", "write_participant_reports"]


def notes_about(notes, subject) -> list:
    """The notes about ``subject``, or about no subject in particular (by their fields)."""
    return [note for note in notes if note.about(subject)]


def write_participant_reports(settings, plan, notes, fork: bool = False) -> list:
    """Write ``sub-<s>.html`` and its figures for every subject of the plan.

    Parameters
    ----------
    settings : Settings
    plan : plan.Plan
        What the participant level fitted (its maps are in ``settings.output_dir``).
    notes : sequence of Note
        Everything a user should know; each page shows the notes about its subject.
    fork : bool
        With several subjects and ``--nprocs`` above 1, write every other subject's page in
        a forked child (:mod:`..forked`) while this process writes the others: each page
        is drawn on one core, and there is nothing else left to do.

    Returns
    -------
    paths : list of Path
        The pages written.
    """
    from .. import forked

    start = time.perf_counter()
    by_subject = defaultdict(list)
    for subject_plan in plan.subjects:
        by_subject[subject_plan.subject].append(subject_plan)
    pages = [(subject, plans, notes_about(notes, subject)) for subject, plans in by_subject.items()]
    beside = fork and settings.nprocs > 1 and len(pages) > 1
    mine, theirs = (pages[::2], pages[1::2]) if beside else (pages, [])
    estimator = next((step.node.model_type for step in plan.steps if step.level == "subject"), "meta")
    with forked.Forked(_write_pages, settings, theirs, estimator, fork=beside) as other:
        if other.pid is not None:
            logger.debug("Writing %d of the %d subject reports in process %d", len(theirs), len(pages), other.pid)
        here = _write_pages(settings, mine, estimator)
        there = other.result()
    paths = here
    if beside:  # back in the subjects' order
        paths = [None] * len(pages)
        paths[::2], paths[1::2] = here, there
    if paths:
        others = f" (and {len(paths) - 1} more sub-*.html beside it)" if len(paths) > 1 else ""
        logger.info("Reports written in %.1f s; open %s%s", time.perf_counter() - start, paths[0], others)
    return paths


def _write_pages(settings, pages, estimator="meta") -> list:
    """Write these subjects' pages: (subject, its plans, its notes) each; ``estimator``: the
    subject node's (``meta`` or ``glm``)."""
    from .pages import Files
    from .subject import write_subject_report

    files = Files(settings.output_dir)
    return [write_subject_report(settings, subject, plans, notes, files, estimator)
            for subject, plans, notes in pages]


def write_group_report(settings, group_plan, notes=()):
    """Draw the group maps and write ``OUTPUT_DIR/group.html``.

    Parameters
    ----------
    settings : Settings
    group_plan : plan.GroupPlan
        The tests the group level ran, and the contrasts it left untested.
    notes : sequence of Note

    Returns
    -------
    path : Path or None
        None when no contrast was tested.
    """
    from .group import write_group_page

    start = time.perf_counter()
    path = write_group_page(settings, group_plan, notes)
    if path is not None:
        _remove_unshown_figures(path, settings.output_dir / "group" / "figures")
        logger.info("Group report written in %.1f s; open %s", time.perf_counter() - start, path)
    return path


def _remove_unshown_figures(page, folder) -> None:
    """Remove the figures and tables of ``folder`` that ``page`` no longer shows or links (a
    rerun without ``--threshold`` left the earlier job's corrected figures beside the page)."""
    text = page.read_text(encoding="utf-8")
    shown = {html.unescape(link) for link in re.findall(r'(?:src|href)="([^"]+)"', text)}
    for path in folder.glob("*"):
        if path.suffix in (".png", ".tsv") and path.relative_to(page.parent).as_posix() not in shown:
            path.unlink(missing_ok=True)


def page_maps(settings) -> str:
    """What ``group.html`` records of the maps it shows: the ``desc`` of their masks, which
    names their group model and design apart (:func:`bids_fixedfx.naming.group_mask_desc`)."""
    from ..naming import group_mask_desc

    return group_mask_desc(settings.group_model, settings.group_design)


def shown_maps(page) -> str | None:
    """The maps a ``group.html`` shows, as :func:`page_maps` recorded them (None: not recorded)."""
    found = re.search(r'<meta name="bids-fixedfx-maps" content="desc-([^"]*)">', page)
    return found[1] if found else None
