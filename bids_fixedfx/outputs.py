"""Outputs: entity-aware file names (SPEC §3), atomic writes, sidecars and dataset files.

This is the one place that knows how the app's files are named.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from . import __version__
from .settings import STATS

CODE_URL = "https://github.com/bids-fixedfx/bids-fixedfx"
_RUN = (
    "sub-{subject}[/ses-{session}]/func/sub-{subject}[_ses-{session}]_task-{task}"
    "[_acq-{acquisition}][_ce-{ceagent}][_rec-{reconstruction}][_dir-{direction}]"
    "[_run-{run}][_echo-{echo}]"
)
_STAT = "_contrast-{contrast}_stat-{stat<%s>}_{suffix<statmap>}{extension<.nii.gz|.json>}" % "|".join(STATS)
PATTERNS = {
    "run_statmap": _RUN + "[_space-{space}]" + _STAT,
    "design": _RUN + "_{suffix<design>}{extension<.tsv|.json>}",
    "subject_statmap": "sub-{subject}/func/sub-{subject}_task-{task}[_space-{space}]" + _STAT,
    "subject_mask": "sub-{subject}/func/sub-{subject}_task-{task}[_space-{space}]"
    "_desc-{desc<fixedfx>}_{suffix<mask>}{extension<.nii.gz|.json>}",
    "group_statmap": "group/task-{task}[_space-{space}]" + _STAT,
    "group_mask": "group/task-{task}[_space-{space}]_desc-{desc<group>}_{suffix<mask>}"
    "{extension<.nii.gz|.json>}",
}
_LONG = {
    "sub": "subject", "ses": "session", "task": "task", "acq": "acquisition", "ce": "ceagent",
    "rec": "reconstruction", "dir": "direction", "run": "run", "echo": "echo",
}
BIDSIGNORE = """\
# Files of bids-fixedfx that the BIDS specification does not define yet
*_statmap.*
*_design.*
/group
/sub-*/figures
/*.html
"""
README = """\
# Statistical maps made by bids-fixedfx

Each run's GLM (nilearn FirstLevelModel) gives contrast maps under
sub-<label>/[ses-<label>/]func/; each subject's runs are combined by fixed
effects into sub-<label>/func/; group/ holds the tests across subjects.
Maps are named ..._contrast-<label>_stat-<effect|variance|t|z|p>_statmap.nii.gz
with a JSON sidecar giving their sources, contrast weights, degrees of freedom
and model settings. logs/ holds the methods text (CITATION.md) to cite them.
"""


def build(kind: str, **entities) -> Path:
    """The path, relative to OUTPUT_DIR, of one output file.

    Parameters
    ----------
    kind : str
        One of :data:`PATTERNS` (``run_statmap``, ``design``, ``subject_statmap``,
        ``subject_mask``, ``group_statmap``, ``group_mask``).
    **entities
        pybids entity names (``subject``, ``task``, ``run``, ``space``, ``contrast``,
        ``stat``, ``suffix``, ``extension`` ...); None values are left out.

    Returns
    -------
    path : Path
    """
    from bids.layout.writing import build_path

    entities = {k: v for k, v in entities.items() if v is not None}
    entities.setdefault("suffix", {"design": "design"}.get(kind, "mask" if kind.endswith("mask") else "statmap"))
    entities.setdefault("desc", {"subject_mask": "fixedfx", "group_mask": "group"}.get(kind))
    entities = {k: v for k, v in entities.items() if v is not None}
    path = build_path(entities, [PATTERNS[kind]], strict=False)
    if path is None:
        raise ValueError(f"Cannot name a {kind} file from {entities}.")
    return Path(path)


def run_entities(run) -> dict:
    """A run's entities under pybids' names, values as in its input file name."""
    return {_LONG[key]: value for key, value in run.entities}


def source(path, output_dir) -> str:
    """How a sidecar names a file: a BIDS URI for our own, else a path relative to OUTPUT_DIR."""
    path = Path(path)
    output_dir = Path(output_dir)
    if not path.is_absolute():
        return f"bids::{path.as_posix()}"
    try:
        return f"bids::{path.relative_to(output_dir).as_posix()}"
    except ValueError:
        return Path(os.path.relpath(path, output_dir)).as_posix()


def _atomic(path: Path, write):
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_nifti(img, path: Path) -> Path:
    """Write a NIfTI image atomically (temporary name, then rename)."""
    return _atomic(Path(path), lambda tmp: img.to_filename(str(tmp)))


def write_text(text: str, path: Path) -> Path:
    """Write a text file atomically."""
    return _atomic(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(data: bytes, path: Path) -> Path:
    """Write bytes (an encoded figure, say) atomically."""
    return _atomic(Path(path), lambda tmp: tmp.write_bytes(data))


def write_json(data, path: Path) -> Path:
    """Write a JSON file atomically, keys in the given order, indented."""
    return write_text(json.dumps(data, indent=2) + "\n", path)


def write_tsv(frame, path: Path) -> Path:
    """Write a table as a BIDS TSV (``n/a`` for missing values) atomically."""
    return _atomic(
        Path(path), lambda tmp: frame.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.10g")
    )


def dataset_description(bids_dir, output_dir) -> dict:
    """The output's ``dataset_description.json`` content."""
    return {
        "Name": "bids-fixedfx: fixed-effects fMRI statistics",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "bids-fixedfx", "Version": __version__, "CodeURL": CODE_URL}],
        "SourceDatasets": [{"URL": Path(os.path.relpath(bids_dir, output_dir)).as_posix()}],
    }


def write_dataset_files(bids_dir, output_dir) -> None:
    """Write ``dataset_description.json`` and ``.bidsignore`` (same content from every process)."""
    output_dir = Path(output_dir)
    write_json(dataset_description(bids_dir, output_dir), output_dir / "dataset_description.json")
    write_text(BIDSIGNORE, output_dir / ".bidsignore")
    write_text(README, output_dir / "README.md")


def mask_sidecar(description, space, sources) -> dict:
    """The sidecar of a mask we write (subject or group mask)."""
    return {
        "Type": "Brain",
        "Description": description,
        "SpatialReference": space or "orig",
        "Sources": list(sources),
    }


def contrast_sidecar(contrast_maps, model, sources) -> dict:
    """The keys every statmap sidecar holds (SPEC §3), for run and subject levels."""
    contrast = contrast_maps.contrast
    return {
        "Sources": list(sources),
        "Contrast": {"Name": contrast.name, "Test": "t", "Weights": contrast.weights},
        "DegreesOfFreedom": contrast_maps.dof,
        "SmoothingFWHM": model.smoothing_fwhm or 0.0,
        "NoiseModel": model.noise_model,
        "HRFModel": model.hrf_model,
        "DriftModel": model.drift_model or "none",
        "HighPass": model.high_pass if model.drift_model == "cosine" else None,
    }


def write_statmaps(kind, contrast_maps, output_dir, sidecar, **entities) -> list[Path]:
    """Write a contrast's five maps and their sidecars; return the map paths."""
    output_dir = Path(output_dir)
    written = []
    for stat in STATS:
        stem = build(kind, contrast=contrast_maps.contrast.label, stat=stat, extension=".nii.gz", **entities)
        write_nifti(contrast_maps.maps[stat], output_dir / stem)
        side = dict(sidecar)
        side["Statistic"] = stat
        write_json(side, output_dir / build(
            kind, contrast=contrast_maps.contrast.label, stat=stat, extension=".json", **entities
        ))
        written.append(output_dir / stem)
    return written


_PAIR = re.compile(r"([a-zA-Z]+)-([a-zA-Z0-9]+)")


def parse_name(path) -> dict:
    """The entities (BIDS keys) and suffix of one of our file names."""
    name = Path(path).name.split(".")[0]
    parts = name.split("_")
    entities = {}
    for part in parts[:-1]:
        match = _PAIR.fullmatch(part)
        if match:
            entities[match.group(1)] = match.group(2)
    entities["suffix"] = parts[-1]
    return entities


def find_subject_maps(output_dir) -> list[dict]:
    """Every subject-level effect map in OUTPUT_DIR, with its entities and files.

    Returns
    -------
    maps : list of dict
        Keys ``sub``, ``task``, ``space`` (or None), ``contrast``, and the paths
        ``effect``, ``variance``, ``sidecar``, ``mask``.
    """
    output_dir = Path(output_dir)
    found = []
    for effect in sorted(output_dir.glob("sub-*/func/sub-*_task-*_stat-effect_statmap.nii.gz")):
        entities = parse_name(effect)
        if set(entities) - {"sub", "task", "space", "contrast", "stat", "suffix"}:
            continue  # a run-level map
        common = {
            "subject": entities["sub"], "task": entities["task"], "space": entities.get("space"),
        }
        found.append({
            **common,
            "contrast": entities["contrast"],
            "effect": effect,
            "variance": output_dir / build("subject_statmap", contrast=entities["contrast"], stat="variance",
                                           extension=".nii.gz", **common),
            "sidecar": output_dir / build("subject_statmap", contrast=entities["contrast"], stat="effect",
                                          extension=".json", **common),
            "mask": output_dir / build("subject_mask", extension=".nii.gz", **common),
        })
    return found
