"""Benchmark: a subject's peak memory against its number of runs.

The participant level fits one run at a time (the next one read ahead), so a subject with
many runs should peak about where a subject with two does; the target is within 1.2x for 12
runs against 2. This script writes two one-subject datasets with the project's generator,
runs of the benchmark's size (64x64x40 voxels, 200 volumes; ``--shape`` and ``--volumes``
to change it), one with 2 runs and one with 12, then runs
``bids-fixedfx DS OUT participant --skip-bids-validation`` on each, with ``--no-reports`` and
with reports, in rounds (each round runs the four cases once, alternating the datasets), each
in a new process. It prints the median peak memory of each case (the high-water resident set,
``VmHWM``, of the app's process: the app works in one process) and its wall time, and the
ratio of 12 runs to 2.

Usage: python benchmarks/runs_memory.py [--runs 2 12] [--rounds 2] [--work-dir DIR]
       [--shape 64 64 40] [--volumes 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmark import SPACE
from measure import load_text, measure_tree


def make_dataset(path: Path, n_runs: int, shape, n_volumes: int) -> Path:
    """One subject, one session, ``n_runs`` runs (written once, reused)."""
    from bids_fixedfx.example_data import make_example_dataset

    if not (path / "dataset_description.json").is_file():
        print(f"Generating {path} ({n_runs} runs of {'x'.join(map(str, shape))}x{n_volumes}) ...",
              file=sys.stderr, flush=True)
        make_example_dataset(path, n_subjects=1, n_sessions=1, n_runs=n_runs, shape=tuple(shape),
                             n_volumes=n_volumes, spaces=(SPACE,))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs=2, default=[2, 12], metavar=("FEW", "MANY"))
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the four cases (median kept)")
    parser.add_argument("--work-dir", type=Path, help="keep the datasets here between runs")
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 40])
    parser.add_argument("--volumes", type=int, default=200)
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bids-fixedfx-runs-"))
    datasets = {n: make_dataset(work / f"ds-{n}runs", n, args.shape, args.volumes) for n in args.runs}
    cases = {(reports, n): [] for reports in (False, True) for n in args.runs}
    load_before = os.getloadavg()
    for round_ in range(args.rounds):
        for reports in (False, True):
            for n in args.runs if round_ % 2 == 0 else args.runs[::-1]:
                out = work / f"out-{n}runs"
                shutil.rmtree(out, ignore_errors=True)
                command = [sys.executable, "-m", "bids_fixedfx", datasets[n], out, "participant",
                           "--skip-bids-validation", *([] if reports else ["--no-reports"])]
                result = measure_tree(command, log=work / f"log-{n}runs.txt")
                if result["code"] != 0:
                    raise SystemExit(f"bids-fixedfx failed on {datasets[n]} (log: {work / f'log-{n}runs.txt'})")
                cases[reports, n].append(result)
                print(f"round {round_ + 1}: {n:2d} runs, reports {'on ' if reports else 'off'}: "
                      f"{result['max_rss_mb']:6.0f} MB peak RSS, {result['seconds']:6.1f} s", flush=True)
    load_after = os.getloadavg()
    print(load_text(load_before, load_after, args.rounds))
    few, many = args.runs
    for reports in (False, True):
        peaks = {n: statistics.median(r["max_rss_mb"] for r in cases[reports, n]) for n in args.runs}
        seconds = {n: statistics.median(r["seconds"] for r in cases[reports, n]) for n in args.runs}
        print(f"reports {'on ' if reports else 'off'}: {few} runs {peaks[few]:.0f} MB ({seconds[few]:.1f} s), "
              f"{many} runs {peaks[many]:.0f} MB ({seconds[many]:.1f} s): memory ratio {peaks[many] / peaks[few]:.2f}, "
              f"time ratio {seconds[many] / seconds[few]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
