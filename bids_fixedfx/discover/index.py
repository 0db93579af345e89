"""Indexing with pybids: the selected subjects only, or a saved index of the whole dataset.

With ``--participant-label`` only the selected subjects' folders are indexed.
``--bids-database-dir`` saves the index of the whole dataset once (one job at a time,
under a lock, written to a temporary folder and renamed) and lets later jobs reuse it
while the folders they need are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from ..errors import NoDataError, UsageError
from ..locations import creation_mode
from .bidsignore import bidsignore_rules
from .derivatives import check_given_derivatives, holds_subjects, is_described
from .folders import LABEL, _selected
from .indexer import _indexer_class

logger = logging.getLogger("bids_fixedfx")

#: Version of what a saved index holds; a saved index of another version is not reused.
INDEX_FORMAT = 1
_MANIFEST = "bids_fixedfx_index.json"
#: pybids' default exclusions, plus nested ``derivatives/`` (indexed as datasets of their own).
_ALWAYS_IGNORED = r"^/(?:code|models|sourcedata|stimuli|derivatives)(?:/|$)"
#: Top-level ``sub-*`` entries whose label is no BIDS label (``sub-01 copy``, ``sub-01-old``): their
#: files would be read as the subject's (see :func:`.folders.stray_subject_folders`).
_NOT_A_SUBJECT = rf"^/sub-(?!{LABEL}(?:[/_.]|$))"
#: Where BIDS puts no data file: inside a top-level folder other than ``sub-*`` (``excluded/sub-03/``,
#: a subject moved aside and listed in ``.bidsignore``), or in a folder below a datatype folder
#: (``sub-01/func/old/``): pybids would read the entities of the files there as a run's.
_OUTSIDE_SUBJECTS = r"^/(?!sub-)[^/]+/"
_BELOW_A_DATATYPE = r"^/sub-[^/]+/(?:ses-[^/]+/)?(?!ses-)[^/]+/[^/]+/"


def load_layout(
    bids_dir: Path,
    derivatives: tuple[Path, ...],
    *,
    participant_label: tuple[str, ...] = (),
    database_dir: Path | None = None,
    exclude: tuple[Path, ...] = (),
):
    """Index the raw dataset and its derivatives with pybids.

    Every file's entities are read from its path relative to its dataset's root, so that
    folders above a dataset (``/scratch/proj_task-pilot/ds``) never add or change one.

    Parameters
    ----------
    bids_dir : Path
        The raw dataset.
    derivatives : tuple of Path
        Derivatives datasets, each with a ``dataset_description.json``.
    participant_label : tuple of str, optional
        Index only these subjects' ``sub-*`` folders (and the files outside any
        ``sub-*`` folder); all subjects when empty.
    database_dir : Path, optional
        Save the index of the whole dataset there, or reuse the one saved by an
        earlier job (``--bids-database-dir``).
    exclude : tuple of Path, optional
        Folders never to index (OUTPUT_DIR, the work dir) when they lie inside a dataset.

    Returns
    -------
    layout : bids.BIDSLayout

    Raises
    ------
    NoDataError
        A derivatives path has no ``dataset_description.json``.
    UsageError
        A derivatives path is BIDS_DIR itself.
    """
    return _open_index(bids_dir, derivatives, participant_label, database_dir, exclude)[0]


def _open_index(bids_dir, derivatives, participant_label=(), database_dir=None, exclude=()):
    """The layout and the symbolic links that were not followed because they loop."""
    check_given_derivatives(derivatives)
    for path in derivatives:
        if Path(path).resolve() == Path(bids_dir).resolve():
            raise UsageError(
                f"--derivatives {path} is BIDS_DIR itself, the raw data; give the preprocessed derivatives "
                "(fMRIPrep's output folder), or leave -d out to use those under BIDS_DIR/derivatives."
            )
        if not is_described(path) and not holds_subjects(path):
            inside = sorted(child for child in Path(path).glob("*/dataset_description.json"))[:3] \
                if Path(path).is_dir() else []
            raise NoDataError(
                f"--derivatives {path} is not a derivatives dataset: it has no dataset_description.json"
                + (f"; give the datasets in it (-d {' '.join(str(c.parent) for c in inside)})." if inside else ".")
            )
    bids_dir = bids_dir.absolute()
    everything = tuple(path.absolute() for path in derivatives)
    described = tuple(path for path in everything if is_described(path))
    names = [path.name for path in described]  # pybids names a derivatives dataset after its folder, once
    derivatives = tuple(path for index, path in enumerate(described) if path.name not in names[:index])
    twins = tuple(path for path in described if path not in derivatives)  # added under names of their own
    bare = tuple(path for path in everything if not is_described(path))
    ignore = _ignore_patterns(bids_dir, everything, exclude)
    declared = {str(bids_dir): bidsignore_rules(bids_dir)}  # the raw dataset's .bidsignore
    saved = None
    with warnings.catch_warnings():  # fMRIPrep < 1.5's description: read by pybids, nothing to do for users
        warnings.filterwarnings("ignore", message="The PipelineDescription field was superseded", category=UserWarning)
        if database_dir is not None:
            saved = _saved_index(Path(database_dir), bids_dir, derivatives, ignore, participant_label, declared)
        if participant_label:
            ignore.append(_other_subjects(participant_label))
        start = time.perf_counter()
        if saved is not None:
            layout, loops = saved
        else:
            layout, indexer = _index(bids_dir, derivatives, ignore, declared=declared)
            loops = tuple(indexer.loops)
        for path in twins:
            loops += _add_derivatives(layout, path, ignore)
        for path in bare:
            loops += _add_bare_derivatives(layout, path, ignore)
    if saved is None or bare or twins:
        logger.info(
            "Indexed %s%s%s in %.1f s", bids_dir, "".join(f" + {p}" for p in everything),
            f" (sub-{', sub-'.join(participant_label)} only)" if participant_label else "",
            time.perf_counter() - start,
        )
    return layout, loops


def _add_bare_derivatives(layout, path, ignore) -> tuple:
    """Index a folder of preprocessed ``sub-*`` folders without a
    ``dataset_description.json`` (see :func:`.derivatives.holds_subjects`) as one more
    derivatives dataset of ``layout`` (:func:`_add_derivatives`), with a warning; its
    symbolic link loops."""
    logger.warning(
        "%s has no dataset_description.json; its sub-* folders were read as preprocessed "
        "derivatives (as nilearn's first_level_from_bids reads them). Add a "
        "dataset_description.json with GeneratedBy to make it a BIDS derivatives dataset.", path,
    )
    return _add_derivatives(layout, path, ignore)


def _add_derivatives(layout, path, ignore) -> tuple:
    """Index ``path`` as one more derivatives dataset of ``layout``, named after its folder
    (``fmriprep2`` when that name is taken: pybids refuses a second dataset of one name, such
    as two fMRIPrep folders of separate jobs given with ``-d``); its symbolic link loops."""
    from bids import BIDSLayout

    indexer = _indexer_class()(ignored=ignore)
    name, count = path.name, 1
    while name in layout.derivatives:
        count += 1
        name = f"{path.name}{count}"
    layout.derivatives[name] = BIDSLayout(
        path, is_derivative=True, validate=False, indexer=indexer, config=["bids", "derivatives"],
        sources=layout,
    )
    return tuple(indexer.loops)


def _ignore_patterns(bids_dir, derivatives, exclude):
    """pybids ignore regexes, matched against paths relative to each dataset's root."""
    patterns = [_ALWAYS_IGNORED, _NOT_A_SUBJECT, _OUTSIDE_SUBJECTS, _BELOW_A_DATATYPE]
    roots = (bids_dir, *derivatives)
    for folder in (*derivatives, *exclude):
        if folder is None:
            continue
        folder = Path(folder).absolute()
        for root in roots:
            if root not in folder.parents:
                continue
            relative = "/" + folder.relative_to(root).as_posix()
            if not any(re.search(pattern, relative) for pattern in patterns):
                patterns.append(f"^{re.escape(relative)}(?:/|$)")
    return sorted(set(patterns))


def _other_subjects(labels):
    """A regex for every top-level ``sub-*`` entry of a dataset but those of ``labels``."""
    allowed = "|".join(re.escape(label) for label in sorted(labels))
    return rf"^/sub-(?!(?:{allowed})(?:[/_.]|$))"


def _index(bids_dir, derivatives, ignore, database_path=None, declared=None):
    """Index afresh (into ``database_path`` when given); the layout and the indexer.
    ``declared``: more rules by dataset root (the raw dataset's ``.bidsignore``: see
    :class:`.bidsignore.IgnoreRule`)."""
    from bids import BIDSLayout

    indexer = _indexer_class()(ignored=ignore, ignored_in=declared)
    layout = BIDSLayout(
        bids_dir, validate=False, derivatives=list(derivatives) or False, indexer=indexer,
        database_path=database_path, reset_database=database_path is not None,
    )
    return layout, indexer


def _saved_index(database_dir, bids_dir, derivatives, ignore, participant_label, declared=None):
    """The saved index of the whole dataset, saved first if needed; None to index afresh.

    The index is saved under a name that depends on the dataset's roots and their
    modification times, written to a temporary folder and renamed, by one job at a time
    (a lock file); a job that finds another one saving indexes its own selection instead
    of waiting. A saved index whose folders changed since is not used.
    """
    import sqlite3

    import bids
    from sqlalchemy.exc import SQLAlchemyError

    roots = (bids_dir, *derivatives)
    try:
        stamps = [os.stat(root).st_mtime_ns for root in roots]
    except OSError:
        return None
    identity = json.dumps(
        [INDEX_FORMAT, bids.__version__, [str(r) for r in roots], stamps, ignore,
         {root: [rule.pattern for rule in rules] for root, rules in (declared or {}).items()}]
    )
    name = "layout-" + hashlib.sha256(identity.encode()).hexdigest()[:16]
    final = database_dir / name
    try:
        saved = (final / _MANIFEST).is_file()
    except OSError as error:  # another user's index, not readable by this one
        logger.warning("The index saved in %s cannot be read (%s), so the dataset was indexed afresh; make it "
                       "readable to every job (chmod -R g+rX, say), or give each user a --bids-database-dir.",
                       final, error.strerror)
        return None
    made = False  # by this job, which said so
    if not saved:
        try:
            database_dir.mkdir(parents=True, exist_ok=True)
            lock = open(database_dir / f"{name}.lock", "a")  # noqa: SIM115 (held while saving)
        except OSError as error:
            logger.warning(
                "--bids-database-dir %s cannot be written (%s), so the dataset was indexed afresh.",
                database_dir, error.strerror,
            )
            return None
        with lock:
            locked = _try_lock(lock)
            if locked is False:
                logger.info("Another job is saving the index in %s; indexing afresh.", database_dir)
                return None
            try:
                if not (final / _MANIFEST).is_file():
                    _save_index(
                        database_dir, name, bids_dir, derivatives, ignore, clean=locked is True, declared=declared
                    )
                    made = True
            except (OSError, sqlite3.Error, SQLAlchemyError) as error:
                logger.warning(
                    "The index could not be saved in --bids-database-dir %s (%s), so the "
                    "dataset was indexed afresh.", database_dir, error,
                )
                return None
    try:
        return _load_saved(final, bids_dir, derivatives, participant_label, just_saved=made)
    except (OSError, sqlite3.Error, SQLAlchemyError) as error:
        logger.warning(
            "The index saved in %s could not be read (%s), so the dataset was indexed afresh.",
            final, error,
        )
        return None


def _try_lock(handle):
    """Take an exclusive lock without waiting: True when taken, False when another process
    holds it, None where the file system has no locks (the atomic rename keeps it safe)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _save_index(database_dir, name, bids_dir, derivatives, ignore, clean=False, declared=None):
    """Index the whole dataset into a temporary folder, then rename it to ``name``.

    With ``clean`` (the lock is held), temporary folders left by killed jobs are removed.
    """
    if clean:
        for leftover in database_dir.glob(f".{name}.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=database_dir))
    try:
        os.chmod(temporary, creation_mode(0o777))  # shared with the jobs of a lab's other users, as umask allows
        start = time.perf_counter()
        layout, indexer = _index(bids_dir, derivatives, ignore, database_path=temporary, declared=declared)
        for each in (layout, *layout.derivatives.values()):
            each.connection_manager.session.close()
            each.connection_manager.engine.dispose()
        for database in temporary.rglob("*.sqlite"):
            _add_search_index(database)
        manifest = {
            "format": INDEX_FORMAT,
            "roots": [str(root) for root in (bids_dir, *derivatives)],
            "directories": indexer.directories,
            "loops": [str(loop) for loop in indexer.loops],
        }
        (temporary / _MANIFEST).write_text(json.dumps(manifest))
        try:
            os.rename(temporary, database_dir / name)
        except OSError:  # another job saved it first (where locks do not work)
            shutil.rmtree(temporary, ignore_errors=True)
        logger.info("Indexed %s and saved the index in %s in %.1f s",
                    bids_dir, database_dir / name, time.perf_counter() - start)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _add_search_index(database):
    """Index the tags by entity and value: pybids' queries of one subject then read that
    subject's rows, not every row of a large dataset."""
    import sqlite3

    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE INDEX IF NOT EXISTS ix_tags_entity_value ON tags (entity_name, _value)"
        )
        connection.execute("ANALYZE")
    connection.close()


def _load_saved(folder, bids_dir, derivatives, participant_label, just_saved=False):
    """The saved index in ``folder``, or None when the selection's folders changed since
    (``just_saved``: this job saved it, and said so)."""
    from bids import BIDSLayout

    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
        changed = _changed_folders(manifest, (bids_dir, *derivatives), participant_label)
        loops = tuple(Path(loop) for loop in manifest["loops"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        logger.warning("The index saved in %s is damaged (its %s cannot be read), so the selection was indexed "
                       "afresh; delete that folder to save a new one.", folder, _MANIFEST)
        return None
    if changed:
        logger.warning(
            "The index saved in %s is out of date (%s changed since it was saved), so the "
            "selection was indexed afresh; delete that folder to save a new one.",
            folder, changed[0],
        )
        return None
    missing = _missing_table(folder)
    if missing is not None:
        logger.warning("The index saved in %s is damaged (%s), so the selection was indexed afresh; delete that "
                       "folder to save a new one.", folder, missing)
        return None
    outside = _path_outside(folder, (bids_dir, *derivatives))
    if outside is not None:
        logger.warning(
            "The index saved in %s lists %s, which is not in the datasets it indexes, so the selection was "
            "indexed afresh; delete that folder to save a new one (and check who can write to it).",
            folder, outside[:300],
        )
        return None
    layout = BIDSLayout(
        bids_dir, validate=False, derivatives=list(derivatives) or False, database_path=folder
    )
    if not just_saved:
        logger.info("Reused the index saved in %s", folder)
    return layout, loops


#: The tables of pybids' index that the queries read (and their columns).
_TABLES = {"files": {"path"}, "tags": {"file_path", "entity_name", "_value"}, "entities": {"name"}}


def _missing_table(folder) -> str | None:
    """What a saved index lacks of the tables (and columns) pybids' queries read, said in a
    few words; None when it has them all (a dropped table failed the first query, exit 1)."""
    import sqlite3
    from contextlib import closing

    databases = sorted(Path(folder).rglob("*.sqlite"))
    if not databases:
        return "it holds no database"
    for database in databases:
        with closing(sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)) as connection:
            for table, columns in _TABLES.items():
                held = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
                if not columns <= held:
                    return f"{database.name} has no table {table} with columns {', '.join(sorted(columns))}"
    return None


def _path_outside(folder, roots) -> str | None:
    """The first file a saved index (its SQLite databases) lists outside ``roots``, the datasets
    it indexes; None when none does. The index names the files a job reads: one edited to
    name files elsewhere would have them read as the dataset's. Its ``files`` table is what
    names them (a ``tags`` row names a file only through a ``files`` row of the same path)."""
    import sqlite3
    from contextlib import closing

    inside = tuple(os.path.join(os.path.normpath(str(root)), "") for root in roots)
    # SQLite passes over the paths plainly inside a root (at the speed of C: once per file); the
    # others (".." or "//" in them, or another beginning) are then normalised and checked here
    plain = " OR ".join(["(path >= ? AND path < ?)"] * len(inside)) or "0"  # begins with the root: sorts after
    query = (f"SELECT path FROM files WHERE NOT (typeof(path) = 'text' AND ({plain}) AND instr(path, '/../') = 0 "
             "AND instr(path, '/./') = 0 AND instr(path, '//') = 0 AND substr(path, -3) != '/..' "
             "AND substr(path, -2) != '/.')")
    arguments = [value for root in inside for value in (root, root[:-1] + chr(ord(root[-1]) + 1))]
    for database in sorted(Path(folder).rglob("*.sqlite")):
        with closing(sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)) as connection:
            for (path,) in connection.execute(query, arguments):
                if not isinstance(path, str) or not os.path.normpath(path).startswith(inside):
                    return str(path)
    return None


def _changed_folders(manifest, roots, participant_label):
    """The indexed folders of the selection whose contents changed since they were indexed."""
    changed = []
    for root in roots:
        groups = manifest["directories"].get(str(root), {})
        for top, folders in groups.items():
            if not (top == "" or _selected(top, participant_label)):
                continue
            for folder, stamp in folders.items():
                try:
                    if os.stat(folder).st_mtime_ns != stamp:
                        changed.append(folder)
                except OSError:
                    changed.append(folder)
        for label in participant_label:
            if f"sub-{label}" not in groups and (root / f"sub-{label}").is_dir():
                changed.append(str(root / f"sub-{label}"))
    return changed
