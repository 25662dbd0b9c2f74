"""Wall time per phase of a benchmark, so a slow ``make bench`` says where the time went."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from benchmarks.harness.figures import Figures

OTHER = "other"  # outside every phase: stack start and stop, Redis memory, set-up


class PhaseTimes:
    """Wall seconds per named phase, summed over repeats, in the order first entered.

    ``clock`` is injected so tests control time. The clock starts at construction:
    :meth:`figures` reports the time outside every phase as :data:`OTHER`. Phases
    do not nest (a nested one would be counted twice).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._started = clock()
        self._seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as part of ``name`` (also when it raises)."""
        started = self._clock()
        try:
            yield
        finally:
            self._seconds[name] = self._seconds.get(name, 0.0) + self._clock() - started

    def seconds(self, name: str) -> float:
        """Seconds spent in ``name`` so far (0 if never entered)."""
        return self._seconds.get(name, 0.0)

    def figures(self) -> Figures:
        """``{"phases_s": {name: s, ..., OTHER: s}, "total_s": s}`` as of now."""
        total = self._clock() - self._started
        phases = dict(self._seconds)
        phases[OTHER] = max(0.0, total - sum(self._seconds.values()))
        return {"phases_s": phases, "total_s": total}
