"""A product of its own on the local stack: ``churnwatch run`` started with a definitions
file of two features and one signal (no built-in name), over the real broker, Redis and
PostgreSQL; and a start refused, naming the file and line, when a signal names no feature."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg

from churnwatch.settings import Settings
from tests.integration.conftest import create_events_topic
from tests.integration.kafka_io import produce_all, read_all
from tests.integration.processes import run_churnwatch, start_churnwatch
from tests.unit.churnwatch.test_custom_signals import DEFINITIONS, START, history


def test_a_custom_signals_only_product_runs_on_the_stack(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    definitions = tmp_path / "arcade.yaml"
    definitions.write_text(DEFINITIONS, encoding="utf-8")
    settings = make_settings("custom", feature_definitions=definitions, model_dir=None)
    create_events_topic(settings)
    assert settings.kafka_bootstrap and settings.database_url
    docs = history()
    produce_all(settings.kafka_bootstrap, settings.topics.events,
                ((str(d["account_id"]).encode(), orjson.dumps(d)) for d in docs))
    run_churnwatch(settings, "run", "--until-drained", timeout_s=300)

    with psycopg.connect(settings.database_url) as conn:
        conn.execute(f"SET search_path TO {settings.database_schema}")
        signals = list(conn.execute(
            "SELECT account_id, signal_type, signal_date::text FROM usage_signals"))
        alerts = list(conn.execute("SELECT rule, reasons FROM alerts"))
    day_40 = START.date().fromordinal(START.date().toordinal() + 40).isoformat()
    assert signals == [("slumping", "session_slump", day_40)]
    assert [(rule, list(reasons)) for rule, reasons in alerts] == [
        ("session_slump", ["session_slump: 4 sessions this week, 28 usual"])
    ]
    published = [orjson.loads(value) for _, value, _ in
                 read_all(settings.kafka_bootstrap, settings.topics.alerts)]
    assert [(a["rule"], a["account_id"]) for a in published] == [("session_slump", "slumping")]


def test_a_start_with_a_dangling_reference_is_refused_naming_file_and_line(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    definitions = tmp_path / "arcade.yaml"
    definitions.write_text(DEFINITIONS.replace("current: sessions_7d", "current: sessions_7"),
                           encoding="utf-8")
    line = DEFINITIONS.splitlines().index("    current: sessions_7d") + 1
    settings = make_settings("dangling", feature_definitions=definitions, model_dir=None)
    create_events_topic(settings)
    proc = start_churnwatch(settings, "run", "--until-drained")
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert (f"{definitions}: line {line}: signals.session_slump.current: names no feature"
            in output)
