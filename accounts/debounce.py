"""When an account is due for a risk score, in event time, and the request it makes.

Pure Python: the account kernel asks :class:`ScoringDebounce` per event; a due
account becomes a :class:`ScoreRequest` that ``scoring`` turns into a score.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.alert import Alert


class ScoringDebounce:
    """When an account is due for a score, and the rule risk standing, in event time.

    State: the last score time and, per rule-risk level, until when it stands
    (at most one entry per severity).
    """

    __slots__ = ("last_scored", "rules")

    def __init__(
        self, snapshot: tuple[float | None, tuple[tuple[float, float], ...]] | None = None
    ) -> None:
        last, rules = snapshot or (None, ())
        self.last_scored: float | None = last
        self.rules: dict[float, float] = dict(rules)  # risk -> stands until (epoch s)

    def due(self, ts: float, debounce_s: float, *, bypass: bool) -> bool:
        """True if an event at ``ts`` should trigger a score (and records it)."""
        if bypass or self.last_scored is None or ts - self.last_scored >= debounce_s:
            self.last_scored = ts
            return True
        return False

    def note_rule(self, risk: float, ts: float, ttl_s: float) -> None:
        """A decisive event: its risk stands for ``ttl_s`` of event time."""
        self.rules[risk] = max(self.rules.get(risk, 0.0), ts + ttl_s)

    def rule_risk_at(self, ts: float) -> float:
        """The highest rule risk still standing at ``ts``."""
        for risk in [r for r, until in self.rules.items() if until <= ts]:
            del self.rules[risk]  # lapsed: nothing to remember
        return max(self.rules, default=0.0)

    def snapshot(self) -> tuple[float | None, tuple[tuple[float, float], ...]]:
        return self.last_scored, tuple(self.rules.items())


@dataclass(slots=True, init=False)
class ScoreRequest:
    """An account due for a score, with its features as of ``as_of`` (epoch s).

    Its ``__init__`` is written out: a dataclass's generated one runs as interpreted
    Python even in a compiled module, and frozen, it sets each field through
    ``object.__setattr__`` (dataclasses' ``__init__`` were 6 % of the shards' samples
    in a native profile of the 7-day benchmark's shape); mypyc compiles this one to
    plain stores. Not frozen for that reason; nothing changes a request once made."""

    tenant_id: str
    account_id: str
    values: tuple[float, ...]
    as_of: float
    rule_risk: float
    trigger_event_id: str
    ingested_at: float
    # The decisive (tier-1) alert that made the account due, if any: the
    # decision on it waits for this score, so it sees the risk the event caused.
    alert: Alert | None

    def __init__(self, tenant_id: str, account_id: str, values: tuple[float, ...],
                 as_of: float, rule_risk: float, trigger_event_id: str,
                 ingested_at: float = 0.0, alert: Alert | None = None) -> None:
        self.tenant_id = tenant_id
        self.account_id = account_id
        self.values = values
        self.as_of = as_of
        self.rule_risk = rule_risk
        self.trigger_event_id = trigger_event_id
        self.ingested_at = ingested_at
        self.alert = alert
