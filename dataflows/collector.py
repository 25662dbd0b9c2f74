"""Python's cyclic garbage collector in a dataflow process: tuned at start, and kept
from looking through the accounts' state.

Reference counting frees almost everything the data plane allocates: its state
(dedupe ids, day buckets, risk states) holds no reference cycles. The cyclic
collector only finds cycles, but to find them it looks through every object
allocated since it last ran, and with CPython's default thresholds it ran every
700 allocations and looked through that state again and again (6 % of the
workers' CPU in a profile of the full pipeline): :func:`tune_garbage_collector`
raises the threshold and freezes what start-up loaded.

That was not enough once accounts come and go. CPython counts towards its next
young collection the objects allocated *minus those freed*, so a worker that
unpacks accounts as fast as it packs others away (a live stream over many
accounts) seldom reaches the threshold, and when it does, the young generation
holds every account unpacked since: at 300,000 accounts (``python -m
benchmarks.bench_state --accounts 300000``) its collections paused the process
127 times, 12.7 s in all, the longest between 0.5 and 1 s, and a pause stops
every thread of the process, the tier-1 lane's too. So the shards call
:func:`settle` after each batch: what is still alive then is state, or outputs
on their way to the sinks, and ``gc.freeze()`` (constant time) moves it where
the collector does not look; reference counting still frees it when it goes.
The collector then only sees what one batch allocated: on that run, 67 pauses,
1.3 s in all, none over 0.1 s; on the 7-day benchmark, 0.4 s in all instead of
4.0 s (benchmarks/HISTORY.md, session 14).

The price: a reference cycle that outlives the batch that made it is never
collected. The data plane makes almost none: after the 7-day benchmark's run,
unfreezing everything and collecting found 2,904 and 2,798 cyclic objects in its
two workers with this, against 2,859 and 2,684 without (the dataflow's own
teardown): about 100 objects a run. :func:`unsettle` stops freezing and gives
everything back to the collector when a run ends in a process that goes on (a
test).

A restart builds every account's state at once (the shards' columns, the input
partitions' absence trackers): :func:`paused` keeps the collector off meanwhile,
then freezes what was built. At 1M accounts (``python -m
benchmarks.bench_recovery_state``) the trackers' restore from the absence log took
3.43 s with the collector looking through each entry as it was made, and 1.78 s
without; the shards' 2.24 s and 1.76 s (benchmarks/HISTORY.md, session 14).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations between two young-generation collections (CPython's default: 700).
GC_YOUNG_THRESHOLD = 50_000

_settling = False  # whether settle() freezes: from tune_garbage_collector() to unsettle()


def tune_garbage_collector() -> None:
    """Collect cycles less often, never look at what start-up loaded again, and from
    now on at what survives a shard's batch (:func:`settle`)."""
    global _settling
    gc.collect()
    gc.freeze()  # code, models, policy: loaded once, never garbage
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    _settling = True


def settle() -> None:
    """After a shard's batch: everything alive now out of the collector's sight (once
    the process is tuned; a no-op otherwise)."""
    if _settling:
        gc.freeze()


def unsettle() -> None:
    """The run is over: stop freezing, and let the collector see everything again."""
    global _settling
    _settling = False
    gc.unfreeze()


@contextmanager
def paused() -> Iterator[None]:
    """While state is restored (it holds no cycles): no collection; then what was built
    is settled (:func:`settle`). The collector is left as it was found."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        settle()
