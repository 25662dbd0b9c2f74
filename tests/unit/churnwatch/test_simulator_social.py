"""The social app simulator (``simulate --product social``): determinism, validity
against event v1, its own taxonomy, churn at renewals by level and mix of activity, the
ground truth, and the SaaS stream left exactly as it was.

Pure: no broker (the pipeline over a social history is in test_social_example.py).
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from churnwatch.cli import main
from churnwatch.simulator import SimulatorError, simulate, write_jsonl, write_truth
from churnwatch.simulator_social import (
    PASSIVE_ACTIONS,
    SOCIAL_ACTIONS,
    RenewalOutcome,
    RenewalTruth,
    SocialSimulation,
    cancel_probability,
    churn_rate,
    simulate_social,
)
from schemas.event import Event, EventLimits, Rejection, parse_event, validate_document

ALL_REASONS = {"not_json", "schema", "too_large", "future_time", "bad_time"}
SOCIAL_TYPES = {
    "app.opened", *PASSIVE_ACTIONS, *SOCIAL_ACTIONS,
    "billing.payment_succeeded", "billing.payment_failed",
    "subscription.started", "subscription.renewed", "subscription.cancelled",
}
APP_TYPES = {"app.opened", *PASSIVE_ACTIONS, *SOCIAL_ACTIONS}
LOST = (RenewalOutcome.CANCELLED, RenewalOutcome.PAYMENT_FAILED)


@pytest.fixture(scope="module")
def small() -> SocialSimulation:
    return simulate_social(accounts=120, days=30, seed=3)


@pytest.fixture(scope="module")
def long_run() -> SocialSimulation:
    """Three months of 800 subscribers: about 2,400 renewals judged."""
    return simulate_social(accounts=800, days=90, seed=11)


def by_account(simulation: SocialSimulation) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for document in simulation.valid_events():
        grouped[document["account_id"]].append(document)
    return grouped


def utc(document: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(document["event_time"]).astimezone(UTC)


def social_share(renewal: RenewalTruth) -> float:
    actions = renewal.social_actions_28d + renewal.passive_actions_28d
    return renewal.social_actions_28d / actions if actions else 0.0


# --- determinism, and the SaaS product untouched ----------------------------------------


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    first = simulate_social(accounts=40, days=20, seed=5)
    second = simulate_social(accounts=40, days=20, seed=5)
    assert [m.value for m in first.messages] == [m.value for m in second.messages]
    assert first.messages == second.messages and first.renewals == second.renewals
    write_truth(first, tmp_path / "one.json")
    write_truth(second, tmp_path / "two.json")
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()


def test_other_seed_gives_other_stream() -> None:
    first = simulate_social(accounts=40, days=20, seed=5)
    other = simulate_social(accounts=40, days=20, seed=6)
    assert [m.value for m in first.messages] != [m.value for m in other.messages]


def test_the_saas_stream_is_byte_for_byte_what_it_was() -> None:
    # The SaaS simulator now shares its stream assembly with the social one; the demo,
    # benchmarks and golden tests rely on its exact bytes (digest taken before the change).
    digest = hashlib.sha256()
    for m in simulate().messages:
        digest.update(m.key + b"\0" + m.value + b"\0" + m.kind.encode() + b"\0"
                      + str(m.expected_reason).encode() + b"\n")
    assert digest.hexdigest() == (
        "4e1efcadd2bfa6a6d38b3472eb8c48ad636717c0ac27a557127e3fe5ac5c8b23"
    )


# --- every message against the real validator -------------------------------------------


def test_valid_and_duplicate_messages_are_events(small: SocialSimulation) -> None:
    limits = EventLimits()
    after_window = small.start + timedelta(days=small.days, hours=1)
    checked = 0
    for message in small.messages:
        if message.kind == "malformed":
            continue
        result = validate_document(orjson.loads(message.value), None, limits)
        assert isinstance(result, Event), (result, message.value[:300])
        assert isinstance(parse_event(message.value, after_window, limits), Event)
        assert message.key == result.account_id.encode()
        checked += 1
    counts = small.counts()
    assert checked == counts["valid"] + counts["duplicate"]
    assert 0.005 < counts["duplicate"] / counts["valid"] < 0.015


def test_malformed_messages_are_rejected_for_the_labelled_reason(
    small: SocialSimulation,
) -> None:
    reasons: Counter[str | None] = Counter()
    for message in small.messages:
        if message.kind != "malformed":
            continue
        result = parse_event(message.value, now=datetime.now(UTC), limits=EventLimits())
        assert isinstance(result, Rejection), message.value[:300]
        assert result.reason == message.expected_reason, (result, message.value[:300])
        reasons[message.expected_reason] += 1
    assert set(reasons) == ALL_REASONS
    assert small.rejection_counts() == {str(r): n for r, n in sorted(reasons.items())}


def test_duplicates_repeat_an_earlier_valid_message(small: SocialSimulation) -> None:
    seen = set()
    duplicates = 0
    for message in small.messages:
        if message.kind == "valid":
            seen.add(message.value)
        elif message.kind == "duplicate":
            assert message.value in seen
            duplicates += 1
    assert duplicates > 0


def test_event_ids_are_unique_and_events_fall_in_the_window(small: SocialSimulation) -> None:
    events = small.valid_events()
    assert len({d["event_id"] for d in events}) == len(events)
    end = small.start + timedelta(days=small.days)
    assert all(small.start <= utc(d) < end for d in events)


# --- the product: its own taxonomy, one person per account -----------------------------


def test_its_own_event_taxonomy(small: SocialSimulation) -> None:
    types = Counter(d["event_type"] for d in small.valid_events())
    assert set(types) <= SOCIAL_TYPES
    assert set(types) >= APP_TYPES  # every kind of use appears
    assert not {"app.login", "app.feature_used", "app.seat_added"} & set(types)
    # Passive use outweighs social use, as in any feed-based app.
    passive = sum(types[t] for t in PASSIVE_ACTIONS)
    assert passive > sum(types[t] for t in SOCIAL_ACTIONS) > 0


def test_one_person_per_account_and_none_on_billing(small: SocialSimulation) -> None:
    for account, events in by_account(small).items():
        users = {d["user_id"] for d in events if d["event_type"] in APP_TYPES}
        assert len(users) <= 1, account
        assert all(d["user_id"] is None for d in events if d["event_type"] not in APP_TYPES)


def test_subscribers_live_in_many_time_zones(small: SocialSimulation) -> None:
    offsets = {datetime.fromisoformat(d["event_time"]).utcoffset()
               for d in small.valid_events()}
    assert len(offsets) >= 5


def test_new_subscribers_start_with_their_subscription(long_run: SocialSimulation) -> None:
    events = by_account(long_run)
    newcomers = [a for a in long_run.accounts if a.signed_up_at is not None]
    assert 0.08 * len(long_run.accounts) < len(newcomers) < 0.25 * len(long_run.accounts)
    for account in newcomers:
        first = events[account.account_id][0]
        assert first["event_type"] in ("billing.payment_succeeded", "subscription.started")
        started = [d for d in events[account.account_id]
                   if d["event_type"] == "subscription.started"]
        assert len(started) == 1 and started[0]["attributes"]["period"] == 1
        assert account.signed_up_at is not None
        assert abs(utc(started[0]) - account.signed_up_at) <= timedelta(days=1)


def test_renewals_are_monthly_and_count_the_months(long_run: SocialSimulation) -> None:
    for events in list(by_account(long_run).values())[:200]:
        renewed = [d for d in events
                   if d["event_type"] in ("subscription.started", "subscription.renewed")]
        periods = [d["attributes"]["period"] for d in renewed]
        assert periods == sorted(periods)
        assert all(b - a == 1 for a, b in pairwise(periods))
        for d in renewed:
            ahead = datetime.fromisoformat(d["attributes"]["renews_at"]) - utc(d)
            assert timedelta(days=26) < ahead < timedelta(days=32)


# --- churn at renewals, by level and mix of activity -----------------------------------


def test_monthly_churn_rate_is_low_and_realistic(long_run: SocialSimulation) -> None:
    outcomes = Counter(r.outcome for r in long_run.renewals)
    assert len(long_run.renewals) > 1_500
    assert 0.015 <= churn_rate(long_run) <= 0.04
    assert outcomes[RenewalOutcome.CANCELLED] > outcomes[RenewalOutcome.PAYMENT_FAILED] > 0
    assert outcomes[RenewalOutcome.RECOVERED] > 0


def test_churners_had_less_activity_at_their_renewal(long_run: SocialSimulation) -> None:
    cancelled = [r for r in long_run.renewals if r.outcome is RenewalOutcome.CANCELLED]
    renewed = [r for r in long_run.renewals if r.outcome is RenewalOutcome.RENEWED]
    assert statistics.median(r.sessions_28d for r in cancelled) < 0.6 * statistics.median(
        r.sessions_28d for r in renewed
    )
    assert statistics.median(map(social_share, cancelled)) < 0.6 * statistics.median(
        map(social_share, renewed)
    )


def test_level_and_mix_each_move_the_churn_rate(long_run: SocialSimulation) -> None:
    def rate(renewals: list[RenewalTruth]) -> float:
        return sum(r.outcome is RenewalOutcome.CANCELLED for r in renewals) / len(renewals)

    ordered = sorted(long_run.renewals, key=lambda r: r.sessions_28d)
    quarter = len(ordered) // 4
    assert rate(ordered[:quarter]) > 3 * rate(ordered[-quarter:])
    # The mix, among subscribers who all use the app (level and mix are drawn apart).
    busy = sorted((r for r in long_run.renewals if r.sessions_28d >= 8), key=social_share)
    quarter = len(busy) // 4
    assert rate(busy[:quarter]) > 2 * rate(busy[-quarter:])


def test_cancel_probability_falls_with_level_and_social_mix() -> None:
    base = cancel_probability(10, 10, 90, period=6, friends=3)
    assert cancel_probability(30, 30, 270, period=6, friends=3) < base  # more use, same mix
    assert cancel_probability(10, 50, 50, period=6, friends=3) < base  # same use, more social
    assert cancel_probability(0, 0, 0, period=6, friends=3) > 3 * base  # dormant
    assert cancel_probability(10, 10, 90, period=1, friends=3) > base  # first renewal
    assert cancel_probability(10, 10, 90, period=6, friends=0) > base  # no friends
    # Nothing in it looks at a decline: the same month gives the same chance.
    assert cancel_probability(10, 10, 90, 6, 3) == base


def test_the_truth_matches_the_stream(long_run: SocialSimulation) -> None:
    """Each renewal judged on a full month inside the window counted exactly the sessions
    the stream shows in the 28 local days before it; cancelled accounts end with their
    cancellation and nothing after."""
    events = by_account(long_run)
    offsets = {a: datetime.fromisoformat(e[0]["event_time"]).utcoffset()
               for a, e in events.items()}
    checked = 0
    for renewal in long_run.renewals:
        if renewal.at < long_run.start + timedelta(days=29):
            continue
        offset = offsets[renewal.account_id]
        assert offset is not None
        renewal_day = (renewal.at + offset).date()
        first_day = renewal_day - timedelta(days=28)
        sessions = sum(
            1 for d in events[renewal.account_id]
            if d["event_type"] == "app.opened"
            and first_day <= date.fromisoformat(d["event_time"][:10]) < renewal_day
        )
        assert sessions == renewal.sessions_28d, renewal
        checked += 1
    assert checked > 1_000

    for account in long_run.accounts:
        mine = events.get(account.account_id, [])
        cancels = [d for d in mine if d["event_type"] == "subscription.cancelled"]
        if account.churned_at is None:
            assert not cancels
            continue
        assert len(cancels) == 1
        assert utc(cancels[0]) == account.churned_at
        assert max(utc(d) for d in mine) == account.churned_at
        assert cancels[0]["attributes"]["reason_code"] == account.churn_reason


def test_involuntary_churn_follows_failed_payments(long_run: SocialSimulation) -> None:
    events = by_account(long_run)
    involuntary = [a for a in long_run.accounts if a.churn_reason == "payment_failed"]
    assert involuntary
    for account in involuntary:
        failures = [d for d in events[account.account_id]
                    if d["event_type"] == "billing.payment_failed"]
        assert len(failures) == 3  # the failed charge and its two retries
        assert account.churned_at is not None
        assert account.churned_at - utc(failures[0]) >= timedelta(days=6)


def test_write_truth(tmp_path: Path, small: SocialSimulation) -> None:
    write_truth(small, tmp_path / "truth.json")
    truth = orjson.loads((tmp_path / "truth.json").read_bytes())
    assert truth["product"] == "social" and truth["seed"] == 3 and truth["days"] == 30
    assert truth["counts"] == small.counts()
    assert len(truth["accounts"]) == 120
    assert {a["persona"] for a in truth["accounts"]} == {"creator", "connector", "viewer"}
    assert len(truth["renewals"]) == len(small.renewals) > 0
    churned = {a["account_id"] for a in truth["accounts"] if a["churned_at"]}
    lost = {r["account_id"] for r in truth["renewals"] if r["outcome"] in LOST}
    assert churned <= lost  # dunning may end after the window


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SimulatorError, match="accounts must be at least 1"):
        simulate_social(accounts=0)
    with pytest.raises(SimulatorError, match="tenant id"):
        simulate_social(tenants=("a b",))


# --- the command ----------------------------------------------------------------------


def test_simulate_command_writes_the_social_product(tmp_path: Path) -> None:
    out, truth = tmp_path / "social.jsonl", tmp_path / "truth.json"
    argv = ["simulate", "--product", "social", "--accounts", "30", "--days", "12",
            "--seed", "4", "--out", str(out), "--truth", str(truth)]
    assert main(argv) == 0
    expected = tmp_path / "expected.jsonl"
    write_jsonl(simulate_social(accounts=30, days=12, seed=4), expected)
    assert out.read_bytes() == expected.read_bytes()
    assert orjson.loads(truth.read_bytes())["product"] == "social"


def test_simulate_command_defaults_to_the_saas_product(tmp_path: Path) -> None:
    out = tmp_path / "saas.jsonl"
    assert main(["simulate", "--accounts", "10", "--days", "5", "--out", str(out)]) == 0
    expected = tmp_path / "expected.jsonl"
    write_jsonl(simulate(accounts=10, days=5), expected)
    assert out.read_bytes() == expected.read_bytes()


def test_lifetimes_are_for_the_saas_product_only(tmp_path: Path) -> None:
    argv = ["simulate", "--product", "social", "--mean-lifetime-days", "10",
            "--out", str(tmp_path / "x.jsonl")]
    assert main(argv) == 2


def test_simulate_starts_where_told_and_warns_of_a_history_that_reaches_the_future(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "may.jsonl"
    argv = ["simulate", "--accounts", "10", "--days", "5", "--start", "2026-05-01",
            "--out", str(out)]
    assert main(argv) == 0
    expected = tmp_path / "expected.jsonl"
    write_jsonl(simulate(accounts=10, days=5, start=datetime(2026, 5, 1, tzinfo=UTC)), expected)
    assert out.read_bytes() == expected.read_bytes()
    assert "warning" not in capsys.readouterr().err
    later = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    assert main(["simulate", "--product", "social", "--accounts", "10", "--days", "5",
                 "--start", later, "--out", str(tmp_path / "future.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "warning: the history ends 8 day(s) past now" in err and "--start" in err
