"""The ``bids-fixedfx-example`` command: parse the arguments, write the dataset, print its path."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .dataset import make_example_dataset
from .study import CONDITIONS, TASK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``bids-fixedfx-example``."""
    parser = argparse.ArgumentParser(
        prog="bids-fixedfx-example",
        description=(
            "Write a small synthetic BIDS task-fMRI dataset with fMRIPrep-shaped "
            "derivatives and known effects."
        ),
    )
    parser.add_argument("output_dir", type=Path, help="root of the dataset to write")
    parser.add_argument("--subjects", type=int, default=3, help="number of subjects")
    parser.add_argument("--sessions", type=int, default=2, help="sessions per subject")
    parser.add_argument("--runs", type=int, default=2, help="runs per session")
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=(24, 28, 20),
        metavar=("X", "Y", "Z"),
        help="template grid shape in voxels",
    )
    parser.add_argument("--volumes", type=int, default=90, help="volumes per run")
    parser.add_argument("--tr", type=float, default=2.0, help="repetition time (s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--task", default=TASK, help="task label (default: %(default)s)")
    parser.add_argument(
        "--conditions",
        nargs="+",
        default=list(CONDITIONS),
        metavar="NAME",
        help="trial_type values; the first two have an effect (default: %(default)s)",
    )
    parser.add_argument(
        "--non-steady-state", type=int, default=0, metavar="N",
        help="N brighter volumes at the start of each run, flagged by non_steady_state_outlier "
        "columns of the confounds (default: 0)",
    )
    parser.add_argument(
        "--no-derivatives",
        dest="derivatives",
        action="store_false",
        help="do not write derivatives/fmriprep",
    )
    parser.add_argument(
        "--surfaces",
        action="store_true",
        help="also write fsaverage5 GIFTI and fsLR CIFTI series of every run (the demo's)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bids-fixedfx-example`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments without the program name; defaults to
        ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 on success; invalid parameters exit with status 2 (argparse's
        usage error) and a message naming the parameter.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        dataset = make_example_dataset(
            args.output_dir,
            n_subjects=args.subjects,
            n_sessions=args.sessions,
            n_runs=args.runs,
            shape=tuple(args.shape),
            n_volumes=args.volumes,
            tr=args.tr,
            seed=args.seed,
            derivatives=args.derivatives,
            non_steady_state=args.non_steady_state,
            surfaces=args.surfaces,
            task=args.task,
            conditions=tuple(args.conditions),
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(dataset.path)
    return 0
