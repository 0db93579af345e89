"""Discovery: from a BIDS dataset and its derivatives to a list of :class:`Run` records.

pybids indexes the raw dataset and the preprocessed derivatives; every selected
preprocessed BOLD series is matched with its events, confounds, brain mask and
repetition time (from the JSON sidecars, with BIDS inheritance).

Entities come from each file's path relative to its dataset's root, never from the
folders above it. With ``--participant-label`` only the selected subjects' folders are
indexed, and sidecars are read only for the files used, so setting up one subject costs
the same in a dataset of ten subjects or of a thousand. ``--bids-database-dir`` saves the
index of the whole dataset once and lets later jobs reuse it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import InputFileError, InvalidBIDSError, NoDataError, UsageError
from .settings import DEFAULT_SPACE

logger = logging.getLogger("bids_fixedfx")

#: The entities of a BOLD series that name a run, in BIDS order: (pybids name, key).
RUN_ENTITIES = (
    ("subject", "sub"),
    ("session", "ses"),
    ("task", "task"),
    ("acquisition", "acq"),
    ("ceagent", "ce"),
    ("reconstruction", "rec"),
    ("direction", "dir"),
    ("run", "run"),
    ("echo", "echo"),
)
NIFTI = [".nii.gz", ".nii"]
CONFOUNDS_DESCS = ["confounds"]
CONFOUNDS_SUFFIXES = ["timeseries", "regressors"]


def run_name(entities) -> str:
    """A run's (key, value) entities as a file-name stem, e.g. ``sub-01_task-x_run-01``."""
    return "_".join(f"{key}-{value}" for key, value in entities)


@dataclass(frozen=True)
class Run:
    """One BOLD series to fit, with every file its model needs.

    ``entities`` are the run's BIDS entities in BIDS order as (key, value) pairs,
    values exactly as in the input file name (``run-01`` stays ``01``).
    """

    entities: tuple[tuple[str, str], ...]
    space: str | None
    bold: Path
    mask: Path | None
    events: Path | None
    confounds: Path | None
    design: Path | None
    raw_bold: Path | None
    tr: float
    n_volumes: int
    preprocessed: bool
    start_time: float = 0.0  # StartTime of slice-timing corrected data: where each frame is sampled

    @property
    def subject(self) -> str:
        return dict(self.entities)["sub"]

    @property
    def session(self) -> str | None:
        return dict(self.entities).get("ses")

    @property
    def task(self) -> str:
        return dict(self.entities)["task"]

    @property
    def name(self) -> str:
        """The run's entities as a file-name stem, e.g. ``sub-01_task-x_run-01``."""
        return run_name(self.entities)


@dataclass(frozen=True)
class Selection:
    """What discovery found: the runs to fit and what a user should know about them."""

    runs: tuple[Run, ...]
    space: str | None
    derivatives: tuple[Path, ...]
    warnings: tuple[str, ...]

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(sorted({run.subject for run in self.runs}))


def validator_command() -> str | None:
    """Return the path of the official BIDS validator, or None when it is not installed."""
    beside = Path(sys.executable).parent / "bids-validator-deno"
    return shutil.which("bids-validator-deno") or (str(beside) if beside.is_file() else None)


def validate_input_dir(bids_dir: Path, participant_label: tuple[str, ...] = ()) -> None:
    """Run the official BIDS validator on the input dataset.

    Parameters
    ----------
    bids_dir : Path
        The root of the BIDS dataset.
    participant_label : tuple of str, optional
        Validate only these subjects' folders and the files outside every subject's folder
        (through a temporary folder of links), so that a job of one subject of a large
        dataset does not validate every other subject; all subjects when empty.

    Raises
    ------
    InvalidBIDSError
        When the validator reports an error; the message names the first file at fault.
    """
    command = validator_command()
    if command is None:
        logger.warning(
            "bids-validator-deno is not installed, so %s was not validated; "
            "install it (pip install bids-validator-deno) or pass --skip-bids-validation.",
            bids_dir,
        )
        return
    logger.info("Validating %s with the BIDS validator", bids_dir)
    with tempfile.TemporaryDirectory(prefix="bids-fixedfx-validate-") as scratch:
        target = bids_dir
        if participant_label:
            target = Path(scratch) / "dataset"
            target.mkdir()
            for entry in os.scandir(bids_dir):
                if _selected(entry.name, participant_label) or not entry.is_dir():
                    (target / entry.name).symlink_to(Path(bids_dir, entry.name).absolute())
        done = subprocess.run(
            [command, "--format", "json", "--ignoreWarnings", str(target)],
            capture_output=True, text=True, check=False,
        )
    errors = _validator_errors(done.stdout)
    if errors is None:
        if done.returncode != 0:
            raise InvalidBIDSError(
                f"The BIDS validator failed on {bids_dir}: "
                f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}."
            )
        return
    if errors:
        code, location, count = errors[0][0], errors[0][1], len(errors)
        raise InvalidBIDSError(
            f"{bids_dir} is not valid BIDS: {code} at {location or 'the dataset root'} "
            f"({count} error{'s' if count > 1 else ''}; run bids-validator-deno {bids_dir} "
            f"for details, or pass --skip-bids-validation)."
        )


def _validator_errors(stdout):
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    issues = report.get("issues", {}).get("issues", [])
    return [
        (issue.get("code", "ERROR"), issue.get("location", ""))
        for issue in issues
        if issue.get("severity") == "error"
    ]


def find_derivatives(bids_dir: Path, output_dir: Path) -> tuple[Path, ...]:
    """List the derivative datasets under ``BIDS_DIR/derivatives`` (not our own output).

    Parameters
    ----------
    bids_dir, output_dir : Path

    Returns
    -------
    paths : tuple of Path
        ``BIDS_DIR/derivatives`` itself if it has a ``dataset_description.json``,
        else every folder under it that has one.
    """
    root = bids_dir / "derivatives"
    if not root.is_dir():
        return ()
    if (root / "dataset_description.json").is_file() and not _same_folder(root, output_dir):
        return (root,)
    return tuple(
        path
        for path in sorted(root.iterdir())
        if (path / "dataset_description.json").is_file() and not _same_folder(path, output_dir)
    )


def skipped_derivatives(
    bids_dir: Path, output_dir: Path, work_dir: Path | None = None
) -> tuple[Path, ...]:
    """List the folders under ``BIDS_DIR/derivatives`` that are not used as derivatives.

    A derivatives dataset needs a ``dataset_description.json``; the folders without one
    are skipped by :func:`find_derivatives`, and the user should be told.

    Parameters
    ----------
    bids_dir, output_dir : Path
    work_dir : Path, optional
        The scratch folder, which may be a new folder under ``BIDS_DIR/derivatives``.

    Returns
    -------
    paths : tuple of Path
        Every folder directly under ``BIDS_DIR/derivatives`` (hidden ones, OUTPUT_DIR and
        the work dir left out) that has no ``dataset_description.json``; empty when
        ``BIDS_DIR/derivatives`` is itself a derivatives dataset.
    """
    root = bids_dir / "derivatives"
    if not root.is_dir() or (root / "dataset_description.json").is_file():
        return ()
    ours = [path for path in (output_dir, work_dir) if path is not None]
    return tuple(
        path
        for path in sorted(root.iterdir())
        if path.is_dir() and not path.name.startswith(".")
        and not (path / "dataset_description.json").is_file()
        and not any(_same_folder(path, other) for other in ours)
    )


def _same_folder(path, other):
    """Whether two paths are one folder, even when bound at two places in a container."""
    try:
        return other.exists() and os.path.samefile(path, other)
    except OSError:
        return False


def check_bids_dir(bids_dir: Path) -> None:
    """Refuse a BIDS_DIR that does not exist or is not a BIDS dataset."""
    if not bids_dir.is_dir():
        raise UsageError(f"BIDS_DIR {bids_dir} is not a directory.")
    if not (bids_dir / "dataset_description.json").is_file():
        raise NoDataError(
            f"BIDS_DIR {bids_dir} is not a BIDS dataset: it has no dataset_description.json."
        )


# ---------------------------------------------------------------- indexing

#: Version of what a saved index holds; a saved index of another version is not reused.
INDEX_FORMAT = 1
_MANIFEST = "bids_fixedfx_index.json"
#: pybids' default exclusions, plus nested ``derivatives/`` (indexed as datasets of their own).
_ALWAYS_IGNORED = r"^/(?:code|models|sourcedata|stimuli|derivatives)(?:/|$)"


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
    """
    return _open_index(bids_dir, derivatives, participant_label, database_dir, exclude)[0]


def _open_index(bids_dir, derivatives, participant_label=(), database_dir=None, exclude=()):
    """The layout and the symbolic links that were not followed because they loop."""
    for path in derivatives:
        if not (path / "dataset_description.json").is_file():
            raise NoDataError(
                f"--derivatives {path} is not a derivatives dataset: "
                "it has no dataset_description.json."
            )
    bids_dir = bids_dir.absolute()
    derivatives = tuple(path.absolute() for path in derivatives)
    ignore = _ignore_patterns(bids_dir, derivatives, exclude)
    if database_dir is not None:
        saved = _saved_index(Path(database_dir), bids_dir, derivatives, ignore, participant_label)
        if saved is not None:
            return saved
    if participant_label:
        ignore.append(_other_subjects(participant_label))
    start = time.perf_counter()
    layout, indexer = _index(bids_dir, derivatives, ignore)
    logger.info(
        "Indexed %s%s%s in %.1f s", bids_dir, "".join(f" + {p}" for p in derivatives),
        f" (sub-{', sub-'.join(participant_label)} only)" if participant_label else "",
        time.perf_counter() - start,
    )
    return layout, tuple(indexer.loops)


def _ignore_patterns(bids_dir, derivatives, exclude):
    """pybids ignore regexes, matched against paths relative to each dataset's root."""
    patterns = [_ALWAYS_IGNORED]
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
        are matched against relative paths before anything else is done with an entry,
        so that the ``sub-*`` folders of other subjects cost one string match each. A
        folder that is one of its own parents (a symbolic link loop) is not entered
        again; ``loops`` lists those links. ``directories`` maps each dataset root to its
        folders' modification times, grouped by the top-level entry they are in (``""``
        for the root itself), so that a saved index can be checked one subject at a time.
        """

        def __init__(self, ignored=(), **kwargs):
            super().__init__(validate=False, index_metadata=False, **kwargs)
            self.ignored = [re.compile(pattern) for pattern in (*ignored, r"/\.")]
            self.loops = []
            self.directories = {}
            self._open = set()
            self._root = ""

        def __call__(self, layout):
            self._root = str(layout._root.path).rstrip("/")
            super().__call__(layout)

        def _index_dir(self, path, config, force=None):
            folder = str(getattr(path, "path", path))
            try:
                status = os.stat(folder)
                entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
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
                    pattern.search(f"{relative}/{entry.name}") for pattern in self.ignored
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


def _index(bids_dir, derivatives, ignore, database_path=None):
    """Index afresh (into ``database_path`` when given); the layout and the indexer."""
    from bids import BIDSLayout

    indexer = _indexer_class()(ignored=ignore)
    layout = BIDSLayout(
        bids_dir, validate=False, derivatives=list(derivatives) or False, indexer=indexer,
        database_path=database_path, reset_database=database_path is not None,
    )
    return layout, indexer


def _saved_index(database_dir, bids_dir, derivatives, ignore, participant_label):
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
        [INDEX_FORMAT, bids.__version__, [str(r) for r in roots], stamps, ignore]
    )
    name = "layout-" + hashlib.sha256(identity.encode()).hexdigest()[:16]
    final = database_dir / name
    if not (final / _MANIFEST).is_file():
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
                        database_dir, name, bids_dir, derivatives, ignore, clean=locked is True
                    )
            except (OSError, sqlite3.Error, SQLAlchemyError) as error:
                logger.warning(
                    "The index could not be saved in --bids-database-dir %s (%s), so the "
                    "dataset was indexed afresh.", database_dir, error,
                )
                return None
    try:
        return _load_saved(final, bids_dir, derivatives, participant_label)
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


def _save_index(database_dir, name, bids_dir, derivatives, ignore, clean=False):
    """Index the whole dataset into a temporary folder, then rename it to ``name``.

    With ``clean`` (the lock is held), temporary folders left by killed jobs are removed.
    """
    if clean:
        for leftover in database_dir.glob(f".{name}.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=database_dir))
    try:
        start = time.perf_counter()
        layout, indexer = _index(bids_dir, derivatives, ignore, database_path=temporary)
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


def _load_saved(folder, bids_dir, derivatives, participant_label):
    """The saved index in ``folder``, or None when the selection's folders changed since."""
    from bids import BIDSLayout

    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    changed = _changed_folders(manifest, (bids_dir, *derivatives), participant_label)
    if changed:
        logger.warning(
            "The index saved in %s is out of date (%s changed since it was saved), so the "
            "selection was indexed afresh; delete that folder to save a new one.",
            folder, changed[0],
        )
        return None
    layout = BIDSLayout(
        bids_dir, validate=False, derivatives=list(derivatives) or False, database_path=folder
    )
    logger.info("Reused the index saved in %s", folder)
    return layout, tuple(Path(loop) for loop in manifest["loops"])


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


def _subject_folders(roots):
    """The labels of the ``sub-*`` folders of the datasets' roots, for messages."""
    labels = set()
    for root in roots:
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        labels |= {e.name[4:] for e in entries if e.name.startswith("sub-") and e.is_dir()}
    return sorted(labels)


# ---------------------------------------------------------------- sidecars


@functools.cache
def _name_patterns():
    """pybids' entity patterns (raw and derivatives), to parse file names."""
    from bids.layout.models import Config

    entities = {}
    for name in ("bids", "derivatives"):
        entities.update(Config.load(name).entities)
    return tuple(entities.values())


def _name_entities(name):
    """The entities of a file name (its folder not considered), with suffix and extension."""
    from bids.layout import parse_file_entities

    return parse_file_entities("/" + name, entities=_name_patterns())


def inherited_files(path: Path, root: Path, suffix: str, extension: str) -> list[list[Path]]:
    """The files that apply to a data file by the BIDS inheritance principle.

    A file applies when it is named with the given suffix and extension and a subset of
    the data file's entities, in the data file's folder or a folder above it up to
    ``root``. Only those folders are listed, whatever the size of the dataset.

    Parameters
    ----------
    path : Path
        The data file.
    root : Path
        The root of the dataset that holds it.
    suffix, extension : str
        What to look for, e.g. ``"bold"`` and ``".json"``, or ``"events"`` and ``".tsv"``.

    Returns
    -------
    levels : list of list of Path
        One list per folder, the data file's own folder first and ``root`` last; in each,
        the files that apply, least specific (fewest entities) first.
    """
    entities = _name_entities(path.name)
    entities.pop("suffix", None)
    entities.pop("extension", None)
    ending = f"{suffix}{extension}"
    levels = []
    folder = path.parent
    while True:
        found = []
        try:
            names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(ending))
        except OSError:
            names = []
        for name in names:
            own = _name_entities(name)
            if name.startswith(".") or own.pop("suffix", None) != suffix:
                continue
            if own.pop("extension", None) != extension:
                continue
            if all(key in entities and entities[key] == value for key, value in own.items()):
                found.append((len(own), folder / name))
        levels.append([file for _, file in sorted(found)])
        if folder == root or folder == folder.parent:
            break
        folder = folder.parent
    return levels


def sidecar_metadata(path: Path, root: Path) -> dict:
    """The metadata of a data file from its JSON sidecars, with BIDS inheritance.

    Only the sidecars of this one file are read (see :func:`inherited_files`); nearer
    sidecars override farther ones, and in one folder more specific ones override less
    specific ones. ``null`` values count as absent.

    Parameters
    ----------
    path : Path
        The data file.
    root : Path
        The root of the dataset that holds it.

    Returns
    -------
    metadata : dict
        Each key mapped to ``(value, sidecar)``: its value and the sidecar it came from.

    Raises
    ------
    InputFileError
        A sidecar that applies cannot be read or is not a JSON object.
    """
    suffix = _name_entities(path.name).get("suffix")
    if suffix is None:
        return {}
    metadata = {}
    for level in reversed(inherited_files(path, root, suffix, ".json")):
        for sidecar in level:
            for key, value in _read_sidecar(sidecar).items():
                if value is not None:
                    metadata[key] = (value, sidecar)
    return metadata


def _read_sidecar(path):
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise InputFileError(f"The sidecar {path} cannot be read: {error.strerror}.") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise InputFileError(f"The sidecar {path} is not valid JSON: {error}.") from None
    if not isinstance(content, dict):
        raise InputFileError(
            f"The sidecar {path} must hold a JSON object, not {type(content).__name__}."
        )
    return content


def _seconds(key, value, sidecar):
    """A duration from a sidecar as a finite float; booleans, NaN and infinity refused."""
    number = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
    if number is None or not math.isfinite(number):
        raise InputFileError(
            f"{key} in {sidecar} must be a finite number of seconds, not {json.dumps(value)}."
        )
    return number


# ---------------------------------------------------------------- selection


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


def select_runs(settings) -> Selection:
    """Find every run to fit, as selected by the settings.

    With ``--participant-label``, only the selected subjects' folders are indexed (or the
    index saved in ``--bids-database-dir`` is used); either way the runs found are the
    same. Sidecars are read only for the files used.

    Parameters
    ----------
    settings : Settings

    Returns
    -------
    selection : Selection
        The runs, and warnings: folders under ``BIDS_DIR/derivatives`` skipped for lack
        of a ``dataset_description.json``, symbolic link loops not followed, labels that
        match nothing, raw data modelled for lack of preprocessed data.

    Raises
    ------
    NoDataError
        No subject, task, space or run matches, or a run lacks its events or TR.
    InputFileError
        A sidecar or BOLD header the selection needs cannot be read, or a TR or
        StartTime is not a finite number (booleans included).
    UsageError
        Several spaces are present and none was chosen.
    """
    from bids.layout import Query

    warnings = []
    derivatives = settings.derivatives
    if not derivatives:
        derivatives = find_derivatives(settings.bids_dir, settings.output_dir)
        warnings += [
            f"{path} was skipped as derivatives because it has no dataset_description.json."
            for path in skipped_derivatives(
                settings.bids_dir, settings.output_dir, settings.work_dir
            )
        ]
    layout, loops = _open_index(
        settings.bids_dir, derivatives, settings.participant_label,
        settings.bids_database_dir, (settings.output_dir, settings.work_dir),
    )
    filters = settings.bids_filters
    bold_filters = _pybids_filters(filters.get("bold", {}))

    labels = list(settings.participant_label)
    subjects = _values(layout, "subject", subject=labels) if labels else layout.get_subjects()
    if settings.participant_label:
        missing = [s for s in settings.participant_label if s not in subjects]
        if len(missing) == len(settings.participant_label):
            present = _subject_folders((settings.bids_dir, *derivatives))
            if not present:
                raise NoDataError(f"{settings.bids_dir} has no sub-* folders with data.")
            raise NoDataError(
                f"No subject matches --participant-label {' '.join(missing)} "
                f"(the dataset has {', '.join('sub-' + s for s in present)})."
            )
        for label in missing:
            warnings.append(f"--participant-label {label} matches no subject and was ignored.")
        subjects = [s for s in subjects if s in settings.participant_label]
    elif not subjects:
        raise NoDataError(f"{settings.bids_dir} has no sub-* folders with data.")
    roots = _layout_roots(layout)
    warnings += [
        f"{loop} is a symbolic link to one of its own parent folders (a loop), "
        "so it was not followed."
        for loop in loops
        if _in_selection(loop, roots, tuple(subjects) if settings.participant_label else ())
    ]
    query = {"subject": subjects}
    if settings.session_label:
        sessions = _values(layout, "session", subject=subjects)
        if not set(settings.session_label) & set(sessions):
            raise NoDataError(
                f"No session matches --session-label {' '.join(settings.session_label)} "
                f"(the selected subjects have {', '.join(sessions) or 'no sessions'})."
            )
        query["session"] = list(settings.session_label)

    tasks = _select_tasks(layout, settings, query)
    query["task"] = list(tasks)

    preproc, unfiltered = [], []
    if derivatives:
        preproc = _get(
            layout, scope="derivatives", suffix="bold", extension=NIFTI, return_type="object",
            **{"desc": "preproc", **query, **bold_filters},
        )
        unfiltered = preproc or _get(
            layout, scope="derivatives", suffix="bold", extension=NIFTI, desc="preproc", **query
        )
    if unfiltered and not preproc:
        raise NoDataError(
            f"The --bids-filter-file query {json.dumps(filters.get('bold'))} matches none of the "
            f"preprocessed BOLD series of sub-{', sub-'.join(query['subject'])}."
        )
    if not preproc:
        return _select_raw_runs(layout, settings, query, bold_filters, derivatives, warnings)

    spaces = sorted({f.get_entities().get("space") or "none" for f in preproc})
    space = _choose_space(settings.space, spaces, preproc)
    space_query = Query.NONE if space is None else space
    preproc = [f for f in preproc if f.get_entities().get("space", Query.NONE) == space_query]

    _refuse_several_per_run(preproc)
    runs = [
        _preprocessed_run(layout, settings, bold, space, warnings)
        for bold in sorted(preproc, key=lambda f: f.path)
    ]
    warnings += _unmatched_designs(settings.design_dir, runs)
    return Selection(tuple(runs), space, tuple(derivatives), tuple(warnings))


def _refuse_several_per_run(bold_files):
    """One preprocessed BOLD per run: several (res-, cohort-, ...) would be fitted twice."""
    by_run = {}
    for bold in bold_files:
        by_run.setdefault(_run_entities(bold), []).append(Path(bold.path).name)
    for entities, names in by_run.items():
        if len(names) > 1:
            name = run_name(entities)
            raise UsageError(
                f"{name} has several preprocessed BOLD series in the chosen space "
                f"({', '.join(sorted(names))}); choose one with --bids-filter-file, "
                'e.g. {"bold": {"resolution": "2"}}.'
            )


def _unmatched_designs(design_dir, runs):
    """Warnings for files of --design-dir that name a selected subject and task but no run."""
    if design_dir is None:
        return []
    used = {run.design for run in runs}
    subjects = {run.subject for run in runs}
    tasks = {run.task for run in runs}
    return [
        f"--design-dir file {path.name} matches no selected run (check its entities, "
        "e.g. ses- and run-), so it was not used."
        for entities, path in _design_files(design_dir)
        if path not in used and entities.get("subject") in subjects and entities.get("task") in tasks
    ]


def _select_tasks(layout, settings, query):
    from bids.layout import Query

    # the selected subjects' events, and those inherited from above the subjects' folders
    # (so that the tasks do not depend on which other subjects were indexed)
    events = {"suffix": "events", "extension": ".tsv", "scope": "raw"}
    with_events = set(_values(layout, "task", subject=query["subject"], **events))
    with_events |= set(_values(layout, "task", subject=Query.NONE, **events))
    if settings.design_dir is not None:
        with_events |= {
            ent["task"] for ent, _ in _design_files(settings.design_dir) if "task" in ent
        }
    all_tasks = set(_values(layout, "task", suffix="bold", **query))
    if settings.task:
        unknown = [t for t in settings.task if t not in all_tasks]
        if unknown:
            raise NoDataError(
                f"--task {unknown[0]} is not in the dataset "
                f"(tasks: {', '.join(sorted(all_tasks)) or 'none'})."
            )
        return tuple(settings.task)
    if not with_events:
        raise NoDataError(
            f"No task of the selected data has events.tsv files "
            f"(tasks: {', '.join(sorted(all_tasks)) or 'none'}); give --design-dir."
        )
    return tuple(sorted(with_events & all_tasks) or sorted(with_events))


def _choose_space(requested, spaces, preproc):
    if requested is not None:
        wanted = "none" if requested.lower() == "none" else requested
        if wanted not in spaces:
            raise NoDataError(
                f"--space {requested} matches no preprocessed BOLD "
                f"(spaces present: {', '.join(spaces)})."
            )
        return None if wanted == "none" else wanted
    if DEFAULT_SPACE in spaces:
        return DEFAULT_SPACE
    if len(spaces) == 1:
        return None if spaces[0] == "none" else spaces[0]
    raise UsageError(
        f"The preprocessed BOLD files come in several spaces ({', '.join(spaces)}); "
        "choose one with --space."
    )


def _layout_roots(layout):
    """The roots of the raw dataset and of the derivatives datasets of a layout."""
    return (Path(layout.root), *(Path(d.root) for d in layout.derivatives.values()))


def _metadata(layout, path):
    """A data file's sidecar metadata: each key mapped to ``(value, sidecar)``."""
    path = Path(path)
    return sidecar_metadata(path, _dataset_root(path, _layout_roots(layout)) or path.parent)


def _repetition_time(layout, files, run_name):
    """The TR from the JSON sidecars: the derivative's, else the raw file's (inherited)."""
    for path in files:
        if path is None:
            continue
        found = _metadata(layout, path).get("RepetitionTime")
        if found is not None:
            tr = _seconds("RepetitionTime", *found)
            if tr <= 0:
                raise InputFileError(
                    f"RepetitionTime in {found[1]} must be positive, not {found[0]}."
                )
            return tr
    raise NoDataError(
        f"No RepetitionTime for {run_name}: none of the JSON sidecars of "
        f"{', '.join(str(p) for p in files if p is not None)} (or their inherited ones) has it."
    )


def _n_volumes(path):
    """The number of volumes of a BOLD series, from its header (checked as the fit will need)."""
    from .images import check_image

    shape = check_image(path, "BOLD series").shape
    if len(shape) != 4:
        raise InputFileError(f"{path} is not a 4D BOLD series (shape {shape}).")
    return int(shape[3])


def _preprocessed_run(layout, settings, bold, space, warnings):
    from bids.layout import Query

    entities = _run_entities(bold)
    name = run_name(entities)
    match = _match_query(entities)
    raw = _one(
        _get(layout, scope="raw", suffix="bold", extension=NIFTI, **match),
        "raw BOLD", name,
    )
    mask = None
    if settings.mask is None:
        mask_query = dict(match)
        mask_query.update(_pybids_filters(settings.bids_filters.get("mask", {})))
        masks = _get(
            layout, scope="derivatives", suffix="mask", desc="brain", extension=NIFTI,
            space=space if space is not None else Query.NONE, datatype="func", **mask_query,
        )
        # Several masks (res-, den- variants): take the one on the BOLD's own entities.
        same = [m for m in masks if _grid_entities(m) == _grid_entities(bold)]
        masks = same or masks
        mask = _one([m.path for m in masks], "brain mask", name)
        if mask is None:
            warnings.append(
                f"{name} has no desc-brain_mask in the derivatives, so nilearn computed a mask "
                "from the BOLD; pass --mask to use your own."
            )
    confound_query = dict(match)
    confound_query.update(_pybids_filters(settings.bids_filters.get("confounds", {})))
    confounds = []
    if settings.model.confounds:
        confounds = _get(
            layout, scope="derivatives", desc=CONFOUNDS_DESCS, suffix=CONFOUNDS_SUFFIXES,
            extension=".tsv", **confound_query,
        )
    design = _design_for(settings.design_dir, entities)
    events = _events_for(layout, settings, match, raw, name) if design is None else None
    if design is None and events is None:
        raise NoDataError(
            f"{name} has no events.tsv in {settings.bids_dir}"
            + (f" and no design file in --design-dir {settings.design_dir}." if settings.design_dir else ".")
        )
    confound_file = _one(confounds, "confounds", name) if design is None else None
    if design is None and settings.model.confounds_given and settings.model.confounds and confound_file is None:
        raise NoDataError(
            f"{name} has no desc-confounds_timeseries.tsv in the derivatives; "
            "pass --confounds none to model it without confounds."
        )
    tr = _repetition_time(layout, [Path(bold.path), raw], name)
    return Run(
        entities=entities, space=space, bold=Path(bold.path),
        mask=Path(mask) if mask else None, events=events, confounds=confound_file,
        design=design, raw_bold=raw, tr=tr, n_volumes=_n_volumes(bold.path), preprocessed=True,
        start_time=_start_time(layout, Path(bold.path), tr),
    )


def _start_time(layout, bold, tr):
    """fMRIPrep's StartTime of slice-timing corrected series (0 when absent), as nilearn's
    ``first_level_from_bids`` reads it to set ``slice_time_ref``."""
    found = _metadata(layout, bold).get("StartTime")
    if found is None:
        return 0.0
    value = _seconds("StartTime", *found)
    if not 0 <= value <= tr:
        raise InputFileError(f"StartTime in {found[1]} ({value} s) is not within the TR ({tr} s).")
    return value


def _grid_entities(bids_file):
    ignored = ("desc", "suffix", "extension", "datatype")
    return {k: str(v) for k, v in bids_file.get_entities().items() if k not in ignored}


def _events_for(layout, settings, match, raw, name):
    query = {k: v for k, v in match.items() if k != "echo"}
    query.update(_pybids_filters(settings.bids_filters.get("events", {})))
    events = _get(layout, scope="raw", suffix="events", extension=".tsv", **query)
    if not events and raw is not None:  # events inherited from a higher level
        levels = inherited_files(raw, Path(layout.root), "events", ".tsv")
        nearest = next((level for level in levels if level), [])
        # the most specific of the nearest folder's (several equally specific: an error)
        most = len(_name_entities(nearest[-1].name)) if nearest else 0
        events = [f for f in nearest if len(_name_entities(f.name)) == most]
    return _one(events, "events", name)


def _select_raw_runs(layout, settings, query, bold_filters, derivatives, warnings):
    raw = _get(
        layout, scope="raw", suffix="bold", extension=NIFTI, return_type="object", **query, **bold_filters
    )
    if not raw:
        raise NoDataError(
            f"No BOLD series matches the selection (subjects {', '.join(query['subject'])}, "
            f"tasks {', '.join(query['task'])}"
            + (f", --bids-filter-file query {json.dumps(settings.bids_filters.get('bold'))}" if bold_filters else "")
            + f") in {settings.bids_dir}."
        )
    if settings.space not in (None, "none"):
        raise NoDataError(
            f"--space {settings.space} matches no preprocessed BOLD: "
            f"no derivatives with desc-preproc BOLD were found"
            f"{' in ' + ', '.join(map(str, derivatives)) if derivatives else ''}."
        )
    warnings.append(
        "No preprocessed BOLD was found, so the raw BOLD series were modelled "
        "(unpreprocessed, with masks computed by nilearn); run fMRIPrep first or pass -d."
    )
    runs = []
    for bold in sorted(raw, key=lambda f: f.path):
        entities = _run_entities(bold)
        name = run_name(entities)
        match = _match_query(entities)
        design = _design_for(settings.design_dir, entities)
        events = _events_for(layout, settings, match, Path(bold.path), name) if design is None else None
        if design is None and events is None:
            raise NoDataError(f"{name} has no events.tsv in {settings.bids_dir}.")
        runs.append(Run(
            entities=entities, space=None, bold=Path(bold.path), mask=None, events=events,
            confounds=None, design=design, raw_bold=Path(bold.path),
            tr=_repetition_time(layout, [Path(bold.path)], name),
            n_volumes=_n_volumes(bold.path), preprocessed=False,
        ))
    warnings += _unmatched_designs(settings.design_dir, runs)
    return Selection(tuple(runs), None, tuple(derivatives), tuple(warnings))


def _design_files(design_dir):
    """Every design file in ``design_dir`` with its entities (run numbers unpadded)."""
    from bids.layout import parse_file_entities

    if not design_dir.is_dir():
        raise NoDataError(f"--design-dir {design_dir} is not a directory.")
    files = []
    for path in sorted(design_dir.iterdir()):
        if path.name.endswith(("_design.tsv", "_design.npz")) or path.suffix in (".tsv", ".npz"):
            entities = parse_file_entities("/" + path.name)
            entities = {
                name: _unpadded(name, value)
                for name, value in entities.items()
                if name not in ("suffix", "extension")
            }
            files.append((entities, path))
    return files


def _unpadded(name, value):
    value = str(value)
    return str(int(value)) if name in ("run", "echo") and value.isdigit() else value


def _design_for(design_dir, entities):
    if design_dir is None:
        return None
    names = {key: name for name, key in RUN_ENTITIES}
    wanted = {names[key]: _unpadded(names[key], value) for key, value in entities}
    for file_entities, path in _design_files(design_dir):
        if file_entities == wanted:
            return path
    return None
