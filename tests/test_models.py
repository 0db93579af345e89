"""BIDS Stats Models through the app (-m): the default model written and read back, group
designs from participants.tsv, F contrasts, and clear errors; every map equals nilearn's."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_fixedfx.cli import main
from bids_fixedfx.example_data import make_example_dataset
from tools import fails

pytestmark = pytest.mark.slow  # runs of the app; pytest -m 'not slow' leaves them out

SPACE = "MNI152NLin2009cAsym"
MODELS = Path(__file__).parent / "data" / "models"
QUICK = ["--skip-bids-validation", "--no-reports"]


def same_files(one, other, pattern):
    """Byte-identical files; sidecars identical but for the command line they record."""
    names = sorted(p.relative_to(one) for p in one.rglob(pattern))
    assert names and names == sorted(p.relative_to(other) for p in other.rglob(pattern))

    def content(path):
        if path.suffix != ".json":
            return path.read_bytes()
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if k != "CommandLine"}

    return all(content(one / n) == content(other / n) for n in names)


@pytest.mark.slow
def test_the_default_model_is_written_and_gives_identical_maps(example_dataset, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main([str(example_dataset.path), str(first), "participant", *QUICK]) == 0
    model = first / "models" / "model-default_smdl.json"
    document = json.loads(model.read_text())
    assert document["BIDSModelVersion"] == "1.0.0"
    assert [n["Level"] for n in document["Nodes"]] == ["Run", "Subject", "Dataset"]
    assert main([str(example_dataset.path), str(second), "participant", *QUICK, "-m", str(model)]) == 0
    assert same_files(first, second, "*.nii.gz")
    assert same_files(first, second, "*_statmap.json")
    assert same_files(first, second, "*_design.*")
    sidecar = json.loads(next(first.glob("sub-01/func/*_contrast-audio_stat-z_statmap.json")).read_text())
    assert (sidecar["Node"], sidecar["Level"], sidecar["ModelFile"]) == (
        "subject", "Subject", "bids::models/model-default_smdl.json")
    assert main([str(example_dataset.path), str(first), "group", "--no-reports"]) == 0
    assert main([str(example_dataset.path), str(second), "group", "--no-reports", "-m", str(model)]) == 0
    assert same_files(first / "group", second / "group", "*")


@pytest.mark.parametrize("modulated", [False, True])
def test_the_default_model_of_a_run_without_a_condition_gives_identical_maps(fresh_dataset, tmp_path, modulated):
    """A run without one of the conditions (or a task without another task's): -m of the
    default model stopped (64) at its Rename (or Product) of that condition's level."""

    dataset = fresh_dataset(subjects=("01",))
    events = sorted((dataset.path / "sub-01").rglob("*_events.tsv"))
    for index, path in enumerate(events):
        table = pd.read_csv(path, sep="\t")
        if index == 1:
            table = table[table["trial_type"] != "visual"]
        if modulated:
            table["modulation"] = np.linspace(0.5, 2.0, len(table)) + index
        table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    first, second = tmp_path / "first", tmp_path / "second"
    assert main([str(dataset.path), str(first), "participant", *QUICK]) == 0
    model = first / "models" / "model-default_smdl.json"
    assert ('"Product"' in model.read_text()) == modulated
    assert main([str(dataset.path), str(second), "participant", *QUICK, "-m", str(model)]) == 0
    assert same_files(first, second, "*.nii.gz")


def test_the_default_model_of_raw_runs_without_confounds_gives_identical_maps(fresh_dataset, tmp_path):
    """Raw data (no confounds file) are fitted without confounds, but the model's X named the six
    motion parameters: -m of it stopped (64), 'trans_x is not a variable'."""
    dataset = fresh_dataset(subjects=("01",), derivatives=False)
    first, second = tmp_path / "first", tmp_path / "second"
    assert main([str(dataset.path), str(first), "participant", *QUICK]) == 0
    model = first / "models" / "model-default_smdl.json"
    assert "trans_x" not in model.read_text()
    assert main([str(dataset.path), str(second), "participant", *QUICK, "-m", str(model)]) == 0
    assert same_files(first, second, "*.nii.gz")


def test_a_group_model_whose_run_node_did_not_make_the_subject_maps_is_refused(fresh_dataset, tmp_path, capsys):
    """group -m of a model with another HRF in its run node was accepted (exit 0), its copy cited
    by group maps whose inputs the default model made; the same nodes under another Name pass."""
    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK]) == 0
    document = json.loads((out / "models" / "model-default_smdl.json").read_text())
    renamed = tmp_path / "model-renamed_smdl.json"
    reordered = [{**node, "GroupBy": node["GroupBy"][::-1]} for node in document["Nodes"]]  # the same grouping
    renamed.write_text(json.dumps({**document, "Name": "renamed", "Nodes": reordered}))
    assert main([str(dataset.path), str(out), "group", "--no-reports", "-m", str(renamed)]) == 0
    document["Nodes"][0]["Model"]["HRF"]["Model"] = "spm"
    other = tmp_path / "model-other_smdl.json"
    other.write_text(json.dumps({**document, "Name": "other"}))
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports", "-m", str(other)]) == 64
    error = " ".join(capsys.readouterr().err.split())
    assert "were made by models/model-default_smdl.json, whose run, session or subject nodes are not those of the " \
           "model 'other'" in error
    assert not (out / "models" / "model-other_smdl.json").exists()
    # a model of the same Name as the copy the subject maps cite, edited since: it was told to take another
    # Name, which only led to the error above
    document["Name"] = "renamed"
    renamed.write_text(json.dumps(document))
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports", "-m", str(renamed)]) == 64
    error = " ".join(capsys.readouterr().err.split())
    assert "holds another model named 'renamed'" in error and "run the participant level with this model first" in error


def test_subject_maps_of_two_versions_of_a_model_file_are_not_tested_together(fresh_dataset, tmp_path, capsys):
    """sub-02 rerun with the model file edited (a Scale added, the same Name): no warning, and the group
    level tested it with sub-01, made by the earlier version (no sidecar key records transformations)."""
    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK]) == 0
    sidecar = next(out.rglob("sub-01_task-*_stat-effect_statmap.json"))
    assert "ModelNodesDigest" not in json.loads(sidecar.read_text())  # the options' model: its options say it
    document = {**json.loads((out / "models" / "model-default_smdl.json").read_text()), "Name": "probe"}
    first = tmp_path / "model-probe_smdl.json"
    first.write_text(json.dumps(document))
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", str(first)]) == 0
    digest = json.loads(sidecar.read_text())["ModelNodesDigest"]
    assert digest.startswith("sha256:")
    document["Nodes"][0]["Transformations"]["Instructions"].append({"Name": "Scale", "Input": ["audio"]})
    second = tmp_path / "edited" / "model-probe_smdl.json"
    second.parent.mkdir()
    second.write_text(json.dumps(document))
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", str(second), "--participant-label", "02"]) == 0
    warned = " ".join(capsys.readouterr().err.split())
    assert "model-probe_smdl.json described other options (sub-01 was made with them)" in warned
    assert json.loads(next(out.rglob("sub-02_task-*_stat-effect_statmap.json")).read_text())["ModelNodesDigest"] \
        not in (digest, None)
    assert main([str(dataset.path), str(out), "group", "--no-reports", "-m", str(second)]) == 64
    assert "the run, session or subject nodes of the model file" in capsys.readouterr().err
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", str(second), "--participant-label", "01"]) == 0
    assert main([str(dataset.path), str(out), "group", "--no-reports", "-m", str(second)]) == 0


def test_group_maps_cite_the_default_model_only_when_it_made_their_subject_maps(fresh_dataset, tmp_path):
    """Subjects rerun with a model file of other contrasts, then the group level without -m: its maps
    cited models/model-default_smdl.json, which names none of their contrasts."""
    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK]) == 0
    assert main([str(dataset.path), str(out), "group", "--no-reports"]) == 0
    cited = json.loads(next((out / "group").glob("*_contrast-audio_stat-t_statmap.json")).read_text())
    assert cited["ModelFile"] == "bids::models/model-default_smdl.json" and cited["Level"] == "Dataset"
    model = _model(tmp_path, [{**RUN, "Contrasts": [{"Name": "loud", "ConditionList": ["audio"], "Weights": [2],
                                                     "Test": "t"}], "DummyContrasts": None}], name="loud")
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", str(model)]) == 0
    assert main([str(dataset.path), str(out), "group", "--no-reports"]) == 0
    sidecar = json.loads(next((out / "group").glob("*_contrast-loud_stat-t_statmap.json")).read_text())
    assert "ModelFile" not in sidecar and "Node" not in sidecar


def test_a_group_model_that_replaces_a_copy_with_other_dataset_nodes_says_so(fresh_dataset, tmp_path, capsys):
    """Two models of one Name and other dataset nodes: the second replaced models/model-<Name>,
    which the first's group maps cite, without a word."""
    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK]) == 0
    document = json.loads((out / "models" / "model-default_smdl.json").read_text())
    assert main([str(dataset.path), str(out), "group", "--no-reports", "-m",
                 str(out / "models" / "model-default_smdl.json")]) == 0
    node = next(n for n in document["Nodes"] if n["Level"] == "Dataset")
    node["Name"] = "another"
    document["Edges"] = [{**e, "Destination": "another"} if e["Destination"] == "dataset" else e
                         for e in document.get("Edges", [])]
    model = tmp_path / "model-default_smdl.json"
    model.write_text(json.dumps(document))
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert (f"{out / 'models' / 'model-default_smdl.json'} is replaced by this model, which has no node dataset: "
            "that node's group maps stay and cite it still") in said


def test_jobs_per_subject_write_one_default_model_that_remakes_every_subjects_maps(fresh_dataset, tmp_path, capsys):
    """One job per subject, the same options, one subject without visual events: each job wrote
    the default model of its own conditions, so the file named no visual after the last job,
    warned falsely of other options, and -m of it made sub-01 no visual maps (SPEC §5)."""
    dataset = fresh_dataset(subjects=("01", "02"))
    for events in dataset.path.glob("sub-02/**/*_events.tsv"):
        table = pd.read_csv(events, sep="\t")
        table[table["trial_type"] != "visual"].to_csv(events, sep="\t", index=False)
    out = tmp_path / "out"
    for subject in ("01", "02"):
        assert main([str(dataset.path), str(out), "participant", *QUICK, "--participant-label", subject]) == 0
    assert "described other options" not in capsys.readouterr().err
    model = out / "models" / "model-default_smdl.json"
    assert json.loads(model.read_text())["Nodes"][0]["Model"]["HRF"]["Variables"] == ["audio", "visual"]
    for subject in ("01", "02"):
        again = tmp_path / f"again-{subject}"
        assert main([str(dataset.path), str(again), "participant", *QUICK, "--participant-label", subject,
                     "-m", str(model)]) == 0
        assert same_files(out / f"sub-{subject}", again / f"sub-{subject}", "*_statmap.*")
    assert not list((tmp_path / "again-02").rglob("*contrast-visual*"))
    # sub-01's events corrected (visual renamed seen), sub-01 rerun: visual, which no events file
    # has any more, left the model (-m of it was refused as a misspelling)
    for events in dataset.path.glob("sub-01/**/*_events.tsv"):
        events.write_text(events.read_text().replace("\tvisual", "\tseen"))
    assert main([str(dataset.path), str(out), "participant", *QUICK, "--participant-label", "01"]) == 0
    assert json.loads(model.read_text())["Nodes"][0]["Model"]["HRF"]["Variables"] == ["audio", "seen"]
    # sub-02 with contrasts of its own, then sub-01 with the default ones: the model no longer makes
    # sub-02's maps, which is said (a subject of fewer contrasts was taken for one lacking conditions)
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "participant", *QUICK, "--participant-label", "02",
                 "--contrast", "sound=audio"]) == 0
    assert main([str(dataset.path), str(out), "participant", *QUICK, "--participant-label", "01"]) == 0
    assert "described other contrasts (sub-02 was made with them)" in " ".join(capsys.readouterr().err.split())


def test_a_job_that_adds_its_conditions_to_the_default_model_reads_no_other_maps(fresh_dataset, tmp_path,
                                                                                monkeypatch):
    """The first job of a subject with a condition the others lack read the effect sidecars of every
    subject in OUTPUT_DIR (1.2 s at 1,000 subjects) to warn of none: each is remade by the new model."""
    from bids_fixedfx import workflow

    dataset = fresh_dataset(subjects=("01", "02"))
    for events in dataset.path.glob("sub-01/**/*_events.tsv"):
        table = pd.read_csv(events, sep="\t")
        table[table["trial_type"] != "visual"].to_csv(events, sep="\t", index=False)
    read = []
    monkeypatch.setattr(workflow, "_made_otherwise", lambda *args, **kwargs: read.append(args) or None)
    out = tmp_path / "out"
    for subject in ("01", "02"):
        assert main([str(dataset.path), str(out), "participant", *QUICK, "--participant-label", subject]) == 0
    assert json.loads((out / "models" / "model-default_smdl.json").read_text())["Nodes"][0]["Model"]["HRF"][
        "Variables"] == ["audio", "visual"]
    assert read == []
    assert main([str(dataset.path), str(out), "participant", *QUICK, "--participant-label", "02",
                 "--smoothing-fwhm", "3"]) == 0
    assert read  # other options: the others' maps are looked at


def test_levels_of_other_events_files_are_found_with_dots_in_their_values(tmp_path):
    """A trial type 2.5 is the level trial_type.2.5: it was sought as the value 5 of a column
    trial_type.2, so -m of a model naming it was refused for a subject without it."""
    from bids_fixedfx.plan.runs import levels_in_other_events

    func = tmp_path / "sub-02" / "func"
    func.mkdir(parents=True)
    (func / "sub-02_task-x_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\t2.5\n4\t1\tgo.left\n")
    own = tmp_path / "sub-01" / "func" / "sub-01_task-x_events.tsv"
    own.parent.mkdir(parents=True)
    own.write_text("onset\tduration\ttrial_type\n0\t1\tstop\n")
    wanted = {"trial_type.2.5", "trial_type.go.left", "trial_type.stop", "trial_type.7"}
    assert levels_in_other_events(wanted, tmp_path, [own]) == {"trial_type.2.5", "trial_type.go.left"}
    assert levels_in_other_events(wanted, tmp_path) == wanted - {"trial_type.7"}


def test_other_events_files_are_sought_where_bids_puts_them_and_once_a_job(tmp_path, monkeypatch):
    """Per-subject jobs of a 1,000-subject dataset each globbed sub-*/**/*_events.tsv (every folder
    of every subject: anat, dwi, fmap...) twice, the second time under the lock of models/."""
    from bids_fixedfx.plan import runs

    for folder in ("sub-01/ses-1/func", "sub-02/func", "sub-02/anat", "sub-03/ses-2"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "task-x_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\ttop\n")
    (tmp_path / "sub-01/ses-1/func/sub-01_ses-1_task-x_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\ta\n")
    (tmp_path / "sub-02/func/sub-02_task-x_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\tb\n")
    (tmp_path / "sub-03/ses-2/sub-03_ses-2_task-x_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\tc\n")
    listed, scandir = [], os.scandir
    monkeypatch.setattr(runs.os, "scandir", lambda folder: (listed.append(Path(folder).name), scandir(folder))[1])
    known = {}
    levels = {"trial_type.top", "trial_type.a", "trial_type.b", "trial_type.c", "trial_type.none"}
    assert runs.levels_in_other_events(levels, tmp_path, known=known) == levels - {"trial_type.none"}
    assert "anat" not in listed and listed.count("func") == 2
    assert known == {level: level != "trial_type.none" for level in levels}
    listed.clear()
    assert runs.levels_in_other_events(levels, tmp_path, known=known) == levels - {"trial_type.none"}
    assert listed == []  # the job's second call reads nothing


def test_the_models_folder_is_locked_while_a_job_writes_its_copy(tmp_path):
    """Jobs of one subject each started together read the default model before either wrote its
    own: the last one's conditions alone were kept."""
    import fcntl
    import os

    from bids_fixedfx import outputs

    def try_lock():
        handle = os.open(tmp_path / "models", os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(handle)

    with outputs.folder_lock(tmp_path / "models"):
        with pytest.raises(BlockingIOError):
            try_lock()
    try_lock()


def test_a_misspelt_level_in_a_model_is_refused(fresh_dataset, tmp_path, capsys):
    """Levels a run lacks are left out of its design; a level no selected run has at all
    (trial_type.vsual) is a misspelling, refused as pybids refuses it (it was left out of every
    design, and the other maps fitted without it)."""
    dataset = fresh_dataset(subjects=("01",))
    first = tmp_path / "first"
    assert main([str(dataset.path), str(first), "participant", *QUICK]) == 0
    document = json.loads((first / "models" / "model-default_smdl.json").read_text())
    rename = document["Nodes"][0]["Transformations"]["Instructions"][1]
    rename["Input"] = [name.replace("visual", "vsual") for name in rename["Input"]]
    model = tmp_path / "typo_smdl.json"
    model.write_text(json.dumps(document))
    capsys.readouterr()
    assert main([str(dataset.path), str(tmp_path / "second"), "participant", *QUICK, "-m", str(model)]) == 64
    error = capsys.readouterr().err
    assert "names 'trial_type.vsual', which no event of the selected runs has" in error
    assert "(their trial types: audio, visual)" in error
    assert "typo_smdl.json" in error and not (tmp_path / "second").exists()

@pytest.mark.parametrize("emptied", ["rows", "trial_types"])
def test_the_default_model_of_a_run_without_events_gives_identical_maps(fresh_dataset, tmp_path, capsys, emptied):
    """A run whose events file has a header only, or trial types all n/a: -m of the default model
    stopped with "list index out of range" (exit 1; the Factor of no level), then on the Rename of
    a level the run lacks (64); without -m the run is left out with a warning."""
    dataset = fresh_dataset(subjects=("01",))
    events = sorted((dataset.path / "sub-01").rglob("*_events.tsv"))[-1]
    table = pd.read_csv(events, sep="\t")
    if emptied == "rows":
        table = table.iloc[:0]
    else:
        table["trial_type"] = np.nan
    table.to_csv(events, sep="\t", index=False, na_rep="n/a")
    first, second = tmp_path / "first", tmp_path / "second"
    assert main([str(dataset.path), str(first), "participant", *QUICK]) == 0
    assert main([str(dataset.path), str(second), "participant", *QUICK, "-m",
                 str(first / "models" / "model-default_smdl.json")]) == 0
    said = capsys.readouterr().err
    assert said.count(f"{events.name.removesuffix('_events.tsv')} has no contrast to compute and was left out") == 2
    names = sorted(p.relative_to(first) for p in first.rglob("*_statmap.nii.gz"))
    assert names and names == sorted(p.relative_to(second) for p in second.rglob("*_statmap.nii.gz"))
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)


def test_conditions_of_another_task_in_a_model_are_said_once_per_task(tmp_path, capsys):
    """The default model of two tasks given back with -m: each run warned of the other task's
    conditions and contrasts, a line (or four, condensed) for every run of each."""
    common = {"n_subjects": 2, "n_sessions": 1, "n_runs": 1, "shape": (12, 12, 12), "n_volumes": 40}
    dataset = make_example_dataset(tmp_path / "bids", **common)
    other = make_example_dataset(tmp_path / "motor", task="motor", conditions=("left", "right"), **common)
    for path in other.path.rglob("*task-motor*"):
        (dataset.path / path.relative_to(other.path)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dataset.path / path.relative_to(other.path))
    first = tmp_path / "first"
    assert main([str(dataset.path), str(first), "participant", *QUICK]) == 0
    capsys.readouterr()
    second = tmp_path / "second"
    assert main([str(dataset.path), str(second), "participant", *QUICK, "-m",
                 str(first / "models" / "model-default_smdl.json")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert not [line for line in said if "_run-" in line or "sub-0" in line], said
    assert len(said) == 6 and all(line.split("WARNING: ")[1].startswith("task-") for line in said)  # 2 + 2 x 2
    assert [line for line in said if "task-motor: no event has 'audio', 'visual' in any of its 2 runs" in line]
    assert [line for line in said if "task-motor, each of its 2 runs: Node 'run': contrast 'audio' left out" in line]
    names = sorted(p.relative_to(first) for p in first.rglob("*_statmap.nii.gz"))
    assert names and all((first / n).read_bytes() == (second / n).read_bytes() for n in names)


def test_a_misspelt_level_in_a_contrast_is_refused(fresh_dataset, tmp_path, capsys):
    """A ConditionList's 'audio.typo' read as a level of X's audio passed the model's check, then no
    design had it: the contrast was left out of every run with a warning, exit 0. A category of X
    named alone makes its levels, which a contrast (and Model.HRF) may name."""
    dataset = fresh_dataset(subjects=("01",))
    first = tmp_path / "first"
    assert main([str(dataset.path), str(first), "participant", *QUICK]) == 0
    document = json.loads((first / "models" / "model-default_smdl.json").read_text())
    run = document["Nodes"][0]
    run["Contrasts"] = [{"Name": "typo", "ConditionList": ["audio.typo"], "Weights": [1], "Test": "t"}]
    model = tmp_path / "typo_smdl.json"
    model.write_text(json.dumps(document))
    capsys.readouterr()
    assert main([str(dataset.path), str(tmp_path / "second"), "participant", *QUICK, "-m", str(model)]) == 64
    error = capsys.readouterr().err
    assert "contrast 'typo' names 'audio.typo', which no design of the selected runs has and no events file" in error
    assert "typo_smdl.json" in error and not (tmp_path / "second").exists()
    del run["Transformations"]
    run["Model"]["X"] = ["trial_type", "trans_x", 1]
    run["Model"]["HRF"]["Variables"] = ["trial_type.audio", "trial_type.visual"]
    run["Contrasts"] = [{"Name": "level", "ConditionList": ["trial_type.audio"], "Weights": [1], "Test": "t"}]
    model.write_text(json.dumps(document))
    assert main([str(dataset.path), str(tmp_path / "third"), "participant", *QUICK, "-m", str(model)]) == 0
    assert "not in Model.X" not in capsys.readouterr().err
    assert list((tmp_path / "third").rglob("*_contrast-level_stat-z_statmap.nii.gz"))
    run["Contrasts"][0]["ConditionList"] = ["trial_type.audoi"]
    model.write_text(json.dumps(document))
    assert main([str(dataset.path), str(tmp_path / "fourth"), "participant", *QUICK, "-m", str(model)]) == 64
    assert "names 'trial_type.audoi', which no design of the selected runs has" in capsys.readouterr().err


def test_no_default_model_is_written_for_events_without_a_trial_type(fresh_dataset, tmp_path, capsys):
    """Events without trial_type are nilearn's one condition 'dummy': the model written named
    trial_type, and -m of it stopped (64)."""

    dataset = fresh_dataset(subjects=("01",))
    for path in sorted((dataset.path / "sub-01").rglob("*_events.tsv")):
        pd.read_csv(path, sep="\t")[["onset", "duration"]].to_csv(path, sep="\t", index=False)
    output = tmp_path / "out"
    assert main([str(dataset.path), str(output), "participant", *QUICK]) == 0
    assert sorted(output.rglob("*contrast-dummy_stat-z_statmap.nii.gz")) and not (output / "models").exists()
    assert "events without a trial_type column are one condition to nilearn" in capsys.readouterr().err
    # an earlier job's model left in OUTPUT_DIR (other subjects' sidecars cite it) is said not to be this job's
    (output / "models").mkdir()
    (output / "models" / "model-default_smdl.json").write_text("{}")
    assert main([str(dataset.path), str(output), "participant", *QUICK]) == 0
    assert "model-default_smdl.json, which an earlier job wrote, does not describe this job's maps" in \
        capsys.readouterr().err


def test_no_default_model_is_written_with_a_mask_file(fresh_dataset, tmp_path, capsys):
    """--mask FILE: the model written was the one without it, so -m of it fitted each run's
    brain mask and every map differed, while the sidecars cited that model."""
    dataset = fresh_dataset(subjects=("01",))
    mask = next((dataset.path / "derivatives").rglob("*space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"))
    small = nib.load(mask)
    data = np.asanyarray(small.dataobj).copy()
    data[: data.shape[0] // 2] = 0
    nib.save(nib.Nifti1Image(data, small.affine, small.header), tmp_path / "half_mask.nii.gz")
    output = tmp_path / "out"
    given = ["--mask", str(tmp_path / "half_mask.nii.gz")]
    assert main([str(dataset.path), str(output), "participant", *QUICK, *given]) == 0
    assert f"No model file is written: --mask {tmp_path / 'half_mask.nii.gz'} is no model-file option" in \
        capsys.readouterr().err
    sidecars = [json.loads(p.read_text()) for p in output.rglob("*_statmap.json")]
    assert sidecars and not (output / "models").exists() and not [s for s in sidecars if "ModelFile" in s]


@pytest.mark.parametrize("smoothing", ["6", "0"])
def test_the_default_model_of_a_given_smoothing_gives_identical_maps(fresh_dataset, tmp_path, capsys, smoothing):
    """--smoothing-fwhm 6: the written model did not say it, so -m of it smoothed by 5 mm."""
    dataset = fresh_dataset(subjects=("01",))
    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    assert main([str(dataset.path), str(first), "participant", *QUICK, "--smoothing-fwhm", smoothing]) == 0
    model = first / "models" / "model-default_smdl.json"
    run = json.loads(model.read_text())["Nodes"][0]
    assert run["Model"]["Software"]["nilearn"]["smoothing_fwhm"] == float(smoothing)
    assert main([str(dataset.path), str(second), "participant", *QUICK, "-m", str(model)]) == 0
    assert same_files(first, second, "*.nii.gz") and same_files(first, second, "*_statmap.json")
    # --smoothing-fwhm given beside the model comes first
    assert main([str(dataset.path), str(third), "participant", *QUICK, "-m", str(model), "--smoothing-fwhm", "5"]) == 0
    sidecar = json.loads(next(third.glob("sub-01/func/*_contrast-audio_stat-z_statmap.json")).read_text())
    assert sidecar["SmoothingFWHM"] == 5.0
    # not given: the model states none, and the default applies
    assert main([str(dataset.path), str(third), "participant", *QUICK]) == 0
    assert "smoothing_fwhm" not in json.loads((third / "models" / "model-default_smdl.json").read_text())[
        "Nodes"][0]["Model"]["Software"]["nilearn"]


def test_the_default_model_of_numbered_trial_types_gives_identical_maps(fresh_dataset, tmp_path):
    """Trial types "1" and "2" (common in real datasets): the written model's X held 1 (the
    intercept) for condition "1", so -m of it left that condition out and changed the other's maps."""
    dataset = fresh_dataset(subjects=("01",))
    for events in dataset.path.rglob("*_events.tsv"):
        table = pd.read_csv(events, sep="\t")
        table["trial_type"] = table["trial_type"].map({"audio": "1", "visual": "2"})
        table.to_csv(events, sep="\t", index=False)
    first, second = tmp_path / "first", tmp_path / "second"
    assert main([str(dataset.path), str(first), "participant", *QUICK]) == 0
    model = first / "models" / "model-default_smdl.json"
    run = json.loads(model.read_text())["Nodes"][0]
    assert run["Model"]["X"][:2] == ["1", "2"] and run["Model"]["X"][-1] == 1
    assert main([str(dataset.path), str(second), "participant", *QUICK, "-m", str(model)]) == 0
    assert sorted(p.name for p in second.rglob("*_contrast-1_stat-t_statmap.nii.gz"))
    assert same_files(first, second, "*.nii.gz") and same_files(first, second, "*_design.*")
    # a model that spells the intercept "1" (no variable of that name made) still reads it so
    run["Model"]["X"][-1] = "1"
    run["Model"]["X"][:2] = ["2"]
    run["DummyContrasts"]["Contrasts"] = ["2"]
    run["Transformations"]["Instructions"][1] = {"Name": "Rename", "Input": ["trial_type.2"], "Output": ["2"]}
    text = tmp_path / "model-text_smdl.json"
    text.write_text(json.dumps({"Name": "text", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
    assert main([str(dataset.path), str(tmp_path / "third"), "participant", *QUICK, "-m", str(text)]) == 0
    design = next((tmp_path / "third").rglob("*_run-01_design.tsv")).read_text().splitlines()[0].split("\t")
    assert design[0] == "2" and "1" not in design and design[-1] == "constant"


@pytest.fixture(scope="module")
def six_subjects(tmp_path_factory):
    root = tmp_path_factory.mktemp("six") / "bids"
    return make_example_dataset(root, n_subjects=6, n_sessions=1, n_runs=2, shape=(16, 18, 14), n_volumes=60)


@pytest.fixture(scope="module")
def two_sample(six_subjects, tmp_path_factory):
    out = tmp_path_factory.mktemp("twosample") / "out"
    model = MODELS / "model-twoSample_smdl.json"
    assert main([str(six_subjects.path), str(out), "participant", *QUICK, "-m", str(model)]) == 0
    assert main([str(six_subjects.path), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    return out


@pytest.mark.slow
def test_run_level_t_and_f_contrasts_equal_first_level_model(six_subjects, two_sample):
    from nilearn.glm.first_level import FirstLevelModel

    from bids_fixedfx import naming

    folder = two_sample / "sub-02" / "func"
    stem = "sub-02_task-checkerboard_run-01"
    design = pd.read_csv(folder / f"{stem}_design.tsv", sep="\t")
    # the design is nilearn's: spm HRF, cosine drift, the motion confounds, by nilearn's own function
    from nilearn.glm.first_level import make_first_level_design_matrix

    fmriprep = six_subjects.path / "derivatives" / "fmriprep" / "sub-02" / "func"
    events = pd.read_csv(six_subjects.path / "sub-02" / "func" / f"{stem}_events.tsv", sep="\t")
    confounds = pd.read_csv(fmriprep / f"{stem}_desc-confounds_timeseries.tsv", sep="\t")
    motion = confounds[["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]].bfill()
    tr = json.loads((six_subjects.path / "task-checkerboard_bold.json").read_text())["RepetitionTime"]
    expected = make_first_level_design_matrix(
        np.arange(len(design)) * tr, events, hrf_model="spm", drift_model="cosine", high_pass=0.01,
        add_regs=motion.to_numpy(), add_reg_names=list(motion.columns))
    expected = expected.rename(columns={"audio": "trial_type.audio", "visual": "trial_type.visual"})
    np.testing.assert_allclose(design[list(expected.columns)].to_numpy(), expected.to_numpy(), rtol=1e-8, atol=1e-10)
    model = FirstLevelModel(mask_img=str(fmriprep / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz"), smoothing_fwhm=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(str(fmriprep / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz"), design_matrices=[design])
    columns = list(design.columns)
    t_vector = np.zeros(len(columns))
    t_vector[columns.index("trial_type.audio")], t_vector[columns.index("trial_type.visual")] = 1, -1
    f_matrix = np.zeros((2, len(columns)))
    f_matrix[0, columns.index("trial_type.audio")] = f_matrix[1, columns.index("trial_type.visual")] = 1
    for label, weights, stats in (("audioGtVisual", t_vector, ("effect", "t", "z")), ("anyTask", f_matrix, ("F", "z"))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = model.compute_contrast(weights, stat_type="t" if label != "anyTask" else "F", output_type="all")
        for stat in stats:
            ours = nib.load(str(two_sample / naming.build(
                "run_statmap", subject="02", task="checkerboard", run="01", space=SPACE, contrast=label,
                stat=stat, extension=".nii.gz"))).get_fdata()
            expected_map = theirs["stat" if stat in ("t", "F") else {"effect": "effect_size", "z": "z_score"}[stat]]
            np.testing.assert_allclose(ours, expected_map.get_fdata(), rtol=1e-4,
                                       atol=1e-5 * np.abs(expected_map.get_fdata()).max(), err_msg=f"{label} {stat}")
    sidecar = json.loads(next(folder.glob(f"{stem}_*_contrast-anyTask_stat-F_statmap.json")).read_text())
    assert sidecar["Contrast"]["Test"] == "F" and len(sidecar["Contrast"]["Weights"]) == 2
    # both degrees of freedom of the F statistic are stated: its p map is F's survival function at them
    from scipy.stats import f as f_distribution

    assert sidecar["NumeratorDegreesOfFreedom"] == 2
    f_map, p_map = (nib.load(str(two_sample / naming.build(
        "run_statmap", subject="02", task="checkerboard", run="01", space=SPACE, contrast="anyTask", stat=stat,
        extension=".nii.gz"))).get_fdata() for stat in ("F", "p"))
    inside = f_map != 0
    np.testing.assert_allclose(p_map[inside], f_distribution.sf(
        f_map[inside], sidecar["NumeratorDegreesOfFreedom"], sidecar["DegreesOfFreedom"]), rtol=1e-4, atol=1e-7)
    # F contrasts are terminal: no subject or group map of them
    assert not list(two_sample.rglob("sub-02_task-checkerboard_space-*_contrast-anyTask_*"))


@pytest.mark.slow
def test_two_sample_design_with_a_covariate_equals_second_level_model(six_subjects, two_sample):
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.masking import intersect_masks

    participants = pd.read_csv(six_subjects.path / "participants.tsv", sep="\t")
    subjects = [p.removeprefix("sub-") for p in participants["participant_id"]]
    design = pd.DataFrame({
        "group.patient": (participants["group"] == "patient").astype(float).to_numpy(),
        "group.control": (participants["group"] == "control").astype(float).to_numpy(),
        "age": (participants["age"] - participants["age"].mean()).to_numpy(float),
    })
    folder = lambda s: two_sample / f"sub-{s}" / "func"  # noqa: E731
    effects = [str(next(folder(s).glob(f"sub-{s}_task-checkerboard_space-{SPACE}_contrast-audioGtVisual_stat-effect_"
                                         "statmap.nii.gz"))) for s in subjects]
    masks = [str(next(folder(s).glob("*_desc-fixedfx_mask.nii.gz"))) for s in subjects]
    mask = intersect_masks(masks, threshold=1, connected=False)
    model = SecondLevelModel(mask_img=mask).fit(effects, design_matrix=design)
    for label, weights in (("PatientsMinusControls", [1, -1, 0]), ("Age", [0, 0, 1]), ("Mean", [0.5, 0.5, 0])):
        theirs = model.compute_contrast(np.array(weights, float), output_type="all")
        for stat, name in (("effect", "effect_size"), ("t", "stat"), ("z", "z_score")):
            path = next((two_sample / "group").glob(
                f"*_contrast-audioGtVisual{label}_stat-{stat}_desc-patientsVsControls_statmap.nii.gz"))
            expected = theirs[name].get_fdata()
            np.testing.assert_allclose(nib.load(str(path)).get_fdata(), expected, rtol=1e-4,
                                       atol=1e-5 * np.abs(expected).max(), err_msg=f"{label} {stat}")
        sidecar = json.loads(str(path.with_name(path.name.replace(".nii.gz", ".json")).read_text()))
        assert sidecar["GroupModel"] == "general linear model" and sidecar["DegreesOfFreedom"] == 3
        assert sidecar["DesignMatrix"]["Columns"] == ["group.patient", "group.control", "age"]
        assert sidecar["Node"] == "patientsVsControls" and sidecar["Level"] == "Dataset"


@pytest.mark.slow
def _second_age(value, six_subjects, two_sample, tmp_path):
    """A copy of the six subjects' dataset whose sub-02 has this age, and of their subject maps."""
    dataset = tmp_path / "bids"
    shutil.copytree(six_subjects.path, dataset, ignore=shutil.ignore_patterns("derivatives"))
    table = pd.read_csv(dataset / "participants.tsv", sep="\t")
    table["age"] = table["age"].astype(object)
    table.loc[1, "age"] = value
    table.to_csv(dataset / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    return dataset, out, table


def test_a_group_design_reads_each_map_once_for_all_its_contrasts(six_subjects, two_sample, tmp_path, monkeypatch):
    """Each subject's effect map was read again for every contrast of the group design (three here):
    at 1,000 subjects and 8 contrasts, 20,000 reads of 2,000 maps."""
    from collections import Counter

    from bids_fixedfx import maps

    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    reads, read = Counter(), maps._masked_values
    monkeypatch.setattr(maps, "_masked_values", lambda img, *rest: (reads.update([str(img)]), read(img, *rest))[1])
    assert main([str(six_subjects.path), str(out), "group", "--no-reports", "-m",
                 str(MODELS / "model-twoSample_smdl.json")]) == 0
    effects = [name for name in reads if "_stat-effect_" in name]
    assert len(effects) >= 6 and {reads[name] for name in effects} == {1}
    assert len(list((out / "group").glob("*_stat-t_desc-patientsVsControls_statmap.nii.gz"))) >= 3


def test_subjects_with_a_missing_covariate_are_left_out_and_named(six_subjects, two_sample, tmp_path, capsys):
    dataset, out, table = _second_age("n/a", six_subjects, two_sample, tmp_path)
    assert main([str(dataset), str(out), "group", "--no-reports", "-m", str(MODELS / "model-twoSample_smdl.json")]) == 0
    err = capsys.readouterr().err
    assert "left out sub-02" in err
    sidecar = json.loads(next((out / "group").glob("*_contrast-audioGtVisualAge_stat-t_desc-patientsVsControls_"
                                                    "statmap.json")).read_text())
    assert sidecar["NumberOfSubjects"] == 5 and "02" not in sidecar["Subjects"]
    assert "bids:raw:participants.tsv" in sidecar["Sources"]  # the design's columns come from it
    # left out until no degree of freedom is left: the error says why (it named the columns and subjects only)
    table.loc[[2, 3], "age"] = "n/a"
    table.to_csv(dataset / "participants.tsv", sep="\t", index=False)
    assert main([str(dataset), str(out), "group", "--no-reports", "-m", str(MODELS / "model-twoSample_smdl.json")]) == 66
    assert "once sub-02, sub-03, sub-04 were left out for missing values in participants.tsv" in capsys.readouterr().err


@pytest.mark.slow
def test_a_numeric_covariate_with_a_word_for_a_missing_value_is_refused(six_subjects, two_sample, tmp_path, capsys):
    """age holding 'unknown' for n/a was modelled as one column per age, and the slope's contrast
    replaced by cell means (exit 0); --group-covariates age refused the same table."""
    dataset, out, _ = _second_age("unknown", six_subjects, two_sample, tmp_path)
    capsys.readouterr()
    model = MODELS / "model-twoSample_smdl.json"
    assert main([str(dataset), str(out), "group", "--no-reports", "-m", str(model)]) == 66
    error = " ".join(capsys.readouterr().err.split())
    assert "Model.X 'age' is a column of participants.tsv" in error and "'unknown', which is not a number" in error
    assert not (out / "group").exists()


def _model(tmp_path, nodes, name="bad"):
    path = tmp_path / f"model-{name}_smdl.json"
    path.write_text(json.dumps({"Name": name, "BIDSModelVersion": "1.0.0", "Nodes": nodes}))
    return path


RUN = {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"], "Model": {"Type": "glm", "X": ["audio", 1]},
       "DummyContrasts": {"Test": "t"}}


def test_a_run_model_of_f_tests_only_writes_its_run_maps(fresh_dataset, tmp_path, capsys):
    """Was refused: 'Node subject receives no t contrast', naming a node the file does not have."""
    dataset = fresh_dataset(subjects=("01",))
    f_only = {**RUN, "Model": {"Type": "glm", "X": ["audio", "visual", 1]}, "DummyContrasts": None,
              "Contrasts": [{"Name": "anyTask", "ConditionList": ["audio", "visual"], "Weights": [[1, 0], [0, 1]],
                             "Test": "F"}]}
    del f_only["DummyContrasts"]
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "-m",
                 str(_model(tmp_path, [f_only], "fOnly"))]) == 0
    assert "F tests only" in capsys.readouterr().err
    runs = sorted(out.rglob("sub-01_*_run-*_contrast-anyTask_stat-F_statmap.nii.gz"))
    assert len(runs) == len(list((dataset.path / "sub-01").rglob("sub-01_*_bold.nii.gz")))
    assert not list(out.rglob("sub-01_task-checkerboard_space-*_statmap*")) and not list(out.glob("*.html"))
    assert "F tests are not combined across runs" in (out / "logs" / "CITATION.md").read_text()
    with_t = {**f_only, "Contrasts": [*f_only["Contrasts"], {"Name": "av", "ConditionList": ["audio", "visual"],
                                                             "Weights": [1, -1], "Test": "t"}]}
    out = tmp_path / "with-t"
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", str(_model(tmp_path, [with_t], "withT"))]) == 0
    # said: the subject maps of av came without anyTask's, and no line said why
    assert "anyTask is an F test: its maps are the runs' (subject nodes combine t contrasts)." in capsys.readouterr().err
    methods = (out / "logs" / "CITATION.md").read_text()
    assert "`anyTask`: an F test of 2 rows, (`audio` 1) and (`visual` 1); `av`: `audio` 1, `visual` -1." in methods
    assert "for each F test the maps of the F, z and p statistics" in methods and "by fixed effects" in methods


def test_the_group_level_methods_text_keeps_the_runs_f_tests(fresh_dataset, tmp_path):
    """The group level wrote logs/CITATION.md anew from the subject maps, which no F test
    reaches: the model's F test, described by the participant level, vanished from it."""
    dataset = fresh_dataset(subjects=("01", "02"))
    with_t = {**RUN, "Model": {"Type": "glm", "X": ["audio", "visual", 1]},
              "Contrasts": [{"Name": "anyTask", "ConditionList": ["audio", "visual"], "Weights": [[1, 0], [0, 1]],
                             "Test": "F"},
                            {"Name": "av", "ConditionList": ["audio", "visual"], "Weights": [1, -1], "Test": "t"}]}
    del with_t["DummyContrasts"]
    model, out = _model(tmp_path, [with_t], "withT"), tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", str(model)]) == 0
    assert main([str(dataset.path), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    methods = (out / "logs" / "CITATION.md").read_text()
    assert "`anyTask`: an F test of 2 rows, (`audio` 1) and (`visual` 1)" in methods
    assert "`av`: `audio` 1, `visual` -1" in methods and "one-sample t-test" in methods
    assert "for each F test the maps of the F, z and p statistics" in methods


def test_maps_of_nodes_the_model_lacks_cite_no_node_of_it(fresh_dataset, tmp_path, capsys):
    """A model of a run node alone: its subject maps (fixed effects, the app's own) and its group
    maps (the one-sample test) cited nodes 'subject' and 'dataset' of a file that has neither, and
    the group level said nothing of the test it chose. They cite the model file, and Node null."""
    dataset = fresh_dataset(subjects=("01", "02"))
    model = _model(tmp_path, [{**RUN, "Model": {"Type": "glm", "X": ["audio", "visual", 1]}}], "runOnly")
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", str(model)]) == 0
    run = json.loads(next(out.rglob("sub-01_*_run-*_contrast-audio_stat-t_statmap.json")).read_text())
    assert (run["Node"], run["Level"], run["ModelFile"]) == ("run", "Run", "bids::models/model-runOnly_smdl.json")
    subject = json.loads(next(out.rglob("sub-01_task-checkerboard_space-*_contrast-audio_stat-t_statmap.json"))
                         .read_text())
    assert subject["FixedEffects"]["NumberOfRuns"] > 1  # Node null: no node of the model made them
    assert (subject["Node"], subject["Level"], subject["ModelFile"]) == (
        None, "Subject", "bids::models/model-runOnly_smdl.json")
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert f"{model} has no dataset node, so each contrast of the subject maps is tested by a one-sample t-test" in said
    group = json.loads(next((out / "group").glob("*_contrast-audio_stat-t_statmap.json")).read_text())
    assert group["GroupModel"] == "one-sample t-test"
    assert (group["Node"], group["Level"], group["ModelFile"]) == (None, "Dataset", "bids::models/model-runOnly_smdl.json")


def test_a_contrast_of_linearly_dependent_columns_is_not_computed(fresh_dataset, tmp_path, capsys):
    """``task = Or(audio, visual)`` beside audio and visual: nilearn fits the singular design through
    its pseudo-inverse, and the app wrote maps of ``task`` (not estimable) with exit 0. The
    estimable contrast (audio - visual) keeps nilearn's numbers: its effect equals nilearn's fit of
    the same column space without ``task``, its t that fit's times sqrt((n - k) / (n - k + 1)) (nilearn
    divides the residuals by the volumes less the design's columns, k, not its rank)."""
    from nilearn.glm.first_level import FirstLevelModel

    dataset = fresh_dataset(subjects=("01",))
    run = {**RUN, "Transformations": {"Transformer": "pybids-transforms-v1", "Instructions": [
        {"Name": "Factor", "Input": ["trial_type"]},
        {"Name": "Rename", "Input": ["trial_type.audio", "trial_type.visual"], "Output": ["audio", "visual"]},
        {"Name": "Or", "Input": ["audio", "visual"], "Output": ["task"]}]},
        "Model": {"Type": "glm", "X": ["audio", "visual", "task", 1],
                  "HRF": {"Variables": ["audio", "visual", "task"], "Model": "glover"}},
        "Contrasts": [{"Name": "av", "ConditionList": ["audio", "visual"], "Weights": [1, -1], "Test": "t"},
                      {"Name": "taskOnly", "ConditionList": ["task"], "Weights": [1], "Test": "t"}]}
    del run["DummyContrasts"]
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK, "--nprocs", "1", "-m",
                 str(_model(tmp_path, [run], "dependent"))]) == 0
    assert "the design's columns audio, visual, task are linearly dependent (rank 3 of 4), so contrast 'taskOnly' " \
           "cannot be estimated" in " ".join(capsys.readouterr().err.split())
    assert not list(out.rglob("*contrast-taskOnly*")) and list(out.rglob("*_run-01_*contrast-av_stat-t_statmap.nii.gz"))
    (ours,) = sorted(out.rglob("sub-01_ses-1_task-checkerboard_run-01_*contrast-av_stat-t_statmap.nii.gz"))
    design = pd.read_csv(next(out.rglob("sub-01_ses-1_task-checkerboard_run-01_design.tsv")), sep="\t")
    fmriprep = dataset.path / "derivatives" / "fmriprep" / "sub-01" / "ses-1" / "func"
    stem = "sub-01_ses-1_task-checkerboard_run-01"
    model = FirstLevelModel(mask_img=str(fmriprep / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz"), smoothing_fwhm=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reduced = design.drop(columns="task")
        model.fit(str(fmriprep / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz"), design_matrices=[reduced])
        theirs = model.compute_contrast(np.array([1.0, -1.0] + [0.0] * (reduced.shape[1] - 2)), output_type="all")
    assert list(design.columns[:3]) == ["audio", "visual", "task"]
    inside = nib.load(str(fmriprep / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz")).get_fdata() > 0
    effect = nib.load(str(ours).replace("stat-t", "stat-effect")).get_fdata()[inside]
    np.testing.assert_allclose(effect, theirs["effect_size"].get_fdata()[inside], rtol=1e-4, atol=1e-6)
    residual_dof = len(design) - design.shape[1]
    np.testing.assert_allclose(nib.load(str(ours)).get_fdata()[inside],
                               theirs["stat"].get_fdata()[inside] * np.sqrt(residual_dof / (residual_dof + 1)),
                               rtol=1e-4, atol=1e-6)


PASSES = [
    {**RUN, "Model": {"Type": "glm", "X": ["audio", "visual", "trans_*", "rot_*", 1]},
     "DummyContrasts": {"Contrasts": ["audio"], "Test": "pass"},
     "Contrasts": [{"Name": "av", "ConditionList": ["audio", "visual"], "Weights": [1, -1], "Test": "t"}]},
    {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"], "Model": {"Type": "meta", "X": [1]},
     "DummyContrasts": {"Test": "t"}},
    {"Level": "Dataset", "Name": "group", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": [1]},
     "Contrasts": [{"Name": "passed", "ConditionList": [1], "Weights": [1], "Test": "pass"},
                   {"Name": "tested", "ConditionList": [1], "Weights": [1], "Test": "t"}]},
]


def test_pass_contrasts_write_their_effect_and_variance_only(fresh_dataset, tmp_path):
    """A contrast of Test "pass" is not tested where it is made (t, z and p maps were written,
    and its sidecar said Test "t"); the node above it combines and tests it as before."""
    from nilearn.glm import compute_fixed_effects

    dataset, out = fresh_dataset(), tmp_path / "out"
    model = str(_model(tmp_path, PASSES, "passes"))
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", model]) == 0
    assert main([str(dataset.path), str(out), "group", "-m", model]) == 0

    def stats(pattern):
        return sorted(p.name.split("_stat-")[1].split("_")[0] for p in out.rglob(pattern))

    run = f"sub-01_ses-1_task-checkerboard_run-01_space-{SPACE}"
    assert stats(f"{run}_contrast-audio_stat-*_statmap.nii.gz") == ["effect", "variance"]
    assert stats(f"{run}_contrast-av_stat-*_statmap.nii.gz") == ["effect", "p", "t", "variance", "z"]
    sidecar = json.loads(next(out.rglob(f"{run}_contrast-audio_stat-effect_statmap.json")).read_text())
    assert sidecar["Contrast"]["Test"] == "pass"
    # the subject node tests it: fixed effects of the runs' effect and variance maps, as nilearn
    subject = out / "sub-01" / "func" / f"sub-01_task-checkerboard_space-{SPACE}_contrast-audio_stat-"
    assert json.loads(Path(f"{subject}t_statmap.json").read_text())["Contrast"]["Test"] == "t"
    runs = sorted(out.glob("sub-01/ses-*/func/sub-01_*_contrast-audio_stat-effect_statmap.nii.gz"))
    assert len(runs) == 4
    dofs = [json.loads(Path(str(p).replace(".nii.gz", ".json")).read_text())["DegreesOfFreedom"] for p in runs]
    mask = next(out.glob("sub-01/func/*_desc-fixedfx_mask.nii.gz"))
    theirs = compute_fixed_effects([str(p) for p in runs], [str(p).replace("effect", "variance") for p in runs],
                                   str(mask), dofs=dofs)
    for stat, expected in zip(("effect", "variance", "t"), theirs[:3]):
        expected = expected.get_fdata()
        np.testing.assert_allclose(nib.load(f"{subject}{stat}_statmap.nii.gz").get_fdata(), expected, rtol=1e-4,
                                   atol=1e-6 * np.abs(expected).max(), err_msg=stat)
    # the dataset node's pass contrast: the effect and variance of its tested twin, nothing else
    group = out / "group" / f"task-checkerboard_space-{SPACE}_contrast-"
    assert stats("group/*_contrast-audioPassed_stat-*.nii.gz") == ["effect", "variance"]
    for stat in ("effect", "variance"):
        np.testing.assert_array_equal(nib.load(f"{group}audioPassed_stat-{stat}_statmap.nii.gz").get_fdata(),
                                      nib.load(f"{group}audioTested_stat-{stat}_statmap.nii.gz").get_fdata())
    assert json.loads(Path(f"{group}audioPassed_stat-effect_statmap.json").read_text())["Contrast"]["Test"] == "pass"
    assert 'Test "pass": no statistical test' in (out / "group.html").read_text()
    methods = (out / "logs" / "CITATION.md").read_text()
    assert "The model's Test \"pass\" left `audio` untested at the run level" in methods
    assert "left `audio_passed` and `av_passed` untested" in methods


@pytest.mark.parametrize(
    ("nodes", "named"),
    [
        ([{**RUN, "Model": {"Type": "glm", "X": ["nothing_like_it", 1]}}], "nothing_like_it"),
        ([{**RUN, "Transformations": {"Transformer": "pybids-transforms-v1",
                                     "Instructions": [{"Name": "Teleport", "Input": ["audio"]}]}}], "Teleport"),
        ([RUN, {"Level": "Session", "Name": "ses", "GroupBy": ["session", "subject"],
                "Model": {"Type": "meta", "X": [1]}}], "ses"),
        ([{**RUN, "Contrasts": [{"Name": "c", "ConditionList": ["audio"], "Weights": [1, -1], "Test": "t"}]}], "c"),
    ],
)
def test_bad_models_are_one_clear_sentence(fresh_dataset, tmp_path, capsys, nodes, named):
    dataset = fresh_dataset(subjects=("01",))
    model = _model(tmp_path, nodes)
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", model], 64, named, model.name)


def test_not_a_model_file(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("01",))
    path = tmp_path / "model.json"
    path.write_text("{")
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", path], 64, "model.json", "JSON")


def test_model_contrasts_making_one_file_label_are_sent_back_to_the_model(fresh_dataset, tmp_path, capsys):
    """The message advised --contrast, which a model file refuses beside it."""
    dataset = fresh_dataset(subjects=("01",))
    contrast = {"ConditionList": ["audio", "visual"], "Weights": [1, -1], "Test": "t"}
    path = tmp_path / "model-labels_smdl.json"
    path.write_text(json.dumps({"Name": "labels", "BIDSModelVersion": "1.0.0", "Nodes": [
        {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"], "Model": {"Type": "glm", "X": ["audio", "visual", 1]},
         "Contrasts": [{**contrast, "Name": "a-v"}, {**contrast, "Name": "a_v"}]}]}))
    message = fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", path], 64, "'a-v' and 'a_v'",
                    f"name them apart in {path}")
    assert "--contrast" not in message


@pytest.mark.parametrize("option", [["--contrast", "a=audio"], ["--hrf-model", "spm"], ["--noise-model", "ols"],
                                    ["--confounds", "none"]])
def test_options_that_the_model_states_are_refused_with_it(fresh_dataset, tmp_path, capsys, option):
    dataset = fresh_dataset(subjects=("01",))
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", MODELS / "model-twoSample_smdl.json",
                   *option], 64, option[0], "--model")


@pytest.mark.slow
def test_group_covariates_shortcut_equals_the_model_file(six_subjects, two_sample, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    assert main([str(six_subjects.path), str(out), "group", "--no-reports", "--group-covariates", "group", "age"]) == 0

    def effect(folder, label):
        return nib.load(str(next(folder.glob(f"*_contrast-audioGtVisual{label}_stat-effect_desc-*_statmap.nii.gz")))
                        ).get_fdata()

    model_group, shortcut = two_sample / "group", out / "group"
    np.testing.assert_allclose(effect(shortcut, "ControlMinusPatient"), -effect(model_group, "PatientsMinusControls"),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(effect(shortcut, "Age"), effect(model_group, "Age"), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(effect(shortcut, "Mean"), effect(model_group, "Mean"), rtol=1e-5, atol=1e-7)
    sidecar = json.loads(next(shortcut.glob("*_contrast-audioGtVisualAge_stat-t_desc-groupCovariates_statmap.json"))
                         .read_text())
    assert sidecar["DesignMatrix"]["Columns"] == ["group.control", "group.patient", "age"]
    assert (out / "models" / "model-groupCovariates_smdl.json").is_file()
    # the methods text names the design's columns and contrasts, and the statistics they make
    methods = " ".join((out / "logs" / "CITATION.md").read_text().split())
    assert "with the columns `group.control`, `group.patient` and `age`, `age` demeaned;" in methods  # (as built)
    assert ("the contrasts `mean`: `group.control` 0.5, `group.patient` 0.5; `control minus patient`: "
            "`group.control` 1, `group.patient` -1; `age`: `age` 1; the t statistics were") in methods
    assert "t (or F)" not in methods


@pytest.mark.slow
def test_group_contrasts_making_one_file_label_are_refused_before_writing(six_subjects, two_sample, tmp_path, capsys):
    """'age-slope' and 'ageSlope' wrote one set of maps over the other and failed with exit 1,
    leaving half of the group's files."""
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    model = json.loads((MODELS / "model-twoSample_smdl.json").read_text())
    dataset = next(node for node in model["Nodes"] if node["Level"] == "Dataset")
    age = next(c for c in dataset["Contrasts"] if c["Name"] == "age")
    dataset["Contrasts"] += [{**age, "Name": "age-slope"}, {**age, "Name": "ageSlope"}]
    path = tmp_path / "model-twoSample_smdl.json"
    path.write_text(json.dumps(model))
    fails(capsys, [six_subjects.path, out, "group", "--no-reports", "-m", path], 64, "age-slope' and ", "ageSlope' of task-checkerboard",
          "ageSlope", output=out / "group")


@pytest.mark.slow
def test_a_group_model_of_the_same_name_with_other_participant_nodes_is_refused(six_subjects, two_sample, tmp_path,
                                                                               capsys):
    """It replaced OUTPUT_DIR's copy of the model that the subject maps' sidecars name."""
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    copy = next((out / "models").glob("*_smdl.json"))
    before = copy.read_bytes()
    model = json.loads((MODELS / "model-twoSample_smdl.json").read_text())
    model["Nodes"][0]["Model"]["X"] = model["Nodes"][0]["Model"]["X"][:-1]
    path = tmp_path / "model-twoSample_smdl.json"
    path.write_text(json.dumps(model))
    fails(capsys, [six_subjects.path, out, "group", "--no-reports", "-m", path], 64, str(copy),
          "run the participant level with this model first", output=out / "group")
    assert copy.read_bytes() == before


@pytest.mark.slow
def test_a_permutation_test_of_a_group_design_is_refused(six_subjects, two_sample, tmp_path, capsys):
    """--n-perm with a design of covariates wrote no permutation map, without a word."""
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    fails(capsys, [six_subjects.path, out, "group", "--no-reports", "--n-perm", "20", "--group-covariates", "age"], 64,
          "--n-perm", "one-sample t-test only", "a group design of intercept, age", output=out / "group")


@pytest.mark.slow
def test_a_group_column_of_one_level_among_the_subjects_selected_is_named(six_subjects, two_sample, tmp_path, capsys):
    """Patients alone selected: 'Model.X names group.control, which is not a variable'."""
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    fails(capsys, [six_subjects.path, out, "group", "--no-reports", "--participant-label", "01", "03", "05",
                   "--group-covariates", "group"], 64,
          "--group-covariates group has 1 level(s) among the subjects selected (patient)", output=out / "group")


@pytest.mark.slow
def test_maps_another_design_of_the_same_name_wrote_are_said_to_be_removed(six_subjects, two_sample, tmp_path,
                                                                            capsys):
    """Two designs of --group-covariates name their maps alike (desc-groupCovariates): the second
    removed the first's maps of other contrasts without a word."""
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    common = [str(six_subjects.path), str(out), "group", "--no-reports", "--group-covariates"]
    assert main([*common, "group", "age"]) == 0
    differences = sorted((out / "group").glob("*ControlMinusPatient*_statmap.nii.gz"))
    assert differences
    capsys.readouterr()
    assert main([*common, "age"]) == 0
    said = capsys.readouterr().err
    assert not any(p.exists() for p in differences)
    warnings = [line for line in said.splitlines() if "WARNING" in line and "were removed" in line]
    assert len(warnings) == 1, said
    assert "set(s) of group maps that an earlier job wrote under the names this job's group model uses" in warnings[0]
    assert "ControlMinusPatient_desc-groupCovariates" in warnings[0] and "give their dataset nodes different names" in warnings[0]
    assert main([*common, "age"]) == 0  # a rerun of the same design removes nothing, and says nothing of it
    assert "were removed" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_coded_column_named_alone_in_a_model_is_said_to_be_fitted_as_a_slope(six_subjects, two_sample, tmp_path,
                                                                                 capsys):
    """A site column of codes that participants.json gives as Levels was fitted as one covariate
    (a slope over 1, 2, 3) without a word, where --group-covariates compares its groups."""
    dataset = tmp_path / "ds"
    shutil.copytree(six_subjects.path, dataset)
    table = pd.read_csv(dataset / "participants.tsv", sep="\t")
    table["site"] = [1, 2, 3, 1, 2, 3][:len(table)]
    table.to_csv(dataset / "participants.tsv", sep="\t", index=False)
    (dataset / "participants.json").write_text(json.dumps(
        {"site": {"Description": "scanner site", "Levels": {"1": "Paris", "2": "Oslo", "3": "Rome"}}}))
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    document = json.loads((MODELS / "model-twoSample_smdl.json").read_text())
    document["Nodes"][2] = {"Level": "Dataset", "Name": "siteSlope", "GroupBy": ["contrast"],
                            "Model": {"Type": "glm", "X": [1, "site"]},
                            "Contrasts": [{"Name": "mean", "ConditionList": [1], "Weights": [1], "Test": "t"}]}
    model = tmp_path / "model-site_smdl.json"
    model.write_text(json.dumps(document))
    capsys.readouterr()
    assert main([str(dataset), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line and "'site'" in line]
    assert len(said) == 1 and "codes of its Levels (1: Paris, 2: Oslo, 3: Rome)" in said[0], said
    assert "a slope over the codes" in said[0] and "add a Factor of 'site'" in said[0]
    document["Nodes"][2]["Transformations"] = {"Transformer": "pybids-transforms-v1",
                                               "Instructions": [{"Name": "Factor", "Input": ["site"]}]}
    document["Nodes"][2]["Model"]["X"] = ["site.1", "site.2", "site.3"]
    document["Nodes"][2]["Contrasts"][0]["ConditionList"] = ["site.1", "site.2", "site.3"]
    document["Nodes"][2]["Contrasts"][0]["Weights"] = ["1/3", "1/3", "1/3"]
    model.write_text(json.dumps(document))
    assert main([str(dataset), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    assert "Levels" not in capsys.readouterr().err  # its groups compared: nothing to say


@pytest.mark.slow
def test_a_level_of_the_model_no_subject_selected_has_is_named(six_subjects, two_sample, tmp_path, capsys):
    """Patients alone selected for the two-sample model: 'Model.X names group.control, which is not a
    variable' (64), where the selection lacks data."""
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    fails(capsys, [six_subjects.path, out, "group", "--no-reports", "--participant-label", "01", "03", "05",
                   "-m", MODELS / "model-twoSample_smdl.json"], 66,
          "Node 'patientsVsControls': Model.X names 'group.control', but no subject tested (sub-01, sub-03, sub-05) "
          "has group 'control' in participants.tsv (they have patient)", output=out / "group")
    # a level participants.tsv does not hold is a misspelling of the model's (64), not data missing
    document = json.loads((MODELS / "model-twoSample_smdl.json").read_text())
    document["Nodes"][2]["Model"]["X"][1] = "group.contol"
    document["Nodes"][2]["Contrasts"] = [document["Nodes"][2]["Contrasts"][1]]
    typo = tmp_path / "model-typo_smdl.json"
    typo.write_text(json.dumps(document))
    fails(capsys, [six_subjects.path, out, "group", "--no-reports", "-m", typo], 64,
          "Model.X names 'group.contol', but participants.tsv's group has no level 'contol' (its levels: control, "
          "patient); correct the name in the model", output=out / "group")


@pytest.mark.slow
def test_participants_rows_of_unpadded_labels_are_said_to_name_no_subject(six_subjects, two_sample, tmp_path,
                                                                         capsys):
    """participants.tsv writing sub-1 where the folders are sub-01: the subjects were left out as
    having no row, without a word of the rows that were meant for them."""
    dataset = tmp_path / "ds"
    shutil.copytree(six_subjects.path, dataset)
    table = pd.read_csv(dataset / "participants.tsv", sep="\t")
    table.loc[:1, "participant_id"] = ["sub-1", "sub-2"]
    table.to_csv(dataset / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    capsys.readouterr()
    assert main([str(dataset), str(out), "group", "--no-reports", "-m", str(MODELS / "model-twoSample_smdl.json")]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line and "participants.tsv has" in line]
    assert len(said) == 1 and "a row for sub-1 but none for sub-01, whose maps these are (and 1 more such)" in said[0]


def test_group_maps_of_a_contrast_no_longer_tested_are_said_to_be_so_by_their_design_s_names(fresh_dataset, tmp_path,
                                                                                               capsys):
    """A design of age names its maps visualAge after the subject maps' visual: once visual was no
    longer tested, its visualAge maps were said to be another design's of the same names."""
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    model = tmp_path / "model-two_smdl.json"
    model.write_text(json.dumps({"Name": "two", "BIDSModelVersion": "1.0.0", "Nodes": [
        {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
         "Model": {"Type": "glm", "X": ["trial_type.audio", "trial_type.visual", 1]},
         "Contrasts": [{"Name": "audio", "ConditionList": ["trial_type.audio"], "Weights": [1], "Test": "t"},
                       {"Name": "visual", "ConditionList": ["trial_type.visual"], "Weights": [1], "Test": "t"}]},
        {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"], "Model": {"Type": "meta", "X": [1]},
         "DummyContrasts": {"Test": "t"}},
        {"Level": "Dataset", "Name": "dataset", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": [1, "age"]},
         "DummyContrasts": {"Test": "t"}}]}))
    out = tmp_path / "out"
    common = [str(dataset.path), str(out)]
    assert main([*common, "participant", *QUICK, "-m", str(model)]) == 0
    assert main([*common, "group", "--no-reports", "-m", str(model)]) == 0
    assert list((out / "group").glob("*_contrast-visualAge_stat-t_*statmap.nii.gz"))
    for subject in ("02", "03"):
        for path in (out / f"sub-{subject}").rglob("*_contrast-visual_*"):
            path.unlink()
    capsys.readouterr()
    assert main([*common, "group", "--no-reports", "-m", str(model)]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "were removed" in line]
    assert len(said) == 1, said
    assert "the group maps of contrast(s) visual, visualAge that an earlier job wrote were removed, since this job " \
           "does not test them" in said[0]
    assert not list((out / "group").glob("*_contrast-visual*"))


@pytest.mark.slow
def test_a_dropped_contrast_s_group_maps_are_said_removed_once_a_set(fresh_dataset, tmp_path, capsys):
    """Its figures were counted as sets of maps ("3 set(s)" for one contrast), and the advice spoke
    of designs only."""
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    out = tmp_path / "out"
    common = [str(dataset.path), str(out)]
    assert main([*common, "participant", "--skip-bids-validation"]) == 0
    assert main([*common, "group"]) == 0
    assert list((out / "group" / "figures").glob("*_contrast-visual_*"))
    assert main([*common, "participant", "--skip-bids-validation", "--contrast", "audio=audio"]) == 0
    capsys.readouterr()
    assert main([*common, "group"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "were removed" in line]
    assert len(said) == 1 and "1 set(s) of group maps" in said[0] and "_contrast-visual," in said[0], said
    assert "a contrast the model no longer has" in said[0]
    assert not list((out / "group").rglob("*_contrast-visual_*"))


@pytest.mark.slow
def test_maps_of_different_group_models_coexist(six_subjects, two_sample, tmp_path):
    """One-sample, fixed effects and a group design each have their own names; a rerun of one
    replaces its own maps only, with the same bytes, and leaves nothing stale."""
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    runs = {"one-sample": [], "covariates": ["--group-covariates", "group", "age"],
            "fixed": ["--group-model", "fixed"], "model": ["-m", str(MODELS / "model-twoSample_smdl.json")]}

    def group(name):
        assert main([str(six_subjects.path), str(out), "group", "--no-reports", *runs[name]]) == 0
        return {p.relative_to(out / "group"): p.read_bytes() for p in (out / "group").rglob("*.nii.gz")}

    made, first = {}, {}  # the maps each model added; every file's bytes when first written
    for name in ("one-sample", "covariates", "fixed", "model") * 2:
        files = group(name)
        made.setdefault(name, set(files) - set().union(*made.values()))
        assert set(files) == set().union(*made.values()), name  # every model's maps, nothing stale
        first.update({n: content for n, content in files.items() if n not in first})
        assert all(files[n] == first[n] for n in files), name  # the same bytes, whichever ran last
    stem = f"task-checkerboard_space-{SPACE}"
    assert made["one-sample"] == {Path(f"{stem}_contrast-audioGtVisual_stat-{s}_statmap.nii.gz")
                                  for s in ("effect", "variance", "t", "z", "p")} | {Path(f"{stem}_desc-group_mask.nii.gz")}
    fixed_mask = Path(f"{stem}_desc-fixedfx_mask.nii.gz")  # its own mask: the subjects may differ
    assert fixed_mask in made["fixed"] and all("_desc-fixedfx_statmap" in n.name for n in made["fixed"] - {fixed_mask})
    assert made["covariates"] and all("_desc-groupCovariates_" in n.name for n in made["covariates"])
    assert made["model"] and all("_desc-patientsVsControls_" in n.name for n in made["model"])
    assert not list((out / ".bids-fixedfx-tmp").glob("*"))
    # a rerun of a group model with other contrasts removes its own earlier maps, only those
    runs["covariates"] = ["--group-covariates", "age"]
    files = group("covariates")
    assert not [n for n in files if "ControlMinusPatient" in n.name]
    assert [n for n in files if "_contrast-audioGtVisualAge_stat-t_desc-groupCovariates_" in n.name]
    assert set().union(made["one-sample"], made["fixed"], made["model"]) <= set(files)
    assert "with the design of the model's dataset node `groupCovariates`" in (out / "logs" / "CITATION.md").read_text()


@pytest.mark.slow
def test_group_report_shows_each_contrast_of_a_group_design(six_subjects, two_sample, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_sample, out, ignore=shutil.ignore_patterns("group"))
    assert main([str(six_subjects.path), str(out), "group", "--group-covariates", "group", "age",
                 "--threshold", "fdr"]) == 0
    page = (out / "group.html").read_text()
    assert 'class="missing"' not in page and "dataset node groupCovariates" in page
    for label in ("ControlMinusPatient", "Age", "Mean"):
        assert f'id="task-checkerboard-space-{SPACE}-contrast-audioGtVisual{label}"' in page
        assert list((out / "group" / "figures").glob(f"*_contrast-audioGtVisual{label}_desc-zmap_statmap.png"))


@pytest.mark.parametrize(
    ("options", "named"),
    [(["--group-covariates", "height"], "height"),
     (["--group-covariates", "group", "sex"], "group columns"),
     (["--group-covariates", "sex"], "sex has 1 level"),
     (["--group-covariates", "age", "--group-model", "fixed"], "--group-model fixed"),
     (["--group-covariates", "age"], "participants.tsv, which is missing"),
     # ids 1, 2 for sub-01, sub-02: 'Demean: no variable age (variables: subject, contrast, task)', 64
     (["--group-covariates", "age"], "none of its participant_id values (1, 2, 03) names a subject with maps"),
     # a task column was overwritten by the maps' task ('no subject has task a ... they have checkerboard', 66),
     # a subject column by the labels ('not a column of participants.tsv')
     (["--group-covariates", "task"], "names 'task', which is both a column of"),
     (["--group-covariates", "subject"], "names 'subject', which is both a column of")],
)
def test_group_covariates_errors(fresh_dataset, tmp_path, capsys, options, named):
    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK]) == 0
    if "missing" in named:
        (dataset.path / "participants.tsv").unlink()
    table = dataset.path / "participants.tsv"
    if "participant_id values" in named:
        table.write_text(table.read_text().replace("sub-01", "1").replace("sub-02", "2"))
    if "both a column" in named:  # set aside, not read: the other columns and the labels serve as before
        from bids_fixedfx.plan.group import read_participants

        before = read_participants(dataset.path)
        frame = pd.read_csv(table, sep="\t")
        frame["task"], frame["subject"] = "a", range(len(frame))
        frame.to_csv(table, sep="\t", index=False)
        pd.testing.assert_frame_equal(read_participants(dataset.path), before)
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports", *options]) == (
        66 if "participant_id values" in named or "missing" in named else 64)  # a file missing: 66, as with -m
    err = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line or "error:" in line]
    assert len(err) == 1 and named in err[0]
    assert not (out / "group").exists()


# --------------------------------------------------------------------------
# a model written as people write them (bidspm template, FitLins' run -> subject -> dataset)

WORDS = MODELS / "model-wordsTemplate_smdl.json"


@pytest.fixture(scope="module")
def rhymes(tmp_path_factory):
    root = tmp_path_factory.mktemp("rhymes") / "bids"
    return make_example_dataset(root, n_subjects=3, n_sessions=1, n_runs=2, shape=(16, 18, 14), n_volumes=70,
                                task="rhymes", conditions=("word", "pseudoword"))


@pytest.fixture(scope="module")
def rhymes_analysed(rhymes, tmp_path_factory):
    import contextlib
    import io

    out, stream = tmp_path_factory.mktemp("rhymes_out") / "out", io.StringIO()
    with contextlib.redirect_stderr(stream):
        assert main([str(rhymes.path), str(out), "participant", *QUICK, "-m", str(WORDS)]) == 0
        assert main([str(rhymes.path), str(out), "group", "--no-reports", "-m", str(WORDS)]) == 0
    return out, stream.getvalue()


def _words_design(rhymes, stem, tr):
    """The run's design by nilearn's own function, from the files, as a user would build it."""
    from fnmatch import fnmatch

    from nilearn.glm.first_level import make_first_level_design_matrix

    fmriprep = rhymes.path / "derivatives" / "fmriprep" / stem.split("_")[0] / "func"
    events = pd.read_csv(rhymes.path / stem.split("_")[0] / "func" / f"{stem}_events.tsv", sep="\t")
    events["trial_type"] = "trial_type." + events["trial_type"]
    confounds = pd.read_csv(fmriprep / f"{stem}_desc-confounds_timeseries.tsv", sep="\t")
    columns = [c for c in confounds.columns if fnmatch(c, "trans_?") or fnmatch(c, "rot_*")]
    n_volumes = nib.load(str(fmriprep / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz")).shape[3]
    return make_first_level_design_matrix(
        np.arange(n_volumes) * tr, events, hrf_model="spm", drift_model="cosine", high_pass=0.008,
        add_regs=confounds[columns].bfill().to_numpy(), add_reg_names=columns), fmriprep


@pytest.mark.slow
def test_a_template_style_model_runs_and_equals_nilearn(rhymes, rhymes_analysed):
    """Input.task and space, trial_type.<level> without Factor, Model.HRF (DoubleGamma: SPM's),
    wildcard confounds, "1", blanks, FEMA, a condition no run has: the run maps equal
    FirstLevelModel on nilearn's own design, the subject maps compute_fixed_effects, the group
    map SecondLevelModel, all to 1e-4."""
    from nilearn.glm import compute_fixed_effects
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.masking import intersect_masks

    out, log = rhymes_analysed
    assert "no event has 'trial_type.neverShown'" in log and "'neverShownGtWord' left out" in log
    assert "'DoubleGamma' read as 'spm'" in log and "blank contrast" in log
    assert not list(out.rglob("*contrast-neverShownGtWord*"))
    tr = json.loads((rhymes.path / "task-rhymes_bold.json").read_text())["RepetitionTime"]
    weights = {"wordGtPseudo": {"trial_type.word": 1, "trial_type.pseudoword": -1},
               "trialTypeWord": {"trial_type.word": 1}}
    subject_effects = []
    for subject in rhymes.subjects:
        stems = sorted(p.name.split("_space")[0] for p in (rhymes.path / "derivatives" / "fmriprep" / f"sub-{subject}"
                       / "func").glob(f"*_space-{SPACE}_desc-preproc_bold.nii.gz"))
        runs = {label: [] for label in weights}
        dofs, masks = [], []
        for stem in stems:
            design, fmriprep = _words_design(rhymes, stem, tr)
            ours = pd.read_csv(out / f"sub-{subject}" / "func" / f"{stem}_design.tsv", sep="\t")
            assert sorted(ours.columns) == sorted(design.columns)
            np.testing.assert_allclose(ours[list(design.columns)].to_numpy(), design.to_numpy(), rtol=1e-8, atol=1e-10)
            mask = str(fmriprep / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz")
            model = FirstLevelModel(mask_img=mask, smoothing_fwhm=5)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(str(fmriprep / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz"), design_matrices=[design])
            dofs.append(design.shape[0] - np.linalg.matrix_rank(design.to_numpy()))
            masks.append(mask)
            for label, named in weights.items():
                vector = np.array([named.get(c, 0.0) for c in design.columns])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    theirs = model.compute_contrast(vector, output_type="all")
                runs[label].append(theirs)
                for stat, name in (("effect", "effect_size"), ("t", "stat"), ("z", "z_score")):
                    path = next((out / f"sub-{subject}" / "func").glob(f"{stem}_*contrast-{label}_stat-{stat}_statmap.nii.gz"))
                    expected = theirs[name].get_fdata()
                    np.testing.assert_allclose(nib.load(str(path)).get_fdata(), expected, rtol=1e-4,
                                               atol=1e-4 * np.abs(expected).max(), err_msg=f"{stem} {label} {stat}")
        mask = intersect_masks(masks, threshold=1, connected=False) if len(masks) > 1 else nib.load(masks[0])
        for label in weights:
            path = next((out / f"sub-{subject}" / "func").glob(
                f"sub-{subject}_task-rhymes_space-{SPACE}_contrast-{label}_stat-effect_statmap.nii.gz"))
            if len(stems) > 1:
                effect, _, t, _ = compute_fixed_effects([m["effect_size"] for m in runs[label]],
                                                        [m["effect_variance"] for m in runs[label]], mask, dofs=dofs)
            else:
                effect, t = runs[label][0]["effect_size"], runs[label][0]["stat"]
            for ours, theirs in ((path, effect), (Path(str(path).replace("stat-effect", "stat-t")), t)):
                expected = theirs.get_fdata()
                np.testing.assert_allclose(nib.load(str(ours)).get_fdata(), expected, rtol=1e-4,
                                           atol=1e-4 * np.abs(expected).max(), err_msg=f"sub-{subject} {label}")
            if label == "wordGtPseudo":
                subject_effects.append((str(path), str(next(path.parent.glob("*_desc-fixedfx_mask.nii.gz")))
                                        if len(stems) > 1 else masks[0]))
    group_mask = intersect_masks([m for _, m in subject_effects], threshold=1, connected=False)
    second = SecondLevelModel(mask_img=group_mask).fit(
        [e for e, _ in subject_effects], design_matrix=pd.DataFrame({"intercept": np.ones(len(subject_effects))}))
    theirs = second.compute_contrast("intercept", output_type="all")
    ours = next((out / "group").glob("*_contrast-wordGtPseudo_stat-t_statmap.nii.gz"))
    expected = theirs["stat"].get_fdata()
    np.testing.assert_allclose(nib.load(str(ours)).get_fdata(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # the edge's Filter: the pseudowords' dummy contrast is a subject map but not tested at the group level
    assert list(out.glob("sub-01/func/*_contrast-trialTypePseudoword_stat-effect_statmap.nii.gz"))
    assert not list((out / "group").glob("*_contrast-trialTypePseudoword_*"))
    # the known effect: words activate their box (the generator's first condition), pseudowords do not
    box = rhymes.active["word"]
    word_t = nib.load(str(next((out / "group").glob("*_contrast-trialTypeWord_stat-t_statmap.nii.gz")))).get_fdata()
    assert word_t[box].mean() > 3


@pytest.mark.slow
def test_a_template_style_model_output_is_valid_bids(rhymes_analysed):
    import subprocess

    from bids_fixedfx.discover import validator_command

    out, _ = rhymes_analysed
    command = validator_command()
    assert command, "bids-validator-deno must be installed (pip install bids-validator-deno)"
    done = subprocess.run([command, "--format", "json", str(out)], capture_output=True, text=True)
    errors = [i for i in json.loads(done.stdout)["issues"]["issues"] if i["severity"] == "error"]
    assert errors == [] and done.returncode == 0


def test_a_group_selection_by_the_model_s_input_names_it(fresh_dataset, tmp_path, capsys):
    """The model's Input.subject selecting no subject map was blamed on a --participant-label never given."""
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    model = _model(tmp_path, [RUN, {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"],
                                    "Model": {"Type": "meta", "X": [1]}, "DummyContrasts": {"Test": "t"}}], "someSubjects")
    document = json.loads(model.read_text())
    document["Input"] = {"subject": ["01", "02"]}
    model.write_text(json.dumps(document))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", str(model), "--participant-label", "03"]) == 0
    fails(capsys, [dataset.path, out, "group", "--no-reports", "-m", model], 66,
          f"Input.subject of {model.name} 01 02 selects none of the subject-level maps", "(subjects: 03)",
          output=out / "group")


def test_a_covariates_design_too_large_for_its_subjects_names_the_option(fresh_dataset, tmp_path, capsys):
    """It named 'Node groupCovariates', which the user never wrote, and said nothing of what to do."""
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK]) == 0
    fails(capsys, [dataset.path, out, "group", "--no-reports", "--group-covariates", "age", "group"], 64,
          "--group-covariates (its design, node 'groupCovariates')", "model fewer columns, or more",
          output=out / "group")


def age_model(path, x, condition=None, transformations=True):
    """A model of the default run and subject nodes whose dataset node fits ``Model.X`` ``x`` and
    tests ``condition`` (the last of ``x`` by default), with a Scale of age (``transformations``)."""
    document = {"Name": "age", "BIDSModelVersion": "1.0.0", "Input": {"task": ["checkerboard"]}, "Nodes": [
        {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
         "Model": {"Type": "glm", "X": ["trial_type.audio", "trial_type.visual", 1]},
         "DummyContrasts": {"Conditions": ["trial_type.audio"], "Test": "t"}},
        {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"], "Model": {"Type": "meta", "X": [1]},
         "DummyContrasts": {"Test": "t"}},
        {"Level": "Dataset", "Name": "age", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": x},
         "Transformations": {"Transformer": "pybids-transforms-v1", "Instructions": [
             {"Name": "Scale", "Input": ["age"], "Output": ["ageScaled"]},
             {"Name": "Scale", "Input": ["age"], "OutputSuffix": "_z"}]},
         "Contrasts": [{"Name": "slope", "ConditionList": [condition or x[-1]], "Weights": [1], "Test": "t"}]}]}
    if not transformations:
        del document["Nodes"][2]["Transformations"]
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("x, condition", [([1, "age"], None), ([1, "ageScaled"], None), ([1, "group.patient"], None),
                                          ([1, "sex"], None), (["group"], "group.patient"), ([1, "age"], "intercept"),
                                          ([1, "age_z"], None)])
def test_a_dataset_node_of_variables_participants_tsv_gives_is_run_at_the_participant_level(fresh_dataset, tmp_path,
                                                                                            x, condition):
    """The early checks of the dataset node's variables and contrasts let through participants.tsv's
    columns, what the node's transformations make, a Factor's column.level names and the intercept."""
    dataset = fresh_dataset(subjects=("01",))
    assert main([str(dataset.path), str(tmp_path / "out"), "participant", *QUICK, "--nprocs", "1",
                 "-m", str(age_model(tmp_path / "model-age_smdl.json", x, condition))]) == 0


def test_a_dataset_node_naming_no_variable_is_refused_before_the_runs_are_fitted(fresh_dataset, tmp_path, capsys):
    """A misspelt participants.tsv column in the dataset node's Model.X was found by the group level
    only, after every subject's job had run."""
    dataset = fresh_dataset(subjects=("01", "02"))
    model = age_model(tmp_path / "model-age_smdl.json", [1, "agee"], transformations=False)
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", model], 64,
          f"Node 'age' of {model}: Model.X names 'agee', which is not a variable (variables: age,",
          "so the group level would refuse it")
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m",
                   age_model(tmp_path / "model-level_smdl.json", ["group.contol"], transformations=False)], 64,
          "Model.X names 'group.contol', but participants.tsv's group has no level 'contol' (its levels: control, "
          "patient)")
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m",
                   age_model(tmp_path / "model-ageSlope_smdl.json", [1, "age"], "agee")], 64,
          "Node 'age' of", "contrast 'slope' names 'agee', which is not a variable of Model.X (1, age)")
    (dataset.path / "participants.tsv").unlink()
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", model], 66,
          "Model.X names 'agee'", "BIDS_DIR has no participants.tsv")


def test_a_group_variable_without_participants_tsv_says_the_file_is_missing(fresh_dataset, tmp_path, capsys):
    """'Model.X names age, which is not a variable (variables: subject, contrast, task)' did not say
    that the dataset has no participants.tsv."""
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK]) == 0
    document = json.loads((out / "models" / "model-default_smdl.json").read_text())
    document["Name"] = "age"
    document["Nodes"][2] = {"Level": "Dataset", "Name": "age", "GroupBy": ["contrast"],
                            "Model": {"Type": "glm", "X": [1, "age"]},
                            "Contrasts": [{"Name": "slope", "ConditionList": ["age"], "Weights": [1], "Test": "t"}]}
    document["Edges"][1]["Destination"] = "age"
    model = tmp_path / "model-age_smdl.json"
    model.write_text(json.dumps(document))
    (dataset.path / "participants.tsv").unlink()
    fails(capsys, [dataset.path, out, "group", "--no-reports", "-m", model], 66, "Model.X names 'age'",
          "BIDS_DIR has no participants.tsv", output=out / "group")
