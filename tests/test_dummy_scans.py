"""Dummy scans through the app: fMRIPrep's non_steady_state_outlier columns and --dummy-scans N
leave volumes out of the fit (nilearn's sample_masks), the design keeps the whole run's frame
times, the sidecars and methods text say which and why, and the default model carries it."""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix
from nilearn.interfaces.fmriprep import load_confounds

from bids_fixedfx import naming
from bids_fixedfx.cli import main
from bids_fixedfx.example_data import make_example_dataset
from test_end_to_end import relative_difference, run_files
from tools import fails

pytestmark = pytest.mark.slow  # runs of the app; pytest -m 'not slow' leaves them out

SPACE = "MNI152NLin2009cAsym"
QUICK = ["--skip-bids-validation", "--no-reports"]
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
DUMMY = 2  # volumes the generator flags


@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    """Two subjects, two runs each, whose first two volumes are brighter and flagged by
    fMRIPrep's non_steady_state_outlier00/01 columns."""
    root = tmp_path_factory.mktemp("dummy") / "bids"
    return make_example_dataset(root, n_subjects=2, n_sessions=1, n_runs=2, shape=(16, 18, 14), n_volumes=60,
                                non_steady_state=DUMMY)


@pytest.fixture(scope="module")
def fitted(flagged, tmp_path_factory):
    out = tmp_path_factory.mktemp("dummyout") / "out"
    assert main([str(flagged.path), str(out), "participant", *QUICK]) == 0
    return out


def nilearn_maps(dataset, files, sample_mask):
    """nilearn on one run: the design on every frame, then ``sample_masks`` (None: all volumes)."""
    tr = json.loads((dataset.path / "task-checkerboard_bold.json").read_text())["RepetitionTime"]
    events = pd.read_csv(files["events"], sep="\t")
    motion = pd.read_csv(files["confounds"], sep="\t")[MOTION].bfill()
    n_volumes = len(motion)
    design = make_first_level_design_matrix(np.arange(n_volumes) * tr, events, hrf_model="glover",
                                            drift_model="cosine", high_pass=0.01, add_regs=motion.to_numpy(),
                                            add_reg_names=MOTION)
    model = FirstLevelModel(mask_img=str(files["mask"]), smoothing_fwhm=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(str(files["bold"]), design_matrices=[design],
                  sample_masks=None if sample_mask is None else [sample_mask])
        return {c: model.compute_contrast(c, output_type="all") for c in ("audio", "visual")}


def ours(out, subject, run, contrast, stat):
    return nib.load(str(out / naming.build("run_statmap", subject=subject, task="checkerboard", run=run,
                                           space=SPACE, contrast=contrast, stat=stat,
                                           extension=".nii.gz"))).get_fdata()


def test_flagged_volumes_leave_the_fit_as_nilearn_sample_masks(flagged, fitted):
    files = run_files(flagged, "01", None, "01")
    _, sample_mask = load_confounds(str(files["bold"]), strategy=("motion",), motion="basic")
    np.testing.assert_array_equal(sample_mask, np.arange(DUMMY, 60))  # nilearn's own reading of the columns
    theirs = nilearn_maps(flagged, files, sample_mask)
    unmasked = nilearn_maps(flagged, files, None)
    for contrast in ("audio", "visual"):
        for stat, name in (("effect", "effect_size"), ("variance", "effect_variance"), ("t", "stat"),
                           ("z", "z_score")):
            assert relative_difference(ours(fitted, "01", "01", contrast, stat),
                                       theirs[contrast][name].get_fdata()) < 1e-4, (contrast, stat)
        # the bright first volumes matter: keeping them gives other numbers
        assert relative_difference(ours(fitted, "01", "01", contrast, "t"),
                                   unmasked[contrast]["stat"].get_fdata()) > 1e-3
    # the design written is the whole run's (every frame time), the fit's dofs are those of the kept volumes
    design = pd.read_csv(fitted / "sub-01" / "func" / f"{files['stem']}_design.tsv", sep="\t")
    assert len(design) == 60
    sidecar = json.loads(next((fitted / "sub-01" / "func").glob(
        f"{files['stem']}_space-{SPACE}_contrast-audio_stat-t_statmap.json")).read_text())
    assert sidecar["DegreesOfFreedom"] == 60 - DUMMY - np.linalg.matrix_rank(design.to_numpy())


def test_known_effects_are_recovered(flagged, fitted):
    def subject_map(subject, contrast, stat):
        return nib.load(str(fitted / naming.build("subject_statmap", subject=subject, task="checkerboard", space=SPACE,
                                                  contrast=contrast, stat=stat, extension=".nii.gz"))).get_fdata()

    for subject in flagged.subjects:
        for own, other in (("audio", "visual"), ("visual", "audio")):
            z = subject_map(subject, own, "z")
            assert np.median(z[flagged.active[own]]) > 3 and abs(np.median(z[flagged.active[other]])) < 2
            effect = subject_map(subject, own, "effect")
            assert np.max(effect[flagged.active[own]]) == pytest.approx(flagged.effect_size, rel=0.5)


def test_sidecar_model_and_methods_say_which_volumes_and_why(fitted):
    design = json.loads((fitted / "sub-01" / "func" / "sub-01_task-checkerboard_run-02_design.json").read_text())
    assert design["VolumesExcluded"] == DUMMY
    assert design["DummyScans"]["Volumes"] == [0, 1] and design["DummyScans"]["Source"] == "confounds"
    assert design["ExcludedVolumeIndices"] == [0, 1]  # every volume left out, censored ones included
    assert "non_steady_state_outlier" in design["DummyScans"]["Reason"]
    model = json.loads((fitted / "models" / "model-default_smdl.json").read_text())
    assert model["Nodes"][0]["Model"]["Software"]["nilearn"]["non_steady_state"] is True
    assert "dummy_scans" not in model["Nodes"][0]["Model"]["Software"]["nilearn"]
    methods = (fitted / "logs" / "CITATION.md").read_text()
    assert "In every run, the first 2 volumes, which fMRIPrep flagged" in methods
    assert "sample_masks" in methods


def test_the_default_model_gives_identical_maps(flagged, fitted, tmp_path):
    again = tmp_path / "again"
    assert main([str(flagged.path), str(again), "participant", *QUICK,
                 "-m", str(fitted / "models" / "model-default_smdl.json")]) == 0
    names = sorted(p.relative_to(fitted) for p in fitted.rglob("*_statmap.nii.gz"))
    assert names == sorted(p.relative_to(again) for p in again.rglob("*_statmap.nii.gz"))
    assert all((fitted / n).read_bytes() == (again / n).read_bytes() for n in names)
    for name in fitted.rglob("*_design.json"):
        assert json.loads(name.read_text()) == json.loads((again / name.relative_to(fitted)).read_text())


def test_fmriprep_columns_win_over_the_option_with_a_warning(flagged, fitted, tmp_path, caplog):
    out = tmp_path / "out"
    assert main([str(flagged.path), str(out), "participant", *QUICK, "--participant-label", "01",
                 "--dummy-scans", "3"]) == 0
    assert "--dummy-scans 3 applies only to runs without those columns" in caplog.text
    for name in (fitted / "sub-01").rglob("*_statmap.nii.gz"):
        assert name.read_bytes() == (out / name.relative_to(fitted)).read_bytes()


def test_flagged_volumes_leave_the_fit_without_confounds_too(flagged, tmp_path):
    """--confounds none did not read the confounds file, so fMRIPrep's flagged volumes were
    fitted (t off by 10 where they are bright) while the sidecar said NonSteadyState; nilearn
    without confounds, its sample mask without them, and the default model passed back agree."""
    out, again = tmp_path / "out", tmp_path / "again"
    assert main([str(flagged.path), str(out), "participant", *QUICK, "--participant-label", "01",
                 "--confounds", "none"]) == 0
    files = run_files(flagged, "01", None, "01")
    tr = json.loads((flagged.path / "task-checkerboard_bold.json").read_text())["RepetitionTime"]
    design = make_first_level_design_matrix(np.arange(60) * tr, pd.read_csv(files["events"], sep="\t"),
                                            hrf_model="glover", drift_model="cosine", high_pass=0.01)
    kept = np.arange(DUMMY, 60)
    model = FirstLevelModel(mask_img=str(files["mask"]), smoothing_fwhm=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(str(files["bold"]), design_matrices=[design], sample_masks=[kept])
    theirs = model.compute_contrast("audio", output_type="all")
    for stat, name in (("effect", "effect_size"), ("t", "stat")):
        assert relative_difference(ours(out, "01", "01", "audio", stat), theirs[name].get_fdata()) < 1e-4, stat
    sidecar = next((out / "sub-01").rglob("*run-01*_design.json"))
    assert json.loads(sidecar.read_text())["VolumesExcluded"] == DUMMY
    assert main([str(flagged.path), str(again), "participant", *QUICK, "--participant-label", "01",
                 "-m", str(out / "models" / "model-default_smdl.json")]) == 0
    for name in (out / "sub-01").rglob("*_statmap.nii.gz"):
        assert name.read_bytes() == (again / name.relative_to(out)).read_bytes()


def test_dummy_scans_option_on_runs_without_columns(fresh_dataset, tmp_path):
    dataset = fresh_dataset(subjects=("01",))
    out, again = tmp_path / "out", tmp_path / "again"
    assert main([str(dataset.path), str(out), "participant", *QUICK, "--session-label", "1",
                 "--dummy-scans", "3"]) == 0
    files = run_files(dataset, "01", "1", "01")
    theirs = nilearn_maps(dataset, files, np.arange(3, 60))
    mine = nib.load(str(out / naming.build("run_statmap", subject="01", session="1", task="checkerboard", run="01",
                                           space=SPACE, contrast="audio", stat="t",
                                           extension=".nii.gz"))).get_fdata()
    assert relative_difference(mine, theirs["audio"]["stat"].get_fdata()) < 1e-4
    design = json.loads(next(out.rglob(f"{files['stem']}_design.json")).read_text())
    assert design["DummyScans"]["Source"] == "option" and design["DummyScans"]["Volumes"] == [0, 1, 2]
    model = out / "models" / "model-default_smdl.json"
    assert json.loads(model.read_text())["Nodes"][0]["Model"]["Software"]["nilearn"]["dummy_scans"] == 3
    assert "`--dummy-scans 3`" in (out / "logs" / "CITATION.md").read_text()
    assert main([str(dataset.path), str(again), "participant", *QUICK, "--session-label", "1", "-m", str(model)]) == 0
    names = sorted(p.relative_to(out) for p in out.rglob("*_statmap.nii.gz"))
    assert names and all((out / n).read_bytes() == (again / n).read_bytes() for n in names)


@pytest.mark.parametrize(
    ("options", "named"),
    [(["--dummy-scans", "-1"], ["--dummy-scans", "negative"]),
     (["--dummy-scans", "60"], ["--dummy-scans 60", "sub-01_ses-1_task-checkerboard_run-01", "60 volumes"]),
     (["--dummy-scans", "x"], ["--dummy-scans"]),
     (["--dummy-scans", "2", "-m", "model.json"], ["--dummy-scans", "--model"])],
)
def test_bad_dummy_scans_are_usage_errors(fresh_dataset, tmp_path, capsys, options, named):
    dataset = fresh_dataset(subjects=("01",))
    (tmp_path / "model.json").write_text("{}")
    options = [str(tmp_path / o) if o == "model.json" else o for o in options]
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, *options], 64, *named)


def test_dummy_scans_at_the_group_level_is_a_usage_error(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("01",))
    fails(capsys, [dataset.path, tmp_path / "out", "group", "--dummy-scans", "2"], 64, "--dummy-scans", "participant")


def test_a_model_with_bad_dummy_scans_names_the_node(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("01",))
    model = tmp_path / "model-bad_smdl.json"
    model.write_text(json.dumps({"Name": "bad", "BIDSModelVersion": "1.0.0", "Nodes": [
        {"Level": "Run", "Name": "runLevel", "GroupBy": ["run", "subject"], "DummyContrasts": {"Test": "t"},
         "Model": {"Type": "glm", "X": ["audio", 1], "Software": {"nilearn": {"dummy_scans": -2}}}}]}))
    fails(capsys, [dataset.path, tmp_path / "out", "participant", *QUICK, "-m", model], 64, "runLevel", "dummy_scans")
