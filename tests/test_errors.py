"""Bad input (SPEC §1): one clear sentence naming the file or option, the exit code,
nothing written to OUTPUT_DIR, and the input dataset untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_fixedfx.cli import main
from tools import checksums, fails

pytestmark = pytest.mark.slow  # runs of the app; pytest -m 'not slow' leaves them out

SPACE = "MNI152NLin2009cAsym"


@pytest.fixture
def one_subject(fresh_dataset):
    return fresh_dataset(subjects=("01",))


def test_not_a_bids_directory(tmp_path, capsys):
    (tmp_path / "notbids").mkdir()
    fails(capsys, [tmp_path / "notbids", tmp_path / "out", "participant"], 66, "notbids", "dataset_description.json")


def test_missing_inputs_exit_66(tmp_path, one_subject, capsys):
    """A BIDS_DIR, model file or derivatives folder that does not exist is a required input missing
    (66, as a missing --mask or --design-dir); they were 64, and a missing -d folder was said to
    have no dataset_description.json."""
    fails(capsys, [tmp_path / "nowhere", tmp_path / "out", "participant"], 66, "BIDS_DIR", "nowhere does not exist")
    common = [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"]
    fails(capsys, [*common, "-m", tmp_path / "model.json"], 66, "Model file", "model.json does not exist")
    fails(capsys, [*common, "-d", tmp_path / "fmriprep"], 66, "--derivatives", "fmriprep does not exist")
    fails(capsys, [*common, "--design-dir", tmp_path / "designs"], 66, "--design-dir", "designs does not exist")
    assert not (tmp_path / "out").exists()
    # so at the group level, which reads BIDS_DIR's participants.tsv (it ran on a mistyped path, exit 0)
    out = tmp_path / "done"
    assert main([str(one_subject.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    fails(capsys, [tmp_path / "nowhere", out, "group"], 66, "BIDS_DIR", "nowhere does not exist", output=out / "group")
    fails(capsys, [one_subject.path, out, "group", "-d", tmp_path / "fmriprep"], 66, "fmriprep does not exist",
          output=out / "group")
    readme = one_subject.path / "README"
    readme.write_text("a file")
    fails(capsys, [readme, tmp_path / "out", "participant"], 64, "is not a directory")


def test_input_failing_validation_exits_16(one_subject, tmp_path, capsys):
    description = one_subject.path / "dataset_description.json"
    content = json.loads(description.read_text())
    del content["Name"]
    content["BIDSVersion"] = 1.9  # a number, where the schema wants a string
    description.write_text(json.dumps(content))
    fails(capsys, [one_subject.path, tmp_path / "out", "participant"], 16, str(one_subject.path), "--skip-bids-validation")


def test_failing_validation_comes_before_another_input_error(one_subject, tmp_path, capsys):
    """The validator runs beside discovery: its verdict still decides the exit code."""
    (one_subject.path / "notes_about_the_study.txt").write_text("not a BIDS file\n")
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--participant-label", "99"], 16,
          "notes_about_the_study.txt")


def test_failing_validation_comes_first_also_with_the_forked_selection(one_subject, tmp_path):
    """The command selects the runs in a forked child beside the validator: the validator's
    verdict still decides the exit code."""
    (one_subject.path / "notes_about_the_study.txt").write_text("not a BIDS file\n")
    done = subprocess.run([sys.executable, "-m", "bids_fixedfx", str(one_subject.path), str(tmp_path / "out"),
                           "participant", "--participant-label", "99", "--nprocs", "2", "-v"],
                          capture_output=True, text=True, timeout=600)
    assert "Selecting the runs in process" in done.stderr
    assert done.returncode == 16, done.stderr
    assert "notes_about_the_study.txt" in done.stderr


def test_unknown_participant(one_subject, tmp_path, capsys):
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--participant-label", "99"], 66,
          "--participant-label", "99")


def test_unknown_task(one_subject, tmp_path, capsys):
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "-t", "rest"], 66, "--task", "rest")


def test_unknown_space(one_subject, tmp_path, capsys):
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--space", "fsLR"], 66, "--space", "fsLR", "T1w")


def test_ambiguous_space(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("03",))
    for path in (dataset.path / "derivatives").rglob(f"*space-{SPACE}_*"):
        path.rename(path.with_name(path.name.replace(SPACE, "MNI152NLin6Asym")))
    fails(capsys, [dataset.path, tmp_path / "out", "participant", "--skip-bids-validation"], 64,
          "--space", "MNI152NLin6Asym", "T1w")


def test_run_without_events(one_subject, tmp_path, capsys):
    events = next(one_subject.path.rglob("*ses-1_task-checkerboard_run-02_events.tsv"))
    events.unlink()
    fails(capsys, [one_subject.path, tmp_path / "out", "participant"], 66,
          "sub-01_ses-1_task-checkerboard_run-02", "events")


@pytest.mark.parametrize("change, said", [
    ("empty", "holds no event to model"),
    ("empty, no confounds", "holds no event to model"),  # said the confounds file was missing instead
    ("milliseconds", "starts after the run's last volume"),
    ("milliseconds, a modulation n/a", "starts after the run's last volume"),  # said of the design before
])
def test_no_run_to_fit_says_why(one_subject, tmp_path, capsys, change, said):
    """Events of a header alone, or onsets in milliseconds: the error said "no run has a contrast
    to compute", and the reason (each run's warning) was never shown."""
    if "no confounds" in change:
        for confounds in one_subject.path.rglob("*_desc-confounds_timeseries.*"):
            confounds.unlink()
    for events in one_subject.path.rglob("*_events.tsv"):
        frame = pd.read_csv(events, sep="\t")
        if change.startswith("empty"):
            frame = frame.iloc[:0]
        else:
            frame["onset"] *= 1000
        if "modulation" in change:
            frame["modulation"] = 1.0
            frame.loc[0, "modulation"] = None
        frame.to_csv(events, sep="\t", index=False, na_rep="n/a")
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 66,
          "no run has a contrast to compute", said)


def test_fmriprep_output_given_as_bids_dir_is_told_to_go_with_d(one_subject, tmp_path, capsys):
    """fMRIPrep's folder as BIDS_DIR (DatasetType derivative, no events) was told to give --design-dir."""
    fmriprep = one_subject.path / "derivatives" / "fmriprep"
    description = json.loads((fmriprep / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    fails(capsys, [fmriprep, tmp_path / "out", "participant", "--skip-bids-validation"], 66,
          "BIDS_DIR is a derivatives dataset", "with -d")


def test_missing_repetition_time(one_subject, tmp_path, capsys):
    for sidecar in [*one_subject.path.glob("task-*_bold.json"),
                    *(one_subject.path / "derivatives").rglob("*_desc-preproc_bold.json")]:
        content = json.loads(sidecar.read_text())
        content.pop("RepetitionTime", None)
        sidecar.write_text(json.dumps(content))
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 66,
          "RepetitionTime", "sub-01_ses-1_task-checkerboard_run-01")


def test_unknown_confound_column(one_subject, tmp_path, capsys):
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--confounds", "trans_x", "heart_rate"], 64,
          "--confounds heart_rate", "desc-confounds_timeseries.tsv")


def test_contrast_with_unknown_column(one_subject, tmp_path, capsys):
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--contrast", "av=audio-tactile"], 64,
          "--contrast av", "tactile")


def test_contrast_with_too_many_weights(one_subject, tmp_path, capsys):
    weights = ",".join(["1"] * 40)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--contrast", f"many={weights}"], 64,
          "--contrast many", "40 weights")


def test_design_file_with_wrong_rows(one_subject, tmp_path, capsys):
    design_dir = tmp_path / "designs"
    design_dir.mkdir()
    for bold in (one_subject.path / "derivatives").rglob(f"*space-{SPACE}_desc-preproc_bold.nii.gz"):
        stem = bold.name.split("_space-")[0]
        rows = nib.load(str(bold)).shape[3] - (5 if "ses-2_task-checkerboard_run-01" in stem else 0)
        pd.DataFrame({"a": np.arange(rows, dtype=float), "constant": 1.0}).to_csv(
            design_dir / f"{stem}_design.tsv", sep="\t", index=False)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--design-dir", design_dir], 66,
          "sub-01_ses-2_task-checkerboard_run-01_design.tsv", "rows")


def test_mask_on_another_grid(one_subject, tmp_path, capsys):
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), np.eye(4)), mask)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--mask", mask], 64, "--mask", str(mask))


def test_a_preprocessed_mask_on_another_grid_is_an_unusable_input(one_subject, tmp_path, capsys):
    mask = next((one_subject.path / "derivatives" / "fmriprep" / "sub-01").rglob("*run-01_space-MNI*_mask.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), np.eye(4)), mask)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 66, str(mask),
          "another grid")


def test_a_mask_shifted_from_its_bold_says_how_the_grids_differ(one_subject, tmp_path, capsys):
    """The message showed two equal shapes, '(24, 28, 20) vs (24, 28, 20)'."""
    mask = next((one_subject.path / "derivatives" / "fmriprep" / "sub-01").rglob("*run-01_space-MNI*_mask.nii.gz"))
    img = nib.load(mask)
    affine = img.affine.copy()
    affine[0, 3] += 3.0
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), affine), mask)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 66, str(mask),
          f"the same shape {img.shape[:3]} but affines that differ by up to 3 ")


def test_a_smoothing_wider_than_the_volume_is_refused(one_subject, tmp_path, capsys):
    bold = nib.load(next((one_subject.path / "derivatives" / "fmriprep").rglob("*_desc-preproc_bold.nii.gz")))
    extent = max(n * size for n, size in zip(bold.shape[:3], bold.header.get_zooms()[:3]))
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation",
                   "--smoothing-fwhm", "1e6"], 64, "--smoothing-fwhm", f"{extent:g} mm across")
    out = tmp_path / "wide"
    assert main([str(one_subject.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--smoothing-fwhm", str(max(2 * extent, 100) * 0.9)]) == 0  # wide, but not absurd


def test_output_inside_the_input_is_refused(one_subject, capsys):
    fails(capsys, [one_subject.path, one_subject.path / "results", "participant"], 64, "OUTPUT_DIR", "derivatives")
    assert not (one_subject.path / "results").exists()


@pytest.mark.parametrize("option", ["OUTPUT_DIR", "--work-dir"])
@pytest.mark.parametrize("below", [False, True])
def test_a_file_where_a_folder_is_written_is_refused(one_subject, tmp_path, capsys, option, below):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    folder = afile / "out" if below else afile
    out, extra = (folder, []) if option == "OUTPUT_DIR" else (tmp_path / "out", ["--work-dir", folder])
    fails(capsys, [one_subject.path, out, "participant", "--skip-bids-validation", *extra], 64, option, folder)
    assert afile.read_text() == "keep me"


def test_argparse_errors_exit_64(one_subject, tmp_path, capsys):
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--noise-model", "ar3"], 64, "--noise-model")
    fails(capsys, [one_subject.path, tmp_path / "out", "everything"], 64, "analysis_level")


def test_group_before_participant(one_subject, tmp_path, capsys):
    fails(capsys, [one_subject.path, tmp_path / "out", "group"], 66, "participant level first")


def test_group_with_one_subject(one_subject, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(one_subject.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    capsys.readouterr()
    written = checksums(out)
    assert main([str(one_subject.path), str(out), "group"]) == 66
    message = capsys.readouterr().err
    assert "at least 2 subjects" in message and "sub-01" in message
    assert checksums(out) == written and not (out / "group").exists()
    # with --task, the task is named (a task of one subject in a dataset of many)
    assert main([str(one_subject.path), str(out), "group", "--task", "checkerboard"]) == 66
    assert "at least 2 subjects with maps of task checkerboard" in capsys.readouterr().err
    # a label mistyped among those given is named, with the error it caused (it was said only on success)
    assert main([str(one_subject.path), str(out), "group", "--participant-label", "07", "01"]) == 66
    message = capsys.readouterr().err
    assert "found 1 (sub-01); --participant-label 07 has none (sub-07 has no folder in" in message, message
    assert "check the label" in message and checksums(out) == written


def test_a_group_selection_of_no_maps_names_its_option(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    capsys.readouterr()
    written = checksums(out)
    for option, value, present in (("--participant-label", "07", "01, 02"), ("--task", "nosuch", "checkerboard"),
                                   ("--space", "T1w", SPACE)):
        assert main([str(dataset.path), str(out), "group", option, value]) == 66
        message = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
        assert len(message) == 1 and f"{option} {value}" in message[0] and present in message[0], message
    assert checksums(out) == written and not (out / "group").exists()


def test_several_resolutions_of_one_space(one_subject, tmp_path, capsys):
    for bold in list((one_subject.path / "derivatives").rglob(f"*space-{SPACE}_desc-preproc_bold.*")):
        copy = bold.with_name(bold.name.replace(f"space-{SPACE}_", f"space-{SPACE}_res-2_"))
        copy.write_bytes(bold.read_bytes())
    message = fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 64,
                    "res-2", "--bids-filter-file")
    hint = message[message.index("e.g. ") + 5:].rstrip(".")  # the entry it suggests works as it is
    assert json.loads(hint) == {"bold": {"res": "2"}}
    (tmp_path / "filter.json").write_text(hint)
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", "--skip-bids-validation", "--no-reports",
                 "--bids-filter-file", str(tmp_path / "filter.json")]) == 0


def test_cohorts_of_one_space_are_chosen_with_the_filter_file(one_subject, tmp_path, capsys):
    """fMRIPrep's two cohorts of a template: pybids indexes no cohort-, so the filter the app's
    message suggested was refused as 'not a BIDS entity', and no cohort could be chosen."""
    for path in list((one_subject.path / "derivatives").rglob(f"*space-{SPACE}_desc-*")):
        for cohort in ("1", "2"):
            copy = path.with_name(path.name.replace(f"space-{SPACE}_", f"space-{SPACE}_cohort-{cohort}_"))
            copy.write_bytes(path.read_bytes())
        path.unlink()
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 64,
          "several preprocessed BOLD series", "cohort-1", "cohort-2", "--bids-filter-file")
    # the BOLD's cohort chooses its mask, as its res- does (two masks were said to be kept one of, 66)
    for chosen in ({"bold": {"cohort": "2"}}, {"bold": {"cohort": "2"}, "mask": {"cohort": ["2"]}}):
        (tmp_path / "filter.json").write_text(json.dumps(chosen))
        out = tmp_path / "out"
        assert main([str(one_subject.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                     "--bids-filter-file", str(tmp_path / "filter.json")]) == 0
        sidecars = list(out.rglob("*run-01*_stat-z_statmap.json"))
        assert sidecars
        for sidecar in sidecars:
            sources = json.loads(sidecar.read_text())["Sources"]
            assert [s for s in sources if f"space-{SPACE}_cohort-2_desc-preproc_bold" in s], sources
            assert [s for s in sources if f"space-{SPACE}_cohort-2_desc-brain_mask" in s], sources
            assert not [s for s in sources if "cohort-1" in s], sources


@pytest.mark.parametrize("single", [False, True])
def test_maps_of_another_resolution_are_not_replaced(one_subject, tmp_path, capsys, single):
    """res-1 and res-2 jobs (each chosen with --bids-filter-file) into one OUTPUT_DIR: the maps'
    names carry no res-, so the second job's silently replaced the first's (``single``: a subject
    of one run, whose maps carry no run-)."""
    import shutil

    if single:  # one run, named without run-
        for path in sorted(one_subject.path.rglob("*"), reverse=True):
            if path.exists() and ("ses-2" in path.name or "run-02" in path.name):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            elif "_run-01" in path.name:
                path.rename(path.with_name(path.name.replace("_run-01", "")))
    for bold in list((one_subject.path / "derivatives").rglob(f"*space-{SPACE}_desc-preproc_bold.*")):
        copy = bold.with_name(bold.name.replace(f"space-{SPACE}_", f"space-{SPACE}_res-2_"))
        copy.write_bytes(bold.read_bytes())
    out = tmp_path / "out"
    for res in (None, "2"):
        (tmp_path / f"filter-{res}.json").write_text(json.dumps({"bold": {"res": res}}))
    common = [one_subject.path, out, "participant", "--skip-bids-validation", "--no-reports", "--bids-filter-file"]
    assert main([str(a) for a in [*common, tmp_path / "filter-None.json"]]) == 0
    capsys.readouterr()
    written = checksums(out)
    message = fails(capsys, [*common, tmp_path / "filter-2.json"], 64, "made from inputs of no res- or cohort-",
                    "inputs are of res-2", "another OUTPUT_DIR", output=tmp_path / "nothing")
    assert "sub-01 task-checkerboard" in message and checksums(out) == written
    assert not single or not [p for p in out.rglob("*_statmap.json") if "run-" in p.name]
    assert main([str(a) for a in [*common, tmp_path / "filter-None.json"]]) == 0  # a rerun of the same inputs


def test_a_design_other_spaces_maps_share_is_not_rewritten_with_another(one_subject, tmp_path, capsys):
    """A rerun of one space with another model rewrote the runs' designs (named without a
    space), which the other space's maps kept citing."""
    out = tmp_path / "out"
    common = [one_subject.path, out, "participant", "--skip-bids-validation", "--no-reports"]
    assert main([str(a) for a in [*common, "--space", SPACE, "T1w"]]) == 0
    capsys.readouterr()
    written = checksums(out)
    message = fails(capsys, [*common, "--space", SPACE, "--hrf-model", "spm"], 64, "T1w", "--space",
                    "another OUTPUT_DIR", "_design.tsv", output=tmp_path / "nothing")
    assert "sub-01_" in message and checksums(out) == written
    # the same table, other volumes left out: the sidecar beside it would say so of the T1w maps too
    fails(capsys, [*common, "--space", SPACE, "--dummy-scans", "4"], 64, "T1w", "volumes it leaves out",
          output=tmp_path / "nothing")
    assert checksums(out) == written
    assert main([str(a) for a in [*common, "--space", SPACE]]) == 0  # the same design: one space remade
    assert main([str(a) for a in [*common, "--space", SPACE, "T1w", "--hrf-model", "spm"]]) == 0  # both


@pytest.mark.parametrize("stat", ["effect", "variance"])
def test_a_stray_map_name_in_output_dir_is_left_out_of_the_group_level(fresh_dataset, tmp_path, capsys, stat):
    """A file named like a subject's effect map but of no name the app makes (``x..y``) stopped
    the group level with an internal error (exit 1); as a variance map, with an error saying to
    rerun the participant level, which does not remove it."""
    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    stray = out / "sub-01" / "func" / f"sub-01_task-checkerboard_space-{SPACE}_contrast-x..y_stat-{stat}_statmap.nii.gz"
    stray.write_bytes(b"x")
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports"]) == 0
    said = capsys.readouterr().err
    assert f"{stray} is not named as this app names its maps" in " ".join(said.split())
    assert sorted(p.name for p in (out / "group").glob("*_stat-t_statmap.nii.gz")) == [
        f"task-checkerboard_space-{SPACE}_contrast-{c}_stat-t_statmap.nii.gz" for c in ("audio", "visual")]


def test_labels_that_match_no_subject_are_named_in_a_short_message(fresh_dataset, tmp_path, capsys):
    """A label of 100,000 characters (a web form's) was repeated whole in a message of as many,
    and every subject of the dataset was listed (a thousand, in a large one)."""
    dataset = fresh_dataset()
    for n in range(4, 16):  # more subjects than a message lists
        shutil.copytree(dataset.path / "sub-01", dataset.path / f"sub-{n:02d}")
    message = fails(capsys, [dataset.path, tmp_path / "out", "participant", "--skip-bids-validation",
                             "--participant-label", "0" * 100_000, "77"], 66, "--participant-label 0000", ", 77",
                    "and 5 more")
    assert len(message) < 600, message


def test_series_in_two_formats_are_told_apart_by_extension(one_subject, tmp_path, capsys):
    import gzip

    derivatives = one_subject.path / "derivatives"
    for path in [*one_subject.path.glob("sub-*/**/*_bold.nii.gz"), *derivatives.rglob("*_mask.nii.gz"),
                 *derivatives.rglob("*_bold.nii.gz")]:  # as pybids' synthetic dataset holds them
        path.with_name(path.name[:-3]).write_bytes(gzip.decompress(path.read_bytes()))
    message = fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 64,
                    "desc-preproc_bold.nii,", '{"bold": {"extension": ".nii"}}')
    assert "raw BOLD" not in message
    (tmp_path / "filter.json").write_text('{"bold": {"extension": ".nii.gz"}}')
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", "--skip-bids-validation", "--no-reports",
                 "--bids-filter-file", str(tmp_path / "filter.json")]) == 0
    design = json.loads(next((tmp_path / "out").rglob("*run-01_design.json")).read_text())
    assert design["BOLD"].endswith("_bold.nii.gz")


@pytest.mark.parametrize("entity", ["echo", "rec"])
def test_echoes_or_reconstructions_of_one_run_are_not_runs(one_subject, tmp_path, capsys, entity):
    """Fitted as runs, a run's echoes would count its volumes several times in the fixed
    effects' degrees of freedom (nilearn refuses them too): one is chosen with the filter file."""
    where = "_space-" if entity == "echo" else "_run-"  # echo- after run-, rec- before it
    for bold in list((one_subject.path / "derivatives").rglob(f"*run-01_space-{SPACE}_desc-preproc_bold.*")):
        for value in ("1", "2"):
            bold.with_name(bold.name.replace(where, f"_{entity}-{value}{where}")).write_bytes(bold.read_bytes())
        bold.unlink()
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 64,
          f"{entity}-1", f"{entity}-2", "--bids-filter-file")


def test_runs_of_a_subject_on_different_grids(one_subject, tmp_path, capsys):
    bold = next((one_subject.path / "derivatives").rglob(
        f"*ses-2_task-checkerboard_run-02_space-{SPACE}_desc-preproc_bold.nii.gz"))
    img = nib.load(str(bold))
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[1:], img.affine, img.header), bold)
    mask = bold.with_name(bold.name.replace("desc-preproc_bold", "desc-brain_mask"))
    img = nib.load(str(mask))
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[1:], img.affine, img.header), mask)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 66,
          "different voxel grids", bold.name, "shape (", f"resample them to one grid of space {SPACE}")


def test_runs_each_in_its_own_bold_reference_are_combined_with_a_warning(one_subject, tmp_path, capsys):
    """fMRIPrep's --output-spaces func (no space- entity): each run in its own reference, and
    the subject's runs were combined voxel by voxel without a word."""
    for path in list((one_subject.path / "derivatives").rglob(f"*_space-{SPACE}_desc-*")):
        path.rename(path.with_name(path.name.replace(f"_space-{SPACE}", "")))
    for path in (one_subject.path / "derivatives").rglob("*_space-T1w_*"):
        path.unlink()
    assert main([str(one_subject.path), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "--no-reports"]) == 0
    said = capsys.readouterr().err
    assert ("The preprocessed runs of sub-01 task-checkerboard have no space- entity: each is in its own BOLD "
            "reference") in said and "--space T1w" in said


def test_default_contrasts_with_the_same_label(one_subject, tmp_path, capsys):
    for events in one_subject.path.rglob("*_events.tsv"):
        table = pd.read_csv(events, sep="\t")
        table["trial_type"] = table["trial_type"].map({"audio": "go_left", "visual": "go-left"})
        table.to_csv(events, sep="\t", index=False)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 64,
          "go_left", "go-left", "goLeft")


def test_contrasts_whose_labels_differ_only_in_case(one_subject, tmp_path, capsys):
    """``audio`` and ``Audio`` would be one file on macOS and Windows (and on such a share)."""
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation",
                   "--contrast", "audio=audio", "--contrast", "Audio=audio-visual"], 64,
          "'audio'", "'Audio'", "ignore case")


@pytest.mark.parametrize("name", ["constant", "drift_1", "trans_x"])
def test_a_condition_named_as_a_column_the_design_adds(one_subject, tmp_path, capsys, name):
    events = sorted(one_subject.path.rglob("*_events.tsv"))[0]
    table = pd.read_csv(events, sep="\t")
    table["trial_type"] = table["trial_type"].replace({"visual": name})
    table.to_csv(events, sep="\t", index=False)
    fails(capsys, [one_subject.path, tmp_path / "out", "participant", "--skip-bids-validation"], 66,
          events.name, f"trial_type {name!r}", "rename that condition")


def test_given_confounds_without_a_confounds_file(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("03",), derivatives=False)
    fails(capsys, [dataset.path, tmp_path / "out", "participant", "--confounds", "trans_x"], 66,
          "--confounds trans_x", "sub-03_ses-1_task-checkerboard_run-01")


def test_a_mask_nilearn_computes_empty_leaves_no_output_folder(fresh_dataset, tmp_path, capsys):
    """Raw series without derivatives, one of noise alone (no voxel brighter than the rest):
    the run's mask, computed by nilearn when its fit starts, is empty. The error came once
    OUTPUT_DIR had been made with its dataset_description.json, README and .bidsignore."""
    dataset = fresh_dataset(subjects=("03",), derivatives=False)
    bold = sorted(dataset.path.rglob("sub-03_*_bold.nii.gz"))[-1]  # the last run: the others fit first
    img = nib.load(bold)
    noise = np.random.default_rng(0).random(img.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(noise, img.affine, img.header), bold)
    out = tmp_path / "out"
    fails(capsys, [dataset.path, out, "participant", "--skip-bids-validation"], 66, bold, "empty brain mask")
    assert not out.exists()


def test_a_task_of_one_subject_of_participant_label_says_to_give_more_labels(two_task_dataset, tmp_path, capsys):
    """A group job of --participant-label 01 03, sub-03 without the other task: the advice was to
    run the participant level for the other subjects, whose maps were there (sub-02's)."""
    dataset = two_task_dataset(n_subjects=3)
    for path in dataset.path.rglob("sub-03_*task-other*"):
        path.unlink()
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports", "--participant-label", "01", "03"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert ("task-other contrast-audio has maps for one subject only (sub-01), so it is not tested; it is the only "
            "one of --participant-label with maps of the task") in said
    assert "run the participant level for the other subjects first" not in said


def test_a_contrast_of_one_subject_among_several_points_to_the_events(fresh_dataset, tmp_path, capsys):
    """sub-02's events with a misspelt trial_type column (nilearn's 'dummy' condition): the group
    level advised running the participant level for the other subjects, which had run."""
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    for events in (dataset.path / "sub-02").rglob("*_events.tsv"):
        text = events.read_text()
        events.write_text(text.replace("trial_type", "trialtype", 1))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert ("contrast-dummy has maps for one subject only (sub-02), so it is not tested; the maps of the 2 other "
            "subject(s) of the task have no such contrast: check its condition's name in the events files") in said
    assert "run the participant level for the other subjects first" not in said
