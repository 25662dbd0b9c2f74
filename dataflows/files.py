"""Files as a dataflow's input and outputs: a JSONL history in, JSONL outputs sorted by id.

:class:`JsonlSource` reads the lines of one file as the messages of one
partition (the file's order is kept, line numbers as offsets so dead letters
point at the line), or of several, an account's lines all in one, as Kafka
keys them (``churnwatch replay --processes``); :func:`file_sinks` writes every
output of the dataflow to ``<name>.jsonl`` in a directory (one file per
process with ``part``, merged by :func:`merge_outputs`), and
:func:`sort_outputs` sorts each file by its id so that two runs over the same
file can be compared with ``diff``. ``churnwatch replay`` is built on these.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from dataflows.flow import FlowSinks
from dataflows.metrics import PipelineMetrics
from dataflows.outputs import WriterSink
from dataflows.parse import ValueBatch
from schemas.decision import DecisionRecord, ExperimentAssignment
from schemas.erasure import CONTROL_NEEDLE

# Lines per read: a file has no latency to keep, and fewer, larger batches cost the
# engine less per line (the 6-month replay with 2 processes: 243 -> 222 s of CPU
# against 5,000, the same outputs).
BATCH = 20_000
OUTPUTS = (
    "alerts", "scores", "usage_signals", "dead_letters", "late_events", "decisions",
    "workflows", "experiment_assignments",
)


# The first "account_id" with a string value, as the bytes spell it (no JSON parse).
_ACCOUNT_ID = re.compile(rb'"account_id"\s*:\s*"([^"]*)"')


def partition_of(value: bytes, partitions: int) -> int | None:
    """Which of ``partitions`` a line belongs to: by the hash of its ``account_id``
    (the first one with a string value, as the bytes spell it), so an account's lines
    are all in one partition, in the file's order; a line without one (malformed, or
    another format) in partition 0; None for an erasure control message, which every
    partition reads (as it is sent to every partition of the events topic)."""
    if CONTROL_NEEDLE in value:
        return None
    found = _ACCOUNT_ID.search(value)
    if found is None:
        return 0
    return zlib.crc32(found.group(1)) % partitions


class _LinesPartition(StatefulSourcePartition[ValueBatch, int]):
    """The lines of partition ``index`` of ``count`` (every line with one), a
    :class:`~dataflows.parse.ValueBatch` of up to :data:`BATCH` lines per read."""

    def __init__(self, path: Path, resume_at: int | None, index: int = 0, count: int = 1
                 ) -> None:
        self._handle = path.open("rb")
        self._index, self._count = index, count
        self._line = 0
        for _ in range(resume_at or 0):
            self._handle.readline()
            self._line += 1

    def next_batch(self) -> list[ValueBatch]:
        lines = list(islice(self._handle, BATCH))
        if not lines:
            raise StopIteration
        first = self._line  # line numbers as offsets, so dead letters point at the line
        self._line += len(lines)
        values = [line.rstrip(b"\r\n") for line in lines]
        index, count = self._index, self._count
        if count == 1:
            offsets = list(range(first, first + len(values)))
        else:
            kept = [(value, first + n) for n, value in enumerate(values)
                    if (part := partition_of(value, count)) is None or part == index]
            if not kept:
                return []  # these lines were all other partitions'
            values, offsets = [value for value, _ in kept], [offset for _, offset in kept]
        return [ValueBatch("file", index, values, offsets)]

    def snapshot(self) -> int:
        return self._line

    def close(self) -> None:
        self._handle.close()


class JsonlSource(FixedPartitionedSource[ValueBatch, int]):
    """Lines of one file, as messages of partition 0 (the file's order is kept), or of
    ``partitions`` partitions by account (see :func:`partition_of`)."""

    def __init__(self, path: Path, partitions: int = 1) -> None:
        self._path = path
        self._partitions = partitions

    def list_parts(self) -> list[str]:
        return [str(n) for n in range(self._partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LinesPartition:
        return _LinesPartition(self._path, resume_state, int(for_part), self._partitions)


class JsonlWriter:
    """Appends one JSON document per item (per item of the ``kinds`` kept, if given)."""

    def __init__(self, path: Path, kinds: tuple[type, ...] = ()) -> None:
        self._handle = path.open("ab")
        self._kinds = kinds

    def write_batch(self, items: Sequence[Any]) -> None:
        for item in items:
            if not self._kinds or isinstance(item, self._kinds):
                self._handle.write(orjson.dumps(document(item)) + b"\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class Discard:
    def write_batch(self, items: Sequence[Any]) -> None:
        pass

    def close(self) -> None:
        pass


def document(item: Any) -> Any:
    if hasattr(item, "to_document"):
        return item.to_document()
    if hasattr(item, "to_json"):
        return orjson.loads(item.to_json())
    return asdict(item)


class _DecisionFiles:
    """Decision records and experiment assignments, each to its own file."""

    def __init__(self, out_dir: Path, suffix: str = "") -> None:
        self._decisions = JsonlWriter(out_dir / f"decisions{suffix}.jsonl", (DecisionRecord,))
        self._assignments = JsonlWriter(
            out_dir / f"experiment_assignments{suffix}.jsonl", (ExperimentAssignment,)
        )

    def write_batch(self, items: Sequence[Any]) -> None:
        self._decisions.write_batch(items)
        self._assignments.write_batch(items)

    def close(self) -> None:
        self._decisions.close()
        self._assignments.close()


def file_sinks(out_dir: Path, metrics: PipelineMetrics, part: int | None = None) -> FlowSinks:
    """Every output of the dataflow to ``out_dir/<name>.jsonl`` (see :data:`OUTPUTS`),
    after removing what an earlier run left there; with ``part`` (one process of
    several), to ``<name>.part<part>.jsonl``, for :func:`merge_outputs`. Feature
    vectors, Postgres-only records (cancellations) and the alerts' Postgres copy are
    not written. One worker per process: a file has one writer."""
    suffix = "" if part is None else f".part{part}"
    out_dir.mkdir(parents=True, exist_ok=True)
    if part is None:
        clear_outputs(out_dir)

    def file_sink(name: str) -> WriterSink:
        return WriterSink(name, lambda: JsonlWriter(out_dir / f"{name}{suffix}.jsonl"), metrics)

    return FlowSinks(
        dead_letters=file_sink("dead_letters"),
        alerts_kafka=file_sink("alerts"),
        alerts_postgres=WriterSink("discard", Discard, metrics),
        cancellations=WriterSink("discard", Discard, metrics),
        late_events=file_sink("late_events"),
        features=WriterSink("discard", Discard, metrics),
        usage_signals=file_sink("usage_signals"),
        risk_scores=file_sink("scores"),
        decisions=WriterSink("decisions", lambda: _DecisionFiles(out_dir, suffix), metrics),
        workflows_kafka=file_sink("workflows"),
    )


def clear_outputs(out_dir: Path) -> None:
    """Remove what an earlier run left in ``out_dir``: outputs and per-process parts."""
    for name in OUTPUTS:
        (out_dir / f"{name}.jsonl").unlink(missing_ok=True)
        for part in out_dir.glob(f"{name}.part*.jsonl"):
            part.unlink()


def merge_outputs(out_dir: Path) -> dict[str, int]:
    """Join each output's per-process parts into ``<name>.jsonl`` (then sorted by id,
    see :func:`sort_outputs`); the number of lines per output."""
    for name in OUTPUTS:
        parts = sorted(out_dir.glob(f"{name}.part*.jsonl"))
        with (out_dir / f"{name}.jsonl").open("ab") as merged:
            for part in parts:
                merged.write(part.read_bytes())
                part.unlink()
    return sort_outputs(out_dir)


def sort_outputs(out_dir: Path) -> dict[str, int]:
    """Sort every output file by id; the number of lines per output."""
    return {name: _sort_by_id(out_dir / f"{name}.jsonl") for name in OUTPUTS}


def _sort_by_id(path: Path) -> int:
    """Sort a JSONL output by its id (or whole content) so replays diff cleanly."""
    if not path.exists():
        path.write_bytes(b"")
        return 0
    lines = [line for line in path.read_bytes().splitlines() if line]

    def key(line: bytes) -> tuple[str, bytes]:
        document = orjson.loads(line)
        for field in ("decision_id", "signal_id", "trigger_id", "alert_id", "score_id"):
            if isinstance(document, dict) and field in document:
                return (str(document[field]), line)
        return ("", line)

    lines.sort(key=key)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return len(lines)
