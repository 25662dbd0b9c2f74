"""decisions.engine: eligibility, cooldowns, caps, holdouts, sticky experiments,
idempotent ids, early exits, the risk context and bounded per-account state."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from decisions.engine import (
    AccountDecisions,
    DecisionEngine,
    ScoreContext,
    assign_variant,
    experiment_bucket,
)
from decisions.policy import (
    Experiment,
    Policy,
    PolicyError,
    PolicyHolder,
    Vocabulary,
    parse_policy,
)
from schemas.alert import Alert, AlertTier, Severity, alert_id
from schemas.decision import HOLDOUT, Decision, DecisionRecord, ExperimentAssignment, ReasonCode
from schemas.lifecycle import AccountChange, ChangeKind
from schemas.score import RiskScore, RiskTier
from schemas.workflow import (
    SignalKind,
    WorkflowAction,
    WorkflowSignal,
    WorkflowTrigger,
    episode_of,
    trigger_id,
)
from tests.builders import T0

SECOND = 1.0
HOUR = 3_600.0
DAY = 86_400.0

TENANT = "acme"
ACCOUNT = "acct-1"
FEATURES = ("seats", "tenure_days")

VOCABULARY = Vocabulary(
    triggers=frozenset({"payment_failed", "cancel_intent", "login_drop", "seat_drop",
                        "risk_high"}),
    features=frozenset(FEATURES),
)

# Short active spans, so cooldowns and caps can be reached once an episode is over.
POLICY = """\
policy_version: "d.1"
caps:
  email: {max: 2, per: 7d}
  csm: {max: 1, per: 14d}
workflows:
  dunning: {channel: email, cooldown: 3d, active_for: 1d, exits_on: [payment_succeeded]}
  win_back: {channel: email, cooldown: 3d, active_for: 1d, exits_on: [usage_recovered, renewed]}
  csm_outreach: {channel: csm, cooldown: 1h, active_for: 1d}
rules:
  - name: escalate-high-risk-payment
    when: {trigger: [payment_failed], tier: [high], features: {seats: {gte: 10}}}
    decide: escalate
    workflow: csm_outreach
  - name: dunning
    when: {trigger: [payment_failed]}
    decide: start_workflow
    workflow: dunning
  - name: win-back
    when: {trigger: [cancel_intent, login_drop]}
    decide: start_workflow
    workflow: win_back
  - name: hold-high-risk
    when: {trigger: [risk_high]}
    decide: holdout
    workflow: csm_outreach
  - name: quiet
    when: {trigger: [seat_drop]}
    decide: ignore
"""

EXPERIMENT_KEY = "offer"
EXPERIMENT_POLICY = POLICY.replace("rules:\n", f"""\
experiments:
  {EXPERIMENT_KEY}:
    workflow: win_back
    holdout: 50
    variants: {{coaching: 25, discount: 25}}
rules:
""")

Output = TypeVar("Output")


# --- builders ----------------------------------------------------------------------------------


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_alert(**overrides: Any) -> Alert:
    """An alert; its id follows its rule and trigger event unless given."""
    fields: dict[str, Any] = {
        "tenant_id": TENANT,
        "account_id": ACCOUNT,
        "tier": AlertTier.EVENT_RULE,
        "rule": "payment_failed",
        "severity": Severity.HIGH,
        "event_time": T0,
        "trigger_event_type": "billing.payment_failed",
        "reasons": ("a payment failed",),
    }
    fields.update(overrides)
    fields.setdefault("trigger_event_id",
                      f"evt-{fields['rule']}-{fields['event_time'].timestamp():.0f}")
    fields.setdefault("alert_id", alert_id(fields["tenant_id"], fields["account_id"],
                                           fields["rule"], fields["trigger_event_id"]))
    return Alert(**fields)


def make_score(**overrides: Any) -> RiskScore:
    """A high-risk score of a 12-seat, 30-day-old account, valid for 7 days."""
    fields: dict[str, Any] = {
        "score_id": "score-1",
        "tenant_id": TENANT,
        "account_id": ACCOUNT,
        "model_version": "m1",
        "feature_version": "f1",
        "ml_risk": 0.8,
        "rule_risk": 0.0,
        "risk": 0.8,
        "tier": RiskTier.HIGH,
        "reasons": ("churn risk 0.80",),
        "score_time": T0,
        "trigger_event_id": "evt-score",
        "features": (12.0, 30.0),
    }
    fields.update(overrides)
    fields.setdefault("expires_at", fields["score_time"] + timedelta(days=7))
    return RiskScore(**fields)


def make_change(**overrides: Any) -> AccountChange:
    fields: dict[str, Any] = {
        "tenant_id": TENANT,
        "account_id": ACCOUNT,
        "kind": ChangeKind.PAYMENT_SUCCEEDED,
        "event_time": T0,
        "source_id": "evt-change",
    }
    fields.update(overrides)
    return AccountChange(**fields)


def opt(allowed: bool, seconds: float) -> AccountChange:
    """A consent change at ``T0 + seconds``."""
    return make_change(kind=ChangeKind.CONSENT, contact_allowed=allowed, event_time=at(seconds),
                       source_id=f"evt-consent-{seconds:.0f}")


def make_policy(text: str = POLICY) -> Policy:
    return parse_policy(text, VOCABULARY, source="test.yaml")


def make_decisions(policy: Policy | str = POLICY, *,
                   consent: Callable[[str, str], tuple[bool, float] | None] | None = None,
                   snapshot: tuple[object, ...] | None = None) -> AccountDecisions:
    policy = make_policy(policy) if isinstance(policy, str) else policy
    engine = (DecisionEngine(policy, FEATURES) if consent is None
              else DecisionEngine(policy, FEATURES, consent))
    return AccountDecisions(engine, snapshot)


def of_type(outputs: Sequence[object], kind: type[Output]) -> list[Output]:
    return [item for item in outputs if isinstance(item, kind)]


def record_of(outputs: Sequence[object]) -> DecisionRecord:
    """The one decision record, which always comes first."""
    assert isinstance(outputs[0], DecisionRecord)
    assert len(of_type(outputs, DecisionRecord)) == 1
    return outputs[0]


def feed(decisions: AccountDecisions, item: Alert | AccountChange | RiskScore) -> list[object]:
    if isinstance(item, Alert):
        return list(decisions.decide(item))
    if isinstance(item, RiskScore):
        return list(decisions.observe_score(item))
    return list(decisions.observe_change(item))


def account_in(experiment_key: str, wanted: Callable[[int], bool]) -> str:
    """The first account id ``acct-N`` whose bucket satisfies ``wanted`` (deterministic)."""
    for number in range(10_000):
        account = f"acct-{number}"
        if wanted(experiment_bucket(TENANT, account, experiment_key)):
            return account
    msg = "no such account"
    raise AssertionError(msg)


HELD_OUT_ACCOUNT = account_in(EXPERIMENT_KEY, lambda bucket: bucket < 50)
TREATED_ACCOUNT = account_in(EXPERIMENT_KEY, lambda bucket: bucket >= 50)


# --- 1. eligibility ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Eligibility:
    id: str
    before: tuple[Alert | AccountChange, ...]
    alert: Alert
    reason: ReasonCode
    decision: Decision
    directory: tuple[bool, float] | None = None  # the consent lookup's answer


PAYMENT_FAILED = make_alert(rule="payment_failed", event_time=T0)

ELIGIBILITY = [
    Eligibility("eligible", (), PAYMENT_FAILED, ReasonCode.RULE_MATCHED,
                Decision.START_WORKFLOW),
    Eligibility("no-rule-matches", (), make_alert(rule="risk_medium"), ReasonCode.NO_RULE,
                Decision.IGNORE),
    Eligibility("an-ignore-rule", (), make_alert(rule="seat_drop"), ReasonCode.RULE_IGNORE,
                Decision.IGNORE),
    Eligibility("cancelled",
                (make_change(kind=ChangeKind.CANCELLED, event_time=at(-DAY)),),
                PAYMENT_FAILED, ReasonCode.NOT_ELIGIBLE_CANCELLED, Decision.IGNORE),
    Eligibility("cancelled-then-reactivated",
                (make_change(kind=ChangeKind.CANCELLED, event_time=at(-2 * DAY)),
                 make_change(kind=ChangeKind.REACTIVATED, event_time=at(-DAY))),
                PAYMENT_FAILED, ReasonCode.RULE_MATCHED, Decision.START_WORKFLOW),
    Eligibility("do-not-contact-from-a-consent-change", (opt(False, -DAY),),
                PAYMENT_FAILED, ReasonCode.NOT_ELIGIBLE_DO_NOT_CONTACT, Decision.IGNORE),
    Eligibility("do-not-contact-from-the-directory", (), PAYMENT_FAILED,
                ReasonCode.NOT_ELIGIBLE_DO_NOT_CONTACT, Decision.IGNORE,
                directory=(False, at(-DAY).timestamp())),
    Eligibility("directory-opt-out-newer-than-the-event-opt-in", (opt(True, -2 * DAY),),
                PAYMENT_FAILED, ReasonCode.NOT_ELIGIBLE_DO_NOT_CONTACT, Decision.IGNORE,
                directory=(False, at(-DAY).timestamp())),
    Eligibility("event-opt-in-newer-than-the-directory-opt-out", (opt(True, -DAY),),
                PAYMENT_FAILED, ReasonCode.RULE_MATCHED, Decision.START_WORKFLOW,
                directory=(False, at(-2 * DAY).timestamp())),
    Eligibility("a-later-opt-in-overrides-an-opt-out", (opt(False, -2 * DAY), opt(True, -DAY)),
                PAYMENT_FAILED, ReasonCode.RULE_MATCHED, Decision.START_WORKFLOW),
    Eligibility("a-late-older-opt-out-does-not-override-an-opt-in",
                (opt(True, -DAY), opt(False, -2 * DAY)),
                PAYMENT_FAILED, ReasonCode.RULE_MATCHED, Decision.START_WORKFLOW),
    Eligibility("active-workflow-of-the-same-key",
                (make_alert(rule="payment_failed", event_time=at(-HOUR)),),
                PAYMENT_FAILED, ReasonCode.NOT_ELIGIBLE_ACTIVE_WORKFLOW, Decision.IGNORE),
    Eligibility("active-workflow-of-another-key",
                (make_alert(rule="cancel_intent", event_time=at(-HOUR)),),
                PAYMENT_FAILED, ReasonCode.RULE_MATCHED, Decision.START_WORKFLOW),
]


@pytest.mark.parametrize("case", ELIGIBILITY, ids=lambda case: case.id)
def test_eligibility(case: Eligibility) -> None:
    decisions = make_decisions(consent=lambda _tenant, _account: case.directory)
    for item in case.before:
        feed(decisions, item)
    outputs = decisions.decide(case.alert)
    record = record_of(outputs)
    assert (record.reasons, record.decision) == ((case.reason,), case.decision)
    started = case.decision is Decision.START_WORKFLOW
    assert len(of_type(outputs, WorkflowTrigger)) == (1 if started else 0)
    assert (record.trigger_id is not None) is started


def test_an_ineligible_decision_still_names_the_rule_and_what_it_said() -> None:
    decisions = make_decisions()
    decisions.observe_change(make_change(kind=ChangeKind.CANCELLED, event_time=at(-DAY)))
    record = record_of(decisions.decide(PAYMENT_FAILED))
    assert (record.rule, record.rule_decision, record.workflow_key) == (
        "dunning", Decision.START_WORKFLOW, "dunning")
    assert record.decision is Decision.IGNORE


# --- 2. cooldown -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "reason"),
    [
        pytest.param(3 * DAY - SECOND, ReasonCode.COOLDOWN, id="just-inside-the-cooldown"),
        pytest.param(3 * DAY, ReasonCode.RULE_MATCHED, id="at-its-end"),
        pytest.param(3 * DAY + SECOND, ReasonCode.RULE_MATCHED, id="just-after"),
    ],
)
def test_cooldown(after: float, reason: ReasonCode) -> None:
    decisions = make_decisions()  # dunning: active 1d, cooldown 3d
    decisions.decide(make_alert(event_time=T0))
    record = record_of(decisions.decide(make_alert(event_time=at(after))))
    assert record.reasons == (reason,)


# --- 3. caps -----------------------------------------------------------------------------------


def test_the_contact_over_the_cap_inside_the_window_is_refused() -> None:
    decisions = make_decisions()  # email: 2 per 7d
    first = decisions.decide(make_alert(rule="payment_failed", event_time=T0))
    second = decisions.decide(make_alert(rule="cancel_intent", event_time=at(DAY + HOUR)))
    third = decisions.decide(make_alert(rule="payment_failed", event_time=at(4 * DAY)))
    assert [record_of(o).reasons for o in (first, second, third)] == [
        (ReasonCode.RULE_MATCHED,), (ReasonCode.RULE_MATCHED,), (ReasonCode.CAP_HIT,)]
    assert record_of(third).decision is Decision.IGNORE
    assert of_type(third, WorkflowTrigger) == []


@pytest.mark.parametrize(
    ("after", "reason"),
    [
        pytest.param(7 * DAY - SECOND, ReasonCode.CAP_HIT, id="just-inside-the-window"),
        pytest.param(7 * DAY, ReasonCode.RULE_MATCHED, id="the-first-contact-left-the-window"),
    ],
)
def test_the_cap_is_a_rolling_window(after: float, reason: ReasonCode) -> None:
    decisions = make_decisions()
    decisions.decide(make_alert(rule="payment_failed", event_time=T0))
    decisions.decide(make_alert(rule="cancel_intent", event_time=at(DAY + HOUR)))
    record = record_of(decisions.decide(make_alert(rule="payment_failed", event_time=at(after))))
    assert record.reasons == (reason,)


def test_a_refused_contact_does_not_count_against_the_cap() -> None:
    decisions = make_decisions()
    decisions.decide(make_alert(rule="payment_failed", event_time=T0))
    decisions.decide(make_alert(rule="cancel_intent", event_time=at(DAY + HOUR)))
    refused = decisions.decide(make_alert(rule="payment_failed", event_time=at(4 * DAY)))
    # T0's contact has left the window; if the refused one counted, this would be capped too
    allowed = decisions.decide(make_alert(rule="cancel_intent", event_time=at(7 * DAY)))
    assert record_of(refused).reasons == (ReasonCode.CAP_HIT,)
    assert record_of(allowed).reasons == (ReasonCode.RULE_MATCHED,)


def test_a_held_out_decision_does_not_consume_a_contact() -> None:
    text = POLICY.replace("csm: {max: 1, per: 14d}", "csm: {max: 1, per: 14d}\n  phone: "
                          "{max: 1, per: 14d}").replace(
        "csm_outreach: {channel: csm,", "csm_outreach: {channel: phone,")
    decisions = make_decisions(text)  # risk_high: decide holdout on the phone channel
    held = decisions.decide(make_alert(rule="risk_high", event_time=T0))
    # past csm_outreach's cooldown (1h) and active span (1d), the cap (1 per 14d) is untouched
    again = decisions.decide(make_alert(rule="risk_high", event_time=at(DAY + HOUR)))
    assert record_of(held).decision is Decision.HOLDOUT
    assert record_of(again).reasons == (ReasonCode.HOLDOUT,)
    assert "phone" not in decisions.contacts


def test_an_experiment_holdout_does_not_consume_a_contact() -> None:
    text = EXPERIMENT_POLICY.replace("email: {max: 2, per: 7d}", "email: {max: 1, per: 7d}")
    decisions = make_decisions(text)
    held = decisions.decide(make_alert(account_id=HELD_OUT_ACCOUNT, rule="cancel_intent"))
    dunning = decisions.decide(make_alert(account_id=HELD_OUT_ACCOUNT, rule="payment_failed",
                                          event_time=at(HOUR)))
    assert record_of(held).decision is Decision.HOLDOUT
    assert record_of(dunning).reasons == (ReasonCode.RULE_MATCHED,)  # email cap 1: still free


# --- 4. holdout --------------------------------------------------------------------------------


def test_a_held_out_account_is_not_contacted() -> None:
    decisions = make_decisions(EXPERIMENT_POLICY)
    outputs = decisions.decide(make_alert(account_id=HELD_OUT_ACCOUNT, rule="cancel_intent"))
    record = record_of(outputs)
    assert (record.decision, record.reasons) == (Decision.HOLDOUT, (ReasonCode.HOLDOUT,))
    assert (record.rule_decision, record.workflow_key) == (Decision.START_WORKFLOW, "win_back")
    assert (record.experiment_key, record.variant, record.trigger_id) == (
        EXPERIMENT_KEY, HOLDOUT, None)
    assert of_type(outputs, WorkflowTrigger) == []
    assert of_type(outputs, ExperimentAssignment) == [ExperimentAssignment(
        TENANT, HELD_OUT_ACCOUNT, EXPERIMENT_KEY, HOLDOUT,
        experiment_bucket(TENANT, HELD_OUT_ACCOUNT, EXPERIMENT_KEY), T0, "d.1")]


def test_a_treated_account_gets_its_variant_on_the_trigger() -> None:
    decisions = make_decisions(EXPERIMENT_POLICY)
    outputs = decisions.decide(make_alert(account_id=TREATED_ACCOUNT, rule="cancel_intent"))
    record = record_of(outputs)
    [trigger] = of_type(outputs, WorkflowTrigger)
    [assignment] = of_type(outputs, ExperimentAssignment)
    assert record.decision is Decision.START_WORKFLOW
    assert record.variant in {"coaching", "discount"}
    assert (trigger.experiment_key, trigger.variant) == (EXPERIMENT_KEY, record.variant)
    assert assignment.variant == record.variant


def test_a_held_out_episode_keeps_the_cadence_of_a_treated_one() -> None:
    decisions = make_decisions(EXPERIMENT_POLICY)  # win_back: active 1d, cooldown 3d
    decisions.decide(make_alert(account_id=HELD_OUT_ACCOUNT, rule="cancel_intent"))
    active = decisions.decide(make_alert(account_id=HELD_OUT_ACCOUNT, rule="login_drop",
                                         event_time=at(HOUR)))
    cooling = decisions.decide(make_alert(account_id=HELD_OUT_ACCOUNT, rule="login_drop",
                                          event_time=at(2 * DAY)))
    assert record_of(active).reasons == (ReasonCode.NOT_ELIGIBLE_ACTIVE_WORKFLOW,)
    assert record_of(cooling).reasons == (ReasonCode.COOLDOWN,)


def test_the_assignment_is_emitted_once_per_account_and_experiment() -> None:
    decisions = make_decisions(EXPERIMENT_POLICY)
    first = decisions.decide(make_alert(account_id=HELD_OUT_ACCOUNT, rule="cancel_intent"))
    later = decisions.decide(make_alert(account_id=HELD_OUT_ACCOUNT, rule="cancel_intent",
                                        event_time=at(4 * DAY)))
    assert len(of_type(first, ExperimentAssignment)) == 1
    assert of_type(later, ExperimentAssignment) == []
    assert record_of(later).variant == HOLDOUT


def test_a_holdout_rule_holds_out_without_an_experiment() -> None:
    decisions = make_decisions()
    outputs = decisions.decide(make_alert(rule="risk_high"))
    record = record_of(outputs)
    assert (record.rule_decision, record.decision, record.reasons) == (
        Decision.HOLDOUT, Decision.HOLDOUT, (ReasonCode.HOLDOUT,))
    assert (record.experiment_key, record.variant, record.trigger_id) == (None, None, None)
    assert outputs == [record]


@pytest.mark.parametrize(
    ("bucket", "variant"),
    [
        pytest.param(0, HOLDOUT, id="first-bucket"),
        pytest.param(19, HOLDOUT, id="last-held-out-bucket"),
        pytest.param(20, "coaching", id="first-coaching-bucket"),
        pytest.param(59, "coaching", id="last-coaching-bucket"),
        pytest.param(60, "discount", id="first-discount-bucket"),
        pytest.param(99, "discount", id="last-bucket"),
    ],
)
def test_assign_variant(bucket: int, variant: str) -> None:
    experiment = Experiment("offer", "win_back", 20, (("coaching", 40), ("discount", 40)))
    assert assign_variant(experiment, bucket) == variant


def test_a_full_holdout_holds_out_every_bucket() -> None:
    experiment = Experiment("offer", "win_back", 100, ())
    assert {assign_variant(experiment, bucket) for bucket in range(100)} == {HOLDOUT}


# --- 5. sticky assignment ----------------------------------------------------------------------


def test_experiment_bucket_is_fixed_by_the_three_names() -> None:
    # pinned: a change here reshuffles every running experiment
    assert experiment_bucket("acme", "acct-1", "offer") == 61
    assert experiment_bucket("acme", "acct-1", "offer") == experiment_bucket(
        "acme", "acct-1", "offer")


def test_experiment_buckets_cover_0_to_99() -> None:
    buckets = {experiment_bucket(TENANT, f"acct-{n}", EXPERIMENT_KEY) for n in range(2_000)}
    assert buckets == set(range(100))


def test_experiment_bucket_depends_on_each_name() -> None:
    accounts = [f"acct-{n}" for n in range(50)]
    base = [experiment_bucket(TENANT, a, "offer") for a in accounts]
    assert [experiment_bucket(TENANT, a, "offer_2") for a in accounts] != base
    assert [experiment_bucket("globex", a, "offer") for a in accounts] != base


def test_state_restored_from_a_pickled_snapshot_keeps_the_variant_and_exposure() -> None:
    decisions = make_decisions(EXPERIMENT_POLICY)
    first = decisions.decide(make_alert(account_id=TREATED_ACCOUNT, rule="cancel_intent"))
    snapshot = pickle.loads(pickle.dumps(decisions.snapshot()))
    restored = make_decisions(EXPERIMENT_POLICY, snapshot=snapshot)
    later = restored.decide(make_alert(account_id=TREATED_ACCOUNT, rule="cancel_intent",
                                       event_time=at(4 * DAY)))
    assert record_of(later).decision is Decision.START_WORKFLOW
    assert record_of(later).variant == record_of(first).variant
    assert of_type(later, ExperimentAssignment) == []


def test_a_snapshot_does_not_change_after_it_was_taken() -> None:
    decisions = make_decisions(EXPERIMENT_POLICY)
    decisions.decide(make_alert(account_id=TREATED_ACCOUNT, rule="cancel_intent"))
    snapshot = decisions.snapshot()
    frozen = pickle.dumps(snapshot)
    decisions.decide(make_alert(account_id=TREATED_ACCOUNT, rule="payment_failed",
                                event_time=at(HOUR)))
    assert pickle.dumps(snapshot) == frozen


def test_score_contexts_survive_a_snapshot_as_plain_tuples_and_as_named_ones() -> None:
    decisions = make_decisions()
    for n in range(3):
        decisions.observe_score(make_score(score_id=f"score-{n}",
                                           score_time=T0 + timedelta(hours=n)))
    snapshot = decisions.snapshot()
    assert all(type(context) is tuple for context in snapshot[2])  # type: ignore[attr-defined]
    restored = make_decisions(snapshot=pickle.loads(pickle.dumps(snapshot)))
    assert restored.scores == decisions.scores
    assert all(isinstance(context, ScoreContext) for context in restored.scores)
    # a snapshot taken before 2026-11-30 held the named tuples themselves
    older = (*snapshot[:2], list(decisions.scores), *snapshot[3:])
    assert make_decisions(snapshot=older).scores == decisions.scores


def test_a_fresh_state_as_after_a_replay_gives_the_same_variant() -> None:
    alert = make_alert(account_id=TREATED_ACCOUNT, rule="cancel_intent")
    first = make_decisions(EXPERIMENT_POLICY).decide(alert)
    replayed = make_decisions(EXPERIMENT_POLICY).decide(alert)
    assert record_of(replayed).variant == record_of(first).variant
    assert of_type(replayed, ExperimentAssignment) == of_type(first, ExperimentAssignment)


def test_the_variant_is_the_same_for_an_account_however_many_accounts_came_before() -> None:
    alert = make_alert(account_id=TREATED_ACCOUNT, rule="cancel_intent")
    alone = record_of(make_decisions(EXPERIMENT_POLICY).decide(alert)).variant
    for number in range(20):
        other = make_decisions(EXPERIMENT_POLICY)
        other.decide(make_alert(account_id=f"other-{number}", rule="cancel_intent"))
    assert record_of(make_decisions(EXPERIMENT_POLICY).decide(alert)).variant == alone


# --- 6. idempotency ----------------------------------------------------------------------------


def test_the_same_alert_decided_twice_keeps_its_decision_id() -> None:
    decisions = make_decisions()
    first = record_of(decisions.decide(PAYMENT_FAILED))
    second = record_of(decisions.decide(PAYMENT_FAILED))  # now refused: the episode is open
    assert second.reasons == (ReasonCode.NOT_ELIGIBLE_ACTIVE_WORKFLOW,)
    assert second.decision_id == first.decision_id


def test_a_replay_of_the_same_alert_gives_identical_outputs() -> None:
    first = make_decisions().decide(PAYMENT_FAILED)
    replayed = make_decisions().decide(PAYMENT_FAILED)
    assert replayed == first
    assert len(first) == 2


def test_another_policy_version_gives_another_decision_id() -> None:
    first = record_of(make_decisions().decide(PAYMENT_FAILED))
    other = record_of(make_decisions(POLICY.replace('"d.1"', '"d.2"')).decide(PAYMENT_FAILED))
    assert (first.policy_version, other.policy_version) == ("d.1", "d.2")
    assert other.decision_id != first.decision_id


def test_another_alert_gives_another_decision_id() -> None:
    decisions = make_decisions()
    first = record_of(decisions.decide(PAYMENT_FAILED))
    other = record_of(decisions.decide(make_alert(event_time=at(SECOND))))
    assert other.decision_id != first.decision_id


def test_the_trigger_id_is_fixed_by_tenant_workflow_account_and_episode() -> None:
    alert = make_alert(event_time=at(HOUR + 30 * SECOND))
    outputs = make_decisions().decide(alert)
    record = record_of(outputs)
    [trigger] = of_type(outputs, WorkflowTrigger)
    episode = episode_of(alert.event_time)
    assert episode == "20261001T130030Z"
    assert trigger.trigger_id == trigger_id(TENANT, "dunning", ACCOUNT, episode)
    assert record.trigger_id == trigger.trigger_id
    assert (trigger.decision_id, trigger.alert_id, trigger.episode) == (
        record.decision_id, alert.alert_id, episode)
    assert (trigger.action, trigger.channel, trigger.workflow_key) == (
        WorkflowAction.START_WORKFLOW, "email", "dunning")
    assert trigger.active_until == alert.event_time + timedelta(days=1)
    assert trigger.reasons == alert.reasons


# --- 7. early exits ----------------------------------------------------------------------------


def started(decisions: AccountDecisions, alert: Alert) -> WorkflowTrigger:
    [trigger] = of_type(decisions.decide(alert), WorkflowTrigger)
    return trigger


def test_a_recovery_ends_a_workflow_that_exits_on_it() -> None:
    decisions = make_decisions()
    trigger = started(decisions, make_alert(rule="payment_failed"))
    paid = make_change(kind=ChangeKind.PAYMENT_SUCCEEDED, event_time=at(HOUR),
                       source_id="evt-paid")
    assert decisions.observe_change(paid) == [WorkflowSignal.make(
        trigger.trigger_id, TENANT, ACCOUNT, "dunning", trigger.episode, SignalKind.RECOVERED,
        "payment_succeeded", "evt-paid", at(HOUR))]
    # ended: a cancellation now has nothing to stop
    assert decisions.observe_change(
        make_change(kind=ChangeKind.CANCELLED, event_time=at(2 * HOUR))) == []


def test_a_recovery_leaves_open_a_workflow_that_does_not_exit_on_it() -> None:
    decisions = make_decisions()
    trigger = started(decisions, make_alert(rule="cancel_intent"))  # win_back
    paid = make_change(kind=ChangeKind.PAYMENT_SUCCEEDED, event_time=at(HOUR))
    assert decisions.observe_change(paid) == []
    still = decisions.decide(make_alert(rule="login_drop", event_time=at(2 * HOUR)))
    assert record_of(still).reasons == (ReasonCode.NOT_ELIGIBLE_ACTIVE_WORKFLOW,)
    [cancelled] = decisions.observe_change(
        make_change(kind=ChangeKind.CANCELLED, event_time=at(3 * HOUR)))
    assert isinstance(cancelled, WorkflowSignal)
    assert cancelled.trigger_id == trigger.trigger_id


def test_a_held_out_episode_ends_without_a_signal() -> None:
    decisions = make_decisions()  # risk_high: holdout on csm_outreach (exits on everything)
    decisions.decide(make_alert(rule="risk_high"))
    paid = make_change(kind=ChangeKind.PAYMENT_SUCCEEDED, event_time=at(2 * HOUR))
    assert decisions.observe_change(paid) == []
    # ended: past the 1h cooldown and inside the 1d active span, it holds out anew
    again = decisions.decide(make_alert(rule="risk_high", event_time=at(3 * HOUR)))
    assert record_of(again).reasons == (ReasonCode.HOLDOUT,)


@pytest.mark.parametrize(
    ("change", "signal"),
    [
        pytest.param(make_change(kind=ChangeKind.CANCELLED, event_time=at(HOUR)),
                     SignalKind.CANCELLED, id="cancelled"),
        pytest.param(opt(False, HOUR), SignalKind.OPTED_OUT, id="opted-out"),
    ],
)
def test_cancelling_or_opting_out_ends_every_open_workflow(change: AccountChange,
                                                           signal: SignalKind) -> None:
    decisions = make_decisions()
    dunning = started(decisions, make_alert(rule="payment_failed"))
    win_back = started(decisions, make_alert(rule="cancel_intent", event_time=at(SECOND)))
    signals = decisions.observe_change(change)
    assert {(s.trigger_id, s.workflow_key, s.signal, s.cause) for s in
            of_type(signals, WorkflowSignal)} == {
        (dunning.trigger_id, "dunning", signal, str(change.kind)),
        (win_back.trigger_id, "win_back", signal, str(change.kind))}
    assert len(signals) == 2


def test_an_opt_in_ends_nothing() -> None:
    decisions = make_decisions()
    started(decisions, make_alert(rule="payment_failed"))
    assert decisions.observe_change(opt(True, HOUR)) == []


def test_a_late_older_opt_out_ends_nothing() -> None:
    decisions = make_decisions()
    decisions.observe_change(opt(True, -HOUR))
    started(decisions, make_alert(rule="payment_failed"))
    assert decisions.observe_change(opt(False, -2 * HOUR)) == []


# --- 8. the risk context -----------------------------------------------------------------------


def test_a_decisive_alert_carried_by_its_score_is_decided_with_that_scores_tier() -> None:
    decisions = make_decisions()
    alert = make_alert(rule="payment_failed")
    outputs = decisions.observe_score(make_score(score_id="score-7", risk=0.9,
                                                 trigger_alert=alert))
    record = record_of(outputs)
    [trigger] = of_type(outputs, WorkflowTrigger)
    assert (record.alert_id, record.tier, record.score_id, record.risk) == (
        alert.alert_id, "high", "score-7", 0.9)
    assert (record.rule, trigger.action) == ("escalate-high-risk-payment", WorkflowAction.ESCALATE)
    assert (trigger.tier, trigger.score_id, trigger.risk) == ("high", "score-7", 0.9)


def test_the_same_alert_without_a_score_is_decided_without_a_tier() -> None:
    record = record_of(make_decisions().decide(make_alert(rule="payment_failed")))
    assert (record.tier, record.score_id, record.risk, record.rule) == (
        None, None, None, "dunning")


def test_a_score_without_an_alert_decides_nothing() -> None:
    assert make_decisions().observe_score(make_score()) == []


@pytest.mark.parametrize(
    ("after", "tier", "rule"),
    [
        pytest.param(7 * DAY - SECOND, "high", "escalate-high-risk-payment",
                     id="just-before-the-score-expires"),
        pytest.param(7 * DAY, None, "dunning", id="once-expired-no-tier-and-no-features"),
    ],
)
def test_an_expired_score_leaves_no_tier(after: float, tier: str | None, rule: str) -> None:
    decisions = make_decisions()
    decisions.observe_score(make_score())  # expires at T0 + 7d
    record = record_of(decisions.decide(make_alert(event_time=at(after))))
    assert (record.tier, record.rule) == (tier, rule)
    assert (record.score_id is None) is (tier is None)


def test_features_come_from_the_latest_score_in_definition_order() -> None:
    decisions = make_decisions()
    decisions.observe_score(make_score(features=(3.0, 30.0)))  # seats 3: not >= 10
    record = record_of(decisions.decide(make_alert()))
    assert (record.tier, record.rule) == ("high", "dunning")


def test_a_shadow_score_changes_nothing() -> None:
    decisions = make_decisions()
    alert = make_alert(rule="payment_failed")
    assert decisions.observe_score(make_score(shadow=True, trigger_alert=alert)) == []
    record = record_of(decisions.decide(alert))
    assert (record.tier, record.rule) == (None, "dunning")


def test_the_plan_from_a_billing_change_is_matched() -> None:
    text = POLICY.replace("  - name: escalate-high-risk-payment\n",
                          "  - name: enterprise\n    when: {trigger: [payment_failed], "
                          "plan: [enterprise]}\n    decide: escalate\n"
                          "    workflow: csm_outreach\n"
                          "  - name: escalate-high-risk-payment\n")
    decisions = make_decisions(text)
    decisions.observe_change(make_change(kind=ChangeKind.PLAN, plan="enterprise",
                                         event_time=at(-DAY)))
    assert record_of(decisions.decide(make_alert())).rule == "enterprise"


def test_the_plan_from_a_traits_event_is_matched() -> None:
    """A CDP's identify or group call (account.traits_changed) names the plan too."""
    from detectors.lifecycle import detect_change
    from schemas.event import TRAITS_EVENT_TYPE
    from tests.builders import make_event

    text = POLICY.replace("  - name: escalate-high-risk-payment\n",
                          "  - name: enterprise\n    when: {trigger: [payment_failed], "
                          "plan: [enterprise]}\n    decide: escalate\n"
                          "    workflow: csm_outreach\n"
                          "  - name: escalate-high-risk-payment\n")
    decisions = make_decisions(text)
    for plan, rule in [("pro", "dunning"), ("enterprise", "enterprise")]:
        change = detect_change(make_event(
            event_id=f"traits-{plan}", event_type=TRAITS_EVENT_TYPE, event_time=at(-DAY),
            tenant_id=TENANT, account_id=ACCOUNT, attributes={"plan": plan, "mrr": 990.0},
        ))
        assert change is not None
        decisions.observe_change(change)
        alert = make_alert(trigger_event_id=f"evt-{plan}")
        assert record_of(decisions.decide(alert)).rule == rule


# --- 9. bounded state --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "forgettable"),
    [
        pytest.param(7 * DAY - SECOND, False, id="inside-the-email-cap-window"),
        pytest.param(7 * DAY, True, id="every-window-passed"),
    ],
)
def test_state_is_forgettable_once_every_window_has_passed(after: float,
                                                           forgettable: bool) -> None:
    decisions = make_decisions()  # dunning: active 1d, cooldown 3d; email: 7d window
    decisions.decide(make_alert(rule="payment_failed"))
    decisions.observe_change(make_change(kind=ChangeKind.PLAN, plan="pro", event_time=at(after)))
    assert decisions.forgettable() is forgettable


def test_an_open_workflow_is_not_forgettable() -> None:
    decisions = make_decisions()
    decisions.decide(make_alert(rule="payment_failed"))
    assert decisions.forgettable() is False


def test_a_state_that_saw_only_a_shadow_score_is_forgettable() -> None:
    decisions = make_decisions()
    assert decisions.observe_score(make_score(shadow=True)) == []
    assert decisions.forgettable() is True


def test_an_ignored_alert_leaves_nothing_to_remember() -> None:
    decisions = make_decisions()
    decisions.decide(make_alert(rule="seat_drop"))
    assert decisions.forgettable() is True


@pytest.mark.parametrize(
    "before",
    [
        pytest.param(make_score(score_time=at(-DAY)), id="a-score-still-valid"),
        pytest.param(make_change(kind=ChangeKind.CANCELLED, event_time=at(-DAY)),
                     id="a-cancellation"),
        pytest.param(opt(False, -DAY), id="an-opt-out"),
    ],
)
def test_what_is_kept_until_the_idle_ttl(before: RiskScore | AccountChange) -> None:
    decisions = make_decisions()
    feed(decisions, before)
    decisions.observe_change(make_change(kind=ChangeKind.PLAN, plan="pro", event_time=T0))
    assert decisions.forgettable() is False


def test_contacts_on_a_channel_the_policy_no_longer_caps_are_forgotten() -> None:
    decisions = make_decisions()
    decisions.decide(make_alert(rule="payment_failed"))
    assert set(decisions.contacts) == {"email"}
    renamed = POLICY.replace("email:", "mail:").replace("channel: email", "channel: mail")
    restored = make_decisions(renamed, snapshot=pickle.loads(pickle.dumps(decisions.snapshot())))
    restored.observe_change(make_change(kind=ChangeKind.PLAN, plan="pro", event_time=at(HOUR)))
    assert restored.contacts == {}


# --- 10. a reloading policy --------------------------------------------------------------------


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_decisions_follow_a_reloaded_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    clock = Clock()
    holder = PolicyHolder(path, VOCABULARY, check_seconds=10, clock=clock)
    decisions = AccountDecisions(DecisionEngine(holder, FEATURES))
    before = record_of(decisions.decide(make_alert(rule="seat_drop")))
    path.write_text(POLICY.replace('"d.1"', '"d.2"'), encoding="utf-8")
    os.utime(path, (1_700_000_100, 1_700_000_100))
    clock.now += 10
    after = record_of(decisions.decide(make_alert(rule="seat_drop", event_time=at(HOUR))))
    assert (before.policy_version, after.policy_version) == ("d.1", "d.2")


# --- out-of-order lifecycle changes and the consent directory (review findings) -----------------


def test_a_late_recovery_does_not_end_an_episode_that_opened_after_it() -> None:
    decisions = make_decisions()
    [_, trigger] = feed(decisions, make_alert(event_time=at(3 * DAY)))
    assert isinstance(trigger, WorkflowTrigger)
    # a payment_succeeded dated day 1 arrives late: the day-3 dunning stays open
    assert feed(decisions, make_change(event_time=at(1 * DAY))) == []
    assert "dunning" in decisions.open
    [signal] = feed(decisions, make_change(event_time=at(3 * DAY + HOUR)))
    assert isinstance(signal, WorkflowSignal) and signal.trigger_id == trigger.trigger_id


def test_a_late_cancellation_before_a_reactivation_leaves_the_account_eligible() -> None:
    decisions = make_decisions()
    feed(decisions, make_change(kind=ChangeKind.REACTIVATED, event_time=at(2 * DAY)))
    feed(decisions, make_change(kind=ChangeKind.CANCELLED, event_time=at(1 * DAY)))
    assert not decisions.cancelled
    record = record_of(feed(decisions, make_alert(event_time=at(3 * DAY))))
    assert record.decision is Decision.START_WORKFLOW


def test_a_later_opt_in_in_the_directory_does_not_lift_the_opt_out_in_force() -> None:
    # Opted out on day 5 (event); the directory already holds an opt-in of day 10
    # (a replay meeting newer data): a day-7 trigger still honours the opt-out.
    decisions = make_decisions(consent=lambda _t, _a: (True, at(10 * DAY).timestamp()))
    feed(decisions, opt(False, 5 * DAY))
    record = record_of(feed(decisions, make_alert(event_time=at(7 * DAY))))
    assert record.reasons == (ReasonCode.NOT_ELIGIBLE_DO_NOT_CONTACT,)
    # ... and from day 10 on the opt-in counts.
    record = record_of(feed(decisions, make_alert(event_time=at(11 * DAY))))
    assert record.decision is Decision.START_WORKFLOW


def test_the_newest_word_blocks_when_it_is_an_opt_out_whatever_the_trigger_time() -> None:
    decisions = make_decisions(consent=lambda _t, _a: (False, at(10 * DAY).timestamp()))
    outputs = feed(decisions, make_alert(event_time=at(7 * DAY)))
    assert record_of(outputs).reasons == (ReasonCode.NOT_ELIGIBLE_DO_NOT_CONTACT,)


def test_a_directory_opt_out_ends_open_workflows() -> None:
    directory: dict[str, tuple[bool, float]] = {}
    decisions = make_decisions(consent=lambda _t, a: directory.get(a))
    [_, trigger] = feed(decisions, make_alert(event_time=at(0)))
    directory[ACCOUNT] = (False, at(HOUR).timestamp())  # a CRM writes do-not-contact
    outputs = feed(decisions, make_score(score_time=at(2 * HOUR)))
    [signal] = of_type(outputs, WorkflowSignal)
    assert (signal.trigger_id, signal.signal, signal.cause_id) == (
        trigger.trigger_id, SignalKind.OPTED_OUT, "contact_preferences")
    assert decisions.open == {}
    assert feed(decisions, make_score(score_id="s2", score_time=at(3 * HOUR))) == []  # once


def test_a_late_alert_counts_only_contacts_up_to_its_own_time() -> None:
    decisions = make_decisions()  # email: 2 per 7 days
    decisions.contacts["email"] = [at(5 * DAY).timestamp(), at(5 * DAY + HOUR).timestamp()]
    # a late payment failure dated day 1: the two later contacts are outside its
    # window (the ledger query over (day 1 - 7d, day 1] would not count them either)
    record = record_of(feed(decisions, make_alert(event_time=at(1 * DAY))))
    assert record.decision is Decision.START_WORKFLOW
    # the same contacts do count for an alert after them
    record = record_of(feed(decisions, make_alert(rule="login_drop", tier=AlertTier.USAGE_SIGNAL,
                                                  event_time=at(5 * DAY + 2 * HOUR))))
    assert record.reasons == (ReasonCode.CAP_HIT,)


def test_a_trigger_is_judged_with_the_score_in_force_at_its_time() -> None:
    decisions = make_decisions()
    feed(decisions, make_score(score_id="old", tier=RiskTier.LOW, score_time=at(0)))
    feed(decisions, make_score(score_id="new", tier=RiskTier.HIGH, score_time=at(2 * DAY)))
    record = record_of(feed(decisions, make_alert(rule="seat_drop", event_time=at(DAY))))
    assert (record.score_id, record.tier) == ("old", "low")


def test_an_episode_ended_later_still_counts_as_active_for_an_earlier_trigger() -> None:
    decisions = make_decisions()
    feed(decisions, make_alert(event_time=at(0)))  # dunning opens
    feed(decisions, make_change(event_time=at(12 * HOUR)))  # payment succeeded: it ends
    # a trigger dated 6 h (arriving late) meets the episode as it was then
    record = record_of(feed(decisions, make_alert(event_time=at(6 * HOUR),
                                                  trigger_event_id="late")))
    assert record.reasons == (ReasonCode.NOT_ELIGIBLE_ACTIVE_WORKFLOW,)


def test_a_cancellation_seen_first_ends_the_episode_an_earlier_trigger_opens() -> None:
    # Event order: a trigger at day 1 opens win_back, a cancellation 12 h later ends
    # it. Arrival order reversed must give the same trigger and signal.
    cancellation = make_change(kind=ChangeKind.CANCELLED, event_time=at(DAY + 12 * HOUR))
    in_order = make_decisions()
    expected = feed(in_order, make_alert(rule="login_drop", event_time=at(DAY)))
    expected += feed(in_order, cancellation)
    reversed_order = make_decisions()
    got = feed(reversed_order, cancellation)
    got += feed(reversed_order, make_alert(rule="login_drop", event_time=at(DAY)))
    assert sorted(map(repr, of_type(got, WorkflowTrigger))) == sorted(
        map(repr, of_type(expected, WorkflowTrigger)))
    [signal] = of_type(got, WorkflowSignal)
    assert signal == of_type(expected, WorkflowSignal)[0]
    assert signal.signal is SignalKind.CANCELLED


# --- alert statuses (the API's alert lifecycle) ------------------------------------------------

HUMANS_FIRST = POLICY.replace("rules:\n", """\
rules:
  - name: a-person-is-on-it
    when: {alert_status: [acknowledged, snoozed]}
    decide: ignore
""")


@pytest.mark.parametrize(("statuses", "reason"), [
    (frozenset(), ReasonCode.RULE_MATCHED),
    (frozenset({"resolved"}), ReasonCode.RULE_MATCHED),
    (frozenset({"acknowledged"}), ReasonCode.HUMAN_ACKNOWLEDGED),
    (frozenset({"snoozed", "expired"}), ReasonCode.HUMAN_ACKNOWLEDGED),
], ids=["none", "resolved", "acknowledged", "snoozed"])
def test_an_alert_a_person_acknowledged_holds_automation_back(
    statuses: frozenset[str], reason: ReasonCode,
) -> None:
    asked: list[tuple[str, str]] = []

    def lookup(tenant: str, account: str) -> frozenset[str]:
        asked.append((tenant, account))
        return statuses

    engine = DecisionEngine(make_policy(HUMANS_FIRST), FEATURES, alert_statuses=lookup)
    record = record_of(feed(AccountDecisions(engine), make_alert(rule="payment_failed")))
    assert record.reasons == (reason,)
    assert asked == [(TENANT, ACCOUNT)]
    if reason is ReasonCode.HUMAN_ACKNOWLEDGED:
        assert record.decision is Decision.IGNORE and record.rule == "a-person-is-on-it"
        assert "acknowledged" in record.detail or "snoozed" in record.detail
    else:
        assert record.decision is Decision.START_WORKFLOW


def test_a_policy_names_known_alert_statuses_only() -> None:
    rule = make_policy(HUMANS_FIRST).rules[0]
    assert rule.when.alert_statuses == frozenset({"acknowledged", "snoozed"})
    with pytest.raises(PolicyError, match=r"rules\[0\].when.alert_status\[0\]: unknown alert"
                                          r" status 'open'"):
        make_policy(HUMANS_FIRST.replace("[acknowledged, snoozed]", "[open]"))
