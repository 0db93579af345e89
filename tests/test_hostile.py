"""Hostile input, as an attacker or a careless web form would send it (SPEC §1, §4).

Each case asserts the exit code, one sentence naming the culprit, an input dataset that is
byte-identical afterwards, and no file written.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_fixedfx.cli import main
from bids_fixedfx.example_data import make_example_dataset
from bids_fixedfx.settings import MOTION_CONFOUNDS
from tools import checksums, fails

pytestmark = pytest.mark.slow  # runs of the app; pytest -m 'not slow' leaves them out

EXPLOITS = [
    'audio.__class__.__init__.__globals__["sys"].modules["os"].system("touch PWNED")',
    'audio.to_csv("PWNED")',
    "audio.to_csv(PWNED)",
    '__import__("os").system("touch PWNED")',
    "@audio",
]


@pytest.fixture
def one_subject(fresh_dataset):
    return fresh_dataset(subjects=("01",))


@pytest.mark.parametrize("expression", EXPLOITS)
def test_contrast_expressions_are_never_evaluated(one_subject, tmp_path, capsys, monkeypatch, expression):
    monkeypatch.chdir(tmp_path)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation",
                   "--contrast", f"x={expression}"], 64, "--contrast x")
    assert not list(tmp_path.rglob("PWNED"))


def test_a_name_with_attribute_syntax_is_just_an_unknown_column(one_subject, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation",
                   "--contrast", "x=audio.__class__"], 64, "--contrast x", "audio.__class__")


# ---------------------------------------------------------------- helpers

SPACE = "MNI152NLin2009cAsym"
QUICK = ["--skip-bids-validation", "--no-reports"]


def preproc(dataset, subject="01", session="1", run="01", space=SPACE):
    return (dataset.path / "derivatives" / "fmriprep" / f"sub-{subject}" / f"ses-{session}" / "func"
            / f"sub-{subject}_ses-{session}_task-checkerboard_run-{run}_space-{space}_desc-preproc_bold.nii.gz")


def brain_mask(dataset, subject="01", session="1", run="01", space=SPACE):
    return preproc(dataset, subject, session, run, space).with_name(
        preproc(dataset, subject, session, run, space).name.replace("desc-preproc_bold", "desc-brain_mask"))


def events(dataset, subject="01", session="1", run="01"):
    return (dataset.path / f"sub-{subject}" / f"ses-{session}" / "func"
            / f"sub-{subject}_ses-{session}_task-checkerboard_run-{run}_events.tsv")


def confounds(dataset, subject="01", session="1", run="01"):
    return preproc(dataset, subject, session, run).parent / (
        f"sub-{subject}_ses-{session}_task-checkerboard_run-{run}_desc-confounds_timeseries.tsv")


@pytest.fixture
def two_subjects(fresh_dataset):
    return fresh_dataset(subjects=("01", "02"))


# ---------------------------------------------------------------- nothing written into the input


def test_output_dir_is_the_preprocessed_input(one_subject, capsys):
    fmriprep = one_subject.path / "derivatives" / "fmriprep"
    before = checksums(fmriprep)
    message = fails(capsys, [one_subject.path, fmriprep, "participant", *QUICK], 64, "OUTPUT_DIR", str(fmriprep),
                    output=fmriprep / "sub-01" / "nothing-new")
    assert "input dataset" in message
    assert checksums(fmriprep) == before


@pytest.mark.parametrize(("where", "said"), [("home", "is the home folder"), ("above", "holds the home folder"),
                                            ("root", "is a file system root")])
def test_output_dir_is_a_home_folder_or_a_root(one_subject, tmp_path, capsys, monkeypatch, where, said):
    home = tmp_path / "users" / "someone"
    (home / "documents").mkdir(parents=True)  # a folder of the user's own, not a dataset
    monkeypatch.setenv("HOME", str(home))
    output = {"home": home, "above": home.parent, "root": Path("/")}[where]
    fails(capsys, [one_subject.path, output, "participant", *QUICK], 64, f"OUTPUT_DIR {output}", said,
          output=home / "documents")
    assert [p.name for p in home.iterdir()] == ["documents"]


def test_output_dir_inside_the_preprocessed_input(one_subject, tmp_path, capsys):
    inside = one_subject.path / "derivatives" / "fmriprep" / "stats"
    fails(capsys, [one_subject.path, inside, "participant", *QUICK], 64, "OUTPUT_DIR", str(inside))
    assert not inside.exists()


@pytest.mark.parametrize("level", ["participant", "group"])
def test_an_input_inside_output_dir_is_refused(one_subject, tmp_path, capsys, level):
    """BIDS_DIR moved to OUTPUT_DIR/group: the group level wrote its maps into the input's root
    (and the participant level its model into OUTPUT_DIR/models, were it there)."""
    output = tmp_path / "out"
    assert main([str(one_subject.path), str(output), "participant", *QUICK]) == 0  # an earlier output
    bids_dir = Path(one_subject.path).rename(output / "group")
    before, written = checksums(bids_dir), checksums(output)
    capsys.readouterr()
    assert main([str(bids_dir), str(output), level, *(QUICK if level == "participant" else ["--no-reports"])]) == 64
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"OUTPUT_DIR {output} holds the input dataset {bids_dir}" in errors[0]
    assert checksums(bids_dir) == before and checksums(output) == written


@pytest.mark.parametrize("option", ["OUTPUT_DIR", "--work-dir", "--bids-database-dir"])
def test_a_refused_location_inside_an_input_makes_no_trial_folder_there(one_subject, tmp_path, capsys, option):
    """The writability check made (and removed) a folder in the input before the refusal."""
    subject = Path(one_subject.path) / "sub-01"
    inside = subject / "stats"
    args = {"OUTPUT_DIR": [inside], "--work-dir": [tmp_path / "out", "-w", inside],
            "--bids-database-dir": [tmp_path / "out", "--bids-database-dir", inside]}[option]
    stamp = subject.stat().st_mtime_ns
    fails(capsys, [one_subject.path, args[0], "participant", *args[1:], *QUICK], 64, option, str(inside))
    assert subject.stat().st_mtime_ns == stamp and not inside.exists()


def test_output_dir_is_the_derivatives_folder_itself(one_subject, capsys):
    folder = one_subject.path / "derivatives"
    before = checksums(one_subject.path)
    assert main([str(one_subject.path), str(folder), "participant", *QUICK]) == 64
    assert "OUTPUT_DIR" in capsys.readouterr().err
    assert checksums(one_subject.path) == before


def test_output_dir_inside_a_given_derivatives_dataset(one_subject, tmp_path, capsys):
    outside = tmp_path / "prep"
    (one_subject.path / "derivatives" / "fmriprep").rename(outside)
    fails(capsys, [one_subject.path, outside / "out", "participant", "-d", outside, *QUICK], 64,
          "OUTPUT_DIR", str(outside))


def test_output_dir_reaching_the_input_through_a_link(one_subject, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(one_subject.path / "derivatives" / "fmriprep")
    fails(capsys, [one_subject.path, link, "participant", *QUICK], 64, "OUTPUT_DIR", output=link / "nothing-new")


@pytest.mark.parametrize("where", ["work", "derivatives/fmriprep/work", "sub-01"])
def test_work_dir_inside_the_input(one_subject, tmp_path, capsys, where):
    work = one_subject.path / where
    existed = work.exists()
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "-w", work, *QUICK], 64, "--work-dir")
    assert work.exists() == existed


def test_work_dir_holds_the_scratch_of_the_validator(one_subject, tmp_path, monkeypatch):
    """--work-dir is the scratch space: the validator (a program the app starts) gets it as
    TMPDIR, and the folder of links of a --participant-label run is made in it."""
    record = tmp_path / "record.txt"
    validator = tmp_path / "validator"
    validator.write_text(f'#!/bin/sh\necho "$TMPDIR|$4" > {record}\necho \'{{"issues": {{"issues": []}}}}\'\n')
    validator.chmod(0o755)
    monkeypatch.setattr("bids_fixedfx.discover.validate.validator_command", lambda: str(validator))
    work = tmp_path / "work"
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", "--participant-label", "01",
                 "-w", str(work), "--no-reports", "--boilerplate-only"]) == 0
    tmpdir, target = record.read_text().strip().split("|")
    assert tmpdir == str(work) and work in Path(target).parents
    assert not list(work.iterdir())  # the folder of links removed


def test_a_new_folder_under_derivatives_is_allowed(one_subject):
    out = one_subject.path / "derivatives" / "fixedfx"
    work = one_subject.path / "derivatives" / "fixedfx-work"
    fmriprep = checksums(one_subject.path / "derivatives" / "fmriprep")
    raw = checksums(one_subject.path / "sub-01")
    assert main([str(one_subject.path), str(out), "participant", "-w", str(work), *QUICK]) == 0
    assert checksums(one_subject.path / "derivatives" / "fmriprep") == fmriprep
    assert checksums(one_subject.path / "sub-01") == raw
    # a rerun into the app's own output is allowed too, and models the preprocessed BOLD
    assert main([str(one_subject.path), str(out), "participant", *QUICK]) == 0
    design = json.loads(next(out.rglob("*run-01_design.json")).read_text())
    assert "desc-preproc" in design["BOLD"]


@pytest.mark.parametrize("special", ["device", "pipe"])
def test_an_events_file_that_is_a_device_or_a_pipe_is_refused(one_subject, tmp_path, capsys, special):
    """A link to /dev/zero filled the memory; a named pipe hung the run."""
    import os

    events = next((one_subject.path / "sub-01").rglob("*run-01_events.tsv"))
    events.unlink()
    if special == "device":
        events.symlink_to("/dev/zero")
    else:
        os.mkfifo(events)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], 66, str(events),
          "not a regular file")



@pytest.mark.parametrize("where", ["model", "output description", "derivatives description"])
def test_a_model_or_description_that_is_a_pipe_is_refused(one_subject, tmp_path, capsys, where):
    """A named pipe as -m, as OUTPUT_DIR's dataset_description.json or as that of a dataset
    given with -d hung the run (and /dev/zero as -m filled the memory)."""
    import os
    import shutil
    import signal

    argv = [one_subject.path, tmp_path / "out", "participant", *QUICK]
    if where == "model":
        pipe, code = tmp_path / "model_smdl.json", 64
        argv += ["-m", pipe]
    elif where == "output description":
        (tmp_path / "out").mkdir()
        pipe, code = tmp_path / "out" / "dataset_description.json", 64
    else:
        fmriprep = tmp_path / "fmriprep"
        shutil.move(one_subject.path / "derivatives" / "fmriprep", fmriprep)
        pipe, code = fmriprep / "dataset_description.json", 66
        pipe.unlink()
        argv += ["-d", fmriprep]
    os.mkfifo(pipe)
    signal.alarm(120)  # a run that hangs on the pipe ends the test run rather than holding it for ever
    try:
        fails(capsys, argv, code, str(pipe), "not a regular file")
        if where == "model":
            fails(capsys, [*argv[:-1], "/dev/zero"], 64, "/dev/zero", "not a regular file")
    finally:
        signal.alarm(0)


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("label", ["../../etc", "01/../02", "*", "01;touch PWNED"])
def test_hostile_participant_labels_are_refused(one_subject, tmp_path, capsys, monkeypatch, label):
    monkeypatch.chdir(tmp_path)
    message = fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--participant-label", label,
                             *QUICK], 64, "--participant-label", "is not a BIDS label")
    assert not list(tmp_path.rglob("PWNED")) and "\n" not in message


def test_contrast_names_become_plain_labels(one_subject, tmp_path):
    out = tmp_path / "out"
    assert main([str(one_subject.path), str(out), "participant", *QUICK,
                 "--contrast", "../../x y=audio-visual", "--contrast", "áudio=audio"]) == 0
    names = {p.name for p in out.rglob("*_statmap.nii.gz")}
    assert any("_contrast-xY_" in n for n in names) and any("_contrast-audio_" in n for n in names)
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


def test_a_contrast_name_without_letters(one_subject, tmp_path, capsys):
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK, "--contrast", "+++=audio"],
          64, "+++")


@pytest.mark.parametrize("where", ["option", "events"])
def test_a_contrast_name_too_long_for_a_file_name(one_subject, tmp_path, capsys, where):
    name = "a" * 200
    options = ["--contrast", f"{name}=audio-visual"]
    if where == "events":
        events = next(one_subject.path.rglob("sub-01_*run-01_events.tsv"))
        table = pd.read_csv(events, sep="\t")
        table.loc[0, "trial_type"] = name
        table.to_csv(events, sep="\t", index=False)
        options = []
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK, *options], 64, "a" * 40, "too long")


def test_a_task_label_too_long_for_any_map_name_is_said_as_the_run_s_fault(tmp_path, capsys):
    """A task label of 150 letters: '--contrast A=audio' was refused as 'Contrast 'A' ... too long
    a name', which no contrast name could mend."""
    dataset = make_example_dataset(tmp_path / "bids", n_subjects=1, n_sessions=1, n_runs=1, shape=(12, 12, 12),
                                   n_volumes=30, spaces=("MNI152NLin2009cAsym",), task="a" * 150)
    said = fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "--contrast", "A=audio"], 66,
                 "has labels too long to name its maps after, whatever their contrast", "shorter labels")
    assert "Contrast 'A'" not in said


# ---------------------------------------------------------------- images


def _truncate(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_bold_of_a_later_subject_stops_everything_before_writing(two_subjects, tmp_path, capsys):
    bold = preproc(two_subjects, subject="02", session="2", run="02")
    _truncate(bold)
    fails(capsys, [two_subjects.path, tmp_path / "out", "participant", *QUICK], 66, bold.name, "truncated")


def test_corrupted_bytes_inside_a_bold_leave_that_subject_absent(two_subjects, tmp_path, capsys):
    import gzip

    bold = preproc(two_subjects, subject="02", session="2", run="02")
    damaged = bytearray(gzip.compress(gzip.decompress(bold.read_bytes()), compresslevel=0))
    damaged[len(damaged) // 2] ^= 0xFF
    bold.write_bytes(bytes(damaged))
    before = checksums(two_subjects.path)
    out = tmp_path / "out"
    assert main([str(two_subjects.path), str(out), "participant", *QUICK]) == 66
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and bold.name in errors[0] and "corrupt" in errors[0]
    assert checksums(two_subjects.path) == before
    assert list((out / "sub-01" / "func").glob("sub-01_task-checkerboard_*_stat-z_statmap.nii.gz"))
    assert not (out / "sub-02").exists()  # complete or absent, never half
    assert not list(out.rglob(".*.nii.gz")) and not (out / ".bids-fixedfx-tmp").exists()


def _save_mask(path, values):
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(values.astype(np.uint8), img.affine), str(path))


def test_an_empty_mask(two_subjects, tmp_path, capsys):
    mask = brain_mask(two_subjects, subject="02")
    _save_mask(mask, np.zeros(nib.load(str(mask)).shape))
    fails(capsys, [two_subjects.path, tmp_path / "out", "participant", *QUICK], 66, mask.name, "empty")


def test_run_masks_with_no_voxel_in_common_stop_before_any_fit(two_subjects, tmp_path, capsys, monkeypatch):
    """Was exit 1 with nilearn's 'The mask is invalid as it is empty' after every run was fitted,
    naming neither the subject nor the runs: now exit 66 at planning, naming both."""
    from bids_fixedfx import glm

    for session, run, part in (("1", "01", np.s_[:8]), ("2", "01", np.s_[:8]), ("1", "02", np.s_[8:]),
                               ("2", "02", np.s_[8:])):
        mask = brain_mask(two_subjects, session=session, run=run)
        values = np.asanyarray(nib.load(str(mask)).dataobj).copy()
        values[part] = 0
        _save_mask(mask, values)
    monkeypatch.setattr(glm, "fit_masked", lambda *a, **k: pytest.fail("a run was fitted"))
    error = fails(capsys, [two_subjects.path, tmp_path / "out", "participant", *QUICK], 66, "sub-01",
                  "no voxel in common", "sub-01_ses-1_task-checkerboard_run-01", "sub-01_ses-1_task-checkerboard_run-02")
    assert "sub-02" not in error


def test_a_mask_of_three_values(two_subjects, tmp_path, capsys):
    mask = brain_mask(two_subjects, subject="02")
    values = np.asanyarray(nib.load(str(mask)).dataobj).astype(np.uint8)
    values[values > 0] = 1 + (np.arange(int((values > 0).sum())) % 2)
    _save_mask(mask, values)
    fails(capsys, [two_subjects.path, tmp_path / "out", "participant", *QUICK], 66, mask.name)


def test_a_3d_bold(one_subject, tmp_path, capsys):
    bold = preproc(one_subject)
    img = nib.load(str(bold))
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[..., 0], img.affine), str(bold))
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", *QUICK]) == 66
    assert bold.name in capsys.readouterr().err


def test_a_bold_that_is_not_nifti(one_subject, tmp_path, capsys):
    bold = preproc(one_subject)
    bold.write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", *QUICK]) == 66
    err = capsys.readouterr().err
    assert bold.name in err and "Processing failed" not in err


@pytest.mark.parametrize("where, text, named", [
    ("", "[1, 2]", "JSON object"),
    ("derivatives/fmriprep/", "[1, 2]", "JSON object"),
    ("derivatives/fmriprep/", '{"Name": "x", "BIDSVersion": "1.8.0", "DatasetType": "derivative", "GeneratedBy": [5]}',
     "GeneratedBy"),
    ("derivatives/fmriprep/", '{"Name": "x", "BIDSVersion": "1.8.0", "DatasetType": "derivative", "GeneratedBy": {}}',
     "GeneratedBy"),
    ("derivatives/fmriprep/", '\ufeff{"Name": "x", "BIDSVersion": "1.8.0", "DatasetType": "derivative"}',
     "byte-order mark"),  # as some editors save it: pybids raised its JSON error
    # a copied description: pybids read none of the raw files, and the events were said to be missing
    ("", '{"Name": "x", "BIDSVersion": "1.8.0", "DatasetType": "derivative"}', 'give it the DatasetType "raw"'),
])
def test_a_dataset_description_pybids_cannot_read(one_subject, tmp_path, capsys, where, text, named):
    description = one_subject.path / where / "dataset_description.json"
    description.write_text(text)
    message = fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], 66,
                    str(description), output=tmp_path / "out")
    assert named in message and "Processing failed" not in message


# ---------------------------------------------------------------- tables


def test_a_negative_duration_without_validation(one_subject, tmp_path, capsys):
    path = events(one_subject)
    table = pd.read_csv(path, sep="\t")
    table.loc[1, "duration"] = -4
    table.to_csv(path, sep="\t", index=False)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], 66, path.name, "negative")


def test_conditions_of_one_file_label_in_two_runs_are_not_combined(one_subject, tmp_path, capsys):
    """face-1 in one run and face_1 in another both make the label face1: refused (as within a
    run), where the subject's maps combined the two conditions as one without a word."""
    first, second = sorted(one_subject.path.rglob("sub-01_*_events.tsv"))[:2]
    for path, name in ((first, "face-1"), (second, "face_1")):
        table = pd.read_csv(path, sep="\t")
        table["trial_type"] = table["trial_type"].replace({"audio": name})
        assert (table["trial_type"] == name).any()
        table.to_csv(path, sep="\t", index=False)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], 64, "'face-1'", "'face_1'",
          "face1", output=tmp_path / "out")


def test_a_trial_type_with_a_trailing_space_names_the_events_file(one_subject, tmp_path, capsys):
    """'audio ' in one row of one run: it blamed the contrasts and sent the user to --contrast (64)."""
    path = events(one_subject)
    table = pd.read_csv(path, sep="\t", keep_default_na=False)
    table.loc[(table["trial_type"] == "audio").idxmax(), "trial_type"] = "audio "
    table.to_csv(path, sep="\t", index=False)
    message = fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], 66, str(path),
                    "'audio'", "'audio '", output=tmp_path / "out")
    assert "--contrast" not in message


def test_a_non_numeric_onset(one_subject, tmp_path, capsys):
    path = events(one_subject)
    table = pd.read_csv(path, sep="\t")
    table["onset"] = table["onset"].astype(object)
    table.loc[0, "onset"] = "soon"
    table.to_csv(path, sep="\t", index=False)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], 66, path.name, "soon")


def test_infinite_confounds(one_subject, tmp_path, capsys):
    path = confounds(one_subject)
    table = pd.read_csv(path, sep="\t")
    table.loc[3, "trans_x"] = np.inf
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], 66, path.name, "infinite")


def test_binary_garbage_as_events(one_subject, tmp_path, capsys):
    path = events(one_subject)
    path.write_bytes(bytes(range(256)) * 4)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], 66, path.name)


# ---------------------------------------------------------------- designs


@pytest.mark.parametrize("second", ["npz", "padded"])
def test_two_designs_for_one_run_are_refused(one_subject, tmp_path, capsys, second):
    """A .tsv beside a .npz of one run: the .npz was taken without a word, and the .tsv said to
    match no run."""
    design_dir = tmp_path / "designs"
    design_dir.mkdir()
    bold = sorted((one_subject.path / "derivatives").rglob(f"*space-{SPACE}_desc-preproc_bold.nii.gz"))[0]
    stem, rows = naming_stem(bold), nib.load(str(bold)).shape[3]
    design = pd.DataFrame({"a": np.sin(np.arange(rows)), "constant": np.ones(rows)})
    design.to_csv(design_dir / f"{stem}_design.tsv", sep="\t", index=False)
    if second == "npz":
        other = f"{stem}_design.npz"
        np.savez(design_dir / other, X=design.to_numpy())
    else:
        other = f"{stem.replace('run-01', 'run-1')}_design.tsv"
        design.to_csv(design_dir / other, sep="\t", index=False)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK, "--design-dir", design_dir], 64,
          f"holds 2 designs for {stem}", f"{stem}_design.tsv", other, "keep one of them")


def test_a_pickled_npz_design_is_not_loaded(one_subject, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    design_dir = tmp_path / "designs"
    design_dir.mkdir()
    for bold in (one_subject.path / "derivatives").rglob(f"*space-{SPACE}_desc-preproc_bold.nii.gz"):
        stem = naming_stem(bold)
        rows = nib.load(str(bold)).shape[3]
        np.savez(design_dir / f"{stem}_design.npz", X=np.array([[object()] * 2] * rows, dtype=object))
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK, "--design-dir", design_dir], 66,
          "_design.npz")


def naming_stem(bold):
    from bids_fixedfx import naming

    entities = naming.parse(bold.relative_to(bold.parents[3]))
    keys = [("subject", "sub"), ("session", "ses"), ("task", "task"), ("run", "run")]
    return naming.run_name([(key, entities[name]) for name, key in keys if name in entities])


def _shorten(bold, n_volumes):
    img = nib.load(str(bold))
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[..., :n_volumes], img.affine, img.header), str(bold))


def test_a_run_without_degrees_of_freedom_is_left_out_and_recorded(one_subject, tmp_path, capsys):
    bold = preproc(one_subject, session="2", run="02")
    _shorten(bold, 2)
    path = confounds(one_subject, session="2", run="02")
    pd.read_csv(path, sep="\t").iloc[:2].to_csv(path, sep="\t", index=False, na_rep="n/a")
    out = tmp_path / "out"
    assert main([str(one_subject.path), str(out), "participant", *QUICK]) == 0
    err = capsys.readouterr().err
    assert "sub-01_ses-2_task-checkerboard_run-02 was left out" in err and "degrees of freedom" in err
    sidecar = json.loads(next((out / "sub-01" / "func").glob("sub-01_task-checkerboard_*_stat-z_statmap.json"))
                         .read_text())
    assert sidecar["FixedEffects"]["NumberOfRuns"] == 3
    assert sidecar["FixedEffects"]["RunsLeftOut"][0]["Run"] == "sub-01_ses-2_task-checkerboard_run-02"
    assert not list(out.rglob("*ses-2_task-checkerboard_run-02_*statmap*"))
    assert not any("run-02" in s and "ses-2" in s for s in sidecar["Sources"])


@pytest.mark.parametrize("empty", ["header only", "every trial_type n/a"])
def test_a_run_without_events_is_left_out_and_recorded(one_subject, tmp_path, capsys, empty):
    """Was a warning only: the subject's sidecars said NumberOfRuns 3 with no RunsLeftOut."""
    path = events(one_subject, session="2", run="02")
    table = pd.read_csv(path, sep="\t")
    (table.iloc[:0] if empty == "header only" else table.assign(trial_type="n/a")).to_csv(
        path, sep="\t", index=False, na_rep="n/a")
    out = tmp_path / "out"
    assert main([str(one_subject.path), str(out), "participant", *QUICK]) == 0
    assert "sub-01_ses-2_task-checkerboard_run-02 has no contrast to compute and was left out" in (
        capsys.readouterr().err)
    for path in sorted((out / "sub-01" / "func").glob("sub-01_task-checkerboard_*_statmap.json")):
        combination = json.loads(path.read_text())["FixedEffects"]
        assert combination["NumberOfRuns"] == 3, path.name
        assert [left["Run"] for left in combination["RunsLeftOut"]] == ["sub-01_ses-2_task-checkerboard_run-02"]
        assert "no contrast" in combination["RunsLeftOut"][0]["Reason"]


def test_a_condition_whose_events_all_start_after_the_run_leaves_that_run_out_of_its_contrast(one_subject, tmp_path,
                                                                                              capsys):
    """Was combined: the run's empty 'audio' regressor (estimate 0) halved the subject's effect."""
    from nilearn.glm import compute_fixed_effects

    path = events(one_subject, session="2", run="02")
    table = pd.read_csv(path, sep="\t")
    table.loc[table["trial_type"] == "audio", "onset"] += 10_000.0
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    out = tmp_path / "out"
    assert main([str(one_subject.path), str(out), "participant", *QUICK]) == 0
    err = capsys.readouterr().err
    assert "sub-01_ses-2_task-checkerboard_run-02 has no audio" in err and "regressor is empty" in err
    func = out / "sub-01" / "func"
    assert not list(out.rglob("*ses-2_task-checkerboard_run-02_*contrast-audio_*statmap*"))
    assert list(out.rglob("*ses-2_task-checkerboard_run-02_*contrast-visual_stat-effect_statmap.nii.gz"))
    for contrast, n_runs in (("audio", 3), ("visual", 4)):
        runs = sorted(out.rglob(f"sub-01_ses-*_run-*_contrast-{contrast}_stat-effect_statmap.nii.gz"))
        assert len(runs) == n_runs
        mask = str(next(func.glob("sub-01_task-checkerboard_*desc-fixedfx_mask.nii.gz")))
        effect, variance, _, _ = compute_fixed_effects(
            [str(r) for r in runs], [str(r).replace("stat-effect", "stat-variance") for r in runs], mask)
        ours = nib.load(next(func.glob(f"sub-01_task-checkerboard_*contrast-{contrast}_stat-effect_statmap.nii.gz")))
        inside = nib.load(mask).get_fdata() > 0
        np.testing.assert_allclose(ours.get_fdata()[inside], effect.get_fdata()[inside], rtol=1e-4, atol=1e-6)
        # the sidecar names the run left out of this contrast (it said NumberOfRuns 3, nothing of which or why)
        sidecar = json.loads(next(func.glob(f"sub-01_task-checkerboard_*contrast-{contrast}_stat-z_statmap.json"))
                             .read_text())["FixedEffects"]
        left = [item["Run"] for item in sidecar.get("RunsLeftOut", [])]
        assert left == (["sub-01_ses-2_task-checkerboard_run-02"] if contrast == "audio" else [])
        assert contrast != "audio" or "cannot compute contrast 'audio'" in sidecar["RunsLeftOut"][0]["Reason"]


def test_a_second_job_of_the_same_outputs_is_named_as_such(one_subject, tmp_path, capsys, monkeypatch):
    """Two jobs of one subject at once: the second removed the first's staged files, which failed
    with 'Processing failed: [Errno 2] No such file or directory: .../.bids-fixedfx-tmp/...'."""
    import shutil as shell

    from bids_fixedfx import outputs

    commit = outputs.Staging.commit

    def removed_by_another_job(self, stale=()):
        shell.rmtree(self.folder)  # as a job starting the same set does to a set it does not own
        return commit(self, stale)

    monkeypatch.setattr(outputs.Staging, "commit", removed_by_another_job)
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", *QUICK]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Another job is writing the same outputs" in errors[0], errors


def test_a_session_job_does_not_replace_the_maps_of_another_session_job(one_subject, tmp_path, capsys):
    """Was silent: the --session-label 2 job deleted ses-1's run maps and wrote subject maps of ses-2 only."""
    out = tmp_path / "out"
    assert main([str(one_subject.path), str(out), "participant", *QUICK, "--session-label", "1"]) == 0
    capsys.readouterr()
    before = checksums(out)
    assert main([str(one_subject.path), str(out), "participant", *QUICK, "--session-label", "2"]) == 64
    message = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(message) == 1 and "sub-01 ses-1" in message[0] and "--session-label 1 2" in message[0]
    assert checksums(out) == before
    assert main([str(one_subject.path), str(out), "participant", *QUICK, "--session-label", "2", "1"]) == 0
    assert list(out.rglob("sub-01_ses-1_*_run-01_*_stat-effect_statmap.nii.gz"))
    assert list(out.rglob("sub-01_ses-2_*_run-01_*_stat-effect_statmap.nii.gz"))
    # the same choice of sessions made by a --bids-filter-file, as fMRIPrep's users make it
    selection = tmp_path / "ses-1.json"
    selection.write_text('{"bold": {"session": "1"}}')
    before = checksums(out)
    assert main([str(one_subject.path), str(out), "participant", *QUICK, "--bids-filter-file", str(selection)]) == 64
    message = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(message) == 1 and "sub-01 ses-2" in message[0] and "--bids-filter-file select the sessions 1 2" in message[0]
    assert checksums(out) == before


def test_a_session_job_does_not_replace_the_maps_of_another_session_s_unnumbered_run(tmp_path, capsys):
    """One run per session without a run- label (ds000114's shape): the --session-label retest job
    replaced the subject maps of the test job's session, and deleted its run maps, with exit 0."""
    dataset = make_example_dataset(tmp_path / "ds", n_subjects=1, n_sessions=2, n_runs=1, shape=(12, 14, 12),
                                   n_volumes=40)
    for path in sorted(dataset.path.rglob("*_run-01_*"), key=lambda p: -len(p.parts)):
        path.rename(path.with_name(path.name.replace("_run-01_", "_")))
    for scans in dataset.path.rglob("*_scans.tsv"):
        scans.write_text(scans.read_text().replace("_run-01_", "_"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK, "--session-label", "1"]) == 0
    assert list(out.rglob("sub-01_ses-1_task-checkerboard_space-*_stat-effect_statmap.nii.gz"))
    capsys.readouterr()
    before = checksums(out)
    assert main([str(dataset.path), str(out), "participant", *QUICK, "--session-label", "2"]) == 64
    message = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(message) == 1 and "sub-01 ses-1" in message[0] and "--session-label 1 2" in message[0]
    assert checksums(out) == before


def test_a_folder_in_place_of_a_preprocessed_series_is_named(one_subject, tmp_path, capsys):
    """pybids indexes files only: the run was left out as unprocessed, with a warning and exit 0."""
    bold = sorted((one_subject.path / "derivatives").rglob("*_run-01_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"))[0]
    bold.unlink()
    bold.mkdir()
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], 66, f"{bold} is not a regular file")
    # a series of a space not asked for, not fetched (a DataLad link to nothing), leaves the run out as unprocessed
    bold.rmdir()
    other = bold.with_name(bold.name.replace("space-MNI152NLin2009cAsym", "space-T1w"))
    other.unlink()
    other.symlink_to(tmp_path / "not-fetched.nii.gz")
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", *QUICK, "--space",
                 "MNI152NLin2009cAsym"]) == 0
    assert "has a raw BOLD series but no preprocessed one in space MNI152NLin2009cAsym" in capsys.readouterr().err


def test_only_runs_without_degrees_of_freedom(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("03",))  # one run
    bold = next((dataset.path / "derivatives").rglob(f"*space-{SPACE}_desc-preproc_bold.nii.gz"))
    _shorten(bold, 3)
    conf = next((dataset.path / "derivatives").rglob("*desc-confounds_timeseries.tsv"))
    pd.read_csv(conf, sep="\t").iloc[:3].to_csv(conf, sep="\t", index=False, na_rep="n/a")
    assert main([str(dataset.path), str(tmp_path / "out"), "participant", *QUICK, "--space", SPACE]) == 66
    err = capsys.readouterr().err
    assert "No run can be fitted" in err
    # the app stops before its warnings are shown, so the error itself names a run and why
    assert "sub-03_ses-1_task-checkerboard_run-01: its design has" in err and "for 3 volumes" in err
    assert "see the warnings above" not in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- levels


@pytest.mark.parametrize(
    ("level", "option"),
    [("group", ["--smoothing-fwhm", "8"]), ("group", ["--contrast", "av=audio-visual"]),
     ("participant", ["--group-model", "fixed"])],
)
def test_options_of_the_other_level(one_subject, tmp_path, capsys, level, option):
    fails(capsys, [one_subject.path, tmp_path / "out", level, *option], 64, option[0], "level")


# ---------------------------------------------------------------- stale outputs and leftovers


def test_a_rerun_replaces_the_subjects_set(one_subject, tmp_path):
    out = tmp_path / "out"
    assert main([str(one_subject.path), str(out), "participant", *QUICK, "--contrast", "old=audio-visual"]) == 0
    assert list(out.rglob("*_contrast-old_*"))
    # leftovers of a killed run: our hidden temporary names and a staging folder
    func = out / "sub-01" / "func"
    (func / ".sub-01_task-checkerboard_contrast-old_stat-z_statmap.nii.gz.x1y2.nii.gz").write_bytes(b"partial")
    staged = out / ".bids-fixedfx-tmp" / "sub-01_task-checkerboard_space-MNI152NLin2009cAsym.abc"
    staged.mkdir(parents=True)
    (staged / "partial.nii.gz").write_bytes(b"partial")
    assert main([str(one_subject.path), str(out), "participant", *QUICK, "--contrast", "new=visual"]) == 0
    assert not list(out.rglob("*_contrast-old_*")), "stale maps of the first run remain"
    assert list(out.rglob("*_contrast-new_*"))
    assert not [p for p in out.rglob(".*") if p.name != ".bidsignore"]


def test_group_refuses_subjects_fitted_with_different_models(two_subjects, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(two_subjects.path), str(out), "participant", *QUICK]) == 0
    assert main([str(two_subjects.path), str(out), "participant", *QUICK, "--participant-label", "02",
                 "--smoothing-fwhm", "8"]) == 0
    capsys.readouterr()
    written = checksums(out)
    assert main([str(two_subjects.path), str(out), "group", "--no-reports"]) == 64
    err = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(err) == 1 and "sub-01" in err[0] and "sub-02" in err[0] and "SmoothingFWHM" in err[0]
    assert checksums(out) == written


def test_group_refuses_subject_maps_replaced_while_it_read_them(two_subjects, tmp_path, capsys, monkeypatch):
    """A participant rerun (other options) replacing sub-02's maps while a group job ran: the group
    tested the new maps under the sidecars it had read of the old ones, and exited 0."""
    from bids_fixedfx import workflow

    out = tmp_path / "out"
    assert main([str(two_subjects.path), str(out), "participant", *QUICK]) == 0
    rewritten = sorted((out / "sub-02" / "func").glob("*_stat-effect_statmap.nii.gz"))[0]
    write_group = workflow.write_group

    def a_participant_job_meanwhile(*args, **kwargs):  # its commit: the set renamed into place
        copy = rewritten.with_name("copy.nii.gz")
        copy.write_bytes(rewritten.read_bytes())
        copy.replace(rewritten)
        return write_group(*args, **kwargs)

    monkeypatch.setattr(workflow, "write_group", a_participant_job_meanwhile)
    capsys.readouterr()
    assert main([str(two_subjects.path), str(out), "group", "--no-reports"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(err) == 1 and f"{rewritten} was rewritten or removed while the group level read sub-02's maps" in err[0]
    assert "rerun the group level once the participant jobs have ended" in err[0]
    assert not (out / "group").exists()
    monkeypatch.setattr(workflow, "write_group", write_group)
    assert main([str(two_subjects.path), str(out), "group", "--no-reports"]) == 0


def test_group_takes_subjects_fitted_with_the_same_model_spelled_otherwise(two_subjects, tmp_path):
    """--dummy-scans 0 (the default, recorded as null) and the default confounds named in another
    order make the same maps: the group level refused them as different models (exit 64)."""
    out = tmp_path / "out"
    assert main([str(two_subjects.path), str(out), "participant", *QUICK]) == 0
    assert main([str(two_subjects.path), str(out), "participant", *QUICK, "--participant-label", "02",
                 "--dummy-scans", "0", "--confounds", *reversed(MOTION_CONFOUNDS)]) == 0
    assert main([str(two_subjects.path), str(out), "group", "--no-reports"]) == 0


def test_group_drops_contrasts_no_longer_made(two_subjects, tmp_path):
    out = tmp_path / "out"
    assert main([str(two_subjects.path), str(out), "participant", *QUICK, "--contrast", "old=audio"]) == 0
    assert main([str(two_subjects.path), str(out), "group", "--no-reports"]) == 0
    assert list((out / "group").glob("*_contrast-old_*"))
    assert main([str(two_subjects.path), str(out), "participant", *QUICK, "--contrast", "new=visual"]) == 0
    assert main([str(two_subjects.path), str(out), "group", "--no-reports"]) == 0
    assert not list((out / "group").glob("*_contrast-old_*"))
    assert list((out / "group").glob("*_contrast-new_*"))


# ---------------------------------------------------------------- faults: killed runs, read-only input


def _maps(out):
    return {p.relative_to(out): nib.load(str(p)).get_fdata() for p in sorted(out.rglob("*_statmap.nii.gz"))}


@pytest.fixture(scope="module")
def clean_run(example_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "out"
    assert main([str(example_dataset.path), str(out), "participant", *QUICK, "--participant-label", "01",
                 "--nprocs", "1"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("delay", [1.5, 3.0, 5.0, 8.0])
def test_killed_then_rerun_gives_the_same_maps_and_no_leftovers(example_dataset, clean_run, tmp_path, delay):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    command = [sys.executable, "-m", "bids_fixedfx", str(example_dataset.path), str(out), "participant",
               *QUICK, "--participant-label", "01", "--nprocs", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # whatever the kill left, no half subject is in place: maps are all there or none
    subject_maps = list(out.glob("sub-01/func/sub-01_task-checkerboard_*_statmap.nii.gz")) if out.exists() else []
    assert len(subject_maps) in (0, len([p for p in _maps(clean_run) if p.parent == Path("sub-01/func")]))
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    ours, clean = _maps(out), _maps(clean_run)
    assert ours.keys() == clean.keys()
    for key in clean:
        np.testing.assert_array_equal(ours[key], clean[key])
    leftovers = [p for p in out.rglob(".*") if p.name != ".bidsignore"]
    assert not leftovers


@pytest.mark.slow
def test_read_only_input_as_a_non_root_user(example_dataset, tmp_path):
    import os
    import shutil
    import stat
    import subprocess
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to run the app as another user")
    python, env = _interpreter_for_anyone()
    base = Path(tempfile.mkdtemp(prefix="bids-fixedfx-ro-"))
    try:
        os.chmod(base, 0o755)
        data = base / "data"
        shutil.copytree(example_dataset.path, data, ignore=shutil.ignore_patterns("sub-02", "sub-03"))
        for path in [data, *data.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        out = base / "out"
        out.mkdir()
        os.chown(out, 54321, 54321)
        before = checksums(data)
        done = subprocess.run(
            [python, "-m", "bids_fixedfx", str(data), str(out), "participant", *QUICK],
            capture_output=True, text=True, check=False, user=54321, group=54321,
            env={**env, "HOME": str(out), "MPLCONFIGDIR": str(out / ".mpl")}, cwd=out,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert checksums(data) == before
        written = [p for p in out.rglob("*") if p.is_file() and ".mpl" not in p.parts]
        assert written and all(p.stat().st_uid == 54321 for p in written)
        assert all(not (p.stat().st_mode & stat.S_IWOTH) for p in written)
    finally:
        for path in [base, *base.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def _interpreter_for_anyone():
    """A Python another user can run, with this environment's packages: this one, or (where it
    lives in root's home) the system's Python of the same version with the packages on its path."""
    import os
    import site
    import sys
    import sysconfig

    import bids_fixedfx

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    real = Path(os.path.realpath(sys.executable))
    if all(os.stat(parent).st_mode & 0o001 for parent in real.parents):
        return sys.executable, env
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.is_file():
        pytest.fail(f"{real} cannot be run by another user and there is no {system}")
    paths = [str(Path(bids_fixedfx.__file__).parents[1]), sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return str(system), env


def test_a_computed_brain_mask_that_is_empty_names_the_bold(fresh_dataset, tmp_path, capsys):
    """Raw data without derivatives get nilearn's EPI mask; a series in which no voxel looks
    like brain gives one sentence naming the file (exit 66), not a failure of the fit."""
    import nibabel as nib
    import numpy as np

    from bids_fixedfx.cli import main

    dataset = fresh_dataset(subjects=("01",), derivatives=False)
    bolds = sorted(dataset.path.glob("sub-01/**/func/*_bold.nii.gz"))
    for seed, path in enumerate(bolds):
        img = nib.load(path)
        # noise on a 4x4x4 grid (as in nilearn's own fake datasets): the EPI mask's opening keeps nothing
        noise = np.random.default_rng(seed).normal(100, 1, (4, 4, 4, img.shape[3])).astype(np.float32)
        nib.Nifti1Image(noise, img.affine, img.header).to_filename(path)
    bold = bolds[0]
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 66
    error = capsys.readouterr().err
    assert "computed an empty brain mask" in error and str(bold) in error
    assert not [w for w in caught if "empty mask" in str(w.message)]  # nilearn's own warning not said twice
    assert not list(out.glob("sub-01/**/*_statmap.nii.gz"))


def test_a_trial_type_without_a_letter_or_digit_names_its_events_file(fresh_dataset, tmp_path, capsys):
    """A PsychoPy fixation condition "+": exit 64 "Contrast name '+' has no letters or digits",
    naming neither the file nor a way out."""
    dataset = fresh_dataset(subjects=("03",))
    events = next(dataset.path.rglob("*_events.tsv"))
    table = pd.read_csv(events, sep="\t")
    table.loc[table.index[-1], "trial_type"] = "+"
    table.to_csv(events, sep="\t", index=False)
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK], 66, events, "'+'", "--contrast")
    assert main([str(dataset.path), str(tmp_path / "named"), "participant", *QUICK,
                 "--contrast", "fixation=+", "--contrast", "audio=audio"]) == 0
    assert list((tmp_path / "named").rglob("*_contrast-fixation_stat-z_statmap.nii.gz"))


def test_trial_types_that_differ_in_spaces_only_are_said_so(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("01",))
    events = sorted(dataset.path.rglob("*_events.tsv"))
    for path in events[:1]:
        table = pd.read_csv(path, sep="\t")
        table["trial_type"] = table["trial_type"].replace({"audio": "audio "})
        table.to_csv(path, sep="\t", index=False)
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK], 64, "'audio '", "spaces only")
    for path in events[1:]:
        path.write_text(events[0].read_text())
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "--contrast", "a=audio-visual"], 64,
          "'audio '", "spaces only")


def test_a_full_disk_is_said_as_such_naming_the_file(one_subject, tmp_path, capsys, monkeypatch):
    """It was "Processing failed: [Errno 28] No space left on device", naming no file, saying nothing to do."""
    import errno

    from bids_fixedfx import outputs

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(outputs, "_atomic", full)
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", *QUICK]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "the disk is full (or the quota reached) writing " in errors[0]
    assert str(tmp_path / "out") in errors[0] and "free space there" in errors[0]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


@pytest.mark.parametrize("error", [MemoryError(), MemoryError("Unable to allocate 894. GiB for an array")])
def test_running_out_of_memory_is_said_as_such(one_subject, tmp_path, capsys, monkeypatch, error):
    """A Python allocation that fails says nothing: 'Processing failed:  (run with -v ...)'."""
    from bids_fixedfx import workflow

    def out_of_memory(*args, **kwargs):
        raise error

    monkeypatch.setattr(workflow, "run_level", out_of_memory)
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", *QUICK]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Processing failed: not enough memory" in errors[0] and "more memory" in errors[0]
    assert ("(Unable to allocate 894. GiB for an array)" in errors[0]) == bool(str(error))


def test_an_output_name_too_long_for_the_file_system_is_said_as_such(fresh_dataset, tmp_path, capsys):
    """A participants.tsv column of 200 letters tested with --group-covariates: its maps' names
    exceed 255 bytes, and the OSError was said as another job removing this job's files."""
    dataset = fresh_dataset()
    output = tmp_path / "out"
    assert main([str(dataset.path), str(output), "participant", *QUICK]) == 0
    table = pd.read_csv(dataset.path / "participants.tsv", sep="\t")
    long = "a" * 200
    table[long] = np.arange(len(table), dtype=float) ** 2
    table.to_csv(dataset.path / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    capsys.readouterr()
    before = checksums(output)
    assert main([str(dataset.path), str(output), "group", "--no-reports", "--group-covariates", long]) == 64
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "is longer than the file system allows; shorten the names" in errors[0], errors
    assert "contrast-audioA" + "a" * 100 in errors[0] and "Another job" not in errors[0]
    assert {p: d for p, d in checksums(output).items() if "models" not in p.parts} == \
        {p: d for p, d in before.items() if "models" not in p.parts}


def test_a_map_among_its_own_sources_is_refused_by_the_group_level(fresh_dataset, tmp_path, capsys):
    """A run map's sidecar naming the map itself among its Sources: exit 1, 'maximum recursion
    depth exceeded'."""
    dataset = fresh_dataset(subjects=("01", "02"))
    output = tmp_path / "out"
    assert main([str(dataset.path), str(output), "participant", *QUICK]) == 0
    sidecar = sorted(output.glob("sub-01/ses-1/func/*_run-*_contrast-audio_stat-effect_statmap.json"))[0]
    document = json.loads(sidecar.read_text())
    document["Sources"].append(f"bids::{sidecar.relative_to(output).with_suffix('').with_suffix('.nii.gz')}")
    sidecar.write_text(json.dumps(document))
    capsys.readouterr()
    assert main([str(dataset.path), str(output), "group"]) == 66
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"{sidecar} is among its own sources" in errors[0], errors
    assert not (output / "group").exists()


def test_a_subject_map_off_the_grid_is_refused_from_its_header(tmp_path, monkeypatch):
    """A small gzip of zeros declaring 1200**3 voxels as a subject's effect map: 7 GB of memory
    and 50 s before 'not on the group mask's grid', which its header already said."""
    from bids_fixedfx import images, maps
    from bids_fixedfx.errors import InputFileError

    mask = nib.Nifti1Image(np.ones((4, 5, 6), dtype=np.uint8), np.eye(4))
    big = tmp_path / "sub-01_task-x_contrast-a_stat-effect_statmap.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((200, 200, 100), dtype=np.float32), np.eye(4)), big)
    monkeypatch.setattr(images, "_inflate", lambda *args, **kwargs: pytest.fail("the map's data were read"))
    with pytest.raises(InputFileError, match=r"is not on the group mask's grid: shape \(200, 200, 100\)"):
        maps.masked_matrix([big], mask)


@pytest.mark.parametrize("other, code, said", [
    ("Audio", 66, "spell it alike in every row (or, if they are two conditions, name their contrasts apart with "
                  "--contrast NAME=SPEC)"),
    ("au dio", 64, "name them apart with --contrast NAME=SPEC"),
])
def test_trial_types_that_make_one_file_label_say_how_to_keep_them_apart(one_subject, tmp_path, capsys, other,
                                                                         code, said):
    """'audio' and 'Audio' (a slip, or two conditions) make one file on file systems that ignore
    case; 'au dio' and 'audio' both make contrast-audio. Either way the message says how to
    keep them apart; contrasts named apart run."""
    events = next((one_subject.path / "sub-01").rglob("*run-01_events.tsv"))
    table = pd.read_csv(events, sep="\t")
    first = table.index[table["trial_type"] == "audio"][0]
    table.loc[first, "trial_type"] = other
    table.to_csv(events, sep="\t", index=False)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", *QUICK], code, said)
    if code == 66:
        assert main([str(one_subject.path), str(tmp_path / "named"), "participant", *QUICK,
                     "--contrast", f"one={other}", "--contrast", "two=audio"]) == 0


@pytest.fixture(scope="module")
def closed_folder(tmp_path_factory):
    """A small dataset, open to every user, beside a folder closed to all but its owner (root),
    holding a model file, a filter file and a mask; and how to run the command as another
    user (``nobody``: root reads any folder)."""
    import os
    import shutil
    import stat
    import subprocess
    import sys
    import tempfile

    if os.getuid() != 0:
        run_as = []
    elif shutil.which("setpriv"):
        run_as = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        pytest.skip("running as root without setpriv (util-linux): no other user to be")
    root = Path(tempfile.mkdtemp(prefix="bids-fixedfx-closed-"))  # pytest's own folders are closed to others
    os.chmod(root, 0o755)
    dataset = make_example_dataset(root / "ds", n_subjects=2, n_sessions=1, n_runs=1, shape=(12, 12, 12),
                                   n_volumes=30, spaces=("MNI152NLin2009cAsym",))
    closed, open_ = root / "closed", root / "open"
    closed.mkdir()
    open_.mkdir(mode=0o777)
    os.chmod(open_, 0o777)
    (closed / "filter.json").write_text('{"bold": {}}')
    (closed / "model.json").write_text("{}")
    (root / "own.json").write_text('{"bold": {}}')  # a file closed itself, in an open folder
    (root / "own.json").chmod(0o600 if run_as else 0o000)
    for path in [root / "ds", *(root / "ds").rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXGRP | stat.S_IXOTH if path.is_dir()
                                                                           else 0))
    closed.chmod(0o700 if run_as else 0o000)

    def run(*args):
        command = [*run_as, sys.executable, "-m", "bids_fixedfx", str(dataset.path), *map(str, args),
                   "--skip-bids-validation"]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": "/tmp"})

    yield closed, open_, run, dataset
    closed.chmod(0o700)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(("option", "code", "said"), [
    ("--bids-filter-file", 66, "--bids-filter-file {closed}/filter.json cannot be read: permission denied"),
    ("-m", 66, "{closed}/filter.json cannot be read: permission denied"),
    ("--mask", 66, "--mask {closed}/filter.json cannot be read: permission denied"),
    ("--design-dir", 66, "this job's user (uid"),
    ("-w", 64, "--work-dir {closed}/filter.json cannot be reached: permission denied"),
    ("--bids-filter-file own", 66, "own.json cannot be read: permission denied"),
    ("OUTPUT_DIR", 64, "OUTPUT_DIR {closed}/filter.json cannot be reached: permission denied"),
])
def test_a_path_under_a_folder_closed_to_the_user_is_one_sentence(closed_folder, option, code, said):
    """A filter file there gave a PermissionError traceback and exit 1; a model file, a mask or a
    design folder 'Processing failed: [Errno 13]', exit 1; OUTPUT_DIR 'a loop of symbolic links'."""
    closed, open_, run, _ = closed_folder
    given = closed / "filter.json"
    if option.endswith(" own"):
        option, given = option.removesuffix(" own"), closed.parent / "own.json"
    output = given if option == "OUTPUT_DIR" else open_ / f"out{option}"
    done = run(output, "participant", *([] if option == "OUTPUT_DIR" else [option, given]))
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line or "error:" in line]
    assert done.returncode == code and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and said.format(closed=closed) in errors[0], errors


def test_a_subject_folder_closed_to_the_user_is_named(closed_folder):
    """It was read as empty: its runs were said to have no events.tsv."""
    _, open_, run, dataset = closed_folder
    subject = dataset.path / "sub-02"
    mode = subject.stat().st_mode
    subject.chmod(0o700 if closed_folder[0].stat().st_mode & 0o777 == 0o700 else 0o000)
    try:
        done = run(open_ / "out-subject", "participant", "--no-reports")
    finally:
        subject.chmod(mode)
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert done.returncode == 66 and len(errors) == 1, done.stderr
    assert f"{subject} cannot be read: permission denied" in errors[0] and "--participant-label" in errors[0]
