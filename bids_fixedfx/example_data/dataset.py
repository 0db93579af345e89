"""Writing a whole example dataset: :func:`make_example_dataset` coordinates the other modules.

It checks the parameters (:class:`~.study.Study`), lays out the grids (:mod:`.grids`),
draws each subject's signal gain, simulates each run (:mod:`.simulate`, :mod:`.confounds`)
from its own random stream and hands the records to :mod:`.writer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from . import grids, names, surfaces, writer
from .confounds import make_confounds
from .metadata import make_participants
from .simulate import Scene, simulate_run
from .study import CONDITIONS, EFFECT_SIZE, TASK, Study

#: The spaces of the surface and CIFTI series (``surfaces=True``).
SURFACE_SPACES = (surfaces.GIFTI_SPACE, surfaces.CIFTI_SPACE)


@dataclass(frozen=True)
class ExampleDataset:
    """Description of a dataset written by :func:`make_example_dataset`.

    Attributes
    ----------
    path : pathlib.Path
        Root of the raw BIDS dataset.
    subjects : tuple of str
        Subject labels without the ``sub-`` prefix, e.g. ``("01", "02")``.
    tasks : tuple of str
        Task labels, e.g. ``("checkerboard",)``.
    conditions : tuple of str
        ``trial_type`` values used in the events files.
    spaces : tuple of str
        Output spaces of the derivatives.
    active : Mapping of str to tuple of slice
        For each condition, the voxel box (indices into the template/MNI
        grid) in which that condition has a positive effect.  Boxes do not
        overlap.  In the ``T1w`` grid the same box is shifted by the padding
        (2, 2, 1) voxels; see :func:`make_example_dataset`.
    effect_size : float
        Percent signal change of the effect in the active box, as the
        amplitude of nilearn's Glover-convolved regressor of the condition.
    """

    path: Path
    subjects: tuple[str, ...]
    tasks: tuple[str, ...]
    conditions: tuple[str, ...]
    spaces: tuple[str, ...]
    active: Mapping[str, tuple[slice, slice, slice]]
    effect_size: float


def make_example_dataset(
    path,
    *,
    n_subjects=3,
    n_sessions=2,
    n_runs=2,
    shape=(24, 28, 20),
    n_volumes=90,
    tr=2.0,
    spaces=("MNI152NLin2009cAsym", "T1w"),
    seed=0,
    derivatives=True,
    non_steady_state=0,
    surfaces=False,
    task=TASK,
    conditions=CONDITIONS,
) -> ExampleDataset:
    """Write a small BIDS task-fMRI dataset with fMRIPrep-shaped derivatives.

    The raw dataset holds, for every subject, session and run, a BOLD series
    of the task ``checkerboard`` and its events (blocks of the conditions
    ``audio`` and ``visual`` in random order), plus one small T1w image per
    subject.  The repetition time lives only in the top-level
    ``task-checkerboard_bold.json`` (BIDS inheritance).  ``participants.tsv``
    has the columns ``age`` (years, drawn from the seed), ``sex`` and
    ``group`` (``patient``, ``control``, ``patient``, ... in subject order;
    nominal: the effects are the same in both groups), described in
    ``participants.json``.  With ``derivatives=True``,
    ``derivatives/fmriprep`` holds per run and space a preprocessed BOLD
    series, a brain mask and a BOLD reference, and per run a confounds table.

    The signal inside the brain mask is::

        B(x) * (1 + drift(t) + motion(t, x)
                + effect_size / 100 * sum_c box_c(x) * X_c(t)
                + noise(t, x))

    where ``B`` is a smooth baseline between about 800 and 1200, ``X_c`` is
    the regressor of condition ``c`` computed by nilearn's
    ``compute_regressor`` with the ``glover`` HRF at frame times
    ``arange(n_volumes) * tr`` (so a GLM with that design and percent signal
    scaling recovers ``effect_size`` in the box of ``c``), ``drift`` is a slow
    drift of about 1 %, ``motion`` is a small contribution of the motion
    confounds, and ``noise`` is AR(1) noise (rho 0.3) with a standard
    deviation of 2 % of the baseline, drawn anew for every run.  Outside the
    mask the data are small non-negative noise, as in skull-stripped data.

    Grids: the template spaces (every space but ``T1w``) use ``shape`` with
    3 mm isotropic voxels.  The native grid, used by the raw BOLD series, the
    raw T1w image and the ``T1w`` space, is the template grid padded by
    (2, 2, 1) voxels on each side, with the same world coordinates; the
    subjects' anatomy is taken to coincide with the template.  Hence the
    active box of a condition in the ``T1w`` grid is ``ExampleDataset.active``
    shifted by (2, 2, 1) voxels, and the T1w-space data are the same data as
    the template-space data, padded.

    Layout: with ``n_sessions == 1`` there is no session level; otherwise the
    sessions are ``ses-1``, ``ses-2``, ...  Runs are ``run-01``, ``run-02``,
    ...  When ``n_subjects >= 3`` the last subject has a single run
    (``ses-1``, ``run-01``).  The brain mask is an ellipsoid whose superior
    face is one voxel lower in every other run, so a subject's runs have
    different masks.  Existing files at the same names are overwritten; each
    file is written whole or not at all.

    Parameters
    ----------
    path : str or os.PathLike
        Root directory of the dataset to write; created if needed.
    n_subjects : int, default=3
        Number of subjects.
    n_sessions : int, default=2
        Number of sessions per subject.
    n_runs : int, default=2
        Number of runs per session.
    shape : tuple of 3 int, default=(24, 28, 20)
        Shape of the template (MNI) grid; each side at least 12 voxels.
    n_volumes : int, default=90
        Volumes per run.
    tr : float, default=2.0
        Repetition time in seconds.
    spaces : sequence of str, default=("MNI152NLin2009cAsym", "T1w")
        Output spaces of the derivatives.
    seed : int, default=0
        Seed of the random generator; the same seed gives identical data.
    derivatives : bool, default=True
        Whether to write ``derivatives/fmriprep``.
    non_steady_state : int, default=0
        Volumes at the start of every run acquired before the steady state (dummy scans): their
        in-mask signal is brighter (by 50 %, 25 %, ...), and the confounds flag them with fMRIPrep's
        ``non_steady_state_outlier00``, ``01``, ... columns. 0 leaves the data as without it.
    surfaces : bool, default=False
        Whether the derivatives also hold each run's fsaverage5 GIFTI pair and a reduced
        fsLR CIFTI dense series, with known effects (:mod:`.surfaces`); the volume files
        are the same bytes either way.
    task : str, default="checkerboard"
        The task label, in every file name and ``TaskName``.
    conditions : sequence of str, default=("audio", "visual")
        The ``trial_type`` values of the events; the first two have an effect in the boxes
        of ``audio`` and ``visual``, any others none (``ExampleDataset.active`` lacks them).

    Returns
    -------
    ExampleDataset
        Where the dataset is and which effects it holds.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """
    study = Study(
        n_subjects=n_subjects,
        n_sessions=n_sessions,
        n_runs=n_runs,
        shape=shape,
        n_volumes=n_volumes,
        tr=tr,
        spaces=spaces,
        seed=seed,
        derivatives=derivatives,
        surfaces=surfaces,
        task=task,
        conditions=conditions,
    )
    if not 0 <= int(non_steady_state) < study.n_volumes:
        raise ValueError(f"non_steady_state must be 0 or more and fewer than the {study.n_volumes} volumes")
    root = Path(path)
    _check_earlier_dataset(root, study)
    anatomy = grids.make_anatomy(study.shape, study.conditions)

    root.mkdir(parents=True, exist_ok=True)
    participants = make_participants(study.subjects, study.dataset_rng())
    native_shape = anatomy.grids.native_shape
    writer.write_raw_metadata(root, participants, study.tr, native_shape[2], study.task, study.conditions)
    if study.derivatives:
        writer.write_fmriprep_metadata(root)
    for i_sub in range(study.n_subjects):
        _write_subject(root, study, anatomy, i_sub, int(non_steady_state))

    return ExampleDataset(
        path=root,
        subjects=study.subjects,
        tasks=(study.task,),
        conditions=study.conditions,
        spaces=study.spaces + (SURFACE_SPACES if study.surfaces and study.derivatives else ()),
        active=MappingProxyType(dict(anatomy.active)),
        effect_size=EFFECT_SIZE,
    )


def _check_earlier_dataset(root: Path, study: Study) -> None:
    """Refuse a file, and a folder holding what ``study`` does not have: subjects, or files of
    runs (an earlier dataset's with more subjects, runs or sessions, or another task), which,
    written over, the dataset would keep beside its own (subjects its participants.tsv does
    not list, runs it does not have).

    Raises
    ------
    ValueError
    """
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} is a file; give a folder (new, or a dataset this command wrote).")
    wanted = {names.subject_id(label) for label in study.subjects}
    others = sorted(p.name for p in root.glob("sub-*") if p.name not in wanted)
    if others:
        raise ValueError(f"{root} holds {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}, which a dataset "
                         f"of {study.n_subjects} subject(s) does not; give a new folder.")
    prefixes = {names.run_prefix(run) for i_sub in range(study.n_subjects) for run in study.runs_of(i_sub)}
    stale = []
    for folder in (root, root / names.FMRIPREP):
        for path in sorted(folder.glob("sub-*/**/*_run-*")):
            prefix = "_".join(part for part in path.name.split("_") if part.split("-")[0] in ("sub", "ses", "task", "run"))
            if path.is_file() and prefix not in prefixes:
                stale.append(path.name)
    if stale:
        raise ValueError(f"{root} holds files of runs that this dataset (its subjects, sessions, runs and task) "
                         f"does not have ({', '.join(stale[:3])}{' ...' if len(stale) > 3 else ''}); give a new folder")


def _write_subject(root, study: Study, anatomy: grids.Anatomy, i_sub: int, non_steady_state: int = 0) -> None:
    """Simulate and write a subject's T1w image and runs, from the subject's streams."""
    subject, grid = study.subjects[i_sub], anatomy.grids
    sub_rng = study.subject_rng(i_sub)
    gain = np.float32(sub_rng.uniform(0.97, 1.03))
    t1w = names.anat_t1w(subject, study.n_sessions)
    image = grids.t1w_image(grid, grids.to_native(anatomy.brain), sub_rng)
    writer.write_t1w(root, t1w, image, grid)
    baseline = anatomy.baseline * gain
    boxes = anatomy.native_boxes
    for i_run, key in enumerate(study.runs_of(i_sub)):
        rng = study.run_rng(i_sub, key)
        template_mask = grids.run_mask(anatomy.brain, i_run % 2)
        native_mask = grids.to_native(template_mask)
        scene = Scene(mask=native_mask, baseline=baseline, boxes=boxes)
        simulated = simulate_run(scene, study.n_volumes, study.tr, rng, study.conditions)
        for t in range(non_steady_state):  # not yet at steady state: brighter
            simulated.data[..., t][native_mask] *= np.float32(1 + 0.5 ** (t + 1))
        confounds = None
        if study.derivatives:
            level = float(baseline.mean())
            confounds = make_confounds(
                simulated.motion, simulated.global_signal, level, study.tr, rng,
                non_steady_state=non_steady_state,
            )
        run = writer.RunOutput(
            key=key,
            simulated=simulated,
            template_mask=template_mask,
            native_mask=native_mask,
            confounds=confounds,
            t1w=t1w,
        )
        writer.write_run(root, run, grid, study.tr, study.spaces)
        if study.surfaces and study.derivatives:
            surfaces.write_surfaces(root, key, simulated.events, study.n_volumes, study.tr,
                                    study.surface_rng(i_sub, key))
