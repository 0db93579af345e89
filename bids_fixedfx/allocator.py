"""The C allocator tuned for the arrays this program makes (glibc; elsewhere nothing is done).

By default glibc hands blocks over 128 kB straight back to the system when they are
freed, and gives every thread a heap of its own, each keeping its free memory. The fit
makes and frees arrays of a few megabytes for every group of voxels, so the kernel maps
and zeroes them again each time: measured on the benchmark, page faults were about a
third of the GLM's CPU time. Here blocks under :data:`MMAP_THRESHOLD` come from the heap,
a heap keeps up to :data:`TRIM_THRESHOLD` free at its top, and threads share at most
``n_threads`` heaps (which keeps the process's peak memory where it was).
"""

from __future__ import annotations

import ctypes

#: glibc's ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
#: Blocks smaller than this come from a heap.
MMAP_THRESHOLD = 8 << 20
#: Free memory a heap keeps at its top before returning it.
TRIM_THRESHOLD = 16 << 20


def tune(n_threads: int) -> bool:
    """Set glibc's allocator for this process (call before starting threads).

    Parameters
    ----------
    n_threads : int
        The threads that will compute at once: the heaps they share (at least 2).

    Returns
    -------
    tuned : bool
        False where the C library has no ``mallopt`` (not glibc).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_ARENA_MAX, max(2, n_threads)),
    ))
