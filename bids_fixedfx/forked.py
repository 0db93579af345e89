"""A call made in a forked process while this one goes on.

A participant run starts with two long steps that need nothing of each other: pybids'
index and the selection of the runs (~0.3 s on the benchmark, more on large datasets),
and the import of nilearn with scikit-learn and SciPy that planning and fitting need
(~0.9 s). One after the other they take one core; with ``--nprocs`` above 1, the
command (not a caller's process that runs ``cli.main``) makes the selection in a forked
child (:class:`Forked`) while it imports nilearn, and the child sends back its result, or
the exception it raised, through a pipe. The child then reads the first run's series
(``then``), on the core that the import leaves idle once the selection is done, into
memory this process maps as it is (:class:`_SharedFile`). The group level likewise reads
the model and plans its tests in a child while it imports nilearn.

Forking copies the process as it is, so the child needs no imports or set-up of its own.
What it logs to the app's logger and what it warns are sent back with its answer, then
logged and warned here, so that they reach this process's handlers, whatever they are
(other libraries' log records stay in the child). Forking is done only where it is safe:
on Linux, with no other Python thread running (:func:`can_fork`). The child ends when
this process does (a SIGTERM, which it turns into ``SystemExit`` so that its clean-up
runs, as it does for Ctrl-C).
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import signal
import sys
import threading
import traceback
import warnings

from .errors import FixedFxError
from .outputs import STOPS, stops_held
from .surface import hide_carrier_warning

#: The logger whose records the child sends back (the app's: every module logs to it).
LOGGER = "bids_fixedfx"
#: Seconds the child is given to end by itself (it had the same Ctrl-C), then after a SIGTERM.
GRACE = 5.0


class ChildTraceback(Exception):
    """The traceback of the child's error, as text: the ``__cause__`` of the error raised
    again here when it had a cause there, or was not one of the app's errors (the command
    line shows it with ``-v``)."""


class Forked:
    """``function(*args)`` called in a forked child, started at once; :meth:`result` waits.

    Parameters
    ----------
    function : callable
        Must return, and may raise, values that pickle (records, the app's errors).
    *args
        Its arguments (the child has them as they are: nothing is pickled to start it).
    fork : bool
        False, or :func:`can_fork` false: the call is made in this process, by :meth:`result`.
    then : callable, optional
        ``then(value, allocate)``, called in the child on the call's value once that is sent;
        what it returns is had by :meth:`then_result` (work done ahead: None, and this
        process does it, when it fails). ``allocate(shape, dtype)`` gives an array in memory
        that this process maps as it is (a ``memfd`` file): the arrays it gives (not views
        of them, which are pickled as usual) come back without being copied or sent through
        the pipe, and exist once in memory.

    Notes
    -----
    Use as a context manager: leaving the block while the child still works (an error here,
    Ctrl-C) ends it; interrupted (Ctrl-C) before its answer came, it is first given
    :data:`GRACE` seconds to end by itself, its clean-up done.
    """

    def __init__(self, function, *args, fork: bool = True, then=None):
        self._function, self._args = function, args
        self._child = self._receive = self._shared = None
        self._then = then
        self._answered = False  # the call's answer received: the child is in ``then``, if anywhere
        if fork and can_fork():
            import multiprocessing

            if then is not None:
                self._shared = _SharedFile.made()
                if self._shared is None:  # no memfd here: no work ahead
                    self._then = then = None
            context = multiprocessing.get_context("fork")
            self._receive, send = context.Pipe(duplex=False)
            handlers = {stop: signal.getsignal(stop) for stop in STOPS}  # the child's, not stops_held's
            self._child = context.Process(target=_answer, daemon=True,
                                          args=(send, self._receive, os.getpid(), function, args, then, self._shared,
                                                handlers))
            try:
                with warnings.catch_warnings():
                    # Python 3.12+ warns of any other thread of the process; the others here are
                    # BLAS's idle workers (can_fork saw to Python's), which OpenBLAS handles at a fork
                    warnings.filterwarnings("ignore", message=r".*multi-threaded, use of fork\(\)",
                                            category=DeprecationWarning)
                    # the stopping signals held while forking, acted on once the child is made: a handler run
                    # in the fork's after-fork callbacks had its exception dropped ("Exception ignored"), so a
                    # SIGTERM was lost and the job ran on deaf to later ones (blocking them was not enough:
                    # BLAS's threads take a signal the main thread blocks, and Python runs its handler anyway)
                    with stops_held():
                        self._child.start()
            except KeyboardInterrupt:  # a stop that came while forking, acted on once the child is made
                self.__exit__(*sys.exc_info())
                raise
            except OSError:  # no process to be had (a limit on processes, memory): the call is made here
                self._receive.close()
                if self._shared is not None:
                    self._shared.close()
                self._child = self._receive = self._shared = None
            finally:
                send.close()

    @property
    def pid(self) -> int | None:
        """The child's process ID; None when the call is made in this process."""
        return None if self._child is None else self._child.pid

    def result(self):
        """The call's return value; its exception, raised again here (ask once).

        The child's log records and warnings are logged and warned here first, in order.

        Raises
        ------
        Exception
            What the call raised (see :class:`ChildTraceback`).
        RuntimeError
            The child ended without an answer (killed, out of memory).
        """
        if self._child is None:
            return self._function(*self._args)
        try:
            kind, value, text, records, caught = pickle.loads(self._receive.recv_bytes())
        except EOFError:
            self._close()
            raise RuntimeError(
                f"the forked process (running {getattr(self._function, '__name__', 'a call')}) "
                f"ended with exit code {self._child.exitcode} before answering"
            ) from None
        except BaseException:  # Ctrl-C while waiting: the block's end ends the child
            self._receive.close()
            raise
        self._answered = True
        if self._then is None or kind != "value":
            self._close()
        for record in records:
            logging.getLogger(record.name).handle(record)
        for message, category, filename, lineno in caught:
            warnings.warn_explicit(message, category, filename, lineno)
        if kind == "error":
            if text is None:
                raise value
            raise value from ChildTraceback(text)
        return value

    def then_result(self):
        """What ``then`` returned in the child, called there on the result once it was sent;
        None when the call was made in this process, there is no ``then``, the call raised,
        warned or logged (its work is then done again here, where that is reported), or the
        child ended without sending it. Ask after :meth:`result`, once."""
        if self._child is None or self._then is None or self._receive.closed:
            return None
        try:
            message = self._receive.recv_bytes()
        except (EOFError, OSError):  # the child ended before it sent it
            self._close()
            return None
        except BaseException:  # Ctrl-C while waiting: the block's end ends the child
            self._receive.close()
            raise
        try:
            return _SharedUnpickler(io.BytesIO(message), self._shared).load()
        except Exception:  # noqa: BLE001 - not mapped (out of memory...): this process does the work
            return None
        finally:
            self._close()

    def _close(self):
        self._receive.close()
        self._child.join()
        if self._shared is not None:
            self._shared.close()  # the arrays mapped keep their memory

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        child = self._child
        if child is not None:
            self._receive.close()  # an answer the child still sends fails, instead of filling the pipe
            # Ctrl-C reached the child too: it may be saving what it made (an index); its
            # work ahead (``then``) has nothing to save
            child.join(GRACE if isinstance(exc_info[1], KeyboardInterrupt) and not self._answered else 0)
            for end in (child.terminate, child.kill):
                if child.is_alive():
                    end()
                    child.join(GRACE)
        if self._shared is not None:
            self._shared.close()
        return False


def can_fork() -> bool:
    """Whether forking is safe here: Linux (where forking is the norm, unlike macOS), and
    this thread the only Python thread (a lock held by another thread at the fork would
    stay held in the child)."""
    return sys.platform == "linux" and threading.active_count() == 1


#: The attributes every log record has: only these are sent back (an ``extra`` may not pickle).
_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) - {"args", "exc_info", "exc_text", "stack_info"}


class _Kept(logging.Handler):
    """Keeps the records it handles, their messages formatted (with any traceback)."""

    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        kept = {key: value for key, value in record.__dict__.items() if key in _RECORD_KEYS}
        self.records.append(logging.makeLogRecord(kept | {"msg": self.format(record)}))


def _answer(send, receive, parent, function, args, then=None, shared=None, handlers=None) -> None:
    """In the child: call, and send (kind, value, traceback text, log records, warnings):
    kind "value" and the result, or "error" and the exception (pickling keeps neither its
    traceback nor its cause, hence the text, sent when :class:`ChildTraceback` says)."""
    receive.close()  # the parent's end: with it closed, sending to a parent that died fails
    for stop, handler in (handlers or {}).items():  # the parent's own, not those it held the stops with
        if handler is not None:
            signal.signal(stop, handler)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _end_with(parent)
    kept = _Kept()
    logger = logging.getLogger(LOGGER)
    logger.handlers, logger.propagate = [kept], False  # this process's copy of the parent's
    with warnings.catch_warnings(record=True) as caught:
        try:
            answer = ("value", function(*args), None)
        except BaseException as error:  # noqa: BLE001 - every outcome goes back to the parent
            shown = error.__cause__ is not None or not isinstance(error, FixedFxError)
            answer = ("error", error, "".join(traceback.format_exception(error)) if shown else None)
    warned = [(str(w.message), w.category, w.filename, w.lineno) for w in caught]
    try:
        try:
            payload = pickle.dumps((*answer, kept.records, warned))
            pickle.loads(payload)  # what the parent will get back, or fail on
        except Exception:  # noqa: BLE001 - say what it was, as an error of the same kind
            payload = pickle.dumps(("error", _unsent(*answer[:2]), answer[2], kept.records, warned))
        send.send_bytes(payload)
        if then is not None and answer[0] == "value":
            _then(then, answer[1], kept, send, shared)
    except (OSError, KeyboardInterrupt):  # the parent is gone, or ends (Ctrl-C): it says so
        pass
    finally:
        send.close()


def _then(then, value, kept, send, shared) -> None:
    """Send ``then(value, shared.allocate)``, pickled (None when it raised, warned or
    logged), the arrays it allocated named by where they lie in the shared file."""
    logged = len(kept.records)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # any warning, even one shown before, is this process's to give
        hide_carrier_warning()
        try:
            answer = then(value, shared.allocate)
        except Exception:  # noqa: BLE001 - the parent does the work itself, and reports what it finds
            answer = None
    if caught or len(kept.records) > logged:
        answer = None
    payload = io.BytesIO()
    try:
        _SharedPickler(payload, shared).dump(answer)
    except Exception:  # noqa: BLE001 - does not pickle: the parent does the work itself
        payload = io.BytesIO(pickle.dumps(None))
    send.send_bytes(payload.getbuffer())


class _SharedFile:
    """A file in memory (``memfd_create``), made before the fork: the child makes arrays in
    it (:meth:`allocate`), each at its own offset, and names them in its answer
    (:meth:`place`); the parent maps them from the same file (:meth:`array`)."""

    def __init__(self, fd: int):
        self.fd = fd
        self._size = 0
        self._placed = {}  # id of an array allocated here -> (array, offset)

    @classmethod
    def made(cls):
        """A new shared file, or None where there is none (not Linux, a kernel without it)."""
        try:
            return cls(os.memfd_create("bids-fixedfx-forked", os.MFD_CLOEXEC))
        except (AttributeError, OSError):
            return None

    def allocate(self, shape, dtype):
        """In the child: an array of this shape and type in the file (uninitialised)."""
        import mmap

        offset = self._size
        self._size = offset + -(-max(_nbytes(shape, dtype), 1) // mmap.PAGESIZE) * mmap.PAGESIZE  # next at a page
        os.ftruncate(self.fd, self._size)
        array = self._mapped(offset, shape, dtype)
        self._placed[id(array)] = (array, offset)
        return array

    def place(self, obj):
        """In the child, pickling: where an array allocated here lies (None: pickled as usual)."""
        placed = self._placed.get(id(obj))
        if placed is None or placed[0] is not obj:
            return None
        return ("shared array", placed[1], obj.shape, obj.dtype.str)

    def array(self, where):
        """In the parent, unpickling: the array the child placed there, mapped from the file."""
        _, offset, shape, dtype = where
        return self._mapped(offset, shape, dtype)

    def _mapped(self, offset, shape, dtype):
        """The array of this shape and type at ``offset`` in the file, mapped (shared)."""
        import mmap

        import numpy as np

        nbytes = _nbytes(shape, dtype)
        return np.frombuffer(mmap.mmap(self.fd, max(nbytes, 1), offset=offset), dtype,
                             nbytes // np.dtype(dtype).itemsize).reshape(shape)

    def close(self):
        """Close the file (the arrays mapped keep their memory until they are freed)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _nbytes(shape, dtype) -> int:
    import numpy as np

    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


class _SharedPickler(pickle.Pickler):
    """Pickles the arrays of a :class:`_SharedFile` as where they lie in it."""

    def __init__(self, file, shared):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.shared = shared

    def persistent_id(self, obj):
        return self.shared.place(obj)


class _SharedUnpickler(pickle.Unpickler):
    """Maps the arrays a :class:`_SharedPickler` named from the same file."""

    def __init__(self, file, shared):
        super().__init__(file)
        self.shared = shared

    def persistent_load(self, pid):
        return self.shared.array(pid)


def _unsent(kind, value) -> Exception:
    """The error sent instead of an answer that does not pickle: an app's error keeps its
    message and exit code."""
    if kind == "error" and isinstance(value, FixedFxError):
        error = FixedFxError(str(value))
        error.exit_code = value.exit_code
        return error
    return RuntimeError(f"the {kind} of the forked call ({type(value).__name__}) could not be sent back: {value}")


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _end_with(parent: int) -> None:
    """Have the kernel send this process a SIGTERM when its parent ends (Linux's
    ``PR_SET_PDEATHSIG``), so that it does not go on alone."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        return
    if os.getppid() != parent:  # the parent ended before the request was made
        raise SystemExit(128 + signal.SIGTERM)
