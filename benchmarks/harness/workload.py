"""The simulated traffic of the benchmarks: sizing it, and producing it at a set rate.

Simulating and producing happen outside the clock of every measured run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from benchmarks.harness.figures import Figures

if TYPE_CHECKING:
    from churnwatch.simulator import Simulation

LATENCY_DAYS = 40  # simulated days of the latency stream (tier-2 needs 28 d + 7 d)


def choose_days(events: int, accounts: int, seed: int) -> tuple[int, float]:
    """Days so that simulate(accounts, days) gives about ``events`` valid events.

    A pilot of a few hundred accounts over more days than needed gives valid
    events per account by elapsed day; the day count closest to the target wins.
    Returns the days and the valid events per account per day.
    """
    from churnwatch.simulator import MessageKind, simulate

    pilot = min(accounts, 400)
    guess = max(1, round(events / (accounts * 9.0)))
    horizon = min(3 * guess + 3, 400)
    sim = simulate(accounts=pilot, days=horizon, seed=seed)
    per_day = [0] * horizon
    for message in sim.messages:
        if message.kind != MessageKind.VALID:
            continue
        moment = datetime.fromisoformat(orjson.loads(message.value)["event_time"])
        day = int((moment - sim.start).total_seconds() // 86_400)
        per_day[min(max(day, 0), horizon - 1)] += 1
    best, best_error, cumulative = 1, math.inf, 0
    per_account = 0.0
    for day, count in enumerate(per_day, start=1):
        cumulative += count
        estimate = cumulative / pilot * accounts
        if abs(estimate - events) < best_error:
            best, best_error, per_account = day, abs(estimate - events), cumulative / pilot
    return best, per_account / best


def simulate_stream(needed: int, seed: int, days: int = LATENCY_DAYS) -> tuple[Simulation, int]:
    """A simulation of at least ``needed`` messages over ``days``, and its account count.

    Accounts are sized from ~6 messages per account-day, then scaled up (at most
    three times) while the stream is still too short for the whole phase.
    """
    from churnwatch.simulator import simulate

    accounts = max(50, math.ceil(needed * 1.05 / (days * 6.0)))
    sim = simulate(accounts=accounts, days=days, seed=seed)
    for _ in range(3):
        if len(sim.messages) >= needed:
            break
        accounts = math.ceil(accounts * needed * 1.05 / max(1, len(sim.messages)))
        sim = simulate(accounts=accounts, days=days, seed=seed)
    return sim, accounts


def paced_produce(messages: Sequence[Any], bootstrap: str, topic: str, rate: int,
                  seconds: float, warm_up_topic: str | None = None) -> Figures:
    """Produce at ``rate`` messages/s for ``seconds``, in 100 ms slices.

    With ``warm_up_topic`` (an existing topic), one message goes there first and is
    flushed: the producer's connection and idempotent id are then ready, so the
    first messages' timestamps (taken at produce(), the pipeline's ingest time) do
    not include the producer's own start-up (about half a second on the broker).
    """
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    if warm_up_topic is not None:
        producer.produce(warm_up_topic, value=b"warm-up")
        producer.flush(30)
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    slice_s = 0.1
    sent = 0
    limit = min(len(messages), int(rate * seconds))
    started = time.perf_counter()
    k = 0
    while sent < limit:
        target = min(limit, int(rate * slice_s * (k + 1)))
        while sent < target:
            message = messages[sent]
            try:
                producer.produce(topic, value=message.value, key=message.key,
                                 on_delivery=on_delivery)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        k += 1
        # Sleep to the slice's planned end, not for a fixed time: lateness does not add up.
        delay = started + slice_s * k - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    produce_s = time.perf_counter() - started
    remaining = producer.flush(30)
    return {
        "produced": sent,
        "produce_s": produce_s,
        "achieved_rate": sent / produce_s if produce_s > 0 else None,
        "flush_s": time.perf_counter() - started - produce_s,
        "undelivered": remaining + len(errors),
        "first_error": errors[0] if errors else None,
    }
