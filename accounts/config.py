"""What per-account processing needs: plain values, built by the application from settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from detectors.lifecycle import LifecycleRules
from detectors.tier1 import Tier1Rule
from detectors.usage import UsageRules
from featurestore.aggregation import CompiledFeatures
from featurestore.errors import DefinitionError
from schemas.alert import Severity
from schemas.clock import EventClock


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """When accounts are scored (see ``scoring.risk``)."""

    debounce_seconds: float = 1800.0
    rule_ttl_seconds: float = 7 * 86_400.0
    rule_risk: Mapping[Severity, float] = field(
        default_factory=lambda: {Severity.HIGH: 0.9, Severity.MEDIUM: 0.6, Severity.LOW: 0.3}
    )
    # At each event-time day close, an account silent that whole day is rescored as of
    # the day's end, until it has been silent this long (0: never rescored). Kept below
    # the state's idle expiry, so that whether an account is still held never decides it.
    rescore_silent_seconds: float = 30 * 86_400.0


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """The settings per-account processing needs."""

    dedupe_window_seconds: float
    dedupe_max_ids: int
    tier1_rules: Mapping[str, Tier1Rule]
    features: CompiledFeatures
    allowed_lateness_seconds: float = 3600.0
    usage_rules: UsageRules = field(default_factory=UsageRules)
    scoring: ScoringConfig | None = None  # None: no model, no score requests
    # An account silent this long in event time starts afresh on its next event, as a
    # new account would (its windows, tenure, signal episodes and debounce are gone);
    # None: never. Judged on the account's own events, so the outcome does not depend
    # on when the stream evicts the idle state from memory.
    idle_expiry_seconds: float | None = None
    # Which event types are cancellations, renewals, consent changes ... (the definitions
    # file's lifecycle section; the shipped mapping by default).
    lifecycle: LifecycleRules = field(default_factory=LifecycleRules)
    # The watermark rule, from allowed_lateness_seconds.
    clock: EventClock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "clock", EventClock(self.allowed_lateness_seconds))
        names = set(self.features.feature_set.names)
        missing = sorted(self.usage_rules.required_features() - names)
        if missing:  # the definitions' own signals are checked on load: an override's
            raise DefinitionError(
                self.features.feature_set.source,
                "signals",
                f"the usage signals need feature(s) {', '.join(missing)}, not defined here",
                self.features.feature_set.line_of("signals"),
            )
