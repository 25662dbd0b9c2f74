"""The policy speaks the definitions' vocabulary: its triggers are the tier-1 rules and
signals the definitions file declares (and the risk-tier rises), its features the file's."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnwatch.settings import DEFAULT_POLICY, Settings
from churnwatch.wiring import policy_vocabulary
from decisions.policy import PolicyError, load_policy, parse_policy
from featurestore.definitions import load_definitions


def test_the_shipped_policy_uses_only_names_the_shipped_definitions_define() -> None:
    feature_set = load_definitions()
    vocabulary = policy_vocabulary(Settings(), feature_set)
    assert vocabulary.triggers == {
        "payment_failed", "cancel_intent", "downgraded",
        "login_drop", "seat_drop", "feature_drop", "renewal_at_risk", "inactivity",
        "risk_medium", "risk_high",
    }
    assert vocabulary.features == set(feature_set.names)
    policy = load_policy(DEFAULT_POLICY, vocabulary)
    named = {t for rule in policy.rules for t in rule.when.triggers or ()}
    features = {t.feature for rule in policy.rules for t in rule.when.thresholds}
    assert named <= vocabulary.triggers and features <= vocabulary.features
    assert features == {"seats", "tenure_days"}


def test_the_vocabulary_follows_the_definitions_file(tmp_path: Path) -> None:
    definitions = tmp_path / "mine.yaml"
    definitions.write_text(
        "version: 1\n"
        "features:\n"
        "  plays_7d: {events: [game.played], aggregation: count, window: 7d}\n"
        "signals:\n"
        "  few_plays: {kind: threshold, feature: plays_7d, below: 3}\n"
        "tier1:\n"
        "  store.refund_requested: {rule: refund_requested}\n",
        encoding="utf-8",
    )
    vocabulary = policy_vocabulary(Settings(), load_definitions(definitions))
    assert vocabulary.triggers == {"few_plays", "refund_requested", "risk_medium", "risk_high"}
    assert vocabulary.features == {"plays_7d"}
    text = (
        'policy_version: "1"\n'
        "workflows:\n  nudge: {channel: email}\n"
        "rules:\n"
        "  - name: plays\n"
        "    when:\n"
        "      trigger: [few_plays, login_drop]\n"
        "      features: {plays_7d: {lt: 2}, seats: {gte: 10}}\n"
        "    decide: start_workflow\n"
        "    workflow: nudge\n"
    )
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, vocabulary, source="mine-policy.yaml")
    problems = [(p.line, p.path, p.problem) for p in caught.value.problems]
    assert problems == [
        (7, "rules[0].when.trigger[1]",
         f"unknown trigger 'login_drop': no tier-1 rule or signal of {definitions}"
         " (known: few_plays, refund_requested, risk_high, risk_medium)"),
        (8, "rules[0].when.features.seats", f"unknown feature: not defined in {definitions}"),
    ]
    assert str(caught.value).startswith("mine-policy.yaml: 2 problem(s)")
