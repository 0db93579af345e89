"""pybids' indexer, reading each file's entities from its path relative to its dataset."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from ..errors import InputFileError


@functools.cache
def _indexer_class():
    """pybids' indexer, reading entities from relative paths and stopping symlink loops."""
    from bids.layout import BIDSLayoutIndexer
    from bids.layout.models import Config

    class RelativePathIndexer(BIDSLayoutIndexer):
        """Index the files of a dataset with the entities of their path relative to its root.

        pybids matches its entity patterns against the absolute path, so a dataset at
        ``/data/proj_task-pilot/ds`` would give every file ``task-pilot``. Each file is
        parsed here through its relative path (``/sub-01/func/...``) and stored under its
        absolute path. Folders are listed with ``os.scandir`` and the ``ignored`` regexes
        (and those ``ignored_in`` the dataset's root: a mapping of roots to objects with a
        regex's ``search``, :class:`.bidsignore.IgnoreRule`) are
        matched against relative paths before anything else is done with an entry,
        so that the ``sub-*`` folders of other subjects cost one string match each. A
        folder that is one of its own parents (a symbolic link loop) is not entered
        again; ``loops`` lists those links. ``directories`` maps each dataset root to its
        folders' modification times, grouped by the top-level entry they are in (``""``
        for the root itself), so that a saved index can be checked one subject at a time.
        """

        def __init__(self, ignored=(), ignored_in=None, **kwargs):
            super().__init__(validate=False, index_metadata=False, **kwargs)
            self.ignored = [re.compile(pattern) for pattern in (*ignored, r"/\.")]
            self.ignored_in = {os.path.realpath(root): list(rules) for root, rules in (ignored_in or {}).items()}
            self._patterns = self.ignored
            self.loops = []
            self.directories = {}
            self._open = set()
            self._root = ""

        def __call__(self, layout):
            self._root = str(layout._root.path).rstrip("/")
            self._patterns = self.ignored + self.ignored_in.get(os.path.realpath(self._root), [])
            super().__call__(layout)

        def _index_dir(self, path, config, force=None):
            folder = str(getattr(path, "path", path))
            try:
                status = os.stat(folder)
                entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
            except PermissionError:  # a subject's folder closed to this user: its runs were said to be missing
                if folder[len(self._root):].lstrip("/").startswith("sub-"):
                    raise InputFileError(f"{folder} cannot be read: permission denied (it is closed to this job's "
                                         "user); give that user access, or leave the subject out with "
                                         "--participant-label.") from None
                return [], []
            except OSError:  # a dangling link, or a folder that cannot be read
                return [], []
            key = (status.st_dev, status.st_ino)
            if key in self._open:
                self.loops.append(Path(folder))
                return [], []
            relative = folder[len(self._root):]
            top = relative.split("/")[1] if relative else ""
            stamps = self.directories.setdefault(self._root, {}).setdefault(top, {})
            stamps[folder] = status.st_mtime_ns
            config = list(config)
            if any(entry.name == self.config_filename for entry in entries):
                config.append(Config.load(Path(folder, self.config_filename), session=self.session))
            entities = {}
            for each in config:
                entities.update(each.entities)
            files, tags, folders = [], [], []
            for entry in entries:
                if entry.name == self.config_filename or any(
                    pattern.search(f"{relative}/{entry.name}") for pattern in self._patterns
                ):
                    continue
                try:
                    is_folder = entry.is_dir() and not entry.name.endswith(".zarr")
                except OSError:
                    is_folder = False
                if is_folder:
                    folders.append(entry.path)
                else:
                    bids_file, file_tags = self._index_file(entry.path, entities)
                    files.append(bids_file)
                    tags += file_tags
            self._open.add(key)
            try:
                for sub in folders:
                    sub_files, sub_tags = self._index_dir(sub, config)
                    files += sub_files
                    tags += sub_tags
            finally:
                self._open.discard(key)
            return files, tags

        def _index_file(self, abs_fn, entities):
            from bids.utils import make_bidsfile

            absolute = str(getattr(abs_fn, "path", abs_fn))
            _, tags = super()._index_file(absolute[len(self._root):], entities)
            bids_file = make_bidsfile(absolute)
            for tag in tags:
                tag["file_path"] = bids_file.path
            return bids_file, tags

    return RelativePathIndexer
