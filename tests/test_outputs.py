"""Outputs (SPEC §3): file names, atomic writes, sidecars and the dataset's own files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import bids_fixedfx
from bids_fixedfx import outputs
from bids_fixedfx.discover import Run, validator_command
from bids_fixedfx.settings import STATS, ModelSettings

SPACE = "MNI152NLin2009cAsym"


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "kind, entities, expected",
    [
        (
            "run_statmap",
            dict(subject="01", session="pre", task="nback", acquisition="hi", run="01", echo="2", space=SPACE,
                 contrast="faces", stat="t", extension=".nii.gz"),
            f"sub-01/ses-pre/func/sub-01_ses-pre_task-nback_acq-hi_run-01_echo-2_space-{SPACE}"
            "_contrast-faces_stat-t_statmap.nii.gz",
        ),
        (
            "run_statmap",
            dict(subject="01", task="nback", ceagent="gad", reconstruction="mag", direction="AP", run="3",
                 contrast="faces", stat="effect", extension=".json"),
            "sub-01/func/sub-01_task-nback_ce-gad_rec-mag_dir-AP_run-3_contrast-faces_stat-effect_statmap.json",
        ),
        (
            "design",
            dict(subject="01", session="1", task="checkerboard", run="01", extension=".tsv"),
            "sub-01/ses-1/func/sub-01_ses-1_task-checkerboard_run-01_design.tsv",
        ),
        (
            "design",
            dict(subject="02", task="checkerboard", acquisition="lo", echo="1", extension=".json"),
            "sub-02/func/sub-02_task-checkerboard_acq-lo_echo-1_design.json",
        ),
        (
            "subject_statmap",
            dict(subject="01", task="checkerboard", space=SPACE, contrast="audioVisual", stat="variance",
                 extension=".nii.gz"),
            f"sub-01/func/sub-01_task-checkerboard_space-{SPACE}_contrast-audioVisual_stat-variance_statmap.nii.gz",
        ),
        (
            "subject_mask",
            dict(subject="01", task="checkerboard", space="T1w", extension=".nii.gz"),
            "sub-01/func/sub-01_task-checkerboard_space-T1w_desc-fixedfx_mask.nii.gz",
        ),
        (
            "group_statmap",
            dict(task="checkerboard", space=SPACE, contrast="audio", stat="p", extension=".nii.gz"),
            f"group/task-checkerboard_space-{SPACE}_contrast-audio_stat-p_statmap.nii.gz",
        ),
        (
            "group_mask",
            dict(task="checkerboard", space=SPACE, extension=".nii.gz"),
            f"group/task-checkerboard_space-{SPACE}_desc-group_mask.nii.gz",
        ),
    ],
)
def test_build_gives_the_spec_names(kind, entities, expected):
    assert outputs.build(kind, **entities) == Path(expected)


@pytest.mark.parametrize("stat", STATS)
def test_every_stat_has_a_name(stat):
    for kind in ("run_statmap", "subject_statmap", "group_statmap"):
        path = outputs.build(kind, subject="01", task="x", run="01", contrast="c", stat=stat, extension=".nii.gz")
        assert path.name.endswith(f"_contrast-c_stat-{stat}_statmap.nii.gz")


@pytest.mark.parametrize(
    "kind",
    ["run_statmap", "subject_statmap", "subject_mask", "group_statmap", "group_mask"],
)
def test_no_space_means_no_space_entity(kind):
    entities = dict(subject="01", task="x", run="01", contrast="c", stat="z", extension=".nii.gz")
    assert "_space-" not in outputs.build(kind, space=None, **entities).name
    assert "_space-" not in outputs.build(kind, **entities).name
    assert outputs.build(kind, space="T1w", **entities).name.count("_space-T1w_") == 1


def test_values_are_kept_as_given():
    padded = outputs.build("run_statmap", subject="01", task="x", run="01", echo="01", contrast="c",
                           stat="t", extension=".nii.gz")
    assert "_run-01_echo-01_" in padded.name
    plain = outputs.build("design", subject="1", task="x", run="1", extension=".tsv")
    assert plain.name == "sub-1_task-x_run-1_design.tsv"


def test_run_entities_come_from_the_run_record(example_selection):
    for run in example_selection.runs:
        entities = outputs.run_entities(run)
        path = outputs.build("run_statmap", space=run.space, contrast="c", stat="t", extension=".nii.gz", **entities)
        # the output name starts with the input's entities, values as in the input name
        assert path.name.startswith(run.name + f"_space-{run.space}_")
        assert run.raw_bold.name.startswith(run.name + "_")
        folder = Path(f"sub-{run.subject}") / (f"ses-{run.session}" if run.session else "") / "func"
        assert path.parent == folder


def test_run_entities_in_bids_order():
    run = Run(
        entities=(("sub", "01"), ("ses", "a"), ("task", "t"), ("acq", "b"), ("ce", "c"), ("rec", "d"),
                  ("dir", "e"), ("run", "02"), ("echo", "3")),
        space=None, bold=Path("b"), mask=None, events=None, confounds=None, design=None, raw_bold=None,
        tr=2.0, n_volumes=10, preprocessed=True,
    )
    path = outputs.build("design", extension=".tsv", **outputs.run_entities(run))
    assert path.name == f"{run.name}_design.tsv"
    assert run.name == "sub-01_ses-a_task-t_acq-b_ce-c_rec-d_dir-e_run-02_echo-3"


def test_build_refuses_what_it_cannot_name():
    with pytest.raises(ValueError):
        outputs.build("subject_statmap", subject="01", task="x", contrast="c", stat="beta", extension=".nii.gz")


@pytest.mark.parametrize(
    "kind, entities",
    [
        ("run_statmap", dict(subject="01", session="2", task="x", acquisition="y", run="01", echo="1",
                             space=SPACE, contrast="aB", stat="z")),
        ("run_statmap", dict(subject="01", task="x", contrast="c", stat="p")),
        ("subject_statmap", dict(subject="01", task="x", space="T1w", contrast="c", stat="effect")),
        ("subject_mask", dict(subject="01", task="x", space="T1w")),
        ("group_statmap", dict(task="x", contrast="c", stat="variance")),
        ("group_mask", dict(task="x", space=SPACE)),
        ("design", dict(subject="01", session="2", task="x", run="01")),
    ],
)
def test_parse_name_round_trip(kind, entities):
    short = {"subject": "sub", "session": "ses", "acquisition": "acq", "ceagent": "ce",
             "reconstruction": "rec", "direction": "dir"}
    path = outputs.build(kind, extension=".nii.gz" if kind != "design" else ".tsv", **entities)
    parsed = outputs.parse_name(path)
    suffix = parsed.pop("suffix")
    assert suffix == {"design": "design"}.get(kind, "mask" if kind.endswith("mask") else "statmap")
    parsed.pop("desc", None)
    assert parsed == {short.get(k, k): v for k, v in entities.items()}
    # and back again
    long = {v: k for k, v in short.items()}
    extension = "." + path.name.split(".", 1)[1]
    assert outputs.build(kind, extension=extension, **{long.get(k, k): v for k, v in parsed.items()}) == path


# ---------------------------------------------------------------- atomic writes


def _only(directory):
    return sorted(p.name for p in Path(directory).iterdir())


def test_writers_leave_no_temporary_file(tmp_path):
    img = nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.eye(4))
    target = tmp_path / "sub-01" / "func"
    written = [
        outputs.write_nifti(img, target / "map.nii.gz"),
        outputs.write_json({"a": [1, 2]}, target / "map.json"),
        outputs.write_text("hello\n", target / "notes.txt"),
        outputs.write_tsv(pd.DataFrame({"x": [1.5, np.nan]}), target / "table.tsv"),
    ]
    assert _only(target) == sorted(p.name for p in written)
    np.testing.assert_array_equal(nib.load(target / "map.nii.gz").get_fdata(), img.get_fdata())
    assert json.loads((target / "map.json").read_text()) == {"a": [1, 2]}
    assert (target / "notes.txt").read_text() == "hello\n"
    assert (target / "table.tsv").read_text().splitlines() == ["x", "1.5", "n/a"]
    for path in written:
        assert os.stat(path).st_mode & 0o777 == 0o644


class _FailingImage:
    """An image whose writer writes half a file, then fails."""

    def to_filename(self, filename):
        Path(filename).write_bytes(b"half a NIfTI")
        raise OSError("disk full")


def test_a_failing_writer_leaves_no_file(tmp_path):
    path = tmp_path / "func" / "map.nii.gz"
    with pytest.raises(OSError, match="disk full"):
        outputs.write_nifti(_FailingImage(), path)
    assert not path.exists()
    assert _only(path.parent) == []


def test_a_failing_writer_keeps_the_previous_file(tmp_path):
    path = tmp_path / "map.nii.gz"
    img = nib.Nifti1Image(np.ones((2, 2, 2), np.float32), np.eye(4))
    outputs.write_nifti(img, path)
    with pytest.raises(OSError):
        outputs.write_nifti(_FailingImage(), path)
    assert _only(tmp_path) == ["map.nii.gz"]
    np.testing.assert_array_equal(nib.load(path).get_fdata(), img.get_fdata())


def test_unserialisable_json_leaves_no_file(tmp_path):
    path = tmp_path / "side.json"
    with pytest.raises(TypeError):
        outputs.write_json({"bad": object()}, path)
    assert _only(tmp_path) == []


def test_interrupted_write_leaves_no_file(tmp_path):
    class Interrupting:
        def to_filename(self, filename):
            Path(filename).write_bytes(b"x")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        outputs.write_nifti(Interrupting(), tmp_path / "map.nii.gz")
    assert _only(tmp_path) == []


def test_write_statmaps_writes_five_maps_and_sidecars(tmp_path):
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    contrast = SimpleNamespace(name="audio - visual", label="audioVisual", weights={"audio": 1.0, "visual": -1.0})
    maps = SimpleNamespace(contrast=contrast, maps={stat: img for stat in STATS}, dof=80.0)
    sidecar = {"Sources": ["bids::x"], "DegreesOfFreedom": 80.0}
    written = outputs.write_statmaps("subject_statmap", maps, tmp_path, sidecar, subject="01", task="x", space="T1w")
    assert [p.relative_to(tmp_path) for p in written] == [
        outputs.build("subject_statmap", subject="01", task="x", space="T1w", contrast="audioVisual", stat=stat,
                      extension=".nii.gz")
        for stat in STATS
    ]
    for path, stat in zip(written, STATS):
        side = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert side["Statistic"] == stat
        assert side["DegreesOfFreedom"] == 80.0
    assert len(list(tmp_path.rglob("*"))) == 2 + 2 * len(STATS)  # sub-01, func, maps and sidecars


# ---------------------------------------------------------------- sidecars


@pytest.mark.parametrize(
    "model",
    [ModelSettings(), ModelSettings(smoothing_fwhm=None, drift_model="polynomial", noise_model="ols",
                                   hrf_model="spm")],
)
def test_contrast_sidecar_has_the_spec_keys(model):
    contrast = SimpleNamespace(name="audio - visual", label="audioVisual", weights={"audio": 1.0, "visual": -1.0})
    maps = SimpleNamespace(contrast=contrast, dof=77.0)
    side = outputs.contrast_sidecar(maps, model, ["bids::a", "../bids/b"])
    assert side["Sources"] == ["bids::a", "../bids/b"]
    assert side["Contrast"] == {"Name": "audio - visual", "Test": "t", "Weights": {"audio": 1.0, "visual": -1.0}}
    assert side["DegreesOfFreedom"] == 77.0
    assert side["SmoothingFWHM"] == (model.smoothing_fwhm or 0)
    assert side["NoiseModel"] == model.noise_model
    assert side["HRFModel"] == model.hrf_model
    assert side["DriftModel"] == (model.drift_model or "none")
    assert "HighPass" in side
    json.dumps(side)


def test_sources_resolve_by_file_name(tmp_path):
    output_dir = tmp_path / "out"
    bids_dir = tmp_path / "bids"
    ours = output_dir / "sub-01" / "func" / "sub-01_task-x_run-1_contrast-c_stat-effect_statmap.nii.gz"
    theirs = bids_dir / "derivatives" / "fmriprep" / "sub-01" / "func" / "sub-01_task-x_run-1_desc-preproc_bold.nii.gz"
    uri = outputs.source(ours, output_dir)
    assert uri == "bids::sub-01/func/" + ours.name
    relative = outputs.source(theirs, output_dir)
    assert not Path(relative).is_absolute()
    assert (output_dir / relative).resolve() == theirs.resolve()
    assert relative.endswith(theirs.name)


# ---------------------------------------------------------------- dataset files


def test_dataset_description(tmp_path):
    bids_dir = tmp_path / "data" / "bids"
    output_dir = tmp_path / "results" / "fixedfx"
    outputs.write_dataset_files(bids_dir, output_dir)
    description = json.loads((output_dir / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["Name"]
    assert description["BIDSVersion"]
    (generated,) = description["GeneratedBy"]
    assert generated["Name"] == "bids-fixedfx"
    assert generated["Version"] == bids_fixedfx.__version__
    assert generated["CodeURL"].startswith("https://")
    (source_dataset,) = description["SourceDatasets"]
    url = source_dataset["URL"]
    assert (output_dir / url).resolve() == bids_dir.resolve() or url.startswith(("file:", "bids:", "http"))
    assert (output_dir / ".bidsignore").is_file()
    assert _only(output_dir) == sorted([".bidsignore", "README.md", "dataset_description.json"])


def test_bidsignore_covers_what_bids_does_not_define():
    patterns = [line for line in outputs.BIDSIGNORE.splitlines() if line and not line.startswith("#")]
    assert any(p.endswith("_statmap.*") for p in patterns)
    assert any(p.endswith("_design.*") for p in patterns)
    assert any(p.strip("/") == "group" for p in patterns)


def test_an_output_tree_passes_the_bids_validator(example_dataset, tmp_path):
    """SPEC §3: .bidsignore is such that bids-validator-deno OUTPUT_DIR reports no error."""
    command = validator_command()
    assert command is not None, "bids-validator-deno is not installed (pip install bids-validator-deno)"
    out = tmp_path / "out"
    outputs.write_dataset_files(example_dataset.path, out)
    img = nib.Nifti1Image(np.random.default_rng(0).random((4, 4, 4)).astype(np.float32), np.eye(4))
    mask = nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4))
    run = dict(subject="01", session="1", task="checkerboard", run="01")
    for kind, entities in [
        ("run_statmap", dict(run, space=SPACE)),
        ("subject_statmap", dict(subject="01", task="checkerboard", space=SPACE)),
        ("group_statmap", dict(task="checkerboard", space=SPACE)),
    ]:
        for stat in STATS:
            outputs.write_nifti(img, out / outputs.build(kind, contrast="audio", stat=stat, extension=".nii.gz", **entities))
            outputs.write_json({"Statistic": stat},
                               out / outputs.build(kind, contrast="audio", stat=stat, extension=".json", **entities))
    outputs.write_tsv(pd.DataFrame({"audio": [0.0, 1.0]}), out / outputs.build("design", extension=".tsv", **run))
    outputs.write_json({}, out / outputs.build("design", extension=".json", **run))
    for kind, entities in [
        ("subject_mask", dict(subject="01", task="checkerboard", space=SPACE)),
        ("group_mask", dict(task="checkerboard", space=SPACE)),
    ]:
        outputs.write_nifti(mask, out / outputs.build(kind, extension=".nii.gz", **entities))
        outputs.write_json(outputs.mask_sidecar("brain", SPACE, []), out / outputs.build(kind, extension=".json", **entities))
    done = subprocess.run([command, "--format", "json", str(out)], capture_output=True, text=True, check=False)
    report = json.loads(done.stdout)
    errors = [(i.get("code"), i.get("location")) for i in report["issues"]["issues"] if i.get("severity") == "error"]
    assert errors == []
