"""The command line end to end, checked against a plain nilearn computation.

The participant and group levels run once on the example dataset; every map they
write is compared with nilearn's ``FirstLevelModel``, ``compute_fixed_effects`` and
``SecondLevelModel`` run by hand on the same files, and the known effects of the
example dataset must be recovered.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm import compute_fixed_effects
from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix
from nilearn.glm.second_level import SecondLevelModel
from nilearn.masking import intersect_masks
from scipy import stats

from bids_fixedfx import outputs
from bids_fixedfx.cli import main
from bids_fixedfx.discover import validator_command
from bids_fixedfx.errors import EX_NO_INPUT, EX_USAGE
from bids_fixedfx.notes import SAID_IN_FULL

pytestmark = pytest.mark.slow  # end-to-end runs of the app; pytest -m 'not slow' leaves them out

SPACE = "MNI152NLin2009cAsym"
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
STATS = {"effect": "effect_size", "variance": "effect_variance", "t": "stat", "z": "z_score", "p": "p_value"}
TOLERANCE = 1e-4


def relative_difference(ours, theirs):
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    assert ours.shape == theirs.shape
    return np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-30)


def data(path):
    return nib.load(str(path)).get_fdata()


def difference(path, theirs):
    """Relative difference of a written map from nilearn's; nilearn leaves p = 0 outside the
    mask, where the app writes 1 (nothing outside looks significant)."""
    ours = data(path)
    theirs = np.asarray(theirs if isinstance(theirs, np.ndarray) else theirs.get_fdata(), float)
    if "_stat-p_" in Path(path).name:
        theirs = np.where((theirs == 0) & (ours == 1), 1.0, theirs)
    return relative_difference(ours, theirs)


def run_files(dataset, subject, session, run):
    """The input files of one run, found by hand (not by the app's discovery)."""
    ses = f"ses-{session}/" if session else ""
    ses_ent = f"_ses-{session}" if session else ""
    stem = f"sub-{subject}{ses_ent}_task-checkerboard_run-{run}"
    fmriprep = dataset.path / "derivatives" / "fmriprep" / f"sub-{subject}" / ses / "func"
    return {
        "stem": stem,
        "bold": fmriprep / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz",
        "mask": fmriprep / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz",
        "confounds": fmriprep / f"{stem}_desc-confounds_timeseries.tsv",
        "events": dataset.path / f"sub-{subject}" / ses / "func" / f"{stem}_events.tsv",
    }


def subject_runs(dataset, subject):
    runs = []
    for bold in sorted((dataset.path / "derivatives" / "fmriprep" / f"sub-{subject}").rglob(
            f"*space-{SPACE}_desc-preproc_bold.nii.gz")):
        entities = dict(part.split("-", 1) for part in bold.name.split("_")[:-1] if "-" in part)
        runs.append(run_files(dataset, subject, entities.get("ses"), entities["run"]))
    return runs


def nilearn_run(files, tr):
    """nilearn's FirstLevelModel on one run, as a user would write it."""
    events = pd.read_csv(files["events"], sep="\t")
    confounds = pd.read_csv(files["confounds"], sep="\t")[MOTION].bfill()
    model = FirstLevelModel(t_r=tr, mask_img=str(files["mask"]), smoothing_fwhm=5, minimize_memory=False)
    model.fit(str(files["bold"]), events=events, confounds=confounds)
    design = model.design_matrices_[0]
    dof = design.shape[0] - np.linalg.matrix_rank(design.to_numpy())
    return model, dof


def repetition_time(dataset):
    return json.loads((dataset.path / "task-checkerboard_bold.json").read_text())["RepetitionTime"]


@pytest.fixture(scope="module")
def analysed(example_dataset, tmp_path_factory):
    """The example dataset through the participant and group levels."""
    output = tmp_path_factory.mktemp("e2e") / "out"
    assert main([str(example_dataset.path), str(output), "participant", "--nprocs", "2"]) == 0
    assert main([str(example_dataset.path), str(output), "group"]) == 0
    return output


@pytest.fixture(scope="module")
def reference(example_dataset):
    """Plain nilearn: every run's maps, every subject's fixed effects, the group test."""
    tr = repetition_time(example_dataset)
    runs, subjects = {}, {}
    for subject in example_dataset.subjects:
        effects, variances, dofs, masks = {}, {}, [], []
        for files in subject_runs(example_dataset, subject):
            model, dof = nilearn_run(files, tr)
            runs[(files["stem"], "rsquared")] = model.r_square_[0]
            dofs.append(dof)
            masks.append(str(files["mask"]))
            for condition in example_dataset.conditions:
                maps = model.compute_contrast(condition, output_type="all")
                runs[(files["stem"], condition)] = maps
                effects.setdefault(condition, []).append(maps["effect_size"])
                variances.setdefault(condition, []).append(maps["effect_variance"])
        mask = intersect_masks(masks, threshold=1, connected=False) if len(masks) > 1 else nib.load(masks[0])
        for condition in example_dataset.conditions:
            if len(dofs) == 1:
                subjects[(subject, condition)] = {
                    s: runs[(subject_runs(example_dataset, subject)[0]["stem"], condition)][n]
                    for s, n in STATS.items()
                } | {"dof": dofs[0], "mask": mask}
                continue
            effect, variance, t, z = compute_fixed_effects(
                effects[condition], variances[condition], mask, dofs=dofs)
            p = stats.t.sf(t.get_fdata(), np.sum(dofs)) * mask.get_fdata()
            subjects[(subject, condition)] = {
                "effect": effect, "variance": variance, "t": t, "z": z, "p": p,
                "dof": float(np.sum(dofs)), "mask": mask,
            }
    return {"runs": runs, "subjects": subjects}


def test_run_maps_equal_nilearn(example_dataset, analysed, reference):
    checked = 0
    for (stem, condition), maps in reference["runs"].items():
        if condition == "rsquared":
            continue
        subject = stem.split("_")[0]
        session = next((p for p in stem.split("_") if p.startswith("ses-")), "")
        folder = analysed / subject / session / "func"
        for stat_name, nilearn_name in STATS.items():
            ours = folder / f"{stem}_space-{SPACE}_contrast-{condition}_stat-{stat_name}_statmap.nii.gz"
            assert difference(ours, maps[nilearn_name].get_fdata()) < TOLERANCE, ours.name
            checked += 1
    assert checked == 9 * 2 * 5  # 9 runs, 2 conditions, 5 maps


def test_run_r_square_maps_equal_nilearn(analysed, reference):
    """Each run's R² map is FirstLevelModel(minimize_memory=False).r_square_ (0 outside the mask)."""
    checked = 0
    for (stem, what), theirs in reference["runs"].items():
        if what != "rsquared":
            continue
        folder = analysed / stem.split("_")[0] / next((p for p in stem.split("_") if p.startswith("ses-")), "") / "func"
        ours = folder / f"{stem}_space-{SPACE}_stat-rsquared_statmap.nii.gz"
        assert difference(ours, theirs.get_fdata().reshape(data(ours).shape)) < TOLERANCE, ours.name
        sidecar = json.loads(ours.with_name(ours.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["Statistic"] == "rsquared" and sidecar["Level"] == "Run"
        checked += 1
    assert checked == 9


def test_subject_maps_equal_nilearn_fixed_effects(example_dataset, analysed, reference):
    for (subject, condition), maps in reference["subjects"].items():
        folder = analysed / f"sub-{subject}" / "func"
        for stat_name in STATS:
            ours = folder / f"sub-{subject}_task-checkerboard_space-{SPACE}_contrast-{condition}_stat-{stat_name}_statmap.nii.gz"
            theirs = maps[stat_name]
            theirs = theirs if isinstance(theirs, np.ndarray) else theirs.get_fdata()
            assert difference(ours, theirs) < TOLERANCE, ours.name
        sidecar = json.loads(ours.with_name(ours.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["DegreesOfFreedom"] == pytest.approx(maps["dof"])
        mask = folder / f"sub-{subject}_task-checkerboard_space-{SPACE}_desc-fixedfx_mask.nii.gz"
        assert np.array_equal(data(mask) > 0, maps["mask"].get_fdata() > 0)


def test_group_maps_equal_nilearn_second_level(example_dataset, analysed, reference):
    for condition in example_dataset.conditions:
        effects = [reference["subjects"][(s, condition)]["effect"] for s in example_dataset.subjects]
        masks = [reference["subjects"][(s, condition)]["mask"] for s in example_dataset.subjects]
        mask = intersect_masks(masks, threshold=1, connected=False)
        design = pd.DataFrame({"intercept": np.ones(len(effects))})
        model = SecondLevelModel(mask_img=mask).fit(effects, design_matrix=design)
        maps = model.compute_contrast("intercept", output_type="all")
        for stat_name, nilearn_name in STATS.items():
            ours = analysed / "group" / f"task-checkerboard_space-{SPACE}_contrast-{condition}_stat-{stat_name}_statmap.nii.gz"
            assert difference(ours, maps[nilearn_name].get_fdata()) < TOLERANCE, ours.name
        sidecar = json.loads(ours.with_name(ours.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["GroupModel"] == "one-sample t-test"
        assert sidecar["NumberOfSubjects"] == len(example_dataset.subjects)
        assert sidecar["DegreesOfFreedom"] == len(example_dataset.subjects) - 1
        assert len(sidecar["Sources"]) == len(example_dataset.subjects) + 1


def test_known_effects_are_recovered(example_dataset, analysed):
    """Each condition's box lights up in its own contrast, and not in the other's."""
    for subject in example_dataset.subjects:
        for condition in example_dataset.conditions:
            z = data(analysed / f"sub-{subject}" / "func" /
                     f"sub-{subject}_task-checkerboard_space-{SPACE}_contrast-{condition}_stat-z_statmap.nii.gz")
            own = z[example_dataset.active[condition]]
            other = z[example_dataset.active[next(c for c in example_dataset.conditions if c != condition)]]
            assert np.median(own) > 3, (subject, condition)
            assert abs(np.median(other)) < 2, (subject, condition)
            effect = data(analysed / f"sub-{subject}" / "func" /
                          f"sub-{subject}_task-checkerboard_space-{SPACE}_contrast-{condition}_stat-effect_statmap.nii.gz")
            assert np.max(effect[example_dataset.active[condition]]) == pytest.approx(
                example_dataset.effect_size, rel=0.5)
    for condition in example_dataset.conditions:
        t = data(analysed / "group" / f"task-checkerboard_space-{SPACE}_contrast-{condition}_stat-t_statmap.nii.gz")
        assert np.median(t[example_dataset.active[condition]]) > 3


def test_sidecars_hold_what_spec_requires(analysed):
    run = json.loads(next(analysed.glob(
        "sub-01/ses-1/func/sub-01_ses-1_task-checkerboard_run-01_space-*_contrast-audio_stat-z_statmap.json")).read_text())
    for key in ("Sources", "Contrast", "DegreesOfFreedom", "SmoothingFWHM", "NoiseModel", "HRFModel",
                "DriftModel", "HighPass"):
        assert key in run
    assert run["Contrast"] == {"Name": "audio", "Test": "t", "Weights": {"audio": 1.0}}
    names = [Path(s.split(":")[-1]).name for s in run["Sources"]]
    assert any(n.endswith("_desc-preproc_bold.nii.gz") for n in names)
    assert any(n.endswith("_desc-brain_mask.nii.gz") for n in names)
    assert any(n.endswith("_events.tsv") for n in names)
    assert any(n.endswith("_desc-confounds_timeseries.tsv") for n in names)
    assert any(n.endswith("_design.tsv") for n in names)
    description = json.loads((analysed / "dataset_description.json").read_text())
    links = description["DatasetLinks"]
    assert {"raw", "fmriprep"} <= set(links)
    for source in run["Sources"]:  # BIDS URIs: bids:: in OUTPUT_DIR, bids:<name>: through DatasetLinks
        assert source.startswith("bids:"), source
        name, _, path = source[len("bids:"):].partition(":")
        root = analysed if not name else analysed / links[name]
        assert (root / path).exists(), source
    assert any(s.startswith("bids:fmriprep:sub-01/ses-1/func/") for s in run["Sources"])
    assert any(s.startswith("bids:raw:sub-01/ses-1/func/") for s in run["Sources"])
    subject = json.loads((analysed / "sub-01" / "func" /
                          f"sub-01_task-checkerboard_space-{SPACE}_contrast-audio_stat-z_statmap.json").read_text())
    assert subject["FixedEffects"] == {"PrecisionWeighted": False, "NumberOfRuns": 4}
    assert len([s for s in subject["Sources"] if "stat-effect" in s]) == 4
    assert description["DatasetType"] == "derivative"
    assert {"Name", "Version", "CodeURL"} <= set(description["GeneratedBy"][0])


def test_output_passes_the_bids_validator(analysed):
    command = validator_command()
    assert command, "bids-validator-deno must be installed (pip install bids-validator-deno)"
    done = subprocess.run([command, "--format", "json", str(analysed)], capture_output=True, text=True)
    report = json.loads(done.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == [] and done.returncode == 0


def test_rerun_gives_the_same_maps(example_dataset, analysed, tmp_path):
    again = tmp_path / "again"
    assert main([str(example_dataset.path), str(again), "participant", "--skip-bids-validation",
                 "--participant-label", "01", "--nprocs", "1"]) == 0
    for ours in sorted(again.rglob("*_statmap.nii.gz")):
        first = analysed / ours.relative_to(again)
        assert np.array_equal(data(ours), data(first)), ours.name


def test_a_fresh_process_selects_the_runs_in_a_child_and_writes_the_same_maps(example_dataset, analysed, tmp_path):
    """A new process (unlike this one, which has nilearn loaded) selects the runs in a forked
    child while it loads nilearn, and the child reads the first run; the maps are those of
    the in-process run."""
    again = tmp_path / "again"
    done = subprocess.run([sys.executable, "-m", "bids_fixedfx", str(example_dataset.path), str(again), "participant",
                           "--participant-label", "01", "--skip-bids-validation", "--no-reports", "--nprocs", "2", "-v"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Selecting the runs in process" in done.stderr
    assert "Indexed" in done.stderr  # the child's log lines reach the same stream
    first = sorted((example_dataset.path / "sub-01").rglob("*_bold.nii*"))[0].name.split("_bold")[0]
    assert re.search(rf"{re.escape(first)}: \d+ voxels read, masked and smoothed while nilearn loaded", done.stderr)
    written = sorted(again.rglob("*_statmap.nii.gz"))
    assert len(written) == len(list((analysed / "sub-01").rglob("*_statmap.nii.gz")))
    for ours in written:
        assert np.array_equal(data(ours), data(analysed / ours.relative_to(again))), ours.name


def test_a_first_run_left_out_by_planning_is_not_taken_from_the_child(fresh_dataset, tmp_path):
    """The selecting child reads the first selected run; planning leaves it out (no event of
    the one contrast's condition): its series is not taken, the next run is read as usual,
    and the maps are those of the in-process run."""
    dataset = fresh_dataset(subjects=("01",))
    events = sorted(dataset.path.rglob("sub-01_*_events.tsv"))[0]
    table = pd.read_csv(events, sep="\t")
    table.assign(trial_type="other").to_csv(events, sep="\t", index=False)
    first = events.name.split("_events")[0]
    outs = {}
    for how in ("command", "library"):
        outs[how] = tmp_path / how
        start = (["-m", "bids_fixedfx"] if how == "command"
                 else ["-c", "import sys; from bids_fixedfx.cli import main; sys.exit(main(sys.argv[1:]))"])
        done = subprocess.run([sys.executable, *start, str(dataset.path), str(outs[how]), "participant",
                               "--skip-bids-validation", "--no-reports", "--nprocs", "2", "-v",
                               "--contrast", "visual=visual"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert f"{first} has no contrast to compute and was left out" in done.stderr
        assert "while nilearn loaded" not in done.stderr
    written = sorted(outs["command"].rglob("*_statmap.nii.gz"))
    assert written and not any(first in path.name for path in written)
    for ours in written:
        assert np.array_equal(data(ours), data(outs["library"] / ours.relative_to(outs["command"]))), ours.name


def test_a_fresh_process_writes_the_same_reports_with_a_child(fresh_dataset, tmp_path):
    """The command writes every other subject's report in a forked child: the pages and every
    figure and table are those the library call (no child) writes, but for the command line."""
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    outs, logs = {}, {}
    for how in ("command", "library"):
        outs[how] = tmp_path / how
        start = (["-m", "bids_fixedfx"] if how == "command"
                 else ["-c", "import sys; from bids_fixedfx.cli import main; sys.exit(main(sys.argv[1:]))"])
        done = subprocess.run([sys.executable, *start, str(dataset.path), str(outs[how]), "participant",
                               "--skip-bids-validation", "--nprocs", "2", "-v"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        logs[how] = done.stderr
    assert "Writing 1 of the 3 subject reports in process" in logs["command"]
    assert "subject reports in process" not in logs["library"]
    reports = sorted(p.relative_to(outs["command"]) for p in outs["command"].rglob("*")
                     if p.is_file() and (p.suffix in (".html", ".png", ".svg") or "figures" in p.parts)
                     and p.parent.name != "logs")
    assert {p.name for p in reports} >= {"sub-01.html", "sub-02.html", "sub-03.html"}
    assert sum(p.suffix == ".png" for p in reports) >= 3
    for relative in reports:
        ours, theirs = (outs[how] / relative for how in ("command", "library"))
        if relative.suffix == ".html":
            ours, theirs = (path.read_text().replace(str(path.parents[len(relative.parts) - 1]), "OUT") for path in (ours, theirs))
            ours, theirs = ([line for line in text.splitlines() if "bids-fixedfx" not in line] for text in (ours, theirs))
            assert ours == theirs, relative
        else:
            assert ours.read_bytes() == theirs.read_bytes(), relative


def test_an_error_in_the_selecting_child_is_reported_as_without_it(example_dataset, tmp_path):
    """The same error line and exit code whether the runs are selected in a child (the
    command, two cores) or not (one core; or ``cli.main`` called in a caller's process, which
    the app does not fork), and nothing written."""
    outcomes = {}
    for how, nprocs in (("command", "1"), ("command", "2"), ("library", "2")):
        out = tmp_path / f"out-{how}-{nprocs}"
        arguments = [str(example_dataset.path), str(out), "participant", "--participant-label", "99",
                     "--skip-bids-validation", "--nprocs", nprocs, "-v"]
        start = (["-m", "bids_fixedfx"] if how == "command"
                 else ["-c", "import sys; from bids_fixedfx.cli import main; sys.exit(main(sys.argv[1:]))"])
        done = subprocess.run([sys.executable, *start, *arguments], capture_output=True, text=True, timeout=600)
        assert done.returncode == 66, done.stderr
        errors = [line.split(" ", 1)[1] for line in done.stderr.splitlines() if " ERROR: " in line]
        assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))  # nothing written
        outcomes[how, nprocs] = ("Selecting the runs in process" in done.stderr, errors)
    forked = {key: outcome[0] for key, outcome in outcomes.items()}
    assert forked == {("command", "1"): False, ("command", "2"): True, ("library", "2"): False}
    errors = [outcome[1] for outcome in outcomes.values()]
    assert len(errors[0]) == 1 and "99" in errors[0][0]
    assert errors[0] == errors[1] == errors[2]


def _participant_outputs(analysed, target):
    """A copy of the participant level's outputs (no group/)."""
    shutil.copytree(analysed, target, ignore=lambda folder, names: [n for n in names if n.startswith("group")])
    return target


def test_a_fresh_process_plans_the_group_level_in_a_child_and_writes_the_same_maps(example_dataset, analysed,
                                                                                     tmp_path):
    """The command plans the group level in a forked child while it loads nilearn, and the
    child composes the methods text while the maps are computed: the maps, sidecars, report and
    methods text are those of the library call (no child); an error in planning gives the same
    line and exit code, and nothing is written."""
    outs, logs = {}, {}
    for how in ("command", "library"):
        outs[how] = _participant_outputs(analysed, tmp_path / how)
        start = (["-m", "bids_fixedfx"] if how == "command"
                 else ["-c", "import sys; from bids_fixedfx.cli import main; sys.exit(main(sys.argv[1:]))"])
        before = checksums(outs[how])
        failed = subprocess.run([sys.executable, *start, str(example_dataset.path), str(outs[how]), "group",
                                 "--nprocs", "2", "-v", "--group-covariates", "height"],
                                capture_output=True, text=True, timeout=600)
        assert checksums(outs[how]) == before  # nothing written
        done = subprocess.run([sys.executable, *start, str(example_dataset.path), str(outs[how]), "group",
                               "--nprocs", "2", "-v"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        errors = [line.split(" ", 1)[1] for line in failed.stderr.splitlines() if " ERROR: " in line]
        logs[how] = (failed.returncode, errors, done.stderr)
    for line in ("Planning the group level in process", "Methods text composed in process"):
        assert line in logs["command"][2] and line not in logs["library"][2]
    assert logs["command"][:2] == logs["library"][:2]
    assert logs["command"][0] != 0 and len(logs["command"][1]) == 1 and "height" in logs["command"][1][0]
    written = sorted(p.relative_to(outs["command"]) for p in (outs["command"] / "group").rglob("*") if p.is_file())
    assert sum(p.name.endswith("_statmap.nii.gz") for p in written) >= 10
    assert written == sorted(p.relative_to(outs["library"]) for p in (outs["library"] / "group").rglob("*")
                             if p.is_file())
    for relative in [*written, Path("group.html"), *(Path("logs") / f"CITATION.{kind}" for kind in ("md", "bib", "html"))]:
        ours, theirs = (outs[how] / relative for how in ("command", "library"))
        if relative.suffix == ".html":
            ours, theirs = ([line for line in path.read_text().replace(str(outs[how]), "OUT").splitlines()
                             if "bids-fixedfx" not in line] for path, how in ((ours, "command"), (theirs, "library")))
        elif relative.parent.name == "logs":  # the methods text quotes the command line
            ours, theirs = (path.read_text().replace(str(outs[how]), "OUT")
                            for path, how in ((ours, "command"), (theirs, "library")))
        else:
            ours, theirs = ours.read_bytes(), theirs.read_bytes()
        assert ours == theirs, relative


def test_an_unreadable_run_design_sidecar_stops_the_group_level_before_it_writes(example_dataset, analysed,
                                                                                   tmp_path):
    """The methods text reads the first level back from the runs' design sidecars: they are
    read while planning, so one that cannot be read is an error naming it, with nothing
    written, from the command (planning in a child) as from the library call."""
    results = []
    for how in ("command", "library"):
        out = _participant_outputs(analysed, tmp_path / how)
        broken = sorted(out.glob("sub-*/**/*_design.json"))[-1]
        broken.write_text("{not json")
        before = checksums(out)
        start = (["-m", "bids_fixedfx"] if how == "command"
                 else ["-c", "import sys; from bids_fixedfx.cli import main; sys.exit(main(sys.argv[1:]))"])
        done = subprocess.run([sys.executable, *start, str(example_dataset.path), str(out), "group", "--nprocs", "2"],
                              capture_output=True, text=True, timeout=600)
        assert checksums(out) == before  # nothing written, the broken sidecar left as it was
        errors = [line.split(" ", 1)[1] for line in done.stderr.splitlines() if " ERROR: " in line]
        assert len(errors) == 1 and broken.name in errors[0] and "JSON" in errors[0], done.stderr
        results.append((done.returncode, errors[0].replace(str(out), "OUT")))
    assert results[0] == results[1] and results[0][0] == EX_NO_INPUT


@pytest.mark.parametrize("change, said", [
    (lambda d: d.update(RandomEffects={"NumberOfRuns": d.pop("FixedEffects")["NumberOfRuns"]}),
     "runs combined by fixed effects vs one-sample t-test"),
    (lambda d: d.update(SmoothingFWHM=8.0), "SmoothingFWHM 5.0 vs 8.0"),
])
def test_subject_maps_made_differently_are_not_tested_together(example_dataset, analysed, tmp_path, capsys,
                                                               change, said):
    """A subject whose maps were combined by another estimator (a one-sample t-test across its
    runs instead of fixed effects) or fitted with other settings is refused by the group level,
    in one sentence naming both subjects and the difference, before anything is written."""
    out = _participant_outputs(analysed, tmp_path / "out")
    subjects = sorted(p.name for p in out.glob("sub-*") if p.is_dir())
    for path in sorted((out / subjects[-1]).rglob("*_contrast-audio_stat-*_statmap.json")):
        if "_run-" not in path.name:
            sidecar = json.loads(path.read_text())
            change(sidecar)
            path.write_text(json.dumps(sidecar))
    before = checksums(out)
    assert main([str(example_dataset.path), str(out), "group"]) == EX_USAGE
    assert checksums(out) == before
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{subjects[0]} and {subjects[-1]}" in error and "contrast-audio" in error and said in error, error


def test_subjects_fitted_with_other_confounds_or_dummy_scans_are_not_tested_together(fresh_dataset, tmp_path, capsys):
    """One subject rerun with ``--confounds trans_x`` or ``--dummy-scans 2`` was tested with the
    others (exit 0; the methods text said six motion regressors for all)."""
    dataset = fresh_dataset(subjects=("01", "03"))
    out = tmp_path / "out"
    participant = [str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]
    assert main(participant) == 0
    for options, said in ((["--confounds", "trans_x"], 'ConfoundsOption ["trans_x","trans_y"'),
                          (["--dummy-scans", "2"], "DummyScansOption null vs 2")):
        assert main([*participant, "--participant-label", "03", *options]) == 0
        capsys.readouterr()
        before = checksums(out)
        assert main([str(dataset.path), str(out), "group", "--no-reports"]) == EX_USAGE
        assert checksums(out) == before
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert "sub-01 and sub-03" in error and said in error, error
    assert main([*participant, "--participant-label", "03"]) == 0
    assert main([str(dataset.path), str(out), "group", "--no-reports"]) == 0
    # another model file (the same options otherwise: its transformations may differ)
    model = json.loads((out / "models" / "model-default_smdl.json").read_text())
    (tmp_path / "model-other_smdl.json").write_text(json.dumps({**model, "Name": "other"}))
    assert main([*participant, "--participant-label", "03", "-m", str(tmp_path / "model-other_smdl.json")]) == 0
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports"]) == EX_USAGE
    assert 'ModelFile "bids::models/model-default_smdl.json" vs "bids::models/model-other_smdl.json"' in \
        capsys.readouterr().err


def test_subjects_with_maps_in_another_space_only_are_named(fresh_dataset, tmp_path, capsys):
    """Participant jobs run with different --space: each space's tests left out the subjects
    fitted in the other alone, without a word (the subjects without any maps were named)."""
    dataset = fresh_dataset(subjects=("01", "02", "03"))
    out = tmp_path / "out"
    participant = [str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]
    assert main([*participant, "--participant-label", "01", "02"]) == 0
    assert main([*participant, "--participant-label", "02", "03", "--space", "T1w"]) == 0
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "sub-03 has no maps in space-MNI152NLin2009cAsym, only in another space" in said, said
    assert "sub-01 has no maps in space-T1w, only in another space" in said, said


def test_group_maps_of_another_group_model_left_behind_by_a_rerun_are_said(fresh_dataset, tmp_path, capsys):
    """A group job replaces its own group model's maps only: after a participant rerun, the
    fixed-effects group maps stayed, their Sources naming subject maps they were not computed from."""
    dataset = fresh_dataset(subjects=("01", "03"))
    out = tmp_path / "out"
    participant = [str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]
    group = [str(dataset.path), str(out), "group", "--no-reports"]
    assert main(participant) == 0 and main([*group, "--group-model", "fixed"]) == 0
    assert main(group) == 0
    assert "computed from subject maps rewritten" not in capsys.readouterr().err  # nothing changed since
    assert main([*participant, "--smoothing-fwhm", "4"]) == 0
    capsys.readouterr()
    assert main(group) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "group map set(s) of another group model or contrast, such as " in said and "desc-fixedfx" in said, said
    assert "computed from subject maps rewritten or removed since" in said


def test_a_narrower_group_rerun_removes_an_untested_tasks_maps_with_their_mask_and_says_so(two_task_dataset, tmp_path,
                                                                                          capsys):
    """A group rerun over fewer subjects left one task with a single subject: its earlier group
    maps were removed without a word, and its group mask stayed, its Sources naming the
    subjects of maps that were gone."""
    dataset = two_task_dataset(n_subjects=3)
    out = tmp_path / "out"
    participant = [str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]
    group = [str(dataset.path), str(out), "group", "--no-reports"]
    assert main([*participant, "--participant-label", "01", "02"]) == 0
    assert main([*participant, "--participant-label", "03", "--task", "checkerboard"]) == 0
    assert main(group) == 0
    other = sorted(p.name for p in (out / "group").rglob("*task-other*"))
    assert any("_mask." in name for name in other) and any("_statmap." in name for name in other), other
    capsys.readouterr()
    assert main([*group, "--participant-label", "01", "03"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert sorted((out / "group").rglob("*task-other*")) == []
    assert sorted((out / "group").rglob("*task-checkerboard*mask.nii.gz")), "the tested task keeps its mask"
    assert "task-other space-MNI152NLin2009cAsym: the group maps of contrast(s) audio, visual that an earlier job " \
           "wrote were removed, since this job does not test them" in said, said


def test_a_subject_effect_map_removed_from_its_set_is_an_error_naming_it(example_dataset, analysed, tmp_path, capsys):
    """A subject whose effect map of a contrast is gone (its variance map is there) is not left
    out of that contrast's test without a word: the group level stops, naming the file."""
    out = _participant_outputs(analysed, tmp_path / "out")
    removed = sorted(out.glob("sub-*/func/sub-*_task-checkerboard_space-*_contrast-audio_stat-effect_statmap.nii.gz"))[-1]
    removed.unlink()
    before = checksums(out)
    assert main([str(example_dataset.path), str(out), "group"]) == EX_NO_INPUT
    assert checksums(out) == before
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(removed) in error and "rerun the participant level" in error, error


def test_subject_masks_with_no_voxel_in_common_stop_the_group_level_before_it_writes(example_dataset, analysed,
                                                                                     tmp_path, capsys):
    """Was exit 0 with an empty group mask and all-zero maps, without a word: now exit 66 naming
    the subject whose mask leaves the group mask empty, nothing written."""
    out = _participant_outputs(analysed, tmp_path / "out")
    masks = {s: out / f"sub-{s}" / "func" / f"sub-{s}_task-checkerboard_space-{SPACE}_desc-fixedfx_mask.nii.gz"
             for s in ("01", "02", "03")}
    others = (data(masks["01"]) > 0) | (data(masks["03"]) > 0)
    assert (~others).any()
    img = nib.load(masks["02"])
    nib.save(nib.Nifti1Image((~others).astype(np.int8), img.affine), masks["02"])
    before = checksums(out)
    capsys.readouterr()
    assert main([str(example_dataset.path), str(out), "group", "--no-reports", "--space", SPACE]) == EX_NO_INPUT
    assert checksums(out) == before
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "sub-02" in errors[0] and "no voxel in common" in errors[0], errors
    assert "sub-01," not in errors[0] and "sub-03," not in errors[0]


def test_a_subject_mask_that_barely_overlaps_the_others_is_said_to(example_dataset, analysed, tmp_path, capsys):
    """A subject mask of a few voxels shrank the group mask to them, without a word (exit 0)."""
    out = _participant_outputs(analysed, tmp_path / "out")
    masks = {s: out / f"sub-{s}" / "func" / f"sub-{s}_task-checkerboard_space-{SPACE}_desc-fixedfx_mask.nii.gz"
             for s in ("01", "02", "03")}
    shared = (data(masks["01"]) > 0) & (data(masks["03"]) > 0)
    few = np.zeros(shared.shape, dtype=np.int8)
    few.flat[np.flatnonzero(shared)[:4]] = 1
    nib.save(nib.Nifti1Image(few, nib.load(masks["02"]).affine), masks["02"])
    capsys.readouterr()
    assert main([str(example_dataset.path), str(out), "group", "--no-reports", "--space", SPACE]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line and "group mask" in line]
    assert len(warned) == 1, warned  # once for the task's contrasts, which share the masks
    assert "keeps 4 voxels" in warned[0] and "the mask of sub-02 holds the least" in warned[0], warned
    group_mask = next((out / "group").glob("*_mask.nii.gz"))
    assert np.count_nonzero(data(group_mask)) == 4
    nib.save(nib.Nifti1Image(shared.astype(np.int8), nib.load(masks["02"]).affine), masks["02"])
    assert main([str(example_dataset.path), str(out), "group", "--no-reports", "--space", SPACE]) == 0
    assert "group mask" not in capsys.readouterr().err  # a mask of the others' shared voxels: no warning


def test_a_subject_rerun_with_settings_no_model_states_is_refused_saying_which(example_dataset, analysed, tmp_path,
                                                                            capsys):
    """sub-02 rerun with --mask FILE: the group level said only 'ModelFile "bids::models/..." vs
    null', and --mask was never named."""
    out = _participant_outputs(analysed, tmp_path / "out")
    mask = next((example_dataset.path / "derivatives").rglob(f"sub-02_*space-{SPACE}_desc-brain_mask.nii.gz"))
    assert main([str(example_dataset.path), str(out), "participant", "--participant-label", "02", "--mask", str(mask),
                 "--skip-bids-validation", "--no-reports"]) == 0
    capsys.readouterr()
    assert main([str(example_dataset.path), str(out), "group", "--no-reports"]) == 64
    error = " ".join(capsys.readouterr().err.split())
    assert "made with different models" in error and "vs null: the job that wrote null had settings no model" in error
    assert "--mask FILE" in error


def test_the_group_mask_of_one_set_of_subject_masks_is_made_once(example_dataset, analysed, tmp_path,
                                                                    monkeypatch):
    """Every contrast of a task is tested over the same subjects' masks: they are intersected
    once, and the maps are those of the group level that intersected them per test."""
    from bids_fixedfx import combine

    out = _participant_outputs(analysed, tmp_path / "out")
    made = []
    original = combine.intersect_masks
    monkeypatch.setattr(combine, "intersect_masks", lambda masks, *sizes: made.append(tuple(masks)) or original(masks, *sizes))
    assert main([str(example_dataset.path), str(out), "group", "--no-reports", "--nprocs", "1"]) == 0
    tested = {p.name.split("_contrast-")[1].split("_")[0] for p in (out / "group").glob("*_stat-t_statmap.nii.gz")}
    assert len(tested) >= 2 and len(made) == 1 and len(made[0]) == 3
    for ours in sorted((out / "group").glob("*_statmap.nii.gz")):
        assert np.array_equal(data(ours), data(analysed / "group" / ours.name)), ours.name


def test_subject_maps_of_some_subjects_and_tasks_are_those_of_all_filtered(analysed, tmp_path):
    """find_subject_maps lists only the selected subjects' and tasks' names: the maps are those
    of the whole listing kept by subject and task (a longer task label, task-checkerboardx,
    is listed and left out by its label); labels that are no BIDS label find nothing."""
    from bids_fixedfx.plan import find_subject_maps

    out = _participant_outputs(analysed, tmp_path / "out")
    for effect in sorted((out / "sub-02" / "func").glob("sub-02_task-checkerboard_*stat-effect_statmap.nii.gz")):
        shutil.copy(effect, effect.with_name(effect.name.replace("task-checkerboard", "task-checkerboardx")))
    def listed(**selection):
        return [(m.subject, m.task, m.contrast, m.effect, m.variance, m.sidecar, m.mask)
                for m in find_subject_maps(out, **selection)]

    everything = listed()
    assert {m[1] for m in everything} == {"checkerboard", "checkerboardx"} and len(everything) >= 8
    for subjects, tasks in ((("01", "02"), ()), ((), ("checkerboard",)), (("02",), ("checkerboardx",)),
                            (("0*", "../01"), ("checker*", "[c]heckerboard"))):
        expected = [m for m in everything if (not subjects or m[0] in subjects) and (not tasks or m[1] in tasks)]
        found = listed(subjects=subjects, tasks=tasks)
        assert [m for m in found if not tasks or m[1] in tasks] == expected, (subjects, tasks)
        assert all(m[0] in subjects for m in found) or not subjects
    assert listed(subjects=("0*",)) == [] and listed(tasks=("*",)) == []


def checksums(root):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def make_read_only(root):
    for path in [root, *Path(root).rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_read_only_input_is_untouched(fresh_dataset, tmp_path):
    dataset = fresh_dataset(subjects=("03",))
    make_read_only(dataset.path)
    before = checksums(dataset.path)
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant"]) == 0
    assert checksums(dataset.path) == before  # same files, same bytes
    assert not list(out.rglob(".*.tmp*")) and not [p for p in out.rglob(".*") if p.name != ".bidsignore"]


def test_output_under_derivatives_is_allowed_and_not_read_back(fresh_dataset):
    dataset = fresh_dataset(subjects=("03",))
    out = dataset.path / "derivatives" / "bids-fixedfx"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation"]) == 0
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation"]) == 0
    assert list(out.glob("sub-03/func/*_stat-z_statmap.nii.gz"))


def test_seed_case_npz_designs_given_mask_padded_vector(fresh_dataset, tmp_path):
    """nilearn's fixed-effects example: two runs, .npz designs, one mask, a padded vector."""
    dataset = fresh_dataset(subjects=("01",))
    tr = repetition_time(dataset)
    runs = [run_files(dataset, "01", "1", "01"), run_files(dataset, "01", "1", "02")]
    design_dir = tmp_path / "designs"
    design_dir.mkdir()
    designs = []
    for files in runs:
        n_scans = nib.load(str(files["bold"])).shape[3]
        events = pd.read_csv(files["events"], sep="\t")
        design = make_first_level_design_matrix(np.arange(n_scans) * tr, events, drift_model="polynomial",
                                                drift_order=3)
        np.savez(design_dir / f"{files['stem']}_design.npz", X=design.to_numpy())
        designs.append(design)
    mask = runs[0]["mask"]
    weights = [1.0, -1.0]  # audio - visual, zero-padded to the design's width
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--session-label", "1",
                 "--design-dir", str(design_dir), "--mask", str(mask), "--contrast", "AudioMinusVisual=1,-1"]) == 0
    # the example, by hand
    effects, variances, dofs, run_maps = [], [], [], []
    for files, design in zip(runs, designs):
        model = FirstLevelModel(mask_img=str(mask), smoothing_fwhm=5)
        model.fit(str(files["bold"]), design_matrices=[pd.DataFrame(design.to_numpy())])
        vector = np.pad(weights, (0, design.shape[1] - len(weights)))
        maps = model.compute_contrast(vector, output_type="all")
        run_maps.append(maps)
        effects.append(maps["effect_size"])
        variances.append(maps["effect_variance"])
        dofs.append(design.shape[0] - np.linalg.matrix_rank(design.to_numpy()))
    for files, maps in zip(runs, run_maps):
        for stat_name, nilearn_name in STATS.items():
            ours = out / "sub-01" / "ses-1" / "func" / f"{files['stem']}_space-{SPACE}_contrast-AudioMinusVisual_stat-{stat_name}_statmap.nii.gz"
            assert difference(ours, maps[nilearn_name].get_fdata()) < TOLERANCE
    fixed = dict(zip(("effect", "variance", "t", "z"), compute_fixed_effects(effects, variances, mask, dofs=dofs)))
    example_z = compute_fixed_effects(effects, variances, mask)[3]  # the example's 100 dofs per run
    prefix = out / "sub-01" / "func" / f"sub-01_task-checkerboard_space-{SPACE}_contrast-AudioMinusVisual_stat-"
    for stat_name, img in fixed.items():
        assert difference(f"{prefix}{stat_name}_statmap.nii.gz", img.get_fdata()) < TOLERANCE
    assert difference(f"{prefix}z_statmap.nii.gz", example_z.get_fdata()) > TOLERANCE
    sidecar = json.loads(Path(f"{prefix}z_statmap.json").read_text())
    assert sidecar["DegreesOfFreedom"] == float(sum(dofs))
    assert sidecar["Contrast"]["Weights"] == {"X0": 1.0, "X1": -1.0}
    # the designs are fitted as given: the sidecars said glover, cosine 0.01 Hz and six motion confounds
    run_z = next((out / "sub-01" / "ses-1" / "func").glob("*run-01*contrast-AudioMinusVisual_stat-z*.json"))
    for info in (sidecar, json.loads(run_z.read_text())):
        assert (info["HRFModel"], info["DriftModel"], info["HighPass"], info["ConfoundsOption"]) == ("none", "none",
                                                                                                      None, [])
        assert info["SmoothingFWHM"] == 5 and info["NoiseModel"] == "ar1"
    # the designs and the mask, outside any input dataset's own files, are named by BIDS URIs too
    links = json.loads((out / "dataset_description.json").read_text())["DatasetLinks"]
    run_sidecar = next((out / "sub-01" / "ses-1" / "func").glob("*run-01*contrast-AudioMinusVisual_stat-z*.json"))
    sources = [*sidecar["Sources"], *json.loads(run_sidecar.read_text())["Sources"]]
    for uri in sources:
        assert uri.startswith("bids:"), uri
        name, _, relative = uri[len("bids:"):].partition(":")
        assert ((out / links[name]) if name else out).joinpath(relative).resolve().is_file(), uri
    assert f"bids:designs:{runs[0]['stem']}_design.npz" in sources
    assert f"bids:mask:{Path(mask).name}" in sources
    audio, visual = (dataset.active[c] for c in ("audio", "visual"))
    z = data(f"{prefix}z_statmap.nii.gz")
    assert np.median(z[audio]) > 3 and np.median(z[visual]) < -3


def test_console_script_and_module_run(example_dataset, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "bids_fixedfx", str(example_dataset.path), str(out), "participant",
                           "--participant-label", "sub-03", "--skip-bids-validation", "--no-reports"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "sub-03_ses-1_task-checkerboard_run-01" in done.stderr  # a progress line per run
    assert list(out.glob("sub-03/func/*_stat-z_statmap.nii.gz"))


def test_group_fixed_effects_equal_nilearn(example_dataset, analysed, reference, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(analysed, output)
    assert main([str(example_dataset.path), str(output), "group", "--group-model", "fixed"]) == 0
    for condition in example_dataset.conditions:
        subjects = [reference["subjects"][(s, condition)] for s in example_dataset.subjects]
        mask = intersect_masks([s["mask"] for s in subjects], threshold=1, connected=False)
        dofs = [s["dof"] for s in subjects]
        maps = dict(zip(("effect", "variance", "t", "z"), compute_fixed_effects(
            [s["effect"] for s in subjects], [s["variance"] for s in subjects], mask, dofs=dofs)))
        prefix = output / "group" / f"task-checkerboard_space-{SPACE}_contrast-{condition}_stat-"
        for stat_name, img in maps.items():
            assert difference(f"{prefix}{stat_name}_desc-fixedfx_statmap.nii.gz", img.get_fdata()) < TOLERANCE
        p = stats.t.sf(maps["t"].get_fdata(), np.sum(dofs)) * mask.get_fdata()
        assert difference(f"{prefix}p_desc-fixedfx_statmap.nii.gz", p) < TOLERANCE
        sidecar = json.loads(Path(f"{prefix}z_desc-fixedfx_statmap.json").read_text())
        assert sidecar["GroupModel"] == "fixed effects" and sidecar["DegreesOfFreedom"] == sum(dofs)
        assert sidecar["FixedEffects"] == {"PrecisionWeighted": False}
        # the default model's dataset node is the one-sample t-test: these maps cite the default model with
        # fixed effects over the subjects, written beside it (they cited no model)
        assert (sidecar["ModelFile"], sidecar["Node"], sidecar["Level"]) == (
            "bids::models/model-defaultFixedfx_smdl.json", "dataset", "Dataset")
    plain = json.loads(next((analysed / "group").glob("*_contrast-audio_stat-z_statmap.json")).read_text())
    assert plain["ModelFile"] == "bids::models/model-default_smdl.json"
    # that model, given back with -m, makes the same maps
    again = tmp_path / "again"
    shutil.copytree(analysed, again)
    assert main([str(example_dataset.path), str(again), "group", "--no-reports", "-m",
                 str(output / "models" / "model-defaultFixedfx_smdl.json")]) == 0
    written = sorted((output / "group").glob("*_desc-fixedfx_statmap.*"))
    assert written and [p.name for p in written] == [p.name for p in sorted((again / "group").glob("*_desc-fixedfx_statmap.*"))]
    for path in written:
        assert path.read_bytes() == (again / "group" / path.name).read_bytes(), path.name


def test_a_precision_weighted_dataset_node_weights_the_subjects(example_dataset, analysed, reference, tmp_path):
    """A model's dataset meta node with Software.nilearn.precision_weighted true: its maps were a
    plain mean of the subjects, the setting ignored, while the sidecar cited the model."""
    output = tmp_path / "out"
    shutil.copytree(analysed, output)
    document = json.loads((output / "models" / "model-default_smdl.json").read_text())
    document["Name"] = "weighted"
    dataset = next(node for node in document["Nodes"] if node["Level"] == "Dataset")
    dataset["Model"] = {"Type": "meta", "X": [1], "Software": {"nilearn": {"precision_weighted": True}}}
    model = tmp_path / "model-weighted_smdl.json"
    model.write_text(json.dumps(document))
    assert main([str(example_dataset.path), str(output), "group", "-m", str(model), "--no-reports"]) == 0
    for condition in example_dataset.conditions:
        subjects = [reference["subjects"][(s, condition)] for s in example_dataset.subjects]
        mask = intersect_masks([s["mask"] for s in subjects], threshold=1, connected=False)
        maps = dict(zip(("effect", "variance", "t", "z"), compute_fixed_effects(
            [s["effect"] for s in subjects], [s["variance"] for s in subjects], mask, precision_weighted=True,
            dofs=[s["dof"] for s in subjects])))
        prefix = output / "group" / f"task-checkerboard_space-{SPACE}_contrast-{condition}_stat-"
        for stat_name, img in maps.items():
            assert difference(f"{prefix}{stat_name}_desc-fixedfx_statmap.nii.gz", img.get_fdata()) < TOLERANCE
        sidecar = json.loads(Path(f"{prefix}t_desc-fixedfx_statmap.json").read_text())
        assert sidecar["FixedEffects"] == {"PrecisionWeighted": True}
        assert sidecar["ModelFile"] == "bids::models/model-weighted_smdl.json"
    methods = " ".join((output / "logs" / "CITATION.md").read_text().split())
    assert "(nilearn's `compute_fixed_effects`, weighted by inverse variance)" in methods
    dataset["Model"]["Software"]["nilearn"]["precision_weighted"] = "yes"
    model.write_text(json.dumps(document))
    assert main([str(example_dataset.path), str(output), "group", "-m", str(model), "--no-reports"]) == 64


@pytest.mark.parametrize("tamper", ["nan", "negative dof", "text dof", "grid"])
def test_a_tampered_subject_map_is_named_at_the_group_level(example_dataset, analysed, tmp_path, capsys, tamper):
    """Each was exit 0 with NaN maps or p values from a wrong dof, or exit 1 ('Processing failed').
    The map is one of the last test's (visual), found while computing it: the tests computed
    before it are not written either."""
    output = tmp_path / "out"
    shutil.copytree(analysed, output)
    shutil.rmtree(output / "group")
    effect = (output / "sub-02" / "func"
              / f"sub-02_task-checkerboard_space-{SPACE}_contrast-visual_stat-effect_statmap.nii.gz")
    sidecar = effect.with_name(effect.name.replace(".nii.gz", ".json"))
    img = nib.load(effect)
    if tamper == "nan":
        nib.save(nib.Nifti1Image(np.full(img.shape, np.nan, np.float32), img.affine), effect)
    elif tamper == "grid":
        nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.float32), img.affine), effect)
    else:
        data = json.loads(sidecar.read_text())
        data["DegreesOfFreedom"] = -5 if tamper == "negative dof" else "abc"
        sidecar.write_text(json.dumps(data))
    capsys.readouterr()
    for model in ("random", "fixed"):
        assert main([str(example_dataset.path), str(output), "group", "--no-reports", "--group-model", model]) == 66
        errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
        assert len(errors) == 1 and str(effect.name if tamper in ("nan", "grid") else sidecar.name) in errors[0]
        assert not (output / "group").exists()
        assert not list((output / outputs.STAGING_ROOT).glob("*"))


def test_a_subject_without_maps_of_a_contrast_is_named_in_a_warning(example_dataset, analysed, tmp_path, capsys):
    """sub-02 rerun with one contrast (av) only: audio and visual were tested over sub-01 and
    sub-03 with a line at INFO level only; each test now warns that sub-02 is left out, and why."""
    output = _participant_outputs(analysed, tmp_path / "out")
    assert main([str(example_dataset.path), str(output), "participant", "--participant-label", "02",
                 "--contrast", "av=audio-visual", "--skip-bids-validation", "--no-reports"]) == 0
    capsys.readouterr()
    assert main([str(example_dataset.path), str(output), "group", "--no-reports"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    for contrast in ("audio", "visual"):
        said = [line for line in warnings if f"contrast-{contrast} " in line and "sub-02" in line]
        assert len(said) == 1 and "sub-01" not in said[0] and "sub-03" not in said[0], warnings
        assert f"no contrast-{contrast} maps" in said[0], said
        sidecar = json.loads(next((output / "group").glob(f"*contrast-{contrast}_stat-z_statmap.json")).read_text())
        assert sidecar["Subjects"] == ["01", "03"]
    assert len([line for line in warnings if "contrast-av" in line]) == 1  # tested for sub-02 only: not tested


def test_a_group_test_in_each_subject_s_own_anatomy_is_said(fresh_dataset, tmp_path, capsys):
    """space-T1w subject maps were tested together without a word (fsnative is left out)."""
    dataset = fresh_dataset(subjects=("01", "02"))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--space", "T1w"]) == 0
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "each subject's own anatomy" in line]
    assert len(said) == 1 and "space-T1w" in said[0] and "WARNING" in said[0]


def test_a_group_test_of_maps_without_a_space_is_said(fresh_dataset, tmp_path, capsys):
    """Maps of inputs that name no space (each run's own BOLD reference) were tested across
    subjects without a word, where space-T1w ones are said."""
    dataset = fresh_dataset(subjects=("01", "02"))
    for path in sorted((dataset.path / "derivatives").rglob("*_space-*")):
        if "_space-T1w_" in path.name:
            path.rename(path.with_name(path.name.replace("_space-T1w", "")))
        else:
            path.unlink()
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    assert not list(out.rglob("*_space-*"))
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "group", "--no-reports"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "maps without a space- entity" in line]
    assert len(said) == 1 and "WARNING" in said[0] and "own BOLD reference" in said[0]


def test_a_group_participant_label_without_maps_is_named_in_a_warning(example_dataset, analysed, tmp_path, capsys):
    output = tmp_path / "out"
    shutil.copytree(analysed, output)
    capsys.readouterr()
    assert main([str(example_dataset.path), str(output), "group", "--no-reports", "--participant-label",
                 *example_dataset.subjects, "99"]) == 0
    err = capsys.readouterr().err
    assert f"--participant-label 99 has no maps in {output}" in err
    assert f"{example_dataset.path} has no sub-99 either: check the label" in " ".join(err.split())
    assert not any(f"--participant-label {s} " in err for s in example_dataset.subjects)
    sidecar = json.loads(next((output / "group").glob("*contrast-audio_stat-z_statmap.json")).read_text())
    assert sidecar["DegreesOfFreedom"] == len(example_dataset.subjects) - 1


def test_subjects_of_the_dataset_without_maps_are_named_at_the_group_level(example_dataset, analysed, tmp_path,
                                                                           capsys):
    """Was silent: a subject whose participant job failed was left out of the group test."""
    output = tmp_path / "out"
    shutil.copytree(analysed, output)
    anatomy_only = example_dataset.path / "sub-99" / "anat"  # as OpenNeuro datasets hold: no maps to miss
    anatomy_only.mkdir(parents=True)
    capsys.readouterr()
    try:
        assert main([str(example_dataset.path), str(output), "group", "--no-reports"]) == 0
    finally:
        shutil.rmtree(anatomy_only.parent)
    assert "have no maps in" not in capsys.readouterr().err
    first, *others = example_dataset.subjects
    shutil.rmtree(output / f"sub-{first}")
    shutil.rmtree(output / "group")
    assert main([str(example_dataset.path), str(output), "group", "--no-reports"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "have no maps in" in line]
    assert len(said) == 1 and f"(sub-{first})" in said[0] and "WARNING" in said[0]
    sidecar = json.loads(next((output / "group").glob("*contrast-audio_stat-z_statmap.json")).read_text())
    assert sidecar["Subjects"] == others


def test_a_subject_without_maps_of_one_contrast_is_named_with_both_causes(example_dataset, analysed, tmp_path,
                                                                          capsys):
    """Said only 'rerun the participant level with that contrast', which cannot help a subject
    whose runs have no such events."""
    output = tmp_path / "out"
    shutil.copytree(analysed, output, ignore=shutil.ignore_patterns("group"))
    first, *others = example_dataset.subjects
    for path in (output / f"sub-{first}" / "func").glob(f"sub-{first}_task-*_contrast-visual_stat-*"):
        path.unlink()
    capsys.readouterr()
    assert main([str(example_dataset.path), str(output), "group", "--no-reports"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "is tested without" in line]
    assert len(said) == 1 and f"contrast-visual is tested without sub-{first}," in said[0]
    assert "runs hold nothing that contrast weighs" in said[0] and "ran with other contrasts" in said[0]
    visual = json.loads(next((output / "group").glob("*contrast-visual_stat-z_statmap.json")).read_text())
    audio = json.loads(next((output / "group").glob("*contrast-audio_stat-z_statmap.json")).read_text())
    assert visual["Subjects"] == others and audio["Subjects"] == list(example_dataset.subjects)


def test_a_subject_whose_runs_all_lack_a_condition_others_have_is_warned(fresh_dataset, tmp_path, capsys):
    """Its maps of that condition were not made, without a word (the group level then said the
    subject report says so)."""
    dataset = fresh_dataset(subjects=("01", "02"))
    for path in (dataset.path / "sub-01").rglob("*_events.tsv"):
        table = pd.read_csv(path, sep="\t")
        table[table["trial_type"] != "visual"].to_csv(path, sep="\t", index=False, na_rep="n/a")
    output = tmp_path / "out"
    assert main([str(dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "none of its runs has" in line]
    assert len(said) == 1 and "WARNING" in said[0]
    assert "sub-01 task-checkerboard: none of its runs has visual" in said[0] and "1 other subject(s)" in said[0]
    assert not list(output.rglob("sub-01_*contrast-visual_*")) and list(output.rglob("sub-02_*contrast-visual_*"))


def test_a_subject_whose_runs_are_all_left_out_is_told_its_earlier_maps_stay(fresh_dataset, tmp_path, capsys):
    """Its earlier maps stayed, without a word, and the group level tested them."""
    dataset = fresh_dataset(subjects=("01", "02"))
    output = tmp_path / "out"
    args = [str(dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports"]
    assert main(args) == 0
    earlier = sorted(p.name for p in output.rglob("sub-01_*_statmap.nii.gz"))
    capsys.readouterr()
    assert main(args) == 0  # every run fitted again: nothing said
    assert "every run was left out" not in capsys.readouterr().err
    for path in (dataset.path / "sub-01").rglob("*_events.tsv"):
        path.write_text(path.read_text().splitlines()[0] + "\n")  # a header alone: no contrast to compute
    assert main(args) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "every run was left out" in line]
    assert len(said) == 1 and "WARNING" in said[0] and f"so the {len(earlier)} maps of it" in said[0], said
    assert said[0].split(": every run")[0].endswith(f"sub-01 task-checkerboard space-{SPACE}"), said
    assert sorted(p.name for p in output.rglob("sub-01_*_statmap.nii.gz")) == earlier


@pytest.mark.slow
def test_the_default_model_of_modulated_events_gives_identical_maps(fresh_dataset, tmp_path, capsys):
    """Events with a modulation column: the model written had no Product, so -m of it fitted
    unmodulated events (effects off by 1.4 of 2.6); with a modulation n/a no model is written."""
    dataset = fresh_dataset(subjects=("01",))
    events = sorted((dataset.path / "sub-01").rglob("*_events.tsv"))
    for index, path in enumerate(events):
        table = pd.read_csv(path, sep="\t")
        table["modulation"] = np.linspace(0.5, 2.0, len(table)) + index
        table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    output, again = tmp_path / "out", tmp_path / "again"
    common = [str(dataset.path), "participant", "--skip-bids-validation", "--no-reports"]
    assert main([common[0], str(output), *common[1:]]) == 0
    model = output / "models" / "model-default_smdl.json"
    assert '"Product"' in model.read_text()
    assert main([common[0], str(again), *common[1:], "-m", str(model)]) == 0
    names = sorted(p.relative_to(output) for p in output.rglob("*_statmap.nii.gz"))
    assert names and all((output / n).read_bytes() == (again / n).read_bytes() for n in names)
    table = pd.read_csv(events[0], sep="\t")
    table.loc[0, "modulation"] = np.nan
    table.to_csv(events[0], sep="\t", index=False, na_rep="n/a")
    missing = tmp_path / "missing"
    capsys.readouterr()
    assert main([common[0], str(missing), *common[1:]]) == 0
    assert not (missing / "models").exists()
    assert "modulation column is n/a for some events" in capsys.readouterr().err


def test_a_job_stopped_before_its_first_maps_leaves_the_model_copy_as_it_was(example_dataset, tmp_path, monkeypatch):
    """A job of other options killed while fitting its first subject had already replaced
    models/model-default_smdl.json, which every map then cited."""
    from bids_fixedfx import glm

    output = tmp_path / "out"
    common = [str(example_dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports",
              "--participant-label", example_dataset.subjects[0]]
    assert main(common) == 0
    model = output / "models" / "model-default_smdl.json"
    before = model.read_text()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(glm, "fit_masked", stopped)
    assert main([*common, "--smoothing-fwhm", "8"]) == 130
    assert model.read_text() == before
    monkeypatch.undo()
    assert main([*common, "--smoothing-fwhm", "8"]) == 0
    assert model.read_text() != before and '"smoothing_fwhm": 8.0' in model.read_text()


def test_a_job_beside_one_of_other_options_says_the_copy_it_replaced(example_dataset, tmp_path, capsys,
                                                                      monkeypatch):
    """Two jobs of other options run at once: neither found a model copy when it began, so the
    second to write it replaced the first's without a word, and that job's subject cited it."""
    from bids_fixedfx import workflow

    output = tmp_path / "out"
    first, second, *_ = example_dataset.subjects
    common = [str(example_dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports"]
    real, beside = workflow._fit_all, []

    def fit_all(*args, **kwargs):  # the other job runs its course while this one begins fitting
        if not beside:
            beside.append(None)  # (its own fit comes here too)
            beside[0] = main([*common, "--participant-label", first, "--hrf-model", "spm"])
        return real(*args, **kwargs)

    monkeypatch.setattr(workflow, "_fit_all", fit_all)
    assert main([*common, "--participant-label", second]) == 0 and beside == [0]
    said = [line for line in capsys.readouterr().err.splitlines() if "described other options" in line]
    assert len(said) == 1 and f"(sub-{first} was made with them)" in said[0] and "WARNING" in said[0], said


@pytest.mark.parametrize("audio_only", ["01", "02"])
def test_jobs_of_the_same_options_at_once_say_nothing_of_the_copy(fresh_dataset, tmp_path, capsys, monkeypatch,
                                                                   audio_only):
    """An array job's subjects on a fresh OUTPUT_DIR, one without visual events: the copy written
    beside it was checked as another model's, and said to describe other contrasts."""
    from bids_fixedfx import workflow

    dataset = fresh_dataset(subjects=("01", "02"))
    for path in (dataset.path / f"sub-{audio_only}").rglob("*_events.tsv"):
        table = pd.read_csv(path, sep="\t")
        table[table["trial_type"] != "visual"].to_csv(path, sep="\t", index=False)
    output = tmp_path / "out"
    common = [str(dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports"]
    real, beside = workflow._fit_all, []

    def fit_all(*args, **kwargs):
        if not beside:
            beside.append(None)
            beside[0] = main([*common, "--participant-label", "01"])
        return real(*args, **kwargs)

    monkeypatch.setattr(workflow, "_fit_all", fit_all)
    assert main([*common, "--participant-label", "02"]) == 0 and beside == [0]
    assert "described other" not in capsys.readouterr().err


def test_a_job_that_replaces_the_default_model_of_other_subjects_says_so(example_dataset, tmp_path, capsys):
    """A job with other options replaced models/model-default_smdl.json without a word, though
    the subjects fitted before cite it."""
    output = tmp_path / "out"
    first, second, *_ = example_dataset.subjects
    common = [str(example_dataset.path), str(output), "participant", "--skip-bids-validation", "--no-reports"]
    assert main([*common, "--participant-label", first, "--hrf-model", "spm"]) == 0
    assert main([*common, "--participant-label", second, "--hrf-model", "spm"]) == 0
    assert "described other options" not in capsys.readouterr().err  # the same options
    assert main([*common, "--participant-label", second]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "described other options" in line]
    assert len(said) == 1 and f"(sub-{first} was made with them)" in said[0] and "WARNING" in said[0]
    assert '"glover"' in (output / "models" / "model-default_smdl.json").read_text()
    assert main([*common, "--participant-label", first, second]) == 0  # every subject made again: nothing to say
    assert "described other options" not in capsys.readouterr().err
    # one subject with other options (said), then back to those of the others: the copy described
    # the other options, but no subject left alone was made with them (it said both were)
    assert main([*common, "--participant-label", second, "--smoothing-fwhm", "6"]) == 0
    assert "described other options" in capsys.readouterr().err
    assert main([*common, "--participant-label", second]) == 0
    assert "described other options" not in capsys.readouterr().err
    # other contrasts, the same first-level settings: said, without the group level's refusal (it tests them)
    assert main([*common, "--participant-label", second, "--contrast", "av=audio-visual"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "described other" in line]
    assert len(said) == 1 and f"described other contrasts (sub-{first} was made with them)" in said[0]
    assert "-m of it would not remake their maps" in said[0] and "refuse" not in said[0]
    # another weighting of the runs (the subject node's), then the same subject in another space: said
    assert main([*common, "--participant-label", first, second]) == 0
    capsys.readouterr()
    assert main([*common, "--participant-label", second, "--precision-weighted"]) == 0
    assert f"(sub-{first} was made with them)" in capsys.readouterr().err
    assert main([*common, "--participant-label", first, second, "--space", SPACE]) == 0
    capsys.readouterr()
    assert main([*common, "--participant-label", first, second, "--space", "T1w", "--smoothing-fwhm", "4"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert f"(sub-{first}'s other tasks or spaces, sub-{second}'s other tasks or spaces were made with them)" in said
    assert "will refuse" not in said  # the group level tests a space at a time: it tested them


def test_a_subject_map_that_is_a_device_is_named_so(example_dataset, analysed, tmp_path, capsys):
    """A subject's effect map linked to /dev/zero was said to be missing."""
    output = tmp_path / "out"
    shutil.copytree(analysed, output, ignore=shutil.ignore_patterns("group"))
    first = example_dataset.subjects[0]
    (effect,) = (output / f"sub-{first}" / "func").glob(f"sub-{first}_task-*_contrast-audio_stat-effect_statmap.nii.gz")
    effect.unlink()
    effect.symlink_to("/dev/zero")
    capsys.readouterr()
    assert main([str(example_dataset.path), str(output), "group", "--no-reports"]) == 66
    assert f"{effect} is not a regular file (a folder, a device or a pipe); rerun" in capsys.readouterr().err
    assert not (output / "group").exists()


def test_a_weight_list_that_weighs_other_columns_in_other_runs_is_said(fresh_dataset, tmp_path, capsys):
    """--contrast w=0,1 weighed visual in one run and trans_x in a run without visual events
    (weights follow each run's columns, as nilearn pads them), and the subject map averaged both
    without a word."""
    dataset = fresh_dataset(subjects=("01",))
    events = sorted((dataset.path / "sub-01").rglob("*_events.tsv"))
    table = pd.read_csv(events[-1], sep="\t")
    table[table["trial_type"] != "visual"].to_csv(events[-1], sep="\t", index=False)
    common = [str(dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation", "--no-reports"]
    capsys.readouterr()
    assert main([*common, "--contrast", "w=0,1"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "weighs other columns" in line]
    assert len(said) == 1 and "Contrast 'w' weighs other columns in other runs of sub-01" in said[0]
    assert "visual 1" in said[0] and "trans_x 1" in said[0]
    assert main([*common, "--contrast", "w=visual"]) == 0  # named: the run without visual goes without it
    assert "weighs other columns" not in capsys.readouterr().err


def test_precision_weighted_fixed_effects(example_dataset, reference, tmp_path):
    output = tmp_path / "out"
    assert main([str(example_dataset.path), str(output), "participant", "--participant-label", "02",
                 "--precision-weighted", "--skip-bids-validation", "--no-reports"]) == 0
    runs = subject_runs(example_dataset, "02")
    effects = [reference["runs"][(r["stem"], "visual")]["effect_size"] for r in runs]
    variances = [reference["runs"][(r["stem"], "visual")]["effect_variance"] for r in runs]
    dofs = [reference["subjects"][("02", "visual")]["dof"] / len(runs)] * len(runs)
    mask = reference["subjects"][("02", "visual")]["mask"]
    maps = dict(zip(("effect", "variance", "t", "z"), compute_fixed_effects(
        effects, variances, mask, precision_weighted=True, dofs=dofs)))
    prefix = output / "sub-02" / "func" / f"sub-02_task-checkerboard_space-{SPACE}_contrast-visual_stat-"
    for stat_name, img in maps.items():
        assert difference(f"{prefix}{stat_name}_statmap.nii.gz", img.get_fdata()) < TOLERANCE
    sidecar = json.loads(Path(f"{prefix}t_statmap.json").read_text())
    assert sidecar["FixedEffects"] == {"PrecisionWeighted": True, "NumberOfRuns": 4}


def out_of_session_1(dataset, subject):
    """Move a subject's ses-1 files (raw and derivatives) out of their session, without ses- in
    their names, and run-01 named without run-."""
    for root in (dataset.path, dataset.path / "derivatives" / "fmriprep"):
        session = root / f"sub-{subject}" / "ses-1"
        for path in sorted(session.rglob("*")):
            if path.is_file():
                target = root / f"sub-{subject}" / path.relative_to(session).parent / path.name.replace(
                    "_ses-1", "").replace("_run-01", "")
                target.parent.mkdir(parents=True, exist_ok=True)
                path.rename(target)
        shutil.rmtree(session)


def test_single_run_named_by_subject_and_task_only(fresh_dataset, tmp_path):
    """A run without ses- or run- has the subject maps' names: written once, sources not circular."""
    dataset = fresh_dataset(subjects=("03",))
    out_of_session_1(dataset, "03")
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    sidecar_path = out / "sub-03" / "func" / f"sub-03_task-checkerboard_space-{SPACE}_contrast-audio_stat-z_statmap.json"
    sidecar = json.loads(sidecar_path.read_text())
    assert not any(s.endswith(sidecar_path.name.replace(".json", ".nii.gz")) for s in sidecar["Sources"])
    assert any(s.endswith("_desc-preproc_bold.nii.gz") for s in sidecar["Sources"])
    assert sidecar["FixedEffects"] == {"PrecisionWeighted": False, "NumberOfRuns": 1}
    # its R² map has no contrast, so it has a name of its own beside the subject's maps, and is
    # part of the subject's set: a rerun replaces it and leaves nothing stale
    r_square = out / "sub-03" / "func" / f"sub-03_task-checkerboard_space-{SPACE}_stat-rsquared_statmap.nii.gz"
    assert json.loads(r_square.with_suffix("").with_suffix(".json").read_text())["Level"] == "Run"
    before = sorted(p.name for p in (out / "sub-03" / "func").iterdir())
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    assert sorted(p.name for p in (out / "sub-03" / "func").iterdir()) == before
    assert 0 < np.median(data(r_square)[data(r_square) > 0]) < 1


@pytest.mark.parametrize("other", ["run-02", "acq-mb"])
def test_a_run_without_run_beside_other_runs_is_refused(fresh_dataset, tmp_path, capsys, other):
    """A run named without run- beside a numbered one (a run acquired again, on OpenNeuro): its maps
    had the subject maps' names, were written over by the fixed effects, and these cited themselves."""
    dataset = fresh_dataset(subjects=("01",))
    for root in (dataset.path, dataset.path / "derivatives" / "fmriprep"):
        shutil.rmtree(root / "sub-01" / "ses-2")
    out_of_session_1(dataset, "01")
    for path in sorted(dataset.path.rglob("*_run-02_*")) if other == "acq-mb" else ():  # no run- either
        path.rename(path.with_name(path.name.replace("_run-02", "").replace("task-checkerboard_",
                                                                            "task-checkerboard_acq-mb_")))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 64
    error = capsys.readouterr().err
    assert f"sub-01_task-checkerboard_space-{SPACE}_desc-preproc_bold.nii.gz has no run- entity, beside other " \
           f"runs of its task (sub-01_task-checkerboard_{other}_space-" in error, error
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
    # either filter the error gives fits one of them (it gave {"run": null} alone, which fails beside an acq-)
    filters = re.search(r"--bids-filter-file (\{.*?\}\}) or (\{.*?\}\})", error).groups()
    for number, text in enumerate(filters):
        (tmp_path / f"filter{number}.json").write_text(text)
        assert main([str(dataset.path), str(tmp_path / f"out{number}"), "participant", "--skip-bids-validation",
                     "--no-reports", "--bids-filter-file", str(tmp_path / f"filter{number}.json")]) == 0, text


def test_a_session_node_over_one_unnumbered_run_per_session_takes_its_maps(tmp_path):
    """ds000114's shape (ses-test, ses-retest, one run each, no run-) with a session node: refused as
    "no run- entity, beside other runs of its task", naming the run of the other session."""
    from bids_fixedfx.example_data import make_example_dataset

    dataset = make_example_dataset(tmp_path / "ds", n_subjects=1, n_sessions=2, n_runs=1, shape=(12, 14, 12),
                                   n_volumes=40)
    for path in sorted(dataset.path.rglob("*_run-01_*")):
        path.rename(path.with_name(path.name.replace("_run-01_", "_")))
    model = tmp_path / "model-sessions_smdl.json"
    model.write_text(json.dumps({"Name": "sessions", "BIDSModelVersion": "1.0.0", "Nodes": [
        {"Level": "Run", "Name": "run", "GroupBy": ["run", "session", "subject"],
         "Model": {"Type": "glm", "X": ["trial_type.audio", "trial_type.visual", 1]},
         "DummyContrasts": {"Conditions": ["trial_type.audio"], "Test": "t"}},
        {"Level": "Session", "Name": "session", "GroupBy": ["subject", "session", "contrast"],
         "Model": {"Type": "meta", "X": [1]}, "DummyContrasts": {"Test": "t"}},
        {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"],
         "Model": {"Type": "meta", "X": [1]}, "DummyContrasts": {"Test": "t"}}]}))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "-m", str(model)]) == 0
    for session in ("1", "2"):
        sidecar = json.loads((out / "sub-01" / f"ses-{session}" / "func" / (
            f"sub-01_ses-{session}_task-checkerboard_space-{SPACE}_contrast-trialTypeAudio_stat-z_statmap.json")
        ).read_text())
        assert sidecar["Level"] == "Session" and sidecar["FixedEffects"]["NumberOfRuns"] == 1
        assert [s for s in sidecar["Sources"] if s.endswith(f"sub-01_ses-{session}_task-checkerboard_space-{SPACE}"
                                                           "_desc-preproc_bold.nii.gz")]
    subject = json.loads((out / "sub-01" / "func" / (
        f"sub-01_task-checkerboard_space-{SPACE}_contrast-trialTypeAudio_stat-z_statmap.json")).read_text())
    assert subject["Level"] == "Subject" and len([s for s in subject["Sources"] if "stat-effect" in s]) == 2


def test_a_run_not_preprocessed_is_named_among_the_runs_left_out(fresh_dataset, tmp_path, capsys):
    """A run whose preprocessed series is missing was said in the log only: the subject's sidecars
    counted the runs fitted, without the one left out, as they name runs without events."""
    dataset = fresh_dataset(subjects=("01",))
    for path in (dataset.path / "derivatives" / "fmriprep").rglob(f"sub-01_ses-2_task-checkerboard_run-02_space-{SPACE}_*"):
        path.unlink()
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation"]) == 0
    assert "sub-01_ses-2_task-checkerboard_run-02 has a raw BOLD series but no preprocessed one" in \
        capsys.readouterr().err
    sidecar = json.loads((out / "sub-01" / "func" / (
        f"sub-01_task-checkerboard_space-{SPACE}_contrast-audio_stat-z_statmap.json")).read_text())
    assert sidecar["FixedEffects"]["NumberOfRuns"] == 3
    assert sidecar["FixedEffects"]["RunsLeftOut"] == [{
        "Run": "sub-01_ses-2_task-checkerboard_run-02",
        "Reason": f"it has a raw BOLD series but no preprocessed one in space {SPACE}"}]
    page = (out / "sub-01.html").read_text()
    assert "sub-01_ses-2_task-checkerboard_run-02: it has a raw BOLD series but no preprocessed one" in page


def test_raw_only_dataset_runs_with_the_defaults(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("03",), derivatives=False)
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--no-reports"]) == 0
    log = capsys.readouterr().err
    assert log.count("No preprocessed BOLD was found") == 1
    assert "has no confounds file, so it was modelled without confounds" in log
    assert list(out.glob("sub-03/func/sub-03_task-checkerboard_contrast-audio_stat-z_statmap.nii.gz"))


def test_events_inherited_from_the_dataset_root(fresh_dataset, tmp_path):
    dataset = fresh_dataset(subjects=("03",))
    events = next(dataset.path.rglob("*_events.tsv"))
    events.rename(dataset.path / "task-checkerboard_events.tsv")
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    sidecar = json.loads(next(out.rglob("*run-01_design.json")).read_text())
    assert "bids:raw:task-checkerboard_events.tsv" in sidecar["Sources"]


def test_precomputed_tsv_designs_default_to_condition_contrasts(analysed, fresh_dataset, tmp_path, caplog):
    dataset = fresh_dataset(subjects=("01",))
    design_dir = tmp_path / "designs"
    design_dir.mkdir()
    for design in (analysed / "sub-01").rglob("*_design.tsv"):
        shutil.copy(design, design_dir / design.name)
    (design_dir / "sub-01_task-checkerboard_run-01_design.tsv").write_text("a\n1\n")  # no ses-: matches no run
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--design-dir", str(design_dir)]) == 0
    labels = {p.name.split("_contrast-")[1].split("_")[0] for p in out.rglob("*_stat-z_statmap.nii.gz")}
    assert labels == {"audio", "visual"}
    assert "holds no design for" not in caplog.text  # every run had its own
    runs = json.loads(next(out.rglob("*ses-1*run-01_design.json")).read_text())
    assert runs["Precomputed"] is True
    first = out / "sub-01" / "ses-1" / "func" / f"sub-01_ses-1_task-checkerboard_run-01_space-{SPACE}_contrast-audio_stat-z_statmap.nii.gz"
    assert difference(first, data(analysed / first.relative_to(out))) < TOLERANCE
    reported = tmp_path / "reported"  # the page said "None: the designs were precomputed" of the conditions
    assert main([str(dataset.path), str(reported), "participant", "--skip-bids-validation", "--space", SPACE,
                 "--design-dir", str(design_dir)]) == 0
    page = " ".join((reported / "sub-01.html").read_text().split())
    assert "No events: the designs were read precomputed (--design-dir)." in page and "<p>None:" not in page


def test_precomputed_designs_of_constants_alone_are_named_as_why_nothing_is_fitted(fresh_dataset, tmp_path, capsys):
    """The error said the run 'has no events file', which a --design-dir run does not need."""
    dataset = fresh_dataset(subjects=("01",))
    design_dir = tmp_path / "designs"
    design_dir.mkdir()
    runs = sorted(p for p in dataset.path.joinpath("sub-01").rglob("*_bold.nii.gz"))
    for bold in runs:
        n = nib.load(bold).shape[3]
        pd.DataFrame({"constant": np.ones(n), "drift_1": np.linspace(-1, 1, n)}).to_csv(
            design_dir / bold.name.replace("_bold.nii.gz", "_design.tsv"), sep="\t", index=False)
    capsys.readouterr()
    assert main([str(dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation", "--no-reports",
                 "--design-dir", str(design_dir)]) == 66
    error = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(error) == 1 and "has no column to contrast (each is constant or a drift term)" in error[0]
    assert str(design_dir) in error[0] and "no events file" not in error[0]


def test_unmatched_design_file_is_reported(fresh_dataset, tmp_path, capsys):
    dataset = fresh_dataset(subjects=("03",))
    design_dir = tmp_path / "designs"
    design_dir.mkdir()
    (design_dir / "sub-03_task-checkerboard_run-1_design.tsv").write_text("a\n1\n")
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--design-dir", str(design_dir)]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "sub-03_task-checkerboard_run-1_design.tsv matches no selected run" in said
    # no run got a design from it: they were all built from events, which was said of none
    assert (f"--design-dir {design_dir} holds no design for any of the selected runs (sub-03_ses-1_task-checkerboard_"
            "run-01; it would be sub-03_ses-1_task-checkerboard_run-01_design.tsv or .npz), so their designs were "
            "built from their events files") in said


def test_group_sidecars_carry_the_model_settings(analysed):
    sidecar = json.loads((analysed / "group" / f"task-checkerboard_space-{SPACE}_contrast-audio_stat-z_statmap.json").read_text())
    assert sidecar["SmoothingFWHM"] == 5.0 and sidecar["NoiseModel"] == "ar1" and sidecar["HRFModel"] == "glover"


def test_slice_timing_start_time_sets_the_frame_times(fresh_dataset, tmp_path):
    """fMRIPrep's StartTime of slice-timing corrected data: nilearn's slice_time_ref = StartTime / TR."""
    dataset = fresh_dataset(subjects=("03",))
    tr = repetition_time(dataset)
    files = run_files(dataset, "03", "1", "01")
    sidecar = files["bold"].with_name(files["bold"].name.replace(".nii.gz", ".json"))
    content = json.loads(sidecar.read_text())
    content["StartTime"] = tr / 2
    sidecar.write_text(json.dumps(content))
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports"]) == 0
    events = pd.read_csv(files["events"], sep="\t")
    confounds = pd.read_csv(files["confounds"], sep="\t")[MOTION].bfill()
    model = FirstLevelModel(t_r=tr, slice_time_ref=0.5, mask_img=str(files["mask"]), smoothing_fwhm=5)
    model.fit(str(files["bold"]), events=events, confounds=confounds)
    maps = model.compute_contrast("audio", output_type="all")
    ours = out / "sub-03" / "ses-1" / "func" / f"{files['stem']}_space-{SPACE}_contrast-audio_stat-z_statmap.nii.gz"
    assert difference(ours, maps["z_score"].get_fdata()) < TOLERANCE
    unshifted = FirstLevelModel(t_r=tr, mask_img=str(files["mask"]), smoothing_fwhm=5).fit(
        str(files["bold"]), events=events, confounds=confounds).compute_contrast("audio", output_type="z_score")
    assert difference(ours, unshifted.get_fdata()) > TOLERANCE


def test_progress_lines_and_a_quiet_run(example_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(example_dataset.path), str(out), "participant", "--participant-label", "01",
                 "--skip-bids-validation", "--no-reports"]) == 0
    lines = capsys.readouterr().err.splitlines()
    progress = [line for line in lines if "] sub-01_" in line and "fitted" in line]
    assert len(progress) == 4 and "[1/4]" in progress[0] and "left" in progress[0]
    assert "subject 1 of 1" in " ".join(lines)
    assert main([str(example_dataset.path), str(out), "participant", "--participant-label", "01",
                 "--skip-bids-validation", "--no-reports", "--quiet"]) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert "Participant level done" in line and str(out) in line


def test_a_warning_said_of_every_run_while_fitting_is_said_a_few_times_then_names_the_others(
        fresh_dataset, tmp_path, capsys):
    """Warnings said as runs are fitted, as those of the planning: a few in full, then one line
    naming the other runs (a dataset of a hundred runs printed a hundred)."""
    dataset = fresh_dataset(subjects=("01",))
    bolds = sorted(dataset.path.rglob(f"*space-{SPACE}_desc-preproc_bold.nii.gz"))
    assert len(bolds) > SAID_IN_FULL
    for bold in bolds:  # a volume of NaN in every run: a note about each
        img = nib.load(bold)
        values = img.get_fdata(dtype=np.float32)
        values[..., 3] = np.nan
        nib.Nifti1Image(values, img.affine, img.header).to_filename(bold)
    capsys.readouterr()
    assert main([str(dataset.path), str(tmp_path / "out"), "participant", "--skip-bids-validation", "--no-reports",
                 "--space", SPACE]) == 0
    lines = [line.split(" WARNING: ", 1)[1] for line in capsys.readouterr().err.splitlines() if " WARNING: " in line]
    assert len([line for line in lines if "volumes hold non-finite" in line]) == SAID_IN_FULL
    last = [line for line in lines if line.startswith("The warning about")]
    names = [bold.name.split("_space-")[0] for bold in bolds]
    assert last == [f"The warning about {names[0]} above holds for {len(bolds) - SAID_IN_FULL} more: "
                    f"{', '.join(names[SAID_IN_FULL:])}."]


def test_a_run_whose_spaces_give_other_repetition_times_is_refused_before_any_output(fresh_dataset, tmp_path, capsys):
    """A run's spaces share its design file: with a TR of 2 s in one space's sidecar and 2.5 s in
    the other's, each space was fitted with its own design and the file held one of them."""
    dataset = fresh_dataset(subjects=("01",))
    sidecar = next(dataset.path.rglob("sub-01_ses-1_task-checkerboard_run-01_space-T1w_desc-preproc_bold.json"))
    described = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**described, "RepetitionTime": described["RepetitionTime"] * 1.25}))
    out = tmp_path / "out"
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--space", SPACE, "T1w"]) == EX_NO_INPUT
    error = " ".join(capsys.readouterr().err.split())
    assert "sub-01_ses-1_task-checkerboard_run-01 is" in error and "space-T1w_desc-preproc_bold.nii.gz" in error
    assert "a run's spaces share one design" in error and not out.exists()
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--space", "T1w"]) == 0  # one space: its own sidecar's TR
    design = json.loads(next(out.rglob("sub-01_ses-1_task-checkerboard_run-01_design.json")).read_text())
    assert design["RepetitionTime"] == described["RepetitionTime"] * 1.25
    rounded = float(np.float32(described["RepetitionTime"] * 1.01))  # one TR written in single precision: the same
    sidecar.write_text(json.dumps({**described, "RepetitionTime": rounded}))
    other = next(dataset.path.rglob(f"sub-01_ses-1_task-checkerboard_run-01_space-{SPACE}_desc-preproc_bold.json"))
    tr = described["RepetitionTime"] * 1.01
    other.write_text(json.dumps({**json.loads(other.read_text()), "RepetitionTime": tr}))
    assert main([str(dataset.path), str(tmp_path / "again"), "participant", "--skip-bids-validation", "--no-reports",
                 "--space", SPACE, "T1w"]) == 0


@pytest.mark.slow

def test_a_run_whose_spaces_give_other_start_times_is_refused_before_any_output(fresh_dataset, tmp_path, capsys):
    """A run's spaces share its design file: with StartTime 1 s (slice-timing corrected) in one
    space's sidecar and none in the other's, each space was fitted with its own frame times and
    the design file (which both spaces' maps cite) held the other's."""
    dataset = fresh_dataset(subjects=("01",))
    sidecar = next(dataset.path.rglob("sub-01_ses-1_task-checkerboard_run-01_space-T1w_desc-preproc_bold.json"))
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "SliceTimingCorrected": True, "StartTime": 1.0}))
    out = tmp_path / "out"
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--space", SPACE, "T1w"]) == EX_NO_INPUT
    error = " ".join(capsys.readouterr().err.split())
    assert "sub-01_ses-1_task-checkerboard_run-01 has StartTime" in error and "space-T1w_desc-preproc_bold" in error
    assert "a run's spaces share one design" in error and not out.exists()
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--space", "T1w"]) == 0  # one space: its own sidecar's StartTime

def test_a_subject_whose_subject_node_takes_none_of_its_runs_is_said_and_left_out_of_the_reports(
        fresh_dataset, tmp_path, capsys):
    """An Edge Filter on session 2, and a subject without session 2: its maps were written, then the
    report stopped the job on its missing subject mask (exit 1)."""
    dataset = fresh_dataset(subjects=("01", "02"))
    for folder in sorted(dataset.path.rglob("sub-02/ses-2")):
        shutil.rmtree(folder)
    model = tmp_path / "model-sessionTwo_smdl.json"
    model.write_text(json.dumps({
        "Name": "sessionTwo", "BIDSModelVersion": "1.0.0",
        "Nodes": [
            {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject", "session"],
             "Model": {"X": ["trial_type.audio", "trial_type.visual", 1], "Type": "glm",
                       "HRF": {"Variables": ["trial_type.audio", "trial_type.visual"], "Model": "glover"}},
             "DummyContrasts": {"Test": "t"}},
            {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"],
             "Model": {"X": [1], "Type": "meta"}, "DummyContrasts": {"Test": "t"}}],
        "Edges": [{"Source": "run", "Destination": "subject", "Filter": {"session": ["2"]}}]}))
    out = tmp_path / "out"
    capsys.readouterr()
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "-m", str(model),
                 "--space", SPACE]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "sub-02 task-checkerboard space-MNI152NLin2009cAsym: the model's subject node (subject) takes none" in said
    assert list((out / "sub-02").rglob("*run-01*_stat-t_statmap.nii.gz"))
    assert not list((out / "sub-02").rglob("*desc-fixedfx*")) and not (out / "sub-02.html").exists()
    assert (out / "sub-01.html").is_file() and list((out / "sub-01").rglob("*desc-fixedfx_mask.nii.gz"))


@pytest.mark.slow
def test_contrasts_of_a_task_tested_over_other_subjects_each_cite_their_own_mask(fresh_dataset, tmp_path):
    """sub-03 without 'visual': one desc-group_mask for the task, the last test's (its visual
    test, without sub-03), which the audio maps cited though they were computed in another mask,
    written nowhere."""
    dataset = fresh_dataset()
    for events in (dataset.path / "sub-03").rglob("*_events.tsv"):
        table = pd.read_csv(events, sep="\t")
        table[table["trial_type"] != "visual"].to_csv(events, sep="\t", index=False)
    out = tmp_path / "out"
    assert main([str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports",
                 "--space", SPACE]) == 0
    assert main([str(dataset.path), str(out), "group"]) == 0
    group = out / "group"
    for contrast, subjects in (("audio", ["01", "02", "03"]), ("visual", ["01", "02"])):
        sidecar = json.loads((group / f"task-checkerboard_space-{SPACE}_contrast-{contrast}_stat-t_statmap.json")
                             .read_text())
        assert sidecar["Subjects"] == subjects
        cited = [s for s in sidecar["Sources"] if s.endswith("_mask.nii.gz")]
        assert cited == [f"bids::group/task-checkerboard_space-{SPACE}_contrast-{contrast}_desc-group_mask.nii.gz"]
        own = nib.load(group / cited[0].removeprefix("bids::group/")).get_fdata() > 0
        expected = intersect_masks([next((out / f"sub-{s}").rglob(f"*space-{SPACE}_desc-fixedfx_mask.nii.gz"))
                                    for s in subjects], threshold=1, connected=False).get_fdata() > 0
        np.testing.assert_array_equal(own, expected)
        t_map = nib.load(group / f"task-checkerboard_space-{SPACE}_contrast-{contrast}_stat-t_statmap.nii.gz")
        assert np.all(t_map.get_fdata()[own] != 0)  # every voxel of its mask tested
    shared = nib.load(group / f"task-checkerboard_space-{SPACE}_desc-group_mask.nii.gz").get_fdata() > 0
    assert shared.sum() <= own.sum() and (out / "group.html").is_file()
    # tested again over subjects that have both contrasts: one mask, and no stale contrast mask
    assert main([str(dataset.path), str(out), "group", "--participant-label", "01", "02"]) == 0
    assert not list(group.glob("*_contrast-*_mask.*"))
