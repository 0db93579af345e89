"""Benchmark: one BIDS Stats Model run by FitLins 0.11 and by bids-fixedfx.

Generates the benchmark dataset of ``benchmark.py`` (64x64x40 voxels, 200 volumes,
2 subjects x 3 runs) with the project's generator, writes one BIDS Stats Model with the
app's default first level (the conditions ``audio`` and ``visual`` convolved with the
Glover HRF, the six motion parameters, an intercept; cosine drift at 0.01 Hz; AR(1); 5 mm
smoothing), fixed effects over each subject's runs and a one-sample t-test over the
subjects, then runs in rounds (the order of the two swapped every round, so that the load
of the machine falls alike on both):

- FitLins: ``fitlins DS OUT participant -m MODEL -d DS/derivatives/fmriprep --space
  MNI152NLin2009cAsym -w WORK --n-cpus 2 --smoothing 5:run:iso --estimator nilearn
  --drift-model cosine`` (FitLins 0.11 runs every node of the model whatever the level, so
  this is the run, subject and dataset nodes, and its reports);
- bids-fixedfx: ``bids-fixedfx DS OUT participant -m MODEL`` then ``bids-fixedfx DS OUT
  group -m MODEL`` (the same nodes; reports on, as FitLins always writes its own).

Each run starts from empty output and work folders (FitLins reuses cached results
otherwise). The script prints, per tool, the median wall time, CPU time (user and system,
of the whole process tree) and peak memory (the largest sum of the PSS of the process tree,
sampled every 0.1 s: FitLins works in worker processes), and the ratios; then it compares
one subject's fixed-effects t map and one run's t map (correlation inside the app's mask,
largest absolute difference relative to FitLins' peak).

What FitLins needs from the dataset, and how the model is spelled for it:

- fMRIPrep-style derivatives (``-d``): ``desc-preproc_bold`` with a ``space-`` entity
  (``--space``) and, beside it, a ``desc-brain_mask`` of the same entities (used as the
  GLM's mask; without it nilearn computes one); the confounds in
  ``desc-confounds_timeseries.tsv``. The generator writes all of these.
- The HRF is a ``Convolve`` instruction: pybids 0.15, which FitLins 0.11 uses, ignores
  ``Model.HRF``. Its convolution samples the events its own way (not as nilearn's design
  matrices do), so the maps differ a little from the app's: this is measured, not hidden.
- The drift: FitLins adds nilearn's cosine drift only with ``--drift-model cosine``, at
  nilearn's default cut-off (0.01 Hz, as ``HighPassFilterCutoffHz`` states for the app).
- The subject node's type is spelled ``Meta``: FitLins 0.11 compares it to ``'Meta'``
  case-sensitively and otherwise fits a one-sample t-test over the runs instead of fixed
  effects (the app reads model types in any case).
- The model path must be absolute (FitLins resolves a relative one against BIDS_DIR).

FitLins installs in a Python 3.10 virtual environment, outside this repository::

    python3.10 -m venv /path/to/fitlins-venv
    /path/to/fitlins-venv/bin/pip install fitlins==0.11.0 "setuptools<81" "numpy<2" \\
        "pandas<2" "matplotlib<3.8"

``--image-env`` runs the app with the image's pinned distributions (see ``benchmark.py``).

Usage: python benchmarks/fitlins.py --fitlins-venv DIR [--work-dir DIR] [--rounds N] [--image-env]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmark import SPACE, make_dataset
from measure import compile_app, image_environment, load_text, measure_tree

MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
CONDITIONS = ["audio", "visual"]
SMOOTHING_FWHM = 5
#: The subject and contrast whose maps are compared.
SUBJECT, CONTRAST = "01", "visual"


def model_document() -> dict:
    """The BIDS Stats Model both tools run (run glm -> subject fixed effects -> dataset t-test)."""
    return {
        "Name": "fitlinsBenchmark",
        "BIDSModelVersion": "1.0.0",
        "Description": "The app's default first level as a model FitLins 0.11 also runs.",
        "Input": {"task": ["checkerboard"]},
        "Nodes": [
            {
                "Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
                "Transformations": {"Transformer": "pybids-transforms-v1", "Instructions": [
                    {"Name": "Factor", "Input": ["trial_type"]},
                    {"Name": "Rename", "Input": [f"trial_type.{c}" for c in CONDITIONS], "Output": CONDITIONS},
                    {"Name": "Convolve", "Input": CONDITIONS, "Model": "glover"},
                ]},
                "Model": {"Type": "glm", "X": [*CONDITIONS, *MOTION, 1],
                          "Options": {"HighPassFilterCutoffHz": 0.01}},
                "DummyContrasts": {"Contrasts": CONDITIONS, "Test": "t"},
            },
            {
                "Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"],
                "Model": {"Type": "Meta", "X": [1]},
                "DummyContrasts": {"Test": "t"},
            },
            {
                "Level": "Dataset", "Name": "dataset", "GroupBy": ["contrast"],
                "Model": {"Type": "glm", "X": [1]},
                "DummyContrasts": {"Test": "t"},
            },
        ],
        "Edges": [{"Source": "run", "Destination": "subject"},
                  {"Source": "subject", "Destination": "dataset"}],
    }


def fitlins_executable(venv: Path | None) -> Path:
    """The ``fitlins`` script of the virtual environment, or exit with what to do."""
    how = ("create it with Python 3.10: python3.10 -m venv DIR && DIR/bin/pip install fitlins==0.11.0 "
           "'setuptools<81' 'numpy<2' 'pandas<2' 'matplotlib<3.8'")
    if venv is None:
        raise SystemExit(f"--fitlins-venv DIR is required (a virtual environment with FitLins 0.11); {how}.")
    executable = venv / "bin" / "fitlins"
    if not executable.is_file():
        raise SystemExit(f"--fitlins-venv {venv}: there is no {executable}; {how}.")
    return executable


def _fresh(*folders: Path) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def run_fitlins(executable: Path, dataset: Path, model: Path, work: Path) -> dict:
    out, scratch, log = work / "out-fitlins", work / "work-fitlins", work / "fitlins.log"
    _fresh(out, scratch)
    command = [executable, dataset, out, "participant", "-m", model, "-d", dataset / "derivatives" / "fmriprep",
               "--space", SPACE, "-w", scratch, "--n-cpus", "2", "--smoothing", f"{SMOOTHING_FWHM}:run:iso",
               "--estimator", "nilearn", "--drift-model", "cosine"]
    env = {**os.environ, "NO_ET": "1"}  # no version check over the network
    result = measure_tree(command, env=env, log=log)
    if result["code"] != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise SystemExit(f"FitLins failed with exit code {result['code']} (log: {log}):\n{tail}")
    return result


def run_app(dataset: Path, model: Path, work: Path, python=sys.executable) -> dict:
    out = work / "out-app"
    _fresh(out)
    app = [python, "-m", "bids_fixedfx", dataset, out]
    levels = []
    for level in ("participant", "group"):
        log = work / f"app-{level}.log"
        result = measure_tree([*app, level, "-m", model, "--smoothing-fwhm", str(SMOOTHING_FWHM)]
                              if level == "participant" else [*app, level, "-m", model], log=log)
        if result["code"] != 0:
            raise SystemExit(f"bids-fixedfx {level} failed with exit code {result['code']} (log: {log})")
        levels.append(result)
    return {"seconds": sum(r["seconds"] for r in levels), "peak_mb": max(r["peak_mb"] for r in levels),
            "max_rss_mb": max(r["max_rss_mb"] for r in levels), "cpu_seconds": sum(r["cpu_seconds"] for r in levels)}


def compare_maps(work: Path) -> dict:
    """Correlation and largest difference (relative to FitLins' peak) of t maps, inside the app's mask."""
    import nibabel as nib
    import numpy as np

    app, fitlins = work / "out-app" / f"sub-{SUBJECT}" / "func", work / "out-fitlins"
    stem = f"sub-{SUBJECT}_task-checkerboard"
    mask = nib.load(app / f"{stem}_space-{SPACE}_desc-fixedfx_mask.nii.gz").get_fdata() > 0
    pairs = {
        f"sub-{SUBJECT} fixed effects": (
            app / f"{stem}_space-{SPACE}_contrast-{CONTRAST}_stat-t_statmap.nii.gz",
            fitlins / "node-subject" / f"sub-{SUBJECT}" / f"sub-{SUBJECT}_contrast-{CONTRAST}_stat-t_statmap.nii.gz"),
        f"sub-{SUBJECT} first run": (  # run-01 in the app's names, run-1 in FitLins'
            sorted(app.glob(f"{stem}_run-*_space-{SPACE}_contrast-{CONTRAST}_stat-t_statmap.nii.gz"))[0],
            sorted((fitlins / "node-run" / f"sub-{SUBJECT}").glob(
                f"sub-{SUBJECT}_run-*_contrast-{CONTRAST}_stat-t_statmap.nii.gz"))[0]),
    }
    found = {}
    for name, (ours_path, theirs_path) in pairs.items():
        ours, theirs = (nib.load(p).get_fdata()[mask] for p in (ours_path, theirs_path))
        peak = float(np.max(np.abs(theirs)))
        found[name] = {
            "correlation": float(np.corrcoef(ours, theirs)[0, 1]),
            "max_abs_difference_relative": float(np.max(np.abs(ours - theirs)) / peak),
            "peak_app": float(np.max(np.abs(ours))), "peak_fitlins": peak,
        }
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fitlins-venv", type=Path, default=os.environ.get("FITLINS_VENV"),
                        help="virtual environment with FitLins 0.11 (default: $FITLINS_VENV)")
    parser.add_argument("--work-dir", type=Path, help="keep the dataset here between runs")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating the order (median kept)")
    parser.add_argument("--image-env", action="store_true", help="run the app with the image's pinned distributions")
    args = parser.parse_args(argv)
    executable = fitlins_executable(Path(args.fitlins_venv) if args.fitlins_venv else None)
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="bids-fixedfx-fitlins-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    dataset = make_dataset(work / "ds")
    compile_app()
    python = image_environment(work / "image-env") if args.image_env else sys.executable
    model = work / "model-fitlinsBenchmark_smdl.json"
    model.write_text(json.dumps(model_document(), indent=2))
    tools = {"FitLins 0.11": lambda: run_fitlins(executable, dataset, model, work),
             "bids-fixedfx": lambda: run_app(dataset, model, work, python)}
    runs = {name: [] for name in tools}
    load_before = os.getloadavg()
    for round_ in range(args.rounds):
        order = list(tools) if round_ % 2 == 0 else list(tools)[::-1]
        for name in order:
            result = tools[name]()
            runs[name].append(result)
            print(f"round {round_ + 1}: {name:14s} {result['seconds']:7.1f} s ({result['cpu_seconds']:6.1f} s CPU) "
                  f"{result['peak_mb']:7.0f} MB peak (largest process {result['max_rss_mb']:.0f} MB)", flush=True)
    load_after = os.getloadavg()
    medians = {name: {key: statistics.median(r[key] for r in done) for key in ("seconds", "cpu_seconds", "peak_mb")}
               for name, done in runs.items()}
    print(load_text(load_before, load_after, args.rounds))
    for name, result in medians.items():
        print(f"{name:14s} {result['seconds']:7.1f} s ({result['cpu_seconds']:6.1f} s CPU) "
              f"{result['peak_mb']:7.0f} MB peak (process tree)")
    theirs, ours = medians["FitLins 0.11"], medians["bids-fixedfx"]
    print(f"bids-fixedfx is {theirs['seconds'] / ours['seconds']:.1f}x faster than FitLins in wall time "
          f"({theirs['cpu_seconds'] / ours['cpu_seconds']:.1f}x in CPU time) "
          f"and uses {theirs['peak_mb'] / ours['peak_mb']:.1f}x less memory")
    for name, numbers in compare_maps(work).items():
        print(f"t map of {CONTRAST}, {name}: correlation {numbers['correlation']:.4f}, largest |app - FitLins| "
              f"{numbers['max_abs_difference_relative']:.3f} of FitLins' peak "
              f"(peaks {numbers['peak_app']:.1f} and {numbers['peak_fitlins']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
