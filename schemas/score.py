"""Risk score v1: one score of one account by one model (``risk_scores``, ``churn.scores``).

The published contract of the ``churn.scores`` message (:meth:`RiskScore.to_document`) is
``score.v1.schema.json`` beside this module, with an example in ``examples/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from schemas.alert import Alert
from schemas.event import format_time


class RiskTier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# A score as plain values (RiskScore.to_row): its fields in order, the tier as its
# text and the two times as integer microseconds since the epoch (UTC).
ScoreRow = tuple[str, str, str, str, str, float, float, float, str, tuple[str, ...], int, int,
                 str, bool, float, tuple[float, ...], Alert | None]


@dataclass(slots=True, init=False, unsafe_hash=True)
class RiskScore:
    """One score of one account by one model (a row of ``risk_scores``).

    Compiled (:mod:`churnwatch.native`), with its ``__init__`` written out, as
    :class:`~accounts.debounce.ScoreRequest`'s: one is made per due account, most
    are never published, and a frozen dataclass's generated ``__init__`` (one
    ``object.__setattr__`` per field, interpreted even in a compiled module) took
    1.6 us of the 5.5 us a request cost in ``scoring.risk.score_batch``; the tier
    tracker, the publication and the decisions then read its fields natively. Not
    frozen for that reason: nothing changes a score once made. Equal and hashed by
    its published fields, as when it was frozen.
    """

    score_id: str
    tenant_id: str
    account_id: str
    model_version: str
    feature_version: str
    ml_risk: float
    rule_risk: float
    risk: float
    tier: RiskTier
    reasons: tuple[str, ...]
    score_time: datetime
    expires_at: datetime
    trigger_event_id: str
    shadow: bool
    ingested_at: float = field(compare=False)
    # For the decision engine, not published: the feature vector scored (in the
    # feature definitions' order) and the decisive alert that made it due.
    features: tuple[float, ...] = field(compare=False, repr=False)
    trigger_alert: Alert | None = field(compare=False, repr=False)
    # score_time and expires_at in epoch seconds, worked out once: the risk tier, the
    # publication and the decisions each need them (datetime.timestamp() is about
    # 2,100 instructions, and a score's two times were converted up to 7 times).
    score_ts: float = field(init=False, compare=False, repr=False)
    expires_ts: float = field(init=False, compare=False, repr=False)

    def __new__(cls, *args: Any, **kwargs: Any) -> RiskScore:
        """A score pickled before :meth:`__reduce__` is made bare here, then filled by
        :meth:`__setstate__`: without this, the ``__new__`` mypyc generates would call
        ``__init__``, to which such a pickle gives no arguments.

        With a ``__new__`` of its own, compiled code constructs a score through
        ``*args, **kwargs``: a hot path passes the fields positionally (keywords cost a
        dict per score; ``scoring.risk.score_batch``, :meth:`from_row`)."""
        return object.__new__(cls)

    def __init__(
        self,
        score_id: str,
        tenant_id: str,
        account_id: str,
        model_version: str,
        feature_version: str,
        ml_risk: float,
        rule_risk: float,
        risk: float,
        tier: RiskTier,
        reasons: tuple[str, ...],
        score_time: datetime,
        expires_at: datetime,
        trigger_event_id: str,
        shadow: bool = False,
        ingested_at: float = 0.0,
        features: tuple[float, ...] = (),
        trigger_alert: Alert | None = None,
    ) -> None:
        self.score_id = score_id
        self.tenant_id = tenant_id
        self.account_id = account_id
        self.model_version = model_version
        self.feature_version = feature_version
        self.ml_risk = ml_risk
        self.rule_risk = rule_risk
        self.risk = risk
        self.tier = tier
        self.reasons = reasons
        self.score_time = score_time
        self.expires_at = expires_at
        self.trigger_event_id = trigger_event_id
        self.shadow = shadow
        self.ingested_at = ingested_at
        self.features = features
        self.trigger_alert = trigger_alert
        self.score_ts = score_time.timestamp()
        self.expires_ts = expires_at.timestamp()

    def __setstate__(self, state: list[Any]) -> None:
        """A score pickled before its own :meth:`__reduce__`: the dataclass's state, the
        values of the fields it had then, in order (the times in seconds made here)."""
        self.__init__(*state)  # type: ignore[misc]

    def __reduce__(self) -> tuple[type[RiskScore], tuple[object, ...]]:
        """Pickled as its fields, in order: a slotted dataclass's own pickling walks
        ``dataclasses.fields`` per object (4 scores took 17.9 us, 10.2 us like this).
        Risk states snapshotted before 2026-11-30 hold their silent scores so; they
        now hold rows (:meth:`to_row`), cheaper still."""
        return (RiskScore, (
            self.score_id, self.tenant_id, self.account_id, self.model_version,
            self.feature_version, self.ml_risk, self.rule_risk, self.risk, self.tier,
            self.reasons, self.score_time, self.expires_at, self.trigger_event_id,
            self.shadow, self.ingested_at, self.features, self.trigger_alert,
        ))

    def to_row(self) -> ScoreRow:
        """The score as plain values, for state that keeps scores it may never publish
        (an account's silent scores). Pickling a score pickles its two datetimes,
        which took most of the time: 3.4 scores took 35 us to pickle and 38 to load
        as objects, 7 and 8 as rows (timed on an account's risk states)."""
        return (
            self.score_id, self.tenant_id, self.account_id, self.model_version,
            self.feature_version, self.ml_risk, self.rule_risk, self.risk, self.tier.value,
            self.reasons, (self.score_time - _EPOCH) // _MICROSECOND,
            (self.expires_at - _EPOCH) // _MICROSECOND, self.trigger_event_id, self.shadow,
            self.ingested_at, self.features, self.trigger_alert,
        )

    @classmethod
    def from_row(cls, row: ScoreRow) -> RiskScore:
        """The score :meth:`to_row` made ``row`` of (equal to it; its times in UTC)."""
        return cls(
            *row[:8], RiskTier(row[8]), row[9], _EPOCH + timedelta(microseconds=row[10]),
            _EPOCH + timedelta(microseconds=row[11]), *row[12:],
        )

    def to_document(self) -> dict[str, object]:
        """The ``churn.scores`` message."""
        return {
            "schema_version": 1,
            "score_id": self.score_id,
            "tenant_id": self.tenant_id,
            "account_id": self.account_id,
            "model_version": self.model_version,
            "feature_version": self.feature_version,
            "risk": round(self.risk, 6),
            "ml_risk": round(self.ml_risk, 6),
            "rule_risk": round(self.rule_risk, 6),
            "tier": str(self.tier),
            "reasons": list(self.reasons),
            "score_time": format_time(self.score_time),
            "expires_at": format_time(self.expires_at),
            "trigger_event_id": self.trigger_event_id,
            "shadow": self.shadow,
        }
