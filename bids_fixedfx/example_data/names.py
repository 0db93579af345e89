"""The one place that knows the file names of the example dataset.

Raw files follow BIDS, derivatives follow fMRIPrep 23.2. Every path is relative to a dataset
root (the raw root, or :data:`FMRIPREP` below it) and is built from entities by
:func:`entity_name`; :func:`bids_uri` turns a raw path into the ``bids:raw:`` URI the
derivatives' ``Sources`` use.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .study import TASK, RunKey

FMRIPREP = PurePosixPath("derivatives/fmriprep")
"""The fMRIPrep-shaped derivatives, relative to the raw root."""


def entity_name(entities, suffix: str, extension: str = "") -> str:
    """A BIDS file name from ``(key, value)`` pairs in order; None values are left out.

    Parameters
    ----------
    entities : iterable of (str, object)
        For example ``[("sub", "01"), ("ses", None), ("task", "checkerboard")]``.
    suffix : str
        ``bold``, ``events``, ``mask`` ...
    extension : str
        ``.nii.gz``, ``.json``, ``.tsv`` or empty.

    Returns
    -------
    str
    """
    parts = [f"{key}-{value}" for key, value in entities if value is not None]
    return "_".join(parts + [suffix]) + extension


def subject_id(subject: str) -> str:
    """``sub-<label>``: the folder and the ``participant_id`` of a subject."""
    return f"sub-{subject}"


def _folder(subject, session, datatype) -> PurePosixPath:
    folder = PurePosixPath(subject_id(subject))
    if session is not None:
        folder /= f"ses-{session}"
    return folder / datatype


def _run_entities(key: RunKey, space=None, desc=None):
    return [
        ("sub", key.subject),
        ("ses", key.session),
        ("task", key.task),
        ("run", f"{key.run:02d}"),
        ("space", space),
        ("desc", desc),
    ]


def run_file(
    key: RunKey, suffix: str, extension: str, *, space=None, desc=None
) -> PurePosixPath:
    """A file of a run, raw (``bold``, ``events``) or fMRIPrep-shaped.

    Parameters
    ----------
    key : RunKey
    suffix : str
        ``bold``, ``events``, ``mask``, ``boldref``, ``timeseries``.
    extension : str
    space, desc : str, optional
        The ``space-`` and ``desc-`` entities of derivatives.

    Returns
    -------
    pathlib.PurePosixPath
        Relative to the dataset root, e.g.
        ``sub-01/ses-1/func/sub-01_ses-1_task-checkerboard_run-01_bold.nii.gz``.
    """
    name = entity_name(_run_entities(key, space, desc), suffix, extension)
    return _folder(key.subject, key.session, "func") / name


def run_prefix(key: RunKey) -> str:
    """What every file name of a run begins with: ``sub-01_ses-1_task-checkerboard_run-01``."""
    return "_".join(f"{name}-{value}" for name, value in _run_entities(key) if value is not None)


def surface_file(key: RunKey, extension: str, *, space: str, hemi=None, den=None) -> PurePosixPath:
    """A run's surface or CIFTI BOLD series as fMRIPrep names it
    (``..._hemi-L_space-fsaverage5_bold.func.gii``, ``..._space-fsLR_den-91k_bold.dtseries.nii``)."""
    entities = [e for e in _run_entities(key) if e[0] not in ("space", "desc")]
    entities += [("hemi", hemi), ("space", space), ("den", den)]
    return _folder(key.subject, key.session, "func") / entity_name(entities, "bold", extension)


def anat_t1w(subject: str, n_sessions: int) -> PurePosixPath:
    """The subject's raw T1w image, in the first session when there are sessions."""
    session = 1 if n_sessions > 1 else None
    name = entity_name([("sub", subject), ("ses", session)], "T1w", ".nii.gz")
    return _folder(subject, session, "anat") / name


def task_sidecar(suffix: str, task: str = TASK) -> str:
    """The top-level sidecar of the task, ``task-checkerboard_<suffix>.json``."""
    return entity_name([("task", task)], suffix, ".json")


def bids_uri(path: PurePosixPath) -> str:
    """The ``bids:raw:`` URI of a raw file (``raw`` is declared in ``DatasetLinks``)."""
    return f"bids:raw:{path.as_posix()}"
