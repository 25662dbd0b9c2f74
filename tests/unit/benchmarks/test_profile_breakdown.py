"""benchmarks.profile_breakdown: py-spy's raw stacks summed by stage, compiled frames
(a --native profile of churnwatch.native's modules) included, lock waits idle."""

from __future__ import annotations

from benchmarks.profile_breakdown import OTHER, breakdown

WORKER = 'process 7:"python -m churnwatch run --process-id 0";worker_main (_bytewax.so)'
SHARD = "CPyPy_shard___AccountShard___process (__native_native.c:10)"


def stack(*frames: str, count: int = 1, root: str = WORKER) -> str:
    return f"{';'.join((root, *frames))} {count}"


def test_compiled_frames_go_to_their_stages() -> None:
    lines = [
        stack(SHARD, "CPyDef_processor___AccountProcessor___process (__native_native.c:20)",
              count=5),
        stack(SHARD, "CPyDef_risk___score_batch (__native_native.c:30)", count=3),
        stack(SHARD, "CPyDef_engine___AccountDecisions___observe_score (__native_native.c:40)",
              count=2),
        stack("CPyDef_shard___AccountShard___snapshot (__native_native.c:50)",
              "save (_pickle.c:1)", count=4),
        stack("CPyDef_parse___MessageParser___parse_batch (__native_native.c:60)",
              "CPyDef_event___parse_event (__native_native.c:70)", count=6),
        stack("timely::worker::step (_bytewax.so)", count=7),
        stack("CPyDef_parse____ParsingPartition___next_batch (__native_native.c:80)",
              "_EventsPartition.next_batch (dataflows/kafka_input.py:90)", count=1),
    ]
    stages, idle = breakdown(lines, "churnwatch run")
    assert idle == 0
    assert stages == {
        "account kernels (dedupe, buckets, features, detectors)": 5,
        "scoring (model, risk, publication)": 3,
        "decisions": 2,
        "snapshots (pickling shard state)": 4,
        "parse and validate": 6,
        "Kafka input": 1,  # read by the (compiled) parsing partition, not parsed
        OTHER: 7,
    }


def test_a_thread_waiting_for_the_interpreter_lock_is_idle() -> None:
    """Its leaf is an address in libc py-spy cannot name, below the lock's frame; an
    unnamed libc leaf under working frames stays busy."""
    waiting = stack(SHARD, "pyo3::gil::GILGuard::acquire::h12 (_bytewax.so)",
                    "0x7f3169aa3f16 (libc.so.6)", count=9)
    freeing = stack(SHARD, "Py_DECREF (object.h:1)", "0x7f3169aa3f16 (libc.so.6)", count=2)
    other_process = stack(SHARD, count=8, root='process 9:"python -m benchmarks.bench_pipeline"')
    stages, idle = breakdown([waiting, freeing, other_process], "churnwatch run")
    assert idle == 9
    assert stages == {"account kernels (dedupe, buckets, features, detectors)": 2}
