"""Read what a run wrote, as documents to compare: topics, replay files, the decisions table.

A Kafka topic is at-least-once (a message may come twice, with the same id);
``churnwatch replay --out`` writes each output once, to ``<name>.jsonl``; the
decisions table is the one record of decisions outside a replay's files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import psycopg

from churnwatch.settings import Settings
from schemas.event import format_time
from tests.integration.kafka_io import read_all

Document = dict[str, Any]

# The decisions table's columns under the names of a decision record's document (what
# `churnwatch replay` writes to decisions.jsonl); risk and inserted_at have no twin there.
DECISION_COLUMNS = (
    "decision_id", "tenant_id", "account_id", "alert_id", "trigger", "score_id", "tier",
    "policy_version", "rule", "rule_decision", "decision", "workflow_key", "reasons", "detail",
    "experiment_key", "variant", "trigger_id", "decided_at",
)
_UUID_COLUMNS = {"decision_id", "alert_id", "score_id", "trigger_id"}


def decision_documents(settings: Settings) -> list[Document]:
    """Every row of the decisions table as the document of its record, sorted by id."""
    assert settings.database_url
    columns = ", ".join(f"{c}::text" if c in _UUID_COLUMNS else c for c in DECISION_COLUMNS)
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            f"SELECT {columns} FROM {settings.database_schema}.decisions".encode()
        ).fetchall()
    documents = []
    for row in rows:
        document = dict(zip(DECISION_COLUMNS, row, strict=True))
        document["decided_at"] = format_time(document["decided_at"])
        documents.append(document)
    return sorted(documents, key=lambda d: d["decision_id"])


def topic_documents(settings: Settings, topic: str) -> list[Document]:
    assert settings.kafka_bootstrap
    return [orjson.loads(v) for _, v, _ in read_all(settings.kafka_bootstrap, topic)]


def file_documents(out_dir: Path, name: str) -> list[Document]:
    """The documents of ``<name>.jsonl`` that a file replay wrote to ``out_dir``."""
    return [orjson.loads(line) for line in (out_dir / f"{name}.jsonl").read_bytes().splitlines()]


def distinct_documents(
    documents: Iterable[Document], id_of: Callable[[Document], str]
) -> set[bytes]:
    """The documents without their at-least-once copies; a copy must be the same document."""
    distinct = {orjson.dumps(d, option=orjson.OPT_SORT_KEYS): id_of(d) for d in documents}
    assert len(set(distinct.values())) == len(distinct), "one id, two different documents"
    return set(distinct)


def differences(found: set[bytes], expected: set[bytes], id_of: Callable[[Document], str]) -> str:
    """For an assertion message: the ids whose documents are only in one set or the other
    (a document that differs is in both lists)."""

    def ids(documents: set[bytes]) -> list[str]:
        return sorted(id_of(orjson.loads(d)) for d in documents)

    return (f"{len(found - expected)} found but not expected {ids(found - expected)[:5]}, "
            f"{len(expected - found)} expected but not found {ids(expected - found)[:5]}")


def decision_id(document: Document) -> str:
    return str(document["decision_id"])


def score_id(document: Document) -> str:
    return str(document["score_id"])


def message_id(document: Document) -> str:
    """A workflow-topic message's id: a trigger's trigger_id, a signal's signal_id."""
    field = "signal_id" if document["message_type"] == "signal" else "trigger_id"
    return str(document[field])
