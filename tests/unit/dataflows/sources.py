"""Test sources: partitions over lists of message batches (no broker)."""

from __future__ import annotations

from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition


class ListPartition(StatefulSourcePartition[Any, int]):
    """The batches of one partition, in order; its snapshot is the next batch's index."""

    def __init__(self, batches: list[list[Any]], at: int) -> None:
        self._batches, self._at = batches, at

    def next_batch(self) -> list[Any]:
        if self._at >= len(self._batches):
            raise StopIteration
        self._at += 1
        return self._batches[self._at - 1]

    def snapshot(self) -> int:
        return self._at


class ListSource(FixedPartitionedSource[Any, int]):
    """One partition (``only``) over ``batches``."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self._batches = batches

    def list_parts(self) -> list[str]:
        return ["only"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> ListPartition:
        return ListPartition(self._batches, resume_state or 0)


class Partitions(FixedPartitionedSource[Any, int]):
    """Kafka-like partitions ``0``, ``1``, ... over lists of batches (a list each)."""

    def __init__(self, partitions: list[list[list[Any]]]) -> None:
        self._partitions = partitions

    def list_parts(self) -> list[str]:
        return [str(n) for n in range(len(self._partitions))]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None
                   ) -> ListPartition:
        return ListPartition(self._partitions[int(for_part)], resume_state or 0)
