"""Wall time and peak memory of a command and every process it starts (Linux).

A command such as FitLins runs its work in worker processes, so the peak resident set of
one process says little. :func:`measure_tree` samples, every ``interval`` seconds, the
proportional set size (PSS: each shared page counted once across the processes that share
it, from ``/proc/PID/smaps_rollup``; RSS where that file is missing) of the command and all
its descendants, and keeps the largest sum. It also keeps the largest high-water mark of a
single process of the tree (the kernel's ``VmHWM``, exact up to the last sample), which for a
command that works in one process is the number to quote. Between two samples it waits on the
command's process file descriptor (``pidfd``), so the wall time ends when the command does,
not at the next sample (a sleep of ``interval`` added 0.05 s to each command on average: twice
as much to a tool run as two commands as to one run as one). (``ru_maxrss`` of the child is not
used: a child started by ``vfork`` inherits the high-water mark of its parent's memory at
``exec``, so a benchmark that generated its data in-process would see its own peak.)

Used by ``fitlins.py`` and ``runs_memory.py``; run alone it measures one command::

    python benchmarks/measure.py COMMAND [ARGS...]
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc")


REPO = Path(__file__).resolve().parent.parent


def image_environment(folder: Path) -> Path:
    """The Python of a virtual environment that holds what the image holds: the pinned
    distributions of ``requirements/image.txt`` (hashes checked) and the app installed from
    this checkout (not editable, so byte-compiled). The distributions are installed once in
    ``folder``; the app is installed again at every call, as the checkout stands.

    The lock is for the image's Python (3.11): ``python3.11`` must be on the PATH, or be the
    Python running this.
    """
    python = folder / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps"]
    if not python.exists():
        base = sys.executable if sys.version_info[:2] == (3, 11) else "python3.11"
        print(f"Making the image's environment in {folder} ...", file=sys.stderr)
        subprocess.run([base, "-m", "venv", str(folder)], check=True)
        subprocess.run([*pip, "--require-hashes", "-r", str(REPO / "requirements" / "image.txt")], check=True)
    subprocess.run([*pip, "--force-reinstall", str(REPO)], check=True)
    return python


def compile_app() -> None:
    """Byte-compile the app's modules, as an installed package (pip, the image) holds them.

    Run from a source checkout (an editable install) in a shell that sets
    ``PYTHONDONTWRITEBYTECODE``, each run would compile them anew (about 0.2 s of wall time
    and 0.4 s of CPU per process), which no user pays; the ``__pycache__`` folders are
    ignored by git.
    """
    import compileall

    import bids_fixedfx

    compileall.compile_dir(Path(bids_fixedfx.__file__).parent, quiet=1)


def _processes() -> dict:
    """Every process now running: pid -> (parent pid, CPU time used so far in clock ticks)."""
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # the name may hold spaces and brackets
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime + stime
    return found


def _tree(root: int, processes: dict) -> list:
    """``root`` and all its descendants among ``processes``."""
    children = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _field_kib(pid: int, name: str, key: str) -> int | None:
    """A ``key: N kB`` line of ``/proc/PID/name``; None when it cannot be read."""
    try:
        for line in (PROC / str(pid) / name).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _memory_kib(pid: int) -> tuple[int, int]:
    """PSS (RSS where PSS cannot be read) and high-water RSS of a process in KiB; 0 once ended."""
    now = _field_kib(pid, "smaps_rollup", "Pss:")
    if now is None:
        now = _field_kib(pid, "status", "VmRSS:")
    return now or 0, _field_kib(pid, "status", "VmHWM:") or 0


class _Ending:
    """Waits up to a given number of seconds for process ``pid`` to end, returning at once
    when it does (its ``pidfd`` polled; a plain sleep where there is none)."""

    def __init__(self, pid: int):
        try:
            self.pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None
            return
        self.poller = select.poll()
        self.poller.register(self.pidfd, select.POLLIN)

    def wait(self, seconds: float) -> None:
        if self.pidfd is None:
            time.sleep(seconds)
        else:
            self.poller.poll(seconds * 1000)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)


def measure_tree(command, *, cwd=None, env=None, interval: float = 0.1, log=None) -> dict:
    """Run ``command`` and measure it with its descendants.

    Parameters
    ----------
    command : sequence of str or path-like
    cwd, env
        As for :class:`subprocess.Popen`.
    interval : float
        Seconds between two samples of the process tree's memory.
    log : path-like, optional
        Where the command's standard output and error go (default: discarded).

    Returns
    -------
    result : dict
        ``code`` (exit status), ``seconds`` (wall time), ``peak_mb`` (largest PSS sum of the
        tree over the samples, MiB), ``max_rss_mb`` (largest high-water RSS of one process of
        the tree, MiB), ``cpu_seconds`` (user and system time of the tree: what the load of the
        machine changes least; the larger of the kernel's count for the waited-for processes
        and the sum over the processes seen in the samples, which also holds workers that
        their parent never waits for, such as those of a multiprocessing fork server) and
        ``samples``.
    """
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        process = subprocess.Popen([str(c) for c in command], cwd=cwd, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
        peak_kib, hwm_kib, samples, ticks = 0, 0, 0, {}
        ending = _Ending(process.pid)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            processes = _processes()
            tree = _tree(process.pid, processes)
            memory = [_memory_kib(p) for p in tree]
            peak_kib = max(peak_kib, sum(now for now, _ in memory))
            hwm_kib = max([hwm_kib] + [hwm for _, hwm in memory])
            ticks.update({p: processes[p][1] for p in tree if p in processes})
            samples += 1
            ending.wait(interval)
        seconds = time.perf_counter() - start
        ending.close()
    finally:
        if log:
            out.close()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return {"code": process.returncode, "seconds": seconds, "peak_mb": peak_kib / 1024,
            "max_rss_mb": hwm_kib / 1024,
            "cpu_seconds": max(usage.ru_utime + usage.ru_stime, sum(ticks.values()) / os.sysconf("SC_CLK_TCK")),
            "samples": samples}


def load_text(before, after, rounds: int) -> str:
    """The line that says how busy the machine was: rounds, load averages before and after."""
    def show(load):
        return ", ".join(f"{x:.1f}" for x in load)

    return (f"median of {rounds} round(s); load average (1, 5, 15 min) before {show(before)}, "
            f"after {show(after)} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print(json.dumps(measure_tree(sys.argv[1:])))
