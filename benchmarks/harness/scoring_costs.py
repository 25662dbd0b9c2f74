"""What scoring and deciding cost: onnxruntime per call, the engine per decision, replay rates.

No servers: the end-to-end figures replay a simulated JSONL history through the
production operators (``churnwatch replay``), so the differences between the
configurations are the costs of scoring and of deciding alone.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from churnwatch.settings import Settings

BATCH_SIZES = (1, 10, 100, 1000, 10000)


def model_latency(repeat: int = 500) -> dict[int, tuple[float, float]]:
    """batch size -> (median µs per call, ns per row) of the shipped model on random rows."""
    import numpy as np

    from churnwatch.settings import Settings
    from featurestore.definitions import load_definitions
    from scoring.model import load_model

    feature_set = load_definitions()
    model_dir = Settings().model_dir
    assert model_dir is not None, "the default settings name the shipped model"
    model = load_model(model_dir, feature_set.version, feature_set.names)
    rng = np.random.default_rng(0)
    out = {}
    for batch in BATCH_SIZES:
        matrix = rng.random((batch, len(feature_set.names)), dtype=np.float32) * 10
        model.score(matrix)  # warm up
        samples = []
        # The largest batch takes milliseconds a call: fewer calls give a stable median.
        for _ in range(repeat if batch < 10000 else 50):
            started = time.perf_counter()
            model.score(matrix)
            samples.append(time.perf_counter() - started)
        per_call = statistics.median(samples)
        out[batch] = (per_call * 1e6, per_call / batch * 1e9)
    return out


def decision_cost(decisions: int = 20_000) -> tuple[float, float]:
    """Microseconds per decision (alert in, record out) and per score observed."""
    from datetime import UTC, datetime, timedelta

    from churnwatch.settings import DEFAULT_POLICY
    from decisions.engine import AccountDecisions, DecisionEngine
    from decisions.policy import load_policy, vocabulary_for
    from detectors.tier1 import DEFAULT_TIER1_RULES
    from featurestore.definitions import load_definitions
    from schemas.alert import Alert, AlertTier, Severity, alert_id
    from schemas.score import RiskScore, RiskTier

    feature_set = load_definitions()
    rules = [r.rule for r in DEFAULT_TIER1_RULES.values()]
    engine = DecisionEngine(
        load_policy(DEFAULT_POLICY, vocabulary_for(rules, feature_set.names)), feature_set.names
    )
    start = datetime(2026, 10, 1, tzinfo=UTC)
    features = tuple(float(i) for i in range(len(feature_set.names)))
    accounts = [AccountDecisions(engine) for _ in range(1_000)]
    scores = [
        RiskScore(f"s{i}", "acme", f"a{i % 1000}", "m", "f", 0.8, 0.0, 0.8, RiskTier.HIGH, (),
                  start + timedelta(hours=i), start + timedelta(days=7, hours=i), f"e{i}",
                  features=features)
        for i in range(decisions)
    ]
    alerts = [
        Alert(alert_id("acme", f"a{i % 1000}", "login_drop", f"t{i}"), "acme", f"a{i % 1000}",
              AlertTier.USAGE_SIGNAL, "login_drop", Severity.MEDIUM, f"t{i}", "usage_signal",
              start + timedelta(hours=i, minutes=1))
        for i in range(decisions)
    ]
    started = time.perf_counter()
    for score in scores:
        accounts[int(score.account_id[1:])].observe_score(score)
    per_score = (time.perf_counter() - started) / decisions * 1e6
    started = time.perf_counter()
    for alert in alerts:
        accounts[int(alert.account_id[1:])].decide(alert)
    per_decision = (time.perf_counter() - started) / decisions * 1e6
    return per_decision, per_score


def replay_rates(
    history: Path, configurations: dict[str, Settings], repeat: int
) -> dict[str, tuple[float, dict[str, int]]]:
    """name -> (median events/s, counts of the last replay) of each configuration.

    The configurations take turns within each repeat, so drift of the machine's
    speed hits them alike.
    """
    from churnwatch.replay import replay

    lines = sum(1 for _ in history.open("rb"))
    rates: dict[str, list[float]] = {name: [] for name in configurations}
    counts: dict[str, dict[str, int]] = {}
    for _ in range(repeat):
        for name, settings in configurations.items():
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                counts[name] = replay(history, Path(out), settings)
                rates[name].append(lines / (time.perf_counter() - started))
    return {name: (statistics.median(r), counts[name]) for name, r in rates.items()}


def run_scoring_benchmark(accounts: int, days: int, repeat: int) -> None:
    """Measure and print the model latency, the decision cost and the replay rates."""
    from churnwatch.settings import Settings
    from churnwatch.simulator import simulate, write_jsonl

    print("onnxruntime, the shipped model, one call (median):")
    print(f"  {'batch':>6}  {'us/call':>10}  {'ns/row':>10}")
    for batch, (per_call_us, per_row_ns) in model_latency().items():
        print(f"  {batch:>6}  {per_call_us:>10.1f}  {per_row_ns:>10.1f}")

    per_decision, per_score = decision_cost()
    print("\ndecision engine, default policy, 1,000 accounts (pure Python):")
    print(f"  {per_decision:.1f} us per decision, {per_score:.2f} us per score observed")

    with tempfile.TemporaryDirectory() as directory:
        history = Path(directory) / "history.jsonl"
        write_jsonl(simulate(accounts=accounts, days=days, seed=7), history)
        base = Settings(recovery_dir=None)
        results = replay_rates(history, {
            "scoring off": base.replace(model_dir=None),
            "scoring on, no decisions": base.replace(policy_file=None),
            "scoring and decisions": base,
        }, repeat)
    print(f"\nreplay of {accounts} accounts x {days} days (median of {repeat}):")
    for name, (rate, counts) in results.items():
        extra = (f"  ({counts['scores']:,} scores, {counts['decisions']:,} decisions,"
                 f" {counts['workflows']:,} triggers and signals)" if counts["scores"] else "")
        print(f"  {name:<26} {rate:>10,.0f} events/s{extra}")
    off = results["scoring off"][0]
    scored = results["scoring on, no decisions"][0]
    decided = results["scoring and decisions"][0]
    print(f"  scoring on / off           {scored / off:>10.2f}")
    print(f"  decisions on / off         {decided / scored:>10.2f}")
