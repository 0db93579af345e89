"""Shared fixtures: the project's example dataset, copies of it, settings and selections.

All test data come from :func:`bids_fixedfx.example_data.make_example_dataset`
(3 subjects, 2 sessions, 2 runs, spaces MNI152NLin2009cAsym and T1w; the last
subject has a single run), on a smaller grid and with fewer volumes than the
default so that the suite stays fast.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from bids_fixedfx.example_data import make_example_dataset
from bids_fixedfx.settings import Settings

#: Grid and length of the test runs: small, but the effects are still recoverable.
SHAPE = (16, 18, 14)
N_VOLUMES = 60

_SUBJECT_DIR = re.compile(r"sub-[A-Za-z0-9]+")


@pytest.fixture(scope="session")
def example_grid():
    """``shape`` and ``n_volumes`` the example dataset was made with."""
    return {"shape": SHAPE, "n_volumes": N_VOLUMES}


@pytest.fixture(scope="session")
def example_dataset(tmp_path_factory):
    """The example dataset, written once per session. Tests must not modify it."""
    root = tmp_path_factory.mktemp("example") / "bids"
    return make_example_dataset(root, shape=SHAPE, n_volumes=N_VOLUMES)


@pytest.fixture
def fresh_dataset(example_dataset, tmp_path):
    """A factory of private copies of the example dataset, free to modify.

    ``fresh_dataset(subjects=("01",), derivatives=True)`` copies the dataset
    (only the given subjects' folders, raw and derivatives; without
    ``derivatives/`` when ``derivatives`` is false) and returns an
    ``ExampleDataset`` describing the copy.
    """
    count = 0

    def make(subjects=None, derivatives=True):
        nonlocal count
        count += 1
        keep = None if subjects is None else {f"sub-{s}" for s in subjects}

        def ignore(directory, names):
            ignored = []
            for name in names:
                is_dir = (Path(directory) / name).is_dir()
                if keep is not None and is_dir and _SUBJECT_DIR.fullmatch(name) and name not in keep:
                    ignored.append(name)
                if not derivatives and is_dir and name == "derivatives" and Path(directory) == example_dataset.path:
                    ignored.append(name)
            return ignored

        target = tmp_path / f"copy{count}" / "bids"
        shutil.copytree(example_dataset.path, target, ignore=ignore)
        return dataclasses.replace(
            example_dataset,
            path=target,
            subjects=tuple(subjects) if subjects is not None else example_dataset.subjects,
        )

    return make


@pytest.fixture
def two_task_dataset(tmp_path):
    """A factory of example datasets of two tasks, ``checkerboard`` and ``other`` (one run each,
    one space, 12x12x12 voxels): ``two_task_dataset(n_subjects=1)`` returns an ``ExampleDataset``."""

    def make(n_subjects=1):
        common = {"n_subjects": n_subjects, "n_sessions": 1, "n_runs": 1, "shape": (12, 12, 12), "n_volumes": 40,
                  "spaces": ("MNI152NLin2009cAsym",)}
        dataset = make_example_dataset(tmp_path / "two-tasks", **common)
        other = make_example_dataset(tmp_path / "other-task", task="other", **common)
        for path in other.path.rglob("*task-other*"):
            target = dataset.path / path.relative_to(other.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        return dataset

    return make


@pytest.fixture
def make_settings(tmp_path):
    """A factory of :class:`Settings` for a dataset, with OUTPUT_DIR in a temporary folder."""

    def make(bids_dir, **options):
        options.setdefault("output_dir", tmp_path / "out")
        return Settings(bids_dir=Path(bids_dir), analysis_level="participant", **options)

    return make


@pytest.fixture(scope="session")
def example_selection(example_dataset, tmp_path_factory):
    """``discover.select_runs`` on the example dataset with the default settings (made once)."""
    from bids_fixedfx import discover

    settings = Settings(
        bids_dir=example_dataset.path,
        output_dir=tmp_path_factory.mktemp("out"),
        analysis_level="participant",
    )
    return discover.select_runs(settings)


@pytest.fixture(scope="session")
def example_run(example_selection):
    """The first run of the example selection (sub-01, ses-1, run-01)."""
    return example_selection.runs[0]
