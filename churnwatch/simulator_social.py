"""A seeded, deterministic generator of a consumer social app's event stream.

The second simulated product (``churnwatch simulate --product social``), unlike the
B2B SaaS of :mod:`churnwatch.simulator` in every way that matters to a churn model:
one person per account, sessions at any hour and busier at weekends, an event
taxonomy of its own (``app.opened``, ``story.viewed``, ``post.liked``,
``comment.created``, ``message.sent``, ``post.created``, ``friend.added``), and a
monthly subscription whose renewal is where churn is decided. Nobody winds down
before leaving: at each renewal a subscriber stays or cancels with a probability
set by the LEVEL of their use over the 28 days before (sessions) and its MIX
(the share of social actions: messages, comments, posts, friends, against
passive ones: stories watched, posts liked), higher at the first renewals and
for a subscriber who never added a friend. A few renewals fail to charge and
end in cancellation when dunning does not recover them. About 2-3 % of
subscribers cancel a month.

Each subscriber has a habitual level (log-normal across subscribers) and a mix
(a persona: creator, connector or viewer, jittered per subscriber); their daily
level wanders around the habit (an AR(1) process in log space), so accounts
differ, and the same account differs from month to month, but nothing trends.
Scripts start 28 days before the window so the first renewals are judged on a
full month; what falls before the window is not emitted.

Same guarantees as the SaaS simulator, through the same machinery
(:func:`churnwatch.simulator.assemble_messages`): one ``random.Random(seed)``,
integer-millisecond times, byte-identical output for the same arguments,
duplicates and malformed messages labelled with the reason the validator must
give, and a ground truth (every account, every renewal judged, with its
probability and outcome).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from churnwatch.simulator import (
    _MAX_EMIT_JITTER_MS,
    SIMULATION_START,
    AccountTruth,
    Simulation,
    SimulatorError,
    assemble_messages,
    assign_shares,
    check_arguments,
)
from schemas.event import format_time


class Persona(StrEnum):
    """How a subscriber uses the app: the mix of their actions."""

    CREATOR = "creator"  # posts and comments
    CONNECTOR = "connector"  # messages friends
    VIEWER = "viewer"  # watches stories and likes, rarely says anything


class RenewalOutcome(StrEnum):
    """What happened at a renewal."""

    RENEWED = "renewed"
    CANCELLED = "cancelled"  # the subscriber chose to leave
    RECOVERED = "recovered"  # the charge failed, a retry succeeded
    PAYMENT_FAILED = "payment_failed"  # the charge never succeeded: cancelled


@dataclass(frozen=True, slots=True)
class RenewalTruth:
    """One renewal judged: the activity of the 28 days before it, the probability of
    a voluntary cancellation it gave, and what happened."""

    tenant_id: str
    account_id: str
    at: datetime
    period: int  # months paid before this renewal (1: the first renewal)
    sessions_28d: int
    social_actions_28d: int
    passive_actions_28d: int
    friends_added: int  # since the script began (the sign-up, or 28 days before the window)
    cancel_probability: float
    outcome: RenewalOutcome


@dataclass(frozen=True, slots=True)
class SocialSimulation(Simulation):
    """A social app's stream. ``accounts[i].profile`` is the persona, ``seats`` is 1;
    ``renewals`` are every renewal judged inside the window."""

    renewals: tuple[RenewalTruth, ...] = ()

    def truth_document(self) -> dict[str, Any]:
        return {
            "product": "social",
            **self.run_document(),
            "accounts": [
                {
                    "tenant_id": truth.tenant_id,
                    "account_id": truth.account_id,
                    "persona": str(truth.profile),
                    "signed_up_at": (
                        format_time(truth.signed_up_at) if truth.signed_up_at else None
                    ),
                    "churned_at": format_time(truth.churned_at) if truth.churned_at else None,
                    "churn_reason": truth.churn_reason,
                }
                for truth in self.accounts
            ],
            "renewals": [
                {
                    "tenant_id": r.tenant_id,
                    "account_id": r.account_id,
                    "at": format_time(r.at),
                    "period": r.period,
                    "sessions_28d": r.sessions_28d,
                    "social_actions_28d": r.social_actions_28d,
                    "passive_actions_28d": r.passive_actions_28d,
                    "friends_added": r.friends_added,
                    "cancel_probability": round(r.cancel_probability, 6),
                    "outcome": str(r.outcome),
                }
                for r in self.renewals
            ],
        }


# --- the shape of the simulated app ----------------------------------------------------

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_MINUTE_MS = 60_000
_WARM_UP_DAYS = 28  # scripts start this long before the window (see the module doc)
_JUDGED_DAYS = 28  # a renewal is judged on the activity of this many days before it

_PERSONA_SHARES = ((Persona.CREATOR, 0.12), (Persona.CONNECTOR, 0.38))  # the rest: viewers

PASSIVE_ACTIONS = ("story.viewed", "post.liked")
SOCIAL_ACTIONS = ("comment.created", "message.sent", "post.created", "friend.added")
_ACTIONS = (*PASSIVE_ACTIONS, *SOCIAL_ACTIONS)
# Weights of each action in a session, per persona (before per-subscriber jitter).
_MIX = {
    Persona.CREATOR: (4.0, 3.0, 1.5, 1.0, 1.2, 0.08),
    Persona.CONNECTOR: (3.0, 2.0, 0.6, 3.5, 0.15, 0.08),
    Persona.VIEWER: (6.0, 3.0, 0.15, 0.35, 0.03, 0.03),
}
_MEDIA = ("photo", "video", "text")
_PLATFORMS = ("ios", "android", "web")
_PLATFORM_WEIGHTS = (5, 4, 1)
_SOURCES = {"ios": "ios-app", "android": "android-app", "web": "web-app"}
_STORES = {"ios": "app-store", "android": "play-store", "web": "billing-service"}
_PRICE_CENTS = 499
# Subscribers live in many time zones (minutes from UTC).
_OFFSETS_MINUTES = (-480, -300, -180, 0, 60, 120, 330, 540)

# Habitual sessions a day: log-normal across subscribers.
_LEVEL_MEDIAN = 1.3
_LEVEL_SIGMA = 0.9
# Day-to-day wander of the level around the habit (log space, AR(1)).
_WANDER_KEEP = 0.93
_WANDER_SIGMA = 0.12
_WEEKEND_FACTOR = 1.25
_MAX_ACTIONS_PER_SESSION = 12
_ACTION_CONTINUE = 0.62  # after each action, another one follows with this chance

# Voluntary cancellation at a renewal: logistic in the month's level and mix.
_CANCEL_BASE = -1.35
_CANCEL_LEVEL = 3.6  # times min(1, sessions_28d / 28): a session a day and more retains
_CANCEL_MIX = 3.3  # times the share of social actions
_CANCEL_DORMANT = 1.5  # no session at all in the month
_CANCEL_FIRST_RENEWALS = {1: 1.0, 2: 0.5}  # newcomers decide more easily
_CANCEL_NO_FRIENDS = 0.6  # no friend added since the script began
_CANCEL_REASONS = ("not_using", "lost_interest", "too_expensive", "friends_left")

# Involuntary churn: a charge fails, dunning retries, the card is never fixed.
_PAYMENT_FAILURE_SHARE = 0.015
_PAYMENT_RETRY_DAYS = 3
_PAYMENT_RETRIES = 2
_RETRY_SUCCESS = 0.35
_FAILURE_CODES = ("card_declined", "insufficient_funds", "expired_card")

# Subscribers who subscribe during the window (the rest were there before).
_NEW_SUBSCRIBER_SHARE = 0.15
# Months already paid by those there before: 1 + exponential of this mean.
_MEAN_PRIOR_MONTHS = 8.0

# Nothing of a cancelled account may be emitted this close before its cancellation, so
# the sources' lag (assemble_messages) cannot put an older event after it.
_QUIET_BEFORE_CANCEL_MS = 2 * _MAX_EMIT_JITTER_MS

# (event time in ms from start, event_type, user_id, source, attributes)
_Raw = tuple[int, str, str | None, str, dict[str, Any]]


@dataclass(slots=True)
class _Subscriber:
    """The mutable state of one account while its script runs."""

    number: int
    tenant_id: str
    account_id: str
    persona: Persona
    level: float  # habitual sessions a day
    mix: tuple[float, ...]  # cumulative weights over _ACTIONS
    platform: str
    offset_ms: int
    billing_day: int
    period: int  # months paid so far
    friends_added: int = 0
    events: list[_Raw] = field(default_factory=list)
    # Daily (sessions, social actions, passive actions), for the judged window.
    daily: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        return f"u-{self.number:06d}"


# --- public API ------------------------------------------------------------------------


def simulate_social(
    *,
    accounts: int = 300,
    days: int = 30,
    seed: int = 7,
    start: datetime = SIMULATION_START,
    tenants: Sequence[str] = ("chirp",),
    duplicate_rate: float = 0.01,
    malformed_rate: float = 0.002,
) -> SocialSimulation:
    """Generate ``days`` days of a social app with ``accounts`` subscribers.

    ``duplicate_rate`` is a share of the valid messages, ``malformed_rate`` a share
    of all messages (every malformed variety at least once from 100 account-days);
    as in :func:`churnwatch.simulator.simulate`.
    """
    check_arguments(accounts, days, start, tenants, duplicate_rate, malformed_rate)
    rng = random.Random(seed)
    start = start.astimezone(UTC)
    scripted_days = _WARM_UP_DAYS + days
    dates = tuple(
        (start + timedelta(days=d - _WARM_UP_DAYS)).date() for d in range(scripted_days)
    )
    personas = assign_shares(rng, accounts, _PERSONA_SHARES, Persona.VIEWER)

    truths: list[AccountTruth] = []
    renewals: list[RenewalTruth] = []
    scripted: list[_Subscriber] = []
    for index, persona in enumerate(personas):
        subscriber = _new_subscriber(rng, index + 1, tenants[index % len(tenants)], persona)
        # Day of the script on which the subscription starts (warm-up days count).
        first_day = (
            _WARM_UP_DAYS + rng.randrange(days)
            if rng.random() < _NEW_SUBSCRIBER_SHARE
            else 0
        )
        judged, churn = _script(rng, subscriber, first_day, dates, start)
        _trim(subscriber, days * _DAY_MS, churn)
        if churn is not None and churn[0] >= start + timedelta(days=days):
            churn = None  # dunning decided inside the window, ended after it
        scripted.append(subscriber)
        renewals.extend(judged)
        truths.append(
            AccountTruth(
                tenant_id=subscriber.tenant_id,
                account_id=subscriber.account_id,
                profile=str(persona),
                seats=1,
                churned_at=churn[0] if churn else None,
                churn_reason=churn[1] if churn else None,
                disengage_from=None,
                signed_up_at=(
                    start + timedelta(days=first_day - _WARM_UP_DAYS) if first_day else None
                ),
            )
        )

    messages = assemble_messages(
        rng, scripted, start, accounts * days, duplicate_rate, malformed_rate
    )
    return SocialSimulation(
        messages=messages,
        accounts=tuple(truths),
        seed=seed,
        start=start,
        days=days,
        renewals=tuple(renewals),
    )


def cancel_probability(
    sessions_28d: int, social_actions: int, passive_actions: int, period: int, friends: int
) -> float:
    """The chance a subscriber cancels at a renewal, given the 28 days before it."""
    actions = social_actions + passive_actions
    social_share = social_actions / actions if actions else 0.0
    logit = (
        _CANCEL_BASE
        - _CANCEL_LEVEL * min(1.0, sessions_28d / 28.0)
        - _CANCEL_MIX * social_share
        + (_CANCEL_DORMANT if sessions_28d == 0 else 0.0)
        + _CANCEL_FIRST_RENEWALS.get(period, 0.0)
        + (_CANCEL_NO_FRIENDS if friends == 0 else 0.0)
    )
    return 1.0 / (1.0 + math.exp(-logit))


# --- subscribers and their scripts -----------------------------------------------------


def _new_subscriber(
    rng: random.Random, number: int, tenant_id: str, persona: Persona
) -> _Subscriber:
    level = _LEVEL_MEDIAN * math.exp(rng.gauss(0.0, _LEVEL_SIGMA))
    weights = [w * rng.uniform(0.5, 1.5) for w in _MIX[persona]]
    total = sum(weights)
    cumulative, running = [], 0.0
    for weight in weights:
        running += weight / total
        cumulative.append(running)
    platform = rng.choices(_PLATFORMS, _PLATFORM_WEIGHTS)[0]
    return _Subscriber(
        number=number,
        tenant_id=tenant_id,
        account_id=f"user-{number:06d}",
        persona=persona,
        level=level,
        mix=tuple(cumulative),
        platform=platform,
        offset_ms=rng.choice(_OFFSETS_MINUTES) * _MINUTE_MS,
        billing_day=rng.randint(1, 28),
        period=1 + int(rng.expovariate(1.0 / _MEAN_PRIOR_MONTHS)),
    )


def _script(
    rng: random.Random,
    subscriber: _Subscriber,
    first_day: int,
    dates: tuple[date, ...],
    start: datetime,
) -> tuple[list[RenewalTruth], tuple[datetime, str] | None]:
    """Emit the subscriber's life (script days; day ``_WARM_UP_DAYS`` is the window's
    first). Returns the renewals judged inside the window and the churn (time, reason),
    if it fell inside the window."""
    judged: list[RenewalTruth] = []
    origin_ms = -_WARM_UP_DAYS * _DAY_MS  # script day 0, in ms from the window's start
    if first_day:
        # A newcomer subscribes today; renewals fall on this day of the month.
        subscriber.billing_day = min(28, dates[first_day].day)
        subscriber.period = 0
        # Early in their day, before any session of it (sessions begin at 07:00 local);
        # east of UTC, on the window's first day, that can fall before the window opens:
        # then as it opens, so the subscription is seen (what precedes it is not emitted).
        at_ms = max(0, origin_ms + first_day * _DAY_MS
                    + rng.randrange(6 * _HOUR_MS, 7 * _HOUR_MS) - subscriber.offset_ms)
        _charge(rng, subscriber, at_ms, dates[first_day], started=True)
    wander = rng.gauss(0.0, _WANDER_SIGMA / math.sqrt(1 - _WANDER_KEEP**2))
    # A cancellation decided but not yet due (dunning runs for days): (time, reason).
    pending: tuple[int, str] | None = None
    for day in range(first_day, len(dates)):
        day_ms = origin_ms + day * _DAY_MS
        if pending is not None and pending[0] < day_ms + _DAY_MS:
            return judged, _cancel(subscriber, start, *pending)
        if day > first_day and dates[day].day == subscriber.billing_day:
            # The store renews in the small hours of the subscriber's own day, after the
            # whole of the (local) days judged: nothing used after the verdict counts.
            at_ms = day_ms + rng.randint(1 * _HOUR_MS, 6 * _HOUR_MS) - subscriber.offset_ms
            if at_ms < 0:
                # Everyone scripted is a subscriber when the window opens: the warm-up
                # only gives the first renewals a month to be judged on.
                _charge(rng, subscriber, at_ms, dates[day])
            else:
                renewal, churn_ms, reason = _renew(rng, subscriber, at_ms, dates[day])
                judged.append(_judged(subscriber, renewal, start, at_ms))
                if churn_ms == at_ms:  # the subscriber chose to leave: it ends now
                    return judged, _cancel(subscriber, start, churn_ms, reason)
                if churn_ms is not None:  # dunning failed: it ends when it gives up
                    pending = (churn_ms, reason)
        wander = _WANDER_KEEP * wander + rng.gauss(0.0, _WANDER_SIGMA)
        weekend = dates[day].weekday() >= 5
        expected = subscriber.level * math.exp(wander) * (_WEEKEND_FACTOR if weekend else 1.0)
        subscriber.daily.append(_use_app(rng, subscriber, day_ms, expected))
    if pending is not None:
        return judged, _cancel(subscriber, start, *pending)
    return judged, None


def _cancel(
    subscriber: _Subscriber, start: datetime, at_ms: int, reason: str
) -> tuple[datetime, str]:
    subscriber.events.append((at_ms, "subscription.cancelled", None,
                              _STORES[subscriber.platform], {"reason_code": reason}))
    return start + timedelta(milliseconds=at_ms), reason


def _use_app(
    rng: random.Random, subscriber: _Subscriber, day_ms: int, expected_sessions: float
) -> tuple[int, int, int]:
    """One day's sessions; returns (sessions, social actions, passive actions)."""
    sessions = _poisson(rng, expected_sessions)
    social = passive = 0
    source = _SOURCES[subscriber.platform]
    user = subscriber.user_id
    for _ in range(sessions):
        at_ms = day_ms + _local_moment(rng, subscriber, 7, 24)
        subscriber.events.append(
            (at_ms, "app.opened", user, source, {"platform": subscriber.platform})
        )
        for _ in range(_MAX_ACTIONS_PER_SESSION):
            at_ms += rng.randint(5_000, 4 * _MINUTE_MS)
            action = _ACTIONS[_pick(subscriber.mix, rng.random())]
            subscriber.events.append((at_ms, action, user, source, _attributes(rng, action)))
            if action in PASSIVE_ACTIONS:
                passive += 1
            else:
                social += 1
                if action == "friend.added":
                    subscriber.friends_added += 1
            if rng.random() >= _ACTION_CONTINUE:
                break
    return sessions, social, passive


def _attributes(rng: random.Random, action: str) -> dict[str, Any]:
    if action == "post.created":
        return {"media": rng.choice(_MEDIA)}
    if action == "message.sent":
        return {"thread": "group" if rng.random() < 0.3 else "direct"}
    return {}


def _pick(cumulative: tuple[float, ...], roll: float) -> int:
    for index, bound in enumerate(cumulative):
        if roll < bound:
            return index
    return len(cumulative) - 1


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: exact, and only ``rng.random()`` (deterministic across platforms)."""
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _local_moment(rng: random.Random, subscriber: _Subscriber, from_hour: int, to_hour: int) -> int:
    """A moment of the day between local ``from_hour`` and ``to_hour``, busier in the
    evening, as ms from the UTC day's start."""
    local_ms = int(rng.triangular(from_hour, to_hour, 20.5) * _HOUR_MS)
    return min(local_ms, to_hour * _HOUR_MS - 1) - subscriber.offset_ms


def _renew(
    rng: random.Random, subscriber: _Subscriber, at_ms: int, on: date
) -> tuple[tuple[RenewalOutcome, float, int, int, int], int | None, str]:
    """A renewal: judge the month, then cancel or charge. Returns ((outcome,
    probability, sessions, social, passive), cancellation time or None, reason)."""
    month = subscriber.daily[-_JUDGED_DAYS:]
    sessions = sum(d[0] for d in month)
    social = sum(d[1] for d in month)
    passive = sum(d[2] for d in month)
    probability = cancel_probability(
        sessions, social, passive, subscriber.period, subscriber.friends_added
    )
    store = _STORES[subscriber.platform]
    if rng.random() < probability:
        reason = _cancel_reason(rng, sessions, social, passive)
        return (RenewalOutcome.CANCELLED, probability, sessions, social, passive), at_ms, reason
    if rng.random() < _PAYMENT_FAILURE_SHARE:
        failure = rng.choice(_FAILURE_CODES)
        subscriber.events.append((at_ms, "billing.payment_failed", None, store,
                                  _payment(subscriber, failure)))
        for retry in range(1, _PAYMENT_RETRIES + 1):
            retry_ms = at_ms + retry * _PAYMENT_RETRY_DAYS * _DAY_MS
            if rng.random() < _RETRY_SUCCESS:
                _charge(rng, subscriber, retry_ms, on)
                return (RenewalOutcome.RECOVERED, probability, sessions, social, passive), \
                    None, ""
            subscriber.events.append((retry_ms, "billing.payment_failed", None, store,
                                      _payment(subscriber, failure)))
        cancel_ms = at_ms + _PAYMENT_RETRIES * _PAYMENT_RETRY_DAYS * _DAY_MS + _DAY_MS
        return (RenewalOutcome.PAYMENT_FAILED, probability, sessions, social, passive), \
            cancel_ms, "payment_failed"
    _charge(rng, subscriber, at_ms, on)
    return (RenewalOutcome.RENEWED, probability, sessions, social, passive), None, ""


def _cancel_reason(rng: random.Random, sessions: int, social: int, passive: int) -> str:
    if sessions < 4:
        return "not_using"
    if social < max(1, passive // 10):
        return rng.choice(("lost_interest", "friends_left"))
    return rng.choice(_CANCEL_REASONS)


def _payment(subscriber: _Subscriber, failure_code: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"amount_cents": _PRICE_CENTS, "currency": "USD"}
    if failure_code is not None:
        attributes["failure_code"] = failure_code
    return attributes


def _charge(
    rng: random.Random, subscriber: _Subscriber, at_ms: int, on: date, *, started: bool = False
) -> None:
    """A successful charge: the subscription starts or renews for a month."""
    store = _STORES[subscriber.platform]
    subscriber.period += 1
    renews_at = datetime(
        on.year + on.month // 12, on.month % 12 + 1, subscriber.billing_day, tzinfo=UTC
    )
    subscriber.events.append((at_ms, "billing.payment_succeeded", None, store,
                              _payment(subscriber)))
    subscriber.events.append((
        at_ms + rng.randint(500, 3_000),
        "subscription.started" if started else "subscription.renewed",
        None,
        store,
        {"renews_at": format_time(renews_at), "period": subscriber.period},
    ))


def _judged(
    subscriber: _Subscriber,
    renewal: tuple[RenewalOutcome, float, int, int, int],
    start: datetime,
    at_ms: int,
) -> RenewalTruth:
    outcome, probability, sessions, social, passive = renewal
    return RenewalTruth(
        tenant_id=subscriber.tenant_id,
        account_id=subscriber.account_id,
        at=start + timedelta(milliseconds=at_ms),
        # The period the renewal closed (a successful charge has already counted it).
        period=subscriber.period - (outcome in (RenewalOutcome.RENEWED,
                                                RenewalOutcome.RECOVERED)),
        sessions_28d=sessions,
        social_actions_28d=social,
        passive_actions_28d=passive,
        friends_added=subscriber.friends_added,
        cancel_probability=probability,
        outcome=outcome,
    )


def _trim(subscriber: _Subscriber, window_ms: int, churn: tuple[datetime, str] | None) -> None:
    """Keep what falls in the window and, for a cancelled account, before its
    cancellation (the cancellation itself included)."""
    events = subscriber.events
    if churn is None:
        subscriber.events = [e for e in events if 0 <= e[0] < window_ms]
        return
    cancel_ms = next(e[0] for e in events if e[1] == "subscription.cancelled")
    if cancel_ms >= window_ms:
        subscriber.events = [e for e in events if 0 <= e[0] < window_ms]
        return
    quiet_from = cancel_ms - _QUIET_BEFORE_CANCEL_MS
    subscriber.events = [
        e for e in events
        if (0 <= e[0] < quiet_from) or (e[0] == cancel_ms and e[1] == "subscription.cancelled")
    ]


def churn_rate(simulation: SocialSimulation) -> float:
    """Cancellations (voluntary and involuntary) per renewal judged in the window: the
    monthly churn rate."""
    if not simulation.renewals:
        return 0.0
    lost = sum(
        r.outcome in (RenewalOutcome.CANCELLED, RenewalOutcome.PAYMENT_FAILED)
        for r in simulation.renewals
    )
    return lost / len(simulation.renewals)


__all__ = [
    "PASSIVE_ACTIONS",
    "SOCIAL_ACTIONS",
    "Persona",
    "RenewalOutcome",
    "RenewalTruth",
    "SimulatorError",
    "SocialSimulation",
    "cancel_probability",
    "churn_rate",
    "simulate_social",
]
