"""One soak run: the production dataflow over a JSONL history, measured at each month's end.

``python -m benchmarks.bench_soak`` starts this in a child process of its own
(``--soak-worker SPEC``), with the run's settings as ``CHURNWATCH_*``
variables. The child builds the dataflow exactly as ``churnwatch replay`` does
(:func:`churnwatch.wiring.flow_config`: scoring and decisions on, the file
sinks of :mod:`dataflows.files`) and runs it as ``churnwatch run`` does
(:func:`dataflows.run.run_dataflow`: recovery on, the production garbage
collector settings), over :class:`MonthlyLinesSource`: the history's lines as
one partition that stops at every month's end until that month is measured:

1. it waits until the newest epoch every recovery partition has committed has
   the input at the month's end (so the committed snapshots hold every event
   of the month, and nothing of the next);
2. it measures (:func:`measure`): the process's RSS and peak RSS, the state
   the shards and inactivity trackers hold (found among the live objects:
   :func:`held_state`), the bytes of the live snapshots in the recovery
   directory, and optionally the top allocation sites (tracemalloc);
3. it appends those figures as one JSON line to the spec's results file, and
   reads on.

So one process runs the whole period, as a long-lived ``churnwatch run``
would: what it keeps shows in its RSS.
"""

from __future__ import annotations

import gc
import logging
import os
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from benchmarks.harness.figures import Figures
from benchmarks.harness.recovery_store import (
    committed_offsets,
    directory_size,
    snapshot_figures,
)
from benchmarks.harness.sampling import own_status_kib

PARTITION = "0"
POLL_S = 0.2  # how often a paused partition looks at the recovery directory
TOP_ALLOCATION_SITES = 25

# (index of the stop, line it is at) -> True once it was measured; False: keep waiting.
Probe = Callable[[int, int], bool]


class _MonthlyLines(StatefulSourcePartition[KafkaSourceMessage[None, bytes], int]):
    """Lines as messages of one partition, in batches that never cross a stop."""

    def __init__(self, path: Path, resume_at: int | None, stops: Sequence[int],
                 probe: Probe, batch_size: int) -> None:
        self._handle = path.open("rb")
        self._line = 0
        for _ in range(resume_at or 0):
            self._handle.readline()
            self._line += 1
        self._stops = stops
        # the next stop to make (a resumed run made those before its position)
        self._next = next((i for i, stop in enumerate(stops) if stop >= self._line), len(stops))
        self._probe = probe
        self._batch_size = batch_size
        self._paused = False

    def next_batch(self) -> list[KafkaSourceMessage[None, bytes]]:
        stops = self._stops
        while self._next < len(stops) and stops[self._next] == self._line:
            self._paused = not self._probe(self._next, self._line)
            if self._paused:
                return []
            self._next += 1
        stop = stops[self._next] if self._next < len(stops) else None
        wanted = self._batch_size if stop is None else min(self._batch_size, stop - self._line)
        batch = []
        for _ in range(wanted):
            raw = self._handle.readline()
            if not raw:
                break
            batch.append(KafkaSourceMessage(key=None, value=raw.rstrip(b"\r\n"), topic="file",
                                            partition=0, offset=self._line))
            self._line += 1
        if len(batch) < wanted and stop is not None:
            msg = f"the file ends at line {self._line}, before the stop at line {stop}"
            raise ValueError(msg)
        if not batch and stop is None:
            raise StopIteration
        return batch

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(seconds=POLL_S) if self._paused else None

    def snapshot(self) -> int:
        return self._line

    def close(self) -> None:
        self._handle.close()


class MonthlyLinesSource(FixedPartitionedSource[KafkaSourceMessage[None, bytes], int]):
    """The lines of one file as partition ``"0"`` (as :class:`dataflows.files.JsonlSource`
    reads them: line numbers as offsets), stopping before each line of ``stops``
    (non-decreasing) until ``probe(index, line)`` says that moment was measured."""

    def __init__(self, path: Path, stops: Sequence[int], probe: Probe,
                 batch_size: int = 5_000) -> None:
        self._path = path
        self._stops = tuple(stops)
        self._probe = probe
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [PARTITION]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _MonthlyLines:
        return _MonthlyLines(self._path, resume_state, self._stops, self._probe,
                             self._batch_size)


# --- what the process holds ------------------------------------------------------------


def collection_sizes(objects: Iterable[object]) -> dict[str, int]:
    """Per ``Class.attribute``, summed over ``objects``: the length of every
    collection attribute (dict, set, list, tuple, a column of the account table),
    and, for a dict of bytes (an account's state kept pickled),
    ``Class.attribute bytes``: their total size. Which of an object's structures
    grows, without naming them in advance. A class compiled by mypyc has no
    ``__dict__``: its attributes are the ones it names in ``__mypyc_attrs__``."""
    from dataflows.account_table import BlobColumn, NumberColumn

    sizes: dict[str, int] = {}
    for obj in objects:
        name = type(obj).__name__
        for attribute, value in _attributes(obj):
            if not isinstance(value, dict | set | list | tuple | NumberColumn | BlobColumn):
                continue
            key = f"{name}.{attribute}"
            sizes[key] = sizes.get(key, 0) + len(value)
            if isinstance(value, dict) and value and all(
                isinstance(v, bytes) for v in value.values()
            ):
                key += " bytes"
                sizes[key] = sizes.get(key, 0) + sum(len(v) for v in value.values())
    return dict(sorted(sizes.items()))


def _attributes(obj: object) -> list[tuple[str, object]]:
    """An object's attributes by name: its ``__dict__``, or a compiled class's."""
    names = getattr(type(obj), "__mypyc_attrs__", None)
    if names is None:
        return list(getattr(obj, "__dict__", {}).items())
    unset = object()
    found = [(attribute, getattr(obj, attribute, unset)) for attribute in names]
    return [(attribute, value) for attribute, value in found if value is not unset]


def held_state() -> Figures:
    """What the shards (:class:`~dataflows.shard.AccountShard`) and the inactivity
    trackers hold, found among the objects the garbage collector tracks (Bytewax
    owns them)."""
    from dataflows.shard import AccountShard
    from detectors.inactivity import InactivityTracker

    shards: list[AccountShard] = []
    trackers: list[InactivityTracker] = []
    # The run freezes what survives each batch (dataflows.collector), and the collector
    # lists no frozen object: given back to it here, frozen again after the next batch.
    gc.unfreeze()
    for obj in gc.get_objects():
        kind = type(obj)
        if kind is AccountShard:
            shards.append(obj)  # type: ignore[arg-type]
        elif kind is InactivityTracker:
            trackers.append(obj)  # type: ignore[arg-type]
    return {
        "shards": len(shards),
        "accounts_held": sum(len(shard) for shard in shards),
        "accounts_warm": sum(shard.warm for shard in shards),
        "risk_states": sum(shard.risk_states for shard in shards),
        # the shards' packed states (compiled classes have no __dict__, so "structures"
        # below does not see into them)
        "state_bytes": sum(shard.state_bytes for shard in shards),
        "trackers": len(trackers),
        "tracker_accounts": sum(len(tracker) for tracker in trackers),
        "structures": collection_sizes([*shards, *trackers]),
    }


def top_allocations(limit: int = TOP_ALLOCATION_SITES) -> list[Figures]:
    """The ``limit`` source lines holding the most traced memory now."""
    statistics = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    ).statistics("lineno")
    return [
        {"where": f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}",
         "bytes": stat.size, "blocks": stat.count}
        for stat in statistics[:limit]
    ]


def measure(recovery_dir: Path, *, allocations: bool) -> Figures:
    """RSS, held state and snapshot bytes now (see the module's docstring)."""
    rss_kib, peak_kib = own_status_kib("VmRSS"), own_status_kib("VmHWM")
    figures: Figures = {
        "rss_bytes": None if rss_kib is None else rss_kib * 1024,
        "peak_rss_bytes": None if peak_kib is None else peak_kib * 1024,
        **held_state(),
    }
    snapshots = snapshot_figures(recovery_dir)
    figures["snapshot_bytes"] = snapshots["live_bytes"]
    figures["snapshot_kept_bytes"] = snapshots["kept_bytes"]  # older epochs' rows included
    figures["snapshot_bytes_by_step"] = {
        step: live["bytes"] for step, live in snapshots["live_by_step"].items()
    }
    figures["recovery_dir_bytes"] = directory_size(recovery_dir)["apparent_bytes"]
    if allocations:
        figures["top_allocations"] = top_allocations()
    return figures


class MonthProbe:
    """Measures the run at each stop, once the committed snapshots have reached it."""

    def __init__(self, recovery_dir: Path, results: Path, *,
                 allocations: bool, timeout_s: float) -> None:
        self._recovery_dir = recovery_dir
        self._results = results
        self._allocations = allocations
        self._timeout_s = timeout_s
        self._started = time.perf_counter()
        self._waiting_since: float | None = None

    def __call__(self, index: int, line: int) -> bool:
        now = time.perf_counter()
        if self._waiting_since is None:
            self._waiting_since = now
        if committed_offsets(self._recovery_dir).get(int(PARTITION)) != line:
            if now - self._waiting_since > self._timeout_s:
                msg = (f"no committed snapshot reached line {line} within "
                       f"{self._timeout_s:.0f} s")
                raise RuntimeError(msg)
            return False
        figures = {
            "month": index + 1,
            "line": line,
            "seconds": round(now - self._started, 3),
            "waited_seconds": round(now - self._waiting_since, 3),
            **measure(self._recovery_dir, allocations=self._allocations),
        }
        with self._results.open("ab") as out:
            out.write(orjson.dumps(figures) + b"\n")
        self._waiting_since = None
        return True


def soak_worker(spec_path: Path) -> int:
    """Run the dataflow over the spec's history (see the module's docstring)."""
    from prometheus_client import CollectorRegistry

    from churnwatch.logs import configure_logging
    from churnwatch.settings import Settings
    from churnwatch.wiring import flow_config, with_recovery_logs
    from dataflows.files import file_sinks
    from dataflows.flow import build_dataflow
    from dataflows.metrics import PipelineMetrics
    from dataflows.run import run_dataflow
    from featurestore.definitions import load_definitions

    spec: dict[str, Any] = orjson.loads(spec_path.read_bytes())
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_format, logging.WARNING)
    if settings.recovery_dir is None:
        msg = "the soak worker needs a recovery directory"
        raise RuntimeError(msg)
    if spec["tracemalloc"]:
        tracemalloc.start()
    stops = [int(stop) for stop in spec["stops"]]
    probe = MonthProbe(
        settings.recovery_dir, Path(spec["results"]),
        allocations=spec["tracemalloc"],
        timeout_s=60.0 + 10 * settings.snapshot_interval.total_seconds(),
    )
    metrics = PipelineMetrics.create(CollectorRegistry())
    feature_set = load_definitions(settings.feature_definitions)
    flow = build_dataflow(
        MonthlyLinesSource(Path(spec["history"]), stops, probe, settings.input_batch_size),
        file_sinks(Path(spec["outputs"]), metrics),
        with_recovery_logs(flow_config(settings, feature_set), settings),
        metrics,
    )
    run_dataflow(
        flow,
        epoch_interval=settings.snapshot_interval,
        recovery_dir=settings.recovery_dir,
        recovery_partitions=settings.recovery_partitions,
        shards=settings.shards,
    )
    return 0
