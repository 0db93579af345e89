"""A call made in a forked process: its value or its error come back as if it had run here."""

import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from bids_fixedfx.errors import InputFileError, NoDataError
from bids_fixedfx.forked import GRACE, ChildTraceback, Forked, can_fork

pytestmark = pytest.mark.skipif(not can_fork(), reason="forking is used on Linux only")


def _pid_and(value):
    return os.getpid(), value


def _refuse(label):
    raise NoDataError(f"No BOLD series of participant {label} was found.")


def _fail():
    return {}["missing"]


def _refuse_from(path):
    try:
        Path(path).read_bytes()
    except OSError as error:
        raise InputFileError(f"{path} cannot be read.") from error


class _Unpicklable(NoDataError):
    def __init__(self, message, handle):
        super().__init__(message)
        self.handle = handle


def _refuse_unpicklably():
    raise _Unpicklable("No events file for run 2.", threading.Lock())


def _clean_up_when_ended(marker):
    try:
        Path(marker).write_text("started")
        time.sleep(60)
    finally:
        Path(marker).write_text("cleaned")


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
    assert raised.value.__cause__ is None  # as raised there: -v shows no cause


def test_the_apps_error_with_a_cause_comes_back_with_the_childs_traceback(tmp_path):
    with Forked(_refuse_from, tmp_path / "missing.tsv") as call, pytest.raises(InputFileError) as raised:
        call.result()
    assert isinstance(raised.value.__cause__, ChildTraceback)
    assert "FileNotFoundError" in str(raised.value.__cause__)  # the cause, for -v


def test_an_error_that_does_not_pickle_keeps_its_message_and_exit_code():
    with Forked(_refuse_unpicklably) as call, pytest.raises(Exception) as raised:
        call.result()
    assert str(raised.value) == "No events file for run 2."
    assert raised.value.exit_code == NoDataError.exit_code


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


def test_leaving_the_block_early_ends_the_child_and_its_clean_up_runs(tmp_path):
    marker = tmp_path / "cleaned"
    with pytest.raises(ValueError), Forked(_clean_up_when_ended, marker) as call:
        pid = call.pid
        while not marker.exists():  # the child is in the call
            time.sleep(0.01)
        raise ValueError("an error here, before the answer")
    assert marker.read_text() == "cleaned"
    assert not Path(f"/proc/{pid}").exists()


CHILD_OF_A_DYING_PARENT = """
import os, sys, time
from bids_fixedfx.forked import Forked
call = Forked(time.sleep, 60)
print(call.pid, flush=True)
os._exit(0)
"""


def test_the_child_ends_when_its_parent_does():
    done = subprocess.run([sys.executable, "-c", CHILD_OF_A_DYING_PARENT], capture_output=True, text=True,
                          timeout=60)
    pid = int(done.stdout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.05)
    assert not _running(pid)


def _running(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_forking_without_standard_streams(monkeypatch):
    """Started with stdout closed (``>&-``), Python has no ``sys.stdout``."""
    monkeypatch.setattr(sys, "stdout", None)
    with Forked(_pid_and, 5) as call:
        assert call.result()[1] == 5


def _twice(value):
    return value * 2


def _series_of(shape, allocate):
    import numpy as np

    shared = allocate(shape, np.float32)
    shared[...] = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    empty = allocate((0, 3), np.int16)
    return {"shape": shape, "series": shared, "empty": empty, "copied": np.ones(3), "pid": os.getpid()}


def _raise_then(value, allocate):
    raise OSError("the disk went away")


def _warn_then(value, allocate):
    warnings.warn("a library's warning", UserWarning, stacklevel=1)
    return value


def _log_then(value, allocate):
    logging.getLogger("bids_fixedfx").info("read %s", value)
    return value


def _sleep_then(marker, allocate):
    Path(marker).write_text("started")
    time.sleep(60)


def _die_then(value, allocate):
    os._exit(5)


def _interrupted_then(value, allocate):
    raise KeyboardInterrupt


def _shared_memory(pid):
    """The shared (shmem) pages of ``pid``'s mappings of the forked calls' file, in kB."""
    total, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if not line.split()[0].endswith(":"):  # a mapping's first line, then its fields
            inside = "bids-fixedfx-forked" in line
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_then_runs_in_the_child_and_its_arrays_come_back_in_shared_memory():
    import numpy as np

    with Forked(_twice, (20, 30), then=_series_of) as call:
        assert call.result() == (20, 30, 20, 30)
        got = call.then_result()
    assert got["pid"] != os.getpid() and got["shape"] == (20, 30, 20, 30)
    assert np.array_equal(got["series"], np.arange(20 * 30 * 20 * 30, dtype=np.float32).reshape(got["shape"]))
    assert got["empty"].shape == (0, 3) and got["empty"].dtype == np.int16
    assert np.array_equal(got["copied"], np.ones(3))  # an array of its own: pickled as usual
    assert _shared_memory(os.getpid()) >= got["series"].nbytes // 1024  # mapped, not copied
    got["series"][0, 0, 0, 0] = -1  # writable
    assert call.then_result() is None  # asked once
    del got
    assert _shared_memory(os.getpid()) == 0  # freed with the arrays


@pytest.mark.parametrize("then", [_raise_then, _warn_then, _log_then, _die_then, _interrupted_then])
def test_then_that_fails_gives_none_and_nothing_reaches_this_process(then, caplog, capfd):
    """Raising, warning, logging, the child dying or interrupted (Ctrl-C reaches both):
    None, and this process does the work itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning of the child's then-call would fail here
        with caplog.at_level(logging.DEBUG, logger="bids_fixedfx"), Forked(_twice, 3, then=then) as call:
            assert call.result() == 6
            assert call.then_result() is None
    assert not caplog.records
    assert "Traceback" not in capfd.readouterr().err


def test_then_is_not_called_after_an_error_nor_in_process():
    with Forked(_refuse, "07", then=_twice) as call, pytest.raises(NoDataError):
        call.result()
    assert call.then_result() is None
    in_process = Forked(_twice, 3, fork=False, then=_twice)
    assert in_process.result() == 6 and in_process.then_result() is None


def test_leaving_the_block_during_then_ends_the_child(tmp_path):
    marker = tmp_path / "then"
    with Forked(str, marker, then=_sleep_then) as call:
        assert call.result() == str(marker)
        while not marker.exists():
            time.sleep(0.01)
        pid = call.pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.05)
    assert not _running(pid)


def _open_files():
    import gc

    gc.collect()  # the pipes of earlier tests' children, closed when collected
    return len(os.listdir("/proc/self/fd"))


def test_no_process_to_be_had_makes_the_call_here(monkeypatch):
    """A fork refused (a limit on processes): the call is made in this process, nothing left open."""
    import multiprocessing.process

    def refuse(self):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    before = _open_files()
    with Forked(_pid_and, 4, then=_series_of) as call:
        assert call.pid is None
        assert call.result() == (os.getpid(), 4)
        assert call.then_result() is None
    assert _open_files() == before


def test_leaving_the_block_with_then_unasked_closes_the_pipe():
    with Forked(_twice, 3, then=_twice) as call:
        assert call.result() == 6
        pid = call.pid
        while _running(pid):  # the child has sent what then gave, unread
            time.sleep(0.01)
    assert call._receive.closed


def test_interrupted_during_then_ends_the_child_at_once(tmp_path):
    """Ctrl-C here while the child works ahead: it has nothing to save, it is not waited for."""
    marker = tmp_path / "then"
    with pytest.raises(KeyboardInterrupt), Forked(str, marker, then=_sleep_then) as call:
        call.result()
        while not marker.exists():
            time.sleep(0.01)
        pid, start = call.pid, time.monotonic()
        raise KeyboardInterrupt
    assert time.monotonic() - start < GRACE / 2
    assert not _running(pid)


SIGTERM_DURING_THE_FORK = """
import os, signal, sys
import numpy  # BLAS's threads: a signal the main thread blocks is taken by one of them
from bids_fixedfx import cli
from bids_fixedfx.forked import Forked
for stopping in cli.STOPPING:
    signal.signal(stopping, cli._terminate)
armed = [True]
os.register_at_fork(after_in_parent=lambda: armed and (armed.pop(), os.kill(os.getpid(), signal.SIGTERM)))
try:
    with Forked(os.getpid) as call:
        call.result()
except cli.Terminated:
    print("terminated")
    sys.exit(143)
print("ran on")
"""


def test_a_sigterm_during_a_fork_stops_the_job():
    """A SIGTERM (scancel, docker stop) that arrived while Python ran its after-fork callbacks
    was printed as an ignored exception and lost; the job ran on, ignoring every later signal.
    (With BLAS's threads running, blocking the signal in the main thread did not hold it.)"""
    done = subprocess.run([sys.executable, "-c", SIGTERM_DURING_THE_FORK], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout.strip()) == (143, "terminated"), done.stderr
    assert "Exception ignored" not in done.stderr


SIGTERM_IN_A_FINALIZER = """
import gc, os, sys, time
from bids_fixedfx import cli
cli.stop_on_signals()
class Finalized:
    def __del__(self):  # as pybids' database objects' clean-up runs, in a collection
        os.kill(os.getpid(), int(sys.argv[1]))
        for _ in range(1000):  # the handler runs here, where Python ignores what it raises
            pass
try:
    if sys.argv[2] == "collected":
        cycle = Finalized()
        cycle.itself = cycle
        del cycle
        gc.collect()
    else:
        Finalized()
    start = time.monotonic()
    while time.monotonic() - start < 5:
        pass
except cli.Terminated as stop:
    print("terminated")
    sys.exit(128 + stop.signal_number)
print("ran on")
"""


@pytest.mark.parametrize("how", ["collected", "released"])
@pytest.mark.parametrize("sent", ["SIGTERM", "SIGINT"])
def test_a_signal_in_a_finalizer_stops_the_job(how, sent):
    """A SIGTERM that came while the garbage collector ran sqlalchemy's clean-up callbacks was
    printed as an ignored exception and lost: the job ran to its end, exit 0, and ignored every
    later signal (docker stop and scancel then kill it in the middle of a write)."""
    import signal

    number = int(getattr(signal, sent))
    done = subprocess.run([sys.executable, "-c", SIGTERM_IN_A_FINALIZER, str(number), how], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (128 + number, "terminated"), done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr


SIGTERM_IN_A_FINALIZER_THEN_A_HELD_BLOCK = """
import os, signal, sys, time
from bids_fixedfx import cli
from bids_fixedfx.outputs import stops_held
cli.stop_on_signals()
class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
try:
    Finalized()
    with stops_held():  # a set's moves: the stop raised again waits for their end
        start = time.monotonic()
        while time.monotonic() - start < 0.5:
            pass
        print("moved")
except cli.Terminated as stop:
    print("terminated")
    sys.exit(128 + stop.signal_number)
print("ran on")
"""


def test_a_stop_raised_again_waits_for_the_moves_of_a_set():
    """The SIGALRM that raises a stop lost in a finalizer again was not held by stops_held: it
    could land in the middle of a set's moves."""
    done = subprocess.run([sys.executable, "-c", SIGTERM_IN_A_FINALIZER_THEN_A_HELD_BLOCK], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout.split()) == (143, ["moved", "terminated"]), done.stderr
