"""The ``bids-fixedfx`` command (and ``python -m bids_fixedfx``): :func:`.cli.run`, with
OpenBLAS set to one thread before NumPy loads it.

The app computes with BLAS on one thread throughout (its own threads share the cores:
:func:`.workflow.run_level`). Left to itself, OpenBLAS starts a thread per core when NumPy
loads it, and again when SciPy loads its own copy, and each thread spins for about 0.1 s
before it sleeps: on the benchmark, 0.3 s of CPU at every start, while the start-up keeps
both cores busy (importing nilearn in one process, selecting and reading the first run in
another), and 0.2 s of wall time. A value the user set (``OPENBLAS_NUM_THREADS``) is kept;
OpenBLAS reads that variable before ``OMP_NUM_THREADS``, which BLAS then no longer follows
(the app holds BLAS to one thread in any case).
"""

from __future__ import annotations

import os


def run() -> None:
    """The command: see :func:`.cli.run` (which loads NumPy)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .cli import run as run_command

    run_command()
