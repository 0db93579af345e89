"""Writing the raw BIDS dataset and its fMRIPrep-shaped derivatives.

Takes the records of :mod:`.simulate` and :mod:`.confounds`; names come from :mod:`.names`,
contents from :mod:`.metadata`, and every file is written atomically (:mod:`.files`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from . import metadata, names
from .confounds import Confounds
from .files import Nifti, save_nifti, save_niftis, write_json, write_text, write_tsv
from .grids import Grids
from .simulate import SimulatedRun
from .study import CONDITIONS, TASK, RunKey


@dataclass(frozen=True, eq=False)
class RunOutput:
    """Everything written for one run.

    Attributes
    ----------
    key : RunKey
    simulated : SimulatedRun
        Events and the BOLD series on the native grid.
    template_mask : numpy.ndarray of bool
        The run's brain mask on the template grid.
    native_mask : numpy.ndarray of bool
        The same mask on the native grid.
    confounds : Confounds or None
        The run's confounds; None when the dataset has no derivatives (then only the
        raw files of the run are written).
    t1w : pathlib.PurePosixPath
        The subject's raw T1w image (the ``SpatialReference`` of space ``T1w``).
    """

    key: RunKey
    simulated: SimulatedRun
    template_mask: np.ndarray
    native_mask: np.ndarray
    confounds: Confounds | None
    t1w: PurePosixPath


def write_raw_metadata(
    root: Path, participants, tr: float, n_slices: int, task: str = TASK, conditions=CONDITIONS
) -> None:
    """Write ``dataset_description.json``, ``README``, participants and task sidecars.

    Parameters
    ----------
    root : pathlib.Path
        Root of the raw dataset.
    participants : sequence of metadata.Participant
    tr : float
        Repetition time (s), written once, in the top-level BOLD sidecar.
    n_slices : int
        Slices of the BOLD series, for ``SliceTiming``.
    task : str
    conditions : sequence of str
        The task and its conditions, named in the sidecars and the README.
    """
    write_json(root / "dataset_description.json", metadata.raw_description())
    write_text(root / "README", metadata.raw_readme(task, conditions))
    write_text(root / "participants.tsv", metadata.participants_tsv(participants))
    write_json(root / "participants.json", metadata.participants_json())
    write_json(root / names.task_sidecar("bold", task), metadata.task_bold_json(tr, n_slices, task))
    write_json(root / "T1w.json", metadata.t1w_json())
    write_json(root / names.task_sidecar("events", task), metadata.task_events_json(conditions))


def write_fmriprep_metadata(root: Path) -> None:
    """Write ``dataset_description.json``, ``README`` and ``.bidsignore`` of the derivatives."""
    deriv = root / names.FMRIPREP
    write_json(deriv / "dataset_description.json", metadata.fmriprep_description())
    write_text(deriv / "README", metadata.FMRIPREP_README)
    write_text(deriv / ".bidsignore", metadata.FMRIPREP_BIDSIGNORE)


def write_t1w(root: Path, path, image: np.ndarray, grids: Grids) -> None:
    """Write a subject's raw T1w image (native grid) at ``path`` below ``root``."""
    save_nifti(Nifti(root / path, image, grids.native_affine))


def write_run(root: Path, run: RunOutput, grids: Grids, tr: float, spaces) -> None:
    """Write the raw events and BOLD series of a run and, with confounds, its derivatives.

    Parameters
    ----------
    root : pathlib.Path
        Root of the raw dataset.
    run : RunOutput
    grids : Grids
    tr : float
        Repetition time (s), the 4th zoom of the series.
    spaces : sequence of str
        Spaces of the derivatives: ``T1w`` is the native grid, any other a template.
    """
    key, simulated = run.key, run.simulated
    write_tsv(
        root / names.run_file(key, "events", ".tsv"),
        simulated.events,
        float_format="%.1f",
    )
    images = [
        Nifti(
            root / names.run_file(key, "bold", ".nii.gz"),
            np.round(simulated.data).astype(np.int16, order="F"),
            grids.native_affine,
            tr=tr,
            code=1,
        )
    ]
    if run.confounds is not None:
        images += _write_derivatives(root, run, grids, tr, spaces)
    save_niftis(images)


def _write_derivatives(root, run, grids, tr, spaces) -> list[Nifti]:
    """Write the sidecars and confounds of a run; return its derivative images to save."""
    key, data = run.key, run.simulated.data
    deriv = root / names.FMRIPREP
    source = names.bids_uri(names.run_file(key, "bold", ".nii.gz"))
    t1w_uri = names.bids_uri(run.t1w)
    images = []
    for space in spaces:
        if space == "T1w":
            bold, mask, affine, code = data, run.native_mask, grids.native_affine, 1
        else:
            bold, mask = data[grids.crop], run.template_mask
            affine, code = grids.template_affine, 4
        spatial = metadata.spatial_reference(space, t1w_uri)

        def path(suffix, extension, desc=None):
            return deriv / names.run_file(key, suffix, extension, space=space, desc=desc)

        images.append(
            Nifti(path("bold", ".nii.gz", "preproc"), bold, affine, tr=tr, code=code)
        )
        write_json(
            path("bold", ".json", "preproc"),
            metadata.preproc_bold_json(tr, source, spatial, key.task),
        )
        images.append(
            Nifti(path("mask", ".nii.gz", "brain"), mask.astype(np.uint8), affine, code=code)
        )
        write_json(path("mask", ".json", "brain"), metadata.brain_mask_json(source, spatial))
        boldref = bold.mean(axis=-1, dtype=np.float32)
        images.append(Nifti(path("boldref", ".nii.gz"), boldref, affine, code=code))
    confounds = run.confounds
    write_tsv(
        deriv / names.run_file(key, "timeseries", ".tsv", desc="confounds"),
        confounds.table,
        float_format="%.6g",
    )
    write_json(
        deriv / names.run_file(key, "timeseries", ".json", desc="confounds"),
        confounds.sidecar,
    )
    return images
