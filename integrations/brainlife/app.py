#!/usr/bin/env python3
"""brainlife.io wrapper of bids-fixedfx: config.json in, BIDS-Derivatives and product.json out.

brainlife.io runs ``main`` in the task's folder, which holds ``config.json``; ``main`` runs this
script with the host's Python 3 (standard library only). It builds the bids-fixedfx command line
from the configuration, runs the participant level and then, if asked, the group level, writes the
derivatives to ``output/`` and a summary to ``product.json`` (brainlife's messages under
``brainlife``, the details under ``bids_fixedfx``).

The app itself runs in its container: ``singularity run --cleanenv`` (or apptainer) of
``docker://IMAGE``, with the input folders bound read-only at their own paths. ``BIDS_FIXEDFX`` in
the environment replaces that command (for example ``BIDS_FIXEDFX=bids-fixedfx`` where the app is
installed); so does a ``bids-fixedfx`` on PATH when neither singularity nor apptainer is.

Configuration keys (see config.json.sample; empty strings and nulls mean the app's default):
``bids`` (required: the BIDS dataset folder), ``fmriprep`` (fMRIPrep's derivatives, when they are
not under bids/derivatives), ``participant_label``, ``session_label``, ``task``, ``confounds``
(space-separated strings or lists), ``contrasts`` (a list, or one string of NAME=SPEC items
separated by ';' or new lines), ``space``, ``smoothing_fwhm``, ``hrf_model``, ``drift_model``,
``high_pass``, ``drift_order``, ``noise_model``, ``dummy_scans``, ``group_model``, ``report_threshold``, ``nprocs``,
``precision_weighted``, ``skip_bids_validation``, ``no_reports``, ``group`` (run the group level
too; default true), ``output`` (default ``output``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

VERSION = "0.1.0"
IMAGE = f"ghcr.io/bids-fixedfx/bids-fixedfx:{VERSION}"
STATMAP = re.compile(
    r"^(?:sub-(?P<sub>[a-zA-Z0-9]+)_)?task-(?P<task>[a-zA-Z0-9]+)_.*?"
    r"contrast-(?P<contrast>[a-zA-Z0-9]+)_stat-(?P<stat>[a-z]+)_statmap\.nii\.gz$"
)

RUN_ENTITIES = re.compile(r"_(ses|acq|ce|rec|dir|run|echo)-")

VALUE_OPTIONS = {  # config key: command-line option (one value)
    "smoothing_fwhm": "--smoothing-fwhm",
    "hrf_model": "--hrf-model",
    "drift_model": "--drift-model",
    "high_pass": "--high-pass",
    "drift_order": "--drift-order",
    "noise_model": "--noise-model",
    "dummy_scans": "--dummy-scans",
    "group_model": "--group-model",
    "report_threshold": "--report-threshold",
    "nprocs": "--nprocs",
}
#: Options of one drift model (config key: its drift_model); a form sends every field, and the
#: app refuses an option that the chosen drift model does not use.
DRIFT_ONLY = {"high_pass": "cosine", "drift_order": "polynomial"}
#: Options of the reports: sent by the form with no_reports too, which the app refuses.
REPORT_ONLY = {"report_threshold"}
LIST_OPTIONS = {  # config key: command-line option (several values)
    "participant_label": "--participant-label",
    "session_label": "--session-label",
    "task": "--task",
    "space": "--space",
    "confounds": "--confounds",
    "group_covariates": "--group-covariates",
}
FLAGS = {
    "precision_weighted": "--precision-weighted",
    "skip_bids_validation": "--skip-bids-validation",
    "no_reports": "--no-reports",
}


# Options that only one analysis level takes (bids-fixedfx refuses them at the other level).
PARTICIPANT_ONLY = {
    "session_label", "smoothing_fwhm", "hrf_model", "drift_model", "high_pass", "drift_order",
    "noise_model", "confounds", "contrasts", "precision_weighted", "skip_bids_validation", "dummy_scans",
}
GROUP_ONLY = {"group_model", "group_covariates", "n_perm", "tfce"}


class ConfigError(Exception):
    """config.json asks for something impossible."""


def _empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _words(value) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return str(value).split()


def _truth(value, default=False) -> bool:
    if _empty(value):
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def options_from_config(config: dict, level: str = "participant") -> list[str]:
    """The options of one analysis level (without the positional arguments)."""
    skipped = GROUP_ONLY if level == "participant" else PARTICIPANT_ONLY
    config = {key: value for key, value in config.items() if key not in skipped}
    options: list[str] = []
    for key, flag in LIST_OPTIONS.items():
        if not _empty(config.get(key)):
            options += [flag, *_words(config[key])]
    drift = "cosine" if _empty(config.get("drift_model")) else str(config["drift_model"]).strip()
    reports = not _truth(config.get("no_reports"))
    for key, flag in VALUE_OPTIONS.items():
        if key in DRIFT_ONLY and DRIFT_ONLY[key] != drift or key in REPORT_ONLY and not reports:
            continue
        if not _empty(config.get(key)):
            options += [flag, str(config[key]).strip()]
    contrasts = config.get("contrasts")
    if not _empty(contrasts):
        items = contrasts if isinstance(contrasts, list) else re.split(r"[;\n]", str(contrasts))
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            if "=" not in item:
                raise ConfigError(f"contrasts: {item!r} is not NAME=SPEC (for example faces=faces-houses).")
            options += ["--contrast", item]
    for key, flag in FLAGS.items():
        if _truth(config.get(key)):
            options.append(flag)
    return options


def app_command(inputs: list[Path], output: Path) -> list[str]:
    """The command that runs bids-fixedfx, the container by default."""
    if os.environ.get("BIDS_FIXEDFX"):
        return shlex.split(os.environ["BIDS_FIXEDFX"])
    runner = shutil.which("singularity") or shutil.which("apptainer")
    if runner:
        command = [runner, "run", "--cleanenv"]
        for path in inputs:  # at their own paths, so that the command line reads the same
            command += ["-B", f"{path}:{path}:ro"]
        command += ["-B", f"{output}:{output}"]
        return [*command, f"docker://{IMAGE}"]
    if shutil.which("bids-fixedfx"):
        return ["bids-fixedfx"]
    raise ConfigError("neither singularity nor apptainer nor bids-fixedfx is available.")


def summarize(output_dir: Path) -> dict:
    """What the output folder holds: subjects, tasks, contrasts, maps, reports."""
    subjects, tasks, contrasts = set(), set(), set()
    subject_maps = group_maps = run_maps = 0
    for path in sorted(output_dir.rglob("*_statmap.nii.gz")):
        match = STATMAP.match(path.name)
        relative = path.relative_to(output_dir).parts
        if not match:
            continue
        tasks.add(match["task"])
        contrasts.add(match["contrast"])
        if relative[0] == "group":
            group_maps += 1
        elif len(relative) != 3 or RUN_ENTITIES.search(path.name):
            run_maps += 1
        else:
            subject_maps += 1
            subjects.add(f"sub-{match['sub']}")
    reports = sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*.html"))
    return {
        "subjects": sorted(subjects),
        "tasks": sorted(tasks),
        "contrasts": sorted(contrasts),
        "run_statmaps": run_maps,
        "subject_statmaps": subject_maps,
        "group_statmaps": group_maps,
        "reports": reports,
    }


def run_level(command: list[str], level: str, log) -> dict:
    """Run one level, its output appended to ``log``; its exit code, time and, when it failed,
    the error it said (its last ``ERROR``/``error:`` line), for brainlife's message."""
    started = time.monotonic()
    log.write(f"$ {shlex.join(command)}\n")
    log.flush()
    start = Path(log.name).stat().st_size
    try:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    except OSError as error:  # the command is missing or not executable
        code, said = 127, f"cannot run {command[0]}: {error.strerror or error}"
        log.write(said + "\n")
    else:
        said = _error_said(Path(log.name), start) if code else None
    step = {"level": level, "command": command, "exit_code": code, "seconds": round(time.monotonic() - started, 1)}
    if said:
        step["error"] = said
    return step


def _error_said(path: Path, start: int) -> str | None:
    """The last error line written to ``path`` after byte ``start``, without its time stamp."""
    with open(path, "rb") as stream:
        stream.seek(start)
        lines = stream.read().decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        for mark in (" ERROR: ", "error: "):
            if mark in line:
                return line.split(mark, 1)[1].strip()[:1000]
    return None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config_path = Path(argv[0] if argv else "config.json")
    messages: list[dict] = []
    product: dict = {"brainlife": messages, "bids_fixedfx": {
        "version": VERSION, "exit_code": None, "command": None, "steps": [], "outputs": {}}}
    details = product["bids_fixedfx"]
    rc = 0
    Path("product.json").unlink(missing_ok=True)  # an earlier run's, which would stand for this one's
    try:
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"cannot read {config_path}: {error}") from None
        if _empty(config.get("bids")):
            raise ConfigError("config.json has no 'bids' (the BIDS dataset folder).")
        bids = Path(config["bids"]).resolve()
        if not (bids / "dataset_description.json").is_file():
            raise ConfigError(f"bids: {config['bids']} is not a BIDS dataset (no dataset_description.json).")
        output = Path(config.get("output") or "output").resolve()
        output.mkdir(parents=True, exist_ok=True)
        inputs = [bids]
        derivatives: list[str] = []
        if not _empty(config.get("fmriprep")):
            fmriprep = Path(config["fmriprep"]).resolve()
            if not fmriprep.is_dir():
                raise ConfigError(f"fmriprep: {config['fmriprep']} is not a folder.")
            inputs.append(fmriprep)
            derivatives = ["--derivatives", str(fmriprep)]
        options = options_from_config(config, "participant") + derivatives
        command = app_command(inputs, output)
        details["command"] = command
        with open("bids-fixedfx.log", "a") as log:
            participant = run_level([*command, str(bids), str(output), "participant", *options],
                                    "participant", log)
            details["steps"].append(participant)
            rc = participant["exit_code"]
            if rc == 0 and _truth(config.get("group"), default=True):
                # The group level takes the selection, group-model and running options.
                group_options = options_from_config(config, "group") + derivatives
                group = run_level([*command, str(bids), str(output), "group", *group_options],
                                  "group", log)
                details["steps"].append(group)
                rc = group["exit_code"]
        details["outputs"] = summary = summarize(output)
        for step in details["steps"]:
            if step["exit_code"] == 0:
                messages.append({"type": "success",
                                 "msg": f"{step['level']} level done in {step['seconds']} s."})
            else:
                said = f": {step['error']}" if step.get("error") else ""
                messages.append({"type": "error",
                                 "msg": f"{step['level']} level failed with exit code "
                                        f"{step['exit_code']}{said} (see bids-fixedfx.log)."})
        if summary["subjects"]:
            messages.append({"type": "info", "msg": (
                f"{len(summary['subjects'])} subject(s) ({', '.join(summary['subjects'])}), "
                f"task(s) {', '.join(summary['tasks'])}, contrast(s) {', '.join(summary['contrasts'])}: "
                f"{summary['subject_statmaps']} subject maps, {summary['group_statmaps']} group maps.")})
    except ConfigError as error:
        messages.append({"type": "error", "msg": str(error)})
        rc = 64
    details["exit_code"] = rc
    Path("product.json").write_text(json.dumps(product, indent=2) + "\n")
    if rc:
        errors = [m["msg"] for m in messages if m["type"] == "error"]  # not the summary line after it
        print(f"bids-fixedfx (brainlife): {errors[0] if errors else 'failed'}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
