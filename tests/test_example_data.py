"""Tests of bids_fixedfx.example_data, the example-dataset generator."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import compute_regressor

from bids_fixedfx.example_data import ExampleDataset, main, make_example_dataset
from bids_fixedfx.example_data import files, grids, names, simulate
from bids_fixedfx.example_data.confounds import MOTION_COLUMNS, make_confounds
from bids_fixedfx.example_data.metadata import make_participants
from bids_fixedfx.example_data.study import CONDITIONS, RunKey, Study

MNI = "MNI152NLin2009cAsym"
TASK = "checkerboard"
REPO = Path(__file__).resolve().parents[1]

# A tiny dataset for tests that write several datasets.
SMALL = dict(n_subjects=1, n_sessions=1, n_runs=1, shape=(12, 12, 12), n_volumes=40)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> ExampleDataset:
    """The default example dataset, written once for the module."""
    return make_example_dataset(tmp_path_factory.mktemp("example") / "bids")


def _prefix(sub, ses, run):
    return f"sub-{sub}_ses-{ses}_task-{TASK}_run-{run:02d}"


def _relative_files(root: Path) -> list[str]:
    files = (p for p in root.rglob("*") if p.is_file())
    return sorted(p.relative_to(root).as_posix() for p in files)


def _validator() -> str:
    """Path of bids-validator-deno, next to the interpreter or on PATH."""
    here = Path(sys.executable).parent / "bids-validator-deno"
    if here.exists():
        return str(here)
    found = shutil.which("bids-validator-deno")
    if found is None:
        pytest.fail("bids-validator-deno is missing: pip install bids-validator-deno")
    return found


def _validate(path: Path) -> tuple[int, list[dict]]:
    """Run the validator; return its exit code and its error issues."""
    proc = subprocess.run(
        [_validator(), "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"validator output is not JSON:\n{proc.stdout}\n{proc.stderr}")
    issues = report["issues"]["issues"]
    return proc.returncode, [i for i in issues if i["severity"] == "error"]


# --------------------------------------------------------------------------
# API and layout


def test_returned_description(dataset):
    assert isinstance(dataset, ExampleDataset)
    assert dataset.subjects == ("01", "02", "03")
    assert dataset.tasks == (TASK,)
    assert dataset.conditions == ("audio", "visual")
    assert dataset.spaces == (MNI, "T1w")
    assert dataset.effect_size > 0
    assert set(dataset.active) == set(dataset.conditions)
    with pytest.raises(TypeError):
        dataset.active["audio"] = dataset.active["visual"]  # read-only mapping


def test_raw_files_have_bids_names(dataset):
    root = dataset.path
    for name in (
        "dataset_description.json",
        "README",
        "participants.tsv",
        "participants.json",
        f"task-{TASK}_bold.json",
    ):
        assert (root / name).is_file(), name
    for ses in (1, 2):
        for run in (1, 2):
            func = root / "sub-01" / f"ses-{ses}" / "func"
            assert (func / f"{_prefix('01', ses, run)}_bold.nii.gz").is_file()
            assert (func / f"{_prefix('01', ses, run)}_events.tsv").is_file()
    assert (root / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.nii.gz").is_file()

    description = json.loads((root / "dataset_description.json").read_text())
    assert description["BIDSVersion"] == "1.9.0"
    assert description["DatasetType"] == "raw"
    assert {"Name", "License", "Authors"} <= set(description)
    participants = pd.read_csv(root / "participants.tsv", sep="\t")
    assert list(participants["participant_id"]) == ["sub-01", "sub-02", "sub-03"]


def test_participants_have_group_and_age(dataset):
    table = pd.read_csv(dataset.path / "participants.tsv", sep="\t")
    assert list(table.columns) == ["participant_id", "age", "sex", "group"]
    assert list(table["group"]) == ["patient", "control", "patient"]
    assert pd.api.types.is_integer_dtype(table["age"])
    assert table["age"].between(19, 44).all()
    described = json.loads((dataset.path / "participants.json").read_text())
    assert set(described) == {"age", "sex", "group"}
    assert all("Description" in column for column in described.values())
    assert described["age"]["Units"] == "year"
    assert set(described["group"]["Levels"]) == set(table["group"])
    assert set(described["sex"]["Levels"]) >= set(table["sex"])


def test_participants_follow_the_seed():
    def rows(seed, n=6):
        labels = tuple(f"{i:02d}" for i in range(1, n + 1))
        return make_participants(labels, Study(seed=seed).dataset_rng())

    assert rows(0) == rows(0)
    assert [p.age for p in rows(0)] != [p.age for p in rows(1)]
    assert [p.group for p in rows(1)] == ["patient", "control"] * 3


def test_derivative_files_have_fmriprep_names(dataset):
    deriv = dataset.path / "derivatives" / "fmriprep"
    description = json.loads((deriv / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0] == {"Name": "fMRIPrep", "Version": "23.2.0"}
    assert "SourceDatasets" in description
    func = deriv / "sub-01" / "ses-2" / "func"
    prefix = _prefix("01", 2, 1)
    for space in (MNI, "T1w"):
        for suffix in (
            "desc-preproc_bold.nii.gz",
            "desc-preproc_bold.json",
            "desc-brain_mask.nii.gz",
            "boldref.nii.gz",
        ):
            assert (func / f"{prefix}_space-{space}_{suffix}").is_file(), suffix
    assert (func / f"{prefix}_desc-confounds_timeseries.tsv").is_file()
    assert (func / f"{prefix}_desc-confounds_timeseries.json").is_file()


def test_without_sessions_and_derivatives(tmp_path):
    ds = make_example_dataset(tmp_path, derivatives=False, **SMALL)
    files = _relative_files(tmp_path)
    assert not any("ses-" in f for f in files)
    assert "sub-01/func/sub-01_task-checkerboard_run-01_bold.nii.gz" in files
    assert "sub-01/func/sub-01_task-checkerboard_run-01_events.tsv" in files
    assert "sub-01/anat/sub-01_T1w.nii.gz" in files
    assert not (tmp_path / "derivatives").exists()
    assert ds.subjects == ("01",)


def test_last_subject_has_a_single_run(dataset):
    def raw_runs(sub):
        return sorted(dataset.path.glob(f"sub-{sub}/**/func/*_bold.nii.gz"))

    assert len(raw_runs("01")) == 4
    assert len(raw_runs("02")) == 4
    (only,) = raw_runs("03")
    assert only.name == f"{_prefix('03', 1, 1)}_bold.nii.gz"
    preproc = list(
        (dataset.path / "derivatives" / "fmriprep").glob(
            f"sub-03/**/*space-{MNI}_desc-preproc_bold.nii.gz"
        )
    )
    assert len(preproc) == 1


# --------------------------------------------------------------------------
# metadata and headers


def test_tr_lives_in_the_top_level_json_only(dataset):
    root = dataset.path
    top = json.loads((root / f"task-{TASK}_bold.json").read_text())
    assert top["RepetitionTime"] == 2.0
    assert top["TaskName"] == TASK
    raw_jsons = [p for p in root.glob("sub-*/**/*.json")]
    assert all("RepetitionTime" not in json.loads(p.read_text()) for p in raw_jsons)

    deriv = root / "derivatives" / "fmriprep" / "sub-01" / "ses-1" / "func"
    for space in (MNI, "T1w"):
        sidecar = json.loads(
            (
                deriv / f"{_prefix('01', 1, 1)}_space-{space}_desc-preproc_bold.json"
            ).read_text()
        )
        assert sidecar["RepetitionTime"] == 2.0
        assert "SkullStripped" in sidecar


def test_nifti_headers(dataset):
    root = dataset.path
    raw = nib.load(root / "sub-01/ses-1/func" / f"{_prefix('01', 1, 1)}_bold.nii.gz")
    assert raw.get_data_dtype() in (np.int16, np.float32)
    assert raw.header.get_zooms() == pytest.approx((3.0, 3.0, 3.0, 2.0))
    assert raw.header.get_xyzt_units() == ("mm", "sec")
    assert raw.shape[3] == 90

    deriv = root / "derivatives" / "fmriprep" / "sub-01" / "ses-1" / "func"
    stem = deriv / f"{_prefix('01', 1, 1)}_space-"
    mni = nib.load(f"{stem}{MNI}_desc-preproc_bold.nii.gz")
    t1w = nib.load(f"{stem}T1w_desc-preproc_bold.nii.gz")
    assert mni.shape == (24, 28, 20, 90)
    assert mni.get_data_dtype() == np.float32
    assert mni.header.get_zooms()[3] == pytest.approx(2.0)
    assert t1w.shape[:3] != mni.shape[:3]  # the T1w space has its own grid
    mask = nib.load(f"{stem}{MNI}_desc-brain_mask.nii.gz")
    assert mask.get_data_dtype() == np.uint8
    assert set(np.unique(np.asanyarray(mask.dataobj))) == {0, 1}
    boldref = nib.load(f"{stem}{MNI}_boldref.nii.gz")
    assert boldref.shape == (24, 28, 20)

    # a voxel of the box has the same world position and data in both grids
    voxel = np.array([s.start + 1 for s in dataset.active["visual"]])
    world = mni.affine @ np.append(voxel, 1.0)
    in_t1w = np.linalg.solve(t1w.affine, world)[:3]
    np.testing.assert_allclose(in_t1w, np.round(in_t1w), atol=1e-6)
    i, j, k = np.round(in_t1w).astype(int)
    a, b, c = voxel
    np.testing.assert_array_equal(
        t1w.get_fdata(dtype=np.float32)[i, j, k],
        mni.get_fdata(dtype=np.float32)[a, b, c],
    )


def test_events_columns(dataset):
    for path in dataset.path.glob("sub-*/**/func/*_events.tsv"):
        events = pd.read_csv(path, sep="\t")
        assert list(events.columns) == ["onset", "duration", "trial_type"]
        assert set(events["trial_type"]) == set(dataset.conditions)
        assert events["onset"].is_monotonic_increasing
        assert (events["onset"] >= 0).all() and (events["duration"] > 0).all()
        assert events["onset"].iloc[-1] < 90 * 2.0  # every block starts in the run


def test_confounds_table(dataset):
    deriv = dataset.path / "derivatives" / "fmriprep" / "sub-02" / "ses-1" / "func"
    path = deriv / f"{_prefix('02', 1, 2)}_desc-confounds_timeseries.tsv"
    table = pd.read_csv(path, sep="\t")
    motion = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    expected = (
        motion
        + [f"{m}_derivative1" for m in motion]
        + ["framewise_displacement", "global_signal", "csf", "white_matter"]
        + [f"a_comp_cor_{k:02d}" for k in range(5)]
        + [f"cosine{k:02d}" for k in range(3)]
    )
    assert set(expected) <= set(table.columns)
    assert len(table) == 90
    first_row = path.read_text().splitlines()[1].split("\t")
    for column in [f"{m}_derivative1" for m in motion] + ["framewise_displacement"]:
        assert first_row[table.columns.get_loc(column)] == "n/a"
    assert table.iloc[1:].notna().all().all()
    assert table.iloc[0][motion + ["global_signal"]].notna().all()


def test_masks_differ_between_runs_and_contain_the_boxes(dataset):
    deriv = dataset.path / "derivatives" / "fmriprep" / "sub-01"
    masks = [
        np.asanyarray(nib.load(p).dataobj).astype(bool)
        for p in sorted(deriv.glob(f"**/*space-{MNI}_desc-brain_mask.nii.gz"))
    ]
    assert len(masks) == 4
    assert any((m != masks[0]).any() for m in masks[1:])
    boxes = [dataset.active[c] for c in dataset.conditions]
    for mask in masks:
        for box in boxes:
            assert mask[box].all()
    occupied = np.zeros(masks[0].shape, int)
    for box in boxes:
        occupied[box] += 1
    assert occupied.max() == 1  # the boxes do not overlap


# --------------------------------------------------------------------------
# the modules, on arrays


def test_study_checks_and_lists_the_runs():
    study = Study(n_subjects=3, n_sessions=2, n_runs=2, shape=[16, 18, 14])
    assert study.shape == (16, 18, 14) and study.subjects == ("01", "02", "03")
    assert study.runs_of(0) == tuple(
        RunKey("01", ses, run) for ses in (1, 2) for run in (1, 2)
    )
    assert study.runs_of(2) == (RunKey("03", 1, 1),)  # the last subject: one run
    assert Study(n_sessions=1).runs_of(0)[0].session is None
    with pytest.raises(ValueError, match="n_runs"):
        Study(n_runs=0)
    with pytest.raises(ValueError, match="60 s"):
        Study(n_volumes=20, tr=2.0)


def test_names_are_bids_names():
    key = RunKey("02", 1, 3)
    assert names.run_file(key, "bold", ".nii.gz").as_posix() == (
        "sub-02/ses-1/func/sub-02_ses-1_task-checkerboard_run-03_bold.nii.gz"
    )
    preproc = names.run_file(
        RunKey("02", None, 1), "bold", ".json", space="T1w", desc="preproc"
    )
    assert preproc.as_posix() == (
        "sub-02/func/sub-02_task-checkerboard_run-01_space-T1w_desc-preproc_bold.json"
    )
    assert names.anat_t1w("02", 2).as_posix() == "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz"
    assert names.anat_t1w("02", 1).as_posix() == "sub-02/anat/sub-02_T1w.nii.gz"


def test_masks_and_boxes_on_arrays():
    anatomy = grids.make_anatomy((16, 18, 14))
    smaller = grids.run_mask(anatomy.brain, 1)
    assert grids.run_mask(anatomy.brain, 0) is anatomy.brain
    assert (smaller <= anatomy.brain).all() and smaller.sum() < anatomy.brain.sum()
    for box in anatomy.active.values():
        assert smaller[box].all()
    native = grids.to_native(anatomy.brain)
    assert native.shape == anatomy.grids.native_shape
    for condition, box in anatomy.active.items():
        assert native[anatomy.native_boxes[condition]].all()
        assert np.array_equal(
            native[anatomy.native_boxes[condition]], anatomy.brain[box]
        )


def test_every_condition_occurs_in_a_run_with_room_for_a_block_of_each():
    """Blocks were drawn from up to twice as many labels as needed: a run of 80 s (4 blocks)
    of 3 conditions could lack one, whose contrasts were then left out of that run."""
    conditions = ("audio", "visual", "motor")
    for seed in range(40):
        events = simulate.make_events(80.0, np.random.default_rng(seed), conditions)
        assert len(events) >= len(conditions)
        counts = events["trial_type"].value_counts()
        assert set(counts.index) == set(conditions) and counts.max() - counts.min() <= 1


def test_regressors_are_nilearns_and_the_bold_carries_them():
    rng = np.random.default_rng(0)
    events = simulate.make_events(120.0, rng)
    assert set(events["trial_type"]) == set(CONDITIONS)
    regressors = simulate.condition_regressors(events, 60, 2.0)
    for c, condition in enumerate(CONDITIONS):
        sel = events[events["trial_type"] == condition]
        expected, _ = compute_regressor(
            np.vstack([sel["onset"], sel["duration"], np.ones(len(sel))]),
            "glover",
            np.arange(60) * 2.0,
        )
        np.testing.assert_allclose(regressors[:, c], expected[:, 0], rtol=1e-6)

    anatomy = grids.make_anatomy((12, 12, 12))
    mask = grids.to_native(anatomy.brain)
    scene = simulate.Scene(mask, anatomy.baseline, anatomy.native_boxes)
    data, motion, global_signal = simulate.simulate_bold(scene, events, 60, 2.0, rng)
    assert data.dtype == np.float32 and data.flags.f_contiguous
    assert data.shape == mask.shape + (60,) and motion.shape == (60, 6)
    assert (data[~mask] >= 0).all() and (data[~mask] < 20).all()
    np.testing.assert_array_equal(data * 16, np.round(data * 16))  # 1/16 steps
    np.testing.assert_allclose(global_signal, data[mask].mean(axis=0), rtol=1e-3)


def test_confounds_on_arrays():
    rng = np.random.default_rng(0)
    motion = simulate.motion_parameters(30, rng)
    confounds = make_confounds(motion, np.full(30, 1000.0), 1000.0, 2.0, rng)
    table = confounds.table
    assert len(table) == 30
    np.testing.assert_array_equal(table[list(MOTION_COLUMNS)].to_numpy(), motion)
    assert table.iloc[0][["trans_x_derivative1", "framewise_displacement"]].isna().all()
    assert set(confounds.sidecar) >= {"a_comp_cor_00", "cosine00", "framewise_displacement"}
    components = table.filter(like="a_comp_cor").to_numpy()
    np.testing.assert_allclose(components.T @ components, np.eye(5), atol=1e-10)


def test_non_steady_state_volumes_are_brighter_and_flagged(tmp_path):
    plain = make_example_dataset(tmp_path / "plain", **SMALL)
    flagged = make_example_dataset(tmp_path / "flagged", **SMALL, non_steady_state=2)
    stem = f"sub-01_task-{TASK}_run-01"
    func = Path("derivatives") / "fmriprep" / "sub-01" / "func"
    tables = [pd.read_csv(d.path / func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t") for d in (plain, flagged)]
    assert not [c for c in tables[0].columns if c.startswith("non_steady_state")]
    flags = tables[1][["non_steady_state_outlier00", "non_steady_state_outlier01"]].to_numpy()
    np.testing.assert_array_equal(flags, np.eye(40)[:, :2])
    pd.testing.assert_frame_equal(tables[1][tables[0].columns], tables[0])
    bold = f"{stem}_space-{MNI}_desc-preproc_bold.nii.gz"
    mask = nib.load(str(plain.path / func / f"{stem}_space-{MNI}_desc-brain_mask.nii.gz")).get_fdata() > 0
    data = [nib.load(str(d.path / func / bold)).get_fdata()[mask] for d in (plain, flagged)]
    ratio = data[1].mean(axis=0) / data[0].mean(axis=0)
    np.testing.assert_allclose(ratio[:3], [1.5, 1.25, 1.0], rtol=1e-3)
    np.testing.assert_array_equal(data[1][:, 2:], data[0][:, 2:])


# --------------------------------------------------------------------------
# atomic writes


def test_writes_leave_no_temporary_files(dataset):
    hidden = [p for p in dataset.path.rglob(".*") if p.name != ".bidsignore"]
    assert hidden == []


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    files.write_json(target, {"a": 1})

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        files.write_json(target, {"a": 2})
    with pytest.raises(OSError, match="disk full"):
        files.save_nifti(files.Nifti(tmp_path / "y.nii.gz", np.zeros((2, 2, 2)), np.eye(4)))
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


# --------------------------------------------------------------------------
# behaviour


def test_same_seed_gives_identical_data(tmp_path):
    first = make_example_dataset(tmp_path / "a", seed=3, **SMALL).path
    second = make_example_dataset(tmp_path / "b", seed=3, **SMALL).path
    other = make_example_dataset(tmp_path / "c", seed=4, **SMALL).path
    names = _relative_files(first)
    assert names == _relative_files(second)
    for name in names:
        if name.endswith(".nii.gz"):
            a = np.asanyarray(nib.load(first / name).dataobj)
            b = np.asanyarray(nib.load(second / name).dataobj)
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
    bold = "derivatives/fmriprep/sub-01/func/sub-01_task-checkerboard_run-01_space-"
    bold += f"{MNI}_desc-preproc_bold.nii.gz"
    assert not np.array_equal(
        np.asanyarray(nib.load(first / bold).dataobj),
        np.asanyarray(nib.load(other / bold).dataobj),
    )


#: Digest of the content of the SMALL dataset with seed 0 (NIfTI files decompressed, so
#: that zlib versions do not matter; participants files left out). If it changes, the
#: example data changed: on purpose (then update it), or after a numpy or nilearn upgrade.
SMALL_DIGEST = "94211f7320692732ad4de428626b8181a36cf0f306ecfad022ae8f1513d8d5bc"


def test_the_data_stay_the_same(tmp_path):
    root = make_example_dataset(tmp_path, seed=0, **SMALL).path
    digest = hashlib.sha256()
    for name in _relative_files(root):
        if name in ("participants.tsv", "participants.json"):
            continue
        content = (root / name).read_bytes()
        if name.endswith(".gz"):
            content = gzip.decompress(content)
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    assert digest.hexdigest() == SMALL_DIGEST


def test_effect_follows_the_condition_regressor(dataset):
    root = dataset.path
    prefix = _prefix("01", 1, 1)
    events = pd.read_csv(root / "sub-01/ses-1/func" / f"{prefix}_events.tsv", sep="\t")
    deriv = root / "derivatives" / "fmriprep" / "sub-01" / "ses-1" / "func"
    bold = nib.load(deriv / f"{prefix}_space-{MNI}_desc-preproc_bold.nii.gz")
    data = bold.get_fdata(dtype=np.float32)
    mask = nib.load(deriv / f"{prefix}_space-{MNI}_desc-brain_mask.nii.gz")
    mask = np.asanyarray(mask.dataobj)
    outside = mask.astype(bool)
    for box in dataset.active.values():
        outside[box] = False
    frame_times = np.arange(data.shape[3]) * 2.0
    for condition, box in dataset.active.items():
        sel = events[events["trial_type"] == condition]
        regressor, _ = compute_regressor(
            np.vstack([sel["onset"], sel["duration"], np.ones(len(sel))]),
            "glover",
            frame_times,
        )
        inside = data[box].reshape(-1, data.shape[3]).mean(axis=0)
        inside_corr = np.corrcoef(inside, regressor[:, 0])[0, 1]
        outside_corr = np.corrcoef(data[outside].mean(axis=0), regressor[:, 0])[0, 1]
        assert inside_corr > 0.5
        assert inside_corr > outside_corr + 0.3
        # the percent signal change in the box matches effect_size
        design = np.column_stack(
            [regressor[:, 0], np.ones_like(frame_times), frame_times]
        )
        beta = np.linalg.lstsq(design, inside, rcond=None)[0]
        assert 100 * beta[0] / beta[1] == pytest.approx(dataset.effect_size, rel=0.3)


def test_validator_reports_no_error(dataset):
    code, errors = _validate(dataset.path)
    assert errors == []
    assert code == 0
    code, errors = _validate(dataset.path / "derivatives" / "fmriprep")
    assert errors == []
    assert code == 0


def test_validator_no_sessions(tmp_path):
    make_example_dataset(tmp_path, **{**SMALL, "n_subjects": 3, "n_runs": 2})
    code, errors = _validate(tmp_path)
    assert (code, errors) == (0, [])


def test_task_and_conditions_are_chosen(tmp_path):
    """A task label and condition names of one's own: in every name, sidecar and events file;
    the first two conditions take the boxes, a third has no effect."""
    ds = make_example_dataset(tmp_path, task="visMotion", conditions=("VisMot", "VisStat", "flashing board"),
                              **{**SMALL, "n_volumes": 90})
    assert ds.tasks == ("visMotion",)
    assert ds.conditions == ("VisMot", "VisStat", "flashing board")
    assert set(ds.active) == {"VisMot", "VisStat"}
    default = grids.active_boxes((12, 12, 12))
    assert ds.active["VisMot"] == default["audio"] and ds.active["VisStat"] == default["visual"]
    files = _relative_files(tmp_path)
    assert "task-visMotion_bold.json" in files and "task-visMotion_events.json" in files
    assert not any("checkerboard" in f for f in files)
    events = pd.read_csv(tmp_path / "sub-01/func/sub-01_task-visMotion_run-01_events.tsv", sep="\t")
    assert set(events["trial_type"]) == set(ds.conditions)
    levels = json.loads((tmp_path / "task-visMotion_events.json").read_text())["trial_type"]["Levels"]
    assert list(levels) == list(ds.conditions)
    preproc = next((tmp_path / "derivatives/fmriprep/sub-01/func").glob("*_desc-preproc_bold.json"))
    assert json.loads(preproc.read_text())["TaskName"] == "visMotion"
    assert "visMotion" in preproc.name


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task": "a-b"},
        {"conditions": ()},
        {"conditions": ("a", "a")},
        {"conditions": ("a", "n/a")},
        {"n_subjects": 0},
        {"n_runs": 0},
        {"shape": (8, 30, 30)},
        {"n_volumes": 10},
        {"spaces": ("MNI_bad",)},
        {"non_steady_state": 40},
        {"non_steady_state": -1},
    ],
)
def test_invalid_parameters(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_example_dataset(tmp_path, **{**SMALL, **kwargs})


# --------------------------------------------------------------------------
# command line


def test_main(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [str(out), "--subjects", "2", "--sessions", "1", "--runs", "1"]
        + ["--shape", "12", "12", "12", "--volumes", "40", "--tr", "1.5"]
        + ["--seed", "1", "--no-derivatives"]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-01", "sub-02"]
    assert not (out / "derivatives").exists()
    top = json.loads((out / f"task-{TASK}_bold.json").read_text())
    assert top["RepetitionTime"] == 1.5
    bold = nib.load(out / "sub-02/func/sub-02_task-checkerboard_run-01_bold.nii.gz")
    assert bold.header.get_zooms()[3] == pytest.approx(1.5)


def test_main_task_and_conditions(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main([str(out), "--subjects", "1", "--sessions", "1", "--runs", "1", "--shape", "12", "12", "12",
                 "--volumes", "40", "--no-derivatives", "--task", "stroop", "--conditions", "congruent", "incongruent"])
    assert code == 0
    events = pd.read_csv(out / "sub-01/func/sub-01_task-stroop_run-01_events.tsv", sep="\t")
    assert set(events["trial_type"]) == {"congruent", "incongruent"}


def test_main_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--subjects", "0"])
    assert exc.value.code == 2
    assert "n_subjects" in capsys.readouterr().err


def test_main_refuses_a_file_or_a_dataset_of_other_subjects(tmp_path, capsys):
    """A file: a traceback (exit 1); a dataset of more subjects: merged, its participants.tsv
    listing fewer subjects than its sub-* folders."""
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "file")])
    assert exc.value.code == 2 and "is a file; give a folder" in capsys.readouterr().err
    out = tmp_path / "ds"
    small = ["--sessions", "1", "--runs", "1", "--shape", "12", "12", "12", "--volumes", "40", "--no-derivatives"]
    assert main([str(out), "--subjects", "2", *small]) == 0
    assert main([str(out), "--subjects", "2", *small]) == 0  # the same dataset again (the quick start rerun)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([str(out), "--subjects", "1", *small])
    assert exc.value.code == 2 and "holds sub-02, which a dataset of 1 subject(s) does not" in capsys.readouterr().err


@pytest.mark.parametrize("fewer", [["--runs", "1"], ["--sessions", "1"], ["--task", "other"]])
def test_main_refuses_a_dataset_of_other_runs(tmp_path, capsys, fewer):
    """Written again with fewer runs or sessions, or another task, a dataset kept the earlier
    runs' files beside its own; it is refused, the folder left as it was."""
    out = tmp_path / "ds"
    small = ["--subjects", "1", "--shape", "12", "12", "12", "--volumes", "40"]
    assert main([str(out), *small, "--runs", "2", "--sessions", "2"]) == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([str(out), *small, "--runs", "2", "--sessions", "2", *fewer])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"{out} holds files of runs" in err and "(sub-01_ses-" in err, err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_runnable_as_module(tmp_path):
    env = dict(os.environ)
    paths = [str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    out = tmp_path / "module"
    proc = subprocess.run(
        [sys.executable, "-m", "bids_fixedfx.example_data", str(out)]
        + ["--subjects", "1", "--sessions", "1", "--runs", "1"]
        + ["--shape", "12", "12", "12", "--volumes", "40"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert (out / "derivatives" / "fmriprep" / "dataset_description.json").is_file()


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    (entry,) = [
        e for e in entry_points(group="console_scripts") if e.name == "bids-fixedfx-example"
    ]
    assert entry.value == "bids_fixedfx.example_data:main"
    assert entry.load() is main
