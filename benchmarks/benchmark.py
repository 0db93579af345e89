"""Benchmark: bids-fixedfx's participant level against a plain nilearn loop.

Generates a realistic-size dataset with the project's example generator
(64x64x40 voxels, 200 volumes, 2 subjects x 3 runs, one space), then runs, each in
its own process, on the same data:

1. the plain nilearn loop (``nilearn_loop.py``),
2. ``bids-fixedfx DS OUT participant --skip-bids-validation --no-reports`` (the same work),
3. ``bids-fixedfx DS OUT participant`` with its defaults (validation, reports, boilerplate),

in rounds (each round runs the three once, in this order, so that the load of the
machine falls alike on all; the app's modules are byte-compiled first, as an installed
package holds them: see ``measure.compile_app``), and prints for each the median wall time and peak memory
(the kernel's maximum resident set size of the process) over the rounds, the app/loop
ratios with and without reports, the machine's load average before and after, and the
largest relative difference between the app's and the loop's maps.

With ``--image-env``, the loop and the app run in a virtual environment that holds the
image's pinned distributions and the app as installed (``measure.image_environment``, made
once in the work folder): what users of the image run, rather than this checkout's
development environment (whose test tools, pytest among them, scikit-learn loads at start).

Usage: python benchmarks/benchmark.py [--work-dir DIR] [--rounds N] [--image-env]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import compile_app, image_environment

HERE = Path(__file__).resolve().parent
SPACE = "MNI152NLin2009cAsym"
MEASURE = r"""
import resource, subprocess, sys, time, json
start = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"code": code, "seconds": seconds, "peak_mb": peak}))
"""


def measure(command):
    """Wall time and peak RSS of one command, run in a fresh process."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *map(str, command)],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed with exit code {result['code']}")
    return result


def make_dataset(path: Path) -> Path:
    from bids_fixedfx.example_data import make_example_dataset

    if not (path / "dataset_description.json").is_file():
        print(f"Generating the benchmark dataset in {path} ...", file=sys.stderr)
        make_example_dataset(
            path, n_subjects=2, n_sessions=1, n_runs=3, shape=(64, 64, 40),
            n_volumes=200, spaces=(SPACE,),
        )
    return path


def max_relative_difference(app_dir: Path, loop_dir: Path) -> float:
    """Largest |app - loop| / max|loop| over every run and subject map of the loop
    (outside the mask, where the app writes p = 1 and nilearn 0, p maps are not compared)."""
    import nibabel as nib
    import numpy as np

    worst = 0.0
    for loop_file in sorted(loop_dir.glob("*_stat-*.nii.gz")):
        stem, rest = loop_file.name.split("_contrast-")
        contrast, stat = rest[: -len(".nii.gz")].split("_stat-")
        subject = stem.split("_")[0]
        if stem == subject:  # subject level: sub-01/func/sub-01_task-*_space-*_contrast-...
            stem = f"{subject}_task-checkerboard"
        pattern = f"{subject}/**/{stem}_space-{SPACE}_contrast-{contrast}_stat-{stat}_statmap.nii.gz"
        matches = list(app_dir.glob(pattern))
        if len(matches) != 1:
            raise SystemExit(f"No single app map for {loop_file.name} ({pattern})")
        ours = nib.load(matches[0]).get_fdata()
        theirs = nib.load(loop_file).get_fdata()
        if stat == "p":
            outside = (theirs == 0) & (ours == 1)
            ours, theirs = ours[~outside], theirs[~outside]
        scale = np.max(np.abs(theirs)) or 1.0
        worst = max(worst, float(np.max(np.abs(ours - theirs)) / scale))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, help="keep the dataset here between runs")
    parser.add_argument("--rounds", "--repeat", type=int, default=2,
                        help="rounds of the three runs, alternating (median kept; default 2)")
    parser.add_argument("--image-env", action="store_true",
                        help="run the loop and the app with the image's pinned distributions")
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bids-fixedfx-bench-"))
    dataset = make_dataset(work / "ds")
    compile_app()
    python = image_environment(work / "image-env") if args.image_env else sys.executable
    app = [python, "-m", "bids_fixedfx"]
    commands = {  # name: (output folder, command)
        "nilearn loop": ("out-loop", lambda out: [python, HERE / "nilearn_loop.py", dataset, out]),
        "bids-fixedfx --no-reports": ("out-app", lambda out: [
            *app, dataset, out, "participant", "--skip-bids-validation", "--no-reports"]),
        "bids-fixedfx (defaults)": ("out-app-full", lambda out: [*app, dataset, out, "participant"]),
    }
    runs = {name: [] for name in commands}
    load_before = os.getloadavg()
    for round_ in range(args.rounds):
        for name, (folder, command) in commands.items():
            out = work / folder
            shutil.rmtree(out, ignore_errors=True)
            result = measure(command(out))
            runs[name].append(result)
            print(f"round {round_ + 1}: {name:28s} {result['seconds']:7.1f} s {result['peak_mb']:8.0f} MB peak",
                  flush=True)
    load_after = os.getloadavg()
    results = {
        name: {key: statistics.median(r[key] for r in done) for key in ("seconds", "peak_mb")}
        for name, done in runs.items()
    }
    print(f"median of {args.rounds} round(s); load average (1, 5, 15 min) before "
          f"{', '.join(f'{x:.1f}' for x in load_before)}, after {', '.join(f'{x:.1f}' for x in load_after)} "
          f"on {os.cpu_count()} CPUs")
    loop = results["nilearn loop"]
    for name, result in results.items():
        ratios = "" if result is loop else (
            f"   {result['seconds'] / loop['seconds']:.2f}x wall, {result['peak_mb'] / loop['peak_mb']:.2f}x memory")
        print(f"{name:28s} {result['seconds']:7.1f} s {result['peak_mb']:8.0f} MB peak{ratios}")
    difference = max_relative_difference(work / "out-app", work / "out-loop")
    print(f"largest relative difference app vs loop: {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
