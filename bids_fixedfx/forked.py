"""A call made in a forked process while this one goes on.

A participant run starts with two long steps that need nothing of each other: pybids'
index and the selection of the runs (~0.3 s on the benchmark, more on large datasets),
and the import of nilearn with scikit-learn and SciPy that planning and fitting need
(~0.9 s). On one core they run one after the other; with two, the selection is made in
a forked child (:class:`Forked`) while this process imports nilearn, and the child sends
back its result, or the exception it raised, through a pipe.

Forking copies the process as it is, so the child needs no imports or set-up of its own.
What it logs (the app's logger) and warns is sent back with its answer and logged and
warned here, so that it reaches this process's handlers, whatever they are. Forking is
done only where it is safe: on Linux, with no other Python thread running
(:func:`can_fork`).
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
import warnings

#: The logger whose records the child sends back (the app's: every module logs to it).
LOGGER = "bids_fixedfx"


class ChildTraceback(Exception):
    """The traceback of the child's error, as text: the ``__cause__`` of the error raised
    again here (the command line shows it with ``-v``)."""


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

    Notes
    -----
    Use as a context manager: leaving the block early (an error, Ctrl-C) ends the child.
    """

    def __init__(self, function, *args, fork: bool = True):
        self._function, self._args = function, args
        self._child = self._receive = None
        if fork and can_fork():
            import multiprocessing

            context = multiprocessing.get_context("fork")
            self._receive, send = context.Pipe(duplex=False)
            for stream in (sys.stdout, sys.stderr):  # else the child would write their buffers again
                stream.flush()
            self._child = context.Process(target=_answer, args=(send, function, args), daemon=True)
            self._child.start()
            send.close()

    @property
    def pid(self) -> int | None:
        """The child's process ID; None when the call is made in this process."""
        return None if self._child is None else self._child.pid

    def result(self):
        """The call's return value; its exception, raised again here.

        The child's log records and warnings are logged and warned here first, in order.

        Raises
        ------
        Exception
            What the call raised, with the child's traceback (as text) as its cause.
        RuntimeError
            The child ended without an answer (killed, out of memory).
        """
        if self._child is None:
            return self._function(*self._args)
        try:
            kind, value, text, records, caught = self._receive.recv()
        except EOFError:
            self._child.join()
            raise RuntimeError(
                f"the process selecting the runs ended with exit code {self._child.exitcode} before answering"
            ) from None
        finally:
            self._receive.close()
        self._child.join()
        for record in records:
            logging.getLogger(record.name).handle(record)
        for message, category, filename, lineno in caught:
            warnings.warn_explicit(message, category, filename, lineno)
        if kind == "error":
            raise value from ChildTraceback(text)
        return value

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self._child is not None and self._child.is_alive():
            self._child.terminate()
            self._child.join()
        return False


def can_fork() -> bool:
    """Whether forking is safe here: Linux (where forking is the norm, unlike macOS), and
    this thread the only Python thread (a lock held by another thread at the fork would
    stay held in the child)."""
    return sys.platform == "linux" and threading.active_count() == 1


class _Kept(logging.Handler):
    """Keeps the records it handles, their messages formatted (they are sent as text)."""

    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        record.msg, record.args = self.format(record), None  # the arguments may not pickle
        record.exc_info = record.exc_text = record.stack_info = None  # formatted into msg
        self.records.append(record)


def _answer(send, function, args) -> None:
    """In the child: call, and send (kind, value, traceback text, log records, warnings):
    kind "value" and the result, or "error" and the exception (pickling it keeps neither its
    traceback nor its cause, hence the text)."""
    kept = _Kept()
    logger = logging.getLogger(LOGGER)
    logger.handlers, logger.propagate = [kept], False  # this process's copy of the parent's
    with warnings.catch_warnings(record=True) as caught:
        try:
            answer = ("value", function(*args), None)
        except BaseException as error:  # noqa: BLE001 - every outcome goes back to the parent
            answer = ("error", error, "".join(traceback.format_exception(error)))
    warned = [(str(w.message), w.category, w.filename, w.lineno) for w in caught]
    try:
        send.send((*answer, kept.records, warned))
    except Exception:  # noqa: BLE001 - the answer does not pickle: say what it was
        error = RuntimeError(f"the {answer[0]} ({type(answer[1]).__name__}) could not be sent back")
        send.send(("error", error, answer[2], kept.records, warned))
    finally:
        send.close()
