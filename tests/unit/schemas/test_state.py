"""schemas.state: every per-key state class follows the one snapshot protocol.

``snapshot()`` gives a picklable value that later changes do not alter, and
the constructor's ``snapshot`` argument takes it back.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

from accounts.debounce import ScoringDebounce
from accounts.dedupe import DedupeState
from detectors.inactivity import InactivityTracker
from detectors.usage import InactivityRule, SignalEpisodes
from scoring.risk import RiskTierTracker

# (build from a snapshot or None, change the live state)
CASES: dict[str, tuple[Callable[[Any], Any], Callable[[Any], None]]] = {
    "dedupe": (
        lambda s: DedupeState(86_400.0, 100, snapshot=s),
        lambda state: state.is_duplicate("evt-new", 10.0),
    ),
    "scoring-debounce": (
        lambda s: ScoringDebounce(snapshot=s),
        lambda state: state.note_rule(0.9, 10.0, 100.0),
    ),
    "signal-episodes": (
        lambda s: SignalEpisodes(s, persist=2),
        lambda state: state.streaks.update({"login_drop": 1}),
    ),
    "risk-tier": (
        lambda s: RiskTierTracker(snapshot=s),
        lambda state: setattr(state, "until", 99.0),
    ),
    "inactivity": (
        lambda s: InactivityTracker(InactivityRule(days=7), 3600.0, "v1", snapshot=s),
        lambda state: state.observe([]),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_snapshot_round_trips_and_is_not_changed_by_later_updates(name: str) -> None:
    build, change = CASES[name]
    state = build(None)
    snapshot = state.snapshot()
    frozen = pickle.dumps(snapshot)
    change(state)
    assert pickle.dumps(snapshot) == frozen
    restored = build(pickle.loads(frozen))
    assert pickle.dumps(restored.snapshot()) == frozen
