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

import logging
import time
from collections import defaultdict

logger = logging.getLogger("bids_fixedfx")

__all__ = ["notes_about", "write_group_report", "write_participant_reports"]


def notes_about(notes, subject) -> list:
    """The notes about ``subject``, or about no subject in particular (by their fields)."""
    return [note for note in notes if note.about(subject)]


def write_participant_reports(settings, plan, notes) -> list:
    """Write ``sub-<s>.html`` and its figures for every subject of the plan.

    Parameters
    ----------
    settings : Settings
    plan : plan.Plan
        What the participant level fitted (its maps are in ``settings.output_dir``).
    notes : sequence of Note
        Everything a user should know; each page shows the notes about its subject.

    Returns
    -------
    paths : list of Path
        The pages written.
    """
    from .pages import Files
    from .subject import write_subject_report

    start = time.perf_counter()
    files = Files(settings.output_dir)
    by_subject = defaultdict(list)
    for subject_plan in plan.subjects:
        by_subject[subject_plan.subject].append(subject_plan)
    paths = [write_subject_report(settings, subject, plans, notes_about(notes, subject), files)
             for subject, plans in by_subject.items()]
    if paths:
        others = f" (and {len(paths) - 1} more sub-*.html beside it)" if len(paths) > 1 else ""
        logger.info("Reports written in %.1f s; open %s%s", time.perf_counter() - start, paths[0], others)
    return paths


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
        logger.info("Group report written in %.1f s; open %s", time.perf_counter() - start, path)
    return path
