"""examples/social: the second product's definitions, policy and model, checked by the
real commands and replayed through the production operators (file in, files out; the
same over the real broker, Redis and PostgreSQL is tests/integration/test_social_example.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from churnwatch.cli import main
from churnwatch.demo import EXAMPLES, PRODUCTS, DemoError, product_settings
from churnwatch.replay import replay
from churnwatch.settings import Settings
from churnwatch.simulator import write_jsonl
from churnwatch.simulator_social import SocialSimulation, simulate_social
from decisions.policy import load_policy
from featurestore.definitions import load_definitions
from scoring.model import load_model

SOCIAL = EXAMPLES / "social"
DEFINITIONS = SOCIAL / "definitions.yaml"
POLICY = SOCIAL / "policy.yaml"
MODEL = SOCIAL / "model"
SAAS_FEATURES = {"logins_7d", "logins_baseline_28d", "active_users_7d", "seats",
                 "key_feature_events_7d", "days_since_last_activity"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def simulation() -> SocialSimulation:
    return simulate_social(accounts=150, days=45, seed=9)


@pytest.fixture(scope="module")
def replayed(
    simulation: SocialSimulation, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, int], Path]:
    directory = tmp_path_factory.mktemp("social-replay")
    history = directory / "history.jsonl"
    write_jsonl(simulation, history)
    settings = product_settings(Settings(recovery_dir=None), PRODUCTS["social"])
    counts = replay(history, directory / "out", settings)
    return counts, directory / "out"


def documents(directory: Path, name: str) -> list[dict]:
    return [orjson.loads(line) for line in (directory / f"{name}.jsonl").read_bytes().splitlines()]


# --- the files pass the commands that check them -----------------------------------------


def test_features_check_passes_with_the_social_policy(capsys: pytest.CaptureFixture) -> None:
    assert main(["features", "check", str(DEFINITIONS), "--policy", str(POLICY)]) == 0
    out = capsys.readouterr().out
    assert "4 signals" in out and "every trigger and feature it names is defined" in out


def test_policy_check_passes_against_the_social_definitions() -> None:
    assert main(["policy", "check", str(POLICY), "--definitions", str(DEFINITIONS)]) == 0


def test_the_shipped_policy_does_not_fit_the_social_product() -> None:
    # The default policy names seats and B2B signals: checked against the social
    # definitions it is refused, not silently never matched.
    assert main(["features", "check", str(DEFINITIONS)]) == 1


def test_the_definitions_are_the_products_own(simulation: SocialSimulation) -> None:
    feature_set = load_definitions(DEFINITIONS)
    assert not SAAS_FEATURES & set(feature_set.names)
    # Every event type a feature reads is one the social simulator emits.
    emitted = {d["event_type"] for d in simulation.valid_events()}
    read = {t for f in feature_set.features for t in f.events if t != "*"}
    assert read and read <= emitted


def test_the_example_model_fits_the_example_definitions() -> None:
    feature_set = load_definitions(DEFINITIONS)
    load_model(MODEL, feature_set.version, feature_set.names)  # refuses a mismatch
    document = orjson.loads((MODEL / "metadata.json").read_bytes())
    assert tuple(document["feature_names"]) == feature_set.names
    # Trained as `make social-model` says: a 28-day horizon.
    assert document["horizon_days"] == 28
    assert (MODEL / "model.onnx").stat().st_size < 100_000  # small enough to ship


def test_the_policy_loads_with_the_definitions_vocabulary() -> None:
    from churnwatch.wiring import policy_vocabulary

    feature_set = load_definitions(DEFINITIONS)
    policy = load_policy(POLICY, policy_vocabulary(Settings(), feature_set))
    assert policy.version.startswith("2026-11-29.social")


# --- the demo's product switch --------------------------------------------------------


def test_the_social_demo_uses_the_example_files() -> None:
    settings = product_settings(Settings(), PRODUCTS["social"])
    assert settings.feature_definitions == DEFINITIONS
    assert settings.policy_file == POLICY
    assert settings.model_dir == MODEL
    assert product_settings(Settings(), PRODUCTS["saas"]) == Settings()


def test_a_missing_example_file_is_a_clear_error(tmp_path: Path) -> None:
    from dataclasses import replace

    broken = replace(PRODUCTS["social"], model=tmp_path / "no-model")
    with pytest.raises(DemoError, match="no-model"):
        product_settings(Settings(), broken)


# --- a social history through the production operators ---------------------------------


def test_replay_scores_the_social_history(
    replayed: tuple[dict[str, int], Path], simulation: SocialSimulation
) -> None:
    counts, out = replayed
    feature_names = set(load_definitions(DEFINITIONS).names)
    scores = documents(out, "scores")
    assert counts["scores"] == len(scores) > 100
    assert {s["account_id"] for s in scores} > {a.account_id for a in simulation.accounts[:20]}
    model_version = orjson.loads((MODEL / "metadata.json").read_bytes())["model_version"]
    assert {s["model_version"] for s in scores} == {model_version}
    assert all(0.0 <= s["risk"] <= 1.0 for s in scores)
    # Model-relative tiers: the riskiest subscribers reach high despite a ~2 % base rate.
    assert {s["tier"] for s in scores} == {"low", "medium", "high"}
    # The model's reasons ("<feature> low|high") speak the social definitions' vocabulary.
    reasons = {text.split(" ")[0] for s in scores if s["rule_risk"] == 0 for text in s["reasons"]}
    assert reasons and reasons <= feature_names


def test_replay_alerts_are_the_declared_signals_and_rules(
    replayed: tuple[dict[str, int], Path], simulation: SocialSimulation
) -> None:
    _, out = replayed
    alerts = documents(out, "alerts")
    rules = Counter((a["tier"], a["rule"]) for a in alerts)
    declared = {"opens_drop", "renewal_at_risk", "renewal_passive_only", "inactivity"}
    assert {rule for tier, rule in rules if tier == 2} <= declared
    assert {rule for tier, rule in rules if tier == 1} <= {"payment_failed"}
    assert {rule for tier, rule in rules if tier == 3} <= {"risk_medium", "risk_high"}
    failed = {d["account_id"] for d in simulation.valid_events()
              if d["event_type"] == "billing.payment_failed"}
    assert {a["account_id"] for a in alerts if a["rule"] == "payment_failed"} == failed
    signals = documents(out, "usage_signals")
    assert signals and {s["signal_type"] for s in signals} <= declared


def test_replay_decides_under_the_social_policy(replayed: tuple[dict[str, int], Path]) -> None:
    counts, out = replayed
    decisions = documents(out, "decisions")
    assert counts["decisions"] == len(decisions) > 0
    assert {d["policy_version"] for d in decisions} == {"2026-11-29.social.1"}
    workflows = {w.get("workflow_key") for w in documents(out, "workflows")}
    assert workflows <= {"dunning", "reengage", "renewal_offer", None}


def test_the_replay_command_takes_the_products_policy(
    simulation: SocialSimulation, replayed: tuple[dict[str, int], Path], tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """``churnwatch replay --policy``: without it, the shipped (SaaS) policy is refused
    against the social definitions; with it, the command decides as the library does."""
    history = tmp_path / "history.jsonl"
    write_jsonl(simulation, history)
    args = ["replay", "--events", str(history), "--definitions", str(DEFINITIONS),
            "--model", str(MODEL)]
    assert main([*args, "--out", str(tmp_path / "refused")]) != 0
    assert "unknown trigger" in capsys.readouterr().err
    assert main([*args, "--policy", str(POLICY), "--out", str(tmp_path / "out")]) == 0
    assert (documents(tmp_path / "out", "decisions")
            == documents(replayed[1], "decisions"))
