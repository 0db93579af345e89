"""Discovery (pybids): runs, their files, TR, spaces, filters and the BIDS checks."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_fixedfx import discover
from bids_fixedfx.cli import main
from bids_fixedfx.errors import (
    EX_INVALID_BIDS, EX_NO_INPUT, EX_USAGE, InputFileError, InvalidBIDSError, NoDataError, UsageError,
)
from bids_fixedfx.example_data import make_example_dataset
from bids_fixedfx.settings import DEFAULT_SPACE


def raw_bolds(root, subject="*", session="*"):
    """The raw BOLD series of the example dataset, found by their file names."""
    return sorted(Path(root).glob(f"sub-{subject}/ses-{session}/func/sub-*_bold.nii.gz"))


def stem(path):
    return Path(path).name.split("_bold.nii")[0]


def entities_of(path):
    """The (key, value) pairs of a file name, values exactly as written."""
    return tuple(tuple(part.split("-", 1)) for part in stem(path).split("_"))


def raw_tr(root, task="checkerboard"):
    return json.loads((Path(root) / f"task-{task}_bold.json").read_text())["RepetitionTime"]


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# ---------------------------------------------------------------- the default selection


def test_all_runs_are_found_with_their_entities(example_dataset, example_selection):
    raws = raw_bolds(example_dataset.path)
    assert len(raws) > 0
    assert [run.name for run in example_selection.runs] == [stem(p) for p in raws]
    assert [run.entities for run in example_selection.runs] == [entities_of(p) for p in raws]
    assert example_selection.subjects == example_dataset.subjects
    for run in example_selection.runs:
        values = dict(run.entities)
        assert len(values["run"]) == 2  # "01" as in run-01, not 1
        assert run.subject == values["sub"]
        assert run.session == values["ses"]
        assert run.task == values["task"] == example_dataset.tasks[0]
    assert example_selection.warnings == ()


def test_events_confounds_and_masks_are_matched(example_dataset, example_selection):
    fmriprep = example_dataset.path / "derivatives" / "fmriprep"
    assert example_selection.derivatives == (fmriprep,)
    for run, raw in zip(example_selection.runs, raw_bolds(example_dataset.path)):
        func = raw.parent.relative_to(example_dataset.path)
        assert run.preprocessed is True
        assert run.design is None
        assert run.raw_bold == raw
        assert run.bold == fmriprep / func / f"{run.name}_space-{DEFAULT_SPACE}_desc-preproc_bold.nii.gz"
        assert run.mask == fmriprep / func / f"{run.name}_space-{DEFAULT_SPACE}_desc-brain_mask.nii.gz"
        assert run.events == raw.parent / f"{run.name}_events.tsv"
        assert run.confounds == fmriprep / func / f"{run.name}_desc-confounds_timeseries.tsv"
        for path in (run.bold, run.mask, run.events, run.confounds):
            assert path.is_file(), path


def test_tr_and_volumes(example_dataset, example_selection, example_grid):
    tr = raw_tr(example_dataset.path)
    for run in example_selection.runs:
        assert run.tr == tr
        assert run.n_volumes == nib.load(run.bold).shape[3]
        assert run.n_volumes == example_grid["n_volumes"]


def test_default_space_is_mni(example_dataset, example_selection):
    assert set(example_dataset.spaces) > {DEFAULT_SPACE}  # several spaces to choose from
    assert example_selection.space == DEFAULT_SPACE
    assert all(run.space == DEFAULT_SPACE for run in example_selection.runs)


def test_space_t1w(example_dataset, make_settings, example_grid):
    selection = discover.select_runs(make_settings(example_dataset.path, space="T1w", participant_label=("01",)))
    assert selection.space == "T1w"
    assert [run.name for run in selection.runs] == [stem(p) for p in raw_bolds(example_dataset.path, "01")]
    for run in selection.runs:
        assert run.space == "T1w"
        assert run.bold.name == f"{run.name}_space-T1w_desc-preproc_bold.nii.gz"
        assert run.mask.name == f"{run.name}_space-T1w_desc-brain_mask.nii.gz"
        # the T1w grid is the native one: the mask is on the BOLD's grid, not MNI's
        assert nib.load(run.mask).shape == nib.load(run.bold).shape[:3]
        assert nib.load(run.mask).shape != tuple(example_grid["shape"])


@pytest.mark.parametrize("space", ["MNI152NLin6Asym", "none"])
def test_unknown_space_is_no_data(example_dataset, make_settings, space):
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(example_dataset.path, space=space, participant_label=("03",)))
    assert error.value.exit_code == EX_NO_INPUT
    message = str(error.value)
    assert f"--space {space}" in message
    for present in example_dataset.spaces:  # says what would have worked
        assert present in message


@pytest.fixture(scope="module")
def other_spaces(tmp_path_factory, example_grid):
    """A one-run dataset whose derivatives come in two spaces, neither of them the default."""
    return make_example_dataset(
        tmp_path_factory.mktemp("spaces") / "bids", n_subjects=1, n_sessions=1, n_runs=1,
        shape=example_grid["shape"], n_volumes=30, spaces=("T1w", "MNI152NLin6Asym"),
    )


def test_several_spaces_without_mni_is_a_usage_error(other_spaces, make_settings):
    with pytest.raises(UsageError) as error:
        discover.select_runs(make_settings(other_spaces.path))
    assert error.value.exit_code == EX_USAGE
    message = str(error.value)
    assert "--space" in message
    assert "T1w" in message and "MNI152NLin6Asym" in message


def test_a_chosen_space_among_several(other_spaces, make_settings):
    selection = discover.select_runs(make_settings(other_spaces.path, space="MNI152NLin6Asym"))
    assert selection.space == "MNI152NLin6Asym"
    assert [run.bold.name for run in selection.runs] == [
        f"{stem(p)}_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz" for p in other_spaces.path.glob("sub-*/func/*_bold.nii.gz")
    ]


def test_the_only_space_present_is_the_default(tmp_path, make_settings, example_grid):
    dataset = make_example_dataset(
        tmp_path / "bids", n_subjects=1, n_sessions=1, n_runs=1, shape=example_grid["shape"], n_volumes=30,
        spaces=("T1w",),
    )
    selection = discover.select_runs(make_settings(dataset.path))
    assert selection.space == "T1w"
    assert [run.space for run in selection.runs] == ["T1w"]


# ---------------------------------------------------------------- selecting subjects, sessions, tasks


def test_participant_filter(example_dataset, make_settings):
    selection = discover.select_runs(make_settings(example_dataset.path, participant_label=("02",)))
    assert [run.name for run in selection.runs] == [stem(p) for p in raw_bolds(example_dataset.path, "02")]
    assert selection.subjects == ("02",)


def test_unknown_participant_among_known_ones_is_a_warning(example_dataset, make_settings):
    selection = discover.select_runs(make_settings(example_dataset.path, participant_label=("03", "99")))
    assert [run.name for run in selection.runs] == [stem(p) for p in raw_bolds(example_dataset.path, "03")]
    assert any("--participant-label 99" in w for w in selection.warnings)


def test_unknown_participant_is_no_data(example_dataset, make_settings):
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(example_dataset.path, participant_label=("99",)))
    assert error.value.exit_code == EX_NO_INPUT
    assert "--participant-label 99" in str(error.value)


def test_session_filter(example_dataset, make_settings):
    selection = discover.select_runs(make_settings(example_dataset.path, session_label=("2",)))
    expected = raw_bolds(example_dataset.path, session="2")
    assert [run.name for run in selection.runs] == [stem(p) for p in expected]
    assert {run.session for run in selection.runs} == {"2"}
    # the single-run subject has no session 2
    assert example_dataset.subjects[-1] not in selection.subjects


def test_unknown_session_is_no_data(example_dataset, make_settings):
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(example_dataset.path, session_label=("9",)))
    assert "--session-label 9" in str(error.value)


def test_a_session_without_bold_is_named_in_the_no_data_message(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("01",))
    other = dataset.path / "sub-01" / "ses-meg" / "meg"  # a session of other data only
    other.mkdir(parents=True)
    (other / "sub-01_ses-meg_task-checkerboard_meg.json").write_text("{}")
    with pytest.raises(NoDataError, match="No BOLD series matches the selection .*--session-label meg"):
        discover.select_runs(make_settings(dataset.path, session_label=("meg",)))


def test_task_filter(example_dataset, example_selection, make_settings):
    selection = discover.select_runs(
        make_settings(example_dataset.path, task=example_dataset.tasks, participant_label=("03",))
    )
    assert [run.name for run in selection.runs] == [
        run.name for run in example_selection.runs if run.subject == "03"
    ]


def test_unknown_task_is_no_data(example_dataset, make_settings):
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(example_dataset.path, task=("rest",)))
    assert error.value.exit_code == EX_NO_INPUT
    assert "--task rest is not in the dataset" in str(error.value)
    assert example_dataset.tasks[0] in str(error.value)
    # the tasks are those of the selected subjects: another subject's task is not said absent from the dataset
    subject = example_dataset.subjects[0]
    with pytest.raises(NoDataError, match=f"--task rest is not in the data that --participant-label {subject} "
                                          f"selects \\(tasks: {example_dataset.tasks[0]}\\)"):
        discover.select_runs(make_settings(example_dataset.path, task=("rest",), participant_label=(subject,)))


def test_bids_filters(example_dataset, make_settings):
    settings = make_settings(example_dataset.path, participant_label=("01",), bids_filters={"bold": {"run": 1}})
    selection = discover.select_runs(settings)
    expected = [p for p in raw_bolds(example_dataset.path, "01") if "_run-01_" in p.name]
    assert len(expected) > 0
    assert [run.name for run in selection.runs] == [stem(p) for p in expected]
    assert not [w for w in selection.warnings if "no preprocessed one" in w]  # the other runs: left out on purpose


@pytest.mark.parametrize("kind", ["mask", "confounds", "events"])
def test_a_filter_of_masks_or_confounds_matching_none_is_named(example_dataset, make_settings, kind):
    """Was exit 0: nilearn computed the masks, or the runs were modelled without confounds, with
    warnings that the derivatives had none (events: 66 'has no events.tsv', or, with events at
    the top level, those inherited events instead)."""
    filters = {kind: {"desc": "typo"}}
    with pytest.raises(NoDataError, match=f"The --bids-filter-file query of '{kind}' {{\"desc\": \"typo\"}} "
                                          f"matches no {kind} file of sub-01_"):
        discover.select_runs(make_settings(example_dataset.path, participant_label=("01",), bids_filters=filters))


@pytest.mark.parametrize("filters", [
    {"bold": {"datatype": "func", "suffix": "bold", "desc": "preproc"}},  # fMRIPrep's own style
    {"bold": {"extension": ".nii.gz"}, "mask": {"suffix": "mask", "extension": ".nii.gz"}},
    {"events": {"suffix": "events", "extension": ".tsv"}, "confounds": {"desc": "confounds"}},
])
def test_bids_filters_may_name_what_the_queries_name(example_dataset, make_settings, filters):
    """A filter naming suffix, extension or desc takes the place of the app's own value (it
    raised 'got multiple values for keyword argument')."""
    plain = discover.select_runs(make_settings(example_dataset.path, participant_label=("01",)))
    selection = discover.select_runs(make_settings(example_dataset.path, participant_label=("01",),
                                                   bids_filters=filters))
    assert selection.runs and selection.runs == plain.runs


def test_bids_filters_matching_nothing_is_no_data(example_dataset, make_settings):
    settings = make_settings(example_dataset.path, participant_label=("01",), bids_filters={"bold": {"run": 7}})
    with pytest.raises(NoDataError) as error:
        discover.select_runs(settings)
    assert error.value.exit_code == EX_NO_INPUT
    assert "filter" in str(error.value).lower()


# ---------------------------------------------------------------- missing files and metadata


def test_run_without_events_is_no_data(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("01",))
    victim = raw_bolds(dataset.path, "01")[1]
    (victim.parent / f"{stem(victim)}_events.tsv").unlink()
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(dataset.path))
    assert error.value.exit_code == EX_NO_INPUT
    assert str(error.value) == (
        f"{stem(victim)} has no events.tsv in {dataset.path}; add its events file, give its design with --design-dir, "
        "or leave the run out (--task, --bids-filter-file).")  # what to do, not only what is missing


def test_missing_tr_is_no_data(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    edit_json(dataset.path / "task-checkerboard_bold.json", lambda d: d.pop("RepetitionTime"))
    for sidecar in (dataset.path / "derivatives").rglob("*_desc-preproc_bold.json"):
        edit_json(sidecar, lambda d: d.pop("RepetitionTime"))
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(dataset.path))
    assert error.value.exit_code == EX_NO_INPUT
    assert "RepetitionTime" in str(error.value)
    assert stem(raw_bolds(dataset.path)[0]) in str(error.value) and "VolumeTiming" not in str(error.value)
    # a sparse acquisition (VolumeTiming instead, valid BIDS): said so
    edit_json(dataset.path / "task-checkerboard_bold.json", lambda d: d.update(VolumeTiming=[0, 2, 4]))
    with pytest.raises(NoDataError, match="they give VolumeTiming .a sparse or clustered acquisition., which this "
                                          "app does not model"):
        discover.select_runs(make_settings(dataset.path))


def test_tr_falls_back_to_the_raw_json_with_inheritance(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    header_tr = float(nib.load(raw_bolds(dataset.path)[0]).header.get_zooms()[3])
    new_tr = header_tr + 0.5
    # the raw TR only at the top level (inherited); the derivative sidecars have none
    edit_json(dataset.path / "task-checkerboard_bold.json", lambda d: d.update(RepetitionTime=new_tr))
    sidecars = list((dataset.path / "derivatives").rglob("*_desc-preproc_bold.json"))
    assert sidecars
    for sidecar in sidecars:
        edit_json(sidecar, lambda d: d.pop("RepetitionTime"))
    assert not list(dataset.path.glob("sub-*/**/*_bold.json"))
    selection = discover.select_runs(make_settings(dataset.path))
    assert [run.tr for run in selection.runs] == [new_tr]


def test_a_raw_tr_that_contradicts_the_preprocessed_one_is_said_once(fresh_dataset, make_settings):
    """The derivative's TR was used without a word where the raw sidecars gave another."""
    dataset = fresh_dataset(subjects=("01",))
    tr = raw_tr(dataset.path)
    selection = discover.select_runs(make_settings(dataset.path))
    assert not [w for w in selection.warnings if "RepetitionTime" in w]
    edit_json(dataset.path / "task-checkerboard_bold.json", lambda d: d.update(RepetitionTime=tr * 0.75))
    selection = discover.select_runs(make_settings(dataset.path))
    assert {run.tr for run in selection.runs} == {tr}  # the preprocessed series' is used
    said = [w for w in selection.warnings if "RepetitionTime" in w]
    assert len(said) == 1 and said[0].startswith(f"{len(selection.runs)} preprocessed series have a RepetitionTime")
    assert f"{tr:g} s in" in said[0] and f"against {tr * 0.75:g} s in {dataset.path / 'task-checkerboard_bold.json'}" in said[0]


def test_a_sidecar_giving_the_tr_twice_is_refused(fresh_dataset, make_settings):
    """{"RepetitionTime": 2.0, "RepetitionTime": 1.0}: the last was used without a word."""
    dataset = fresh_dataset(subjects=("01",))
    sidecar = dataset.path / "task-checkerboard_bold.json"
    tr = raw_tr(dataset.path)
    sidecar.write_text(sidecar.read_text().rstrip().rstrip("}") + f', "RepetitionTime": {tr}}}')
    discover.select_runs(make_settings(dataset.path))  # twice with one value: no doubt
    sidecar.write_text(sidecar.read_text().rstrip().rstrip("}") + f', "RepetitionTime": {tr * 2}}}')
    preprocessed = list((dataset.path / "derivatives").rglob("*_desc-preproc_bold.json"))
    for path in preprocessed:
        edit_json(path, lambda d: d.pop("RepetitionTime"))
    with pytest.raises(InputFileError, match=f"The sidecar {re.escape(str(sidecar))} gives RepetitionTime twice, "
                                             f"{tr:g}.* and {tr * 2:g}"):
        discover.select_runs(make_settings(dataset.path))


def test_tr_is_never_read_from_the_nifti_header(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    json_tr = raw_tr(dataset.path)
    header_tr = json_tr + 1.7
    paths = [*raw_bolds(dataset.path), *(dataset.path / "derivatives").rglob("*_desc-preproc_bold.nii.gz")]
    for path in paths:
        img = nib.load(path)
        img = nib.Nifti1Image(img.get_fdata(dtype="float32"), img.affine, img.header)
        img.header.set_zooms(img.header.get_zooms()[:3] + (header_tr,))
        nib.save(img, path)
        assert nib.load(path).header.get_zooms()[3] == pytest.approx(header_tr)
    selection = discover.select_runs(make_settings(dataset.path))
    assert [run.tr for run in selection.runs] == [json_tr]


def test_without_derivatives_the_raw_bold_is_used_with_a_warning(fresh_dataset, make_settings, tmp_path):
    dataset = fresh_dataset(subjects=("01",), derivatives=False)
    assert not (dataset.path / "derivatives").exists()
    selection = discover.select_runs(make_settings(dataset.path))
    raws = raw_bolds(dataset.path)
    assert [run.bold for run in selection.runs] == raws
    assert all(run.preprocessed is False and run.mask is None for run in selection.runs)
    assert all(run.tr == raw_tr(dataset.path) for run in selection.runs)
    assert [run.events for run in selection.runs] == [p.parent / f"{stem(p)}_events.tsv" for p in raws]
    assert any("raw" in w.lower() and "masks computed by nilearn" in w for w in selection.warnings)
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(nib.load(raws[0]).shape[:3], np.uint8), nib.load(raws[0]).affine), mask)
    masked = discover.select_runs(make_settings(dataset.path, mask=mask))
    assert any("within --mask" in w for w in masked.warnings)
    assert not any("computed by nilearn" in w for w in masked.warnings)


def test_raw_bold_is_not_modelled_where_derivatives_hold_other_subjects(fresh_dataset, make_settings):
    """The derivatives lack sub-03: its raw series were modelled (exit 0, a warning that said
    to pass -d even when -d was given), and a run of all subjects left it out silently."""
    dataset = fresh_dataset(subjects=("01", "03"))
    fmriprep = dataset.path / "derivatives" / "fmriprep"
    shutil.rmtree(fmriprep / "sub-03")
    for derivatives in ((), (fmriprep,)):
        with pytest.raises(NoDataError, match=f"No preprocessed BOLD of the selection \\(sub-03.* is in {fmriprep}"):
            discover.select_runs(make_settings(dataset.path, participant_label=("03",), derivatives=derivatives))
    selection = discover.select_runs(make_settings(dataset.path))
    assert {run.entities[0] for run in selection.runs} == {("sub", "01")}
    missing = [w for w in selection.warnings if "has a raw BOLD series but no preprocessed one" in w]
    assert [w.split()[0] for w in missing] == [stem(p) for p in raw_bolds(dataset.path, "03")]
    # a filter of the derivatives' entities leaves no raw run out on purpose (it hid the warning)
    filtered = discover.select_runs(make_settings(dataset.path, bids_filters={"bold": {"desc": "preproc"}}))
    assert [w for w in filtered.warnings if "has a raw BOLD series but no preprocessed one" in w] == missing


@pytest.mark.parametrize("described", [True, False])
def test_derivatives_named_as_old_fmriprep_named_them_are_said(fresh_dataset, make_settings, described):
    """fMRIPrep before 1.4 (*_bold_space-X_preproc.nii.gz): the raw series were modelled, also
    when the folder had no dataset_description.json (as those versions wrote none)."""
    dataset = fresh_dataset(subjects=("01",))
    fmriprep = dataset.path / "derivatives" / "fmriprep"
    for path in fmriprep.rglob("*_desc-preproc_bold.nii.gz"):
        space = next(part for part in path.name.split("_") if part.startswith("space-"))
        path.rename(path.with_name(path.name.replace(f"_{space}_desc-preproc_bold", f"_bold_{space}_preproc")))
    if not described:
        (fmriprep / "dataset_description.json").unlink()
    with pytest.raises(NoDataError, match=f"{fmriprep} holds BOLD series named as fMRIPrep named them before "
                                          "version 1.4"):
        discover.select_runs(make_settings(dataset.path))


def test_a_run_missing_from_one_chosen_space_is_named(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("01",))
    func = next((dataset.path / "derivatives" / "fmriprep" / "sub-01").glob("ses-1/func"))
    for path in func.glob("*run-02_space-MNI152NLin2009cAsym_*"):
        path.unlink()
    selection = discover.select_runs(make_settings(dataset.path))
    [said] = [w for w in selection.warnings if "no preprocessed one" in w]
    assert said.startswith("sub-01_ses-1_task-checkerboard_run-02 ") and "space MNI152NLin2009cAsym" in said
    assert not [w for w in discover.select_runs(
        make_settings(dataset.path, bids_filters={"bold": {"session": "2"}})).warnings if "no preprocessed one" in w]


# ---------------------------------------------------------------- derivatives and BIDS checks


def _derivative(path):
    path.mkdir(parents=True)
    (path / "dataset_description.json").write_text(
        json.dumps({"Name": path.name, "BIDSVersion": "1.9.0", "DatasetType": "derivative"})
    )
    return path


def test_two_fmriprep_outputs_of_one_run_name_their_folders(fresh_dataset, make_settings):
    """Named two identical file names and suggested the filter {"bold": {}}, which changes nothing."""
    dataset = fresh_dataset(subjects=("01",))
    fmriprep = dataset.path / "derivatives" / "fmriprep"
    newer = dataset.path / "derivatives" / "fmriprep-24"
    shutil.copytree(fmriprep, newer)
    with pytest.raises(UsageError, match=f"several derivatives datasets \\({fmriprep}, {newer}\\); choose one with -d"):
        discover.select_runs(make_settings(dataset.path))
    assert discover.select_runs(make_settings(dataset.path, derivatives=(newer,))).runs


@pytest.mark.parametrize("parts", [("echo-1", "echo-2"), ("part-mag", "part-phase")])
def test_the_echoes_or_parts_of_a_raw_run_under_one_preprocessed_series_are_one_run(fresh_dataset, make_settings,
                                                                                    parts):
    """fMRIPrep combines a multi-echo run into one series: 66 'several raw BOLD files', and the
    filter it suggested matched no preprocessed series."""
    dataset = fresh_dataset(subjects=("01",))
    plain = discover.select_runs(make_settings(dataset.path))
    for bold in raw_bolds(dataset.path, "01"):
        stem = bold.name.removesuffix("_bold.nii.gz")
        shutil.copy(bold, bold.with_name(f"{stem}_{parts[1]}_bold.nii.gz"))
        bold.rename(bold.with_name(f"{stem}_{parts[0]}_bold.nii.gz"))
    selection = discover.select_runs(make_settings(dataset.path))
    assert [(r.name, r.bold, r.events, r.tr) for r in selection.runs] == [
        (r.name, r.bold, r.events, r.tr) for r in plain.runs]
    assert not [w for w in selection.warnings if "no preprocessed one" in w]


def test_an_echo_chosen_by_filter_keeps_the_runs_mask_and_confounds(fresh_dataset, make_settings):
    """fMRIPrep writes one brain mask and one confounds table for every echo of a run: the echo
    chosen as the 64 message suggests was fitted without confounds, in a mask nilearn made.
    A file of the run's own echo goes before one of all its echoes."""
    dataset = fresh_dataset(subjects=("01",))
    plain = {run.name: run for run in discover.select_runs(make_settings(dataset.path, space=DEFAULT_SPACE)).runs}
    for bold in dataset.path.rglob(f"*space-{DEFAULT_SPACE}_desc-preproc_bold.*"):
        for echo in ("1", "2"):
            shutil.copy(bold, bold.with_name(bold.name.replace("_space-", f"_echo-{echo}_space-")))
        bold.unlink()
    with pytest.raises(UsageError, match='several echo- values .* e.g. {"bold": {"echo": "1"}}'):
        discover.select_runs(make_settings(dataset.path, space=DEFAULT_SPACE))
    echo_2 = {"bold": {"echo": "2"}}
    chosen = discover.select_runs(make_settings(dataset.path, space=DEFAULT_SPACE, bids_filters=echo_2))
    assert chosen.runs and all("_echo-2_" in run.bold.name for run in chosen.runs)
    for run in chosen.runs:
        same = plain[run.name.replace("_echo-2", "")]
        assert (run.mask, run.confounds, run.events) == (same.mask, same.confounds, same.events)
    own = chosen.runs[0].mask.with_name(chosen.runs[0].mask.name.replace("_space-", "_echo-2_space-"))
    shutil.copy(chosen.runs[0].mask, own)
    again = discover.select_runs(make_settings(dataset.path, space=DEFAULT_SPACE, bids_filters=echo_2))
    assert again.runs[0].mask == own and again.runs[1].mask == chosen.runs[1].mask


def test_echoes_beside_the_combined_series_suggest_the_combined_one(fresh_dataset, make_settings):
    """fMRIPrep's --me-output-echos writes each echo beside the optimally combined series: exit 1
    (a KeyError) when the combined one, which has no echo-, came first."""
    dataset = fresh_dataset(subjects=("01",))
    plain = {run.name: run for run in discover.select_runs(make_settings(dataset.path, space=DEFAULT_SPACE)).runs}
    for bold in dataset.path.rglob(f"*space-{DEFAULT_SPACE}_desc-preproc_bold.*"):
        for echo in ("1", "2"):
            shutil.copy(bold, bold.with_name(bold.name.replace("_space-", f"_echo-{echo}_space-")))
    with pytest.raises(UsageError, match='several echo- values .* e.g. {"bold": {"echo": null}}'):
        discover.select_runs(make_settings(dataset.path, space=DEFAULT_SPACE))
    combined = discover.select_runs(make_settings(dataset.path, space=DEFAULT_SPACE,
                                                  bids_filters={"bold": {"echo": None}}))
    assert {run.name: run.bold for run in combined.runs} == {name: run.bold for name, run in plain.items()}


def test_derivatives_of_another_desc_or_one_folder_down_are_named_not_left_for_the_raw(fresh_dataset, make_settings):
    """Each modelled the raw series (exit 0): -d holding desc-denoised (or fMRIPrep's AROMA) series,
    and fMRIPrep 20's derivatives/fmriprep/fmriprep beside derivatives/fmriprep/freesurfer."""
    dataset = fresh_dataset(subjects=("01",))
    fmriprep = dataset.path / "derivatives" / "fmriprep"
    for path in fmriprep.rglob("*_desc-preproc_bold.nii.gz"):
        path.rename(path.with_name(path.name.replace("desc-preproc", "desc-smoothAROMAnonaggr")))
    for derivatives in ((), (fmriprep,)):
        with pytest.raises(NoDataError, match=f'{fmriprep} holds BOLD series of desc-smoothAROMAnonaggr but none of '
                                              'desc-preproc; choose them with --bids-filter-file holding '
                                              '{"bold": {"desc": "smoothAROMAnonaggr"}}'):
            discover.select_runs(make_settings(dataset.path, derivatives=derivatives))
    with pytest.raises(NoDataError, match="holds BOLD series of desc-smoothAROMAnonaggr"):
        discover.select_runs(make_settings(dataset.path, space=DEFAULT_SPACE))
    chosen = discover.select_runs(make_settings(dataset.path, bids_filters={"bold": {"desc": "smoothAROMAnonaggr"}}))
    assert chosen.runs and all(run.preprocessed for run in chosen.runs)
    for path in fmriprep.rglob("*_desc-smoothAROMAnonaggr_bold.nii.gz"):
        path.rename(path.with_name(path.name.replace("desc-smoothAROMAnonaggr", "desc-preproc")))
    nested = dataset.path / "derivatives" / "out20" / "fmriprep"
    nested.parent.mkdir()
    fmriprep.rename(nested)
    with pytest.raises(NoDataError, match=f"{nested} holds preprocessed BOLD one folder below .* pass -d {nested}"):
        discover.select_runs(make_settings(dataset.path))
    assert discover.select_runs(make_settings(dataset.path, derivatives=(nested,))).runs
    with pytest.raises(NoDataError, match=f"--derivatives {nested.parent} is not a derivatives dataset: .*; give "
                                          f"the datasets in it \\(-d {nested}\\)"):  # the folder above it given
        discover.select_runs(make_settings(dataset.path, derivatives=(nested.parent,)))
    empty = _derivative(dataset.path / "derivatives" / "empty")
    with pytest.raises(NoDataError, match=f"-d {empty} holds no preprocessed BOLD of the selection"):
        discover.select_runs(make_settings(dataset.path, derivatives=(empty,)))


def test_a_subject_with_anatomy_only_is_named_so(fresh_dataset, make_settings):
    """Said 'No task of the selected data has events.tsv files (tasks: none); give --design-dir'."""
    dataset = fresh_dataset(subjects=("01",))
    anat = dataset.path / "sub-99" / "anat"
    anat.mkdir(parents=True)
    shutil.copy(next(dataset.path.rglob("sub-01_*_bold.json")), anat / "sub-99_T1w.json")
    with pytest.raises(NoDataError, match=f"sub-99 of {dataset.path} has no BOLD series"):
        discover.select_runs(make_settings(dataset.path, participant_label=("99",)))


def test_an_old_fmriprep_description_is_read_without_pybids_warning(fresh_dataset, make_settings, recwarn):
    """fMRIPrep < 1.5 wrote PipelineDescription: pybids' warning reached the terminal beside the log."""
    dataset = fresh_dataset(subjects=("01",))
    path = dataset.path / "derivatives" / "fmriprep" / "dataset_description.json"
    description = json.loads(path.read_text())
    description.pop("GeneratedBy", None)
    path.write_text(json.dumps({**description, "PipelineDescription": {"Name": "fMRIPrep", "Version": "1.4.1"}}))
    assert discover.select_runs(make_settings(dataset.path)).runs
    assert not [w for w in recwarn if "PipelineDescription" in str(w.message)]


def test_find_derivatives_excludes_the_output_dir(tmp_path):
    bids = tmp_path / "bids"
    fmriprep = _derivative(bids / "derivatives" / "fmriprep")
    ours = _derivative(bids / "derivatives" / "bids-fixedfx")
    (bids / "derivatives" / "not-a-dataset").mkdir()
    assert discover.find_derivatives(bids, tmp_path / "elsewhere") == (ours, fmriprep)
    assert discover.find_derivatives(bids, ours) == (fmriprep,)
    # also when OUTPUT_DIR is given by another spelling of the same folder
    assert discover.find_derivatives(bids, bids / "derivatives" / ".." / "derivatives" / "bids-fixedfx") == (fmriprep,)
    # an earlier output of the app (another OUTPUT_DIR) holds no input: it was indexed and linked
    earlier = _derivative(bids / "derivatives" / "glm")
    (earlier / "dataset_description.json").write_text(json.dumps(
        {"Name": "glm", "BIDSVersion": "1.9.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": "bids-fixedfx"}]}))
    assert discover.find_derivatives(bids, ours) == (fmriprep,)


def test_a_link_under_derivatives_back_to_the_dataset_is_skipped_and_said(fresh_dataset, make_settings, tmp_path):
    """derivatives/loop -> .. was taken for a derivatives dataset, then refused as '--derivatives
    .../loop is BIDS_DIR itself' though -d was not given."""
    bids = _derivative(tmp_path / "bids")
    fmriprep = _derivative(bids / "derivatives" / "fmriprep")
    (bids / "derivatives" / "loop").symlink_to("..")
    (bids / "derivatives" / "up").symlink_to("../..")
    (tmp_path / "dataset_description.json").write_text((bids / "dataset_description.json").read_text())
    assert discover.find_derivatives(bids, tmp_path / "out") == (fmriprep,)
    assert discover.derivatives.looping_derivatives(bids) == (bids / "derivatives" / "loop", bids / "derivatives" / "up")
    dataset = fresh_dataset(subjects=("01",))
    (dataset.path / "derivatives" / "loop").symlink_to("..")
    said = [w for w in discover.select_runs(make_settings(dataset.path)).warnings if "symbolic link" in w]
    assert said == [f"{dataset.path / 'derivatives' / 'loop'} is a symbolic link to {dataset.path.resolve()} (BIDS_DIR "
                    "or a folder above it) and is not read as derivatives; remove it, or give the derivatives with -d."]


def test_find_derivatives_without_a_derivatives_folder(tmp_path):
    assert discover.find_derivatives(tmp_path, tmp_path / "out") == ()


def test_find_derivatives_of_the_example(example_dataset, tmp_path):
    assert discover.find_derivatives(example_dataset.path, tmp_path) == (
        example_dataset.path / "derivatives" / "fmriprep",
    )


def test_bids_dir_given_as_derivatives_is_refused(example_dataset, make_settings):
    """-d BIDS_DIR fitted the raw series without confounds, with a warning to pass -d."""
    with pytest.raises(UsageError, match="is BIDS_DIR itself") as error:
        discover.select_runs(make_settings(example_dataset.path, derivatives=(example_dataset.path / ".",)))
    assert error.value.exit_code == 64


def test_a_derivatives_path_without_description_is_refused(example_dataset, tmp_path):
    with pytest.raises(NoDataError) as error:
        discover.load_layout(example_dataset.path, (tmp_path,))
    assert "--derivatives" in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_derivatives_of_separate_jobs_in_folders_of_one_name_are_all_read(fresh_dataset, make_settings, tmp_path):
    """-d /scratch/a/fmriprep /scratch/b/fmriprep (fMRIPrep run per subject) stopped with
    pybids' "Pipeline name fmriprep ... has already been added" (exit 1)."""
    import shutil

    dataset = fresh_dataset(subjects=("01", "02"))
    folders = []
    for job, subject in (("a", "01"), ("b", "02")):
        folder = tmp_path / job / "fmriprep"
        shutil.copytree(dataset.path / "derivatives" / "fmriprep", folder)
        for other in folder.glob("sub-*"):
            if other.is_dir() and other.name != f"sub-{subject}":
                shutil.rmtree(other)
        folders.append(folder)
    shutil.rmtree(dataset.path / "derivatives")
    selection = discover.select_runs(make_settings(dataset.path, derivatives=tuple(folders)))
    found = {run.subject: next(p for p in run.bold.parents if p.name == "fmriprep") for run in selection.runs}
    assert {subject: folder.resolve() for subject, folder in found.items()} == {
        "01": folders[0].resolve(), "02": folders[1].resolve()}


def test_a_bids_dir_of_subject_folders_without_a_description_is_read_with_a_warning(fresh_dataset, make_settings,
                                                                                     caplog):
    """nilearn's fake datasets (create_fake_bids_dataset) have no dataset_description.json at
    their root, and first_level_from_bids reads them: the app refused them (66)."""
    dataset = fresh_dataset(subjects=("01",))
    (dataset.path / "dataset_description.json").unlink()
    with caplog.at_level("WARNING", logger="bids_fixedfx"):
        discover.check_bids_dir(dataset.path)
        selection = discover.select_runs(make_settings(dataset.path, space="MNI152NLin2009cAsym"))
    assert f"BIDS_DIR {dataset.path} has no dataset_description.json; its sub-* folders were read" in caplog.text
    assert selection.runs and all(run.preprocessed and run.events is not None for run in selection.runs)


def test_subject_folders_right_under_derivatives_are_read_as_derivatives(fresh_dataset, make_settings, tmp_path,
                                                                          caplog):
    """nilearn's layout: ``derivatives/sub-*`` with no dataset_description.json (as
    first_level_from_bids reads it); the same runs and maps as the fMRIPrep layout."""
    import shutil

    from bids_fixedfx.cli import main

    described = fresh_dataset(subjects=("01",))
    bare = fresh_dataset(subjects=("01",))
    fmriprep = bare.path / "derivatives" / "fmriprep"
    for child in fmriprep.iterdir():
        if child.name != "dataset_description.json":
            shutil.move(str(child), str(bare.path / "derivatives" / child.name))
    shutil.rmtree(fmriprep)
    assert discover.find_derivatives(bare.path, tmp_path / "out") == (bare.path / "derivatives",)
    assert discover.skipped_derivatives(bare.path, tmp_path / "out") == ()
    with caplog.at_level("WARNING", logger="bids_fixedfx"):
        selection = discover.select_runs(make_settings(bare.path, space="MNI152NLin2009cAsym"))
    assert "has no dataset_description.json; its sub-* folders were read as preprocessed" in caplog.text
    assert selection.runs and all(run.preprocessed and run.mask is not None for run in selection.runs)
    assert all(run.bold.relative_to(bare.path / "derivatives").parts[0] == "sub-01" for run in selection.runs)
    # the bare job writes beside the subject folders of derivatives/, as BIDS Apps write (SPEC §4's new
    # folder under BIDS_DIR/derivatives/; it was refused), twice: its rerun does not read it as input
    outputs = {"described": tmp_path / "described", "bare": bare.path / "derivatives" / "fixedfx"}
    for name, dataset in (("described", described), ("bare", bare), ("bare", bare)):
        assert main([str(dataset.path), str(outputs[name]), "participant", "--skip-bids-validation", "--no-reports",
                     "--space", "MNI152NLin2009cAsym"]) == 0
    maps = sorted(p.relative_to(outputs["described"]) for p in outputs["described"].rglob("*_statmap.nii.gz"))
    assert maps and maps == sorted(p.relative_to(outputs["bare"]) for p in outputs["bare"].rglob("*_statmap.nii.gz"))
    for relative in maps:
        assert (outputs["described"] / relative).read_bytes() == (outputs["bare"] / relative).read_bytes(), relative


def test_an_unreadable_description_of_derivatives_without_func_data_is_left_out(fresh_dataset, tmp_path, caplog):
    """An anatomy pipeline's empty dataset_description.json under derivatives/ (the BIDS
    examples' ieeg_epilepsy) stopped the job (66); with func data it is still refused by name."""
    dataset = fresh_dataset(subjects=("01",))
    other = dataset.path / "derivatives" / "brainvisa"
    (other / "sub-01" / "anat").mkdir(parents=True)
    (other / "dataset_description.json").write_bytes(b"")
    with caplog.at_level("WARNING", logger="bids_fixedfx"):
        found = discover.find_derivatives(dataset.path, tmp_path / "out")
    assert other not in found and dataset.path / "derivatives" / "fmriprep" in found
    assert f"{other} is left out of the derivatives: it holds no func data" in caplog.text
    discover.check_descriptions(dataset.path, found)  # no error
    (other / "sub-01" / "func").mkdir()
    assert other in discover.find_derivatives(dataset.path, tmp_path / "out")
    with pytest.raises(InputFileError, match="brainvisa/dataset_description.json"):
        discover.check_descriptions(dataset.path, discover.find_derivatives(dataset.path, tmp_path / "out"))


def test_check_bids_dir(example_dataset, tmp_path):
    discover.check_bids_dir(example_dataset.path)  # no error
    (tmp_path / "code").mkdir()  # no description and no subject folder (with one: read, with a warning)
    with pytest.raises(NoDataError) as error:
        discover.check_bids_dir(tmp_path)
    assert str(tmp_path) in str(error.value)
    assert "dataset_description.json and no sub-* folder" in str(error.value)
    missing = tmp_path / "no-such-dir"
    with pytest.raises(NoDataError, match=f"BIDS_DIR {missing} does not exist"):  # a missing input: 66
        discover.check_bids_dir(missing)
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="is not a directory"):
        discover.check_bids_dir(tmp_path / "file")


def test_the_validator_is_installed():
    # the test extra installs bids-validator-deno; without it the validation tests mean nothing
    assert discover.validator_command() is not None


def test_validate_input_dir_passes_on_the_example(example_dataset):
    discover.validate_input_dir(example_dataset.path)


def test_a_validation_runs_beside_and_close_ends_it(fresh_dataset):
    """An interrupted run ends the validator and removes its folder of links."""
    dataset = fresh_dataset(subjects=("01", "02"))
    validation = discover.Validation(dataset.path, ("01",))
    links = Path(validation._scratch.name) / "dataset"
    assert sorted(p.name for p in links.iterdir() if p.name.startswith("sub-")) == ["sub-01"]
    assert not (links / "derivatives").exists()  # walked by the validator, not validated
    # its rows of participants.tsv only: the subjects the validator is shown
    table = (links / "participants.tsv").read_text().splitlines()
    assert table[0] == (dataset.path / "participants.tsv").read_text().splitlines()[0]
    assert [row.split("\t")[0] for row in table[1:]] == ["sub-01"]
    validation.close()
    assert validation._process.returncode is not None
    assert not links.exists()


def test_validate_input_dir_reports_an_invalid_file_name(fresh_dataset):
    dataset = fresh_dataset()
    (dataset.path / "notes_about_the_study.txt").write_text("not a BIDS file\n")
    with pytest.raises(InvalidBIDSError) as error:
        discover.validate_input_dir(dataset.path)
    assert error.value.exit_code == EX_INVALID_BIDS == 16
    assert "notes_about_the_study.txt" in str(error.value)
    assert str(dataset.path) in str(error.value)


def test_validate_input_dir_reports_an_incomplete_description(fresh_dataset):
    dataset = fresh_dataset()
    edit_json(dataset.path / "dataset_description.json", lambda d: [d.pop("Name"), d.pop("BIDSVersion")])
    with pytest.raises(InvalidBIDSError) as error:
        discover.validate_input_dir(dataset.path)
    assert error.value.exit_code == EX_INVALID_BIDS
    assert "dataset_description.json" in str(error.value)


# ---------------------------------------------------------------- entities come from paths inside the dataset


def relocate(dataset, target):
    """Move a private copy of the example dataset to ``target`` (its parents created)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(dataset.path, target)
    return dataclasses.replace(dataset, path=target)


def portable(selection, roots):
    """The runs of a selection with every path relative to the dataset root that holds it."""

    def relative(path):
        if path is None:
            return None
        root = max((r for r in roots if r in path.parents), key=lambda r: len(r.parts))
        return path.relative_to(root).as_posix()

    return [
        (run.entities, run.space, relative(run.bold), relative(run.mask), relative(run.events),
         relative(run.confounds), relative(run.raw_bold), run.tr, run.n_volumes, run.start_time)
        for run in selection.runs
    ]


def example_runs_of(example_dataset, example_selection, subject):
    roots = (example_dataset.path, example_dataset.path / "derivatives" / "fmriprep")
    return portable(
        dataclasses.replace(example_selection, runs=tuple(r for r in example_selection.runs if r.subject == subject)),
        roots,
    )


HOSTILE_PARENTS = [
    "proj_task-pilot", "study_run-9", "scratch_ses-2", "data_acq-x", "sub-99", "func",
    "x_desc-brain_space-T1w_echo-2",
]


@pytest.mark.parametrize("parent", HOSTILE_PARENTS)
def test_folders_above_the_dataset_add_no_entities(
    parent, fresh_dataset, make_settings, tmp_path, example_dataset, example_selection
):
    dataset = relocate(fresh_dataset(subjects=("01",)), tmp_path / "up" / parent / "ds")
    selection = discover.select_runs(make_settings(dataset.path))
    roots = (dataset.path, dataset.path / "derivatives" / "fmriprep")
    assert portable(selection, roots) == example_runs_of(example_dataset, example_selection, "01")
    assert [run.name for run in selection.runs] == [stem(p) for p in raw_bolds(dataset.path)]
    assert {dict(run.entities)["run"] for run in selection.runs} == {"01", "02"}
    assert {run.session for run in selection.runs} == {"1", "2"}
    assert selection.subjects == ("01",)
    assert selection.warnings == ()


def test_derivatives_anywhere_under_hostile_folders(
    fresh_dataset, make_settings, tmp_path, example_dataset, example_selection
):
    dataset = relocate(fresh_dataset(subjects=("01",)), tmp_path / "study_run-9" / "ds")
    fmriprep = tmp_path / "x" / "fmriprep_ses-1_acq-y" / "out"
    fmriprep.parent.mkdir(parents=True)
    shutil.move(dataset.path / "derivatives" / "fmriprep", fmriprep)
    selection = discover.select_runs(make_settings(dataset.path, derivatives=(fmriprep,)))
    assert selection.derivatives == (fmriprep,)
    assert all(fmriprep in run.bold.parents and fmriprep in run.mask.parents for run in selection.runs)
    assert portable(selection, (dataset.path, fmriprep)) == example_runs_of(example_dataset, example_selection, "01")


@pytest.mark.parametrize("database", [False, True])
def test_hostile_folders_with_a_participant_label(
    database, fresh_dataset, make_settings, tmp_path, example_dataset, example_selection
):
    dataset = relocate(fresh_dataset(subjects=("01", "03")), tmp_path / "proj_task-pilot" / "sub-99" / "ds")
    settings = make_settings(
        dataset.path, participant_label=("03",), bids_database_dir=tmp_path / "db" if database else None
    )
    selection = discover.select_runs(settings)
    roots = (dataset.path, dataset.path / "derivatives" / "fmriprep")
    assert portable(selection, roots) == example_runs_of(example_dataset, example_selection, "03")


def test_entities_of_a_layout_come_from_relative_paths(fresh_dataset, tmp_path):
    dataset = relocate(fresh_dataset(subjects=("01",)), tmp_path / "a_task-pilot_run-7" / "sub-5" / "ds")
    layout = discover.load_layout(dataset.path, (dataset.path / "derivatives" / "fmriprep",))
    assert layout.get_tasks() == ["checkerboard"]
    assert layout.get_subjects() == ["01"]
    assert sorted(map(str, layout.get_runs())) == ["01", "02"]
    top = layout.get(return_type="object", suffix="bold", extension=".json", scope="raw")
    assert [f.get_entities().get("subject") for f in top] == [None]  # task-checkerboard_bold.json


# ---------------------------------------------------------------- symbolic link loops, folders skipped


def test_a_symlink_loop_is_not_followed_and_is_named(fresh_dataset, make_settings, example_dataset, example_selection):
    dataset = fresh_dataset(subjects=("01",))
    raw_link = dataset.path / "sub-01" / "ses-1" / "func" / "loop"
    raw_link.symlink_to("..")
    derivative_link = dataset.path / "derivatives" / "fmriprep" / "sub-01" / "again"
    derivative_link.symlink_to(dataset.path / "derivatives" / "fmriprep")
    selection = discover.select_runs(make_settings(dataset.path))
    roots = (dataset.path, dataset.path / "derivatives" / "fmriprep")
    assert portable(selection, roots) == example_runs_of(example_dataset, example_selection, "01")
    loops = [w for w in selection.warnings if "loop" in w]
    assert len(loops) == 2
    assert any(str(raw_link) in w for w in loops) and any(str(derivative_link) in w for w in loops)
    assert all(w.count(".") == 1 and w.endswith(".") for w in loops)  # one sentence each


def test_a_copy_of_a_subject_folder_is_left_out_and_named(fresh_dataset, make_settings, example_dataset,
                                                          example_selection):
    import shutil

    dataset = fresh_dataset(subjects=("01",))
    copies = [dataset.path / "sub-01 copy", dataset.path / "derivatives" / "fmriprep" / "sub-01-old"]
    shutil.copytree(dataset.path / "sub-01", copies[0])
    shutil.copytree(dataset.path / "derivatives" / "fmriprep" / "sub-01", copies[1])
    selection = discover.select_runs(make_settings(dataset.path))
    roots = (dataset.path, dataset.path / "derivatives" / "fmriprep")
    assert portable(selection, roots) == example_runs_of(example_dataset, example_selection, "01")
    named = [w for w in selection.warnings if "is no subject folder" in w]
    assert len(named) == 2 and all(any(str(c) in w for w in named) for c in copies)


def test_a_loop_in_an_unselected_subject_is_not_reported(fresh_dataset, make_settings, tmp_path):
    dataset = fresh_dataset(subjects=("01", "03"))
    (dataset.path / "sub-03" / "ses-1" / "func" / "loop").symlink_to("..")
    plain = discover.select_runs(make_settings(dataset.path, participant_label=("01",)))
    saved = discover.select_runs(
        make_settings(dataset.path, participant_label=("01",), bids_database_dir=tmp_path / "db")
    )
    assert plain == saved
    assert not any("loop" in w for w in plain.warnings)
    everyone = discover.select_runs(make_settings(dataset.path))
    assert any("sub-03" in w and "loop" in w for w in everyone.warnings)


def test_a_derivatives_folder_without_description_is_named(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("01",))
    fmriprep = dataset.path / "derivatives" / "fmriprep"
    (fmriprep / "dataset_description.json").unlink()
    # was a warning, then the raw series modelled: its preprocessed BOLD is not left for the raw
    with pytest.raises(NoDataError, match=f"{fmriprep} holds preprocessed BOLD but no dataset_description.json"):
        discover.select_runs(make_settings(dataset.path))
    for path in fmriprep.rglob("*desc-preproc_bold*"):
        path.unlink()
    freesurfer = dataset.path / "derivatives" / "freesurfer"  # fMRIPrep 20's layout: said for nothing
    (freesurfer / "sub-01" / "surf").mkdir(parents=True)
    selection = discover.select_runs(make_settings(dataset.path))
    assert all(run.preprocessed is False for run in selection.runs)
    skipped = [w for w in selection.warnings if str(fmriprep) in w]
    assert len(skipped) == 1
    assert "dataset_description.json" in skipped[0]
    assert not [w for w in selection.warnings if str(freesurfer) in w]
    assert any("raw" in w.lower() for w in selection.warnings)


def test_skipped_derivatives(tmp_path):
    bids = tmp_path / "bids"
    fmriprep = _derivative(bids / "derivatives" / "fmriprep")
    (bids / "derivatives" / "freesurfer").mkdir()
    (bids / "derivatives" / ".cache").mkdir()
    (bids / "derivatives" / "notes.txt").write_text("")
    out, work = bids / "derivatives" / "out", bids / "derivatives" / "work"
    out.mkdir()
    work.mkdir()
    assert discover.skipped_derivatives(bids, out, work) == (bids / "derivatives" / "freesurfer",)
    assert discover.skipped_derivatives(bids, tmp_path / "elsewhere") == (
        bids / "derivatives" / "freesurfer", out, work,
    )
    assert discover.find_derivatives(bids, out) == (fmriprep,)
    _derivative(bids / "derivatives" / "x").parent.joinpath("dataset_description.json").write_text("{}")
    assert discover.skipped_derivatives(bids, out, work) == ()  # derivatives/ is itself a dataset
    assert discover.skipped_derivatives(tmp_path / "none", out) == ()


# ---------------------------------------------------------------- sidecars: TR, StartTime, inheritance


def first_preproc_sidecar(dataset):
    return sorted((dataset.path / "derivatives").rglob(f"*space-{DEFAULT_SPACE}_desc-preproc_bold.json"))[0]


def set_json_value(path, key, literal):
    """Set ``key`` to a JSON literal as written (``NaN``, ``true``), keeping the other keys."""
    data = json.loads(path.read_text())
    data.pop(key, None)
    body = json.dumps(data)[1:-1]
    path.write_text("{" + (body + ", " if body else "") + f'"{key}": {literal}' + "}")


@pytest.mark.parametrize("literal, said", [
    *((literal, "finite number") for literal in ("true", "false", "NaN", "Infinity", "-Infinity", '"abc"', "[2.0]",
                                                 '{"s": 2}')),
    # milliseconds (the BIDS validator's bound, 100 s) blamed the events file with nilearn's
    # 'array must not contain infs or NaNs'; 1e-300 gave 'Number of samples, -9223...'
    ("2000", "milliseconds"), ("1e-300", "too short"),
    ("0.0011", "too short"),  # hung in the design's convolution
    ('"2_0"', "finite number"), ('" 2"', "finite number"),  # Python's float reads them (20, 2)
])
def test_a_repetition_time_that_no_bold_series_has_is_refused(literal, said, fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    sidecar = first_preproc_sidecar(dataset)
    set_json_value(sidecar, "RepetitionTime", literal)
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(dataset.path))
    message = str(error.value)
    assert error.value.exit_code == EX_NO_INPUT
    assert "RepetitionTime" in message and sidecar.name in message and said in message
    assert "\n" not in message


def test_an_inherited_boolean_repetition_time_names_the_top_level_sidecar(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    for sidecar in (dataset.path / "derivatives").rglob("*_desc-preproc_bold.json"):
        edit_json(sidecar, lambda d: d.pop("RepetitionTime"))
    set_json_value(dataset.path / "task-checkerboard_bold.json", "RepetitionTime", "true")
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(dataset.path))
    assert "task-checkerboard_bold.json" in str(error.value)


@pytest.mark.parametrize("literal", ["true", "NaN", "Infinity", '"x"', "-0.5", "99"])
def test_a_bad_start_time_is_refused(literal, fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    sidecar = first_preproc_sidecar(dataset)
    set_json_value(sidecar, "StartTime", literal)
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(dataset.path))
    assert "StartTime" in str(error.value) and sidecar.name in str(error.value)


def test_a_start_time_is_read(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    set_json_value(first_preproc_sidecar(dataset), "StartTime", "0.5")
    assert [run.start_time for run in discover.select_runs(make_settings(dataset.path)).runs] == [0.5]


def test_slice_timing_corrected_without_a_start_time_is_said_once(fresh_dataset, make_settings):
    """fMRIPrep before 20.1 corrected slice timing to the middle of the TR and wrote no StartTime:
    the volumes were timed at 0 without a word (nilearn's first_level_from_bids warns)."""
    dataset = fresh_dataset(subjects=("01",))
    for sidecar in (dataset.path / "derivatives").rglob("*_desc-preproc_bold.json"):
        edit_json(sidecar, lambda d: (d.pop("StartTime", None), d.update(SliceTimingCorrected=True)))
    selection = discover.select_runs(make_settings(dataset.path))
    assert {run.start_time for run in selection.runs} == {0.0}
    said = [w for w in selection.warnings if "SliceTimingCorrected but give no StartTime" in w]
    assert len(said) == 1 and "_desc-preproc_bold.json" in said[0]


def test_a_sidecar_that_is_not_json_is_named(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    sidecar = first_preproc_sidecar(dataset)
    sidecar.write_text('{"RepetitionTime": 2.0,')
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(dataset.path))
    assert sidecar.name in str(error.value)


def test_a_more_specific_sidecar_overrides_an_inherited_one(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("01",))
    for sidecar in (dataset.path / "derivatives").rglob("*_desc-preproc_bold.json"):
        edit_json(sidecar, lambda d: d.pop("RepetitionTime"))
    (dataset.path / "task-checkerboard_run-2_bold.json").write_text(json.dumps({"RepetitionTime": 2.5}))
    selection = discover.select_runs(make_settings(dataset.path))
    base = raw_tr(dataset.path)
    assert [run.tr for run in selection.runs] == [2.5 if dict(r.entities)["run"] == "02" else base for r in selection.runs]
    metadata = discover.sidecar_metadata(selection.runs[1].raw_bold, dataset.path)
    assert metadata["RepetitionTime"] == (2.5, dataset.path / "task-checkerboard_run-2_bold.json")
    assert metadata["TaskName"][1] == dataset.path / "task-checkerboard_bold.json"


def test_events_inherited_from_the_top_level(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    (events,) = (dataset.path / "sub-03").rglob("*_events.tsv")
    top = dataset.path / "task-checkerboard_events.tsv"
    shutil.move(events, top)
    (selection_run,) = discover.select_runs(make_settings(dataset.path)).runs
    assert selection_run.events == top
    # an events query that matches no file of the run is said, not replaced by the inherited events
    with pytest.raises(NoDataError, match="query of 'events' .* matches no events file of sub-03_"):
        discover.select_runs(make_settings(dataset.path, bids_filters={"events": {"desc": "new"}}))
    # two equally specific candidates at the nearest level: an error naming both
    shutil.copy(top, dataset.path / "sub-03_events.tsv")
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(dataset.path))
    assert "task-checkerboard_events.tsv" in str(error.value) and "sub-03_events.tsv" in str(error.value)


# ---------------------------------------------------------------- indexing only the selection; the saved index


def add_fake_subjects(root, count):
    """``count`` more subjects, raw and fMRIPrep-like, as empty files (indexing reads no content)."""
    fmriprep = root / "derivatives" / "fmriprep"
    for i in range(count):
        sub = f"sub-9{i:03d}"
        for folder, names in (
            (root / sub / "func", ["task-checkerboard_run-01_bold.nii.gz", "task-checkerboard_run-01_events.tsv"]),
            (root / sub / "anat", ["T1w.nii.gz"]),
            (fmriprep / sub / "func", [
                f"task-checkerboard_run-01_space-{DEFAULT_SPACE}_desc-preproc_bold.nii.gz",
                f"task-checkerboard_run-01_space-{DEFAULT_SPACE}_desc-brain_mask.nii.gz",
                "task-checkerboard_run-01_desc-confounds_timeseries.tsv",
            ]),
            (fmriprep / sub / "figures", ["desc-summary_T1w.html"]),
        ):
            folder.mkdir(parents=True)
            for name in names:
                (folder / f"{sub}_{name}").write_bytes(b"")
        (fmriprep / f"{sub}.html").write_text("")


def indexed_files(layout):
    return sorted(layout.get(return_type="filename", scope="all"))


@pytest.mark.parametrize("database", [False, True])
def test_one_participant_indexes_only_its_own_files(database, fresh_dataset, make_settings, tmp_path):
    small, large = fresh_dataset(subjects=("01",)), fresh_dataset(subjects=("01",))
    add_fake_subjects(small.path, 5)
    add_fake_subjects(large.path, 50)
    selections, counts = [], []
    for dataset in (small, large):
        derivatives = (dataset.path / "derivatives" / "fmriprep",)
        files = indexed_files(discover.load_layout(dataset.path, derivatives, participant_label=("01",)))
        assert files and not any("sub-9" in f for f in files)
        counts.append(len(files))
        settings = make_settings(
            dataset.path, participant_label=("01",),
            bids_database_dir=dataset.path.parent / "db" if database else None,
        )
        selections.append(portable(discover.select_runs(settings), (dataset.path, *derivatives)))
    assert counts[0] == counts[1]
    assert selections[0] == selections[1]


def test_runs_are_the_same_with_a_participant_label_or_a_saved_index(example_dataset, example_selection, make_settings, tmp_path):
    database = tmp_path / "db"
    for label in ("01", "03"):
        expected = tuple(run for run in example_selection.runs if run.subject == label)
        for db in (None, database, database):  # afresh, saving, reusing
            settings = make_settings(example_dataset.path, participant_label=(label,), bids_database_dir=db)
            assert discover.select_runs(settings).runs == expected
    assert discover.select_runs(make_settings(example_dataset.path, bids_database_dir=database)) == example_selection


def test_the_saved_index_is_reused(fresh_dataset, make_settings, tmp_path, monkeypatch, caplog):
    dataset = fresh_dataset(subjects=("01", "03"))
    database = tmp_path / "db"
    with caplog.at_level(logging.INFO, logger="bids_fixedfx"):
        first = discover.select_runs(make_settings(dataset.path, participant_label=("01",), bids_database_dir=database))
    said = [r.getMessage() for r in caplog.records if "index" in r.getMessage()]
    # the job that saved it said so, not also that it reused it
    assert len(said) == 1 and said[0].startswith(f"Indexed {dataset.path} and saved the index in {database}"), said
    saved = [p for p in database.iterdir() if p.is_dir()]
    assert len(saved) == 1 and (saved[0] / "layout_index.sqlite").is_file()
    assert not [p for p in database.iterdir() if p.name.endswith(".tmp")]

    def no_indexing(*args, **kwargs):
        raise AssertionError("the saved index was not reused")

    monkeypatch.setattr(discover.index, "_index", no_indexing)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bids_fixedfx"):
        again = discover.select_runs(make_settings(dataset.path, participant_label=("01",), bids_database_dir=database))
    assert [r.getMessage() for r in caplog.records if "index" in r.getMessage()] == [
        f"Reused the index saved in {saved[0]}"]
    other = discover.select_runs(make_settings(dataset.path, participant_label=("03",), bids_database_dir=database))
    assert again == first
    assert other.subjects == ("03",)
    monkeypatch.undo()
    assert other == discover.select_runs(make_settings(dataset.path, participant_label=("03",)))


def test_an_out_of_date_saved_index_is_not_used(fresh_dataset, make_settings, tmp_path):
    dataset = fresh_dataset(subjects=("01", "03"))
    database = tmp_path / "db"
    discover.select_runs(make_settings(dataset.path, participant_label=("01",), bids_database_dir=database))
    victim = raw_bolds(dataset.path, "01")[1]
    (victim.parent / f"{stem(victim)}_events.tsv").unlink()
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(dataset.path, participant_label=("01",), bids_database_dir=database))
    assert stem(victim) in str(error.value) and "events" in str(error.value)
    # another subject's folders did not change: the saved index still serves it
    assert discover.select_runs(
        make_settings(dataset.path, participant_label=("03",), bids_database_dir=database)
    ).subjects == ("03",)
    # a new subject changes the dataset's root: a new index is saved beside the old one
    shutil.copytree(dataset.path / "sub-03", dataset.path / "sub-04", ignore=lambda d, n: [x for x in n if "sub-03" in x])
    discover.select_runs(make_settings(dataset.path, participant_label=("03",), bids_database_dir=database))
    assert len([p for p in database.iterdir() if p.is_dir()]) == 2


@pytest.mark.parametrize("manifest", ["garbage" * 10, "[]", '{"directories": 3}'])
def test_a_damaged_saved_index_is_said_and_not_used(fresh_dataset, make_settings, tmp_path, capsys, manifest):
    """A saved index with a damaged manifest was passed over without a word (or, a JSON list,
    stopped the job with a Python error), and every job indexed afresh."""
    from bids_fixedfx.cli import _setup_logging

    dataset = fresh_dataset(subjects=("01",))
    database = tmp_path / "db"
    settings = make_settings(dataset.path, bids_database_dir=database)
    first = discover.select_runs(settings)
    (saved,) = [p for p in database.iterdir() if p.is_dir()]
    (saved / discover.index._MANIFEST).write_text(manifest)
    _setup_logging(0)
    capsys.readouterr()
    assert discover.select_runs(settings) == first
    said = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert len(said) == 1 and f"The index saved in {saved} is damaged" in said[0] and "delete that folder" in said[0]


@pytest.mark.parametrize("table", ["tags", "entities", "files"])
def test_a_saved_index_without_a_table_is_said_and_not_used(fresh_dataset, make_settings, tmp_path, capsys, table):
    """'DROP TABLE tags' in the saved index: the first query failed, exit 1 with SQLAlchemy's error."""
    import sqlite3
    from contextlib import closing

    from bids_fixedfx.cli import _setup_logging

    dataset = fresh_dataset(subjects=("01",))
    database = tmp_path / "db"
    settings = make_settings(dataset.path, bids_database_dir=database)
    first = discover.select_runs(settings)
    (saved,) = [p for p in database.iterdir() if p.is_dir()]
    sqlite = sorted(saved.rglob("*.sqlite"))[0]
    with closing(sqlite3.connect(sqlite)) as connection:
        connection.execute(f"DROP TABLE {table}")
        connection.commit()
    _setup_logging(0)
    capsys.readouterr()
    assert discover.select_runs(settings) == first
    said = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert len(said) == 1 and f"The index saved in {saved} is damaged ({sqlite.name} has no table {table}" in said[0]


@pytest.mark.parametrize("climbing", [False, True])
def test_a_saved_index_naming_files_outside_the_dataset_is_not_used(fresh_dataset, make_settings, tmp_path, capsys,
                                                                     climbing):
    """A saved index edited to name a file outside BIDS_DIR as a run's BOLD (anyone who can
    write the shared database folder) had the job read that file as the run's; so for a path
    that begins in BIDS_DIR and climbs out of it (``..``)."""
    import sqlite3

    from bids_fixedfx.cli import _setup_logging

    dataset = fresh_dataset(subjects=("01",))
    database = tmp_path / "db"
    settings = make_settings(dataset.path, bids_database_dir=database)
    first = discover.select_runs(settings)
    bold = str(first.runs[0].bold)
    shutil.copy(bold, tmp_path / "elsewhere_bold.nii.gz")
    elsewhere = Path(os.path.relpath(tmp_path / "elsewhere_bold.nii.gz", dataset.path))
    elsewhere = dataset.path / elsewhere if climbing else tmp_path / "elsewhere_bold.nii.gz"
    edited = 0
    for index in database.rglob("*.sqlite"):
        with sqlite3.connect(index) as connection:
            edited += connection.execute("UPDATE files SET path=? WHERE path=?", (str(elsewhere), bold)).rowcount
            connection.execute("UPDATE tags SET file_path=? WHERE file_path=?", (str(elsewhere), bold))
    assert edited == 1
    _setup_logging(0)
    capsys.readouterr()
    assert discover.select_runs(settings) == first
    said = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert len(said) == 1 and f"lists {elsewhere}, which is not in the datasets it indexes" in said[0]


def test_while_another_job_saves_the_index_the_selection_is_indexed(fresh_dataset, make_settings, tmp_path, monkeypatch):
    dataset = fresh_dataset(subjects=("01", "03"))
    database = tmp_path / "db"
    monkeypatch.setattr(discover.index, "_try_lock", lambda handle: False)
    selection = discover.select_runs(make_settings(dataset.path, participant_label=("03",), bids_database_dir=database))
    assert selection == discover.select_runs(make_settings(dataset.path, participant_label=("03",)))
    assert not [p for p in database.iterdir() if p.is_dir()]


def test_a_database_dir_that_cannot_be_written_falls_back(fresh_dataset, make_settings, tmp_path):
    dataset = fresh_dataset(subjects=("03",))
    blocker = tmp_path / "file"
    blocker.write_text("")
    selection = discover.select_runs(make_settings(dataset.path, bids_database_dir=blocker / "db"))
    assert selection == discover.select_runs(make_settings(dataset.path))


def test_a_saved_index_is_made_as_the_umask_says_and_another_user_s_is_passed_over(
        fresh_dataset, make_settings, tmp_path, monkeypatch, caplog):
    """A saved index was made 0700 (mkdtemp's), and a job of another user of the lab's shared
    folder failed on it (exit 1, Permission denied) instead of indexing afresh."""
    import os
    from pathlib import Path

    dataset = fresh_dataset(subjects=("03",))
    database = tmp_path / "db"
    before = os.umask(0o002)
    try:
        selection = discover.select_runs(make_settings(dataset.path, bids_database_dir=database))
    finally:
        os.umask(before)
    (saved,) = [p for p in database.iterdir() if p.is_dir()]
    assert saved.stat().st_mode & 0o777 == 0o775
    is_file = Path.is_file

    def unreadable(path):
        if path.parent == saved:
            raise PermissionError(13, "Permission denied", str(path))
        return is_file(path)

    monkeypatch.setattr(Path, "is_file", unreadable)
    with caplog.at_level("WARNING", logger="bids_fixedfx"):
        assert discover.select_runs(make_settings(dataset.path, bids_database_dir=database)) == selection
    assert f"The index saved in {saved} cannot be read (Permission denied), so the dataset was indexed afresh" \
        in caplog.text


def test_concurrent_jobs_share_one_saved_index(fresh_dataset, tmp_path):
    dataset = fresh_dataset(subjects=("01", "03"))
    database = tmp_path / "db"
    script = (
        "import sys; from pathlib import Path; from bids_fixedfx import discover; "
        "from bids_fixedfx.settings import Settings; "
        "s = Settings(bids_dir=Path(sys.argv[1]), output_dir=Path(sys.argv[2]), analysis_level='participant', "
        "participant_label=(sys.argv[3],), bids_database_dir=Path(sys.argv[4])); "
        "print('|'.join(r.name for r in discover.select_runs(s).runs))"
    )
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(dataset.path), str(tmp_path / "out"), label, str(database)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for label in ("01", "03", "01", "03")
    ]
    results = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0, 0], [err for _, err in results]
    names = [out.strip() for out, _ in results]
    assert names[0] == names[2] and names[1] == names[3] and names[0] != names[1]
    assert len([p for p in database.iterdir() if p.is_dir()]) == 1
    assert not [p for p in database.iterdir() if p.name.endswith(".tmp")]


def test_validation_of_one_participant_checks_only_its_files(fresh_dataset):
    dataset = fresh_dataset(subjects=("01", "03"))
    intruder = dataset.path / "sub-03" / "ses-1" / "func" / "sub-03_notes.txt"
    intruder.write_text("not a BIDS file\n")
    discover.validate_input_dir(dataset.path, participant_label=("01",))  # sub-03 not validated
    with pytest.raises(InvalidBIDSError) as error:
        discover.validate_input_dir(dataset.path, participant_label=("03",))
    assert intruder.name in str(error.value) and str(dataset.path) in str(error.value)
    with pytest.raises(InvalidBIDSError):
        discover.validate_input_dir(dataset.path)


def test_a_participant_job_validates_its_subject_only(fresh_dataset, tmp_path):
    """One job of an array validates its subject's files, not every subject's (a thousand
    subjects took the validator 16 s in each job); another subject's bad file is its own
    job's error."""
    dataset = fresh_dataset(subjects=("01", "03"))
    (dataset.path / "sub-03" / "ses-1" / "func" / "sub-03_notes.txt").write_text("not a BIDS file\n")
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--participant-label", "01", "--boilerplate-only"]) == 0
    assert main([str(dataset.path), str(out), "participant", "--participant-label", "03",
                 "--boilerplate-only"]) == EX_INVALID_BIDS


def test_a_top_level_sidecar_of_other_subjects_task_passes_a_subject_s_validation(fresh_dataset, tmp_path):
    """A task that only other subjects did has its top-level sidecar, whose data files the
    validator is not shown: not an error of this subject's job (it is of the whole dataset's)."""
    dataset = fresh_dataset(subjects=("01", "03"))
    (dataset.path / "task-rest_bold.json").write_text('{"TaskName": "rest", "RepetitionTime": 2}')
    discover.validate_input_dir(dataset.path, participant_label=("01",))
    with pytest.raises(InvalidBIDSError, match="SIDECAR_WITHOUT_DATAFILE at /task-rest_bold.json"):
        discover.validate_input_dir(dataset.path)


def test_a_participants_table_without_participant_id_is_shown_to_the_validator_as_it_is(fresh_dataset):
    dataset = fresh_dataset(subjects=("01", "03"))
    (dataset.path / "participants.tsv").write_text("subject\tage\nsub-01\t30\nsub-03\t31\n")
    validation = discover.Validation(dataset.path, ("01",))
    links = Path(validation._scratch.name) / "dataset"
    assert (links / "participants.tsv").resolve() == (dataset.path / "participants.tsv").resolve()
    with pytest.raises(InvalidBIDSError, match="participants.tsv"):
        validation.verdict()


def test_files_found_once_per_kind_are_those_a_query_per_run_finds(fresh_dataset):
    """``RunFiles``: one query per kind, then each run's files picked by its entities, gives
    what pybids gives for a query of the run's entities with the absent ones absent (run
    numbers compared as numbers); a run's echo number finds an echo- file written with or
    without padding; an echo's run takes the events of its echo or of none, not another's."""
    from bids import BIDSLayout
    from bids.layout import Query

    from bids_fixedfx.discover.query import NIFTI, RunFiles, _run_entities
    from bids_fixedfx.naming import RUN_ENTITIES

    dataset = fresh_dataset()
    fmriprep = dataset.path / "derivatives" / "fmriprep"
    masks = sorted(fmriprep.rglob("*desc-brain_mask.nii.gz"))
    for mask in masks[:2]:  # decoys: another acquisition, an echo
        shutil.copy(mask, mask.with_name(mask.name.replace("_task-", "_acq-other_task-")))
        shutil.copy(mask, mask.with_name(mask.name.replace("_space-", "_echo-2_space-")))
    unpadded = masks[0].with_name(masks[0].name.replace("_run-01_", "_run-1_"))  # the same run, as pybids has it
    shutil.copy(masks[0], unpadded)
    events = sorted(dataset.path.rglob("sub-*_events.tsv"))
    shutil.copy(events[0], events[0].with_name(events[0].name.replace("_events", "_echo-1_events")))
    layout = BIDSLayout(dataset.path, derivatives=[fmriprep], validate=False)
    runs = layout.get(scope="derivatives", suffix="bold", desc="preproc", extension=NIFTI, return_type="object")
    subjects = sorted({str(r.get_entities()["subject"]) for r in runs})
    kinds = {
        "mask": ({"scope": "derivatives", "suffix": "mask", "desc": "brain", "extension": NIFTI}, ()),
        "events": ({"scope": "raw", "suffix": "events", "extension": ".tsv"}, ("echo",)),
        "raw": ({"scope": "raw", "suffix": "bold", "extension": NIFTI}, ()),
    }
    compared = 0
    for kind, (filters, shared) in kinds.items():
        found = RunFiles(layout, subjects, shared=shared, **filters)
        for run in runs:
            entities = _run_entities(run)
            given = dict(entities)
            query = {}
            for name, key in RUN_ENTITIES:
                if name in shared:  # these runs have no echo: files of any echo, or of none
                    continue
                if key in given:
                    query[name] = int(given[key]) if name in ("run", "echo") else given[key]
                elif name != "echo":
                    query[name] = Query.NONE
            expected = sorted(f.path for f in layout.get(return_type="object", **filters, **query))
            assert sorted(f.path for f in found.of(entities)) == expected, (kind, run.path)
            compared += bool(expected)
        if kind == "mask":  # the decoys were candidates, and no run took them
            candidates = [f.path for files in found.by_subject.values() for _, f in files]
            assert sum("acq-other" in p or "echo-2" in p for p in candidates) == 4
            first = next(r for r in runs if _run_entities(r)[:3] == _run_entities(
                layout.get_file(str(masks[0])))[:3] and "_run-01_" in r.path)
            assert str(unpadded) in [f.path for f in found.of(_run_entities(first))]
            echoed = [f.path for f in found.of(_run_entities(first) + (("echo", "02"),))]
            assert str(masks[0]).replace("_space-", "_echo-2_space-") in echoed
            assert all("_echo-2_" in path for path in echoed)  # echo-02 is echo-2; echo-less files are not
        if kind == "events":
            run = next(r for r in runs if _run_entities(r)[:3] == _run_entities(layout.get_file(str(events[0])))[:3]
                       and "_run-01_" in r.path)
            echo = [f.path for f in found.of(_run_entities(run) + (("echo", "01"),))]
            assert sorted(echo) == sorted([str(events[0]), str(events[0]).replace("_events", "_echo-1_events")])
            assert [f.path for f in found.of(_run_entities(run) + (("echo", "2"),))] == [str(events[0])]
    assert compared >= 2 * len(runs)  # masks and raw series (and events where the run has its own)


def test_files_where_bids_puts_no_data_are_not_runs(fresh_dataset, make_settings):
    """A subject moved aside (``excluded/sub-03/``, listed in ``.bidsignore``) and a copy below a
    datatype folder (``sub-02/ses-1/func/old/``) were read as runs: the moved subject was
    modelled with its old events, the copy made "several events files" of one run."""
    dataset = fresh_dataset()
    root = dataset.path
    func = root / "sub-02" / "ses-1" / "func"
    old = func / "old"
    old.mkdir()
    for events in func.glob("*_events.tsv"):
        shutil.copy(events, old / events.name)
    preprocessed = root / "derivatives" / "fmriprep" / "sub-02" / "ses-1" / "func"
    shutil.copytree(preprocessed, preprocessed / "old")
    (root / "excluded").mkdir()
    shutil.move(root / "sub-03", root / "excluded" / "sub-03")
    shutil.move(root / "derivatives" / "fmriprep" / "sub-03", root / "derivatives" / "fmriprep" / "excluded_sub-03")
    (root / ".bidsignore").write_text("excluded/\n")
    selection = discover.select_runs(make_settings(root))
    assert {run.subject for run in selection.runs} == {"01", "02"}
    assert all("/old/" not in str(path) for run in selection.runs for path in (run.bold, run.events, run.mask))
    assert not selection.warnings


@pytest.mark.parametrize("database", [False, True])
def test_files_the_raw_bidsignore_names_are_not_read(fresh_dataset, make_settings, tmp_path, database):
    """The raw dataset's ``.bidsignore`` (``.gitignore`` syntax, as the BIDS validator reads it):
    an old events file beside the current one made "several events files" of its run, and a
    subject declared outside BIDS was modelled."""
    dataset = fresh_dataset()
    root = dataset.path
    events = sorted((root / "sub-01").rglob("*_events.tsv"))
    for path in events:
        shutil.copy(path, path.with_name(path.name.replace("_events", "_desc-old_events")))
    settings = make_settings(root, bids_database_dir=tmp_path / "db" if database else None)
    with pytest.raises(NoDataError, match="several events files"):
        discover.select_runs(settings)
    # fMRIPrep's own .bidsignore lists the confounds (``*_timeseries.tsv``): a derivatives
    # dataset's is not read, and a pattern of the raw one does not reach into the derivatives
    (root / ".bidsignore").write_text("# moved aside\n\n*_desc-old_events.tsv\n/sub-03/\n!sub-03/anat\n"
                                      "*_timeseries.tsv\n")
    selection = discover.select_runs(settings)
    assert {run.subject for run in selection.runs} == {"01", "02"}
    assert [run.events for run in selection.runs if run.subject == "01"] == events
    assert all(run.confounds is not None for run in selection.runs)
    assert any("sub-03 is named in" in w and ".bidsignore" in w for w in selection.warnings)
    with pytest.raises(NoDataError, match=r"sub-03 is named in .*\.bidsignore"):  # asked for by name
        discover.select_runs(dataclasses.replace(settings, participant_label=("03",)))


def test_an_events_file_the_raw_bidsignore_names_is_neither_read_nor_said_missing(fresh_dataset, make_settings):
    """A run's own events file that .bidsignore names was read as if inherited (the folders are
    listed for inherited files, outside the index); with its BOLD ignored too, the run was said
    to have no events.tsv, though the file is there."""
    dataset = fresh_dataset(subjects=("01",))
    root = dataset.path
    events = sorted((root / "sub-01").rglob("*_events.tsv"))
    hidden = events[-1].relative_to(root).as_posix()
    settings = make_settings(root)
    for rule in (f"/{hidden}", "*" + events[-1].name.split("_", 1)[1]):
        (root / ".bidsignore").write_text(rule + "\n")
        with pytest.raises(NoDataError, match=f"has no events.tsv in {re.escape(str(root))}: its {re.escape(hidden)} "
                                              f"is ignored by the rule {re.escape(repr(rule))} of "
                                              f"{re.escape(str(root / '.bidsignore'))}; remove the rule"):
            discover.select_runs(settings)
    # a dataset-level events file that .bidsignore names is not inherited either
    shutil.copy(events[-1], root / f"task-{dataset.tasks[0]}_events.tsv")
    (root / ".bidsignore").write_text(f"/{hidden}\n/task-{dataset.tasks[0]}_events.tsv\n")
    with pytest.raises(NoDataError, match="is ignored by the rule"):
        discover.select_runs(settings)
    (root / ".bidsignore").write_text(f"/{hidden}\n")  # the inherited one is the run's then
    selection = discover.select_runs(settings)
    assert [run.events for run in selection.runs][-1] == root / f"task-{dataset.tasks[0]}_events.tsv"


def test_a_bidsignore_that_is_no_regular_file_or_is_huge_is_read_within_bounds(tmp_path):
    """A .bidsignore linked to /dev/zero was read whole: memory grew without end."""
    from bids_fixedfx.discover.bidsignore import MAX_LINES, bidsignore_rules

    (tmp_path / ".bidsignore").symlink_to("/dev/zero")
    assert bidsignore_rules(tmp_path) == []
    (tmp_path / ".bidsignore").unlink()
    (tmp_path / ".bidsignore").write_text("old/\n" + "x" * (50 * 2**20) + "\nnew/\n")  # 50 MB on one line
    assert [rule.pattern for rule in bidsignore_rules(tmp_path)] == ["old/"]
    (tmp_path / ".bidsignore").write_text("".join(f"d{i}/\n" for i in range(2 * MAX_LINES)))
    assert len(bidsignore_rules(tmp_path)) == MAX_LINES


def test_bidsignore_rules_read_gitignore_syntax(tmp_path):
    from bids_fixedfx.discover.bidsignore import bidsignore_rules

    (tmp_path / ".bidsignore").write_text(
        "extra_data/\n*_physio.tsv.gz\n/sub-*/anat/*.json\n**/**/beh/\nsub-0[12]_x.txt\n[z-a]\n#c\n!keep.txt\n"
        "  \nold/**\n" + "*a" * 400 + "b\n" + "**/" * 300 + "q\n")
    rules = bidsignore_rules(tmp_path)

    def ignored(path):
        return any(rule.search(path) for rule in rules)

    assert ignored("/extra_data") and ignored("/extra_data/a.txt") and ignored("/sub-01/extra_data")
    assert ignored("/sub-01/func/sub-01_task-a_physio.tsv.gz") and not ignored("/sub-01/func/sub-01_physio.tsv")
    assert ignored("/sub-01/anat/sub-01_T1w.json") and not ignored("/sub-01/ses-1/anat/sub-01_T1w.json")
    assert ignored("/sub-01/ses-1/beh") and ignored("/sub-01/beh") and ignored("/beh")
    assert ignored("/sub-01_x.txt") and not ignored("/sub-03_x.txt")
    assert not ignored("/z") and not ignored("/keep.txt") and not ignored("/c")
    assert ignored("/old/sub-01") and not ignored("/old")
    assert not ignored("/" + "a" * 250) and ignored("/" + "a" * 5 + "/q")  # hostile patterns: at once
    assert bidsignore_rules(tmp_path / "none") == []


def test_a_subject_only_the_derivatives_hold_is_left_out_and_named(fresh_dataset, make_settings):
    dataset = fresh_dataset()
    shutil.rmtree(dataset.path / "sub-03")
    selection = discover.select_runs(make_settings(dataset.path))
    assert {run.subject for run in selection.runs} == {"01", "02"}
    assert any("sub-03 has preprocessed data in the derivatives but no folder in" in w for w in selection.warnings)
    with pytest.raises(NoDataError, match="sub-03"):  # asked for by name: an error, as before
        discover.select_runs(make_settings(dataset.path, participant_label=("03",)))


def test_run_labels_padded_apart_in_the_derivatives_are_one_run(fresh_dataset, make_settings):
    """``run-01`` in the raw data, ``run-1`` in the derivatives: paired (as before), and no more
    warned as raw runs "not modelled"."""
    dataset = fresh_dataset(subjects=("01",))
    for path in (dataset.path / "derivatives" / "fmriprep").rglob("*run-0*"):
        path.rename(path.with_name(path.name.replace("run-0", "run-")))
    selection = discover.select_runs(make_settings(dataset.path))
    assert len(selection.runs) == len(raw_bolds(dataset.path, "01"))
    assert not [w for w in selection.warnings if "no preprocessed one" in w]


@pytest.mark.parametrize("label", ["\uff102", "0\u00b2", "0\u0662"])  # fullwidth 0, superscript 2, Arabic-Indic 2
def test_a_run_label_of_other_than_ascii_letters_and_digits_is_refused(fresh_dataset, tmp_path, capsys, label):
    """pybids reads ``run-\uff102`` as run 2: it took run-02's events and named its maps with the
    fullwidth digit (exit 0)."""
    from tools import fails

    dataset = fresh_dataset(subjects=("01",))
    renamed = []
    for path in sorted((dataset.path / "derivatives" / "fmriprep").rglob("*run-02*")):
        renamed.append(path.rename(path.with_name(path.name.replace("run-02", f"run-{label}"))))
    said = fails(capsys, [dataset.path, tmp_path / "out", "participant", "--skip-bids-validation", "--no-reports"],
                 EX_NO_INPUT, f"run label {label!r}", "not ASCII letters and digits")
    assert any(str(path) in said for path in renamed)


def test_a_run_whose_confounds_file_alone_is_missing_is_refused(fresh_dataset, tmp_path, capsys):
    """A partial copy of the derivatives: that run was fitted without motion regressors (exit 0,
    one warning) and folded into its subject's maps."""
    from tools import fails

    dataset = fresh_dataset(subjects=("01",))
    confounds = sorted((dataset.path / "derivatives").rglob("*_desc-confounds_timeseries.tsv"))
    confounds[-1].unlink()
    name = confounds[-1].name.split("_desc-")[0]
    fails(capsys, [dataset.path, tmp_path / "out", "participant", "--skip-bids-validation", "--no-reports"],
          EX_NO_INPUT, name, "--confounds none")
    assert main([str(dataset.path), str(tmp_path / "none"), "participant", "--skip-bids-validation",
                 "--no-reports", "--confounds", "none"]) == 0


def test_a_confounds_wildcard_that_some_runs_lack_is_a_note(fresh_dataset, tmp_path, capsys):
    """fMRIPrep writes motion_outlier* columns only for runs with outliers: spike regression over
    every run stopped the job (64) at the first run without outliers."""
    import pandas as pd
    from tools import fails

    dataset = fresh_dataset(subjects=("01",))
    confounds = sorted((dataset.path / "derivatives").rglob("*_desc-confounds_timeseries.tsv"))
    table = pd.read_csv(confounds[0], sep="\t")
    table["motion_outlier00"] = 0.0
    table.loc[5, "motion_outlier00"] = 1.0
    table.to_csv(confounds[0], sep="\t", index=False)
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--confounds", "trans_*", "rot_*", "motion_outlier*"]) == 0
    assert capsys.readouterr().err.count("--confounds motion_outlier* matches no column of") == len(confounds) - 1
    first = confounds[0].name.split("_desc-")[0]
    assert "motion_outlier00" in (next(out.rglob(f"{first}_design.tsv")).read_text().splitlines()[0])
    fails(capsys, [dataset.path, tmp_path / "typo", "participant", "--skip-bids-validation", "--no-reports",
                   "--confounds", "trans_*", "motion_outlire*"], EX_USAGE, "motion_outlire*", "any run")


def test_several_files_of_one_name_are_named_by_their_folders():
    """Two events files of one name in two folders: the message named one file twice and
    suggested the filter {"events": {}}, which chooses nothing."""
    from bids_fixedfx.discover.query import _one

    files = ["/ds/sub-01/func/sub-01_task-x_events.tsv", "/ds/copy/sub-01/func/sub-01_task-x_events.tsv"]
    with pytest.raises(NoDataError) as error:
        _one(files, "events", "sub-01_task-x", kind="events")
    message = str(error.value)
    assert all(f in message for f in files) and "keep one of them" in message and '{"events": {}}' not in message


def test_a_dataset_description_that_is_a_device_is_named_so(tmp_path):
    """A dataset_description.json linked to /dev/urandom was said to be missing."""
    from bids_fixedfx.discover.derivatives import check_bids_dir

    (tmp_path / "dataset_description.json").symlink_to("/dev/urandom")
    with pytest.raises(NoDataError, match="dataset_description.json is not a regular file"):
        check_bids_dir(tmp_path)
    (tmp_path / "dataset_description.json").unlink()
    with pytest.raises(NoDataError, match="is not a BIDS dataset: it has no dataset_description.json"):
        check_bids_dir(tmp_path)


def test_a_validator_that_stops_without_a_report_is_said_plainly():
    """deno's crash ended with a stack frame in colour codes, and that line was the message."""
    from bids_fixedfx.discover.validate import _first_reason

    crash = ("error: Uncaught (in promise) PermissionDenied: Permission denied (os error 13)\n"
             "    at async \x1b[0m\x1b[1m_readFileTree\x1b[0m (file:///x.js:1:2)\n")
    assert _first_reason(crash, 1) == "error: Uncaught (in promise) PermissionDenied: Permission denied (os error 13)"
    assert _first_reason("", 70) == "exit code 70"


def test_the_filter_suggested_for_a_cifti_series_beside_a_gifti_pair_is_its_density():
    """It suggested {"bold": {"hemi": "L"}}, which the app overrides (a GIFTI series is its pair)."""
    from bids_fixedfx.discover.query import filter_hint

    names = ["sub-01_task-x_run-1_hemi-L_space-fsLR_den-32k_bold.func.gii",
             "sub-01_task-x_run-1_space-fsLR_den-91k_bold.dtseries.nii"]
    assert filter_hint("bold", names) == '{"bold": {"den": "32k"}}'


def test_the_filter_suggested_for_files_of_two_cohorts_is_a_cohort():
    """pybids indexes no cohort-: two masks apart by their cohort alone were said to be kept one of."""
    from bids_fixedfx.discover.query import filter_hint

    names = [f"sub-01_task-x_space-MNIPediatricAsym_cohort-{c}_desc-brain_mask.nii.gz" for c in ("1", "2")]
    assert filter_hint("mask", names) == '{"mask": {"cohort": "1"}}'
