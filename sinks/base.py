"""The sink contract: what every churnwatch writer (Kafka, Postgres, Redis, files) meets.

A sink is constructed with its connection settings, then the dataflow calls
:meth:`BatchWriter.write_batch` once per batch of outputs and
:meth:`BatchWriter.close` once at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class BatchWriter(Protocol):
    """A writer of output batches, idempotent by each item's deterministic id."""

    def write_batch(self, items: Sequence[Any]) -> Any:
        """Write the whole batch, or raise (a :class:`~sinks.errors.SinkError` for a
        failed write); nothing of a batch that raised counts as written. Writing an
        item already written (a replay, a retry after a crash) adds nothing."""
        ...

    def close(self) -> None:
        """Flush what is pending (raising if it cannot be delivered) and release
        the connection."""
        ...
