"""``churnwatch replay``: the same dataflow over a JSONL history instead of Kafka.

The input is a file of event messages (one per line, as ``churnwatch simulate
--out`` writes); the operators are the production ones; event time drives
windows, detectors, debounce and scores, so the output is a function of the
file (and the definitions, rules and model): teams backtest a model or new
thresholds on their own history, and tests diff behaviour between versions.

Outputs go to JSONL files in the output directory, each sorted by its id so
two replays can be compared with ``diff``: ``alerts.jsonl``, ``scores.jsonl``,
``usage_signals.jsonl``, ``dead_letters.jsonl``, ``late_events.jsonl``,
``decisions.jsonl``, ``workflows.jsonl`` (workflow triggers and signals) and
``experiment_assignments.jsonl``. A file replay has no consent directory: only
the history's own ``account.consent_changed`` events count.
Feature vectors are not written (``churnwatch features backfill`` gives them).
With ``--to-sinks`` the outputs go to the configured Kafka topics, Redis and
PostgreSQL instead (:func:`replay_to_sinks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import run_main

from churnwatch.settings import Settings
from dataflows.flow import FlowSinks, WriterSink, build_dataflow
from dataflows.metrics import PipelineMetrics
from dataflows.runner import flow_config
from featurestore.definitions import load_definitions
from scoring.decision import DecisionRecord, ExperimentAssignment

BATCH = 5_000
OUTPUTS = (
    "alerts", "scores", "usage_signals", "dead_letters", "late_events", "decisions",
    "workflows", "experiment_assignments",
)


class _LinesPartition(StatefulSourcePartition[KafkaSourceMessage[None, bytes], int]):
    def __init__(self, path: Path, resume_at: int | None) -> None:
        self._handle = path.open("rb")
        self._line = 0
        for _ in range(resume_at or 0):
            self._handle.readline()
            self._line += 1

    def next_batch(self) -> list[KafkaSourceMessage[None, bytes]]:
        batch = []
        for _ in range(BATCH):
            raw = self._handle.readline()
            if not raw:
                break
            value = raw.rstrip(b"\r\n")
            # Line number as offset, so dead letters point at the line.
            batch.append(
                KafkaSourceMessage(key=None, value=value, topic="file", partition=0,
                                   offset=self._line)
            )
            self._line += 1
        if not batch:
            raise StopIteration
        return batch

    def snapshot(self) -> int:
        return self._line

    def close(self) -> None:
        self._handle.close()


class JsonlSource(FixedPartitionedSource[KafkaSourceMessage[None, bytes], int]):
    """Lines of one file, as messages of partition 0 (the file's order is kept)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def list_parts(self) -> list[str]:
        return ["0"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LinesPartition:
        return _LinesPartition(self._path, resume_state)


class _JsonlWriter:
    """Appends one JSON document per item (per item of the ``kinds`` kept, if given)."""

    def __init__(self, path: Path, kinds: tuple[type, ...] = ()) -> None:
        self._handle = path.open("ab")
        self._kinds = kinds

    def write_batch(self, items: Sequence[Any]) -> None:
        for item in items:
            if not self._kinds or isinstance(item, self._kinds):
                self._handle.write(orjson.dumps(_document(item)) + b"\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class _Discard:
    def write_batch(self, items: Sequence[Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _document(item: Any) -> Any:
    if hasattr(item, "to_document"):
        return item.to_document()
    if hasattr(item, "to_json"):
        return orjson.loads(item.to_json())
    return asdict(item)


def replay_to_sinks(history: Path, settings: Settings) -> dict[str, int]:
    """Run the dataflow over ``history`` into the configured Kafka, Redis and Postgres.

    The usual sinks, idempotent by id: replaying a history already streamed adds
    nothing; a backfill of an older history fills the same tables and topics.
    """
    from prometheus_client import CollectorRegistry

    from churnwatch.app import prepare
    from dataflows.runner import production_config, production_sinks

    prepare(settings)
    metrics = PipelineMetrics.create(CollectorRegistry())
    feature_set = load_definitions(settings.feature_definitions)
    flow = build_dataflow(
        JsonlSource(history),
        production_sinks(settings, metrics, feature_set),
        production_config(settings, feature_set, metrics),
        metrics,
    )
    run_main(flow)
    return metrics.summary()


def replay(history: Path, out_dir: Path, settings: Settings) -> dict[str, int]:
    """Run the dataflow over ``history``; return the number of lines per output."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        (out_dir / f"{name}.jsonl").unlink(missing_ok=True)
    from prometheus_client import CollectorRegistry

    metrics = PipelineMetrics.create(CollectorRegistry())
    feature_set = load_definitions(settings.feature_definitions)

    def file_sink(name: str) -> WriterSink:
        return WriterSink(name, lambda: _JsonlWriter(out_dir / f"{name}.jsonl"), metrics)

    class _DecisionFiles:
        """Decision records and experiment assignments, each to its own file."""

        def __init__(self) -> None:
            self._decisions = _JsonlWriter(out_dir / "decisions.jsonl", (DecisionRecord,))
            self._assignments = _JsonlWriter(
                out_dir / "experiment_assignments.jsonl", (ExperimentAssignment,)
            )

        def write_batch(self, items: Sequence[Any]) -> None:
            self._decisions.write_batch(items)
            self._assignments.write_batch(items)

        def close(self) -> None:
            self._decisions.close()
            self._assignments.close()

    sinks = FlowSinks(
        dead_letters=file_sink("dead_letters"),
        alerts_kafka=file_sink("alerts"),
        alerts_postgres=WriterSink("discard", _Discard, metrics),
        cancellations=WriterSink("discard", _Discard, metrics),
        late_events=file_sink("late_events"),
        features=WriterSink("discard", _Discard, metrics),
        usage_signals=file_sink("usage_signals"),
        risk_scores=file_sink("scores"),
        decisions=WriterSink("decisions", _DecisionFiles, metrics),
        workflows_kafka=file_sink("workflows"),
    )
    flow = build_dataflow(JsonlSource(history), sinks, flow_config(settings, feature_set), metrics)
    run_main(flow)
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
