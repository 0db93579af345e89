"""Model graphs beyond run -> subject -> dataset: session nodes, several nodes at one level,
edges with a Filter, GroupBy on participants.tsv and sessions.tsv columns, paired designs;
every map equal to a plain nilearn computation, and the errors one sentence naming the node."""

from __future__ import annotations

import json
import logging
import logging.handlers
import shutil
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_fixedfx import naming
from bids_fixedfx.cli import main
from bids_fixedfx.example_data import make_example_dataset
from bids_fixedfx.model import ModelError, parse_model
from bids_fixedfx.plan.graph import check_graph, dataset_steps, participant_steps
from tools import fails

SPACE = "MNI152NLin2009cAsym"
TASK = "checkerboard"
QUICK = ["--skip-bids-validation", "--no-reports"]
RUN = {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
       "Transformations": {"Transformer": "pybids-transforms-v1",
                           "Instructions": [{"Name": "Factor", "Input": ["trial_type"]},
                                            {"Name": "Rename", "Input": ["trial_type.audio", "trial_type.visual"],
                                             "Output": ["audio", "visual"]}]},
       "Model": {"Type": "glm", "X": ["audio", "visual", "trans_*", "rot_*", 1],
                 "HRF": {"Variables": ["audio", "visual"], "Model": "glover"},
                 "Options": {"HighPassFilterCutoffHz": 0.01}},
       "Contrasts": [{"Name": "anyTask", "ConditionList": ["audio", "visual"], "Weights": [[1, 0], [0, 1]],
                      "Test": "F"}],
       "DummyContrasts": {"Contrasts": ["audio", "visual"], "Test": "t"}}


def node(level, name, model_type="meta", group_by=None, **more):
    group_by = group_by or {"Session": ["subject", "session", "contrast"], "Subject": ["subject", "contrast"],
                            "Dataset": ["contrast"]}[level]
    return {"Level": level, "Name": name, "GroupBy": group_by, "Model": {"Type": model_type, "X": [1]},
            "DummyContrasts": {"Test": "t"}, **more}


def document(name, nodes, edges=None):
    doc = {"Name": name, "BIDSModelVersion": "1.0.0", "Nodes": nodes}
    if edges is not None:
        doc["Edges"] = [dict(zip(("Source", "Destination", "Filter"), e)) for e in edges]
    return doc


def write_model(folder, doc):
    path = folder / f"model-{doc['Name']}_smdl.json"
    path.write_text(json.dumps(doc))
    return path


PAIRED = {"Level": "Dataset", "Name": "paired", "GroupBy": ["contrast"],
          "Transformations": {"Transformer": "pybids-transforms-v1",
                              "Instructions": [{"Name": "Factor", "Input": ["subject"]}]},
          "Model": {"Type": "glm", "X": ["session.2", "subject.*"]},
          "Contrasts": [{"Name": "secondMinusFirst", "ConditionList": ["session.2"], "Weights": [1], "Test": "t"}]}
#: run -> session (meta) -> subject (meta); four dataset nodes: one-sample over subjects,
#: paired over sessions, one-sample per group of participants.tsv and per visit of sessions.tsv.
CONDITIONS = {**PAIRED, "Name": "conditions", "GroupBy": [], "Model": {"Type": "glm", "X": ["audio", "subject.*"]},
              "Contrasts": [{"Name": "audioMinusVisual", "ConditionList": ["audio"], "Weights": [1], "Test": "t"}]}
SESSIONS = document("sessions", [
    RUN, node("Session", "session"), node("Subject", "subject"), node("Dataset", "oneSample", "glm"),
    PAIRED, node("Dataset", "perGroup", "glm", group_by=["contrast", "group"]),
    node("Dataset", "perVisit", "glm", group_by=["contrast", "visit"]), CONDITIONS,
], [("run", "session"), ("session", "subject"), ("subject", "oneSample"), ("session", "paired"),
    ("subject", "perGroup"), ("session", "perVisit"), ("subject", "conditions", {"contrast": ["audio", "visual"]})])
#: run -> two subject nodes (fixed effects; OLS of audio only), a dataset node over the OLS maps.
TWO_SUBJECTS = document("twoSubjects", [
    RUN, node("Subject", "fixed"), node("Subject", "ols", "glm"), node("Dataset", "overOls", "glm"),
], [("run", "fixed"), ("run", "ols", {"contrast": ["audio"]}), ("ols", "overOls")])


# ---------------------------------------------------------------------------------------------
# the graph, without data


def test_steps_and_the_naming_rule():
    model = parse_model(SESSIONS)
    check_graph(model, "m")
    steps = participant_steps(model)
    assert [(s.node.name, s.source, s.desc) for s in steps] == [("session", "run", None), ("subject", "session", None)]
    datasets = dataset_steps(model)
    assert [(s.node.name, s.source_level, s.desc) for s in datasets] == [
        ("oneSample", "subject", "oneSample"), ("paired", "session", "paired"), ("perGroup", "subject", "perGroup"),
        ("perVisit", "session", "perVisit"), ("conditions", "subject", "conditions")]
    two = parse_model(TWO_SUBJECTS)
    check_graph(two, "m")
    fixed, ols = participant_steps(two)
    assert (fixed.desc, ols.desc, ols.filter) == ("fixed", "ols", {"contrast": ("audio",)})
    assert ols.passes(contrast="audio") and not ols.passes(contrast="visual")
    runs = participant_steps(parse_model(document("m", [RUN, node("Subject", "s")], [("run", "s", {"run": [1]})])))[0]
    assert runs.passes(run="01") and not runs.passes(run="02") and not runs.passes(run=None)
    assert dataset_steps(two)[0].source_desc == "ols" and dataset_steps(two)[0].desc is None


def test_a_model_without_a_subject_node_keeps_its_subject_maps():
    model = parse_model(document("m", [RUN, node("Dataset", "dataset", "glm")]))
    (step,) = participant_steps(model)
    assert (step.node.name, step.node.model_type, step.source) == ("subject", "meta", "run")
    assert dataset_steps(model)[0].source_level == "subject"


def test_desc_names_node_and_group_apart():
    assert naming.statmap_desc() is None and naming.statmap_desc("fixed") == "fixedfx"
    assert naming.statmap_desc("fixed", "fdr", parts=("perGroup", "groupPatient")) == "fixedfxPerGroupGroupPatientFdr"
    assert naming.statmap_desc("random", "fdr", "paired", ("groupPatient",)) == "pairedGroupPatientFdr"
    assert naming.group_model_of({"desc": "oneSampleGroupPatientFdr"}) == "oneSampleGroupPatient"


@pytest.mark.parametrize(("doc", "named"), [
    (document("m", [RUN, node("Subject", "a"), node("Subject", "b")], [("run", "a"), ("run", "b"), ("a", "b")]),
     "'b' of m is fed by 2 edges"),
    (document("m", [RUN, node("Subject", "s"), node("Session", "ses")], [("run", "s"), ("s", "ses")]),
     "down to node 'ses'"),
    (document("m", [RUN, node("Subject", "s", group_by=["subject", "contrast", "handedness"])]), "'handedness'"),
    (document("m", [RUN, node("Session", "ses", group_by=["subject", "contrast"])]), "'session'"),
    (document("m", [RUN, node("Subject", "s")], [("run", "s", {"handedness": ["left"]})]), "'handedness'"),
    (document("m", [RUN, node("Subject", "s")], [("run", "s", {"contrast": ["anyTask"]})]), "'anyTask'"),
    (document("m", [RUN, {**RUN, "Name": "run2"}]), "2 run-level nodes"),
    (document("m", [RUN, node("Session", "ses"), {**node("Subject", "s", "glm"), "Model": {"Type": "glm", "X": ["session", 1]}}],
              [("run", "ses"), ("ses", "s")]), "Node 's' of m has Model.X .'session', 1."),
    (document("m", [RUN, {**node("Subject", "s", "glm"), "Contrasts": [
        {"Name": "audioGtVisual", "ConditionList": ["audio", "visual"], "Weights": [1, -1], "Test": "t"}]}]),
     "states the contrast 'audioGtVisual'"),
    (document("m", [RUN, {**node("Subject", "s"), "DummyContrasts": {"Test": "F"}}]), "DummyContrasts with Test 'F'"),
    (document("m", [RUN, node("Session", "ses"), {**node("Subject", "s"), "DummyContrasts": {"Test": "f"}}],
              [("run", "ses"), ("ses", "s")]), "Node 's' of m has DummyContrasts with Test 'F'"),
    (document("m", [RUN, node("Subject", "one sample"), node("Subject", "one_sample")],
              [("run", "one sample"), ("run", "one_sample")]), "desc-oneSample"),
    # fixedfxOlsX both: the second part of a desc is capitalised (the job failed once every run was fitted)
    (document("m", [RUN, node("Subject", "olsX"), node("Subject", "OlsX")], [("run", "olsX"), ("run", "OlsX")]),
     "Nodes 'olsX' and 'OlsX' of m would name their maps alike (desc-olsX and desc-OlsX differ only in case"),
    (document("m", [RUN, node("Subject", "s"), node("Dataset", "oneSample", "glm"), node("Dataset", "ONESAMPLE", "glm")],
              [("run", "s"), ("s", "oneSample"), ("s", "ONESAMPLE")]), "desc-oneSample and desc-ONESAMPLE"),
    # a fixed-effects dataset node of an age slope: its X and contrast were dropped, its maps the plain mean's
    (document("m", [RUN, node("Subject", "s"), {**node("Dataset", "d"), "Model": {"Type": "meta", "X": [1, "age"]}}],
              [("run", "s"), ("s", "d")]), "Node 'd' of m is a meta"),
])
def test_graphs_this_app_does_not_run_are_named(doc, named):
    with pytest.raises(ModelError, match=named.replace("(", r"\(")):
        check_graph(parse_model(doc, "m"), "m")


def test_a_subject_contrast_that_passes_one_incoming_contrast_on_is_run():
    for test in ("t", "pass"):  # Test "pass": the older walkthrough of the BIDS Stats Models documentation
        check_graph(parse_model(document("m", [RUN, {**node("Subject", "s", "glm"), "Contrasts": [
            {"Name": "audio", "ConditionList": ["audio"], "Weights": [1], "Test": test}]}]), "m"), "m")
    with pytest.raises(ModelError, match="states the contrast 'audioMean'"):  # renamed: a contrast of its own
        check_graph(parse_model(document("m", [RUN, {**node("Subject", "s", "glm"), "Contrasts": [
            {"Name": "audioMean", "ConditionList": ["audio"], "Weights": [1], "Test": "t"}]}]), "m"), "m")


def test_the_contrasts_a_subject_node_names_are_those_it_passes_on():
    """``DummyContrasts.Contrasts`` (and pass-through ``Contrasts``) of a subject node narrow
    what passes on, as an edge's Filter does; without a list every incoming contrast passes."""
    listed = {**node("Subject", "s"), "DummyContrasts": {"Test": "t", "Contrasts": ["audio"]}}
    (step,) = participant_steps(parse_model(document("m", [RUN, listed])))
    assert step.passes(contrast="audio") and not step.passes(contrast="visual")
    passed = {**node("Subject", "s"), "Contrasts": [{"Name": "visual", "ConditionList": ["visual"], "Weights": [1]}]}
    (step,) = participant_steps(parse_model(document("m", [RUN, passed])))
    assert step.passes(contrast="visual") and not step.passes(contrast="audio")
    both = document("m", [RUN, listed], [("run", "s", {"contrast": ["audio", "visual"]})])
    (step,) = participant_steps(parse_model(both))
    assert step.filter["contrast"] == ("audio",)
    (step,) = participant_steps(parse_model(document("m", [RUN, node("Subject", "s")])))
    assert step.passes(contrast="audio") and step.passes(contrast="visual")


def test_a_filter_that_lets_nothing_through_is_refused_before_writing(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("01",))
    model = write_model(tmp_path, document("m", [RUN, node("Subject", "s")], [("run", "s", {"contrast": ["faces"]})]))
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", model], 64, "Node 's'", "faces")


def test_an_f_contrast_passed_on_is_refused(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("01",))
    model = write_model(tmp_path, document("m", [RUN, node("Subject", "s")], [("run", "s", {"contrast": ["anyTask"]})]))
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", model], 64, "'anyTask'", "F contrast")


def test_a_node_passing_one_run_on_writes_its_five_maps(fresh_dataset, tmp_path):
    """A session whose edge lets one run through: the session's maps are that run's own, all
    five of them (the run's t, z and p were once dropped before they reached the node)."""
    dataset = fresh_dataset(subjects=("01",))
    model = write_model(tmp_path, document("m", [RUN, node("Session", "session"), node("Subject", "subject")],
                                           [("run", "session", {"run": [1]}), ("session", "subject")]))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK, "-m", str(model)]) == 0
    for session in ("1", "2"):
        (run,) = [p for p in run_maps(out, "01", session) if "_run-01_" in p.name]
        for stat in naming.STATS:
            ours = session_map(out, "01", session, stat)
            assert ours.exists(), ours.name
            close(load(ours), load(str(run).replace("stat-effect", f"stat-{stat}")), f"ses-{session} {stat}")
    assert all(subject_map(out, "01", stat).exists() for stat in naming.STATS)


# ---------------------------------------------------------------------------------------------
# the app on the example dataset, against nilearn


def close(ours, theirs, what):
    theirs = np.asarray(theirs, dtype=float)
    np.testing.assert_allclose(np.asarray(ours, dtype=float), theirs, rtol=1e-4,
                               atol=1e-5 * np.nanmax(np.abs(theirs)), err_msg=what)


def load(path):
    return nib.load(str(path)).get_fdata()


def sidecar(path):
    return json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())


@pytest.fixture(scope="module")
def sessions_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessions") / "bids"
    dataset = make_example_dataset(root, n_subjects=5, n_sessions=2, n_runs=2, shape=(16, 18, 14), n_volumes=60)
    for subject in dataset.subjects:
        pd.DataFrame({"session_id": ["ses-1", "ses-2"], "visit": ["baseline", "followup"]}).to_csv(
            root / f"sub-{subject}" / f"sub-{subject}_sessions.tsv", sep="\t", index=False)
    return dataset


@pytest.fixture(scope="module")
def sessions_out(sessions_dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sessions_out")
    model = write_model(folder, SESSIONS)
    out = folder / "out"
    assert main([str(sessions_dataset.path), str(out), "participant", *QUICK, "-m", str(model)]) == 0
    logger, kept = logging.getLogger("bids_fixedfx"), logging.handlers.BufferingHandler(10_000)
    logger.addHandler(kept)
    try:
        assert main([str(sessions_dataset.path), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    finally:
        logger.removeHandler(kept)
    (folder / "group.log").write_text("\n".join(record.getMessage() for record in kept.buffer))
    return out


def run_maps(out, subject, session, contrast="audio"):
    folder = out / f"sub-{subject}" / f"ses-{session}" / "func"
    return sorted(folder.glob(f"sub-{subject}_ses-{session}_task-{TASK}_run-*_space-{SPACE}_contrast-{contrast}"
                              "_stat-effect_statmap.nii.gz"))


def session_map(out, subject, session, stat, contrast="audio"):
    return out / naming.build("session_statmap", subject=subject, session=session, task=TASK, space=SPACE,
                              contrast=contrast, stat=stat, extension=".nii.gz")


def subject_map(out, subject, stat, contrast="audio", desc=None):
    return out / naming.build("subject_statmap", subject=subject, task=TASK, space=SPACE, contrast=contrast,
                              stat=stat, desc=desc, extension=".nii.gz")


def mask_of(run_effect, dataset):
    """The derivatives' brain mask of the run whose effect map this is."""
    entities = naming.parse(run_effect.relative_to(run_effect.parents[3]))
    return next((dataset.path / "derivatives" / "fmriprep").rglob(
        f"sub-{entities['subject']}_ses-{entities['session']}_task-{TASK}_run-{entities['run']}_space-{SPACE}"
        "_desc-brain_mask.nii.gz"))


def nilearn_fixed_effects(effects, masks, dofs):
    from nilearn.glm import compute_fixed_effects
    from nilearn.masking import intersect_masks

    mask = intersect_masks([str(m) for m in masks], threshold=1, connected=False)
    variances = [str(e).replace("stat-effect", "stat-variance") for e in effects]
    return compute_fixed_effects([str(e) for e in effects], variances, mask, dofs=dofs)


@pytest.mark.slow
def test_session_maps_are_fixed_effects_over_the_session_runs(sessions_dataset, sessions_out):
    runs = run_maps(sessions_out, "01", "1")
    assert len(runs) == 2
    dofs = [sidecar(r)["DegreesOfFreedom"] for r in runs]
    expected = nilearn_fixed_effects(runs, [mask_of(r, sessions_dataset) for r in runs], dofs)
    for stat, theirs in zip(("effect", "variance", "t", "z"), expected):
        close(load(session_map(sessions_out, "01", "1", stat)), theirs.get_fdata(), f"session {stat}")
    info = sidecar(session_map(sessions_out, "01", "1", "t"))
    assert (info["Node"], info["Level"], info["DegreesOfFreedom"]) == ("session", "Session", sum(dofs))
    assert info["FixedEffects"]["NumberOfRuns"] == 2
    assert [s.split("/")[-1] for s in info["Sources"][:2]] == [
        runs[0].name, runs[0].name.replace("stat-effect", "stat-variance")]
    # a session with one run: its maps are the run's
    (single,) = run_maps(sessions_out, "05", "1")
    close(load(session_map(sessions_out, "05", "1", "t")), load(str(single).replace("effect", "t")), "one run")
    assert not session_map(sessions_out, "05", "2", "t").exists()


@pytest.mark.slow
def test_subject_maps_are_fixed_effects_over_the_session_maps(sessions_dataset, sessions_out):
    sessions = [session_map(sessions_out, "02", s, "effect") for s in ("1", "2")]
    dofs = [sidecar(s)["DegreesOfFreedom"] for s in sessions]
    masks = [mask_of(r, sessions_dataset) for s in ("1", "2") for r in run_maps(sessions_out, "02", s)]
    expected = nilearn_fixed_effects(sessions, masks, dofs)
    for stat, theirs in zip(("effect", "variance", "t", "z"), expected):
        close(load(subject_map(sessions_out, "02", stat)), theirs.get_fdata(), f"subject {stat}")
    info = sidecar(subject_map(sessions_out, "02", "z"))
    assert (info["Node"], info["Level"]) == ("subject", "Subject")
    assert info["FixedEffects"] == {"PrecisionWeighted": False, "NumberOfRuns": 4, "NumberOfSessions": 2}
    assert any("/ses-2/func/sub-02_ses-2_task-" in s for s in info["Sources"])
    # the known effect is recovered: audio is active somewhere, strongly
    assert np.nanmax(load(subject_map(sessions_out, "02", "z"))) > 5


def group_map(out, contrast, stat, desc):
    return out / naming.build("group_statmap", task=TASK, space=SPACE, contrast=contrast, stat=stat, desc=desc,
                              extension=".nii.gz")


def second_level(effects, masks, design, contrast):
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.masking import intersect_masks

    mask = intersect_masks([str(m) for m in masks], threshold=1, connected=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SecondLevelModel(mask_img=mask).fit([str(e) for e in effects], design_matrix=design)
        return model.compute_contrast(contrast, output_type="all")


@pytest.mark.slow
def test_the_group_report_shows_a_test_across_contrasts(sessions_dataset, sessions_out, tmp_path):
    """The group report of a dataset node over two contrasts of each subject (``conditions``:
    GroupBy [], an edge Filter on audio and visual) looked for the subjects' z maps of the
    joined label and failed (exit 1, no group.html); it tiles each input's own z map."""
    out = tmp_path / "out"
    shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models"))
    model = write_model(tmp_path, document("across", [RUN, node("Subject", "subject"), CONDITIONS],
                                           [("run", "subject"), ("subject", "conditions", {"contrast": ["audio", "visual"]})]))
    assert main([str(sessions_dataset.path), str(out), "group", "-m", str(model)]) == 0
    page = (out / "group.html").read_text()
    assert "audioMinusVisual" in page
    tiles = sorted((out / "group" / "figures").glob("*contrast-audioMinusVisual*desc-subjects*.png"))
    assert tiles, "each subject's z maps of the two contrasts are tiled"


def test_paired_design_over_sessions_equals_second_level_model(sessions_out):
    from nilearn.glm.second_level import make_second_level_design_matrix

    rows = [(s, ses) for s in ("01", "02", "03", "04", "05") for ses in ("1", "2")
            if session_map(sessions_out, s, ses, "effect").exists()]
    assert len(rows) == 9  # the last subject has one run, in session 1
    labels = [f"sub-{s}_ses-{ses}" for s, ses in rows]
    confounds = pd.DataFrame({"subject_label": labels, "session2": [float(ses == "2") for _, ses in rows]})
    for other in ("02", "03", "04", "05"):  # subject factor; nilearn adds the intercept
        confounds[f"sub{other}"] = [float(s == other) for s, _ in rows]
    design = make_second_level_design_matrix(labels, confounds)
    effects = [session_map(sessions_out, s, ses, "effect") for s, ses in rows]
    masks = [str(e).replace(f"_space-{SPACE}_contrast-audio_stat-effect_statmap", f"_space-{SPACE}_desc-fixedfx_mask")
             for e in effects]
    theirs = second_level(effects, masks, design, "session2")
    for stat, name in (("effect", "effect_size"), ("t", "stat"), ("z", "z_score")):
        close(load(group_map(sessions_out, "audioSecondMinusFirst", stat, "paired")), theirs[name].get_fdata(),
              f"paired {stat}")
    info = sidecar(group_map(sessions_out, "audioSecondMinusFirst", "t", "paired"))
    assert (info["Node"], info["DegreesOfFreedom"], info["NumberOfSubjects"]) == ("paired", 9 - 6, 5)
    assert info["Sessions"] == [ses for _, ses in rows]
    assert info["DesignMatrix"]["Columns"][0] == "session.2" and info["DesignMatrix"]["Rows"][0] == "sub-01_ses-1"
    methods = (sessions_out / "logs" / "CITATION.md").read_text()
    assert "the node `paired`, over the session maps (one per subject and session), one test per value of `contrast`" in methods
    assert "the node `perGroup`, over the subject maps (one per subject), one test per value of `contrast` and `group`" in methods


@pytest.mark.slow
def test_paired_design_over_two_incoming_contrasts_equals_second_level_model(sessions_out):
    from nilearn.glm.second_level import make_second_level_design_matrix

    subjects = ("01", "02", "03", "04", "05")
    rows = [(s, c) for s in subjects for c in ("audio", "visual")]
    labels = [f"sub-{s}_{c}" for s, c in rows]
    confounds = pd.DataFrame({"subject_label": labels, "audio": [float(c == "audio") for _, c in rows]})
    for other in subjects[1:]:
        confounds[f"sub{other}"] = [float(s == other) for s, _ in rows]
    design = make_second_level_design_matrix(labels, confounds)
    effects = [subject_map(sessions_out, s, "effect", c) for s, c in rows]
    masks = [sessions_out / naming.build("subject_mask", subject=s, task=TASK, space=SPACE, extension=".nii.gz")
             for s, _ in rows]
    theirs = second_level(effects, masks, design, "audio")
    for stat, name in (("effect", "effect_size"), ("t", "stat"), ("z", "z_score")):
        close(load(group_map(sessions_out, "audioMinusVisual", stat, "conditions")), theirs[name].get_fdata(),
              f"conditions {stat}")
    info = sidecar(group_map(sessions_out, "audioMinusVisual", "t", "conditions"))
    assert info["DegreesOfFreedom"] == 10 - 6 and info["DesignMatrix"]["Columns"][0] == "audio"
    assert info["DesignMatrix"]["Rows"][:2] == ["sub-01_contrast-audio", "sub-01_contrast-visual"]


@pytest.mark.slow
def test_group_by_a_participants_column_runs_one_test_per_group(sessions_dataset, sessions_out):
    participants = pd.read_csv(sessions_dataset.path / "participants.tsv", sep="\t")
    for group in ("patient", "control"):
        subjects = [p.removeprefix("sub-") for p in participants.loc[participants["group"] == group, "participant_id"]]
        effects = [subject_map(sessions_out, s, "effect") for s in subjects]
        masks = [sessions_out / naming.build("subject_mask", subject=s, task=TASK, space=SPACE, extension=".nii.gz")
                 for s in subjects]
        design = pd.DataFrame({"intercept": np.ones(len(subjects))})
        theirs = second_level(effects, masks, design, "intercept")
        desc = f"perGroupGroup{group.capitalize()}"
        for stat, name in (("effect", "effect_size"), ("t", "stat"), ("z", "z_score")):
            close(load(group_map(sessions_out, "audio", stat, desc)), theirs[name].get_fdata(), f"{group} {stat}")
        assert sidecar(group_map(sessions_out, "audio", "t", desc))["Subjects"] == subjects
    # per visit (sessions.tsv): the session maps of the baseline visit
    effects = [session_map(sessions_out, s, "1", "effect") for s in ("01", "02", "03", "04", "05")]
    masks = [str(e).replace(f"_space-{SPACE}_contrast-audio_stat-effect_statmap", f"_space-{SPACE}_desc-fixedfx_mask")
             for e in effects]
    theirs = second_level(effects, masks, pd.DataFrame({"intercept": np.ones(5)}), "intercept")
    close(load(group_map(sessions_out, "audio", "t", "perVisitVisitBaseline")), theirs["stat"].get_fdata(), "baseline")
    assert sidecar(group_map(sessions_out, "audio", "t", "perVisitVisitFollowup"))["NumberOfSubjects"] == 4
    # the one-sample node over all subjects, named apart
    info = sidecar(group_map(sessions_out, "audio", "t", "oneSample"))
    assert info["NumberOfSubjects"] == 5 and info["Node"] == "oneSample"
    log = (sessions_out.parent / "group.log").read_text()  # each test's line says what it computed
    assert "contrast-audio (oneSample): one-sample t-test over 5 subjects computed" in log, log
    assert "contrast-audio: general linear model over 5 subjects computed" in log, log  # the paired design
    assert not group_map(sessions_out, "audio", "t", None).exists()


@pytest.mark.slow
def test_unknown_variables_empty_groups_and_rank_deficient_designs_are_one_sentence(sessions_dataset, sessions_out, tmp_path, capsys):
    for dataset_node, named in (
        (node("Dataset", "byHand", "glm", group_by=["contrast", "handedness"]), ("'byHand'", "'handedness'")),
        ({**node("Dataset", "twoGroups", "glm"), "Model": {"Type": "glm", "X": [1, "group.patient", "group.control"]}},
         ("'twoGroups'", "'group.control'", "'intercept', 'group.patient'")),
        ({**node("Dataset", "nobody", "glm"), "Filter": {"group": ["nobody"]}}, ("'nobody'", "lets none")),
        ({**node("Dataset", "leftHanded", "glm"), "Filter": {"handedness": ["left"]}}, ("leftHanded", "'handedness'")),
        ({"Level": "Dataset", "Name": "betweenGroups", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": [1, "group"]},
          "Contrasts": [{"Name": "blindGtControl", "ConditionList": ["Group.blind", "Group.control"], "Weights": [1, -1],
                         "Test": "t"}]},
         ("'betweenGroups'", "'blindGtControl'", "'Group.blind'", "group.control, group.patient")),
    ):
        out = tmp_path / dataset_node["Name"]
        shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models"))
        flt = dataset_node.pop("Filter", {})
        model = write_model(tmp_path, document("bad", [RUN, node("Subject", "subject"), dataset_node],
                                               [("run", "subject"), ("subject", dataset_node["Name"], flt)]))
        capsys.readouterr()
        assert main([str(sessions_dataset.path), str(out), "group", "--no-reports", "-m", str(model)]) == 64
        errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and all(n in errors[0] for n in named), errors
        assert not (out / "group").exists()


@pytest.mark.slow
def test_a_design_without_degrees_of_freedom_counts_maps_and_subjects(sessions_dataset, sessions_out, tmp_path,
                                                                      capsys):
    """A paired design over 3 session maps of 2 subjects said '3 columns for 3 subjects'."""
    out = tmp_path / "out"
    shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models"))
    for path in session_map(out, "02", "2", "effect").parent.glob("*_statmap.*"):
        path.unlink()
    model = write_model(tmp_path, document("paired", [RUN, node("Session", "session"), PAIRED],
                                           [("run", "session"), ("session", "paired")]))
    capsys.readouterr()
    assert main([str(sessions_dataset.path), str(out), "group", "--no-reports", "-m", str(model),
                 "--participant-label", "01", "02"]) == 64
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "has 3 columns for 3 maps of 2 subjects, leaving no degrees" in errors[0], errors


@pytest.mark.slow
def _group_of_sessions(dataset, participant_out, tmp_path, caplog, dataset_node, source, said):
    """The group level of a model run -> session -> subject with ``dataset_node`` fed by
    ``source``, over a copy of the participant maps; its folder and the warnings that hold ``said``."""
    out = tmp_path / "out"
    shutil.copytree(participant_out, out, ignore=shutil.ignore_patterns("group", "models"))
    name = dataset_node["Name"]
    model = write_model(tmp_path, document(name, [RUN, node("Session", "session"), node("Subject", "subject"),
                                                  dataset_node],
                                           [("run", "session"), ("session", "subject"), (source, name)]))
    with caplog.at_level(logging.WARNING, logger="bids_fixedfx"):
        assert main([str(dataset.path), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    return out, [r.getMessage() for r in caplog.records if said in r.getMessage()]


def test_a_mean_over_the_contrasts_pooled_is_said(sessions_dataset, sessions_out, tmp_path, caplog):
    """GroupBy [] with X [1]: one test of every subject's maps of every contrast, as if each
    map were a subject's (degrees of freedom of maps, not subjects), without a word."""
    out, said = _group_of_sessions(sessions_dataset, sessions_out, tmp_path, caplog,
                                   {**node("Dataset", "pooled", "glm"), "GroupBy": []}, "subject", "without 'contrast'")
    assert len(said) == 1, said
    assert "Node 'pooled' groups by [] without 'contrast', so its task-checkerboard test of the mean pools" in said[0]
    assert "add 'contrast' to its GroupBy" in said[0]
    caplog.clear()
    out, said = _group_of_sessions(sessions_dataset, sessions_out, tmp_path / "per", caplog,
                                   node("Dataset", "perContrast", "glm"), "subject", "without 'contrast'")
    assert not said


def test_a_group_by_session_over_subject_maps_is_one_test_and_said(sessions_dataset, sessions_out, tmp_path, caplog):
    """Subject maps hold both sessions: a dataset node grouping them by session runs one test
    per contrast (the subject node's maps) and says so; over session maps it tests each session."""
    by_session = node("Dataset", "bySession", "glm", group_by=["contrast", "session"])
    out, said = _group_of_sessions(sessions_dataset, sessions_out, tmp_path, caplog, by_session, "subject",
                                   "groups by 'session'")
    assert len(said) == 1 and "'subject' combine each subject's sessions" in said[0], said
    written = sorted(p.name for p in (out / "group").rglob("*stat-t_statmap.nii.gz"))
    assert written and not any("session" in name.lower() for name in written), written
    caplog.clear()
    per_session = write_model(tmp_path, document("perSession", [RUN, node("Session", "session"), node("Subject", "subject"),
                                                               {**by_session, "Name": "perSession"}],
                                                 [("run", "session"), ("session", "subject"), ("session", "perSession")]))
    with caplog.at_level(logging.WARNING, logger="bids_fixedfx"):
        assert main([str(sessions_dataset.path), str(out), "group", "--no-reports", "-m", str(per_session)]) == 0
    assert not [r for r in caplog.records if "groups by 'session'" in r.getMessage()]


def test_a_dataset_node_fed_by_the_run_node_says_it_tests_subject_maps(sessions_dataset, sessions_out, tmp_path,
                                                                          caplog):
    """Was silent: the edge run -> dataset reads as a test of every run, but each subject's maps are tested."""
    out, said = _group_of_sessions(sessions_dataset, sessions_out, tmp_path, caplog, node("Dataset", "fromRuns", "glm"),
                                   "run", "is fed by the run node")
    assert len(said) == 1 and "Node 'fromRuns' is fed by the run node 'run'" in said[0], said
    sidecar = json.loads(next((out / "group").rglob("*stat-t_statmap.json")).read_text())
    assert len(sidecar["Subjects"]) == len(sessions_dataset.subjects)


@pytest.mark.slow
def test_a_group_of_one_subject_is_named_as_a_group_not_as_missing_maps(sessions_dataset, sessions_out, tmp_path,
                                                                       caplog):
    participants = pd.read_csv(sessions_dataset.path / "participants.tsv", sep="\t")
    by_group = {g: [p.removeprefix("sub-") for p in rows["participant_id"]] for g, rows in participants.groupby("group")}
    (many, few) = sorted(by_group, key=lambda g: -len(by_group[g]))
    chosen = by_group[many][:2] + by_group[few][:1]
    out = tmp_path / "out"
    shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models"))
    model = write_model(tmp_path, document("perGroup", [RUN, node("Subject", "subject"),
                                                        node("Dataset", "perGroup", "glm", group_by=["contrast", "group"])],
                                           [("run", "subject"), ("subject", "perGroup")]))
    with caplog.at_level(logging.WARNING, logger="bids_fixedfx"):
        assert main([str(sessions_dataset.path), str(out), "group", "--no-reports", "-m", str(model),
                     "--participant-label", *chosen]) == 0
    said = [r.getMessage() for r in caplog.records if "one subject only" in r.getMessage()]
    assert said and all(f"only subject with group {few!r} of node 'perGroup'" in text and
                        "run the participant level" not in text for text in said), said
    assert sidecar(group_map(out, "audio", "t", f"group{many.capitalize()}"))["Subjects"] == by_group[many][:2]


@pytest.mark.slow
def test_a_rerun_removes_the_maps_of_groups_too_small_or_gone(sessions_dataset, sessions_out, tmp_path, caplog):
    """A group of the GroupBy with one subject left, or none, kept its earlier maps (Subjects that
    participants.tsv no longer gave it), whose sidecars cited a mask the rerun had removed."""
    dataset = tmp_path / "bids"
    shutil.copytree(sessions_dataset.path, dataset, ignore=shutil.ignore_patterns("derivatives", "sub-*"))
    participants = pd.read_csv(dataset / "participants.tsv", sep="\t")
    out = tmp_path / "out"
    shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models"))
    model = write_model(tmp_path, document("perGroup", [RUN, node("Subject", "subject"),
                                                        node("Dataset", "perGroup", "glm", group_by=["contrast", "group"])],
                                           [("run", "subject"), ("subject", "perGroup")]))
    args = [str(dataset), str(out), "group", "--no-reports", "-m", str(model), "--threshold", "fdr"]

    def control_files():
        return sorted(p.name for p in (out / "group").iterdir() if "Control" in p.name)

    labels = [p.removeprefix("sub-") for p in participants["participant_id"]]
    for control, removed in ((participants["participant_id"][:1], "does not test them"),
                             (participants["participant_id"][:0], "no longer in the data")):
        participants.assign(group=np.where(participants["participant_id"].isin(participants["participant_id"][:2]),
                                           "control", "patient")).to_csv(dataset / "participants.tsv", sep="\t",
                                                                         index=False)
        assert main(args) == 0
        made = control_files()
        assert group_map(out, "audio", "t", "groupControl").exists() and any("_mask." in f for f in made), made
        assert any("ControlFdr" in f for f in made), made
        for chosen in (labels[2:], labels[1:]):  # the controls not selected, or one: their maps stay as they were
            assert main([*args, "--participant-label", *chosen]) == 0
            assert control_files() == made
        participants.assign(group=np.where(participants["participant_id"].isin(control), "control", "patient")).to_csv(
            dataset / "participants.tsv", sep="\t", index=False)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bids_fixedfx"):
            assert main(args) == 0
        assert control_files() == [], control_files()
        said = [r.getMessage() for r in caplog.records if "were removed" in r.getMessage()]
        assert len(said) == 1 and removed in said[0] and "groupControl" in said[0], said
        for sources in (sidecar(path)["Sources"] for path in (out / "group").glob("*_statmap.json")):
            assert all((out / s.removeprefix("bids::")).exists() for s in sources if s.startswith("bids::")), sources


@pytest.mark.slow
def test_a_group_gone_takes_its_task_wide_mask_when_its_contrasts_had_masks_of_their_own(sessions_dataset,
                                                                                         sessions_out, tmp_path):
    """A subject without visual maps gave the group's contrasts masks of their own beside a task-wide
    one that no sidecar cites: the group gone, that mask stayed."""
    dataset = tmp_path / "bids"
    shutil.copytree(sessions_dataset.path, dataset, ignore=shutil.ignore_patterns("derivatives", "sub-*"))
    participants = pd.read_csv(dataset / "participants.tsv", sep="\t")
    out = tmp_path / "out"
    shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models"))
    for path in (out / "sub-02").rglob("*_contrast-visual_*"):
        path.unlink()
    model = write_model(tmp_path, document("perGroup", [RUN, node("Subject", "subject"),
                                                        node("Dataset", "perGroup", "glm", group_by=["contrast", "group"])],
                                           [("run", "subject"), ("subject", "perGroup")]))
    args = [str(dataset), str(out), "group", "--no-reports", "-m", str(model)]
    ids = list(participants["participant_id"])
    for control in (ids[:3], ids[:1]):
        participants.assign(group=np.where(participants["participant_id"].isin(control), "control", "patient")).to_csv(
            dataset / "participants.tsv", sep="\t", index=False)
        assert main(args) == 0
        made = sorted(p.name for p in (out / "group").iterdir() if "Control" in p.name)
        if len(control) > 1:
            assert any("_desc-groupGroupControl_mask." in name and "_contrast-" not in name for name in made), made
            # sub-03 left unselected: control's visual maps (of sub-01 and sub-03) are its, and stay
            labels = [i.removeprefix("sub-") for i in ids]
            assert main([*args, "--participant-label", *labels[:2], *labels[3:]]) == 0
            assert [n for n in made if "visual" in n] == sorted(
                p.name for p in (out / "group").iterdir() if "Control" in p.name and "visual" in p.name)
    assert made == [], made


@pytest.mark.slow
@pytest.mark.parametrize("covariate", ["arm", "dose"])
def test_a_test_whose_design_needs_a_subject_without_its_contrast_is_left_out(tmp_path, capsys, covariate):
    """The one subject of a level (or of another dose) had no maps of one contrast: the whole
    job stopped, naming a Model.X that --group-covariates wrote, not the contrast at fault."""
    dataset = make_example_dataset(tmp_path / "bids", n_subjects=5, n_sessions=1, n_runs=1, shape=(12, 12, 12),
                                   n_volumes=40, spaces=(SPACE,))
    participants = pd.read_csv(dataset.path / "participants.tsv", sep="\t")
    first = participants["participant_id"] == "sub-01"
    participants["arm"] = np.where(first, "sibling", np.resize(["patient", "control"], len(participants)))
    participants["dose"] = np.where(first, 5, 0)
    participants.to_csv(dataset.path / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", *QUICK]) == 0
    for path in (out / "sub-01" / "func").glob("*_contrast-visual_*"):
        path.unlink()
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports", "--group-covariates", covariate]) == 0
    said = capsys.readouterr().err
    assert said.count("contrast-visual is not tested: without sub-01 (no maps of it)") == 1, said
    assert "is tested without" not in said and covariate in said, said
    made = sorted(path.name for path in (out / "group").glob("*_statmap.nii.gz"))
    assert made and all("contrast-audio" in name for name in made), made
    subjects = {tuple(sidecar(path)["Subjects"]) for path in (out / "group").glob("*_statmap.json")}
    assert subjects == {("01", "02", "03", "04", "05")}, subjects
    for path in (out / "sub-01" / "func").glob("*_contrast-audio_*"):  # no subject of the level: refused, as it was
        path.unlink()
    code = main([str(dataset.path), str(out), "group", "--no-reports", "--group-covariates", covariate])
    error = capsys.readouterr().err
    assert code == (66 if covariate == "arm" else 64) and "not tested" not in error and covariate in error, error
    if covariate != "arm":
        return
    # each test lacks a subject its design needs: no test, and the error says why (it named a level alone)
    assert main([str(dataset.path), str(out), "participant", *QUICK, "--participant-label", "01"]) == 0
    for path in (out / "sub-01" / "func").glob("*_contrast-audio_*"):
        path.unlink()
    for path in (out / "sub-02" / "func").glob("*_contrast-visual_*"):
        path.unlink()
    participants.assign(arm=np.where(first, "sibling", np.where(participants["participant_id"] == "sub-02", "twin",
                                                                  "patient"))).to_csv(
        dataset.path / "participants.tsv", sep="\t", index=False)
    code = main([str(dataset.path), str(out), "group", "--no-reports", "--group-covariates", covariate])
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert code == 66 and len(errors) == 1 and "No test can be made: task-checkerboard contrast-" in errors[0], errors
    assert "is not tested: without sub-0" in errors[0] and "1 more test(s) alike" in errors[0], errors


@pytest.mark.slow
def test_a_subject_missing_from_participants_tsv_is_named_so(sessions_dataset, sessions_out, tmp_path, caplog):
    """A subject with maps but no row in participants.tsv: left out of the tests that need its
    values, and the warning says it has no row (not that it has 'missing values')."""
    dataset = tmp_path / "bids"
    shutil.copytree(sessions_dataset.path, dataset, ignore=shutil.ignore_patterns("derivatives"))
    participants = pd.read_csv(dataset / "participants.tsv", sep="\t")
    dropped = participants["participant_id"].iloc[-1]
    participants.iloc[:-1].to_csv(dataset / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models"))
    age = {"Level": "Dataset", "Name": "age", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": [1, "age"]},
           "Contrasts": [{"Name": "ageSlope", "ConditionList": ["age"], "Weights": [1], "Test": "t"}]}
    model = write_model(tmp_path, document("unlisted", [RUN, node("Subject", "subject"), age,
                                                        node("Dataset", "perGroup", "glm", group_by=["contrast", "group"])],
                                           [("run", "subject"), ("subject", "age"), ("subject", "perGroup")]))
    with caplog.at_level(logging.WARNING, logger="bids_fixedfx"):
        assert main([str(dataset), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    said = [r.getMessage() for r in caplog.records if dropped in r.getMessage() or dropped[4:] in r.getMessage()]
    assert said and all("no row in participants.tsv" in text for text in said) and len(said) == len(set(said)), said
    assert any("Node 'age'" in text for text in said) and any("Node 'perGroup'" in text for text in said), said
    assert not [r for r in caplog.records if "missing values" in r.getMessage() or "no value of" in r.getMessage()]
    info = sidecar(group_map(out, "audioAgeSlope", "t", "age"))
    assert dropped[4:] not in info["Subjects"] and info["NumberOfSubjects"] == len(participants) - 1


def test_groupby_values_that_make_one_label_are_refused(sessions_dataset, sessions_out, tmp_path, capsys):
    """'a-b' and 'a_b' (or two names without a letter of A-Z) wrote one desc-groupAB map set, the last test's."""
    dataset = tmp_path / "bids"
    shutil.copytree(sessions_dataset.path, dataset, ignore=shutil.ignore_patterns("derivatives"))
    participants = pd.read_csv(dataset / "participants.tsv", sep="\t")
    participants["group"] = ["a-b", "a_b"] * (len(participants) // 2) + ["a-b"] * (len(participants) % 2)
    participants.to_csv(dataset / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models"))
    model = write_model(tmp_path, document("perGroup", [RUN, node("Subject", "subject"),
                                                        node("Dataset", "perGroup", "glm", group_by=["contrast", "group"])],
                                           [("run", "subject"), ("subject", "perGroup")]))
    fails(capsys, [dataset, out, "group", "--no-reports", "-m", model], 64,
          "Node 'perGroup' groups by 'group', whose values 'a-b' and 'a_b' make one file label", output=out / "group")


@pytest.mark.slow
def test_a_one_sample_test_over_a_filtered_edge_is_named_apart(sessions_dataset, sessions_out, tmp_path):
    """A Filter on the patients took the plain one-sample names, over the plain test's maps (SPEC §3)."""
    out = tmp_path / "out"
    shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models"))
    patients = {"Level": "Dataset", "Name": "patients", "GroupBy": ["contrast"], "Model": {"Type": "glm", "X": [1]},
                "DummyContrasts": {"Test": "t"}}
    model = write_model(tmp_path, document("patients", [RUN, node("Subject", "subject"), patients],
                                           [("run", "subject"), ("subject", "patients", {"group": ["patient"]})]))
    assert main([str(sessions_dataset.path), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    assert not group_map(out, "audio", "t", None).exists()
    participants = pd.read_csv(sessions_dataset.path / "participants.tsv", sep="\t")
    patients_ = [p.removeprefix("sub-") for p in participants.loc[participants["group"] == "patient", "participant_id"]]
    assert sidecar(group_map(out, "audio", "t", "groupPatient"))["Subjects"] == patients_


@pytest.fixture(scope="module")
def two_subjects_out(sessions_dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_out")
    model = write_model(folder, TWO_SUBJECTS)
    out = folder / "out"
    args = [str(sessions_dataset.path), str(out)]
    assert main([*args, "participant", *QUICK, "--participant-label", "01", "02", "03", "-m", str(model)]) == 0
    assert main([*args, "group", "--no-reports", "-m", str(model)]) == 0
    return out


@pytest.mark.slow
def test_two_subject_nodes_with_a_filter_are_named_apart(sessions_dataset, two_subjects_out):
    out = two_subjects_out
    runs = [r for ses in ("1", "2") for r in run_maps(out, "01", ses)]
    masks = [mask_of(r, sessions_dataset) for r in runs]
    dofs = [sidecar(r)["DegreesOfFreedom"] for r in runs]
    expected = nilearn_fixed_effects(runs, masks, dofs)
    for stat, theirs in zip(("effect", "variance", "t", "z"), expected):
        close(load(subject_map(out, "01", stat, desc="fixed")), theirs.get_fdata(), f"fixed {stat}")
    theirs = second_level(runs, masks, pd.DataFrame({"intercept": np.ones(len(runs))}), "intercept")
    for stat, name in (("effect", "effect_size"), ("t", "stat"), ("z", "z_score")):
        close(load(subject_map(out, "01", stat, desc="ols")), theirs[name].get_fdata(), f"ols {stat}")
    assert sidecar(subject_map(out, "01", "t", desc="ols"))["Node"] == "ols"
    # the Filter: the OLS node has audio only; no map carries the one-node names
    assert subject_map(out, "01", "t", "visual", desc="fixed").exists()
    assert not subject_map(out, "01", "t", "visual", desc="ols").exists()
    assert not subject_map(out, "01", "t").exists()
    # the dataset node reads the OLS node's maps
    effects = [subject_map(out, s, "effect", desc="ols") for s in ("01", "02", "03")]
    masks = [out / naming.build("subject_mask", subject=s, task=TASK, space=SPACE, desc="fixedfxOls",
                                extension=".nii.gz") for s in ("01", "02", "03")]
    theirs = second_level(effects, masks, pd.DataFrame({"intercept": np.ones(3)}), "intercept")
    close(load(group_map(out, "audio", "t", None)), theirs["stat"].get_fdata(), "group over ols")
    assert not group_map(out, "visual", "t", None).exists()


@pytest.mark.slow
def test_outputs_of_several_nodes_pass_the_bids_validator(sessions_out, two_subjects_out):
    import subprocess

    from bids_fixedfx.discover import validator_command

    command = validator_command()
    assert command, "bids-validator-deno must be installed (pip install bids-validator-deno)"
    for out in (sessions_out, two_subjects_out):
        done = subprocess.run([command, "--format", "json", str(out)], capture_output=True, text=True)
        errors = [i for i in json.loads(done.stdout)["issues"]["issues"] if i["severity"] == "error"]
        assert errors == [] and done.returncode == 0, errors[:3]


@pytest.mark.slow
def test_a_rerun_replaces_its_own_nodes_maps_only(sessions_dataset, two_subjects_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_subjects_out, out)
    stale = subject_map(out, "01", "t", "visual", desc="ols")
    shutil.copy(subject_map(out, "01", "t", "visual", desc="fixed"), stale)  # as if an earlier model made it
    fixed = {p: p.read_bytes() for p in out.glob("sub-01/func/*_desc-fixed_statmap.nii.gz")}
    model = write_model(tmp_path, TWO_SUBJECTS)
    assert main([str(sessions_dataset.path), str(out), "participant", *QUICK, "--participant-label", "01",
                 "-m", str(model)]) == 0
    assert not stale.exists()
    assert fixed and all(load(p).tolist() == load(two_subjects_out / p.relative_to(out)).tolist() for p in fixed)
    group = sorted(p.name for p in (out / "group").glob("*_statmap.nii.gz"))
    assert main([str(sessions_dataset.path), str(out), "group", "--no-reports", "-m", str(model)]) == 0
    assert sorted(p.name for p in (out / "group").glob("*_statmap.nii.gz")) == group


@pytest.mark.slow
def test_session_and_subject_ols_equal_second_level_model(sessions_dataset, tmp_path):
    run = {k: v for k, v in RUN.items() if k != "Contrasts"}
    model = write_model(tmp_path, document("ols", [run, node("Session", "session", "glm"), node("Subject", "subject", "glm")]))
    out = tmp_path / "out"
    assert main([str(sessions_dataset.path), str(out), "participant", "--skip-bids-validation", "--participant-label",
                 "03", "-m", str(model)]) == 0
    assert (out / "sub-03.html").is_file()
    sessions = []
    for session in ("1", "2"):
        runs = run_maps(out, "03", session)
        masks = [mask_of(r, sessions_dataset) for r in runs]
        theirs = second_level(runs, masks, pd.DataFrame({"intercept": np.ones(2)}), "intercept")
        for stat, name in (("effect", "effect_size"), ("t", "stat"), ("z", "z_score")):
            close(load(session_map(out, "03", session, stat)), theirs[name].get_fdata(), f"ses-{session} {stat}")
        said = sidecar(session_map(out, "03", session, "t"))
        assert said["DegreesOfFreedom"] == 1
        assert "FixedEffects" not in said and said["RandomEffects"] == {"NumberOfRuns": 2}
        sessions.append(session_map(out, "03", session, "effect"))
    masks = [mask_of(r, sessions_dataset) for s in ("1", "2") for r in run_maps(out, "03", s)]
    theirs = second_level(sessions, masks, pd.DataFrame({"intercept": np.ones(2)}), "intercept")
    for stat, name in (("effect", "effect_size"), ("t", "stat")):
        close(load(subject_map(out, "03", stat)), theirs[name].get_fdata(), f"subject {stat}")
    said = sidecar(subject_map(out, "03", "t"))
    assert "FixedEffects" not in said and said["RandomEffects"] == {"NumberOfRuns": 4, "NumberOfSessions": 2}
    page = (out / "sub-03.html").read_text()
    assert "one-sample t-test across the runs or sessions" in page and "One-sample t-test z map of" in page
    assert "Fixed-effects z map" not in page and "Fixed effects" not in page
    methods = (out / "logs" / "CITATION.md").read_text()
    assert "the session node `session` combined each subject's runs within each session by a one-sample t-test" in methods
    assert "the subject node `subject` combined each subject's session maps" in methods


def test_sessions_tables_are_read_by_session_label(tmp_path):
    from bids_fixedfx.errors import InputFileError
    from bids_fixedfx.plan.group import read_sessions

    (tmp_path / "sub-01").mkdir()
    table = tmp_path / "sub-01" / "sub-01_sessions.tsv"
    table.write_text("session_id\tvisit\nses-1\tbaseline\nses-2\tfollowup\n")
    assert read_sessions(tmp_path, "01")["visit"].to_dict() == {"1": "baseline", "2": "followup"}
    assert read_sessions(tmp_path, "02").empty
    table.write_text("visit\nbaseline\n")
    with pytest.raises(InputFileError, match="sub-01_sessions.tsv has no session_id column"):
        read_sessions(tmp_path, "01")


def test_the_tables_whose_columns_a_dataset_node_uses_are_its_sources(tmp_path):
    from types import SimpleNamespace

    from bids_fixedfx.plan.group import _input_table, _tables_used

    (tmp_path / "participants.tsv").write_text("participant_id\tage\tgroup\nsub-01\t30\ta\nsub-02\t40\tb\n")
    for subject in ("01", "02"):
        (tmp_path / f"sub-{subject}").mkdir()
        (tmp_path / f"sub-{subject}" / f"sub-{subject}_sessions.tsv").write_text(
            "session_id\tvisit\nses-1\tbaseline\nses-2\tfollowup\n")
    found = [SimpleNamespace(subject=subject, session=session, task="x", info=SimpleNamespace(
        contrast=SimpleNamespace(name="a"))) for subject in ("01", "02") for session in ("1", "2")]
    settings = SimpleNamespace(bids_dir=tmp_path, group_covariates=())

    def used(x, group_by=("contrast",), filter={}, subjects=("01", "02")):
        node = SimpleNamespace(name="node", x=x, group_by=group_by)
        table, _, origins = _input_table(found, settings, node)
        return [p.relative_to(tmp_path).as_posix() for p in _tables_used(
            SimpleNamespace(node=node, filter=filter), SimpleNamespace(subjects=subjects), origins)]

    assert used([1]) == []  # the mean: no table's column
    assert used([1, "age"]) == ["participants.tsv"]
    assert used(["group.a", "group.b"]) == ["participants.tsv"]
    assert used([1], group_by=("contrast", "visit"), subjects=("02",)) == ["sub-02/sub-02_sessions.tsv"]
    assert used([1, "age"], filter={"visit": ("baseline",)}) == [
        "participants.tsv", "sub-01/sub-01_sessions.tsv", "sub-02/sub-02_sessions.tsv"]


def test_participants_tables_as_spreadsheets_write_them_are_read_by_label(tmp_path):
    from bids_fixedfx.plan.group import read_participants

    table = tmp_path / "participants.tsv"  # spaces around values; labels that look like numbers, no sub-
    table.write_text("participant_id\tage \tgroup\n01 \t 41\tpatient \n02\t35\tn/a\n10\t \tcontrol\n")
    read = read_participants(tmp_path)
    assert list(read.index) == ["01", "02", "10"]
    assert read["age"].dtype.kind == "f" and read["age"].to_dict()["01"] == 41 and np.isnan(read["age"]["10"])
    assert (read["group"]["01"], read["group"]["10"]) == ("patient", "control") and pd.isna(read["group"]["02"])


def test_a_participant_on_two_rows_is_refused_naming_the_file(tmp_path):
    from bids_fixedfx.errors import InputFileError
    from bids_fixedfx.plan.group import read_participants

    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\t41\nsub-02\t35\nsub-01\t45\n")
    with pytest.raises(InputFileError, match="participants.tsv lists sub-01 on more than one row") as caught:
        read_participants(tmp_path)
    assert caught.value.exit_code == 66


@pytest.mark.parametrize("columns, named, said", [
    (["mean"], "mean", "the test of the mean effect (mean:"),
    (["group", "Mean"], "Mean", "the test of the mean effect (Mean:"),
    (["age", "Age"], "Age", "the test of the slope of column 'age' (Age:"),
    (["group", "a minus b"], "a minus b", "the test of the groups' 'a minus b' (aMinusB:"),
])
def test_a_covariate_named_as_another_test_is_named(columns, named, said):
    """A column 'mean': "Node 'groupCovariates' has two contrasts named 'mean'", of a node the
    user never wrote."""
    from bids_fixedfx.errors import UsageError
    from bids_fixedfx.plan import covariates_model

    table = pd.DataFrame({"mean": [1.0, 2, 3, 5], "Mean": [1.0, 2, 3, 5], "age": [3.0, 4, 5, 7], "Age": [1.0, 5, 2, 3],
                          "group": ["a", "b", "a", "b"], "a minus b": [1.0, 2, 3, 5]}, index=["01", "02", "03", "04"])
    with pytest.raises(UsageError, match=f"--group-covariates {named}: the test of its slope would bear the name of "
                                         f"{said.replace('(', '.')}.*rename the participants.tsv column"):
        covariates_model(columns, table)
    assert [c.name for c in covariates_model(["group", "age"], table).nodes[0].contrasts] == [
        "mean", "a minus b", "age"]


def test_group_covariates_written_with_a_decimal_comma_are_named(tmp_path):
    from bids_fixedfx.errors import InputFileError
    from bids_fixedfx.plan import covariates_model, read_participants

    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\t41,5\nsub-02\t35\nsub-03\t32,25\n")
    with pytest.raises(InputFileError, match="--group-covariates age: participants.tsv writes its numbers with a "
                                             "decimal comma \\('41,5'\\)"):
        covariates_model(["age"], read_participants(tmp_path))


@pytest.mark.parametrize("table", [None, "participant_id\nsub-01\nsub-02\n"])
def test_group_covariates_without_a_participants_table_are_a_missing_file(tmp_path, table):
    """Exit 64 (a usage error), where a model's dataset node naming a column gave 66 (SPEC §1)."""
    from bids_fixedfx.errors import InputFileError
    from bids_fixedfx.plan import covariates_model, read_participants

    if table is not None:
        (tmp_path / "participants.tsv").write_text(table)
    with pytest.raises(InputFileError, match="--group-covariates age needs BIDS_DIR/participants.tsv, which is "
                                             "missing or holds no column but participant_id"):
        covariates_model(["age"], read_participants(tmp_path))


@pytest.mark.parametrize("ages", [["41y", "30y", "30y", "26y", "27y"], ["41 years", "30", "26.5 years"]])
def test_group_covariates_written_with_a_unit_are_named(tmp_path, ages):
    """'41y' read as a label made one group per age (an F test of 1 dof), exit 0."""
    from bids_fixedfx.errors import InputFileError
    from bids_fixedfx.plan import covariates_model, read_participants

    (tmp_path / "participants.tsv").write_text(
        "participant_id\tage\n" + "".join(f"sub-0{i}\t{a}\n" for i, a in enumerate(ages, start=1)))
    with pytest.raises(InputFileError, match=f"--group-covariates age: participants.tsv writes its numbers with a "
                                             f"unit \\('{ages[0]}'\\)"):
        covariates_model(["age"], read_participants(tmp_path), described={"age": {"Units": "year"}})
    # without Units the values may be labels (a scanner's 3T and 1.5T): read so, and said
    model = covariates_model(["age"], read_participants(tmp_path))
    assert len(model.notes) == 1 and "are read as labels, one group per value" in model.notes[0]


def test_numbered_groups_that_participants_json_declares_as_levels_are_groups(tmp_path):
    """Codes 1/2/3 declared as Levels were fitted as a slope (a BIDS dataset's usual coding)."""
    from bids_fixedfx.plan import covariates_model, described_columns, read_participants

    (tmp_path / "participants.tsv").write_text(
        "participant_id\tgroup\tage\n" + "".join(f"sub-0{i}\t{g}\t{20 + i}\n" for i, g in enumerate("1231n", start=1)))
    (tmp_path / "participants.tsv").write_text((tmp_path / "participants.tsv").read_text().replace("\tn\t", "\tn/a\t"))
    (tmp_path / "participants.json").write_text(json.dumps(
        {"group": {"Levels": {"1": "a", "2": "b", "3": "c"}}, "age": {"Units": "year"}}))
    table = read_participants(tmp_path, coded=["group", "age"])
    assert table["group"].tolist()[:4] == ["1", "2", "3", "1"] and table["group"].isna().tolist()[4]
    assert table["age"].tolist() == [21, 22, 23, 24, 25]  # no Levels: numbers still
    model = covariates_model(["group", "age"], table, described=described_columns(tmp_path))
    node = model.nodes[0]
    assert model.notes == () and node.x == ("group.1", "group.2", "group.3", "age")
    assert {c.name: c.test for c in node.contrasts} == {"mean": "t", "group differences": "F", "age": "t"}
    assert read_participants(tmp_path)["group"].dtype.kind == "f"  # a model file's numbers stay numbers
    # a code that Levels do not name: a covariate, and said
    (tmp_path / "participants.json").write_text(json.dumps({"group": {"Levels": {"1": "a", "2": "b"}}}))
    table = read_participants(tmp_path, coded=["group"])
    model = covariates_model(["group"], table, described=described_columns(tmp_path))
    assert model.nodes[0].x == (1, "group")
    assert len(model.notes) == 1 and "not all of them codes of the Levels" in model.notes[0]
    assert described_columns(tmp_path / "none") == {}


def test_a_participants_cell_of_many_digits_is_refused_at_once(tmp_path):
    """A 100,000-digit cell kept the group level busy for minutes (a regular expression that
    tried every split of the digits)."""
    import time

    from bids_fixedfx.errors import InputFileError
    from bids_fixedfx.plan import covariates_model, read_participants

    (tmp_path / "participants.tsv").write_text(
        "participant_id\tage\n" + "".join(f"sub-0{i}\t{v}\n" for i, v in enumerate(["9" * 100_000, 30, 41], 1)))
    start = time.perf_counter()
    with pytest.raises(InputFileError, match="--group-covariates age: participants.tsv holds numbers"):
        covariates_model(["age"], read_participants(tmp_path))
    assert time.perf_counter() - start < 10


def test_a_participants_table_that_is_a_device_is_named_so(tmp_path):
    """participants.tsv linked to /dev/zero was said to be missing."""
    from bids_fixedfx.errors import InputFileError
    from bids_fixedfx.plan import read_participants

    (tmp_path / "participants.tsv").symlink_to("/dev/zero")
    with pytest.raises(InputFileError, match=f"{tmp_path / 'participants.tsv'} is not a regular file"):
        read_participants(tmp_path)


def test_a_column_of_numbers_with_a_stray_token_is_named(tmp_path):
    """'n.a.' among IQ scores made the column a group of four levels (an F test), without a word."""
    from bids_fixedfx.errors import InputFileError
    from bids_fixedfx.plan import covariates_model, read_participants

    (tmp_path / "participants.tsv").write_text(
        "participant_id\tiq\tgroup\n" + "".join(f"sub-0{i}\t{v}\t{g}\n" for i, (v, g) in enumerate(
            [("100", "a"), ("110", "b"), ("n.a.", "a"), ("100", "b"), ("120", "a")], start=1)))
    with pytest.raises(InputFileError, match="--group-covariates iq: participants.tsv holds numbers in that column "
                                             "but also 'n.a.', which is not a number"):
        covariates_model(["iq"], read_participants(tmp_path))
    assert covariates_model(["group"], read_participants(tmp_path)) is not None


def test_a_session_node_on_runs_without_sessions_is_refused(tmp_path, capsys):
    dataset = make_example_dataset(tmp_path / "bids", n_subjects=1, n_sessions=1, n_runs=2, shape=(12, 12, 12),
                                   n_volumes=30)
    model = write_model(tmp_path, document("m", [RUN, node("Session", "visit"), node("Subject", "subject")]))
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", model], 64, "Node 'visit'",
          "has no session")


def test_contrast_labels_apart_only_by_case_are_said_with_their_subjects():
    """Go in two subjects' events, go in a third's: each was tested over its own subjects (or
    not at all) and the warnings blamed other causes."""
    from types import SimpleNamespace

    from bids_fixedfx.plan.group import _labels_apart_by_case

    found = [SimpleNamespace(task="stop", space="MNI", contrast=label, subject=subject)
             for subject, label in (("01", "Go"), ("02", "Go"), ("03", "go"), ("01", "Stop"), ("03", "Stop"))]
    [said] = [note.text for note in _labels_apart_by_case(found)]
    assert said.startswith("task-stop space-MNI: the contrasts Go and go differ only in case")
    assert "(Go: sub-01, sub-02; go: sub-03)" in said


def test_a_group_job_without_a_report_says_why(sessions_dataset, sessions_out, tmp_path, caplog):
    """Two dataset nodes: no group.html was written, and nothing said so."""
    out = tmp_path / "out"
    shutil.copytree(sessions_out, out, ignore=shutil.ignore_patterns("group", "models", "group.html"))
    model = write_model(tmp_path, document("twoTests", [RUN, node("Subject", "subject"),
                                                        node("Dataset", "mean", "glm"),
                                                        node("Dataset", "perGroup", "glm", group_by=["contrast", "group"])],
                                           [("run", "subject"), ("subject", "mean"), ("subject", "perGroup")]))
    with caplog.at_level(logging.INFO, logger="bids_fixedfx"):
        assert main([str(sessions_dataset.path), str(out), "group", "-m", str(model)]) == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("No group report:")]
    assert len(said) == 1 and "several dataset nodes" in said[0] and str(out / "group") in said[0], said
    assert not (out / "group.html").exists() and list((out / "group").glob("*_statmap.nii.gz"))
