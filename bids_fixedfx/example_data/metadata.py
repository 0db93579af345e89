"""What the dataset-level and sidecar files say: pure functions returning dicts and text.

Nominal scanner and sequence metadata (the data are simulated, not acquired), the dataset
descriptions, READMEs, ``participants.tsv`` and the sidecars of the raw and derivative files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .names import subject_id
from .study import CONDITIONS, TASK

BIDS_VERSION = "1.9.0"
FMRIPREP_VERSION = "23.2.0"
AUTHORS = ["Example Author One", "Example Author Two"]
MNI_REFERENCE = (
    "https://templateflow.s3.amazonaws.com/tpl-MNI152NLin2009cAsym/"
    "tpl-MNI152NLin2009cAsym_res-01_T1w.nii.gz"
)
GROUPS = ("patient", "control")
"""Nominal groups of ``participants.tsv``, assigned in turn; the effects do not differ."""

_SCANNER = {
    "Manufacturer": "Synthetic",
    "ManufacturersModelName": "bids-fixedfx simulator",
    "DeviceSerialNumber": "0000",
    "StationName": "simulator",
    "SoftwareVersions": "n/a",
    "MagneticFieldStrength": 3,
    "ReceiveCoilName": "simulated 32-channel head coil",
    "ReceiveCoilActiveElements": "all",
    "MatrixCoilMode": "n/a",
    "CoilCombinationMethod": "rSOS",
    "NonlinearGradientCorrection": False,
    "InstitutionName": "n/a (synthetic data)",
    "InstitutionAddress": "n/a",
    "InstitutionalDepartmentName": "n/a",
}

_BOLD_SEQUENCE = {
    "PulseSequenceType": "Gradient Echo EPI",
    "ScanningSequence": "EP",
    "SequenceVariant": "SK",
    "SequenceName": "epfid2d1",
    "PulseSequenceDetails": "nominal 2D GE-EPI (simulated)",
    "MRAcquisitionType": "2D",
    "PhaseEncodingDirection": "j-",
    "TotalReadoutTime": 0.03,
    "EchoTime": 0.03,
    "DwellTime": 0.0005,
    "FlipAngle": 75,
}

_T1W_SEQUENCE = {
    "PulseSequenceType": "MPRAGE",
    "ScanningSequence": ["GR", "IR"],
    "SequenceVariant": ["SK", "SP", "MP"],
    "SequenceName": "tfl3d1",
    "PulseSequenceDetails": "nominal MPRAGE (simulated)",
    "MRAcquisitionType": "3D",
    "EchoTime": 0.0029,
    "InversionTime": 0.9,
    "DwellTime": 0.0000075,
    "FlipAngle": 9,
}


@dataclass(frozen=True)
class Participant:
    """One row of ``participants.tsv``."""

    subject: str
    age: int
    sex: str
    group: str


def make_participants(subjects, rng: np.random.Generator) -> tuple[Participant, ...]:
    """The participants: ages and sexes drawn from ``rng``, groups in turn.

    Parameters
    ----------
    subjects : sequence of str
        Subject labels.
    rng : numpy.random.Generator
        The dataset's stream: ages (19 to 44 years), then sexes.

    Returns
    -------
    tuple of Participant
        Groups alternate ``patient``, ``control``, ... so that both occur from two subjects.
    """
    ages = rng.integers(19, 45, size=len(subjects))
    sexes = rng.choice(["F", "M"], size=len(subjects))
    return tuple(
        Participant(subject, int(age), str(sex), GROUPS[i % len(GROUPS)])
        for i, (subject, age, sex) in enumerate(zip(subjects, ages, sexes))
    )


def participants_tsv(participants) -> str:
    """The text of ``participants.tsv``: ``participant_id``, ``age``, ``sex``, ``group``."""
    lines = ["participant_id\tage\tsex\tgroup"]
    lines += [
        f"{subject_id(p.subject)}\t{p.age}\t{p.sex}\t{p.group}" for p in participants
    ]
    return "\n".join(lines) + "\n"


def participants_json() -> dict:
    """The sidecar of ``participants.tsv``: description, levels and units of each column."""
    return {
        "age": {"Description": "Age of the participant", "Units": "year"},
        "sex": {
            "Description": "Sex of the participant",
            "Levels": {"F": "female", "M": "male"},
        },
        "group": {
            "Description": (
                "Group of the participant (nominal: assigned in turn; the simulated "
                "effects are the same in both groups)"
            ),
            "Levels": {"patient": "patient", "control": "healthy control"},
        },
    }


def raw_description() -> dict:
    """``dataset_description.json`` of the raw dataset."""
    return {
        "Name": "bids-fixedfx example dataset",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": AUTHORS,
        "GeneratedBy": [
            {
                "Name": "bids-fixedfx example_data",
                "Description": "Synthetic data with known effects",
            }
        ],
    }


def raw_readme(task: str = TASK, conditions=CONDITIONS) -> str:
    """``README`` of the raw dataset."""
    return (
        "bids-fixedfx example dataset\n"
        "============================\n\n"
        "Synthetic task-fMRI data written by bids_fixedfx.example_data.\n"
        f"Task '{task}' alternates blocks of the conditions "
        f"{', '.join(repr(c) for c in conditions)} in random order; each\n"
        "condition raises the BOLD signal in its own box of voxels by a known\n"
        "amount. derivatives/fmriprep mimics fMRIPrep outputs. Not real data.\n"
    )


def slice_timing(n_slices: int, tr: float) -> list[float]:
    """Interleaved ascending slice times (s) of ``n_slices`` slices, rounded to 0.1 ms."""
    order = list(range(0, n_slices, 2)) + list(range(1, n_slices, 2))
    times = np.empty(n_slices)
    times[order] = np.arange(n_slices) * tr / n_slices
    return [round(float(t), 4) for t in times]


def task_bold_json(tr: float, n_slices: int, task: str = TASK) -> dict:
    """The top-level BOLD sidecar: the only place of the raw ``RepetitionTime``."""
    return {
        "TaskName": task,
        "RepetitionTime": tr,
        "SliceTiming": slice_timing(n_slices, tr),
        "TaskDescription": "Blocks of auditory or visual stimulation.",
        "Instructions": "Keep your eyes open and stay still.",
        **_SCANNER,
        **_BOLD_SEQUENCE,
    }


def t1w_json() -> dict:
    """The top-level T1w sidecar."""
    return {**_SCANNER, **_T1W_SEQUENCE}


def task_events_json(conditions=CONDITIONS) -> dict:
    """The top-level events sidecar: columns and ``trial_type`` levels."""
    described = {"audio": "auditory stimulation", "visual": "flickering checkerboard"}
    return {
        "StimulusPresentation": {
            "SoftwareName": "none: simulated stimulation",
        },
        "onset": {"Description": "Block onset", "Units": "s"},
        "duration": {"Description": "Block duration", "Units": "s"},
        "trial_type": {
            "Description": "Stimulation of the block",
            "Levels": {c: described.get(c, f"condition {c}") for c in conditions},
        },
    }


def fmriprep_description() -> dict:
    """``dataset_description.json`` of ``derivatives/fmriprep``."""
    return {
        "Name": "fMRIPrep - fMRI PREProcessing workflow",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": FMRIPREP_VERSION}],
        "SourceDatasets": [{"URL": "bids:raw:"}],
        "DatasetLinks": {"raw": "../.."},
        "License": "CC0",
        "Authors": AUTHORS,
    }


FMRIPREP_README = (
    "Synthetic fMRIPrep-shaped derivatives of the bids-fixedfx example\n"
    "dataset, written by bids_fixedfx.example_data (not by fMRIPrep).\n"
    "Files follow fMRIPrep 23.2 naming; .bidsignore lists the outputs\n"
    "(boldref, confounds) that the BIDS specification does not define yet.\n"
)
FMRIPREP_BIDSIGNORE = "*_boldref.nii.gz\n*_desc-confounds_timeseries.*\n"


def spatial_reference(space: str, t1w_uri: str) -> dict:
    """``SpatialReference`` of a space: the subject's T1w, the MNI template, or none."""
    if space == "T1w":
        return {"SpatialReference": t1w_uri}
    if space == "MNI152NLin2009cAsym":
        return {"SpatialReference": MNI_REFERENCE}
    return {}


def preproc_bold_json(tr: float, source: str, spatial: dict, task: str = TASK) -> dict:
    """Sidecar of a preprocessed BOLD series."""
    return {
        "Description": "Preprocessed BOLD series (simulated).",
        "RepetitionTime": tr,
        "SkullStripped": True,
        "SliceTimingCorrected": False,
        "TaskName": task,
        "Sources": [source],
        **spatial,
    }


def brain_mask_json(source: str, spatial: dict) -> dict:
    """Sidecar of a brain mask."""
    return {
        "Description": "Brain mask of the BOLD series.",
        "Type": "Brain",
        "Sources": [source],
        **spatial,
    }
