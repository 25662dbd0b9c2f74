"""``churnwatch run``, tailing, with its risk_scores sink held at a gate (a test's child).

Run as ``python -m tests.integration.gated_run <directory>`` with the test's
settings in ``CHURNWATCH_*``: the first risk_scores write creates
``<directory>/entered`` and waits until ``<directory>/open`` exists. The test
ends it with SIGKILL.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from churnwatch.app import prepare
from churnwatch.settings import Settings
from churnwatch.wiring import production_config, production_sinks
from dataflows.flow import build_dataflow
from dataflows.kafka_input import EventsSource
from dataflows.metrics import PipelineMetrics
from dataflows.outputs import WriterSink
from dataflows.run import run_dataflow
from featurestore.definitions import load_definitions
from sinks.postgres import PostgresRiskScoreSink


class GatedWriter:
    """A Postgres writer whose writes wait until the gate file exists."""

    def __init__(self, inner: Any, directory: Path) -> None:
        self._inner, self._directory = inner, directory

    def write_batch(self, items: Sequence[Any]) -> None:
        (self._directory / "entered").touch()
        while not (self._directory / "open").exists():
            time.sleep(0.05)
        self._inner.write_batch(items)

    def close(self) -> None:
        self._inner.close()


def main(directory: Path) -> int:
    settings = Settings.from_env(os.environ)
    assert settings.kafka_bootstrap and settings.database_url
    prepare(settings)
    metrics = PipelineMetrics.create(CollectorRegistry())
    feature_set = load_definitions(settings.feature_definitions)
    url, schema = settings.database_url, settings.database_schema
    sinks = dataclasses.replace(
        production_sinks(settings, metrics, feature_set),
        risk_scores=WriterSink(
            "postgres-risk-scores",
            lambda: GatedWriter(PostgresRiskScoreSink(url, schema), directory),
            metrics,
        ),
    )
    source = EventsSource(settings.kafka_bootstrap, settings.topics.events, tail=True,
                          batch_size=settings.input_batch_size)
    flow = build_dataflow(source, sinks, production_config(settings, feature_set, metrics),
                          metrics)
    run_dataflow(flow, epoch_interval=settings.snapshot_interval, recovery_dir=None,
                 recovery_partitions=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
