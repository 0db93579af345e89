"""Discovery (pybids): runs, their files, TR, spaces, filters and the BIDS checks."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import pytest

from bids_fixedfx import discover
from bids_fixedfx.errors import EX_INVALID_BIDS, EX_NO_INPUT, EX_USAGE, InvalidBIDSError, NoDataError, UsageError
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
    assert "--task rest" in str(error.value)
    assert example_dataset.tasks[0] in str(error.value)


def test_bids_filters(example_dataset, make_settings):
    settings = make_settings(example_dataset.path, participant_label=("01",), bids_filters={"bold": {"run": 1}})
    selection = discover.select_runs(settings)
    expected = [p for p in raw_bolds(example_dataset.path, "01") if "_run-01_" in p.name]
    assert len(expected) > 0
    assert [run.name for run in selection.runs] == [stem(p) for p in expected]


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
    assert stem(victim) in str(error.value)
    assert "events" in str(error.value)


def test_missing_tr_is_no_data(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("03",))
    edit_json(dataset.path / "task-checkerboard_bold.json", lambda d: d.pop("RepetitionTime"))
    for sidecar in (dataset.path / "derivatives").rglob("*_desc-preproc_bold.json"):
        edit_json(sidecar, lambda d: d.pop("RepetitionTime"))
    with pytest.raises(NoDataError) as error:
        discover.select_runs(make_settings(dataset.path))
    assert error.value.exit_code == EX_NO_INPUT
    assert "RepetitionTime" in str(error.value)
    assert stem(raw_bolds(dataset.path)[0]) in str(error.value)


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


def test_without_derivatives_the_raw_bold_is_used_with_a_warning(fresh_dataset, make_settings):
    dataset = fresh_dataset(subjects=("01",), derivatives=False)
    assert not (dataset.path / "derivatives").exists()
    selection = discover.select_runs(make_settings(dataset.path))
    raws = raw_bolds(dataset.path)
    assert [run.bold for run in selection.runs] == raws
    assert all(run.preprocessed is False and run.mask is None for run in selection.runs)
    assert all(run.tr == raw_tr(dataset.path) for run in selection.runs)
    assert [run.events for run in selection.runs] == [p.parent / f"{stem(p)}_events.tsv" for p in raws]
    assert any("raw" in w.lower() for w in selection.warnings)


# ---------------------------------------------------------------- derivatives and BIDS checks


def _derivative(path):
    path.mkdir(parents=True)
    (path / "dataset_description.json").write_text(
        json.dumps({"Name": path.name, "BIDSVersion": "1.9.0", "DatasetType": "derivative"})
    )
    return path


def test_find_derivatives_excludes_the_output_dir(tmp_path):
    bids = tmp_path / "bids"
    fmriprep = _derivative(bids / "derivatives" / "fmriprep")
    ours = _derivative(bids / "derivatives" / "bids-fixedfx")
    (bids / "derivatives" / "not-a-dataset").mkdir()
    assert discover.find_derivatives(bids, tmp_path / "elsewhere") == (ours, fmriprep)
    assert discover.find_derivatives(bids, ours) == (fmriprep,)
    # also when OUTPUT_DIR is given by another spelling of the same folder
    assert discover.find_derivatives(bids, bids / "derivatives" / ".." / "derivatives" / "bids-fixedfx") == (fmriprep,)


def test_find_derivatives_without_a_derivatives_folder(tmp_path):
    assert discover.find_derivatives(tmp_path, tmp_path / "out") == ()


def test_find_derivatives_of_the_example(example_dataset, tmp_path):
    assert discover.find_derivatives(example_dataset.path, tmp_path) == (
        example_dataset.path / "derivatives" / "fmriprep",
    )


def test_a_derivatives_path_without_description_is_refused(example_dataset, tmp_path):
    with pytest.raises(NoDataError) as error:
        discover.load_layout(example_dataset.path, (tmp_path,))
    assert "--derivatives" in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_check_bids_dir(example_dataset, tmp_path):
    discover.check_bids_dir(example_dataset.path)  # no error
    (tmp_path / "sub-01").mkdir()
    with pytest.raises(NoDataError) as error:
        discover.check_bids_dir(tmp_path)
    assert str(tmp_path) in str(error.value)
    assert "dataset_description.json" in str(error.value)
    missing = tmp_path / "no-such-dir"
    with pytest.raises(UsageError) as error:
        discover.check_bids_dir(missing)
    assert str(missing) in str(error.value)


def test_the_validator_is_installed():
    # the test extra installs bids-validator-deno; without it the validation tests mean nothing
    assert discover.validator_command() is not None


def test_validate_input_dir_passes_on_the_example(example_dataset):
    discover.validate_input_dir(example_dataset.path)


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
