"""A call made in a forked process: its value or its error come back as if it had run here."""

import logging
import os
import threading
import warnings

import pytest

from bids_fixedfx.errors import NoDataError
from bids_fixedfx.forked import ChildTraceback, Forked, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="forking is used on Linux only")


def _pid_and(value):
    return os.getpid(), value


def _refuse(label):
    raise NoDataError(f"No BOLD series of participant {label} was found.")


def _fail():
    return {}["missing"]


def _log_and_warn(path):
    logging.getLogger("bids_fixedfx").warning("%s has no events", path)
    logging.getLogger("bids_fixedfx.discover").debug("indexed in %.1f s", 0.25)
    warnings.warn("a FutureWarning of a library", FutureWarning, stacklevel=1)
    return os.getpid()


def _die():
    os._exit(3)


def _unpicklable():
    return threading.Lock()


def test_the_call_runs_in_a_child_and_its_value_comes_back():
    with Forked(_pid_and, {"runs": (1, 2)}) as call:
        assert call.pid is not None
        pid, value = call.result()
    assert pid != os.getpid()
    assert value == {"runs": (1, 2)}


def test_without_forking_the_call_runs_here_when_its_result_is_asked():
    call = Forked(_pid_and, "x", fork=False)
    assert call.pid is None
    assert call.result() == (os.getpid(), "x")


def test_no_fork_while_another_thread_runs():
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not can_fork()
        assert Forked(_pid_and, 1).pid is None
    finally:
        release.set()
        other.join()
    assert can_fork()


def test_the_apps_error_comes_back_with_its_class_message_and_exit_code():
    with Forked(_refuse, "07") as call, pytest.raises(NoDataError) as raised:
        call.result()
    assert str(raised.value) == "No BOLD series of participant 07 was found."
    assert raised.value.exit_code == NoDataError.exit_code
    assert isinstance(raised.value.__cause__, ChildTraceback)
    assert "_refuse" in str(raised.value.__cause__)  # the child's traceback, for -v


def test_an_unexpected_error_comes_back_with_the_childs_traceback():
    with Forked(_fail) as call, pytest.raises(KeyError) as raised:
        call.result()
    assert "in _fail" in str(raised.value.__cause__)


def test_the_childs_log_records_and_warnings_reach_this_process(tmp_path):
    logger = logging.getLogger("bids_fixedfx")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.DEBUG
    try:
        with Forked(_log_and_warn, tmp_path / "run-01.nii.gz") as call, pytest.warns(FutureWarning, match="library"):
            assert call.result() != os.getpid()
    finally:
        logger.removeHandler(handler)
        logger.level = level
    assert [(r.name, r.levelname, r.getMessage()) for r in records] == [
        ("bids_fixedfx", "WARNING", f"{tmp_path / 'run-01.nii.gz'} has no events"),
        ("bids_fixedfx.discover", "DEBUG", "indexed in 0.2 s"),
    ]


def test_a_child_that_dies_is_an_error_naming_its_exit_code():
    with Forked(_die) as call, pytest.raises(RuntimeError, match="exit code 3"):
        call.result()


def test_a_value_that_cannot_be_sent_back_is_an_error_naming_its_type():
    with Forked(_unpicklable) as call, pytest.raises(RuntimeError, match="lock"):
        call.result()


def test_leaving_the_block_early_ends_the_child():
    with Forked(threading.Event().wait, 60) as call:
        child = call._child
    assert not child.is_alive()
