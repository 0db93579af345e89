"""BIDS Stats Model files: reading, legacy spellings, refusals, writing back, the default model."""

import copy
import json
from pathlib import Path

import pytest

from bids_fixedfx.errors import EX_USAGE, InputFileError, UsageError
from bids_fixedfx.model import INTERCEPT, Model, ModelError, load_model, parse_model
from bids_fixedfx.model._checks import _check_schema
from bids_fixedfx.model.defaults import MOTION, default_model
from bids_fixedfx.settings import MAX_CONTRASTS

MODELS = Path(__file__).parent / "data" / "models"

#: The shape of the specification's example (run -> subject meta -> dataset glm).
EXAMPLE = {
    "Name": "my_first_model",
    "BIDSModelVersion": "1.0.0",
    "Description": "A simple 2-condition contrast.",
    "Input": {"task": ["stroop"]},
    "Nodes": [
        {
            "Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
            "Model": {"X": ["congruent", "incongruent", "nuisance1", 1], "Type": "glm"},
            "Contrasts": [{"Name": "incongruent_vs_congruent", "ConditionList": ["incongruent", "congruent"],
                           "Weights": [1, -1], "Test": "t"}],
        },
        {"Level": "Subject", "Name": "subject", "GroupBy": ["contrast", "subject"],
         "Model": {"X": [1], "Type": "meta"}, "DummyContrasts": {"Test": "t"}},
        {"Level": "Dataset", "Name": "dataset", "GroupBy": ["contrast"],
         "Model": {"X": [1], "Type": "glm"}, "DummyContrasts": {"Test": "t"}},
    ],
    "Edges": [{"Source": "run", "Destination": "subject"}, {"Source": "subject", "Destination": "dataset"}],
}


def example(**changes):
    document = copy.deepcopy(EXAMPLE)
    for path, value in changes.items():
        target = document
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        target[keys[-1]] = value
    return document


def test_example_model_records():
    model = parse_model(EXAMPLE)
    assert [n.name for n in model.nodes] == ["run", "subject", "dataset"]
    run, subject, dataset = model.nodes
    assert run.level == "run" and run.group_by == ("run", "subject") and run.model_type == "glm"
    assert run.x == ("congruent", "incongruent", "nuisance1", INTERCEPT)
    contrast = run.contrasts[0]
    assert contrast.condition_list == ("incongruent", "congruent")
    assert contrast.weights == (1.0, -1.0) and contrast.test == "t"
    assert subject.model_type == "meta" and subject.dummy_contrasts.test == "t"
    assert subject.dummy_contrasts.conditions is None
    assert model.input == {"task": ("stroop",)}
    assert [(e.source, e.destination) for e in model.edges] == [("run", "subject"), ("subject", "dataset")]
    assert model.root.name == "run" and model.nodes_at("run", "subject") == (run, subject)


def test_load_model_from_file(tmp_path):
    path = tmp_path / "model-x_smdl.json"
    path.write_text(json.dumps(EXAMPLE))
    assert load_model(path) == parse_model(EXAMPLE)
    path.write_text("{not json")
    with pytest.raises(ModelError, match="model-x_smdl.json is not valid JSON"):
        load_model(path)
    with pytest.raises(InputFileError, match="missing.json does not exist"):  # a missing input: 66
        load_model(tmp_path / "missing.json")


def test_hostile_model_files_are_usage_errors(tmp_path):
    """Text from a web form: nesting deep enough to exhaust the parser, another encoding,
    weights that are no finite number (JSON's NaN, an integer beyond any float)."""
    path = tmp_path / "model-x_smdl.json"
    path.write_text('{"Nodes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ModelError, match="nested too deeply"):
        load_model(path)
    path.write_text(json.dumps(EXAMPLE), encoding="utf-16")
    with pytest.raises(ModelError, match="not UTF-8"):
        load_model(path)
    path.write_text("\ufeff" + json.dumps(EXAMPLE), encoding="utf-8")  # a byte-order mark, as some editors write
    assert load_model(path) == parse_model(EXAMPLE)
    for weight, said in (("NaN", "NaN is not a JSON number"), ("Infinity", "Infinity is not a JSON number"),
                         ("-Infinity", "-Infinity is not a JSON number"),
                         ("1" + "0" * 400, "is not a finite number"), ('"1e999"', "is not a finite number"),
                         ("1e308", "of at most 1e\\+12 in size"), ('"-1e13"', "of at most 1e\\+12 in size"),
                         ("1e-12", "is below 1e-06 in size, so small that fixed effects"),
                         ('"1/10000000"', "is below 1e-06 in size"),
                         ('"1/1e999"', "whose '1e999' is not a finite number"),  # it was 0
                         ('"1e999/1e999"', "whose '1e999' is not a finite number"),
                         ('"1e-999"', "whose '1e-999' is too small to be told from 0"),  # it was 0
                         ("1e-400", "holds the number 1e-400, too small to be told from 0"),  # it was 0, exit 0
                         ("9" * 5000, "it holds a number of thousands of digits")):  # inf maps; no Python advice
        text = json.dumps(EXAMPLE).replace('"Weights": [1, -1]', f'"Weights": [{weight}, -1]')
        assert text != json.dumps(EXAMPLE)
        path.write_text(text)
        with pytest.raises(ModelError, match=said):
            load_model(path)
    # nor anywhere else: a high-pass cut-off or a smoothing of NaN reached the design and the sidecars
    text = json.dumps(EXAMPLE).replace('"Weights": [1, -1]', '"Weights": [1, -1], "Extra": NaN')
    path.write_text(text)
    with pytest.raises(ModelError, match="not valid JSON .NaN is not a JSON number"):
        load_model(path)


def test_model_error_is_a_usage_error():
    assert issubclass(ModelError, UsageError) and ModelError.exit_code == EX_USAGE == 64


def test_edges_default_to_list_order():
    document = example()
    del document["Edges"]
    assert parse_model(document).edges == parse_model(EXAMPLE).edges


def test_legacy_spellings_are_read():
    document = {
        "name": "legacy",
        "nodes": [
            {"level": "run", "name": "run", "group_by": ["run", "subject"],
             "transformations": [{"name": "factor", "input": "trial_type"}],
             "model": {"x": ["trial_type.a", "trial_type.b", "1"], "type": "GLM",
                       "hrf": {"variables": ["trial_type.a", "trial_type.b"], "model": "SPM+Derivative"},
                       "options": {"high_pass_filter_cutoff_hz": 0.008}},
             "contrasts": [{"name": "a_vs_b", "condition_list": ["trial_type.a", "trial_type.b"],
                            "weights": ["1", "-1"], "type": "T"}],
             "dummy_contrasts": {"conditions": ["trial_type.a"], "type": "t"}},
            {"level": "DATASET", "name": "group", "group_by": ["contrast"],
             "model": {"x": [1], "type": "glm"}, "dummy_contrasts": {"test": "t"}},
        ],
    }
    model = parse_model(document)
    run = model.nodes[0]
    assert run.x == ("trial_type.a", "trial_type.b", INTERCEPT)
    assert run.transformations[0].name == "Factor" and run.transformations[0].input == ("trial_type",)
    assert run.hrf.model == "spm + derivative" and run.high_pass == 0.008
    assert run.contrasts[0].test == "t" and run.contrasts[0].weights == (1.0, -1.0)
    assert run.dummy_contrasts.conditions == ("trial_type.a",)
    assert model.nodes[1].level == "dataset"
    assert any("read as 'Test'" in n for n in model.notes)
    assert any("BIDSModelVersion" in n for n in model.notes)


def test_string_fractions_and_f_contrasts():
    model = parse_model(example(Nodes__0__Contrasts=[
        {"Name": "a_vs_rest", "ConditionList": ["congruent", "incongruent", "nuisance1"],
         "Weights": [1, "-1/2", " -0.5 "], "Test": "t"},
        {"Name": "any", "ConditionList": ["congruent", "incongruent"], "Weights": [[1, 0], [0, "1"]], "Test": "f"},
    ]))
    a_vs_rest, any_effect = model.nodes[0].contrasts
    assert a_vs_rest.weights == (1.0, -0.5, -0.5)
    assert any_effect.test == "F" and any_effect.weights == ((1.0, 0.0), (0.0, 1.0))
    assert any_effect.matrix_rows == ((1.0, 0.0), (0.0, 1.0)) and a_vs_rest.matrix_rows == ((1.0, -0.5, -0.5),)
    third = parse_model(example(Nodes__0__Contrasts__0__Weights=["1/3", "-1/3"]))
    assert third.nodes[0].contrasts[0].weights == pytest.approx((1 / 3, -1 / 3))


@pytest.mark.parametrize(("changes", "message"), [
    ({"Nodes__0__Contrasts__0__Weights": [1, -1, 0]}, "contrast 'incongruent_vs_congruent' has 3 weights for 2 conditions"),
    ({"Nodes__0__Contrasts__0__Weights": [1, "__import__('os')"]}, "weights are numbers or fractions"),
    ({"Nodes__0__Contrasts__0__Weights": [1, "1/0"]}, "division by zero"),
    ({"Nodes__0__Contrasts__0__Weights": [[1, -1], [1, 1]]}, "only an F contrast can have several"),
    ({"Nodes__0__Contrasts__0__Test": "FEMA"}, "Test 'FEMA', a fixed-effects test across inputs, which applies to nodes above"),
    ({"Nodes__0__Contrasts__0__Test": "Z"}, "Test 'Z'; expected 't', 'F' or 'pass'"),
    ({"Nodes__0__Level": "Trial"}, "Node 'run' has Level 'Trial'"),
    ({"Nodes__1__Model__Type": "mixed"}, "Node 'subject' has Model.Type 'mixed'"),
    ({"Nodes__1__Name": "run"}, "two nodes named 'run'"),
    ({"Nodes__0__Model__X": ["congruent", 2]}, "Model.X has 2"),
    ({"Nodes__0__Model__HRF": {"Variables": ["congruent"], "Model": "afni"}}, "HRF model 'afni'"),
    ({"Nodes__0__Model__HRF": {"Variables": ["congruent"], "Model": "DoubleGamma", "Parameters": {"PeakDelay": 3}}},
     "Model.HRF.Parameters has 'PeakDelay'; the HRF models of this app \\(nilearn's\\) take only fir_delays"),
    ({"Nodes__0__Model__HRF": {"Variables": ["congruent"], "Model": "fir"}}, "needs Parameters.fir_delays"),
    # a delay of -1 or 1.5 was said to be missing
    ({"Nodes__0__Model__HRF": {"Variables": ["congruent"], "Model": "fir", "Parameters": {"fir_delays": [0, 1.5]}}},
     "Parameters.fir_delays is \\[0, 1.5\\]; give whole numbers of scans, 0 or more"),
    ({"Nodes__1__Model__HRF": {"Variables": ["congruent"], "Model": "spm"}}, "Node 'subject' is at subject level but has Model.HRF"),
    ({"Nodes__0__Model__Type": "meta"}, "meta model at Run level"),
    ({"Nodes__0__Contrastz": []}, "Node 1 of the model has an unknown key 'Contrastz'"),
    ({"Edges": [{"Source": "subject", "Destination": "run"}]}, "edge from node 'subject' \\(subject\\) down to node 'run'"),
    ({"Edges": [{"Source": "run", "Destination": "nowhere"}]}, "Destination 'nowhere' is not a node"),
    ({"BIDSModelVersion": "0.9"}, "BIDSModelVersion 0.9"),
    ({"Nodes__0__Transformations": {"Transformer": "bidspm", "Instructions": [{"Name": "Factor", "Input": "trial_type"}]}},
     "Node 'run' uses the transformer 'bidspm'; this app implements only pybids-transforms-v1"),
    ({"Nodes__0__Transformations": [{"Name": "Concatenate", "Input": ["a"]}]}, "transformation 'Concatenate'"),
    ({"Nodes__0__Transformations": [{"Name": "Threshold", "Input": ["a"], "Cutoff": 1}]}, "unknown argument 'cutoff'"),
    ({"Nodes__0__Transformations": [{"Name": "Filter", "Input": ["a"]}]}, "needs a Query"),
    ({"Nodes__0__Transformations": [{"Name": "Convolve", "Input": ["a"], "Model": "afni"}]}, "HRF model 'afni'"),
    # a node's maps are named after it: a job fitted every run, then stopped with "File name too long"
    ({"Nodes__1__Name": "fixedEffectsNode" * 14}, "has a Name too long to name its maps after"),
    # 200,000 rows: a 298 GiB allocation (exit 1) once the output's first files were written
    ({"Nodes__0__Contrasts__0__Test": "F", "Nodes__0__Contrasts__0__Weights": [[1, -1]] * 1001},
     "has 1001 rows of weights; an F contrast has at most 1000"),
    # nilearn's compute_contrast cannot invert it: "Processing failed: Singular matrix" (exit 1) while fitting
    ({"Nodes__0__Contrasts__0__Test": "F", "Nodes__0__Contrasts__0__Weights": [[1, -1], [-1, 1]]},
     "has 2 rows of weights that are linearly dependent \\(rank 1\\); an F contrast's rows must be independent"),
    # a Software of the wrong type was a Python error (exit 1)
    ({"Nodes__0__Model__Software": "nilearn"}, "Node 'run': Model.Software must be an object, one entry per software"),
    ({"Nodes__1__Model__Software": 5}, "Node 'subject': Model.Software must be an object"),
    ({"Nodes__0__Model__Software": {"nilearn": ["ar1"]}}, "Model.Software.nilearn must be an object of settings"),
    # a slip of a setting's name was a note, and the run was fitted with the default AR(1) model
    ({"Nodes__0__Model__Software": {"nilearn": {"noise_modle": "ols"}}},
     r"Node 'run': Model.Software.nilearn.noise_modle is no setting this app reads; did you mean noise_model\?"),
    ({"Nodes__1__Model__Software": {"nilearn": {"Precision_Weighted": True}}}, "did you mean precision_weighted"),
])
def test_bad_models_are_one_sentence(changes, message):
    with pytest.raises(ModelError, match=message) as caught:
        parse_model(example(**changes))
    assert "\n" not in str(caught.value)


def test_pre_1_0_steps_are_refused():
    with pytest.raises(ModelError, match="pre-1.0 'Steps' format"):
        parse_model({"Name": "old", "Steps": [{"Level": "run", "Model": {"X": ["a"]}}]})


def test_cycles_are_refused():
    document = example(Edges=[{"Source": "run", "Destination": "subject"},
                              {"Source": "subject", "Destination": "dataset"}])
    document["Nodes"].append({"Level": "Dataset", "Name": "second", "GroupBy": ["contrast"],
                              "Model": {"X": [1], "Type": "glm"}})
    document["Edges"] += [{"Source": "dataset", "Destination": "second"}, {"Source": "second", "Destination": "dataset"}]
    with pytest.raises(ModelError, match="cycle"):
        parse_model(document)


def test_f_contrasts_are_not_passed_on():
    f_contrast = {"Name": "any", "ConditionList": ["congruent", "incongruent"], "Weights": [[1, 0], [0, 1]], "Test": "F"}
    parse_model(example(Nodes__0__Contrasts=[f_contrast]))  # terminal: fine
    with pytest.raises(ModelError, match="uses 'any' of node 'run', an F contrast"):
        parse_model(example(Nodes__0__Contrasts=[f_contrast],
                            Edges=[{"Source": "run", "Destination": "subject", "Filter": {"contrast": ["any"]}},
                                   {"Source": "subject", "Destination": "dataset"}]))


def test_high_pass_above_run_level_is_noted():
    model = parse_model(example(Nodes__1__Model__Options={"HighPassFilterCutoffHz": 0.01}))
    assert any("has no effect at subject level" in n for n in model.notes)


def test_json_round_trip_of_a_full_model():
    document = example()
    run = document["Nodes"][0]
    run["Description"] = "runs"
    run["Transformations"] = {"Transformer": "pybids-transforms-v1", "Instructions": [
        {"Name": "Factor", "Input": ["trial_type"]},
        {"Name": "Scale", "Input": ["rt"], "Demean": True, "Rescale": False, "ReplaceNa": "after"},
        {"Name": "Replace", "Input": ["rt"], "Replace": {"Fast": 1}, "Attribute": "value"},
        {"Name": "Convolve", "Input": ["rt"], "Model": "glover", "Derivative": True},
    ]}
    run["Model"].update(HRF={"Variables": ["congruent"], "Model": "fir", "Parameters": {"fir_delays": [0, 1]}},
                        Options={"HighPassFilterCutoffHz": 0.008, "LowPassFilterCutoffHz": 0.1},
                        Software={"nilearn": {"noise_model": "ols"}})
    run["Contrasts"].append({"Name": "F", "ConditionList": ["congruent", 1], "Weights": [[1, 0], [0, "1/3"]], "Test": "F"})
    run["DummyContrasts"] = {"Contrasts": ["congruent", 1], "Test": "pass"}
    document["Edges"][1]["Filter"] = {"contrast": ["incongruent_vs_congruent"]}
    model = parse_model(document)
    text = model.to_json()
    again = Model.from_json(text)
    assert again == model
    assert json.loads(text)["Nodes"][0]["Model"]["Options"]["HighPassFilterCutoffHz"] == 0.008
    assert again.nodes[0].transformations[1].arguments == {"demean": True, "rescale": False, "replace_na": "after"}


def test_default_model_matches_the_command_line_defaults():
    model = default_model(["house", "face"], tasks=["faces"])
    run, subject, dataset = model.nodes
    assert run.x == ("face", "house") + MOTION + (INTERCEPT,)
    assert run.hrf.variables == ("face", "house") and run.hrf.model == "glover"
    assert run.high_pass == 0.01 and run.software["nilearn"]["noise_model"] == "ar1"
    assert run.dummy_contrasts.conditions == ("face", "house") and not run.contrasts
    assert [t.name for t in run.transformations] == ["Factor", "Rename"]
    assert run.transformations[1].output == ("face", "house")
    assert subject.model_type == "meta" and subject.x == (INTERCEPT,)
    assert dataset.model_type == "glm" and dataset.level == "dataset"
    assert model.input == {"task": ("faces",)}
    assert Model.from_json(model.to_json()) == model


@pytest.mark.parametrize("options", [
    {"hrf_model": "spm + derivative + dispersion"},
    {"hrf_model": "fir", "fir_delays": [0, 1, 2]},
    {"drift_model": "polynomial", "drift_order": 2},
    {"drift_model": "none"},
    {"group_model": "fixed", "precision_weighted": True},
    {"contrasts": {"face_vs_house": {"face": 1, "house": -1}}},
    {"modulation": True, "confounds": ["trans_*", "non_steady_state_outlier*"]},
])
def test_default_model_round_trips(options):
    """And follows the schema: the app does not check its own default model at run time."""
    model = default_model(["face", "house"], **options)
    _check_schema(model, "the default model")
    assert Model.from_json(model.to_json()) == model


def test_default_model_refusals():
    with pytest.raises(ModelError, match="at least one trial_type"):
        default_model([])
    with pytest.raises(ModelError, match="--drift-model 'spline'"):
        default_model(["a"], drift_model="spline")


def test_a_variable_listed_twice_in_x_is_said():
    """Model.X listing "audio" twice was read without a word (from a web form's model)."""
    model = parse_model({"Name": "m", "BIDSModelVersion": "1.0.0", "Nodes": [{
        "Level": "Run", "Name": "run", "GroupBy": ["run", "subject"], "Model": {"X": ["audio", 1, "audio", "visual", 1]},
        "DummyContrasts": {"Test": "t"}}]})
    assert [n for n in model.notes if "more than once" in n] == [
        "Node 'run': Model.X lists 'audio', 1 more than once; the design has one column of each, so remove the repeats"]


def test_a_template_style_model_is_read_with_notes():
    """bidspm templates leave blanks, pybids writes FEMA and DoubleGamma and may omit GroupBy:
    read, each with a note; the same model written out reads back equal."""
    model = load_model(MODELS / "model-wordsTemplate_smdl.json")
    run, subject, dataset = model.nodes
    assert run.x == ("trial_type.word", "trial_type.pseudoword", "trial_type.neverShown", INTERCEPT,
                     "trans_?", "rot_*", "*outlier*")
    assert run.transformations == () and [c.name for c in run.contrasts] == ["wordGtPseudo", "neverShownGtWord"]
    assert run.hrf.model == "spm" and run.description.startswith("Each run")
    assert run.contrasts[0].weights == (1.0, -1.0)
    assert subject.model_type == "meta" and subject.group_by == ("subject", "contrast")
    assert subject.dummy_contrasts.test == "t" and dataset.x == (INTERCEPT,)
    assert model.input == {"task": ("rhymes",), "space": ("MNI152NLin2009cAsym",), "acquisition": ("",)}
    notes = "\n".join(model.notes)
    for expected in ("empty entries", "'DoubleGamma' read as 'spm'", "blank transformation", "blank contrast",
                     "has no GroupBy; read as ['subject', 'contrast']", "read as a meta (fixed effects) node"):
        assert expected in notes
    assert Model.from_json(model.to_json()) == model


def test_numbers_as_contrast_names_and_a_missing_name():
    document = example()
    del document["Name"]
    document["Nodes"][1]["Contrasts"] = [{"Name": 1, "ConditionList": [1], "Weights": [1], "Test": "FEMA"}]
    model = parse_model(document, "Model file model-mine_smdl.json", default_name="model-mine")
    assert model.name == "model-mine" and model.nodes[1].contrasts[0].name == "1"
    assert model.nodes[1].contrasts[0].test == "t" and model.nodes[1].model_type == "meta"
    assert any("named 'model-mine' after its file" in n for n in model.notes)
    with pytest.raises(ModelError, match="has no Name"):
        parse_model({k: v for k, v in EXAMPLE.items() if k != "Name"})


def test_a_node_without_a_name_is_named_after_its_level():
    """The README reads a missing Name with a note; a node's was refused."""
    document = example()
    del document["Nodes"][1]["Name"]
    document.pop("Edges", None)
    model = parse_model(document)
    assert [node.name for node in model.nodes][1] == "subject"
    assert any("Node 2 of" in n and "has no Name; named 'subject' after its level" in n for n in model.notes)
    document["Nodes"][1]["Name"] = ""
    with pytest.raises(ModelError, match="has a Name that is not a word"):
        parse_model(document)


@pytest.mark.parametrize(("change", "said"), [
    ({"Name": 12}, "Name must be text, not 12"),
    ({"Name": "x" * 300}, "Name is too long for the file name"),
    ({"Nodes": {"a": 1}}, "Nodes must be a list of nodes, not dict"),
])
def test_a_name_or_nodes_of_the_wrong_kind_are_named(change, said):
    with pytest.raises(ModelError, match=said) as caught:
        parse_model({**EXAMPLE, **change}, "Model file m_smdl.json")
    assert caught.value.exit_code == 64


def test_a_high_pass_above_any_bold_series_frequency_is_refused():
    document = example()
    document["Nodes"][0]["Model"]["Options"] = {"HighPassFilterCutoffHz": 1e300}  # overflowed nilearn's drifts
    with pytest.raises(ModelError, match="HighPassFilterCutoffHz 1e\\+300, above the highest frequency"):
        parse_model(document)


def test_a_node_of_more_contrasts_than_allowed_is_refused():
    """Tens of thousands of contrasts wrote five maps a run each, until the disk was full."""
    document = example()
    one = {"Name": "c", "ConditionList": ["congruent"], "Weights": [1], "Test": "t"}
    document["Nodes"][0]["Contrasts"] = [{**one, "Name": f"c{i}"} for i in range(MAX_CONTRASTS)]
    assert len(parse_model(document).nodes[0].contrasts) == MAX_CONTRASTS
    document["Nodes"][0]["Contrasts"].append(one)
    with pytest.raises(ModelError, match=f"has {MAX_CONTRASTS + 1} contrasts; a node may have at most") as caught:
        parse_model(document)
    assert caught.value.exit_code == 64


def test_options_and_software_keys_the_app_does_not_apply_are_noted():
    """LowPassFilterCutoffHz, Aggregate and Software.nilearn.minimize_memory gave the maps
    without them, without a word (smoothing_fwhm is read: the default model states it)."""
    document = example()
    document["Nodes"][0]["Model"]["Options"] = {"LowPassFilterCutoffHz": 0.1, "Aggregate": "mean"}
    document["Nodes"][0]["Model"]["Software"] = {"nilearn": {"minimize_memory": False, "noise_model": "ols",
                                                             "smoothing_fwhm": 0}}
    notes = parse_model(document).notes
    assert any("Model.Options.LowPassFilterCutoffHz is not applied" in n for n in notes), notes
    assert any("Model.Options.Aggregate is not applied" in n for n in notes), notes
    assert any("Model.Software.nilearn.minimize_memory is not read" in n for n in notes), notes
    document["Nodes"][0]["Model"]["Software"] = {"nilearn": {"hrf_model": "spm"}}  # nilearn's, near drift_model
    assert any("Model.Software.nilearn.hrf_model is not read" in n for n in parse_model(document).notes)
    assert not any("noise_model is not read" in n or "smoothing_fwhm is not read" in n for n in notes)
    document["Nodes"][0]["Model"]["Software"] = {"bids-fixedfx": {"Threshold": "fdr"}}
    assert any("Model.Software.bids-fixedfx is not read in a run node" in n for n in parse_model(document).notes)


def test_a_single_node_is_not_a_model():
    with pytest.raises(ModelError, match="is a single node \\(it has a Level\\)"):
        parse_model(EXAMPLE["Nodes"][0], "Model file model-node_smdl.json")


def test_hrf_variables_outside_x_are_noted():
    model = parse_model(example(Nodes__0__Model__HRF={"Variables": ["congruent", "other"], "Model": "spm"}))
    assert model.nodes[0].hrf.variables == ("congruent", "other")
    assert any("Model.HRF names 'other', not in Model.X, so not in the design" in n for n in model.notes)


def test_a_key_given_twice_in_one_object_is_refused():
    """Was silent: Python's json keeps the last of two Contrasts of a node."""
    node = ('{"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"], "Model": {"Type": "glm", "X": [1]}, '
            '"Contrasts": [], "Contrasts": []}')
    text = f'{{"Name": "m", "BIDSModelVersion": "1.0.0", "Nodes": [{node}]}}'
    with pytest.raises(ModelError, match="model.json has the key 'Contrasts' twice"):
        Model.from_json(text, "model.json")
    assert Model.from_json(text.replace(', "Contrasts": []}', "}"), "model.json").nodes[0].name == "run"


def test_groupings_and_keys_the_app_reads_otherwise_or_does_not_apply_are_noted():
    """Each variant wrote the maps of the plain model without a word."""
    assert not [n for n in parse_model(example()).notes if "groups by" in n or "not applied" in n or "no 1" in n]
    variants = [
        ({"1__GroupBy": ["contrast"]}, "Node 'subject' groups by ['contrast'] without 'subject'"),
        ({"1__GroupBy": ["subject"]}, "Node 'subject' groups by ['subject'] without 'contrast'"),
        ({"0__GroupBy": ["subject"]}, "Node 'run' groups by ['subject'] without 'run'"),
        ({"0__Model__X": ["congruent", "incongruent"]}, "Node 'run': Model.X has no 1, but the run's design keeps"),
        ({"1__Transformations": {"Transformer": "pybids-transforms-v1",
                                 "Instructions": [{"Name": "Scale", "Input": ["congruent"]}]}},
         "Node 'subject': Transformations are not applied in a subject node"),
        ({"1__Model__ErrorDistribution": {"Family": "Binomial", "Link": "Logit"}},
         "Model.ErrorDistribution Binomial/Logit is not applied"),
        ({"2__Model__VarianceComponents": [{"LevelName": "subject", "Groupings": ["subject"]}]},
         "Node 'dataset': Model.VarianceComponents is not applied"),
    ]
    for change, said in variants:
        document = example()
        for path, value in change.items():
            index, *keys = path.split("__")
            target = document["Nodes"][int(index)]
            for key in keys[:-1]:
                target = target[key]
            target[keys[-1]] = value
        assert any(said in n for n in parse_model(document).notes), (change, parse_model(document).notes)
    gaussian = example()
    gaussian["Nodes"][2]["Model"]["ErrorDistribution"] = {"Family": "Gaussian", "Link": "Identity"}
    assert not [n for n in parse_model(gaussian).notes if "ErrorDistribution" in n]


def test_names_without_a_letter_of_a_label_and_too_many_nodes_are_refused():
    """Names of no A-Z or 0-9 were exit 1 ('has no letters or digits to make a BIDS label of');
    a model of 1,000 nodes wrote 44,147 files."""
    for document, said in ((example(Name="日本"), "its Name has no letters or digits"),
                           (example(**{"Nodes__1__Name": "..."}), "node '...' has no letters or digits")):
        if "Edges" in document and said.startswith("node"):
            document["Edges"] = [{"Source": "run", "Destination": "..."}, {"Source": "...", "Destination": "dataset"}]
        with pytest.raises(ModelError, match=said):
            parse_model(document, "model.json")
    many = example()
    many["Nodes"] = many["Nodes"][:1] * 101
    many.pop("Edges")
    with pytest.raises(ModelError, match="has 101 nodes; a model may have at most 100"):
        parse_model(many, "model.json")


def test_a_condition_named_twice_in_a_contrast_is_refused():
    """["word", "word"] with [1, 1] was read as a weight of 2 on word, without a word."""
    document = copy.deepcopy(EXAMPLE)
    run = document["Nodes"][0]
    run["Contrasts"] = [{"Name": "twice", "ConditionList": ["congruent", "congruent"], "Weights": [1, 1], "Test": "t"}]
    with pytest.raises(ModelError, match="contrast 'twice' names 'congruent' twice in its ConditionList"):
        parse_model(document)
