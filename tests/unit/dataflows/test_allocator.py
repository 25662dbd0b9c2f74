"""A run gives large blocks mappings of their own (glibc), so freed ones leave no hole."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

# In a fresh process (this one's heap may hold holes large enough for the block):
# freeing an 8 MiB block raises glibc's threshold to 8 MiB unless it is fixed, and
# the 4 MiB block (larger than any hole start-up leaves) would then come from the
# heap.
PROBE = textwrap.dedent("""
    from benchmarks.bench_shard_memory import glibc_figures
    from dataflows.run import MMAP_THRESHOLD, tune_allocator
    import sys
    if sys.argv[1] == "tuned":
        assert tune_allocator()
    large = bytearray(8 * 1024 * 1024)
    del large
    before = glibc_figures()["mapped"]
    block = bytearray(32 * MMAP_THRESHOLD)
    print(glibc_figures()["mapped"] - before >= len(block))
""")


def mapped_apart(mode: str) -> bool:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True,
                            text=True, check=True)
    return result.stdout.strip() == "True"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_blocks_over_the_threshold_stay_mapped_apart_after_a_larger_one_is_freed() -> None:
    assert mapped_apart("tuned")
    assert not mapped_apart("as glibc starts")
