"""scoring.risk: the scoring debounce, score requests from the account processor, blending
and tiers, one model call per batch with the shipped model, and tier-rise alerts."""

from __future__ import annotations

import dataclasses
import pickle
import random
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from jsonschema import Draft202012Validator

import schemas
import scoring
from accounts.config import AccountConfig
from accounts.debounce import ScoreRequest, ScoringDebounce
from accounts.processor import AccountProcessor, Output
from churnwatch.settings import Settings
from churnwatch.wiring import account_config
from featurestore.definitions import load_definitions
from schemas.alert import Alert, AlertTier, Severity, alert_id, deterministic_id
from schemas.event import Event
from schemas.score import RiskScore, RiskTier
from scoring.model import MODEL_FILE, RiskModel, load_model
from scoring.risk import Blend, RiskPolicy, RiskTierTracker, score_batch
from tests.builders import T0, make_event

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0
DEBOUNCE = 30 * MINUTE  # the default (Settings.score_debounce)
TTL = 7 * DAY  # the default (Settings.score_ttl)

FEATURE_SET = load_definitions()
DEFAULT_MODEL = Path(scoring.__file__).parent / "models" / "default"
ALERT_SCHEMA = orjson.loads(
    (Path(schemas.__file__).parent / "alert.v1.schema.json").read_bytes()
)
ALERT_VALIDATOR = Draft202012Validator(
    ALERT_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
)
DECISIVE_REASON = "a decisive event"  # a request without its tier-1 alert
POLICY = RiskPolicy()


# --- 1. ScoringDebounce ----------------------------------------------------------------------

# (event time in seconds, bypass, expected due)
Step = tuple[float, bool, bool]


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([(0, False, True)], id="first-event-is-due"),
        pytest.param([(0, False, True), (10 * MINUTE, False, False), (DEBOUNCE - 1, False, False)],
                     id="suppressed-within-the-interval"),
        pytest.param([(0, False, True), (DEBOUNCE - 0.001, False, False)],
                     id="suppressed-a-millisecond-before-the-interval"),
        pytest.param([(0, False, True), (DEBOUNCE, False, True)],
                     id="due-again-at-exactly-the-interval"),
        pytest.param([(0, False, True), (20 * MINUTE, False, False), (DEBOUNCE, False, True),
                      (DEBOUNCE + 20 * MINUTE, False, False), (2 * DEBOUNCE, False, True)],
                     id="suppressed-events-do-not-move-the-clock"),
        pytest.param([(0, False, True), (MINUTE, True, True)],
                     id="tier1-bypasses-the-interval"),
        pytest.param([(0, True, True), (MINUTE, True, True), (2 * MINUTE, True, True)],
                     id="every-tier1-event-bypasses"),
        pytest.param([(0, False, True), (20 * MINUTE, True, True),
                      (DEBOUNCE, False, False), (20 * MINUTE + DEBOUNCE - 1, False, False),
                      (20 * MINUTE + DEBOUNCE, False, True)],
                     id="bypass-resets-the-clock"),
        pytest.param([(0, True, True), (MINUTE, False, False)],
                     id="bypass-on-the-first-event-starts-the-clock"),
        pytest.param([(HOUR, False, True), (0, False, False), (HOUR + DEBOUNCE, False, True)],
                     id="an-older-event-is-not-due"),
    ],
)
def test_debounce_decides_when_an_account_is_due(steps: list[Step]) -> None:
    debounce = ScoringDebounce()
    got = [debounce.due(T0.timestamp() + ts, DEBOUNCE, bypass=bypass) for ts, bypass, _ in steps]
    assert got == [expected for _, _, expected in steps]


# A decisive event's rule risk is noted at its event time, then asked for at later times
# (the processor asks at the time of each event, never before the newest decisive one).
def note(risk: float, ts: float) -> tuple[str, float, float]:
    return ("note", ts, risk)


def expect(ts: float, risk: float) -> tuple[str, float, float]:
    return ("expect", ts, risk)




@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([expect(0, 0.0), expect(TTL, 0.0)], id="no-decisive-event"),
        pytest.param([note(0.9, 0), expect(0, 0.9), expect(TTL - 1, 0.9), expect(TTL, 0.0),
                      expect(TTL + DAY, 0.0)],
                     id="stands-for-the-ttl-then-lapses"),
        pytest.param([note(0.6, 0), expect(DAY - 1, 0.6), note(0.9, DAY), expect(DAY, 0.9),
                      expect(DAY + TTL - 1, 0.9), expect(DAY + TTL, 0.0)],
                     id="a-higher-risk-raises-it"),
        pytest.param([note(0.9, 0), note(0.3, DAY), expect(DAY, 0.9), expect(TTL - 1, 0.9)],
                     id="a-lower-risk-does-not-lower-it"),
        pytest.param([note(0.9, 0), note(0.9, 3 * DAY), expect(TTL, 0.9),
                      expect(3 * DAY + TTL - 1, 0.9), expect(3 * DAY + TTL, 0.0)],
                     id="the-same-risk-again-restarts-the-ttl"),
        pytest.param([note(0.9, 0), expect(TTL, 0.0), note(0.3, TTL + DAY),
                      expect(TTL + DAY, 0.3), expect(2 * TTL + DAY - 1, 0.3),
                      expect(2 * TTL + DAY, 0.0)],
                     id="after-a-lapse-a-lower-risk-starts-fresh"),
        pytest.param([note(0.9, 0), note(0.6, 6 * DAY), expect(6 * DAY, 0.9),
                      expect(TTL - 1, 0.9), expect(TTL, 0.6), expect(6 * DAY + TTL - 1, 0.6),
                      expect(6 * DAY + TTL, 0.0)],
                     id="a-higher-risk-lapses-on-its-own-ttl-under-a-later-lower-one"),
    ],
)
def test_rule_risk_stands_for_the_ttl(steps: list[tuple[str, float, float]]) -> None:
    debounce = ScoringDebounce()
    start = T0.timestamp()
    got, wanted = [], []
    for kind, ts, risk in steps:
        if kind == "note":
            debounce.note_rule(risk, start + ts, TTL)
        else:
            got.append((ts, debounce.rule_risk_at(start + ts)))
            wanted.append((ts, risk))
    assert got == wanted


def drive(debounce: ScoringDebounce, start: float) -> list[tuple[bool, float]]:
    """A fixed sequence of events; what the debounce said to each."""
    out = []
    for ts, rule in [(0, None), (MINUTE, 0.6), (20 * MINUTE, None), (DEBOUNCE, None),
                     (MINUTE + DEBOUNCE, None), (DAY, 0.9), (TTL + MINUTE, None),
                     (TTL + HOUR, None), (TTL + 2 * DAY, None)]:
        if rule is not None:
            debounce.note_rule(rule, start + ts, TTL)
        out.append((debounce.due(start + ts, DEBOUNCE, bypass=rule is not None),
                    debounce.rule_risk_at(start + ts)))
    return out


@pytest.mark.parametrize(
    "history",
    [
        pytest.param([], id="fresh"),
        pytest.param([(0, None)], id="scored-once"),
        pytest.param([(0, None), (MINUTE, 0.9)], id="with-a-standing-rule-risk"),
        pytest.param([(0, 0.6), (TTL + HOUR, None)], id="with-a-lapsed-rule-risk"),
    ],
)
def test_debounce_state_round_trips_through_its_snapshot(
    history: list[tuple[float, float | None]],
) -> None:
    start = T0.timestamp() - 2 * TTL
    original = ScoringDebounce()
    for ts, rule in history:
        if rule is not None:
            original.note_rule(rule, start + ts, TTL)
        original.due(start + ts, DEBOUNCE, bypass=rule is not None)
    raw = original.snapshot()
    restored = ScoringDebounce(pickle.loads(pickle.dumps(raw)))
    assert restored.snapshot() == raw
    assert drive(restored, T0.timestamp() - TTL) == drive(original, T0.timestamp() - TTL)


def test_fresh_debounce_state_is_empty() -> None:
    assert ScoringDebounce().snapshot() == (None, ())


# --- 2. AccountProcessor with scoring ------------------------------------------------------


def scoring_config(**settings: Any) -> AccountConfig:
    return account_config(Settings(**settings), FEATURE_SET, scoring=True)


SCORING = scoring_config()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def login(seconds: float, event_id: str | None = None) -> Event:
    return make_event(event_id=event_id or f"login-{int(seconds)}", event_time=at(seconds))


def decisive(seconds: float, event_type: str = "billing.payment_failed",
             event_id: str | None = None) -> Event:
    return make_event(event_id=event_id or f"{event_type}-{int(seconds)}",
                      event_type=event_type, event_time=at(seconds))


def logins_every(minutes: float, span: float = DAY) -> list[Event]:
    step = minutes * MINUTE
    return [login(n * step) for n in range(int(span / step))]


def requests_of(outputs: Iterable[Output]) -> list[ScoreRequest]:
    return [o for o in outputs if isinstance(o, ScoreRequest)]


def process(events: Sequence[Event], config: AccountConfig = SCORING) -> list[Output]:
    return AccountProcessor(config).process(events).outputs


@pytest.mark.parametrize(
    ("debounce_minutes", "expected_every"),
    [
        pytest.param(30, 3, id="debounce-30min-every-3rd-login"),
        pytest.param(60, 6, id="debounce-60min-every-6th-login"),
        pytest.param(10, 1, id="debounce-10min-every-login"),
        pytest.param(25, 3, id="debounce-25min-every-3rd-login"),
    ],
)
def test_logins_every_10_minutes_for_a_day_request_a_score_per_debounce(
    debounce_minutes: int, expected_every: int
) -> None:
    events = logins_every(10)
    assert len(events) == 144
    config = scoring_config(score_debounce=timedelta(minutes=debounce_minutes))
    requests = requests_of(process(events, config))
    expected = events[::expected_every]
    assert len(requests) == len(expected) == 144 // expected_every
    assert [r.as_of for r in requests] == [e.event_time.timestamp() for e in expected]
    assert [r.trigger_event_id for r in requests] == [e.event_id for e in expected]
    assert {(r.tenant_id, r.account_id, r.rule_risk) for r in requests} == {
        ("acme", "acct-1", 0.0)
    }
    assert all(len(r.values) == len(FEATURE_SET.names) for r in requests)


def test_default_debounce_is_30_minutes_of_event_time() -> None:
    requests = requests_of(process(logins_every(10)))
    assert len(requests) == 48
    assert [r.as_of - T0.timestamp() for r in requests] == [n * DEBOUNCE for n in range(48)]
    assert [r.trigger_event_id for r in requests] == [
        f"login-{int(n * DEBOUNCE)}" for n in range(48)
    ]


def test_request_carries_the_features_as_of_its_event() -> None:
    processor = AccountProcessor(SCORING)
    events = logins_every(10, HOUR)
    requests = requests_of(processor.process(events[:4]).outputs)  # 0, 10, 20, 30 min
    assert [r.trigger_event_id for r in requests] == ["login-0", "login-1800"]
    names = FEATURE_SET.names
    assert dict(zip(names, requests[-1].values, strict=True)) == processor.feature_values()
    assert dict(zip(names, requests[0].values, strict=True))["logins_7d"] == 1.0
    assert dict(zip(names, requests[-1].values, strict=True))["logins_7d"] == 4.0


@pytest.mark.parametrize(
    ("event_type", "rule_risk"),
    [
        pytest.param("billing.payment_failed", 0.9, id="payment-failed"),
        pytest.param("subscription.cancel_intent", 0.9, id="cancel-intent"),
        pytest.param("billing.downgraded", 0.6, id="downgraded"),
    ],
)
def test_decisive_event_requests_a_score_at_once_with_its_rule_risk(
    event_type: str, rule_risk: float
) -> None:
    # Logins at 0, 10, ..., 50 min; the decisive event at 15 min, inside the debounce.
    events = [*logins_every(10, HOUR)[:2], decisive(15 * MINUTE, event_type, "decisive"),
              *logins_every(10, HOUR)[2:]]
    outputs = process(events)
    requests = requests_of(outputs)
    assert [(r.trigger_event_id, r.as_of - T0.timestamp(), r.rule_risk) for r in requests] == [
        ("login-0", 0.0, 0.0),
        ("decisive", 15 * MINUTE, rule_risk),  # bypasses the debounce
        ("login-3000", 50 * MINUTE, rule_risk),  # 30 min after the decisive event, not after 0
    ]
    alert = next(o for o in outputs if isinstance(o, Alert))
    assert alert.tier is AlertTier.EVENT_RULE and alert.trigger_event_id == "decisive"
    # The decisive request comes right after its alert (and the lifecycle change the
    # event stands for, if any: a downgrade names the new plan), in the same batch.
    between = outputs[outputs.index(alert) + 1:outputs.index(requests[1])]
    assert [type(o).__name__ for o in between] == (
        ["AccountChange"] if event_type == "billing.downgraded" else [])
    assert requests[1].alert == alert  # the decision on the alert waits for this score


def test_rule_risk_of_a_payment_failure_lapses_after_the_ttl() -> None:
    processor = AccountProcessor(SCORING)
    processor.process([decisive(0, event_id="pf")])
    later = [login(TTL - 40 * MINUTE), login(TTL)]
    requests = requests_of(processor.process(later).outputs)
    assert [(r.trigger_event_id, r.rule_risk) for r in requests] == [
        (later[0].event_id, 0.9), (later[1].event_id, 0.0)
    ]


def replay_events() -> list[Event]:
    """A day of logins with decisive events, an out-of-order one, a late one and a copy."""
    events = logins_every(10)
    events.insert(31, decisive(5 * HOUR + 5 * MINUTE, event_id="pf-1"))
    events.insert(60, login(9 * HOUR + 55 * MINUTE, "login-out-of-order"))  # 20 min behind
    events.insert(100, decisive(14 * HOUR, event_id="pf-late"))  # behind the watermark
    events.insert(120, decisive(18 * HOUR + MINUTE, "billing.downgraded", "downgrade"))
    events.insert(130, login(19 * HOUR + 30 * MINUTE))  # a copy of a login already seen
    return events


def run(events: Sequence[Event], sizes: Iterable[int], *, restore: bool = False,
        config: AccountConfig = SCORING) -> list[Output]:
    processor = AccountProcessor(config)
    outputs: list[Output] = []
    start = 0
    for size in sizes:
        if start >= len(events):
            break
        outputs += processor.process(events[start : start + size]).outputs
        if restore:
            processor = AccountProcessor(config, processor.snapshot())
        start += size
    assert start >= len(events)
    return outputs


def random_sizes(seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 25) for _ in range(200)]


def test_replay_events_exercise_every_request_path() -> None:
    # So the determinism test below compares something worth comparing.
    requests = requests_of(run(replay_events(), [10_000]))
    triggers = {r.trigger_event_id for r in requests}
    assert {"pf-1", "pf-late", "downgrade"} <= triggers
    assert {r.rule_risk for r in requests} == {0.0, 0.9}
    assert len(requests) > 48


@pytest.mark.parametrize(
    ("sizes", "restore"),
    [
        pytest.param([1] * 200, False, id="single-event-batches"),
        pytest.param([2] * 100, False, id="pairs"),
        pytest.param([7] * 30, False, id="sevens"),
        pytest.param(random_sizes(0), False, id="random-chunks-seed-0"),
        pytest.param(random_sizes(1), False, id="random-chunks-seed-1"),
        pytest.param(random_sizes(2), False, id="random-chunks-seed-2"),
        pytest.param(random_sizes(3), True, id="random-chunks-restored-from-snapshots"),
        pytest.param([1] * 200, True, id="single-events-restored-from-snapshots"),
    ],
)
def test_score_requests_do_not_depend_on_batching(sizes: list[int], restore: bool) -> None:
    events = replay_events()
    reference = requests_of(run(events, [len(events)]))
    assert requests_of(run(events, sizes, restore=restore)) == reference


def test_no_score_requests_without_scoring() -> None:
    config = account_config(Settings(), FEATURE_SET, scoring=False)
    outputs = run(replay_events(), [10_000], config=config)
    assert requests_of(outputs) == []
    assert any(isinstance(o, Alert) for o in outputs)  # the tier-1 alerts still fire


# --- 3. Blending and tiers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "risk", "tier"),
    [
        pytest.param(POLICY, 0.0, RiskTier.LOW, id="zero-low"),
        pytest.param(POLICY, 0.3999, RiskTier.LOW, id="0.3999-low"),
        pytest.param(POLICY, 0.4, RiskTier.MEDIUM, id="0.4-medium"),
        pytest.param(POLICY, 0.6999, RiskTier.MEDIUM, id="0.6999-medium"),
        pytest.param(POLICY, 0.7, RiskTier.HIGH, id="0.7-high"),
        pytest.param(POLICY, 1.0, RiskTier.HIGH, id="one-high"),
        pytest.param(RiskPolicy(medium_at=0.5, high_at=0.8), 0.45, RiskTier.LOW,
                     id="custom-0.45-low"),
        pytest.param(RiskPolicy(medium_at=0.5, high_at=0.8), 0.75, RiskTier.MEDIUM,
                     id="custom-0.75-medium"),
        pytest.param(RiskPolicy(medium_at=0.5, high_at=0.8), 0.8, RiskTier.HIGH,
                     id="custom-0.8-high"),
    ],
)
def test_tier_boundaries(policy: RiskPolicy, risk: float, tier: RiskTier) -> None:
    assert policy.tier(risk) is tier


@pytest.mark.parametrize(
    ("blend", "rule_risk", "ml_risk", "expected"),
    [
        pytest.param(Blend.MAX, 0.9, 0.2, 0.9, id="max-rules-higher"),
        pytest.param(Blend.MAX, 0.0, 0.55, 0.55, id="max-model-higher"),
        pytest.param(Blend.MAX, 0.6, 0.6, 0.6, id="max-equal"),
        pytest.param(Blend.ML, 0.9, 0.2, 0.2, id="ml-ignores-rules"),
        pytest.param(Blend.ML, 0.0, 0.55, 0.55, id="ml-model-alone"),
        pytest.param(Blend.RULES, 0.9, 0.2, 0.9, id="rules-alone"),
        pytest.param(Blend.RULES, 0.0, 0.95, 0.0, id="rules-ignore-the-model"),
    ],
)
def test_blended(blend: Blend, rule_risk: float, ml_risk: float, expected: float) -> None:
    assert RiskPolicy(blend=blend).blended(rule_risk, ml_risk) == expected


def test_default_policy() -> None:
    assert (POLICY.medium_at, POLICY.high_at, POLICY.blend) == (0.4, 0.7, Blend.MAX)
    assert (POLICY.ttl, POLICY.debounce) == (timedelta(days=7), timedelta(minutes=30))


# --- 4. score_batch with the shipped model -------------------------------------------------


@pytest.fixture(scope="module")
def model() -> RiskModel:
    return load_model(DEFAULT_MODEL, FEATURE_SET.version, FEATURE_SET.names)


@pytest.fixture(scope="module")
def other_version(model: RiskModel) -> RiskModel:
    """The shipped graph under another model version (as a retrained model would be)."""
    session = ort.InferenceSession(
        (DEFAULT_MODEL / MODEL_FILE).read_bytes(), providers=["CPUExecutionProvider"]
    )
    return RiskModel(session, dataclasses.replace(model.metadata, model_version="0" * 16))


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows per RiskModel.score call made while the test runs."""
    calls: list[int] = []
    original = RiskModel.score

    def counting(self: RiskModel, matrix: Any) -> Any:
        calls.append(len(matrix))
        return original(self, matrix)

    monkeypatch.setattr(RiskModel, "score", counting)
    return calls


def vector(**values: float) -> tuple[float, ...]:
    unknown = set(values) - set(FEATURE_SET.names)
    assert not unknown, unknown
    return tuple(float(values.get(name, 0.0)) for name in FEATURE_SET.names)


ENGAGED = {
    "logins_7d": 21, "logins_baseline_28d": 21, "login_trend": 1.0, "active_users_7d": 3,
    "active_users_baseline_28d": 3, "features_used_7d": 4, "features_used_baseline_28d": 4,
    "key_feature_events_7d": 7, "key_feature_events_baseline_28d": 7, "days_to_renewal": 120,
    "tenure_days": 90, "seats": 5,
}
IDLE = {
    "logins_baseline_28d": 21, "active_users_baseline_28d": 3, "features_used_baseline_28d": 4,
    "key_feature_events_baseline_28d": 7, "support_tickets_28d": 2, "days_to_renewal": 20,
    "tenure_days": 90, "seats": 5,
}
PROFILES = {
    "engaged": vector(**ENGAGED),
    "veteran": vector(**{**ENGAGED, "tenure_days": 400}),
    "fading": vector(**{**ENGAGED, "logins_7d": 6, "login_trend": 0.3, "active_users_7d": 1,
                        "features_used_7d": 1, "key_feature_events_7d": 1,
                        "days_since_last_activity": 3, "days_to_renewal": 30}),
    "brand-new": vector(),
    "idle-a-week": vector(**IDLE, days_since_last_activity=7),
    "idle-ten-days": vector(**IDLE, days_since_last_activity=10),
}
AS_OF = T0.timestamp()


def request(profile: str = "engaged", *, as_of: float = AS_OF, rule_risk: float = 0.0,
            tenant: str = "acme", account: str = "acct-1", trigger: str = "evt-1") -> ScoreRequest:
    return ScoreRequest(tenant, account, PROFILES[profile], as_of, rule_risk, trigger)


def every_profile(rule_risk: float = 0.0) -> list[ScoreRequest]:
    return [request(p, account=f"acct-{p}", rule_risk=rule_risk, as_of=AS_OF + n)
            for n, p in enumerate(PROFILES)]


def test_profiles_span_every_tier(model: RiskModel) -> None:
    # So the tests below see low, medium and high model risks.
    scores = score_batch(every_profile(), model, POLICY)
    assert {s.tier for s in scores} == set(RiskTier)


@pytest.mark.parametrize("rows", [1, 2, 6, 50, 500])
def test_one_model_call_per_batch(model: RiskModel, model_calls: list[int], rows: int) -> None:
    names = list(PROFILES)
    requests = [request(names[n % len(names)], account=f"acct-{n}") for n in range(rows)]
    scores = score_batch(requests, model, POLICY)
    assert model_calls == [rows]
    assert [s.account_id for s in scores] == [r.account_id for r in requests]


def test_one_model_call_per_score_batch_call(model: RiskModel, model_calls: list[int]) -> None:
    score_batch(every_profile(), model, POLICY)
    score_batch(every_profile(), model, POLICY, shadow=True)
    assert model_calls == [len(PROFILES), len(PROFILES)]


def test_empty_batch_scores_nothing_without_calling_the_model(
    model: RiskModel, model_calls: list[int]
) -> None:
    assert score_batch([], model, POLICY) == []
    assert model_calls == []


def test_a_score_does_not_depend_on_its_batch(model: RiskModel) -> None:
    alone = score_batch([request("idle-a-week")], model, POLICY)[0]
    batch = [*every_profile(), request("idle-a-week")]
    assert score_batch(batch, model, POLICY)[-1] == alone


def score_id_of(req: ScoreRequest, model: RiskModel) -> str:
    return score_batch([req], model, POLICY)[0].score_id


def test_same_request_same_score_id(model: RiskModel) -> None:
    first = score_id_of(request(), model)
    assert score_id_of(request(), model) == first
    assert uuid.UUID(first).version == 5


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"as_of": AS_OF + 1}, id="as-of-a-second-later"),
        pytest.param({"as_of": AS_OF + 0.001}, id="as-of-a-millisecond-later"),
        pytest.param({"as_of": AS_OF + DEBOUNCE}, id="as-of-the-next-debounce"),
        pytest.param({"account": "acct-2"}, id="another-account"),
        pytest.param({"tenant": "globex"}, id="another-tenant"),
    ],
)
def test_different_request_different_score_id(model: RiskModel, changed: dict[str, Any]) -> None:
    assert score_id_of(request(**changed), model) != score_id_of(request(), model)


def test_another_model_version_gives_another_score_id(
    model: RiskModel, other_version: RiskModel
) -> None:
    ours, theirs = score_id_of(request(), model), score_id_of(request(), other_version)
    assert theirs != ours
    assert score_batch([request()], other_version, POLICY)[0].model_version == "0" * 16


def test_an_out_of_order_decisive_event_gets_its_own_score_id(model: RiskModel) -> None:
    processor = AccountProcessor(SCORING)
    events = [login(HOUR, "login"), decisive(HOUR - 15 * MINUTE, event_id="pf")]
    requests = requests_of(processor.process(events).outputs)
    assert [r.trigger_event_id for r in requests] == ["login", "pf"]
    scores = score_batch(requests, model, POLICY)
    assert scores[0] != scores[1]  # different scores (rule risk 0.0 and 0.9) ...
    assert scores[0].score_id != scores[1].score_id  # ... need different ids


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(POLICY, id="max"),
        pytest.param(RiskPolicy(blend=Blend.ML), id="ml"),
        pytest.param(RiskPolicy(blend=Blend.RULES), id="rules"),
        pytest.param(RiskPolicy(medium_at=0.2, high_at=0.5), id="lower-tiers"),
    ],
)
@pytest.mark.parametrize("rule_risk", [0.0, 0.3, 0.6, 0.9])
def test_risk_blends_the_model_and_the_rules(
    model: RiskModel, policy: RiskPolicy, rule_risk: float
) -> None:
    requests = every_profile(rule_risk)
    ml_risks, _ = model.score(np.asarray([r.values for r in requests], dtype=np.float32))
    scores = score_batch(requests, model, policy)
    for score, ml in zip(scores, ml_risks, strict=True):
        assert score.ml_risk == float(ml)
        assert score.rule_risk == rule_risk
        assert 0.0 <= score.ml_risk <= 1.0 and 0.0 <= score.risk <= 1.0
        assert score.risk == policy.blended(rule_risk, float(ml))
        assert score.tier is policy.tier(score.risk)
        assert not score.shadow
        assert score.feature_version == FEATURE_SET.version == model.metadata.feature_version
        assert score.model_version == model.model_version


def top_features(contributions: np.ndarray, k: int = 3) -> list[str]:
    """The features of the k largest positive contributions, largest first (ties: definition
    order), computed here rather than by the model."""
    order = sorted(range(len(contributions)), key=lambda i: (-float(contributions[i]), i))
    return [FEATURE_SET.names[i] for i in order if contributions[i] > 0][:k]


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "veteran"])
def test_reasons_are_the_top_three_contributions(model: RiskModel, profile: str) -> None:
    req = request(profile)
    _, contributions = model.score(np.asarray([req.values], dtype=np.float32))
    score = score_batch([req], model, POLICY)[0]
    reasons = model.reasons(contributions[0], 3)
    assert 0 < len(score.reasons) <= 3
    assert [reason.split()[0] for reason in score.reasons] == top_features(contributions[0])
    assert score.reasons == tuple(str(r) for r in reasons)
    assert [r.contribution for r in reasons] == sorted(
        (r.contribution for r in reasons), reverse=True
    )


@pytest.mark.parametrize(
    ("policy", "decisive_first"),
    [
        pytest.param(POLICY, True, id="max"),
        pytest.param(RiskPolicy(blend=Blend.RULES), True, id="rules"),
        pytest.param(RiskPolicy(blend=Blend.ML), False, id="ml-has-no-decisive-reason"),
    ],
)
def test_a_decisive_rule_risk_leads_the_reasons(
    model: RiskModel, policy: RiskPolicy, decisive_first: bool
) -> None:
    req = request("fading", rule_risk=0.9)  # the model says ~0.01
    _, contributions = model.score(np.asarray([req.values], dtype=np.float32))
    model_reasons = model.top_reasons(contributions[0], 3)
    score = score_batch([req], model, policy)[0]
    if decisive_first:
        assert score.reasons == (DECISIVE_REASON, *model_reasons[:2])
    else:
        assert score.reasons == model_reasons


def test_a_decisive_events_reason_is_its_tier1_rules_reason(model: RiskModel) -> None:
    """Named by the definitions file's tier-1 rule, not by a product's event names."""
    from detectors.tier1 import Tier1Rule, detect_tier1

    rules = {"store.refund_requested": Tier1Rule("refund", Severity.HIGH,
                                                 "asked for a refund in the app store")}
    alert = detect_tier1(make_event(event_type="store.refund_requested"), rules)
    assert alert is not None
    req = dataclasses.replace(request("fading", rule_risk=0.9), alert=alert)
    score = score_batch([req], model, POLICY)[0]
    assert score.reasons[0] == "asked for a refund in the app store"


def test_model_above_the_rule_risk_gives_model_reasons_only(model: RiskModel) -> None:
    req = request("idle-ten-days", rule_risk=0.6)  # the model says ~0.9
    score = score_batch([req], model, POLICY)[0]
    assert score.risk == score.ml_risk > 0.6
    assert DECISIVE_REASON not in score.reasons


def test_no_decisive_reason_without_a_decisive_event(model: RiskModel) -> None:
    scores = score_batch(every_profile(rule_risk=0.0), model, POLICY)
    assert [s.account_id for s in scores if DECISIVE_REASON in s.reasons] == []


@pytest.mark.parametrize("rule_risk", [0.0, 0.6, 0.9])
def test_shadow_scores_are_the_model_alone(model: RiskModel, rule_risk: float) -> None:
    requests = every_profile(rule_risk)
    primary = score_batch(requests, model, POLICY)
    shadow = score_batch(requests, model, POLICY, shadow=True)
    for score, main in zip(shadow, primary, strict=True):
        assert score.shadow and score.to_document()["shadow"] is True
        assert score.risk == score.ml_risk == main.ml_risk
        assert score.tier is POLICY.tier(score.ml_risk)
        assert score.rule_risk == rule_risk  # recorded, not blended
        assert DECISIVE_REASON not in score.reasons
    assert not any(s.shadow for s in primary)


@pytest.mark.parametrize(
    ("policy", "as_of"),
    [
        pytest.param(POLICY, AS_OF, id="default-7-days"),
        pytest.param(RiskPolicy(ttl=timedelta(hours=1)), AS_OF, id="one-hour"),
        pytest.param(RiskPolicy(ttl=timedelta(days=30)), AS_OF + 0.5, id="30-days-half-second"),
    ],
)
def test_score_time_is_as_of_and_expires_after_the_ttl(
    model: RiskModel, policy: RiskPolicy, as_of: float
) -> None:
    score = score_batch([request(as_of=as_of)], model, policy)[0]
    assert score.score_time == datetime.fromtimestamp(as_of, UTC)
    assert score.score_time.tzinfo is UTC
    assert score.expires_at == score.score_time + policy.ttl
    document = score.to_document()
    assert (document["score_time"], document["expires_at"]) == (
        score.score_time.isoformat().replace("+00:00", "Z"),
        score.expires_at.isoformat().replace("+00:00", "Z"),
    )


def test_score_carries_the_request_identity(model: RiskModel) -> None:
    req = dataclasses.replace(request(trigger="evt-9"), ingested_at=123.5)
    score = score_batch([req], model, POLICY)[0]
    assert (score.tenant_id, score.account_id, score.trigger_event_id, score.ingested_at) == (
        "acme", "acct-1", "evt-9", 123.5
    )


# --- 5. RiskTierTracker --------------------------------------------------------------------


def make_score(risk: float, seconds: float = 0.0, *, shadow: bool = False,
               reasons: tuple[str, ...] = ("days_since_last_activity high",),
               ttl: timedelta = POLICY.ttl) -> RiskScore:
    when = at(seconds)
    return RiskScore(
        score_id=deterministic_id("test-score", repr(risk), repr(seconds), str(shadow)),
        tenant_id="acme",
        account_id="acct-1",
        model_version="b5ca68712a36c771",
        feature_version=FEATURE_SET.version,
        ml_risk=risk,
        rule_risk=0.0,
        risk=risk,
        tier=POLICY.tier(risk),
        reasons=reasons,
        score_time=when,
        expires_at=when + ttl,
        trigger_event_id=f"evt-{int(seconds)}",
        shadow=shadow,
    )


def assert_valid_alert(alert: Alert) -> None:
    errors = [e.message for e in ALERT_VALIDATOR.iter_errors(alert.to_document())]
    assert errors == []


# (seconds, risk, shadow)
Scored = tuple[float, float, bool]


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        pytest.param([(0, 0.1, False)], [None], id="low-stays-quiet"),
        pytest.param([(0, 0.1, False), (HOUR, 0.5, False)], [None, "risk_medium"],
                     id="low-to-medium"),
        pytest.param([(0, 0.5, False)], ["risk_medium"], id="first-score-medium"),
        pytest.param([(0, 0.3999, False), (HOUR, 0.4, False)], [None, "risk_medium"],
                     id="low-to-medium-at-the-boundary"),
        pytest.param([(0, 0.5, False), (HOUR, 0.8, False)], ["risk_medium", "risk_high"],
                     id="medium-to-high"),
        pytest.param([(0, 0.1, False), (HOUR, 0.8, False)], [None, "risk_high"],
                     id="low-to-high"),
        pytest.param([(0, 0.8, False), (HOUR, 0.9, False), (2 * HOUR, 0.7, False)],
                     ["risk_high", None, None], id="staying-high"),
        pytest.param([(0, 0.5, False), (HOUR, 0.6, False)], ["risk_medium", None],
                     id="staying-medium"),
        pytest.param([(0, 0.8, False), (HOUR, 0.5, False)], ["risk_high", None],
                     id="high-to-medium-is-no-rise"),
        pytest.param([(0, 0.8, False), (HOUR, 0.1, False), (2 * HOUR, 0.8, False)],
                     ["risk_high", None, "risk_high"], id="high-low-high"),
        pytest.param([(0, 0.8, False), (HOUR, 0.5, False), (2 * HOUR, 0.8, False)],
                     ["risk_high", None, "risk_high"], id="high-medium-high"),
        pytest.param([(0, 0.8, False), (TTL + HOUR, 0.8, False)], ["risk_high", "risk_high"],
                     id="expired-high-counts-as-low"),
        pytest.param([(0, 0.8, False), (TTL, 0.8, False)], ["risk_high", "risk_high"],
                     id="high-expires-at-expires-at"),
        pytest.param([(0, 0.8, False), (TTL - 1, 0.8, False)], ["risk_high", None],
                     id="high-stands-until-it-expires"),
        pytest.param([(0, 0.8, False), (TTL + DAY, 0.5, False)], ["risk_high", "risk_medium"],
                     id="expired-high-then-medium-rises"),
        pytest.param([(0, 0.5, False), (HOUR, 0.5, False), (HOUR + TTL - 1, 0.5, False)],
                     ["risk_medium", None, None], id="each-score-renews-the-tier"),
        pytest.param([(0, 0.9, True)], [None], id="shadow-never-alerts"),
        pytest.param([(0, 0.9, True), (HOUR, 0.9, True)], [None, None],
                     id="shadow-high-twice"),
        pytest.param([(0, 0.5, False), (HOUR, 0.9, True), (2 * HOUR, 0.8, False)],
                     ["risk_medium", None, "risk_high"], id="shadow-high-does-not-raise-the-tier"),
        pytest.param([(0, 0.8, False), (HOUR, 0.1, True), (2 * HOUR, 0.8, False)],
                     ["risk_high", None, None], id="shadow-low-does-not-lower-the-tier"),
        pytest.param([(0, 0.8, False), (TTL - HOUR, 0.9, True), (TTL + HOUR, 0.8, False)],
                     ["risk_high", None, "risk_high"], id="shadow-does-not-renew-the-tier"),
    ],
)
def test_tier_rises_raise_tier3_alerts(
    scores: list[Scored], expected: list[str | None]
) -> None:
    tracker = RiskTierTracker()
    got = []
    for seconds, risk, shadow in scores:
        score = make_score(risk, seconds, shadow=shadow)
        alert = tracker.update(score)
        got.append(None if alert is None else alert.rule)
        if alert is not None:
            assert alert.tier is AlertTier.RISK_SCORE
            assert alert.alert_id == alert_id("acme", "acct-1", alert.rule, score.score_id)
            assert alert.severity is (
                Severity.HIGH if score.tier is RiskTier.HIGH else Severity.MEDIUM
            )
            assert (alert.tenant_id, alert.account_id) == ("acme", "acct-1")
            assert (alert.trigger_event_id, alert.trigger_event_type) == (
                score.trigger_event_id, "risk_score"
            )
            assert alert.event_time == score.score_time
            assert alert.reasons == score.reasons
            assert_valid_alert(alert)
    assert got == expected


def test_tier_alert_id_is_deterministic_from_the_score() -> None:
    score = make_score(0.8)
    first, second = RiskTierTracker().update(score), RiskTierTracker().update(score)
    assert first is not None and second is not None
    assert first == second and first.alert_id == second.alert_id
    other = RiskTierTracker().update(make_score(0.8, HOUR))
    assert other is not None and other.alert_id != first.alert_id


def test_tier_alert_without_reasons_states_the_risk() -> None:
    alert = RiskTierTracker().update(make_score(0.8, reasons=()))
    assert alert is not None and alert.reasons == ("churn risk 0.80",)
    assert_valid_alert(alert)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_tracker_state_round_trips_through_raw(split: int) -> None:
    scores = [make_score(0.5), make_score(0.8, HOUR), make_score(0.8, 2 * HOUR),
              make_score(0.8, TTL + 3 * HOUR)]
    straight = RiskTierTracker()
    expected = [straight.update(s) for s in scores]
    first = RiskTierTracker()
    got = [first.update(s) for s in scores[:split]]
    restored = RiskTierTracker(pickle.loads(pickle.dumps(first.snapshot())))
    got += [restored.update(s) for s in scores[split:]]
    assert got == expected
    assert [a is not None for a in got] == [True, True, False, True]


def test_shipped_model_scores_raise_valid_alerts(model: RiskModel) -> None:
    # Scores of the shipped model, through the tracker, into alert v1 documents.
    tracker = RiskTierTracker()
    requests = [request("engaged", as_of=AS_OF), request("idle-a-week", as_of=AS_OF + HOUR),
                request("idle-ten-days", as_of=AS_OF + 2 * HOUR),
                request("engaged", as_of=AS_OF + 3 * HOUR, rule_risk=0.9)]
    scores = score_batch(requests, model, POLICY)
    alerts = [tracker.update(s) for s in scores]
    assert [a.rule if a else None for a in alerts] == [None, "risk_medium", "risk_high", None]
    for alert, score in zip(alerts, scores, strict=True):
        if alert is not None:
            assert alert.reasons == score.reasons and len(alert.reasons) == 3
            assert_valid_alert(alert)
