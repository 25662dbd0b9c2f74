"""The decision engine: a trigger in, a recorded decision and maybe a workflow out.

Pure Python over plain values (no Bytewax, no I/O): :class:`AccountDecisions`
is one account's decision state; the dataflow feeds it the account's risk
scores (the context rules look at), alerts (the triggers) and lifecycle changes
(consent, cancellation, recovery, plan), in event time.

For each trigger, in this order (the first that applies settles it):

1. the policy's first matching rule; none, or ``ignore`` → ``ignore`` (reason
   ``human_acknowledged`` when the rule asked about the account's alert statuses,
   ``when: {alert_status: acknowledged}``: a person is on it, automation stands back;
   those statuses come from a directory of the API's lifecycle table, read as of the
   wall clock, so like consent they are not replayable);
2. eligibility: cancelled, do-not-contact (the account's consent events and
   the consent directory: see :meth:`AccountDecisions._contact_allowed`), an
   active workflow of the same key → ``ignore`` / ``not_eligible_*``;
3. the workflow's cooldown → ``ignore`` / ``cooldown``;
4. the channel's rolling cap → ``ignore`` / ``cap_hit``;
5. the workflow's experiment: sticky bucket ``hash(tenant, account, key) % 100``;
   a held-out account → ``holdout`` (its episode is opened but nobody is
   contacted, so held-out and treated accounts keep the same cadence);
6. otherwise the rule's ``start_workflow`` or ``escalate``: a
   :class:`~schemas.workflow.WorkflowTrigger` whose id is fixed by (tenant,
   workflow, account, episode), and a contact on the channel.

Caps are checked before the experiment on purpose: an account the cap would
have spared is spared in both arms, so the holdout stays comparable.

Every decision, ``ignore`` included, becomes a :class:`DecisionRecord` whose
id is fixed by the alert and the policy version: a replay rewrites nothing.
Recovery (``payment_succeeded``, ``renewed``, ``usage_recovered``) ends the
account's open workflows that exit on it with a ``recovered`` signal;
cancellation and a do-not-contact change (event or directory) end them all.

**Judged as of the trigger's event time.** Inactivity alerts come from a
per-partition tracker, not the account's own feed, so they may arrive after
the account's later changes and scores. A trigger is therefore judged with
the score in force at its time (the last few are kept), cancellation as of
its time, a workflow as active if it was active then (the last ended episode
of each workflow is kept), and contacts up to its time; an episode it opens
before a cancellation or recovery already seen is ended at once with the
signal event order would have sent. Consent is the exception: the newest
word, if it is an opt-out, always counts (the customer has said no, now).
Not covered: two triggers whose workflows compete (same workflow key, or
one channel cap) reaching the engine in the opposite of event order decide
first come, first served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from decisions.policy import DecisionContext, Experiment, Policy, PolicyHolder, Recovery, Workflow
from schemas.alert import Alert, deterministic_id
from schemas.decision import (
    HOLDOUT,
    Decision,
    DecisionOutput,
    DecisionRecord,
    ExperimentAssignment,
    ReasonCode,
)
from schemas.lifecycle import AccountChange, ChangeKind
from schemas.score import RiskScore
from schemas.workflow import (
    SignalKind,
    WorkflowAction,
    WorkflowSignal,
    WorkflowTrigger,
    episode_of,
    trigger_id,
)


def experiment_bucket(tenant_id: str, account_id: str, experiment_key: str) -> int:
    """0..99, fixed by the three names alone (never by time or order)."""
    digest = hashlib.sha256(f"{tenant_id}\x1f{account_id}\x1f{experiment_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def assign_variant(experiment: Experiment, bucket: int) -> str:
    """Buckets below the holdout share are held out; the rest go to variants in order."""
    edge = experiment.holdout_percent
    if bucket < edge:
        return HOLDOUT
    for name, percent in experiment.variants:
        edge += percent
        if bucket < edge:
            return name
    return experiment.variants[-1][0] if experiment.variants else HOLDOUT


# (contact allowed, as of epoch s) for an account, or None: nothing on record.
ConsentLookup = Callable[[str, str], "tuple[bool, float] | None"]


def no_consent_records(_tenant: str, _account: str) -> tuple[bool, float] | None:
    return None


# The statuses of an account's alerts that people changed (acknowledged, snoozed,
# resolved, expired), as the API records them; empty: none.
AlertStatusLookup = Callable[[str, str], frozenset[str]]


def no_alert_statuses(_tenant: str, _account: str) -> frozenset[str]:
    return frozenset()


class DecisionEngine:
    """What every account's decisions share: the policy (fixed, or a
    :class:`~decisions.policy.PolicyHolder` that reloads it) and the consent directory."""

    __slots__ = ("_source", "alert_statuses", "consent", "feature_names")

    def __init__(self, policy: Policy | PolicyHolder, feature_names: tuple[str, ...],
                 consent: ConsentLookup = no_consent_records,
                 alert_statuses: AlertStatusLookup = no_alert_statuses) -> None:
        self._source = policy
        self.feature_names = feature_names
        self.consent = consent
        self.alert_statuses = alert_statuses

    @property
    def policy(self) -> Policy:
        source = self._source
        return source.current() if isinstance(source, PolicyHolder) else source


@dataclass(slots=True)
class _Open:
    """An open workflow episode (held out: opened, nobody contacted)."""

    episode: str
    trigger_id: str
    opened: float
    until: float
    held_out: bool


class ScoreContext(NamedTuple):
    """What a decision needs of one score (epoch seconds)."""

    at: float
    until: float
    tier: str
    risk: float
    score_id: str
    features: tuple[float, ...]


SCORES_KEPT = 4


class AccountDecisions:
    """One account's decision state; bounded by the policy's longest window."""

    __slots__ = ("_engine", "account_id", "cancelled_at", "closed", "consent", "contacts",
                 "endings",
                 "exposed", "last_started", "newest", "open", "plan", "reactivated_at",
                 "scores", "tenant_id")

    def __init__(self, engine: DecisionEngine, snapshot: tuple[object, ...] | None = None) -> None:
        self._engine = engine
        self.tenant_id = self.account_id = ""
        # The last few scores' contexts, oldest first: a trigger is judged with the
        # score in force at its own event time, even when a later score came first.
        self.scores: list[ScoreContext] = []
        self.plan: str | None = None
        self.consent: tuple[bool, float] | None = None
        self.cancelled_at: float | None = None
        self.reactivated_at: float | None = None
        # Recent cancellations and recoveries (time, kind, source id): an episode a
        # late-arriving trigger opens before one of them is ended by it at once,
        # as if the trigger had arrived first.
        self.endings: list[tuple[float, str, str]] = []
        # The last episode of each workflow that ended: (opened, ended, episode).
        self.closed: dict[str, tuple[float, float, str]] = {}
        self.open: dict[str, _Open] = {}
        self.last_started: dict[str, float] = {}
        self.contacts: dict[str, list[float]] = {}
        self.exposed: set[str] = set()
        self.newest = float("-inf")
        if snapshot is not None:
            (self.tenant_id, self.account_id, scores, self.plan, self.consent,
             self.cancelled_at, self.reactivated_at, self.endings, self.closed, opened,
             self.last_started, self.contacts, self.exposed,
             self.newest) = snapshot  # type: ignore[assignment]
            self.scores = [ScoreContext(*context) for context in scores]  # type: ignore[attr-defined]
            self.open = {key: _Open(*value) for key, value in opened.items()}  # type: ignore[attr-defined]

    def snapshot(self) -> tuple[object, ...]:
        """The state as plain values, copied: a snapshot must not change afterwards. The
        score contexts as plain tuples: pickling a named tuple calls its Python
        ``__getnewargs__``, and 4 contexts took 14.4 us to pickle against 2.8 (snapshots
        taken before 2026-11-30 hold named tuples, which restore alike)."""
        opened = {k: (o.episode, o.trigger_id, o.opened, o.until, o.held_out)
                  for k, o in self.open.items()}
        return (self.tenant_id, self.account_id, [tuple(c) for c in self.scores], self.plan,
                self.consent, self.cancelled_at,
                self.reactivated_at, list(self.endings), dict(self.closed), opened,
                dict(self.last_started),
                {channel: list(times) for channel, times in self.contacts.items()},
                set(self.exposed), self.newest)

    # -- inputs ------------------------------------------------------------

    def observe_score(self, score: RiskScore) -> list[DecisionOutput]:
        """A new risk context; a score made due by a decisive event decides on it."""
        if score.shadow:
            return []
        self._note(score.tenant_id, score.account_id, score.score_ts)
        out = self._follow_directory()
        context = ScoreContext(score.score_ts, score.expires_ts,
                               str(score.tier), score.risk, score.score_id, score.features)
        self.scores.append(context)
        if len(self.scores) > 1 and self.scores[-2].at > context.at:
            self.scores.sort(key=lambda c: c.at)  # a late score: keep time order
        del self.scores[:-SCORES_KEPT]
        if score.trigger_alert is not None:  # judged with the score it caused
            out += self.decide(score.trigger_alert, context)
        return out

    def observe_change(self, change: AccountChange) -> list[DecisionOutput]:
        """Consent, cancellation, recovery or plan: may end open workflows."""
        ts = change.event_time.timestamp()
        self._note(change.tenant_id, change.account_id, ts)
        self._expire(ts)
        if change.plan is not None:
            self.plan = change.plan
        kind = change.kind
        if kind is ChangeKind.CONSENT and change.contact_allowed is not None:
            if self.consent is not None and ts < self.consent[1]:
                return []  # an older word than the one on record changes nothing
            self.consent = (change.contact_allowed, ts)
            if not change.contact_allowed:
                return self._end(self.open, SignalKind.OPTED_OUT, change)
            return []
        if kind is ChangeKind.CANCELLED:
            if self.cancelled_at is None or ts > self.cancelled_at:
                self.cancelled_at = ts
            self.endings.append((ts, str(kind), change.source_id))
            return self._end(self.open, SignalKind.CANCELLED, change)
        if kind in (ChangeKind.REACTIVATED, ChangeKind.RENEWED) and (
            self.reactivated_at is None or ts > self.reactivated_at
        ):
            self.reactivated_at = ts
        if kind in _RECOVERIES:
            self.endings.append((ts, str(kind), change.source_id))
            recovery = _RECOVERIES[kind]
            workflows = self._engine.policy.workflows
            ending = [k for k in self.open
                      if k not in workflows or recovery in workflows[k].exits_on]
            return self._end(ending, SignalKind.RECOVERED, change)
        return []

    def decide(self, alert: Alert, score: ScoreContext | None = None) -> list[DecisionOutput]:
        """Decide what the alert calls for, and record why.

        ``score``: the risk context to judge it with; by default the score in
        force at the alert's event time.
        """
        engine = self._engine
        policy = engine.policy
        ts = alert.event_time.timestamp()
        self._note(alert.tenant_id, alert.account_id, ts)
        self._expire(ts)
        out: list[DecisionOutput] = self._follow_directory()
        score = score or self._score_at(ts)
        context = DecisionContext(
            trigger=alert.rule,
            tier=score.tier if score else None,
            features=dict(zip(engine.feature_names, score.features, strict=False))
            if score else {},
            plan=self.plan,
            alert_statuses=engine.alert_statuses(alert.tenant_id, alert.account_id),
        )
        rule = policy.match(context)
        decision_id = deterministic_id("decision", "v1", alert.tenant_id, alert.account_id,
                                       alert.alert_id, policy.version)
        outcome = _Outcome(decision_id, rule.name if rule else None,
                           rule.decision if rule else None, rule.workflow_key if rule else None)
        signals, out = out, []
        if rule is None:
            outcome.settle(Decision.IGNORE, ReasonCode.NO_RULE, "no rule matched")
        elif rule.decision is Decision.IGNORE and rule.when.alert_statuses is not None:
            statuses = sorted(rule.when.alert_statuses & context.alert_statuses)
            outcome.settle(Decision.IGNORE, ReasonCode.HUMAN_ACKNOWLEDGED,
                           f"rule {rule.name}: an alert of the account is {', '.join(statuses)}")
        elif rule.decision is Decision.IGNORE:
            outcome.settle(Decision.IGNORE, ReasonCode.RULE_IGNORE, f"rule {rule.name}")
        else:
            workflow = policy.workflows[rule.workflow_key or ""]
            self._apply(policy, rule.decision, workflow, alert, ts, score, outcome, out)
        record = DecisionRecord(
            decision_id=decision_id,
            tenant_id=alert.tenant_id,
            account_id=alert.account_id,
            alert_id=alert.alert_id,
            trigger=alert.rule,
            score_id=score.score_id if score else None,
            risk=score.risk if score else None,
            tier=context.tier,
            policy_version=policy.version,
            rule=outcome.rule,
            rule_decision=outcome.rule_decision,
            decision=outcome.decision,
            workflow_key=outcome.workflow_key,
            reasons=(outcome.reason,),
            detail=outcome.detail,
            experiment_key=outcome.experiment_key,
            variant=outcome.variant,
            trigger_id=outcome.trigger_id,
            decided_at=alert.event_time,
            ingested_at=alert.ingested_at,
        )
        return [*signals, record, *out]

    # -- the steps of a decision -------------------------------------------

    def _apply(self, policy: Policy, decided: Decision, workflow: Workflow, alert: Alert,
               ts: float, score: ScoreContext | None, outcome: _Outcome,
               out: list[DecisionOutput]) -> None:
        key = workflow.key
        if self._cancelled_as_of(ts):
            outcome.settle(Decision.IGNORE, ReasonCode.NOT_ELIGIBLE_CANCELLED,
                           "the account has cancelled")
            return
        if not self._contact_allowed(ts):
            outcome.settle(Decision.IGNORE, ReasonCode.NOT_ELIGIBLE_DO_NOT_CONTACT,
                           "the account asked not to be contacted")
            return
        active = self._active_episode(key, ts)
        if active is not None:
            outcome.settle(Decision.IGNORE, ReasonCode.NOT_ELIGIBLE_ACTIVE_WORKFLOW,
                           f"{key} episode {active} is active")
            return
        last = self.last_started.get(key)
        if last is not None and ts - last < workflow.cooldown_seconds:
            outcome.settle(Decision.IGNORE, ReasonCode.COOLDOWN,
                           f"{key} last started {_days(ts - last)} ago "
                           f"(cooldown {_days(workflow.cooldown_seconds)})")
            return
        cap = policy.caps.get(workflow.channel)
        if cap is not None:
            since = ts - cap.window_seconds
            recent = [t for t in self.contacts.get(workflow.channel, ()) if since < t <= ts]
            if len(recent) >= cap.max_contacts:
                outcome.settle(Decision.IGNORE, ReasonCode.CAP_HIT,
                               f"{workflow.channel}: {len(recent)} contact(s) in "
                               f"{_days(cap.window_seconds)} (cap {cap.max_contacts})")
                return
        experiment = policy.experiments.get(key)
        variant = None
        if experiment is not None:
            bucket = experiment_bucket(alert.tenant_id, alert.account_id, experiment.key)
            variant = assign_variant(experiment, bucket)
            outcome.experiment_key, outcome.variant = experiment.key, variant
            if experiment.key not in self.exposed:
                self.exposed.add(experiment.key)
                out.append(ExperimentAssignment(alert.tenant_id, alert.account_id, experiment.key,
                                                variant, bucket, alert.event_time, policy.version))
        episode = episode_of(alert.event_time)
        tid = trigger_id(alert.tenant_id, key, alert.account_id, episode)
        held_out = decided is Decision.HOLDOUT or variant == HOLDOUT
        self.open[key] = _Open(episode, tid, ts, ts + workflow.active_seconds, held_out)
        self.last_started[key] = ts
        if held_out:
            why = f"experiment {experiment.key}" if variant == HOLDOUT and experiment else \
                f"rule {outcome.rule}"
            outcome.settle(Decision.HOLDOUT, ReasonCode.HOLDOUT, f"held out by {why}")
            self._end_by_later(workflow, ts, out)
            return
        self.contacts.setdefault(workflow.channel, []).append(ts)
        outcome.settle(decided, ReasonCode.RULE_MATCHED, f"rule {outcome.rule}")
        outcome.trigger_id = tid
        out.append(WorkflowTrigger(
            trigger_id=tid,
            tenant_id=alert.tenant_id,
            account_id=alert.account_id,
            workflow_key=key,
            episode=episode,
            action=WorkflowAction(str(decided)),
            channel=workflow.channel,
            decision_id=outcome.decision_id,
            alert_id=alert.alert_id,
            trigger=alert.rule,
            score_id=score.score_id if score else None,
            risk=score.risk if score else None,
            tier=score.tier if score else None,
            reasons=alert.reasons,
            experiment_key=outcome.experiment_key,
            variant=variant,
            policy_version=policy.version,
            triggered_at=alert.event_time,
            active_until=datetime.fromtimestamp(ts + workflow.active_seconds, UTC),
            ingested_at=alert.ingested_at,
        ))
        self._end_by_later(workflow, ts, out)

    def _end_by_later(self, workflow: Workflow, ts: float, out: list[DecisionOutput]) -> None:
        """A cancellation or recovery already seen but later than ``ts`` ends the
        episode just opened, with the signal it would have sent in event order."""
        for at, kind, source_id in sorted(self.endings):
            if at <= ts:
                continue
            change_kind = ChangeKind(kind)
            if change_kind is ChangeKind.CANCELLED:
                signal = SignalKind.CANCELLED
            elif _RECOVERIES[change_kind] in workflow.exits_on:
                signal = SignalKind.RECOVERED
            else:
                continue
            change = AccountChange(self.tenant_id, self.account_id, change_kind,
                                   datetime.fromtimestamp(at, UTC), source_id)
            out += self._end([workflow.key], signal, change)
            return

    def _active_episode(self, key: str, ts: float) -> str | None:
        """The episode of ``key`` active at ``ts``: the open one, or one a change
        already seen ended after ``ts`` (it was still active then)."""
        if key in self.open:
            return self.open[key].episode
        closed = self.closed.get(key)
        if closed is not None and closed[0] <= ts < closed[1]:
            return closed[2]
        return None

    def _score_at(self, ts: float) -> ScoreContext | None:
        """The newest score at or before ``ts`` that still stands at ``ts``."""
        for context in reversed(self.scores):
            if context.at <= ts:
                return context if ts < context.until else None
        return None

    @property
    def cancelled(self) -> bool:
        """Cancelled, and not reactivated (or renewed) since."""
        return self.cancelled_at is not None and (
            self.reactivated_at is None or self.reactivated_at < self.cancelled_at
        )

    def _cancelled_as_of(self, ts: float) -> bool:
        """Cancelled at or before ``ts`` and not reactivated between (event time: a
        trigger that arrives after a later cancellation is judged as of its time,
        and the cancellation then ends what it opens)."""
        return (self.cancelled_at is not None and self.cancelled_at <= ts
                and not (self.reactivated_at is not None
                         and self.cancelled_at < self.reactivated_at <= ts))

    def _contact_allowed(self, ts: float) -> bool:
        """May the account be contacted for a trigger at ``ts``?

        Its words are its own consent events and the consent directory. The
        newest word of all, if it is an opt-out, always counts (whatever the
        trigger's time: the customer has said no, now); otherwise the newest
        word dated at or before ``ts`` decides, so a replay that meets a later
        opt-in in the directory still honours the opt-out in force at ``ts``.
        """
        words = [w for w in (self.consent, self._engine.consent(self.tenant_id,
                                                                 self.account_id)) if w]
        if not words:
            return True
        if not max(words, key=lambda word: word[1])[0]:
            return False
        dated = [w for w in words if w[1] <= ts]
        return max(dated, key=lambda word: word[1])[0] if dated else True

    def _follow_directory(self) -> list[DecisionOutput]:
        """An opt-out another system wrote to the directory ends open workflows too."""
        stored = self._engine.consent(self.tenant_id, self.account_id)
        if stored is None or stored[0] or (self.consent is not None
                                           and stored[1] <= self.consent[1]):
            return []
        self.consent = stored
        at = datetime.fromtimestamp(stored[1], UTC)
        change = AccountChange(self.tenant_id, self.account_id, ChangeKind.CONSENT, at,
                               "contact_preferences", contact_allowed=False)
        return self._end(self.open, SignalKind.OPTED_OUT, change)

    def _end(self, keys: Iterable[str], kind: SignalKind,
             change: AccountChange) -> list[DecisionOutput]:
        """End the open episodes among ``keys`` that opened before ``change`` happened
        (a late recovery does not end an episode that opened after it)."""
        signals: list[DecisionOutput] = []
        ts = change.event_time.timestamp()
        for key in [k for k in keys if self.open[k].opened <= ts]:
            episode = self.open.pop(key)
            self.closed[key] = (episode.opened, ts, episode.episode)
            if episode.held_out:
                continue  # nobody was contacted: nothing to tell
            signals.append(WorkflowSignal.make(
                episode.trigger_id, change.tenant_id, change.account_id, key, episode.episode,
                kind, str(change.kind), change.source_id, change.event_time,
            ))
        return signals

    def _note(self, tenant_id: str, account_id: str, ts: float) -> None:
        self.tenant_id, self.account_id = tenant_id, account_id
        self.newest = max(self.newest, ts)

    def _expire(self, ts: float) -> None:
        """Forget what no rule can use any more as of ``ts``: bounded state."""
        if not (self.endings or self.closed or self.open or self.last_started or self.contacts):
            return  # the common case: nothing to look at (called per batch)
        policy = self._engine.policy
        horizon = ts - policy.longest_memory_seconds
        self.endings = [e for e in self.endings if e[0] > horizon]
        for key in [k for k, c in self.closed.items() if c[1] <= horizon]:
            del self.closed[key]
        for key in [k for k, o in self.open.items() if o.until <= ts]:
            del self.open[key]
        for key in [k for k, t in self.last_started.items()
                    if k not in policy.workflows or ts - t >= policy.workflows[k].cooldown_seconds]:
            del self.last_started[key]
        for channel, times in list(self.contacts.items()):
            cap = policy.caps.get(channel)
            window = cap.window_seconds if cap is not None else 0.0
            kept = [t for t in times if t > ts - window]
            if kept:
                self.contacts[channel] = kept
            else:
                del self.contacts[channel]

    def forgettable(self) -> bool:
        """True when nothing is left that a later decision would need.

        An opt-out and a cancellation are kept (until the wall-clock idle TTL
        of the dataflow): the consent directory learns of an opt-out only at
        its next refresh, and a cancelled account stays ineligible.
        """
        self._expire(self.newest)
        return not (self.open or self.last_started or self.contacts
                    or self.cancelled
                    or (bool(self.scores) and self.newest < self.scores[-1].until)
                    or (self.consent is not None and not self.consent[0]))


_RECOVERIES = {
    ChangeKind.PAYMENT_SUCCEEDED: Recovery.PAYMENT_SUCCEEDED,
    ChangeKind.RENEWED: Recovery.RENEWED,
    ChangeKind.USAGE_RECOVERED: Recovery.USAGE_RECOVERED,
}


@dataclass(slots=True)
class _Outcome:
    """A decision being settled (mutable while the steps run)."""

    decision_id: str
    rule: str | None
    rule_decision: Decision | None
    workflow_key: str | None
    decision: Decision = Decision.IGNORE
    reason: ReasonCode = ReasonCode.NO_RULE
    detail: str = ""
    experiment_key: str | None = None
    variant: str | None = None
    trigger_id: str | None = None

    def settle(self, decision: Decision, reason: ReasonCode, detail: str) -> None:
        self.decision, self.reason, self.detail = decision, reason, detail


def _days(seconds: float) -> str:
    days = seconds / 86_400
    return f"{days:g}d" if days >= 1 else f"{seconds / 3_600:g}h"
