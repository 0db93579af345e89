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
