"""Benchmark: set-up time of one participant against the size of the dataset.

An HPC user runs one job per subject (a SLURM array). Each job must set up (index the
dataset, find its runs and their files) in a time that does not grow with the number of
subjects in the dataset. This script writes synthetic datasets of N subjects with
fMRIPrep-like derivatives (2 runs per subject, tiny 4x4x4x10 images, the usual anatomical
files, figures, logs and one HTML report per subject), then times
``bids_fixedfx.discover.select_runs`` for one ``--participant-label``, each time in a new
process:

- ``fresh``: first run, no saved index;
- ``db build``: ``--bids-database-dir`` given, empty (this job saves the index of the whole
  dataset);
- ``db reuse``: ``--bids-database-dir`` given, the saved index reused (every later job);
- ``validate``: the BIDS validator as the participant's job runs it (its subject's files and
  the dataset's top level), when ``bids-validator-deno`` is installed.

It prints the seconds of each (median of the rounds) and the ratio of the largest dataset
to the smallest; the target is a ratio of at most 1.5 for ``fresh`` and ``db reuse``.

Usage: python benchmarks/setup_scale.py [--subjects 10 1000] [--rounds 3] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TASK = "checkerboard"
SPACE = "MNI152NLin2009cAsym"
N_RUNS = 2
SHAPE = (4, 4, 4)
N_VOLUMES = 10
TR = 2.0

MEASURE = r"""
import json, sys, time
from pathlib import Path
from bids_fixedfx import discover
from bids_fixedfx.settings import Settings

bids_dir, output_dir, label, database, mode = sys.argv[1:6]
settings = Settings(
    bids_dir=Path(bids_dir), output_dir=Path(output_dir), analysis_level="participant",
    participant_label=(label,), bids_database_dir=Path(database) if database else None,
)
start = time.perf_counter()
if mode == "validate":
    discover.validate_input_dir(Path(bids_dir), (label,))
    runs = []
else:
    runs = [run.name for run in discover.select_runs(settings).runs]
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "runs": runs}))
"""


def _nifti_bytes(shape) -> bytes:
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.ones(shape, dtype="int16"), np.diag([3.0, 3.0, 3.0, 1.0]))
    if len(shape) == 4:
        img.header.set_zooms((3.0, 3.0, 3.0, TR))
    return gzip.compress(img.to_bytes(), compresslevel=1)


def make_dataset(root: Path, n_subjects: int) -> Path:
    """Write a raw dataset of ``n_subjects`` with ``derivatives/fmriprep``, if not there yet."""
    done = root / ".complete"
    if done.is_file():
        return root
    if root.exists():
        shutil.rmtree(root)
    print(f"Writing {n_subjects} subjects to {root} ...", file=sys.stderr)
    bold, image = _nifti_bytes((*SHAPE, N_VOLUMES)), _nifti_bytes(SHAPE)
    events = "onset\tduration\ttrial_type\n0\t4\taudio\n8\t4\tvisual\n"
    confounds = "\t".join(f"{k}_{a}" for k in ("trans", "rot") for a in "xyz") + "\n"
    confounds += "".join("\t".join(["0.0"] * 6) + "\n" for _ in range(N_VOLUMES))
    subjects = [f"{i + 1:04d}" for i in range(n_subjects)]

    def write(path: Path, content):
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))

    write(root / "dataset_description.json", {"Name": "scale", "BIDSVersion": "1.9.0"})
    write(root / "README", "Synthetic dataset for the set-up benchmark.\n")
    write(root / "participants.tsv", "participant_id\n" + "".join(f"sub-{s}\n" for s in subjects))
    write(root / f"task-{TASK}_bold.json", {"RepetitionTime": TR, "TaskName": TASK})
    fmriprep = root / "derivatives" / "fmriprep"
    write(fmriprep / "dataset_description.json", {
        "Name": "fMRIPrep", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}],
    })
    for sub in subjects:
        s = f"sub-{sub}"
        write(root / s / "anat" / f"{s}_T1w.nii.gz", image)
        write(fmriprep / f"{s}.html", "<html></html>\n")
        anat = fmriprep / s / "anat"
        for name in ("desc-preproc_T1w", "desc-brain_mask", f"space-{SPACE}_desc-preproc_T1w",
                     f"space-{SPACE}_desc-brain_mask", "dseg", "label-GM_probseg",
                     "label-WM_probseg", "label-CSF_probseg"):
            write(anat / f"{s}_{name}.nii.gz", image)
        write(anat / f"{s}_from-T1w_to-{SPACE}_mode-image_xfm.h5", b"\0" * 64)
        write(anat / f"{s}_desc-preproc_T1w.json", {"SkullStripped": True})
        for run in range(1, N_RUNS + 1):
            stem = f"{s}_task-{TASK}_run-{run}"
            write(root / s / "func" / f"{stem}_bold.nii.gz", bold)
            write(root / s / "func" / f"{stem}_events.tsv", events)
            func = fmriprep / s / "func"
            write(func / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz", bold)
            write(func / f"{stem}_space-{SPACE}_desc-preproc_bold.json",
                  {"RepetitionTime": TR, "SkullStripped": False})
            write(func / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz", image)
            write(func / f"{stem}_space-{SPACE}_boldref.nii.gz", image)
            write(func / f"{stem}_desc-coreg_boldref.nii.gz", image)
            write(func / f"{stem}_desc-confounds_timeseries.tsv", confounds)
            write(func / f"{stem}_desc-confounds_timeseries.json", {})
            write(func / f"{stem}_from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt", "1 0 0 0\n")
            write(fmriprep / s / "figures" / f"{stem}_desc-carpetplot_bold.svg", "<svg/>\n")
        write(fmriprep / s / "figures" / f"{s}_desc-summary_T1w.html", "<div/>\n")
        write(fmriprep / s / "log" / "20240101-000000_abc" / "fmriprep.toml", "[environment]\n")
    done.write_text("")
    return root


def time_setup(bids_dir: Path, label: str, database: Path | None, output_dir: Path, mode: str = "select") -> dict:
    """Run ``select_runs`` (or, ``mode`` ``validate``, the BIDS validator as a job of this
    participant runs it) for one participant in a new process; its seconds and runs."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(bids_dir), str(output_dir), label, str(database or ""), mode],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed on {bids_dir}:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[10, 1000],
                        help="dataset sizes to compare (default: 10 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each case")
    parser.add_argument("--work-dir", type=Path, help="where the datasets are kept (reused)")
    args = parser.parse_args(argv)

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="setup-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = sorted(args.subjects)
    datasets = {n: make_dataset(work / f"ds{n}", n) for n in sizes}
    label = "0005"  # the same participant in every dataset
    from bids_fixedfx.discover import validator_command

    cases = ("fresh", "db build", "db reuse") + (("validate",) if validator_command() else ())
    results = {n: {case: [] for case in cases} for n in sizes}
    runs = {}
    for round_ in range(args.rounds):
        for n in sizes:  # alternate the sizes within a round
            database = work / f"db{n}-{round_}"
            shutil.rmtree(database, ignore_errors=True)
            for case, db in (("fresh", None), ("db build", database), ("db reuse", database)):
                result = time_setup(datasets[n], label, db, work / "out")
                results[n][case].append(result["seconds"])
                runs.setdefault(case, set()).add(tuple(result["runs"]))
            shutil.rmtree(database, ignore_errors=True)
            if "validate" in cases:
                results[n]["validate"].append(time_setup(datasets[n], label, None, work / "out", "validate")["seconds"])
    if any(len(found) != 1 for found in runs.values()) or len(set().union(*runs.values())) != 1:
        raise SystemExit(f"The runs found differ between datasets or cases: {runs}")

    print(f"select_runs for sub-{label} (and the BIDS validator of its job: validate), seconds "
          f"(median of {args.rounds}; min in brackets)")
    print(f"{'case':<10}" + "".join(f"{f'N={n}':>18}" for n in sizes) + f"{'ratio':>8}")
    for case in cases:
        medians = [statistics.median(results[n][case]) for n in sizes]
        cells = "".join(f"{m:>10.2f} ({min(results[n][case]):5.2f})" for m, n in zip(medians, sizes))
        print(f"{case:<10}{cells}{medians[-1] / medians[0]:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
