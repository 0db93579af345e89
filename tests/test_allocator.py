"""allocator.tune: arrays of a few megabytes, made and freed as the fit makes them (of
varying sizes, a few alive at once), stop costing page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bids_fixedfx import allocator

LOOP = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from bids_fixedfx import allocator
    assert allocator.tune(2)
rng = np.random.default_rng(0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(60):
    n = int(rng.integers(1, 8)) << 16  # 0.5 to 3.5 MB of float64
    a = np.ones(n)
    b = a * 2
    c = b - a
    del a, b, c
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode):
    done = subprocess.run([sys.executable, "-c", LOOP, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def test_freed_blocks_are_reused_instead_of_mapped_again():
    if not allocator.tune(2):
        pytest.skip("the C library has no mallopt (not glibc)")
    untuned, tuned = page_faults("default"), page_faults("tuned")
    assert untuned > 20_000  # blocks mapped, and faulted in, again and again
    assert tuned < untuned / 5
