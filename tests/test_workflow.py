"""The coordination of the levels: what :mod:`bids_fixedfx.workflow` decides itself."""

import gc
import sys
from types import SimpleNamespace

import pytest

from bids_fixedfx import workflow


def _collecting(settings):
    return gc.isenabled()


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A module not loaded yet that records, when imported, whether the collector ran."""
    name = f"startup_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("import gc\nCOLLECTING = gc.isenabled()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    gc.unfreeze()


def test_the_start_up_imports_and_forks_without_the_cycle_collector_and_then_it_runs_again(probe):
    assert gc.isenabled()
    with workflow._beside_imports(_collecting, SimpleNamespace(nprocs=2), (probe,), True, None, "Probing") as call:
        assert call.pid is not None  # the call was made in a child, beside the import
        assert call.result() is False  # the child kept the pause for its task
        assert sys.modules[probe].COLLECTING is False
        assert gc.get_freeze_count() > 0  # the start-up's objects are out of the collector's reach
        assert gc.isenabled()
    assert gc.isenabled()


def test_the_collector_runs_again_when_the_start_up_fails(probe):
    with pytest.raises(ValueError), workflow._beside_imports(_collecting, SimpleNamespace(nprocs=2), (probe,),
                                                             True, None, "Probing"):
        raise ValueError("planning refused the model")
    assert gc.isenabled()


def test_without_a_fork_the_collector_is_left_as_it_is(probe):
    frozen = gc.get_freeze_count()
    with workflow._beside_imports(_collecting, SimpleNamespace(nprocs=1), (probe,), True, None, "Probing") as call:
        assert call.pid is None and call.result() is True  # one core: the call is made here
    assert gc.isenabled() and gc.get_freeze_count() == frozen  # nothing frozen for a caller's process
    gc.disable()
    try:
        with workflow._beside_imports(_collecting, SimpleNamespace(nprocs=2), (probe,), True, None, "Probing") as call:
            assert call.result() is False
        assert not gc.isenabled()  # turned off by the caller: off it stays
    finally:
        gc.enable()


def _numpy_blas_threads(settings=None):
    """The threads of each BLAS loaded (NumPy's, and SciPy's once loaded)."""
    from threadpoolctl import threadpool_info

    import numpy  # noqa: F401

    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


@pytest.mark.parametrize("level", ["participant", "group"])
def test_a_level_runs_numpy_blas_on_one_thread_and_its_forked_children_too(level, monkeypatch, probe):
    """Planning's small products (a design's rank) ran on BLAS's default threads, whose waiting
    made each call last a second on a busy machine."""
    from threadpoolctl import threadpool_limits

    seen = {}

    def level_function(settings, fork):
        seen["process"] = _numpy_blas_threads()
        with workflow._beside_imports(_numpy_blas_threads, SimpleNamespace(nprocs=2), (probe,), True, None,
                                      "Probing") as call:
            seen["child"], seen["forked"] = call.result(), call.pid is not None
            seen["planning"] = _numpy_blas_threads()

    monkeypatch.setattr(workflow, f"run_{level}", level_function)
    with threadpool_limits(limits=2, user_api="blas"):  # as on a machine of two cores or more
        before = _numpy_blas_threads()
        workflow.run_level(SimpleNamespace(analysis_level=level), fork=True)
        assert _numpy_blas_threads() == before  # the caller's setting is given back
    assert before and max(before) == 2
    assert seen["process"] and set(seen["process"]) == {1}
    assert seen["forked"] and seen["child"] == seen["process"]
    assert set(seen["planning"]) == {1}


def test_without_a_fork_the_modules_are_loaded_before_the_call_and_blas_limited_through_it(probe):
    """Planning's designs (nilearn: a SciPy SVD each) ran on SciPy's BLAS at its default
    threads with --nprocs 1, the set-up of jobs packed on a shared node: SciPy loaded during
    the call, after the limit was set."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        with workflow._beside_imports(lambda settings: (probe in sys.modules, _numpy_blas_threads()),
                                      SimpleNamespace(nprocs=1), (probe,), True, None, "Probing") as call:
            assert call.pid is None
            loaded, threads = call.result()
        assert loaded and set(threads) == {1}
        assert max(_numpy_blas_threads()) == 2


def test_jobs_beside_each_other_over_folders_of_one_name_keep_every_link(fresh_dataset, tmp_path, monkeypatch):
    """Per-subject jobs over per-subject ``fmriprep`` folders, started together: each named its
    folder before the others wrote their links, so two sidecars' ``bids:fmriprep:`` pointed at
    another subject's folder and ``DatasetLinks`` lost some folders. Here the other job runs
    whole once this one has written its first run."""
    import json
    import shutil
    import subprocess

    from bids_fixedfx.cli import main

    dataset = fresh_dataset(subjects=("01", "02"))
    folders = {}
    for subject in ("01", "02"):
        folder = folders[subject] = tmp_path / f"sub-{subject}" / "fmriprep"
        shutil.copytree(dataset.path / "derivatives" / "fmriprep", folder)
        for other in folder.glob("sub-*"):
            if other.is_dir() and other.name != f"sub-{subject}":
                shutil.rmtree(other)
    shutil.rmtree(dataset.path / "derivatives")
    out = tmp_path / "out"
    common = ["--skip-bids-validation", "--no-reports", "--nprocs", "1", "--space", "MNI152NLin2009cAsym"]
    write_run, ran = workflow.write_run, []

    def other_job_between(*args, **kwargs):
        write_run(*args, **kwargs)
        if not ran:  # sub-02's job, run whole once this one has written its first run's sidecars
            ran.append(subprocess.run(
                [sys.executable, "-m", "bids_fixedfx", str(dataset.path), str(out), "participant",
                 "--participant-label", "02", "-d", str(folders["02"]), *common], capture_output=True, text=True))

    monkeypatch.setattr(workflow, "write_run", other_job_between)
    assert main([str(dataset.path), str(out), "participant", "--participant-label", "01", "-d", str(folders["01"]),
                 *common]) == 0
    assert ran and ran[0].returncode == 0, ran[0].stderr
    links = json.loads((out / "dataset_description.json").read_text())["DatasetLinks"]
    assert sorted((out / path).resolve() for name, path in links.items() if name != "raw") == sorted(
        folder.resolve() for folder in folders.values())
    for subject, folder in folders.items():
        sidecars = list((out / f"sub-{subject}").rglob("*_stat-z_statmap.json"))
        assert sidecars
        for sidecar in sidecars:
            for uri in json.loads(sidecar.read_text())["Sources"]:
                name, _, relative = uri[len("bids:"):].partition(":")
                target = ((out / links[name]) if name else out).joinpath(relative).resolve()
                assert target.is_file(), uri
                if name not in ("", "raw"):
                    assert target.is_relative_to(folder.resolve()), (subject, uri)


def test_a_set_that_fails_to_move_into_place_leaves_the_earlier_model_copy(fresh_dataset, tmp_path, monkeypatch):
    """The model's copy was written before the first set moved into place: a rerun with other options
    whose set failed to move (a file of the output made read-only) left a copy that no map matched."""
    from bids_fixedfx import outputs
    from bids_fixedfx.cli import main

    dataset = fresh_dataset(subjects=("01",))
    out = tmp_path / "out"
    common = [str(dataset.path), str(out), "participant", "--skip-bids-validation", "--no-reports", "--nprocs", "1"]
    assert main(common) == 0
    model = out / "models" / "model-default_smdl.json"
    before = model.read_text()

    def refused(self, stale=()):
        raise PermissionError(13, "Permission denied", str(out / "sub-01"))

    monkeypatch.setattr(outputs.Staging, "commit", refused)
    assert main([*common, "--smoothing-fwhm", "0"]) == 64  # OUTPUT_DIR not writable: said so
    assert model.read_text() == before
    monkeypatch.undo()
    assert main([*common, "--smoothing-fwhm", "0"]) == 0
    assert model.read_text() != before  # the rerun that moved its set wrote its own


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("kinds", ["vvvvvv", "vvsvsv", "ssssss", "vsvvvs"])
def test_reads_into_fitted_series_keep_memory_to_two_series(kinds, nprocs, monkeypatch):
    """A fitted run's series is where a later volume run is read (SeriesPool), never held
    beside more series than before: two at most while a run is fitted beside the next
    one's read, one with one core, and none kept for a surface run (read elsewhere)."""
    import weakref

    import numpy as np

    from bids_fixedfx import glm

    alive, peaks, reused = [], [], []

    def prepare_run(bold, mask, smoothing, n_threads, ahead=None, allocate=np.empty):
        series = allocate((4, 3), np.float32) if glm.is_streamed(bold, mask) else np.empty((4, 3), np.float32)
        reused.append(any(ref() is series for ref in alive))
        alive.append(weakref.ref(series))
        return glm.MaskedRun(series, None)

    def fit_masked(masked, *args, **kwargs):
        gc.collect()
        peaks.append(len({id(ref()) for ref in alive if ref() is not None}))
        return SimpleNamespace(notes=())

    monkeypatch.setattr(glm, "prepare_run", prepare_run)
    monkeypatch.setattr(glm, "fit_masked", fit_masked)
    monkeypatch.setattr(workflow.surface, "is_surface_file", lambda path: str(path).endswith(".gii"))
    monkeypatch.setattr(workflow.surface, "run_model", lambda run, model: model)
    runs = [SimpleNamespace(run=SimpleNamespace(bold=f"r{i}" + (".gii" if kind == "s" else ".nii.gz"),
                                                mask=None if kind == "s" else "mask.nii.gz", name=f"r{i}"),
                            design=None, contrasts=())
            for i, kind in enumerate(kinds)]
    settings = SimpleNamespace(model=SimpleNamespace(noise_model="ar1", smoothing_fwhm=None), nprocs=nprocs)
    for _ in workflow._fit_all(runs, settings):
        pass
    assert max(peaks) <= (2 if nprocs > 1 else 1)
    streamed = [kind == "v" for kind in kinds]
    later = 2 if nprocs > 1 else 1  # a run's series is read into by the run that many after it
    expected = [i >= later and streamed[i] and streamed[i - later] for i in range(len(kinds))]
    assert reused == expected
