"""Which dataset, and which subject's folder, a path belongs to.

Shared by indexing (which folders a selection covers), validation (which entries of a
dataset to validate) and sidecar reading (the root a file's inheritance stops at).
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def _selected(entry, participant_label):
    """Whether a top-level entry of a dataset (``sub-01``, ``sub-01.html``, ``code``) is
    outside every subject's folder or belongs to a selected subject (all when none is)."""
    if not participant_label or not entry.startswith("sub-"):
        return True
    return any(
        re.fullmatch(rf"sub-{re.escape(label)}(?:[_.].*)?", entry) for label in participant_label
    )


def _in_selection(path, roots, participant_label):
    """Whether a path lies outside every ``sub-*`` folder or in a selected subject's one."""
    root = _dataset_root(path, roots)
    if root is None or path == root:
        return True
    return _selected(path.relative_to(root).parts[0], participant_label)


def _dataset_root(path, roots):
    """The innermost dataset root that holds ``path`` (None when none does)."""
    holding = [root for root in roots if root == path or root in path.parents]
    return max(holding, key=lambda root: len(root.parts), default=None)


#: A BIDS label: letters and digits.
LABEL = r"[A-Za-z0-9]+"
#: A subject folder's name: ``sub-`` and a label.
SUBJECT_FOLDER = re.compile(rf"sub-{LABEL}")


def _subject_folders(roots):
    """The labels of the ``sub-*`` folders of the datasets' roots, for messages."""
    return sorted({entry.name[4:] for entry in _top_folders(roots) if SUBJECT_FOLDER.fullmatch(entry.name)})


def stray_subject_folders(roots):
    """The top-level folders named ``sub-`` and something other than a BIDS label (a copy,
    ``sub-01 copy``; an old version, ``sub-01-old``), which indexing leaves out: pybids would
    read their files as the subject's."""
    return sorted(Path(entry.path) for entry in _top_folders(roots)
                  if entry.name.startswith("sub-") and not SUBJECT_FOLDER.fullmatch(entry.name))


def _top_folders(roots):
    found = []
    for root in roots:
        try:
            found += [entry for entry in os.scandir(root) if entry.is_dir()]
        except OSError:
            continue
    return found


def _layout_roots(layout):
    """The roots of the raw dataset and of the derivatives datasets of a layout."""
    return (Path(layout.root), *(Path(d.root) for d in layout.derivatives.values()))
