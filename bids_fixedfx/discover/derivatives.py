"""The input folders: BIDS_DIR checked, derivative datasets under it found (or skipped)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import InputFileError, NoDataError, UsageError, check_regular_file
from ..locations import is_own_output
from ..notes import warn_once
from ..sidecars import read_json

logger = logging.getLogger(__name__)


def find_derivatives(bids_dir: Path, output_dir: Path) -> tuple[Path, ...]:
    """List the derivative datasets under ``BIDS_DIR/derivatives`` (not our own output).

    Parameters
    ----------
    bids_dir, output_dir : Path

    Returns
    -------
    paths : tuple of Path
        ``BIDS_DIR/derivatives`` itself if it has a ``dataset_description.json`` or
        holds ``sub-*`` folders directly (:func:`holds_subjects`), else every folder
        under it that has one.
    """
    root = bids_dir / "derivatives"
    if not root.is_dir():
        return ()
    if (is_described(root) or holds_subjects(root)) and not _same_folder(root, output_dir):
        return (root,)
    return tuple(
        path
        for path in sorted(root.iterdir())
        if (path / "dataset_description.json").is_file() and not _same_folder(path, output_dir)
        and not is_own_output(path)  # an earlier OUTPUT_DIR holds no input of a run
        and not _leads_back(path, bids_dir)
        and not _unreadable_without_func(path)
    )


def _unreadable_without_func(path: Path) -> bool:
    """Whether a derivatives folder found under ``BIDS_DIR/derivatives`` has a description
    that cannot be read and no ``func`` data: another pipeline's (an anatomy's, of 0 bytes in
    the BIDS examples), which stopped the job though it holds nothing to model. Said once.
    With ``func`` data it is used, and its description refused by name (check_descriptions)."""
    try:
        read_json(path / "dataset_description.json")
    except Exception as error:  # noqa: BLE001 - any reason it cannot be read
        if holds_func(path):
            return False
        warn_once(f"{path} is left out of the derivatives: it holds no func data, and its dataset_description.json "
                  f"cannot be read ({' '.join(str(error).split())[:200]}).")
        return True
    return False


def _leads_back(path: Path, bids_dir: Path) -> bool:
    """Whether a folder under ``BIDS_DIR/derivatives`` is a symbolic link to BIDS_DIR or a folder
    above it: the raw data, not derivatives of it (:func:`looping_derivatives` says so)."""
    try:
        target, raw = path.resolve(), bids_dir.resolve()
    except (OSError, RuntimeError):
        return False
    return target == raw or target in raw.parents


def looping_derivatives(bids_dir: Path) -> tuple[Path, ...]:
    """The folders under ``BIDS_DIR/derivatives`` that :func:`find_derivatives` passes over as
    symbolic links back to BIDS_DIR or a folder above it (which the user should be told)."""
    root = bids_dir / "derivatives"
    if not root.is_dir():
        return ()
    return tuple(path for path in sorted(root.iterdir()) if path.is_symlink() and _leads_back(path, bids_dir))


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
    if not root.is_dir() or is_described(root) or holds_subjects(root):
        return ()
    ours = [path for path in (output_dir, work_dir) if path is not None]
    return tuple(
        path
        for path in sorted(root.iterdir())
        if path.is_dir() and not path.name.startswith(".")
        and not (path / "dataset_description.json").is_file()
        and not any(_same_folder(path, other) for other in ours)
    )


def holds_func(path: Path) -> bool:
    """Whether a folder holds subjects' ``func`` folders, where BOLD derivatives would be (not
    FreeSurfer's subjects, say, which fMRIPrep writes beside its own folder)."""
    try:
        return any(path.glob("sub-*/func")) or any(path.glob("sub-*/ses-*/func"))
    except OSError:
        return False


def declared_derivative(bids_dir: Path) -> bool:
    """Whether a dataset's description gives it the DatasetType ``derivative`` (fMRIPrep's
    output, given as BIDS_DIR, say).

    Raises
    ------
    InputFileError
        The description cannot be read.
    """
    own = read_json(Path(bids_dir) / "dataset_description.json") if is_described(bids_dir) else {}
    return str(own.get("DatasetType", "raw")).lower() == "derivative"


def is_described(path: Path) -> bool:
    """Whether a folder is a dataset: it has a ``dataset_description.json``."""
    return (Path(path) / "dataset_description.json").is_file()


def holds_subjects(path: Path) -> bool:
    """Whether a folder without a ``dataset_description.json`` holds ``sub-*`` folders
    directly: preprocessed data laid out as nilearn's ``first_level_from_bids`` reads
    ``BIDS_DIR/derivatives`` (and as nilearn's own example datasets are written), read
    as a derivatives dataset with a warning."""
    path = Path(path)
    return not is_described(path) and path.is_dir() and any(
        child.name.startswith("sub-") and child.is_dir() for child in path.iterdir()
    )


def _same_folder(path, other):
    """Whether two paths are one folder, even when bound at two places in a container."""
    try:
        return other.exists() and os.path.samefile(path, other)
    except OSError:
        return False


def check_bids_dir(bids_dir: Path) -> None:
    """Refuse a BIDS_DIR that does not exist or is not a BIDS dataset.

    Parameters
    ----------
    bids_dir : Path
        The root of the input dataset.

    Raises
    ------
    UsageError
        ``bids_dir`` is not a directory.
    NoDataError
        It does not exist, or has no ``dataset_description.json`` and no ``sub-*`` folder.
    """
    if not bids_dir.exists():
        raise NoDataError(f"BIDS_DIR {bids_dir} does not exist.")
    if not bids_dir.is_dir():
        raise UsageError(f"BIDS_DIR {bids_dir} is not a directory.")
    description = bids_dir / "dataset_description.json"
    if not description.is_file():
        check_regular_file(description, f"BIDS_DIR {bids_dir}'s dataset_description.json", NoDataError)
        if not holds_subjects(bids_dir):
            raise NoDataError(
                f"BIDS_DIR {bids_dir} is not a BIDS dataset: it has no dataset_description.json and no sub-* folder."
            )
        logger.warning(
            "BIDS_DIR %s has no dataset_description.json; its sub-* folders were read as a BIDS dataset (as "
            "nilearn's first_level_from_bids reads them). Add a dataset_description.json with Name and "
            "BIDSVersion to make it one.", bids_dir,
        )


def check_given_derivatives(derivatives) -> None:
    """Refuse a ``-d`` folder that does not exist (a missing input: 66), at either level.

    Raises
    ------
    NoDataError
    """
    for path in derivatives:
        if not Path(path).exists():
            raise NoDataError(f"--derivatives {path} does not exist.")


def _holds_events(bids_dir) -> bool:
    """Whether a dataset holds events files (the search stops at the first found)."""
    patterns = ("task-*_events.tsv", "sub-*/func/*_events.tsv", "sub-*/ses-*/func/*_events.tsv")
    return any(next(Path(bids_dir).glob(pattern), None) is not None for pattern in patterns)


def check_descriptions(bids_dir: Path, derivatives) -> None:
    """Refuse a ``dataset_description.json`` that pybids cannot read: BIDS_DIR's or a
    derivatives dataset's that is not a JSON object, a derivatives dataset's that starts with
    a byte-order mark, or whose
    ``GeneratedBy`` is not a list of objects (``PipelineDescription``, its forerunner, not
    an object).

    Parameters
    ----------
    bids_dir : Path
    derivatives : iterable of Path
        The derivatives datasets (a folder without a description is left alone).

    Raises
    ------
    InputFileError
    """
    if declared_derivative(bids_dir) and _holds_events(bids_dir):
        raise InputFileError(  # pybids then reads none of its files as raw: its events were "missing"
            f"{bids_dir / 'dataset_description.json'} has the DatasetType \"derivative\", but BIDS_DIR holds raw "
            "data (events files); give it the DatasetType \"raw\", or give the raw dataset as BIDS_DIR."
        )
    for folder in derivatives:
        path = Path(folder) / "dataset_description.json"
        check_regular_file(path, str(path))  # a pipe: pybids would wait on it for ever
        if not path.is_file():
            continue
        description = read_json(path)
        with open(path, "rb") as opened:
            if opened.read(3) == b"\xef\xbb\xbf":  # pybids reads a derivatives description as plain UTF-8
                raise InputFileError(f"{path} starts with a UTF-8 byte-order mark, which pybids cannot read in a "
                                     "derivatives dataset's description; save it as UTF-8 without one.")
        generated = description.get("GeneratedBy", [])
        if not isinstance(generated, list) or not all(isinstance(entry, dict) for entry in generated):
            raise InputFileError(f"{path} has a GeneratedBy that is not a list of objects, as BIDS derivatives need.")
        if not isinstance(description.get("PipelineDescription", {}), dict):
            raise InputFileError(f"{path} has a PipelineDescription that is not an object.")
