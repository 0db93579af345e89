"""Benchmark: bids-fixedfx's participant level against a plain nilearn loop.

Generates a realistic-size dataset with the project's example generator
(64x64x40 voxels, 200 volumes, 2 subjects x 3 runs, one space), then runs, each in
its own process, on the same data:

1. the plain nilearn loop (``nilearn_loop.py``),
2. ``bids-fixedfx DS OUT participant --skip-bids-validation --no-reports`` (the same work),
3. ``bids-fixedfx DS OUT participant`` with its defaults (validation, reports, boilerplate),

and prints wall time and peak memory (the kernel's maximum resident set size of the
process) with the app/loop ratios, and the largest relative difference between the
app's and the loop's maps.

Usage: python benchmarks/benchmark.py [--work-dir DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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
    """Largest |app - loop| / max|loop| over every run and subject map of the loop."""
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
        scale = np.max(np.abs(theirs)) or 1.0
        worst = max(worst, float(np.max(np.abs(ours - theirs)) / scale))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, help="keep the dataset here between runs")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command (best kept)")
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bids-fixedfx-bench-"))
    dataset = make_dataset(work / "ds")
    app = [sys.executable, "-m", "bids_fixedfx"]
    commands = {  # name: (output folder, command)
        "nilearn loop": ("out-loop", lambda out: [sys.executable, HERE / "nilearn_loop.py", dataset, out]),
        "bids-fixedfx (same work)": ("out-app", lambda out: [
            *app, dataset, out, "participant", "--skip-bids-validation", "--no-reports"]),
        "bids-fixedfx (defaults)": ("out-app-full", lambda out: [*app, dataset, out, "participant"]),
    }
    results = {}
    for name, (folder, command) in commands.items():
        best = None
        for _ in range(args.repeat):
            out = work / folder
            shutil.rmtree(out, ignore_errors=True)
            result = measure(command(out))
            best = result if best is None or result["seconds"] < best["seconds"] else best
        results[name] = best
        print(f"{name:28s} {best['seconds']:7.1f} s {best['peak_mb']:8.0f} MB peak", flush=True)
    loop, same, full = (results[n] for n in commands)
    print(f"wall-time ratio app/loop: {same['seconds'] / loop['seconds']:.2f}")
    print(f"peak-memory ratio app/loop: {same['peak_mb'] / loop['peak_mb']:.2f}")
    print(f"reports, validation and boilerplate: {full['seconds'] - same['seconds']:.1f} s "
          f"({(full['seconds'] - same['seconds']) / full['seconds']:.0%} of the default run)")
    difference = max_relative_difference(work / "out-app", work / "out-loop")
    print(f"largest relative difference app vs loop: {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
