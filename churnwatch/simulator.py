"""A seeded, deterministic generator of realistic SaaS event streams.

The demo, the benchmarks and the integration tests need traffic that looks like
a real product: people log in on weekdays during their working hours, use a few
features, pay every month; some accounts slowly stop using the product and
cancel, some lose their card and churn involuntarily, some downgrade. On top of
that the stream carries what real ingestion sees: exact duplicates (producer
retries) and malformed messages, each labelled with the rejection reason the
validator in :mod:`schemas.event` must give.

Everything comes from one ``random.Random(seed)``: no global random state and
no clock, so the same arguments always give byte-identical messages, and the
ground truth (:class:`AccountTruth`) says what a detector ought to find.
Times are computed as integer milliseconds from ``start`` so no float rounding
can make two runs differ.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from confluent_kafka import KafkaError, Message, Producer

from churnwatch.errors import ChurnwatchError
from schemas.event import TRAITS_EVENT_TYPE, RejectReason, format_time

log = logging.getLogger(__name__)

K = TypeVar("K")  # a kind of account: a SaaS profile, a social persona


class SimulatorError(ChurnwatchError):
    """The simulator was given arguments it cannot honour, or could not deliver."""


class UndeliveredMessagesError(SimulatorError):
    """Some simulated messages were not acknowledged by the broker."""

    def __init__(self, undelivered: int, total: int, first_error: str | None) -> None:
        self.undelivered = undelivered
        self.total = total
        self.first_error = first_error
        super().__init__(
            f"{undelivered} of {total} simulated message(s) not delivered; "
            f"first error: {first_error}"
        )


class MessageKind(StrEnum):
    """What a simulated message is, so tests know what the pipeline must do with it."""

    VALID = "valid"
    DUPLICATE = "duplicate"
    MALFORMED = "malformed"


class Profile(StrEnum):
    """How an account behaves over the simulated window."""

    STEADY = "steady"
    DISENGAGING = "disengaging"
    INVOLUNTARY = "involuntary"
    DOWNGRADER = "downgrader"


@dataclass(frozen=True, slots=True)
class SimulatedMessage:
    """One Kafka message: ``kind`` and ``expected_reason`` are the label, not payload."""

    key: bytes
    value: bytes
    kind: str
    expected_reason: str | None


@dataclass(frozen=True, slots=True)
class AccountTruth:
    """What really happened to one account (``seats`` is the count at ``start``)."""

    tenant_id: str
    account_id: str
    profile: str
    seats: int
    churned_at: datetime | None
    churn_reason: str | None
    disengage_from: datetime | None
    # With ``mean_lifetime_days``: when the account signed up, and when its lifetime
    # ended if that fell inside the window (nothing of it is emitted after, whether it
    # churned before or simply went silent); None without the option.
    signed_up_at: datetime | None = None
    leaves_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Simulation:
    """A generated stream, in the order it is to be produced, and its ground truth."""

    messages: tuple[SimulatedMessage, ...]
    accounts: tuple[AccountTruth, ...]
    seed: int
    start: datetime
    days: int

    def valid_events(self) -> list[dict[str, Any]]:
        """The decoded valid events, duplicates left out, in stream order."""
        return [orjson.loads(m.value) for m in self.messages if m.kind == MessageKind.VALID]

    def counts(self) -> dict[str, int]:
        """How many messages of each kind (every kind present, zero or not)."""
        tally = Counter(m.kind for m in self.messages)
        return {kind.value: tally.get(kind, 0) for kind in MessageKind}

    def rejection_counts(self) -> dict[str, int]:
        """How many malformed messages the validator must reject, by reason."""
        tally = Counter(m.expected_reason for m in self.messages if m.expected_reason)
        return {str(reason): count for reason, count in sorted(tally.items())}

    def run_document(self) -> dict[str, Any]:
        """What every product's truth document starts with: the run and its counts."""
        return {
            "seed": self.seed,
            "start": format_time(self.start),
            "days": self.days,
            "counts": self.counts(),
            "rejections": self.rejection_counts(),
        }

    def truth_document(self) -> dict[str, Any]:
        """The ground truth as a JSON-ready document (what :func:`write_truth` writes);
        another product's simulation overrides it with its own."""
        return {
            **self.run_document(),
            "accounts": [
                {
                    "tenant_id": truth.tenant_id,
                    "account_id": truth.account_id,
                    "profile": str(truth.profile),
                    "seats": truth.seats,
                    "churned_at": format_time(truth.churned_at) if truth.churned_at else None,
                    "churn_reason": truth.churn_reason,
                    "disengage_from": (
                        format_time(truth.disengage_from) if truth.disengage_from else None
                    ),
                    **_lifetime_document(truth),
                }
                for truth in self.accounts
            ],
        }


# --- the shape of the simulated business ---------------------------------------------

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_MINUTE_MS = 60_000

# Share of each non-steady profile; the rest is steady (~75%).
_PROFILE_SHARES = (
    (Profile.DISENGAGING, 0.12),
    (Profile.INVOLUNTARY, 0.08),
    (Profile.DOWNGRADER, 0.05),
)
# Steady accounts whose monthly payment fails once and then succeeds on retry:
# the false-alarm noise a payment-failed rule has to live with.
_STEADY_PAYMENT_HICCUP_SHARE = 0.04

_PLANS = ("starter", "team", "business", "enterprise")
_PRICE_PER_SEAT_CENTS = (1_200, 2_500, 4_500, 8_000)

# Fixed offsets so event_time parsing is exercised with +, - and Z; unknown
# tenants report in UTC.
_TENANT_OFFSETS = {"acme": timedelta(hours=1), "globex": timedelta(hours=-5)}
_TENANT_CURRENCIES = {"acme": "EUR", "globex": "USD"}

_KEY_FEATURES = ("dashboards", "reports", "integrations")
_OTHER_FEATURES = ("search", "export", "comments", "alerts", "api_tokens")
_CANCEL_REASONS = ("too_expensive", "missing_features", "switched_competitor", "not_using")
_CANCEL_REASON_WEIGHTS = (3, 3, 2, 4)
_FAILURE_CODES = ("card_declined", "insufficient_funds", "expired_card", "processing_error")
_TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
_TICKET_PRIORITY_WEIGHTS = (3, 5, 2, 1)

_WEB = "web-app"
_BILLING = "billing-service"
_SUPPORT = "support-desk"
_CRM = "crm"

# The admin (user 1) logs in on most weekdays; the others are lighter users.
_ADMIN_LOGIN_PROPENSITY = 0.9
_WEEKEND_FACTOR = 0.2
# Disengaging accounts fall to this share of their normal activity; their
# other users drop out one by one, the admin (who cancels) stays to the end.
_DISENGAGED_FLOOR = 0.05
# Dunning: a failed payment is retried this many days later.
_PAYMENT_RETRY_DAYS = 3
# Nothing of a churned account may be emitted this close before its
# cancellation, so emission jitter cannot put an older event after it.
_MAX_EMIT_JITTER_MS = 5_000
_QUIET_BEFORE_CANCEL_MS = 2 * _MAX_EMIT_JITTER_MS
# Duplicates (producer retries) reappear within this many messages of the original.
_DUPLICATE_MAX_DELAY = 25
# Below this many account-days a simulation is too small to insist on one
# malformed message of every kind.
_EVERY_MALFORMED_KIND_FROM = 100
# Over the 64 KiB default of ``EventLimits.max_message_bytes``.
_TOO_LARGE_ATTRIBUTE_CHARS = 70_000
# The tenant_id pattern of event v1 (schemas/event.py): a bad tenant would
# silently turn every "valid" message of the run into a schema rejection.
_TENANT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# (event time in ms from start, event_type, user_id, source, attributes)
_Raw = tuple[int, str, str | None, str, dict[str, Any]]


class ScriptedAccount(Protocol):
    """What turning scripts into a stream needs of an account, whatever the product
    (:func:`assemble_messages`): its ids, its clock offset and its raw events."""

    tenant_id: str
    account_id: str
    offset_ms: int
    events: list[_Raw]


@dataclass(slots=True)
class _Account:
    """The mutable state of one account while its script runs."""

    number: int
    tenant_id: str
    account_id: str
    profile: Profile
    plan: int
    seats: int
    billing_day: int
    activity: float
    offset_ms: int
    users: list[tuple[int, float]] = field(default_factory=list)
    # The day (fractional) after which a user of a slipping account stops logging in.
    quit_day: dict[int, float] = field(default_factory=dict)
    next_user: int = 1
    events: list[_Raw] = field(default_factory=list)

    def user_id(self, user: int) -> str:
        return f"u-{self.number:05d}-{user}"

    def add_user(self, rng: random.Random) -> None:
        propensity = _ADMIN_LOGIN_PROPENSITY if self.next_user == 1 else rng.uniform(0.1, 0.45)
        self.users.append((self.next_user, propensity))
        self.next_user += 1

    def emit(
        self,
        at_ms: int,
        event_type: str,
        source: str,
        attributes: dict[str, Any],
        user: int | None = None,
    ) -> None:
        user_id = None if user is None else self.user_id(user)
        self.events.append((at_ms, event_type, user_id, source, attributes))


@dataclass(frozen=True, slots=True)
class _Churn:
    at_ms: int
    reason: str


# --- public API ------------------------------------------------------------------------


# Where a simulated history starts unless told otherwise (its streams are pinned by it).
SIMULATION_START = datetime(2026, 9, 1, tzinfo=UTC)


def simulate(
    *,
    accounts: int = 200,
    days: int = 30,
    seed: int = 7,
    start: datetime = SIMULATION_START,
    tenants: Sequence[str] = ("acme", "globex"),
    duplicate_rate: float = 0.01,
    malformed_rate: float = 0.002,
    opt_out_rate: float = 0.0,
    mean_lifetime_days: float | None = None,
    traits: bool = False,
) -> Simulation:
    """Generate a stream of ``days`` days for ``accounts`` accounts.

    ``duplicate_rate`` is a share of the valid messages, ``malformed_rate`` a
    share of all messages; with ``malformed_rate > 0`` and at least 100
    account-days, every malformed variety appears at least once.
    ``opt_out_rate``: the share of accounts that ask, once during their life,
    not to be contacted (``account.consent_changed``); 0 leaves the stream
    exactly as without the option.

    ``mean_lifetime_days``: None (the default) has every account there for the
    whole window. A number spreads sign-ups over the window instead: each account
    signs up on a day drawn uniformly from the window and stays for a lifetime
    drawn from an exponential distribution of that mean (at least a day; its
    profile may churn it sooner), then goes silent for good. After the first few
    lifetimes about ``accounts * mean_lifetime_days / days`` accounts are active at
    once, while the count of accounts ever seen keeps growing (a soak test of
    bounded state). ``accounts`` is then the number of sign-ups over the window.

    ``traits``: each account also says who it is, as an identify call would
    (``account.traits_changed`` with company name, plan, MRR and renewal date:
    the accounts table and "MRR at risk" read them), at sign-up and after each
    downgrade. False (the default) leaves the stream exactly as without the option.
    """
    check_arguments(accounts, days, start, tenants, duplicate_rate, malformed_rate)
    if mean_lifetime_days is not None and not mean_lifetime_days > 0:
        msg = f"mean_lifetime_days must be positive, got {mean_lifetime_days}"
        raise SimulatorError(msg)
    rng = random.Random(seed)
    start = start.astimezone(UTC)
    weekends = tuple((start + timedelta(days=d)).weekday() >= 5 for d in range(days))
    dates = tuple((start + timedelta(days=d)).date() for d in range(days))

    profiles = assign_shares(rng, accounts, _PROFILE_SHARES, Profile.STEADY)
    # (sign-up day, days of life) per account; their own seeded rng, so the rest of the
    # stream does not depend on the option.
    lives = (
        [(0, days)] * accounts
        if mean_lifetime_days is None
        else _draw_lifetimes(random.Random(f"lifetimes:{seed}"), accounts, days,
                             mean_lifetime_days)
    )
    truths: list[AccountTruth] = []
    scripted: list[_Account] = []
    for index, profile in enumerate(profiles):
        account = _new_account(rng, index + 1, tenants[index % len(tenants)], profile)
        initial_seats, initial_plan = account.seats, account.plan
        first_day, life_days = lives[index]
        life = slice(first_day, first_day + life_days)
        churn, disengage_day = _script_account(
            rng, account, life_days, dates[life], weekends[life]
        )
        life_ms = life_days * _DAY_MS
        churn_in_window = churn if churn is not None and churn.at_ms < life_ms else None
        _trim_to_lifetime(account, life_ms, churn_in_window)
        # The script ran on the account's own days: move it to its sign-up day.
        signed_up_ms = first_day * _DAY_MS
        if signed_up_ms:
            account.events = [(e[0] + signed_up_ms, *e[1:]) for e in account.events]
        if opt_out_rate > 0.0:
            _maybe_opt_out(random.Random(f"opt-out:{seed}:{index}"), account, opt_out_rate)
        if traits:
            _add_traits(account, initial_plan, initial_seats, signed_up_ms, start)
        scripted.append(account)
        truths.append(
            AccountTruth(
                tenant_id=account.tenant_id,
                account_id=account.account_id,
                profile=profile,
                seats=initial_seats,
                churned_at=(
                    start + timedelta(milliseconds=signed_up_ms + churn_in_window.at_ms)
                    if churn_in_window
                    else None
                ),
                churn_reason=churn_in_window.reason if churn_in_window else None,
                disengage_from=(
                    start + timedelta(days=first_day + disengage_day)
                    if disengage_day is not None
                    else None
                ),
                signed_up_at=(
                    None if mean_lifetime_days is None else start + timedelta(days=first_day)
                ),
                leaves_at=(
                    start + timedelta(days=first_day + life_days)
                    if mean_lifetime_days is not None and first_day + life_days < days
                    else None
                ),
            )
        )

    messages = assemble_messages(
        rng, scripted, start, accounts * days, duplicate_rate, malformed_rate
    )
    return Simulation(
        messages=messages, accounts=tuple(truths), seed=seed, start=start, days=days
    )


def assemble_messages(
    rng: random.Random,
    scripted: Sequence[ScriptedAccount],
    start: datetime,
    account_days: int,
    duplicate_rate: float,
    malformed_rate: float,
) -> tuple[SimulatedMessage, ...]:
    """The scripted accounts' events as the stream a broker would carry: in event-time
    order give or take the sources' lag, numbered, encoded, with duplicates and
    malformed messages (each labelled) mixed in. Shared by every simulated product;
    ``rng`` continues the product's own, so one seed still decides everything."""
    documents = _order_and_identify(rng, scripted, start)
    valid = [
        SimulatedMessage(doc["account_id"].encode(), _compact(orjson.dumps(doc)), MessageKind.VALID,
                         None)
        for doc in documents
    ]
    return tuple(
        _mix_in_bad_messages(rng, valid, documents, account_days, duplicate_rate, malformed_rate)
    )



def _compact(value: bytes) -> bytes:
    """A right-sized copy: orjson's result keeps a ~4 KiB buffer, and a million
    held messages would cost 4 GiB instead of 200 MB."""
    return memoryview(value).tobytes()

def write_jsonl(simulation: Simulation, path: Path) -> int:
    """Write one message value per line, bytes as they are; return the lines written."""
    with path.open("wb") as out:
        for message in simulation.messages:
            # A line break inside a value would split it into two lines that
            # no longer match their labels.
            if b"\n" in message.value or b"\r" in message.value:
                msg = f"message for key {message.key!r} contains a line break"
                raise SimulatorError(msg)
            out.write(message.value)
            out.write(b"\n")
    return len(simulation.messages)


def write_truth(simulation: Simulation, path: Path) -> None:
    """Write the ground truth as JSON: the run's arguments, counts and every account
    (:meth:`Simulation.truth_document`)."""
    document = simulation.truth_document()
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def _lifetime_document(truth: AccountTruth) -> dict[str, str | None]:
    """The sign-up and leaving times, for a simulation with lifetimes only (so the
    truth of one without is written as it always was)."""
    if truth.signed_up_at is None:
        return {}
    return {
        "signed_up_at": format_time(truth.signed_up_at),
        "leaves_at": format_time(truth.leaves_at) if truth.leaves_at else None,
    }


def produce(
    simulation: Simulation,
    bootstrap: str,
    topic: str,
    *,
    timeout_s: float = 30.0,
    config: Mapping[str, str | int | bool] | None = None,
) -> int:
    """Send every message, in order, keyed by account; return how many were produced.
    ``config``: librdkafka properties (``CHURNWATCH_KAFKA_CONFIG``: security, tuning).

    Raises :class:`UndeliveredMessagesError` (a :class:`SimulatorError`) when
    any message was refused or still queued after ``timeout_s``.
    """
    producer = Producer(
        {
            "linger.ms": 5,
            **(config or {}),
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            # librdkafka's own logs go through logging, not straight to stderr.
            "logger": log,
        }
    )
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

    produced = 0
    for message in simulation.messages:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                producer.produce(
                    topic, value=message.value, key=message.key, on_delivery=on_delivery
                )
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room. A queue
                # that never drains means the broker is gone; do not spin forever.
                if time.monotonic() > deadline:
                    failure = UndeliveredMessagesError(
                        len(errors) + len(producer) + len(simulation.messages) - produced,
                        len(simulation.messages),
                        errors[0] if errors else "the local producer queue stayed full",
                    )
                    _discard_queue(producer)
                    raise failure from None
                producer.poll(0.1)
        produced += 1
        producer.poll(0)
    remaining = producer.flush(timeout_s)
    if remaining or errors:
        failure = UndeliveredMessagesError(
            remaining + len(errors),
            produced,
            errors[0] if errors else f"flush timed out after {timeout_s} s",
        )
        _discard_queue(producer)
        raise failure
    return produced


def _discard_queue(producer: Producer) -> None:
    """Drop what is still queued, once it has been counted as undelivered.

    Otherwise it could still trickle out behind the caller's back, and the
    producer would complain at exit. Purging fires more delivery callbacks
    ("Purged in queue"): count before calling this.
    """
    producer.purge()
    producer.flush(0)


# --- accounts and their scripts --------------------------------------------------------


def check_arguments(
    accounts: int,
    days: int,
    start: datetime,
    tenants: Sequence[str],
    duplicate_rate: float,
    malformed_rate: float,
) -> None:
    """Refuse (:class:`SimulatorError`, every problem at once) arguments no product can
    honour."""
    problems = []
    if accounts < 1:
        problems.append(f"accounts must be at least 1, got {accounts}")
    if days < 1:
        problems.append(f"days must be at least 1, got {days}")
    if start.tzinfo is None or start.utcoffset() is None:
        problems.append("start must be timezone-aware")
    if isinstance(tenants, str) or not tenants:
        problems.append("tenants must be a non-empty sequence of tenant ids")
    else:
        problems.extend(
            f"tenant id {tenant!r} does not match event v1's [A-Za-z0-9_.-]{{1,64}}"
            for tenant in tenants
            if not (isinstance(tenant, str) and _TENANT_ID.fullmatch(tenant))
        )
    if not 0.0 <= duplicate_rate < 1.0:
        problems.append(f"duplicate_rate must be in [0, 1), got {duplicate_rate}")
    if not 0.0 <= malformed_rate < 1.0:
        problems.append(f"malformed_rate must be in [0, 1), got {malformed_rate}")
    if problems:
        msg = "; ".join(problems)
        raise SimulatorError(msg)


def assign_shares(
    rng: random.Random, accounts: int, shares: Sequence[tuple[K, float]], rest: K
) -> list[K]:
    """One kind per account in exact shares (``rest`` fills what rounding leaves),
    shuffled: a small simulation still gets the intended mix. Every product's."""
    kinds: list[K] = []
    for kind, share in shares:
        kinds.extend([kind] * round(accounts * share))
    kinds = kinds[:accounts]
    kinds.extend([rest] * (accounts - len(kinds)))
    rng.shuffle(kinds)
    return kinds


def _draw_lifetimes(
    rng: random.Random, accounts: int, days: int, mean_days: float
) -> list[tuple[int, int]]:
    """(sign-up day, days of life) per account: sign-ups uniform over the window,
    lifetimes exponential with mean ``mean_days``, at least a day, cut at the window's
    end."""
    lives = []
    for _ in range(accounts):
        first_day = rng.randrange(days)
        life_days = max(1, round(rng.expovariate(1.0 / mean_days)))
        lives.append((first_day, min(life_days, days - first_day)))
    return lives


def _new_account(rng: random.Random, number: int, tenant_id: str, profile: Profile) -> _Account:
    # Most customers are small teams; a cube of a uniform skews towards 2 seats.
    seats = 2 + int(48 * rng.random() ** 3)
    tier = 0 if seats <= 5 else 1 if seats <= 15 else 2 if seats <= 35 else 3
    plan = min(3, max(0, tier + rng.choice((-1, 0, 0, 0, 1))))
    if profile is Profile.DOWNGRADER:
        plan = max(plan, 1)  # there must be a cheaper plan to move to
    offset = _TENANT_OFFSETS.get(tenant_id, timedelta(0))
    account = _Account(
        number=number,
        tenant_id=tenant_id,
        account_id=f"acct-{number:05d}",
        profile=profile,
        plan=plan,
        seats=seats,
        billing_day=rng.randint(1, 28),
        activity=rng.uniform(0.8, 1.25),
        offset_ms=int(offset.total_seconds() * 1000),
    )
    for _ in range(seats):
        account.add_user(rng)
    return account


def _script_account(
    rng: random.Random,
    account: _Account,
    days: int,
    dates: tuple[date, ...],
    weekends: tuple[bool, ...],
) -> tuple[_Churn | None, int | None]:
    """Emit the account's whole life into ``account.events``.

    Returns its churn (possibly after the window) and, for a disengaging
    account, the day it started to slip.
    """
    churn: _Churn | None = None
    disengage_day: int | None = None
    decline_ms = 0
    # Seat removals, as (time, seats to remove), applied on the day they fall.
    seat_cuts: list[tuple[int, int]] = []
    downgrade_ms: int | None = None
    payment_hiccup = False
    failing_day: int | None = None

    if account.profile is Profile.DISENGAGING:
        disengage_day = rng.randrange(max(1, days // 2))
        decline_days = rng.uniform(10, 16)
        decline_ms = int(decline_days * _DAY_MS)
        slip_ms = disengage_day * _DAY_MS
        for user, _ in account.users[1:]:
            account.quit_day[user] = disengage_day + rng.uniform(0.3, 1.0) * decline_days
        for share in (0.35, 0.7):
            cut = rng.randint(1, max(1, account.seats // 4))
            seat_cuts.append((slip_ms + int(decline_ms * share) + rng.randrange(_HOUR_MS), cut))
        intent_day = (slip_ms + decline_ms) // _DAY_MS + rng.randint(0, 2)
        intent_ms = _working_time(rng, intent_day, account.offset_ms)
        cancel_ms = _working_time(rng, intent_day + rng.randint(1, 4), account.offset_ms)
        account.emit(intent_ms, "subscription.cancel_intent", _BILLING, {})
        reason = rng.choices(_CANCEL_REASONS, _CANCEL_REASON_WEIGHTS)[0]
        churn = _Churn(cancel_ms, reason)
    elif account.profile is Profile.INVOLUNTARY:
        # Let the card fail early enough that dunning can finish in the window.
        candidates = [d for d in range(min(days - 10, 28)) if dates[d].day <= 28]
        if candidates:
            failing_day = rng.choice(candidates)
            account.billing_day = dates[failing_day].day
        else:
            failing_day = 0  # a short window: fail on its first billing day, if any
    elif account.profile is Profile.DOWNGRADER:
        downgrade_ms = _working_time(
            rng, rng.randint(days // 5, max(days // 5, days * 4 // 5)), account.offset_ms
        )
    else:
        payment_hiccup = rng.random() < _STEADY_PAYMENT_HICCUP_SHARE

    for day in range(days):
        day_end_ms = (day + 1) * _DAY_MS
        while seat_cuts and seat_cuts[0][0] < day_end_ms:
            at_ms, cut = seat_cuts.pop(0)
            _remove_seats(account, at_ms, cut)
        if downgrade_ms is not None and downgrade_ms < day_end_ms:
            _downgrade(rng, account, downgrade_ms)
            downgrade_ms = None

        if dates[day].day == account.billing_day:
            billing_ms = day * _DAY_MS + rng.randint(1 * _HOUR_MS, 6 * _HOUR_MS)
            if failing_day is not None and day >= failing_day:
                churn = _fail_payments(rng, account, billing_ms)
                failing_day = None
            elif payment_hiccup:
                _charge(rng, account, billing_ms, dates[day], hiccup=True)
                payment_hiccup = False
            else:
                _charge(rng, account, billing_ms, dates[day])

        engagement = 1.0
        if disengage_day is not None:
            slipped = min(1.0, max(0.0, (day + 0.5 - disengage_day) * _DAY_MS / decline_ms))
            # Smoothstep: a slow start, a steady slide, a quiet tail.
            engagement = 1.0 - (1.0 - _DISENGAGED_FLOOR) * slipped * slipped * (3 - 2 * slipped)
        _use_product(rng, account, day, weekends[day], engagement)
        if not weekends[day]:
            _maybe_change_seats(rng, account, day)
            _maybe_open_ticket(rng, account, day, engagement)

    if churn is not None:
        account.emit(churn.at_ms, "subscription.cancelled", _BILLING, {"reason_code": churn.reason})
    return churn, disengage_day


def _add_traits(
    account: _Account, plan: int, seats: int, signed_up_ms: int, start: datetime
) -> None:
    """The account's traits at sign-up, and again after each downgrade (plan and MRR
    as they then are); no draw from any random source."""
    def traits(at_ms: int) -> None:
        renews = start + timedelta(milliseconds=at_ms) + timedelta(days=30)
        account.emit(at_ms, TRAITS_EVENT_TYPE, "crm", {
            "company_name": f"{account.tenant_id.title()} customer {account.number:05d}",
            "plan": _PLANS[plan],
            "mrr": _PRICE_PER_SEAT_CENTS[plan] * seats / 100,
            "renewal_date": renews.date().isoformat(),
        })

    changes = sorted(e for e in account.events
                     if e[1] in ("billing.downgraded", "app.seat_added", "app.seat_removed"))
    traits(signed_up_ms)
    for at_ms, event_type, _, _, attributes in changes:
        if event_type == "billing.downgraded":
            plan = _PLANS.index(attributes["to_plan"])
            traits(at_ms + 1)
        else:
            seats = attributes["seats"]


def _maybe_opt_out(rng: random.Random, account: _Account, rate: float) -> None:
    """A do-not-contact request at some point of the account's life (own seeded rng,
    so the rest of the stream does not depend on the option)."""
    if rng.random() >= rate or not account.events:
        return
    times = sorted(e[0] for e in account.events)
    at_ms = rng.randint(times[0], times[-1])
    account.emit(at_ms, "account.consent_changed", _CRM, {"contact_allowed": False})


def _working_time(rng: random.Random, day: int, offset_ms: int) -> int:
    """A moment of ``day`` in the account's working hours (local 06:00-22:00), in ms."""
    local_ms = int(rng.gauss(13.5, 2.8) * _HOUR_MS)
    local_ms = min(22 * _HOUR_MS, max(6 * _HOUR_MS, local_ms))
    return day * _DAY_MS + local_ms - offset_ms


def _use_product(
    rng: random.Random, account: _Account, day: int, weekend: bool, engagement: float
) -> None:
    day_factor = engagement * (_WEEKEND_FACTOR if weekend else 1.0)
    # Disengaging users also stick to fewer key features.
    feature_chance = 0.55 * (0.5 + 0.5 * engagement)
    key_share = 0.6 * engagement + 0.1
    for user, propensity in account.users:
        if account.quit_day.get(user, day + 1) <= day:
            continue
        # How busy an account is shows in its team, not in its admin's habits.
        activity = 1.0 if user == 1 else account.activity
        if rng.random() >= propensity * activity * day_factor:
            continue
        at_ms = _working_time(rng, day, account.offset_ms)
        account.emit(at_ms, "app.login", _WEB, {}, user)
        uses = 0
        while uses < 8 and rng.random() < feature_chance:
            uses += 1
            at_ms += rng.randint(20_000, 25 * _MINUTE_MS)
            names = _KEY_FEATURES if rng.random() < key_share else _OTHER_FEATURES
            account.emit(at_ms, "app.feature_used", _WEB, {"feature": rng.choice(names)}, user)


def _maybe_change_seats(rng: random.Random, account: _Account, day: int) -> None:
    if account.profile is Profile.DISENGAGING:
        return  # a slipping account only ever removes seats
    roll = rng.random()
    if roll < 0.015:
        account.add_user(rng)
        account.seats += 1
        at_ms = _working_time(rng, day, account.offset_ms)
        account.emit(at_ms, "app.seat_added", _WEB, {"seats": account.seats}, 1)
    elif roll < 0.02 and account.seats > 2:
        _remove_seats(account, _working_time(rng, day, account.offset_ms), 1)


def _remove_seats(account: _Account, at_ms: int, count: int) -> None:
    # The admin removes the newest users one by one; the admin stays.
    for _ in range(min(count, account.seats - 1)):
        account.users.pop()
        account.seats -= 1
        account.emit(at_ms, "app.seat_removed", _WEB, {"seats": account.seats}, 1)
        at_ms += 40_000


def _maybe_open_ticket(rng: random.Random, account: _Account, day: int, engagement: float) -> None:
    chance = 0.012 if engagement >= 1.0 else 0.06
    if rng.random() >= chance:
        return
    user, _ = rng.choice(account.users)
    priority = rng.choices(_TICKET_PRIORITIES, _TICKET_PRIORITY_WEIGHTS)[0]
    at_ms = _working_time(rng, day, account.offset_ms)
    account.emit(at_ms, "support.ticket_opened", _SUPPORT, {"priority": priority}, user)


def _downgrade(rng: random.Random, account: _Account, at_ms: int) -> None:
    from_plan = account.plan
    account.plan -= 1
    account.activity *= 0.75
    account.emit(
        at_ms,
        "billing.downgraded",
        _BILLING,
        {"from_plan": _PLANS[from_plan], "to_plan": _PLANS[account.plan]},
    )
    if rng.random() < 0.6:
        _remove_seats(account, at_ms + rng.randint(1, 3) * _HOUR_MS, rng.randint(1, 3))


def _payment(account: _Account, failure_code: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "amount_cents": _PRICE_PER_SEAT_CENTS[account.plan] * account.seats,
        "currency": _TENANT_CURRENCIES.get(account.tenant_id, "USD"),
    }
    if failure_code is not None:
        attributes["failure_code"] = failure_code
    return attributes


def _charge(
    rng: random.Random, account: _Account, at_ms: int, on: date, *, hiccup: bool = False
) -> None:
    """The monthly charge and renewal; a hiccup fails once and succeeds on retry."""
    if hiccup:
        failure = rng.choice(_FAILURE_CODES)
        account.emit(at_ms, "billing.payment_failed", _BILLING, _payment(account, failure))
        at_ms += rng.randint(1, 2) * _DAY_MS + rng.randrange(_HOUR_MS)
    account.emit(at_ms, "billing.payment_succeeded", _BILLING, _payment(account))
    renews_at = datetime(
        on.year + on.month // 12, on.month % 12 + 1, account.billing_day, tzinfo=UTC
    )
    account.emit(
        at_ms + rng.randint(500, 3_000),
        "subscription.renewed",
        _BILLING,
        {"renews_at": format_time(renews_at)},
    )


def _fail_payments(rng: random.Random, account: _Account, at_ms: int) -> _Churn:
    """Dunning that never succeeds: one to three failures, then cancellation."""
    failure = rng.choice(_FAILURE_CODES)
    attempts = rng.randint(1, 3)
    for attempt in range(attempts):
        tried_ms = at_ms + attempt * _PAYMENT_RETRY_DAYS * _DAY_MS
        account.emit(tried_ms, "billing.payment_failed", _BILLING, _payment(account, failure))
    last_ms = at_ms + (attempts - 1) * _PAYMENT_RETRY_DAYS * _DAY_MS
    cancel_ms = last_ms + rng.randint(1, 2) * _DAY_MS + rng.randrange(_HOUR_MS)
    return _Churn(cancel_ms, "payment_failed")


def _trim_to_lifetime(account: ScriptedAccount, window_ms: int, churn: _Churn | None) -> None:
    """Keep what falls in the window and, for a churned account, before its cancellation."""
    if churn is None:
        account.events = [e for e in account.events if 0 <= e[0] < window_ms]
        return
    quiet_from = churn.at_ms - _QUIET_BEFORE_CANCEL_MS
    account.events = [
        e
        for e in account.events
        if (0 <= e[0] < quiet_from) or (e[0] == churn.at_ms and e[1] == "subscription.cancelled")
    ]


# --- the stream -------------------------------------------------------------------------


def _order_and_identify(
    rng: random.Random, accounts: Sequence[ScriptedAccount], start: datetime
) -> list[dict[str, Any]]:
    """Event documents in emission order: event-time order with a few seconds of disorder."""
    pending: list[tuple[int, int, int, _Raw]] = []
    for index, account in enumerate(accounts):
        for sequence, raw in enumerate(sorted(account.events, key=lambda e: e[0])):
            # Different sources deliver with different lag, so emission order
            # differs slightly from event time.
            emitted_ms = raw[0] + rng.randrange(_MAX_EMIT_JITTER_MS)
            pending.append((emitted_ms, index, sequence, raw))
    pending.sort(key=lambda p: p[:3])

    offsets = [timezone(timedelta(milliseconds=a.offset_ms)) for a in accounts]
    documents = []
    for _, index, sequence, (at_ms, event_type, user_id, source, attributes) in pending:
        account = accounts[index]
        moment = (start + timedelta(milliseconds=at_ms)).astimezone(offsets[index])
        documents.append(
            {
                # Numbered in event-time order, as the source system would.
                "event_id": f"{account.tenant_id}-{account.account_id}-{sequence + 1}",
                "tenant_id": account.tenant_id,
                "account_id": account.account_id,
                "user_id": user_id,
                "event_type": event_type,
                "event_time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "source": source,
                "schema_version": 1,
                "attributes": attributes,
            }
        )
    return documents


def _mix_in_bad_messages(
    rng: random.Random,
    valid: list[SimulatedMessage],
    documents: list[dict[str, Any]],
    account_days: int,
    duplicate_rate: float,
    malformed_rate: float,
) -> list[SimulatedMessage]:
    # (insert before valid[position], tie-break, message)
    inserts: list[tuple[int, int, SimulatedMessage]] = []
    if duplicate_rate > 0:
        for position, message in enumerate(valid):
            if rng.random() < duplicate_rate:
                later = min(len(valid), position + rng.randint(1, _DUPLICATE_MAX_DELAY))
                copy = SimulatedMessage(message.key, message.value, MessageKind.DUPLICATE, None)
                inserts.append((later, len(inserts), copy))

    if malformed_rate > 0 and valid:
        good = len(valid) + len(inserts)
        wanted = round(good * malformed_rate / (1.0 - malformed_rate))
        kinds = list(_MALFORMED_MAKERS)
        if account_days >= _EVERY_MALFORMED_KIND_FROM:
            wanted = max(wanted, len(kinds))
            chosen = kinds + rng.choices(kinds, _MALFORMED_WEIGHTS, k=wanted - len(kinds))
        else:
            chosen = rng.choices(kinds, _MALFORMED_WEIGHTS, k=wanted)
        for number, kind in enumerate(chosen, start=1):
            template = dict(rng.choice(documents))
            template["event_id"] = (
                f"{template['tenant_id']}-{template['account_id']}-malformed-{number}"
            )
            key = template["account_id"].encode()  # before a maker can delete the field
            value, reason = _MALFORMED_MAKERS[kind](rng, template)
            bad = SimulatedMessage(key, value, MessageKind.MALFORMED, reason.value)
            inserts.append((rng.randint(0, len(valid)), len(inserts), bad))

    inserts.sort(key=lambda i: i[:2])
    mixed: list[SimulatedMessage] = []
    pending = iter(inserts)
    upcoming = next(pending, None)
    for position, message in enumerate(valid):
        while upcoming is not None and upcoming[0] == position:
            mixed.append(upcoming[2])
            upcoming = next(pending, None)
        mixed.append(message)
    while upcoming is not None:
        mixed.append(upcoming[2])
        upcoming = next(pending, None)
    return mixed


# --- malformed messages: each maker returns (bytes, the reason the validator must give) --

_Maker = Callable[[random.Random, dict[str, Any]], tuple[bytes, RejectReason]]


def _truncated_json(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    # Any strict prefix of a JSON object is invalid: the closing brace is missing.
    whole = orjson.dumps(doc)
    return whole[: rng.randint(1, len(whole) - 1)], RejectReason.NOT_JSON


def _plain_text(_: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    line = f"{doc['tenant_id']},{doc['account_id']},{doc['event_type']},{doc['event_time']}"
    return line.encode(), RejectReason.NOT_JSON


def _latin1_text(_: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    # A producer that encodes in Latin-1: JSON-shaped, but not valid UTF-8.
    doc["attributes"] = {**doc["attributes"], "note": "PLACEHOLDER"}
    value = orjson.dumps(doc).replace(b"PLACEHOLDER", "Café résumé".encode("latin-1"))
    return value, RejectReason.NOT_JSON


def _missing_field(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    del doc[rng.choice(("account_id", "event_type", "event_time", "source"))]
    return orjson.dumps(doc), RejectReason.SCHEMA


def _bad_tenant_id(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    tenant = doc["tenant_id"]
    doc["tenant_id"] = rng.choice((f"{tenant} corp", "", f"{tenant}/eu", "x" * 65))
    return orjson.dumps(doc), RejectReason.SCHEMA


def _email_user_id(_: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    doc["user_id"] = "jane.doe@example.com"  # personal data where an opaque id belongs
    return orjson.dumps(doc), RejectReason.SCHEMA


def _too_large(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    # Valid JSON, so only the size check can catch it.
    frame = f"  at com.example.Widget.render(Widget.java:{rng.randint(10, 999)}) "
    trace = (frame * (_TOO_LARGE_ATTRIBUTE_CHARS // len(frame) + 1))[:_TOO_LARGE_ATTRIBUTE_CHARS]
    doc["attributes"] = {**doc["attributes"], "stacktrace": trace}
    return orjson.dumps(doc), RejectReason.TOO_LARGE


def _far_future(_: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    # A real calendar date (day clamped to 28 for February) in year 2999.
    text = doc["event_time"]
    day = min(int(text[8:10]), 28)
    doc["event_time"] = f"2999-{text[5:8]}{day:02d}{text[10:]}"
    return orjson.dumps(doc), RejectReason.FUTURE_TIME


def _impossible_date(rng: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    # Passes the RFC 3339 pattern but not the calendar.
    text = doc["event_time"]
    doc["event_time"] = f"{text[:5]}{rng.choice(('02-30', '02-31', '04-31', '09-31'))}{text[10:]}"
    return orjson.dumps(doc), RejectReason.BAD_TIME


def _no_offset(_: random.Random, doc: dict[str, Any]) -> tuple[bytes, RejectReason]:
    doc["event_time"] = doc["event_time"][:23]  # local time without its offset
    return orjson.dumps(doc), RejectReason.BAD_TIME


_MALFORMED_MAKERS: dict[str, _Maker] = {
    "truncated_json": _truncated_json,
    "plain_text": _plain_text,
    "latin1_text": _latin1_text,
    "missing_field": _missing_field,
    "bad_tenant_id": _bad_tenant_id,
    "email_user_id": _email_user_id,
    "too_large": _too_large,
    "far_future": _far_future,
    "impossible_date": _impossible_date,
    "no_offset": _no_offset,
}
# Oversized messages are rare and heavy (70 KB each): weight them down.
_MALFORMED_WEIGHTS = (3, 1, 2, 2, 2, 1, 1, 1, 2, 1)


__all__ = [
    "AccountTruth",
    "MessageKind",
    "Profile",
    "ScriptedAccount",
    "SimulatedMessage",
    "Simulation",
    "SimulatorError",
    "UndeliveredMessagesError",
    "assemble_messages",
    "check_arguments",
    "produce",
    "simulate",
    "write_jsonl",
    "write_truth",
]
