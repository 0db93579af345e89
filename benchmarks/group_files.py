"""Benchmark: which files the group level opens, and its time, against the number of subjects.

A group run on 1,000 subjects should open the effect maps (and masks, and the sidecars that
say how the maps were made) of the task it tests, nothing of the other tasks, no run-level
map, no variance map for a one-sample t-test, and take a time linear in the number of
subjects. This script builds participant-level outputs as the app writes them:

1. it generates a tiny dataset (2 subjects, 2 runs of 12x12x12 voxels, 30 volumes) with the
   project's generator and runs ``bids-fixedfx DS OUT participant`` on it;
2. it copies sub-01's files to subjects ``sub-0001`` ... ``sub-N`` for two tasks
   (``checkerboard`` and a copy named ``other``), renaming files and the names inside the
   sidecars, each subject-level effect map replaced by a map of its own (random, inside the
   mask), so that every subject folder holds what the participant level writes: 2 runs' and
   the subject's maps of 2 contrasts (effect, variance, t, z, p with sidecars), designs, mask;
3. outputs of fewer subjects (``--subjects 250 500 1000``) link the first subject folders of
   the largest.

Then it runs ``bids-fixedfx DS OUT group -t checkerboard``:

- once per size with ``--no-reports``, and once at the largest size with reports, under
  ``strace -f -e trace=open,openat``, counting the files opened under the subject folders by
  task, level (subject or run) and kind (effect, variance, t, z, p, mask, sidecar, folder
  listing), each count with the number of distinct files;
- ``--rounds`` times per size without strace, reports on (sizes alternating), printing the
  median wall time, seconds per subject and peak memory (high-water RSS of the process).

Usage: python benchmarks/group_files.py [--subjects 250 500 1000] [--rounds 2] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from measure import load_text, measure_tree

TASK, OTHER_TASK = "checkerboard", "other"
TEMPLATE_SUBJECT = "01"
#: strace -f's lines of an open: whole (``= fd`` at its end), or cut in two when another process
#: made a call meanwhile (``<unfinished ...>``, then ``<... openat resumed>`` with the result).
OPENAT = re.compile(r'^(\d+) +open(?:at)?\((?:AT_FDCWD|\d+), "([^"]+)"(.*)$')
RESUMED = re.compile(r'^(\d+) +<\.\.\. open(?:at)? resumed>.* = (\d+)$')


def make_template(work: Path) -> Path:
    """A real participant-level output of a tiny generated dataset (written once)."""
    from bids_fixedfx.example_data import make_example_dataset

    dataset, out = work / "ds", work / "template-out"
    if not (out / f"sub-{TEMPLATE_SUBJECT}").is_dir():
        shutil.rmtree(dataset, ignore_errors=True)
        make_example_dataset(dataset, n_subjects=2, n_sessions=1, n_runs=2, shape=(12, 12, 12), n_volumes=30,
                             spaces=("MNI152NLin2009cAsym",))
        subprocess.run([sys.executable, "-m", "bids_fixedfx", dataset, out, "participant",
                        "--skip-bids-validation", "--no-reports"], check=True, capture_output=True)
    return out


def _new_output_dir(source: Path, root: Path) -> None:
    """An empty OUTPUT_DIR but for the dataset files and models of ``source``."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name in ("dataset_description.json", ".bidsignore", "models"):
        (shutil.copytree if (source / name).is_dir() else shutil.copy2)(source / name, root / name)


def _subject_effect(template_effect: Path, mask: Path, target: Path, seed: int) -> None:
    import nibabel as nib
    import numpy as np

    img, inside = nib.load(template_effect), nib.load(mask).get_fdata() > 0
    data = np.zeros(img.shape, np.float32)
    data[inside] = np.random.default_rng(seed).normal(0.3, 1.0, int(inside.sum()))
    nib.save(nib.Nifti1Image(data, img.affine, img.header), target)


def make_outputs(template: Path, root: Path, n_subjects: int) -> Path:
    """OUTPUT_DIR with ``n_subjects`` subjects of two tasks, copied from the template's sub-01."""
    done = root / ".complete"
    if done.is_file():
        return root
    _new_output_dir(template, root)
    files = sorted((template / f"sub-{TEMPLATE_SUBJECT}" / "func").iterdir())
    mask = next(f for f in files if f.name.endswith("desc-fixedfx_mask.nii.gz"))
    print(f"Writing {n_subjects} subjects x 2 tasks x {len(files)} files to {root} ...", file=sys.stderr, flush=True)
    for index in range(1, n_subjects + 1):
        subject = f"{index:04d}"
        func = root / f"sub-{subject}" / "func"
        func.mkdir(parents=True)
        for task in (TASK, OTHER_TASK):
            def rename(text: str) -> str:
                return text.replace(f"sub-{TEMPLATE_SUBJECT}", f"sub-{subject}").replace(f"task-{TASK}", f"task-{task}")

            for source in files:
                target = func / rename(source.name)
                if source.suffix in (".json", ".tsv"):
                    target.write_text(rename(source.read_text()))
                elif "_run-" not in source.name and "_stat-effect_" in source.name:
                    _subject_effect(source, mask, target, seed=index * 2 + (task == OTHER_TASK))
                else:
                    os.link(source, target)  # maps the group level does not read: shared bytes
    done.write_text("")
    return root


def make_subset(full: Path, root: Path, n_subjects: int) -> Path:
    """OUTPUT_DIR holding the first ``n_subjects`` subject folders of ``full``, their files hard
    links (the app refuses a subject folder that is a symbolic link: it would write through it)."""
    if (root / ".complete").is_file():
        return root
    _new_output_dir(full, root)
    for index in range(1, n_subjects + 1):
        shutil.copytree(full / f"sub-{index:04d}", root / f"sub-{index:04d}", copy_function=os.link)
    (root / ".complete").write_text("")
    return root


def _kind(name: str) -> str:
    if name.endswith("_mask.nii.gz"):
        return "mask"
    if name.endswith(".json"):
        return "sidecar"
    if name.endswith(".tsv"):
        return "design"
    match = re.search(r"_stat-([a-z]+)_", name)
    return match.group(1) if match else "other"


def count_opens(trace: Path, output_dir: Path) -> tuple[Counter, Counter]:
    """Files opened (successfully) under OUTPUT_DIR's subject folders, by every process of the
    trace: (opens, distinct files) per (task, level, kind)."""
    opens, files, pending = Counter(), {}, {}
    prefix = str(output_dir)
    for line in trace.read_text().splitlines():
        path = None
        match = OPENAT.match(line)
        if match and match.group(3).endswith("<unfinished ...>"):
            pending[match.group(1)] = match.group(2)
        elif match and re.search(r" = \d+$", match.group(3)):
            path = match.group(2)
        elif (resumed := RESUMED.match(line)) and resumed.group(1) in pending:
            path = pending.pop(resumed.group(1))
        if path is None or not path.startswith(prefix):
            continue
        relative = path[len(prefix):].lstrip("/")
        if not relative.startswith("sub-"):
            continue
        name = relative.rsplit("/", 1)[-1]
        task = re.search(r"_task-([a-zA-Z0-9]+)", name)
        if task is None:  # a folder, listed
            key = ("-", "folder", "listing")
        else:
            key = (task.group(1), "run" if "_run-" in name else "subject", _kind(name))
        opens[key] += 1
        files.setdefault(key, set()).add(relative)
    return opens, Counter({key: len(paths) for key, paths in files.items()})


def group_command(dataset: Path, output_dir: Path, reports: bool = True) -> list:
    return [sys.executable, "-m", "bids_fixedfx", dataset, output_dir, "group", "-t", TASK,
            *([] if reports else ["--no-reports"])]


def _clean(output_dir: Path) -> None:
    shutil.rmtree(output_dir / "group", ignore_errors=True)
    for page in output_dir.glob("group*.html"):
        page.unlink()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--rounds", type=int, default=2, help="timed runs per size (median kept)")
    parser.add_argument("--work-dir", type=Path, help="keep the outputs here between runs")
    args = parser.parse_args(argv)
    if shutil.which("strace") is None:
        raise SystemExit("strace is needed to count the files opened (apt-get install strace).")
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="bids-fixedfx-group-files-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    template = make_template(work)
    sizes = sorted(args.subjects)
    full = make_outputs(template, work / f"out-{sizes[-1]}", sizes[-1])
    outputs = {n: full if n == sizes[-1] else make_subset(full, work / f"out-{n}", n) for n in sizes}
    dataset = work / "ds"

    print(f"files opened under the subject folders by one group run (-t {TASK}): opens (distinct files)")
    for n, reports in [(n, False) for n in sizes] + [(sizes[-1], True)]:
        _clean(outputs[n])
        trace = work / f"trace-{n}{'-reports' if reports else ''}.txt"
        command = ["strace", "-f", "--seccomp-bpf", "-e", "trace=open,openat", "-o", trace,
                   *group_command(dataset, outputs[n], reports)]
        done = subprocess.run([str(c) for c in command], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the group level failed on {outputs[n]}:\n{done.stderr[-3000:]}")
        opens, distinct = count_opens(trace, outputs[n])
        print(f"{n:5d} subjects, reports {'on' if reports else 'off'}:", flush=True)
        for key in sorted(opens):
            print(f"      {' '.join(key):32s} {opens[key]:7d} ({distinct[key]})")

    times, load_before = {n: [] for n in sizes}, os.getloadavg()
    for round_ in range(args.rounds):
        for n in sizes if round_ % 2 == 0 else sizes[::-1]:
            _clean(outputs[n])
            result = measure_tree(group_command(dataset, outputs[n]), log=work / f"group-{n}.log")
            if result["code"] != 0:
                raise SystemExit(f"the group level failed on {outputs[n]} (log: {work / f'group-{n}.log'})")
            times[n].append(result)
    print(f"group level, -t {TASK}, reports on; " + load_text(load_before, os.getloadavg(), args.rounds))
    print(f"{'subjects':>8} {'seconds':>8} {'s/subject':>10} {'peak MB':>8}")
    for n in sizes:
        seconds = statistics.median(r["seconds"] for r in times[n])
        peak = statistics.median(r["max_rss_mb"] for r in times[n])
        print(f"{n:8d} {seconds:8.1f} {seconds / n:10.4f} {peak:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
