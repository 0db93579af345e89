"""The model's Input selects the data the command line leaves open; a run node must compute something."""

from __future__ import annotations

import json
import re

import pytest

from bids_fixedfx import discover
from bids_fixedfx.errors import NoDataError
from bids_fixedfx.model import ModelError, parse_model
from bids_fixedfx.plan import apply_input, read_model

RUN = {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"], "Model": {"Type": "glm", "X": ["audio", 1]},
       "DummyContrasts": {"Test": "t"}}


def model(input_, nodes=(RUN,)):
    return parse_model({"Name": "m", "BIDSModelVersion": "1.0.0", "Input": input_, "Nodes": list(nodes)})


def test_input_stands_in_for_the_options_it_names(make_settings, example_dataset, tmp_path):
    settings = make_settings(example_dataset.path, model_file=tmp_path / "model-m_smdl.json")
    chosen = apply_input(model({"task": "checkerboard", "subject": ["01", "02"], "space": ["T1w"],
                                "acquisition": [""], "run": [1]}), settings)
    assert chosen.task == ("checkerboard",) and chosen.participant_label == ("01", "02") and chosen.space == "T1w"
    assert chosen.bids_filters == {"bold": {"acquisition": None, "run": "1"}}
    assert chosen.selected_by["space"] == "Input.space of model-m_smdl.json"
    selection = discover.select_runs(chosen)
    assert selection.space == "T1w" and {r.subject for r in selection.runs} == {"01", "02"}
    assert {dict(r.entities)["run"] for r in selection.runs} == {"01"}


def test_input_labels_may_carry_their_prefix(make_settings, example_dataset, tmp_path):
    """As the options: ``"subject": ["sub-01"]`` was 66 "No subject matches Input.subject ... sub-01
    (the dataset has sub-01, ...)"."""
    settings = make_settings(example_dataset.path, model_file=tmp_path / "model-m_smdl.json")
    chosen = apply_input(model({"subject": ["sub-01", "02"], "session": "ses-1"}), settings)
    assert chosen.participant_label == ("01", "02") and chosen.session_label == ("1",)
    assert {r.subject for r in discover.select_runs(chosen).runs} == {"01", "02"}


def test_the_command_line_wins_over_input(make_settings, example_dataset, tmp_path):
    settings = make_settings(example_dataset.path, model_file=tmp_path / "model-m_smdl.json", space="T1w",
                             bids_filters={"bold": {"run": 2}})
    chosen = apply_input(model({"space": "MNI152NLin2009cAsym", "run": [1]}), settings)
    assert chosen.space == "T1w" and chosen.bids_filters == {"bold": {"run": 2}} and "space" not in chosen.selected_by


def test_input_tasks_the_data_lacks_are_passed_over(make_settings, example_dataset, tmp_path):
    settings = make_settings(example_dataset.path, model_file=tmp_path / "model-m_smdl.json", participant_label=("01",))
    selection = discover.select_runs(apply_input(model({"task": ["stroop", "checkerboard"]}), settings))
    assert {r.task for r in selection.runs} == {"checkerboard"}
    with pytest.raises(NoDataError, match="Input.task of model-m_smdl.json stroop is not in the data that "
                                          "--participant-label 01 selects"):
        discover.select_runs(apply_input(model({"task": ["stroop"]}), settings))
    with pytest.raises(NoDataError, match="Input.space of model-m_smdl.json IXI549Space matches no preprocessed"):
        discover.select_runs(apply_input(model({"space": ["IXI549Space"]}), settings))


def test_input_keys_that_are_not_entities_are_refused(make_settings, example_dataset, tmp_path):
    settings = make_settings(example_dataset.path, model_file=tmp_path / "model-m_smdl.json")
    with pytest.raises(ModelError, match="model-m_smdl.json: Input has 'colour', which is not an entity"):
        apply_input(model({"colour": ["red"]}), settings)


def test_a_run_node_without_contrasts_is_refused(make_settings, example_dataset, tmp_path):
    path = tmp_path / "model-quiet_smdl.json"
    path.write_text(json.dumps({"Name": "quiet", "BIDSModelVersion": "1.0.0",
                                "Nodes": [{**RUN, "DummyContrasts": None}]}))
    with pytest.raises(ModelError, match="Node 'run' of .*model-quiet_smdl.json has no Contrasts and no DummyContrasts"):
        read_model(make_settings(example_dataset.path, model_file=path))


@pytest.mark.parametrize(("mask", "named"), [
    ({"desc": ["brain"], "suffix": ["mask"], "space": ["MNI152NLin2009cAsym"]}, None),
    ("", None),
    ({"label": ["GM"], "suffix": ["mask"]}, "the mask label ['GM']"),
    ({"desc": ["aseg"], "suffix": ["mask"]}, "the mask desc ['aseg']"),
])
def test_options_mask_is_the_brain_mask_or_refused(make_settings, example_dataset, tmp_path, mask, named):
    path = tmp_path / "model-masked_smdl.json"
    run = {**RUN, "Model": {**RUN["Model"], "Options": {"Mask": mask}}}
    path.write_text(json.dumps({"Name": "masked", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
    settings = make_settings(example_dataset.path, model_file=path)
    if named is None:
        assert read_model(settings).nodes[0].options.get("Mask") == (mask or None)
    else:
        with pytest.raises(ModelError, match=f"Node 'run' of .* asks for {re.escape(named)} in Model.Options.Mask"):
            read_model(settings)


def test_a_run_contrast_naming_a_variable_outside_x_is_refused(make_settings, example_dataset, tmp_path):
    """One misspelt contrast beside good ones was left out of every run with a warning, exit 0."""
    path = tmp_path / "model-outside_smdl.json"
    run = {**RUN, "Model": {"Type": "glm", "X": ["trans_?", "rot_?"]},
           "DummyContrasts": {"Test": "t", "Contrasts": ["trial_type.audio"]}}
    path.write_text(json.dumps({"Name": "outside", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
    with pytest.raises(ModelError, match="contrast 'trial_type.audio' names 'trial_type.audio', which is not a "
                                         "variable of Model.X \\(trans_\\?, rot_\\?\\)"):
        read_model(make_settings(example_dataset.path, model_file=path))
    run["Model"]["X"] = ["audio", "visual", 1]
    run["DummyContrasts"]["Contrasts"] = ["audio", "visual"]
    run["Contrasts"] = [{"Name": "d", "ConditionList": ["audio", "visaul"], "Weights": [1, -1], "Test": "t"}]
    path.write_text(json.dumps({"Name": "outside", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
    with pytest.raises(ModelError, match=f"Node 'run' of {re.escape(str(path))}: contrast 'd' names 'visaul'"):
        read_model(make_settings(example_dataset.path, model_file=path))
    del run["Contrasts"]
    for x, contrasts in ((["trial_type", "trans_?"], ["trial_type.audio"]), (["trans_?"], [1]),
                         (["trial_type.audio", "trans_?"], ["audio"]), (["audio", 1], ["audio_derivative"])):
        run["Model"]["X"], run["DummyContrasts"]["Contrasts"] = x, contrasts
        path.write_text(json.dumps({"Name": "outside", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
        assert read_model(make_settings(example_dataset.path, model_file=path)).name == "outside"


def test_a_contrast_naming_a_pattern_is_refused_and_a_dummy_contrast_may(make_settings, example_dataset, tmp_path):
    """A ConditionList's '*' or 'aud?o' matched X's names, so passed the check, then no design had it:
    the contrast was left out of every run with a warning, exit 0 (only DummyContrasts expand patterns)."""
    path = tmp_path / "model-pattern_smdl.json"
    run = {**RUN, "Model": {"Type": "glm", "X": ["audio", "visual", "trans_*", 1]}}
    settings = make_settings(example_dataset.path, model_file=path)
    for pattern in ("*", "aud?o", "trans_[xy]"):
        run["Contrasts"] = [{"Name": "p", "ConditionList": [pattern], "Weights": [1], "Test": "t"}]
        path.write_text(json.dumps({"Name": "pattern", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
        with pytest.raises(ModelError, match=f"contrast 'p' names {re.escape(repr(pattern))}, which is not a variable "
                                             "of Model.X .*\\(only DummyContrasts expand patterns"):
            read_model(settings)
    run["Contrasts"] = [{"Name": "p", "ConditionList": ["trans_x", "visual.level.2"], "Weights": [1, 1], "Test": "t"}]
    run["DummyContrasts"] = {"Test": "t", "Contrasts": ["aud?o", "trans_*"]}
    path.write_text(json.dumps({"Name": "pattern", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
    assert read_model(settings).name == "pattern"  # a match of X's pattern; a level of visual (it may hold dots)
    for x in (["rt.trial_type[face]", 1], ["rt.*", 1]):  # names of Split's making hold brackets: names all the same
        run["Model"]["X"] = x
        run["Contrasts"] = [{"Name": "p", "ConditionList": ["rt.trial_type[face]"], "Weights": [1], "Test": "t"}]
        del run["DummyContrasts"]
        path.write_text(json.dumps({"Name": "pattern", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
        assert read_model(settings).name == "pattern"
        run["DummyContrasts"] = {"Test": "t"}


def test_a_model_of_100000_variables_is_read_in_linear_time(make_settings, example_dataset, tmp_path):
    """Model.X's and a ConditionList's repeats, and each condition against X, were looked for in
    all the names before each: 56 s of CPU for 100,000 names (a 1 MB file) before exit 64."""
    import time

    names = [f"v{i}" for i in range(100_000)]
    run = {**RUN, "Model": {"Type": "glm", "X": [*names, "v7", 1]},
           "Contrasts": [{"Name": "all", "ConditionList": names, "Weights": [1] * len(names), "Test": "t"}]}
    path = tmp_path / "model-large_smdl.json"
    path.write_text(json.dumps({"Name": "large", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
    start = time.perf_counter()
    model = read_model(make_settings(example_dataset.path, model_file=path))
    assert time.perf_counter() - start < 15
    assert any("Model.X lists 'v7' more than once" in note for note in model.notes)


def test_a_model_without_confounds_records_none(make_settings, tmp_path):
    """X of conditions and the intercept only: the sidecars said ConfoundsOption ["*"] (read as
    every column of the confounds file)."""
    from bids_fixedfx.plan.models import model_settings

    hrf = {**RUN, "Model": {**RUN["Model"], "HRF": {"Variables": ["audio"], "Model": "spm"}}}
    assert model_settings(model({}, [hrf]), make_settings(tmp_path)).confounds == ()
    named = {**hrf, "Model": {**hrf["Model"], "X": ["audio", "trans_*", 1]}}
    assert model_settings(model({}, [named]), make_settings(tmp_path)).confounds == ("trans_*",)


@pytest.mark.parametrize(("software", "said"), [
    ({"noise_model": "ar2"}, "Software.nilearn.noise_model 'ar2'; expected 'ar1' or 'ols'"),
    ({"precision_weighted": "false"}, "Software.nilearn.precision_weighted 'false'; expected true or false"),
])
def test_software_settings_of_the_wrong_kind_are_model_errors(make_settings, tmp_path, software, said):
    """noise_model 'ar2' failed with exit 1 after OUTPUT_DIR's first files; precision_weighted
    "false" weighted by precision (Python reads the text as true)."""
    from bids_fixedfx.plan.models import model_settings

    node = "run" if "noise_model" in software else "subject"
    nodes = [{**RUN, "Model": {**RUN["Model"], "Software": {"nilearn": software}}} if node == "run" else RUN,
             {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"], "Model": {
                 "Type": "meta", "X": [1], **({"Software": {"nilearn": software}} if node == "subject" else {})},
              "DummyContrasts": {"Test": "t"}}]
    with pytest.raises(ModelError, match=said):
        model_settings(model({}, nodes), make_settings(tmp_path))


def test_a_fir_model_whose_contrasts_name_the_undelayed_condition_says_which_columns_to_name(example_dataset, tmp_path,
                                                                                             capsys):
    """The FIR HRF turns ``audio`` into ``audio_delay_0`` ...: a contrast on ``audio`` computes
    nothing, and the one error names the columns to use instead of only 'no contrast'."""
    from tools import fails

    run = {**RUN, "Model": {"Type": "glm", "X": ["audio", 1],
                            "HRF": {"Variables": ["audio"], "Model": "fir", "Parameters": {"fir_delays": [0, 2]}}},
           "Transformations": {"Transformer": "pybids-transforms-v1", "Instructions": [
               {"Name": "Factor", "Input": ["trial_type"]},
               {"Name": "Rename", "Input": ["trial_type.audio"], "Output": ["audio"]}]},
           "DummyContrasts": {"Test": "t", "Contrasts": ["audio"]}}
    path = tmp_path / "model-fir_smdl.json"
    path.write_text(json.dumps({"Name": "fir", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
    # a model error (64), not the data's (it was 66, "no run has a contrast to compute")
    fails(capsys, [example_dataset.path, tmp_path / "out", "participant", "--skip-bids-validation", "-m", path], 64,
          "contrast 'audio' names 'audio', which its FIR HRF splits into audio_delay_0, audio_delay_2: name those")
    run["DummyContrasts"]["Contrasts"] = ["audio_delay_0", "audio_delay_2"]
    path.write_text(json.dumps({"Name": "fir", "BIDSModelVersion": "1.0.0", "Nodes": [run]}))
    from bids_fixedfx.cli import main

    assert main([str(example_dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "--no-reports", "--participant-label", "01", "-m", str(path)]) == 0
    written = sorted(p.name for p in (tmp_path / "out").rglob("*contrast-audioDelay*stat-t_statmap.nii.gz"))
    assert any("audioDelay0" in n for n in written) and any("audioDelay2" in n for n in written), written


def test_subjects_without_maps_are_those_with_data_of_the_tasks_tested(tmp_path):
    """group -t beta told subjects without any beta data to run the participant level for it."""
    from bids_fixedfx.plan.group import _unprocessed

    for subject, task in (("01", "alpha"), ("02", "beta"), ("03", "alpha")):
        func = tmp_path / f"sub-{subject}" / "ses-1" / "func"
        func.mkdir(parents=True)
        (func / f"sub-{subject}_ses-1_task-{task}_bold.nii.gz").write_bytes(b"")
    (tmp_path / "sub-04" / "anat").mkdir(parents=True)  # anatomy only
    said = _unprocessed(tmp_path, {"01"}, tmp_path / "out", ("beta",))
    assert len(said) == 1 and "1 subject(s)" in said[0].text and "(sub-02)" in said[0].text
    said = _unprocessed(tmp_path, {"01"}, tmp_path / "out")
    assert len(said) == 1 and "2 subject(s)" in said[0].text and "(sub-02, sub-03)" in said[0].text
    assert _unprocessed(tmp_path, {"02"}, tmp_path / "out", ("beta",)) == []


def test_a_contrast_level_no_design_or_events_file_has_is_refused_but_names_the_node_makes(tmp_path):
    """audio.typo (a level of X's audio) is a misspelling; Split's rt.trial_type[face] and a
    transformation's Output are names of the node's making, which a job's runs may lack."""
    from types import SimpleNamespace as NS

    import pandas as pd

    from bids_fixedfx.plan.runs import _check_contrast_levels

    (tmp_path / "sub-01").mkdir()
    (tmp_path / "sub-01" / "sub-01_task-x_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\taudio\n")
    from collections import namedtuple

    built = {namedtuple("Run", "events")(tmp_path / "sub-01" / "sub-01_task-x_events.tsv"): NS(
        precomputed=False, matrix=pd.DataFrame(columns=["audio", "constant"]))}

    def node(*conditions, outputs=()):
        return NS(name="run", x=("audio", "rt.*", 1), transformations=(NS(output=outputs),),
                  contrasts=(NS(name="c", condition_list=conditions),))

    _check_contrast_levels(node("audio", "rt.trial_type[face]", "made.level", outputs=("made.level",)), built, tmp_path)
    _check_contrast_levels(node("trial_type.audio"), built, tmp_path)  # a level an events file holds
    with pytest.raises(ModelError, match="contrast 'c' names 'audio.typo', which no design of the selected runs has"):
        _check_contrast_levels(node("audio", "audio.typo"), built, tmp_path)
