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
from bids_fixedfx import naming, outputs
from bids_fixedfx.discover import validator_command
from bids_fixedfx.settings import STATS

SPACE = "MNI152NLin2009cAsym"


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

    def to_bytes(self):  # a .nii.gz is serialised first, then compressed into the temporary file
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


def test_json_never_holds_nan_or_infinity(tmp_path):
    """Python writes NaN and Infinity, which are not JSON (the BIDS validator and JSON readers
    refuse them): such values are written as null."""
    import json

    path = outputs.write_json({"Threshold": float("inf"), "Values": [1.5, float("nan")],
                               "Nested": {"Low": -np.inf, "Fine": np.float64(2.0)}}, tmp_path / "side.json")
    read = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} written"))
    assert read == {"Threshold": None, "Values": [1.5, None], "Nested": {"Low": None, "Fine": 2.0}}


def test_interrupted_write_leaves_no_file(tmp_path):
    class Interrupting:
        def to_filename(self, filename):
            Path(filename).write_bytes(b"x")
            raise KeyboardInterrupt

        def to_bytes(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        outputs.write_nifti(Interrupting(), tmp_path / "map.nii.gz")
    assert _only(tmp_path) == []


def test_write_statmaps_writes_five_maps_and_sidecars(tmp_path):
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    contrast = SimpleNamespace(name="audio - visual", label="audioVisual", weights={"audio": 1.0, "visual": -1.0})
    maps = SimpleNamespace(contrast=contrast, maps={stat: img for stat in STATS}, dof=80.0)
    sidecar = {"Sources": ["bids::x"], "DegreesOfFreedom": 80.0}
    written = outputs.write_statmaps("subject_statmap", maps, outputs.Direct(tmp_path), sidecar, subject="01",
                                     task="x", space="T1w")
    assert written == [
        naming.build("subject_statmap", subject="01", task="x", space="T1w", contrast="audioVisual", stat=stat,
                      extension=".nii.gz")
        for stat in STATS
    ]
    for path, stat in zip((tmp_path / w for w in written), STATS):
        side = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert side["Statistic"] == stat
        assert side["DegreesOfFreedom"] == 80.0
    assert len(list(tmp_path.rglob("*"))) == 2 + 2 * len(STATS)  # sub-01, func, maps and sidecars


# ---------------------------------------------------------------- sidecars


def test_sources_resolve_by_file_name(tmp_path):
    output_dir = tmp_path / "out"
    bids_dir = tmp_path / "bids"
    ours = output_dir / "sub-01" / "func" / "sub-01_task-x_run-1_contrast-c_stat-effect_statmap.nii.gz"
    theirs = bids_dir / "derivatives" / "fmriprep" / "sub-01" / "func" / "sub-01_task-x_run-1_desc-preproc_bold.nii.gz"
    uri = outputs.source(ours, output_dir)
    assert uri == "bids::sub-01/func/" + ours.name
    relative = outputs.source(theirs, output_dir)  # no dataset named: a path relative to OUTPUT_DIR
    assert not Path(relative).is_absolute()
    assert (output_dir / relative).resolve() == theirs.resolve()
    assert relative.endswith(theirs.name)
    datasets = outputs.dataset_names(bids_dir, [bids_dir / "derivatives" / "fmriprep"])
    assert set(datasets) == {"raw", "fmriprep"}
    uri = outputs.source(theirs, output_dir, datasets)  # the innermost dataset names it
    assert uri == "bids:fmriprep:sub-01/func/" + theirs.name
    links = outputs.dataset_links(output_dir, datasets)
    assert (output_dir / links["fmriprep"] / "sub-01/func" / theirs.name).resolve() == theirs.resolve()
    raw = bids_dir / "sub-01" / "func" / "sub-01_task-x_run-1_events.tsv"
    assert outputs.source(raw, output_dir, datasets) == "bids:raw:sub-01/func/sub-01_task-x_run-1_events.tsv"


def test_dataset_links_lead_to_the_inputs_through_a_linked_derivatives_folder(tmp_path):
    """``BIDS_DIR/derivatives`` a link to a scratch folder, OUTPUT_DIR inside it: ``raw`` was
    ``../..`` (the scratch folder, seen from where the output really is)."""
    bids_dir = tmp_path / "ds"
    (bids_dir / "sub-01" / "func").mkdir(parents=True)
    (tmp_path / "scratch" / "derivs" / "fmriprep").mkdir(parents=True)
    (bids_dir / "derivatives").symlink_to(tmp_path / "scratch" / "derivs")
    output_dir = bids_dir / "derivatives" / "glm"
    output_dir.mkdir()
    links = outputs.dataset_links(output_dir, outputs.dataset_names(bids_dir, [bids_dir / "derivatives" / "fmriprep"]))
    real = Path(os.path.realpath(output_dir))
    assert os.path.realpath(real / links["raw"] / "sub-01") == os.path.realpath(bids_dir / "sub-01")
    assert os.path.realpath(real / links["fmriprep"]) == str(tmp_path / "scratch" / "derivs" / "fmriprep")


# ---------------------------------------------------------------- dataset files


def test_dataset_description(tmp_path):
    bids_dir = tmp_path / "data" / "bids"
    output_dir = tmp_path / "results" / "fixedfx"
    outputs.write_dataset_files(bids_dir, output_dir)
    description = json.loads((output_dir / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["Name"]
    assert description["BIDSVersion"]
    generated, *libraries = description["GeneratedBy"]
    assert generated["Name"] == "bids-fixedfx"
    from importlib import metadata

    recorded = {entry["Name"]: entry["Version"] for entry in libraries}
    assert {"nilearn", "pybids", "nibabel", "numpy"} <= set(recorded)
    assert recorded["nilearn"] == metadata.version("nilearn")
    assert generated["Version"] == bids_fixedfx.__version__
    assert generated["CodeURL"].startswith("https://")
    (source_dataset,) = description["SourceDatasets"]
    url = source_dataset["URL"]
    assert (output_dir / url).resolve() == bids_dir.resolve() or url.startswith(("file:", "bids:", "http"))
    assert (output_dir / ".bidsignore").is_file()
    assert _only(output_dir) == sorted([".bidsignore", "README.md", "dataset_description.json"])
    # the derivatives read are sources too (only the raw dataset was listed)
    fmriprep = tmp_path / "data" / "fmriprep"
    outputs.write_dataset_files(bids_dir, output_dir, outputs.dataset_names(bids_dir, [fmriprep]))
    sources = [s["URL"] for s in json.loads((output_dir / "dataset_description.json").read_text())["SourceDatasets"]]
    assert [(output_dir / url).resolve() for url in sources] == [bids_dir.resolve(), fmriprep.resolve()]


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
            outputs.write_map(img, outputs.Direct(out), kind, contrast="audio", stat=stat, **entities)
            outputs.write_json({"Statistic": stat},
                               out / naming.build(kind, contrast="audio", stat=stat, extension=".json", **entities))
    outputs.write_tsv(pd.DataFrame({"audio": [0.0, 1.0]}), out / naming.build("design", extension=".tsv", **run))
    outputs.write_json({}, out / naming.build("design", extension=".json", **run))
    for kind, entities in [
        ("subject_mask", dict(subject="01", task="checkerboard", space=SPACE)),
        ("group_mask", dict(task="checkerboard", space=SPACE)),
    ]:
        outputs.write_map(mask, outputs.Direct(out), kind, **entities)
        outputs.write_json(outputs.mask_sidecar("brain", SPACE, []), out / naming.build(kind, extension=".json", **entities))
    done = subprocess.run([command, "--format", "json", str(out)], capture_output=True, text=True, check=False)
    report = json.loads(done.stdout)
    errors = [(i.get("code"), i.get("location")) for i in report["issues"]["issues"] if i.get("severity") == "error"]
    assert errors == []
    # maps and masks state their units (masks kept an input's header without them: a warning)
    assert not [i for i in report["issues"]["issues"] if i.get("code") == "NIFTI_UNIT"]


# ---------------------------------------------------------------- sets of files


def test_staging_replaces_a_set_and_leaves_nothing_behind(tmp_path):
    old = tmp_path / "sub-01" / "func"
    old.mkdir(parents=True)
    (old / "sub-01_task-x_contrast-old_stat-z_statmap.nii.gz").write_bytes(b"old")
    (old / "sub-01_task-y_contrast-old_stat-z_statmap.nii.gz").write_bytes(b"other task")
    (old / ".sub-01_task-x_contrast-old_stat-z_statmap.nii.gz.k3j.nii.gz").write_bytes(b"leftover")
    stale = outputs.existing_set(tmp_path, "sub-01", subject="01", task="x", space=(None,))
    assert len(stale) == 2
    with outputs.Staging(tmp_path, "sub-01_task-x_space-none") as staging:
        target = Path("sub-01/func/sub-01_task-x_contrast-new_stat-z_statmap.nii.gz")
        outputs.write_text("new", staging.path(target))
        assert not (tmp_path / target).exists()  # nothing in place until the set is complete
        staging.commit(stale)
    assert sorted(p.name for p in old.iterdir()) == [
        "sub-01_task-x_contrast-new_stat-z_statmap.nii.gz", "sub-01_task-y_contrast-old_stat-z_statmap.nii.gz"]
    assert not (tmp_path / outputs.STAGING_ROOT).exists()


def test_staging_removes_the_folders_its_stale_files_left_empty(tmp_path):
    """A rerun without reports removed an earlier job's figures and left their folder empty."""
    figures = tmp_path / "sub-01" / "figures"
    figures.mkdir(parents=True)
    (figures / "sub-01_task-x_contrast-a_stat-z_statmap.svg").write_text("old")
    other = tmp_path / "sub-01" / "ses-1" / "figures"
    other.mkdir(parents=True)
    (other / "sub-01_ses-1_task-y_design.svg").write_text("another task's")
    stale = outputs.existing_set(tmp_path, "sub-01", subject="01", task="x", space=(None,))
    assert stale == [Path("sub-01/figures/sub-01_task-x_contrast-a_stat-z_statmap.svg")]
    with outputs.Staging(tmp_path, "sub-01_task-x_space-none") as staging:
        outputs.write_text("new", staging.path(Path("sub-01/func/sub-01_task-x_contrast-a_stat-z_statmap.nii.gz")))
        staging.commit(stale)
    assert not figures.exists() and other.is_dir() and (tmp_path / "sub-01" / "func").is_dir()


def test_a_stopping_signal_among_the_moves_acts_once_the_set_is_in_place(tmp_path, monkeypatch):
    """A SIGTERM (SLURM's time limit) while a set was moved into place stopped the moves: a
    subject's new effect map beside its earlier variance map, which the group level combined."""
    import signal

    class Stopped(Exception):
        pass

    def stop(number, frame):
        raise Stopped(number)

    names = [Path(f"sub-01/func/sub-01_task-x_contrast-a_stat-{stat}_statmap.nii.gz")
             for stat in ("effect", "variance")]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("earlier")
    replace = os.replace

    def replace_then_signal(source, target):
        replace(source, target)
        signal.raise_signal(signal.SIGTERM)  # after the first move

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stopped):
            with outputs.Staging(tmp_path, "sub-01_task-x_space-none") as staging:
                for name in names:
                    outputs.write_text("new", staging.path(name))
                monkeypatch.setattr(outputs.os, "replace", replace_then_signal)
                staging.commit()
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert [(tmp_path / name).read_text() for name in names] == ["new", "new"]


def test_a_killed_jobs_temporary_files_outside_the_sets_are_removed_by_a_later_job(tmp_path, example_dataset):
    """A job killed between writing a file under its temporary name and renaming it left
    .dataset_description.json.XXXXXXXX.json (and the like in logs/ and models/) for ever."""
    import time

    stale = [tmp_path / ".dataset_description.json.abc12345.json", tmp_path / ".sub-01.html.k3j_x9zq.html",
             tmp_path / "logs" / ".CITATION.md.aaaaaaaa.md",
             tmp_path / "models" / ".model-default_smdl.json.b_c1d2e3.json"]
    fresh = tmp_path / ".group.html.zzzzzzzz.html"  # another job's, being written
    ours = [tmp_path / ".bidsignore", tmp_path / ".notes.txt"]
    for path in [*stale, fresh, *ours]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    old = time.time() - 2 * outputs.STALE_TEMPORARY
    for path in stale:
        os.utime(path, (old, old))
    os.utime(ours[1], (old, old))
    outputs.write_dataset_files(example_dataset.path, tmp_path)
    assert not any(path.exists() for path in stale)
    assert fresh.exists() and all(path.exists() for path in ours)


def test_a_failed_set_keeps_the_earlier_one(tmp_path):
    earlier = tmp_path / "sub-01" / "func" / "sub-01_task-x_contrast-a_stat-z_statmap.nii.gz"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"earlier")
    with pytest.raises(RuntimeError):
        with outputs.Staging(tmp_path, "sub-01_task-x_space-none") as staging:
            outputs.write_text("new", staging.path(earlier.relative_to(tmp_path)))
            raise RuntimeError("the fit failed")
    assert earlier.read_bytes() == b"earlier"
    assert not (tmp_path / outputs.STAGING_ROOT).exists()


def test_staging_removes_leftovers_of_a_killed_run_of_the_same_set(tmp_path):
    leftover = tmp_path / outputs.STAGING_ROOT / "sub-01_task-x_space-none.dead"
    leftover.mkdir(parents=True)
    (leftover / "half.nii.gz").write_bytes(b"half")
    other = tmp_path / outputs.STAGING_ROOT / "sub-02_task-x_space-none.alive"
    other.mkdir()
    with outputs.Staging(tmp_path, "sub-01_task-x_space-none") as staging:
        staging.commit()
    assert not leftover.exists() and other.exists()  # another job's set is left alone


def test_a_set_staged_twice_in_one_run_keeps_the_first_until_it_is_moved(tmp_path):
    """The group level stages every test before it moves any: a second set of the same name
    must not remove the first as a leftover."""
    with outputs.Staging(tmp_path, "group_task-x") as first:
        outputs.write_text("a", first.path("group/a.txt"))
        with outputs.Staging(tmp_path, "group_task-x") as second:
            outputs.write_text("b", second.path("group/b.txt"))
            first.commit()
            second.commit()
    assert (tmp_path / "group" / "a.txt").read_text() == "a" and (tmp_path / "group" / "b.txt").read_text() == "b"


def test_a_set_is_staged_when_another_job_removes_the_empty_staging_root_meanwhile(tmp_path, monkeypatch):
    """A job ending removes the staging root when it is empty; between another job making the root
    and its set's folder in it, that failed the other job ('No such file or directory')."""
    import tempfile

    made = tempfile.mkdtemp
    removed = []

    def after_the_other_job_ended(*args, **kwargs):
        if not removed:  # the first attempt finds the root gone
            removed.append(True)
            (tmp_path / outputs.STAGING_ROOT).rmdir()
        return made(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", after_the_other_job_ended)
    with outputs.Staging(tmp_path, "sub-02_task-x_space-none") as staging:
        path = staging.path("sub-02/x.txt")
        path.parent.mkdir(parents=True)
        path.write_text("x")
        staging.commit()
    assert removed and (tmp_path / "sub-02" / "x.txt").read_text() == "x"


def test_a_dataset_keeps_its_name_and_another_gets_one_of_its_own(tmp_path):
    """Per-subject jobs over per-subject fMRIPrep folders (a/fmriprep, b/fmriprep) each named theirs
    'fmriprep': the second job re-pointed the link, and the first subject's Sources broke."""
    bids, first, second = tmp_path / "raw", tmp_path / "a" / "fmriprep", tmp_path / "b" / "fmriprep"
    for folder in (bids, first, second):
        folder.mkdir(parents=True)
    out = tmp_path / "out"
    outputs.write_dataset_files(bids, out, outputs.dataset_names(bids, [first]))
    earlier = outputs.linked_datasets(out)
    assert outputs.dataset_names(bids, [second], earlier=earlier) == {"raw": bids, "fmriprep2": second}
    assert outputs.dataset_names(bids, [first], earlier=earlier) == {"raw": bids, "fmriprep": first}
    outputs.write_dataset_files(bids, out, outputs.dataset_names(bids, [second], earlier=earlier))
    links = json.loads((out / "dataset_description.json").read_text())["DatasetLinks"]
    assert (out / links["fmriprep"]).resolve() == first.resolve()
    assert (out / links["fmriprep2"]).resolve() == second.resolve()


def test_a_dataset_is_renamed_only_when_its_name_is_taken_by_another_folder(tmp_path):
    """A folder of two names (--mask in BIDS_DIR's top folder: raw and mask) had its first set's
    sidecars renamed from bids:raw: to bids:mask:, unlike every later set's."""
    from bids_fixedfx.outputs import rename_sources, renamed_datasets

    raw, first, second = tmp_path / "bids", tmp_path / "a" / "fmriprep", tmp_path / "b" / "fmriprep"
    same = {"raw": raw, "mask": raw, "fmriprep": first}
    assert renamed_datasets(same, dict(same)) == {}
    taken = renamed_datasets({"raw": raw, "fmriprep": first}, {"raw": raw, "fmriprep": second, "fmriprep2": first})
    assert taken == {"fmriprep": "fmriprep2"}
    sidecar = {"Sources": ["bids:raw:sub-01/func/x_events.tsv", "bids:fmriprep:sub-01/func/x_bold.nii.gz",
                           "bids::sub-01/func/x_design.tsv"], "Contrast": {"Name": "bids:fmriprep:not-a-uri?"}}
    assert rename_sources(sidecar, taken) == {**sidecar, "Sources": [
        "bids:raw:sub-01/func/x_events.tsv", "bids:fmriprep2:sub-01/func/x_bold.nii.gz", "bids::sub-01/func/x_design.tsv"]}
    assert rename_sources({"BOLD": "bids:fmriprep:x_bold.nii.gz"}, taken) == {"BOLD": "bids:fmriprep2:x_bold.nii.gz"}


def test_a_set_whose_folder_cannot_be_written_replaces_nothing(tmp_path, monkeypatch):
    """A subject's figures/ folder another user owns: the moves stopped at its first file, with
    the maps before it replaced and those after it not (exit 1); now nothing moves, and the
    folder is named (64)."""
    from bids_fixedfx.errors import UsageError

    names = [Path("sub-01/func/sub-01_task-x_contrast-a_stat-z_statmap.nii.gz"),
             Path("sub-01/figures/sub-01_task-x_run-01_desc-design_matrix.png")]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"old")
    locked = tmp_path / "sub-01" / "figures"
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and access(path, mode))
    with outputs.Staging(tmp_path, "sub-01_task-x_space-none") as staging:
        for name in names:
            outputs.write_text("new", staging.path(name))
        with pytest.raises(UsageError, match=f"{locked} cannot be written by this user, so the outputs of "
                                             "sub-01_task-x_space-none were not replaced"):
            staging.commit()
    assert [(tmp_path / name).read_bytes() for name in names] == [b"old", b"old"]


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_set_whose_moves_fail_partway_is_put_back_as_it_was(tmp_path, monkeypatch, hard_links):
    """A full disk among the moves (a new folder to make) left the set half replaced: the new
    effect map beside the earlier variance map, the stale map removed. On a file system
    without hard links, the earlier files are moved aside instead (they were deleted)."""
    import errno

    if not hard_links:
        def no_link(*args, **kwargs):
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(outputs.os, "link", no_link)

    earlier = {Path(f"sub-01/func/sub-01_task-x_contrast-a_stat-{stat}_statmap.nii.gz"): f"earlier {stat}".encode()
               for stat in ("effect", "variance")}
    stale = Path("sub-01/func/sub-01_task-x_contrast-gone_stat-z_statmap.nii.gz")
    earlier[stale] = b"earlier z"
    for name, data in earlier.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    new = [*[name for name in earlier if name != stale], Path("sub-01/figures/sub-01_task-x_desc-design_matrix.png")]
    replace, moves, failed = os.replace, [], []

    def replace_until_full(source, target):
        into_place = outputs.STAGING_ROOT in str(source) and outputs.EARLIER not in str(source)
        if into_place and sum(outputs.STAGING_ROOT not in str(t) for t in moves) == 2 and not failed:
            failed.append(target)  # the third move into place: the disk is full (putting back needs no space)
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        moves.append(target)
        replace(source, target)

    with pytest.raises(OSError, match="No space left"):
        with outputs.Staging(tmp_path, "sub-01_task-x_space-none") as staging:
            for name in reversed(new):  # the figure first: a folder made for it
                outputs.write_text("new", staging.path(name))
            monkeypatch.setattr(outputs.os, "replace", replace_until_full)
            staging.commit([stale])
    # the figure and one map moved in, the three earlier maps put back (and moved aside first, without links)
    assert len(moves) == (2 + 3 if hard_links else 3 + 2 + 3) and failed
    assert {name: (tmp_path / name).read_bytes() for name in earlier} == earlier
    assert not (tmp_path / "sub-01" / "figures").exists()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == sorted(earlier)


def test_an_f_contrast_s_rows_are_its_numerator_degrees_of_freedom():
    """F sidecars stated the denominator's degrees of freedom only (DegreesOfFreedom)."""
    from bids_fixedfx.group import GroupContrast
    from bids_fixedfx.outputs import f_rows

    assert f_rows(GroupContrast("any", "any", [{"a": 1.0}, {"b": 1.0}, {"c": 1.0}], "F")) == 3
    assert f_rows(SimpleNamespace(vector=np.eye(4)[:2])) == 2
    assert f_rows(SimpleNamespace(vector=np.eye(4)[0])) == 1


def test_links_of_a_moved_output_dir_lead_to_the_datasets_from_its_new_place(tmp_path):
    """OUTPUT_DIR moved a folder deeper: the group level rewrote the raw link only, its fmriprep
    link led nowhere (the methods text lost fMRIPrep and its citation), and a later participant
    job named the same derivatives fmriprep2."""
    bids = tmp_path / "ds"
    fmriprep = bids / "derivatives" / "fmriprep"
    fmriprep.mkdir(parents=True)
    first = tmp_path / "out"
    outputs.write_dataset_files(bids, first, {"raw": bids, "fmriprep": fmriprep})
    written = json.loads((first / "dataset_description.json").read_text())["DatasetLinks"]
    assert written == {"raw": "../ds", "fmriprep": "../ds/derivatives/fmriprep"}
    moved = tmp_path / "moved" / "out"
    moved.parent.mkdir()
    first.rename(moved)
    assert outputs.linked_datasets(moved, bids)["fmriprep"] == moved / "../../ds/derivatives/fmriprep"
    outputs.write_dataset_files(bids, moved)  # the group level: BIDS_DIR's datasets only
    links = json.loads((moved / "dataset_description.json").read_text())["DatasetLinks"]
    assert links == {"raw": "../../ds", "fmriprep": "../../ds/derivatives/fmriprep"}
    assert all((moved / link).is_dir() for link in links.values())

