"""Benchmark: the group level's memory and wall time against the number of subjects.

Issue 11, item 3: 500 subjects of 2 mm MNI maps (97x115x97) in at most 2 GB of memory, wall
time linear in the number of subjects. This script writes N synthetic subjects (an effect map,
a variance map and a mask each, float32 ``.nii.gz``; the mask a brain-like ellipsoid of about
230,000 voxels, slightly different per subject), then runs each group-level computation in a
new process and reports its wall time and peak resident memory (the child's ``ru_maxrss``):

- ``random``: ``combine.group_level(..., 'random')``: mask intersection and one-sample t-test;
- ``fixed``: ``combine.group_level(..., 'fixed')``: mask intersection and fixed effects;
- ``glm``: ``combine.group_glm`` with an intercept and an age covariate, a t contrast.

``--impl nilearn`` runs the same steps with nilearn directly (``intersect_masks``,
``SecondLevelModel``, ``compute_fixed_effects``), which is what the app did before its
group level was streamed.

Measured on this machine (2 cores), one round, seconds and peak MB of the child process;
``before`` is this script on the app's previous commit (3f8e6d2: nilearn's ``SecondLevelModel``,
``compute_fixed_effects`` and ``intersect_masks`` on the list of maps, the calls of ``--impl nilearn``):

    subjects  random before   random after   fixed before   fixed after   glm before     glm after
    50        6.6 s   874     2.9 s   361    4.4 s   334    3.1 s   264   6.7 s   874    2.4 s   362
    100       13.3 s  1640    4.4 s   397    6.2 s   449    5.2 s   264   12.8 s  1640   3.6 s   398
    200       29.3 s  2890    6.7 s   449    10.9 s  677    8.6 s   263   30.8 s  2890   5.7 s   451
    500       112 s   8311    11.8 s  676    34 s    1359   19.6 s  263   233 s   7969   14.1 s  707

(``fixed before`` and ``glm before`` at 500: one run, while other work may have been running.)

Usage: python benchmarks/group_scale.py [--subjects 50 100 200 500] [--modes random fixed glm]
       [--impl app|nilearn] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SHAPE = (97, 115, 97)
#: The MNI152NLin2009cAsym 2 mm grid.
AFFINE = np.array([[-2.0, 0, 0, 96], [0, 2.0, 0, -132], [0, 0, 2.0, -78], [0, 0, 0, 1]])
CENTRE = np.array([48.0, 63.0, 40.0])
RADII = np.array([35.0, 43.0, 36.5])  # 4/3 pi abc: about 230,000 voxels


def _paths(directory: Path, index: int) -> dict:
    return {kind: directory / f"sub-{index:04d}_{kind}.nii.gz" for kind in ("effect", "variance", "mask")}


def _write_subject(args) -> None:
    import nibabel as nib

    directory, index = args
    paths = _paths(directory, index)
    if all(p.exists() for p in paths.values()):
        return
    rng = np.random.default_rng(index)
    centre = CENTRE + rng.uniform(-1.0, 1.0, 3)
    radii = RADII * rng.uniform(0.98, 1.02, 3)
    axes = [((np.arange(n, dtype=np.float32) - c) / r) ** 2 for n, c, r in zip(SHAPE, centre, radii)]
    inside = (axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]) <= 1.0
    n_inside = int(inside.sum())
    effect = np.zeros(SHAPE, np.float32)
    effect[inside] = rng.normal(0.3, 1.0, n_inside)
    variance = np.zeros(SHAPE, np.float32)
    variance[inside] = rng.uniform(0.1, 1.0, n_inside)
    header = nib.Nifti1Header()
    for kind, data in (("effect", effect), ("variance", variance), ("mask", inside.astype(np.uint8))):
        img = nib.Nifti1Image(data, AFFINE, header)
        img.set_qform(AFFINE, 1)
        img.set_sform(AFFINE, 1)
        tmp = paths[kind].with_name("tmp-" + paths[kind].name)
        nib.save(img, tmp)  # nibabel writes gzip at compresslevel 1
        tmp.replace(paths[kind])


def generate(directory: Path, n_subjects: int, n_procs: int = 2) -> float:
    """Write subjects 0..n-1 (those not there yet); return the seconds it took."""
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(n_procs) as pool:
        list(pool.map(_write_subject, [(directory, i) for i in range(n_subjects)], chunksize=8))
    return time.perf_counter() - start


def _inputs(directory: Path, n_subjects: int):
    paths = [_paths(directory, i) for i in range(n_subjects)]
    return ([str(p["effect"]) for p in paths], [str(p["variance"]) for p in paths],
            [str(p["mask"]) for p in paths])


def _design(n_subjects: int):
    import pandas as pd

    age = np.random.default_rng(0).uniform(20, 60, n_subjects)
    return pd.DataFrame({"intercept": np.ones(n_subjects), "age": age - age.mean()})


def _run_app(mode, effects, variances, masks):
    from bids_fixedfx import combine

    contrast = combine.GroupContrast("c", "c", {"intercept": 1.0})
    dofs = [100.0] * len(effects)
    if mode in ("random", "fixed"):
        combine.group_level(effects, variances, dofs, masks, contrast, mode)
    else:
        mask = combine.intersect_masks(masks)
        design = _design(len(effects))
        combine.group_glm(effects, mask, design, np.array([[0.0, 1.0]]),
                          combine.GroupContrast("age", "age", {"age": 1.0}))


def _run_nilearn(mode, effects, variances, masks):
    from nilearn.glm import compute_fixed_effects
    from nilearn.glm.second_level import SecondLevelModel
    from nilearn.masking import intersect_masks

    mask = intersect_masks(masks, threshold=1, connected=False)
    if mode == "fixed":
        compute_fixed_effects(effects, variances, mask, dofs=[100.0] * len(effects))
        return
    design = _design(len(effects)) if mode == "glm" else _design(len(effects))[["intercept"]]
    model = SecondLevelModel(mask_img=mask, minimize_memory=True).fit(effects, design_matrix=design)
    model.compute_contrast(np.array([0.0, 1.0]) if mode == "glm" else "intercept",
                           second_level_stat_type="t", output_type="all")


def child(impl: str, mode: str, directory: Path, n_subjects: int) -> None:
    """Run one computation in this process; print its seconds and peak memory as JSON."""
    import resource
    import warnings

    warnings.simplefilter("ignore")
    effects, variances, masks = _inputs(directory, n_subjects)
    start = time.perf_counter()
    (_run_app if impl == "app" else _run_nilearn)(mode, effects, variances, masks)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kib / 1024}))


def measure(impl: str, mode: str, directory: Path, n_subjects: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", impl, mode, str(directory), str(n_subjects)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[50, 100, 200, 500])
    parser.add_argument("--modes", nargs="+", default=["random", "fixed", "glm"],
                        choices=["random", "fixed", "glm"])
    parser.add_argument("--impl", default="app", choices=["app", "nilearn"])
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="Where to keep the synthetic maps (reused if there; default: a temp dir)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        impl, mode, directory, n = args.child
        child(impl, mode, Path(directory), int(n))
        return
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="group_scale_"))
    seconds = generate(work, max(args.subjects), n_procs=min(4, os.cpu_count() or 1))
    print(f"maps of {max(args.subjects)} subjects ready in {work} ({seconds:.1f} s)", flush=True)
    print(f"{'impl':8} {'mode':7} {'subjects':>8} {'seconds':>8} {'s/subject':>9} {'peak MB':>8}")
    for mode in args.modes:
        for n in sorted(args.subjects):
            result = measure(args.impl, mode, work, n)
            print(f"{args.impl:8} {mode:7} {n:8d} {result['seconds']:8.1f} {result['seconds'] / n:9.3f} "
                  f"{result['peak_mb']:8.0f}", flush=True)


if __name__ == "__main__":
    main()
