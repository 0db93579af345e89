"""Where the app may write (SPEC §4): never inside an input dataset, only in a folder it can write in."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError, check_regular_file

def _description(folder: Path) -> dict | None:
    path = folder / "dataset_description.json"
    check_regular_file(path, str(path), UsageError)  # a pipe or /dev/zero: read for ever
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None


def is_own_output(folder: Path) -> bool:
    """Whether a folder is an output of this app (its ``dataset_description.json`` says so)."""
    description = _description(folder)
    generated = description.get("GeneratedBy") if isinstance(description, dict) else None
    return isinstance(generated, list) and any(
        isinstance(g, dict) and g.get("Name") == "bids-fixedfx" for g in generated
    )


def input_datasets(bids_dir: Path, derivatives) -> list[Path]:
    """Every folder the app reads as input: BIDS_DIR, the given derivatives, and every
    dataset under ``BIDS_DIR/derivatives`` (``derivatives/`` itself included) that is not
    an output of this app."""
    bids_dir = Path(bids_dir).resolve()
    found = [bids_dir, *(Path(d).resolve() for d in derivatives)]
    root = bids_dir / "derivatives"
    if root.is_dir():
        candidates = [root, *(p for p in sorted(root.iterdir()) if p.is_dir())]
        for folder in candidates:
            if (folder / "dataset_description.json").is_file() and not is_own_output(folder):
                found.append(folder.resolve())
    return list(dict.fromkeys(found))


def linked_folders(roots) -> list[tuple[Path, Path]]:
    """The symbolic links to folders elsewhere among the subject folders of the input datasets
    (``sub-01`` linked to a store, as datalad-like layouts have), with the folders they point
    to: inputs too. Other linked folders (``code``, ``sourcedata``) are not read, and
    BIDS_DIR's ``derivatives`` is left to :func:`input_datasets`."""
    linked = []
    for root in roots:
        try:
            entries = sorted(root.glob("sub-*"))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_symlink() and entry.is_dir():
                    linked.append((entry, entry.resolve()))
            except (OSError, RuntimeError):  # a loop of links: nothing to write into
                continue
    return [(link, target) for link, target in linked if not any(target == root for root in roots)]


def check_locations(bids_dir, output_dir, work_dir=None, derivatives=(), database_dir=None, subjects=None) -> None:
    """Refuse an OUTPUT_DIR, ``--work-dir`` or ``--bids-database-dir`` in an input dataset
    (SPEC §4), and an OUTPUT_DIR that holds another dataset.

    Each may be a folder under ``BIDS_DIR/derivatives/`` that is not itself an input
    (a new folder, or an earlier output of this app); OUTPUT_DIR also where ``derivatives/``
    is itself the derivatives dataset (beside its ``sub-*``: the index reads no other
    top-level folder); nothing else inside BIDS_DIR or inside any derivatives dataset that is
    read. OUTPUT_DIR is a new or empty folder or an
    earlier output of this app: a folder with another ``dataset_description.json``, or with
    ``sub-*`` entries and none, is another dataset, whose files a run would replace.

    Parameters
    ----------
    bids_dir, output_dir : Path
    work_dir : Path or None
    derivatives : sequence of Path
        The derivatives datasets given with ``-d``.
    database_dir : Path or None
        ``--bids-database-dir``.
    subjects : iterable of str or None
        The subjects whose folders of OUTPUT_DIR a run writes in (None: every one), checked
        for symbolic links to folders (see :func:`check_no_links`).

    Raises
    ------
    UsageError
        One is inside an input, or is (or would be made under) a file, or under a folder
        that cannot be written to; OUTPUT_DIR holds an input, another dataset or a linked folder;
        ``--bids-database-dir`` is inside OUTPUT_DIR.
    """
    bids_dir = Path(bids_dir).resolve()
    inputs = input_datasets(bids_dir, derivatives)
    linked = linked_folders(inputs)
    output = None
    for option, path in (("OUTPUT_DIR", output_dir), ("--work-dir", work_dir), ("--bids-database-dir", database_dir)):
        if path is None:
            continue
        try:
            dangling = next((p for p in (Path(path), *Path(path).parents) if p.is_symlink() and not p.exists()), None)
            if dangling == Path(path):
                raise UsageError(f"{option} {path} is a symbolic link to nothing (or a loop of links); give a folder.")
            if dangling is not None:  # the folder would be made through it: mkdir fails on the link
                raise UsageError(f"{option} {path} is under {dangling}, a symbolic link to nothing (or a loop of "
                                 "links); give a folder that exists or can be made.")
            path = Path(path).resolve()
        except PermissionError:
            raise UsageError(f"{option} {path} cannot be reached: permission denied (a folder above it is closed to "
                             "this job's user); give that user access, or give another folder.") from None
        except (RuntimeError, OSError):  # a loop of links: Python's resolve() gives up
            raise UsageError(f"{option} {path} is a loop of symbolic links; give a folder.") from None
        for link, target in linked:
            if path == target or target in path.parents:
                raise UsageError(
                    f"{option} {path} is inside {target}, which the input's symbolic link {link} points to and which "
                    "is never written to; use a folder outside it."
                )
        for root in inputs:
            if path != root and root not in path.parents:
                continue
            if root == bids_dir and (bids_dir / "derivatives") in path.parents:
                continue  # a folder under derivatives/ that no input dataset holds
            if (option == "OUTPUT_DIR" and root == bids_dir / "derivatives" and path != root
                    and not path.relative_to(root).parts[0].startswith("sub-")):
                continue  # derivatives/ itself the input (nilearn's layout): OUTPUT_DIR beside its sub-*, never indexed
                # (a scratch or index folder there, written in every job, would make a saved index look out of date)
            where = "is" if path == root else "is inside"
            kind = "BIDS_DIR" if root == bids_dir else f"the input dataset {root}"
            elsewhere = "" if root == bids_dir / "derivatives" else f" or a new folder under {bids_dir / 'derivatives'}"
            raise UsageError(
                f"{option} {path} {where} {kind}, which is never written to; use a folder outside it{elsewhere}."
            )
        # after the inputs: its trial folder is made in no input; a saved index may be read-only (shared)
        _check_folder(option, path, read_only=option == "--bids-database-dir" and path.is_dir())
        if option == "OUTPUT_DIR":
            _check_not_another_dataset(path)
            held = next((root for root in inputs if path in root.parents), None)
            if held is not None:
                raise UsageError(f"OUTPUT_DIR {path} holds the input dataset {held}, which is never written to (the app "
                                 "writes and replaces folders of OUTPUT_DIR); use an OUTPUT_DIR outside it.")
            check_no_links(path, subjects)
            output = path
        elif path == output or output in path.parents:
            raise UsageError(f"{option} {path} is inside OUTPUT_DIR {output}, among the outputs (whose reruns replace "
                             "files and whose BIDS validation it would fail); use a folder outside it.")


#: The folders of OUTPUT_DIR the app writes in and removes from, besides the subjects'.
WRITTEN_FOLDERS = ("group", "models", "logs", ".bids-fixedfx-tmp")


def check_no_links(output_dir: Path, subjects=None) -> None:
    """Refuse a symbolic link to a folder where the app writes and removes files (a subject's
    folder, ``group``, ``models`` ...): a rerun would write through it, and remove the files
    of earlier outputs it finds there, in whatever folder it points to (an input's, say).

    Parameters
    ----------
    output_dir : Path
    subjects : iterable of str or None
        The subjects whose folders are walked (None: every ``sub-*`` folder); every
        ``sub-*`` entry is checked itself.

    Raises
    ------
    UsageError
        Naming the link.
    """
    if not output_dir.is_dir():
        return
    subjects = None if subjects is None else set(subjects)
    with os.scandir(output_dir) as entries:
        tops = [Path(e.path) for e in entries if e.name in WRITTEN_FOLDERS or e.name.startswith("sub-")]
    for top in tops:
        linked = top if top.is_symlink() else None
        walked = top.name in WRITTEN_FOLDERS or subjects is None or top.name[4:] in subjects
        if linked is None and walked and top.is_dir():
            linked = next((Path(root) / name for root, folders, _ in os.walk(top) for name in folders
                           if (Path(root) / name).is_symlink()), None)
        if linked is not None:
            raise UsageError(
                f"{linked} in OUTPUT_DIR is a symbolic link, which a run would write and remove files through "
                f"(in {os.path.realpath(linked)}); replace it with a folder of its own, or give another OUTPUT_DIR."
            )


def _check_not_another_dataset(path: Path) -> None:
    """OUTPUT_DIR is new, holds no dataset, or is an output of this app; never a file
    system's root, nor the home folder (or a folder above it) holding the user's files, among
    which the dataset's files would sit (an empty one, as a container may set it, is allowed)."""
    home = _home()
    shared = ("a file system root" if path == Path(path.anchor) else "the home folder" if path == home
              else "a folder that holds the home folder" if home is not None and path in home.parents else None)
    if shared and (path == Path(path.anchor) or (path.is_dir() and any(path.iterdir()) and not is_own_output(path))):
        raise UsageError(f"OUTPUT_DIR {path} is {shared}; give a folder of its own for the outputs, "
                         "e.g. a new folder under it.")
    if not path.is_dir() or is_own_output(path):
        return
    if (path / "dataset_description.json").exists():
        raise UsageError(
            f"OUTPUT_DIR {path} holds another dataset (its dataset_description.json was not written by "
            "bids-fixedfx), whose files a run would replace; give a new folder or an earlier output of bids-fixedfx."
        )
    if any(entry.name.startswith("sub-") for entry in os.scandir(path)):
        raise UsageError(
            f"OUTPUT_DIR {path} holds sub-* entries but no dataset_description.json of bids-fixedfx, so it is "
            "not an earlier output of this app; give a new folder or an earlier output of bids-fixedfx."
        )
    owned = next((name for name in OWNED if os.path.lexists(path / name)), None)
    if owned is not None:  # the app writes its dataset_description.json before any of these
        raise UsageError(
            f"OUTPUT_DIR {path} holds {owned} but no dataset_description.json of bids-fixedfx, so it is not an "
            "earlier output of this app, and a run would replace that file; give a new folder or an earlier "
            "output of bids-fixedfx."
        )


#: What the app writes at the top of OUTPUT_DIR besides ``sub-*`` (after its
#: ``dataset_description.json``): a user's own file of one of these names would be replaced.
OWNED = ("README.md", ".bidsignore", "group", "group.html", "models", "logs/CITATION.md", "logs/CITATION.bib",
         "logs/CITATION.html")


def _home() -> Path | None:
    """The user's home folder, if there is one (a container's account-less user may have none)."""
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError, OSError):
        return None


def give_a_home(work_dir=None) -> Path | None:
    """Set ``HOME`` to the scratch space (``--work-dir``, else the system's temporary folder)
    when the user has no home folder (an account-less user of a container or an HPC job, with
    ``HOME`` unset): pybids' import and the validator's cache (Deno's) look for one, and
    stopped the job (exit 1, or a valid dataset said to fail validation).

    Returns
    -------
    home : Path or None
        The folder set, or None when the user has a home folder (nothing is changed).
    """
    if _home() is not None:
        return None
    home = Path(work_dir) if work_dir is not None else Path(tempfile.gettempdir())
    os.environ["HOME"] = str(home)
    return home


def nearest_existing(path: Path) -> Path:
    """``path`` if it exists, else the nearest folder above it that does (where it would be made)."""
    return next(p for p in (path, *path.parents) if p.exists())


def can_write_in(folder: Path) -> bool:
    """Whether this user may make and remove files in ``folder`` (its permissions, not a trial)."""
    return os.access(folder, os.W_OK | os.X_OK)


def _check_folder(option: str, path: Path, read_only: bool = False) -> None:
    """``path`` is a folder the app can write in, or can be made as one: a folder is made in
    it (or in the nearest folder above it that exists) and removed again (``read_only``: a
    folder is enough)."""
    existing = nearest_existing(path)
    if not existing.is_dir():
        where = "is a file" if existing == path else f"would be made under the file {existing}"
        raise UsageError(f"{option} {path} {where}; give a folder.")
    if read_only:
        return
    if not can_write_in(existing):
        raise UsageError(f"{option} {path} cannot be written: {existing} is not writable.")
    try:  # permissions are not all: root-squashed NFS, ACLs, /sys and some mounts refuse anyway
        os.rmdir(tempfile.mkdtemp(prefix=".bids-fixedfx-check-", dir=existing))
    except OSError as error:
        raise UsageError(f"{option} {path} cannot be written: a folder cannot be made in {existing} "
                         f"({error.strerror or error}).") from None


@contextmanager
def scratch(work_dir):
    """``--work-dir`` as the scratch space of the app and of the programs it starts: Python's
    temporary files and folders (the validator's folder of links, matplotlib's cache when the
    home folder is read-only) and ``TMPDIR`` go there while the level runs (checked by
    :func:`check_locations` first; made if missing). Without one, the system's temporary folder.

    Parameters
    ----------
    work_dir : Path or None
    """
    if work_dir is None:
        yield
        return
    work_dir = Path(work_dir)
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--work-dir {work_dir} cannot be made: {error.strerror or error}.") from None
    before = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(work_dir)
    os.environ["TMPDIR"] = str(work_dir)
    try:
        yield
    finally:
        tempfile.tempdir = before[0]
        if before[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before[1]


def creation_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: the permissions a file (0o666) or folder (0o777)
    made by ``open`` or ``mkdir`` gets, for those made another way (a temporary file, then
    renamed; ``tempfile.mkdtemp``'s 0o700), so that a lab's shared folder (umask 002) gives
    its group what it gives it of every other file."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:  # read, not set: no window for other threads
            for line in status:
                if line.startswith("Umask:"):
                    return mode & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mode & ~mask
