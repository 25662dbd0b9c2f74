"""featurestore/definitions/examples/saas-counts.yaml: the default file plus a 28-day count
of every event type the simulated SaaS product sends (the textbook baseline's view)."""

from __future__ import annotations

from pathlib import Path

import featurestore
from churnwatch.simulator import simulate
from featurestore.definitions import load_definitions

EXAMPLE = Path(featurestore.__file__).parent / "definitions" / "examples" / "saas-counts.yaml"
DEFAULT = Path(featurestore.__file__).parent / "definitions" / "default.yaml"


def test_it_is_the_default_file_plus_a_28_day_count_of_every_event_type() -> None:
    example, default = load_definitions(EXAMPLE), load_definitions(DEFAULT)
    assert set(default.names) < set(example.names)
    counted = {
        event_type
        for name in example.names
        if name.endswith("_28d") and example[name].aggregation.value == "count"
        for event_type in example[name].events
    }
    sent = {d["event_type"] for d in simulate(accounts=60, days=20, seed=5).valid_events()}
    # the lifecycle's own types say what they say without a count: cancelled, consent
    assert sent - counted <= {"subscription.cancelled", "account.consent_changed"}
    assert example.signals == default.signals and example.tier1 == default.tier1
