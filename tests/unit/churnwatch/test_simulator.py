"""The event-stream simulator: determinism, validity against event v1, ground truth.

Pure: no broker. ``produce`` is only exercised here on its failure path (nothing
listening), the happy path is in the integration tests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from churnwatch.errors import ChurnwatchError
from churnwatch.simulator import (
    AccountTruth,
    Simulation,
    SimulatorError,
    UndeliveredMessagesError,
    produce,
    simulate,
    write_jsonl,
    write_truth,
)
from schemas.event import Event, EventLimits, Rejection, parse_event, validate_document

ALL_REASONS = {"not_json", "schema", "too_large", "future_time", "bad_time"}


@pytest.fixture(scope="module")
def default_run() -> Simulation:
    return simulate()


def parsed_time(document: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(document["event_time"]).astimezone(UTC)


def events_by_account(simulation: Simulation) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for document in simulation.valid_events():
        grouped[document["account_id"]].append(document)
    return grouped


# --- determinism ----------------------------------------------------------------------


def test_same_arguments_give_identical_bytes() -> None:
    first = simulate(accounts=30, days=14, seed=3)
    second = simulate(accounts=30, days=14, seed=3)
    assert first.messages == second.messages
    assert first.accounts == second.accounts
    assert [m.value for m in first.messages] == [m.value for m in second.messages]


def test_other_seed_gives_other_stream() -> None:
    first = simulate(accounts=30, days=14, seed=3)
    other = simulate(accounts=30, days=14, seed=4)
    assert [m.value for m in first.messages] != [m.value for m in other.messages]


def test_default_run_is_the_documented_one(default_run: Simulation) -> None:
    assert default_run.seed == 7
    assert default_run.days == 30
    assert default_run.start == datetime(2026, 9, 1, tzinfo=UTC)
    assert len(default_run.accounts) == 200
    assert 20_000 < len(default_run.messages) < 80_000


# --- every message against the validator ----------------------------------------------


def test_valid_and_duplicate_messages_are_events(default_run: Simulation) -> None:
    limits = EventLimits()
    after_window = default_run.start + timedelta(days=default_run.days, hours=1)
    checked = 0
    for message in default_run.messages:
        if message.kind == "malformed":
            continue
        assert message.expected_reason is None
        result = validate_document(orjson.loads(message.value), None, limits)
        assert isinstance(result, Event), (result, message.value[:300])
        # And through the whole runtime path, size and future-time checks included.
        assert isinstance(parse_event(message.value, after_window, limits), Event)
        assert message.key == result.account_id.encode()
        checked += 1
    assert checked == default_run.counts()["valid"] + default_run.counts()["duplicate"]


def test_malformed_messages_are_rejected_for_the_labelled_reason(
    default_run: Simulation,
) -> None:
    now = datetime.now(UTC)
    reasons: Counter[str | None] = Counter()
    for message in default_run.messages:
        if message.kind != "malformed":
            continue
        result = parse_event(message.value, now=now, limits=EventLimits())
        assert isinstance(result, Rejection), message.value[:300]
        assert result.reason == message.expected_reason, (result, message.value[:300])
        reasons[message.expected_reason] += 1
    assert set(reasons) == ALL_REASONS


def test_invalid_utf8_is_among_the_malformed(default_run: Simulation) -> None:
    def is_utf8(value: bytes) -> bool:
        try:
            value.decode()
        except UnicodeDecodeError:
            return False
        return True

    assert any(
        m.kind == "malformed" and m.expected_reason == "not_json" and not is_utf8(m.value)
        for m in default_run.messages
    )


def test_no_value_contains_a_line_break(default_run: Simulation) -> None:
    assert not [m for m in default_run.messages if b"\n" in m.value or b"\r" in m.value]


def test_malformed_share_follows_the_rate(default_run: Simulation) -> None:
    counts = default_run.counts()
    share = counts["malformed"] / len(default_run.messages)
    assert 0.001 < share < 0.004


def test_every_malformed_kind_even_at_a_tiny_rate() -> None:
    simulation = simulate(accounts=20, days=10, malformed_rate=0.0001)
    reasons = {m.expected_reason for m in simulation.messages if m.kind == "malformed"}
    assert reasons == ALL_REASONS


def test_zero_rates_give_only_valid_messages() -> None:
    simulation = simulate(accounts=20, days=10, duplicate_rate=0.0, malformed_rate=0.0)
    counts = simulation.counts()
    assert counts["duplicate"] == 0
    assert counts["malformed"] == 0
    assert counts["valid"] == len(simulation.messages) > 0


# --- duplicates and order --------------------------------------------------------------


def test_duplicates_are_byte_copies_of_an_earlier_valid_message(
    default_run: Simulation,
) -> None:
    seen: dict[bytes, int] = {}
    for position, message in enumerate(default_run.messages):
        if message.kind == "valid":
            assert message.value not in seen, "a valid message must not repeat"
            seen[message.value] = position
        elif message.kind == "duplicate":
            assert message.value in seen
            assert position - seen[message.value] <= 60, "re-sent shortly after"
    counts = default_run.counts()
    assert 0.005 < counts["duplicate"] / counts["valid"] < 0.015


def test_event_ids_are_unique(default_run: Simulation) -> None:
    ids = [d["event_id"] for d in default_run.valid_events()]
    assert len(ids) == len(set(ids))


def test_stream_is_in_event_time_order_give_or_take_seconds(default_run: Simulation) -> None:
    newest = default_run.start
    late = 0
    for document in default_run.valid_events():
        moment = parsed_time(document)
        assert moment > newest - timedelta(seconds=10)
        late += moment < newest
        newest = max(newest, moment)
    assert late > 0, "a little disorder is part of the realism"


def test_events_fall_in_the_window(default_run: Simulation) -> None:
    end = default_run.start + timedelta(days=default_run.days)
    times = [parsed_time(d) for d in default_run.valid_events()]
    assert default_run.start <= min(times)
    assert max(times) < end


def test_tenant_offsets_are_exercised(default_run: Simulation) -> None:
    suffixes = {(d["tenant_id"], d["event_time"][-6:]) for d in default_run.valid_events()}
    assert suffixes == {("acme", "+01:00"), ("globex", "-05:00")}
    other = simulate(accounts=4, days=3, tenants=("initech",))
    assert all(d["event_time"].endswith("Z") for d in other.valid_events())


def test_user_id_only_on_product_and_support_events(default_run: Simulation) -> None:
    for document in default_run.valid_events():
        namespace = document["event_type"].split(".")[0]
        if namespace in ("billing", "subscription"):
            assert document["user_id"] is None
        else:
            assert document["user_id"].startswith("u-" + document["account_id"][5:])


# --- volume ------------------------------------------------------------------------------


def test_steady_accounts_make_six_to_twelve_events_a_day(default_run: Simulation) -> None:
    grouped = events_by_account(default_run)
    steady = [a for a in default_run.accounts if a.profile == "steady"]
    per_day = sum(len(grouped[a.account_id]) for a in steady) / len(steady) / default_run.days
    assert 6 <= per_day <= 12


def test_weekends_are_quieter(default_run: Simulation) -> None:
    per_day: Counter[tuple[bool, object]] = Counter()
    for document in default_run.valid_events():
        if document["event_type"] == "app.login":
            day = parsed_time(document).date()
            per_day[(day.weekday() >= 5, day)] += 1
    weekend = [n for (is_weekend, _), n in per_day.items() if is_weekend]
    weekday = [n for (is_weekend, _), n in per_day.items() if not is_weekend]
    assert sum(weekend) / len(weekend) < 0.5 * sum(weekday) / len(weekday)


def test_every_surviving_account_pays_monthly_or_fails(default_run: Simulation) -> None:
    # 30 days hold every billing day (1-28); a churned account may leave before its own.
    grouped = events_by_account(default_run)
    for truth in default_run.accounts:
        if truth.churned_at is not None:
            continue
        types = {d["event_type"] for d in grouped[truth.account_id]}
        assert types & {"billing.payment_succeeded", "billing.payment_failed"}, truth


# --- ground truth ------------------------------------------------------------------------


def test_profile_mix(default_run: Simulation) -> None:
    mix = Counter(a.profile for a in default_run.accounts)
    assert mix == {"steady": 150, "disengaging": 24, "involuntary": 16, "downgrader": 10}
    assert len({a.account_id for a in default_run.accounts}) == 200
    assert {a.tenant_id for a in default_run.accounts} == {"acme", "globex"}
    assert all(2 <= a.seats <= 50 for a in default_run.accounts)
    assert sorted(a.seats for a in default_run.accounts)[100] <= 12, "skewed to small teams"


def test_churned_accounts_end_with_their_cancellation(default_run: Simulation) -> None:
    grouped = events_by_account(default_run)
    churned = [a for a in default_run.accounts if a.churned_at is not None]
    assert len(churned) >= 30
    for truth in churned:
        events = grouped[truth.account_id]
        last_in_stream = events[-1]
        latest = max(events, key=parsed_time)
        assert last_in_stream is latest
        assert latest["event_type"] == "subscription.cancelled"
        assert parsed_time(latest) == truth.churned_at
        assert latest["attributes"] == {"reason_code": truth.churn_reason}
        assert sum(d["event_type"] == "subscription.cancelled" for d in events) == 1


def test_accounts_that_did_not_churn_were_not_cancelled(default_run: Simulation) -> None:
    grouped = events_by_account(default_run)
    for truth in default_run.accounts:
        if truth.churned_at is None:
            types = {d["event_type"] for d in grouped[truth.account_id]}
            assert "subscription.cancelled" not in types, truth


def test_steady_accounts_do_not_churn(default_run: Simulation) -> None:
    steady = [a for a in default_run.accounts if a.profile == "steady"]
    assert steady
    assert all(a.churned_at is None and a.churn_reason is None for a in steady)
    assert all(a.disengage_from is None for a in steady)


def test_steady_payment_failures_are_rare_and_recovered(default_run: Simulation) -> None:
    grouped = events_by_account(default_run)
    steady = [a for a in default_run.accounts if a.profile == "steady"]
    hiccups = 0
    for truth in steady:
        types = [d["event_type"] for d in grouped[truth.account_id]]
        if "billing.payment_failed" in types:
            hiccups += 1
            failed = types.index("billing.payment_failed")
            assert "billing.payment_succeeded" in types[failed:], truth
    assert 0 < hiccups <= 0.1 * len(steady)


def _logins(events: list[dict[str, Any]], since: datetime, until: datetime) -> int:
    return sum(
        1 for d in events if d["event_type"] == "app.login" and since <= parsed_time(d) < until
    )


def _check_disengaging(simulation: Simulation) -> int:
    grouped = events_by_account(simulation)
    week = timedelta(days=7)
    window_end = simulation.start + timedelta(days=simulation.days)
    disengaging = [a for a in simulation.accounts if a.profile == "disengaging"]
    for truth in disengaging:
        events = grouped[truth.account_id]
        end = truth.churned_at or window_end
        first = _logins(events, simulation.start, simulation.start + week)
        last = _logins(events, end - week, end)
        assert last < first, (truth, first, last)
        assert truth.disengage_from is not None
        assert truth.disengage_from < simulation.start + timedelta(days=simulation.days // 2)
        assert "app.seat_removed" in {d["event_type"] for d in events}
        if truth.churned_at is not None:
            intents = [d for d in events if d["event_type"] == "subscription.cancel_intent"]
            assert len(intents) == 1
            assert parsed_time(intents[0]) < truth.churned_at
            assert truth.churn_reason in {
                "too_expensive",
                "missing_features",
                "switched_competitor",
                "not_using",
            }
    return len(disengaging)


def test_disengaging_accounts_log_in_less_at_the_end(default_run: Simulation) -> None:
    assert _check_disengaging(default_run) == 24
    # Slipping starts in the first half and takes about two weeks, then the
    # cancellation follows within days: most, not all, land inside 30 days.
    churned = [a for a in default_run.accounts if a.profile == "disengaging" and a.churned_at]
    assert len(churned) >= 12


@pytest.mark.parametrize("seed", [1, 2, 99])
def test_disengaging_shape_holds_for_other_seeds(seed: int) -> None:
    assert _check_disengaging(simulate(accounts=100, days=30, seed=seed)) == 12


def test_involuntary_churn_follows_failed_payments(default_run: Simulation) -> None:
    grouped = events_by_account(default_run)
    involuntary = [a for a in default_run.accounts if a.profile == "involuntary"]
    assert involuntary
    for truth in involuntary:
        assert truth.churned_at is not None
        assert truth.churn_reason == "payment_failed"
        failures = [
            d for d in grouped[truth.account_id] if d["event_type"] == "billing.payment_failed"
        ]
        assert 1 <= len(failures) <= 3
        assert all(parsed_time(d) < truth.churned_at for d in failures)
        assert all(d["attributes"]["failure_code"] for d in failures)


def test_downgraders_downgrade_and_stay(default_run: Simulation) -> None:
    grouped = events_by_account(default_run)
    downgraders = [a for a in default_run.accounts if a.profile == "downgrader"]
    assert downgraders
    for truth in downgraders:
        events = grouped[truth.account_id]
        downgrades = [d for d in events if d["event_type"] == "billing.downgraded"]
        assert len(downgrades) == 1
        assert downgrades[0]["attributes"]["from_plan"] != downgrades[0]["attributes"]["to_plan"]
        assert truth.churned_at is None
        after = [d for d in events if parsed_time(d) > parsed_time(downgrades[0])]
        assert any(d["event_type"] == "app.login" for d in after), "keeps using the product"


# --- files and arguments ---------------------------------------------------------------


# --- sign-ups over the window (mean_lifetime_days) ---------------------------------------


@pytest.fixture(scope="module")
def lifetimes_run() -> Simulation:
    return simulate(accounts=400, days=120, seed=5, mean_lifetime_days=20)


def test_without_lifetimes_every_account_is_there_all_along(default_run: Simulation) -> None:
    assert all(a.signed_up_at is None and a.leaves_at is None for a in default_run.accounts)


def test_accounts_live_between_sign_up_and_leaving(lifetimes_run: Simulation) -> None:
    end = lifetimes_run.start + timedelta(days=lifetimes_run.days)
    grouped = events_by_account(lifetimes_run)
    for truth in lifetimes_run.accounts:
        assert truth.signed_up_at is not None
        times = [parsed_time(d) for d in grouped[truth.account_id]]
        leaves = truth.leaves_at or end
        assert all(truth.signed_up_at <= t < leaves for t in times), truth
        if truth.churned_at is not None:
            assert truth.signed_up_at < truth.churned_at == max(times) < leaves
        if truth.disengage_from is not None:
            assert truth.disengage_from >= truth.signed_up_at
    quarters = Counter(
        (a.signed_up_at - lifetimes_run.start).days * 4 // lifetimes_run.days
        for a in lifetimes_run.accounts
        if a.signed_up_at is not None
    )
    assert sorted(quarters) == [0, 1, 2, 3]
    assert min(quarters.values()) > 60  # about 100 sign-ups a quarter
    assert sum(a.leaves_at is not None for a in lifetimes_run.accounts) > 300


def test_the_population_holds_steady_while_sign_ups_add_up(lifetimes_run: Simulation) -> None:
    events = [(parsed_time(d), d["account_id"]) for d in lifetimes_run.valid_events()]
    active, seen = [], []
    for day in (60, 90, 120):
        moment = lifetimes_run.start + timedelta(days=day)
        last_seen: dict[str, datetime] = {}
        for time, account in events:
            if time < moment:
                last_seen[account] = max(time, last_seen.get(account, time))
        active.append(sum(t >= moment - timedelta(days=20) for t in last_seen.values()))
        seen.append(len(last_seen))
    # about sign-ups per day x (mean lifetime + 20 days) = 3.3 x 40 at each moment
    assert all(90 < count < 180 for count in active), active
    assert seen[2] > 1.4 * seen[0], seen


def test_lifetimes_give_valid_events(lifetimes_run: Simulation) -> None:
    limits = EventLimits()
    now = lifetimes_run.start + timedelta(days=lifetimes_run.days, hours=1)
    for message in lifetimes_run.messages:
        if message.kind != "malformed":
            assert isinstance(parse_event(message.value, now, limits), Event)


def test_write_truth_with_lifetimes(tmp_path: Path, lifetimes_run: Simulation) -> None:
    path = tmp_path / "truth.json"
    write_truth(lifetimes_run, path)
    accounts = orjson.loads(path.read_bytes())["accounts"]
    for written, truth in zip(accounts, lifetimes_run.accounts, strict=True):
        assert datetime.fromisoformat(written["signed_up_at"]) == truth.signed_up_at
        leaves = written["leaves_at"]
        assert (datetime.fromisoformat(leaves) if leaves else None) == truth.leaves_at


def test_write_jsonl_round_trip(tmp_path: Path) -> None:
    simulation = simulate(accounts=20, days=10)
    path = tmp_path / "events.jsonl"
    written = write_jsonl(simulation, path)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # every line ends with a newline
    assert written == len(lines) - 1 == len(simulation.messages)
    assert lines[:-1] == [m.value for m in simulation.messages]


def test_write_truth(tmp_path: Path) -> None:
    simulation = simulate(accounts=20, days=10)
    path = tmp_path / "truth.json"
    write_truth(simulation, path)
    document = orjson.loads(path.read_bytes())
    assert document["seed"] == 7
    assert document["days"] == 10
    assert document["start"] == "2026-09-01T00:00:00Z"
    assert document["counts"] == simulation.counts()
    assert sum(document["rejections"].values()) == simulation.counts()["malformed"]
    restored = [
        AccountTruth(
            tenant_id=a["tenant_id"],
            account_id=a["account_id"],
            profile=a["profile"],
            seats=a["seats"],
            churned_at=datetime.fromisoformat(a["churned_at"]) if a["churned_at"] else None,
            churn_reason=a["churn_reason"],
            disengage_from=(
                datetime.fromisoformat(a["disengage_from"]) if a["disengage_from"] else None
            ),
        )
        for a in document["accounts"]
    ]
    assert tuple(restored) == simulation.accounts


@pytest.mark.parametrize(
    "arguments",
    [
        {"accounts": 0},
        {"days": 0},
        {"start": datetime(2026, 9, 1)},  # naive
        {"tenants": ()},
        {"tenants": "acme"},
        {"tenants": ("acme corp",)},
        {"duplicate_rate": 1.0},
        {"malformed_rate": -0.1},
        {"mean_lifetime_days": 0},
    ],
    ids=lambda a: next(iter(a)),
)
def test_bad_arguments_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(SimulatorError):
        simulate(**arguments)


def test_produce_reports_undelivered_messages() -> None:
    # Nothing listens on the discard port: the messages stay queued past the
    # timeout and must be reported, not silently dropped.
    simulation = simulate(accounts=2, days=1, duplicate_rate=0.0, malformed_rate=0.0)
    with pytest.raises(UndeliveredMessagesError, match="not delivered") as caught:
        produce(simulation, "127.0.0.1:9", "churn.events", timeout_s=0.5)
    assert isinstance(caught.value, SimulatorError)
    assert isinstance(caught.value, ChurnwatchError)
    assert caught.value.undelivered == caught.value.total == len(simulation.messages) > 0


def test_traits_say_who_each_account_is_and_leave_the_default_stream_alone() -> None:
    """``traits=True`` (the demo's): an identify-like traits event per account at sign-up
    and after each downgrade, which the accounts table reads (company, plan, MRR,
    renewal); the default stream is not touched by the option."""
    from accounts.record import AccountTraits, account_record

    plain = simulate(accounts=40, days=20, seed=3)
    with_traits = simulate(accounts=40, days=20, seed=3, traits=True)
    assert simulate(accounts=40, days=20, seed=3, traits=False).messages == plain.messages
    traits = [d for d in with_traits.valid_events()
              if d["event_type"] == "account.traits_changed"]
    downgrades = [d for d in with_traits.valid_events()
                  if d["event_type"] == "billing.downgraded"]
    assert len(traits) == 40 + len(downgrades)
    assert len(plain.valid_events()) == len(with_traits.valid_events()) - len(traits)
    by_account = defaultdict(list)
    for document in with_traits.valid_events():
        by_account[document["account_id"]].append(document)
    for account_id, documents in by_account.items():
        now = datetime(2027, 1, 1, tzinfo=UTC)  # after the simulated month
        events = [event for event in (parse_event(orjson.dumps(d), now, EventLimits())
                                      for d in documents) if isinstance(event, Event)]
        record = account_record(events, AccountTraits())
        assert record is not None and record.mrr is not None and record.mrr.value > 0
        assert record.company_name is not None and account_id[-5:] in record.company_name.value
        assert record.plan is not None and record.renewal_date is not None
