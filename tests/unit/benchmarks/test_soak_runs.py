"""What the soak benchmark concludes from its months: rows, growth ratios, verdict, table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from benchmarks.harness.soak_history import MonthMark
from benchmarks.harness.soak_runs import (
    NO_IDLE_EXPIRY,
    SoakOptions,
    allocation_lines,
    ratio,
    soak_rows,
    soak_runs,
    structure_lines,
    table_lines,
    verdict,
    verdict_line,
)


def row(month: int, *, held: int, rss: int | None, snapshot: int, seen: int) -> dict[str, Any]:
    return {"month": month, "end": f"2025-{month + 1:02d}-01", "events": 1000 * month,
            "ever_seen": seen, "active": 500, "accounts_held": held, "risk_states": 700,
            "state_bytes": 320 * held, "tracker_accounts": 510, "rss_bytes": rss,
            "snapshot_bytes": snapshot}


def year(*, held_growth: float) -> list[dict[str, Any]]:
    return [row(m, held=round(500 * (1 + (held_growth - 1) * max(0, m - 3) / 9)),
                rss=150_000_000, snapshot=1_000_000, seen=250 * m) for m in range(1, 13)]


def test_soak_rows_put_the_stream_beside_the_run() -> None:
    mark = MonthMark(1, datetime(2025, 2, 1, tzinfo=UTC), line=10, valid_events=9,
                     ever_seen=4, active=3)
    month = {"accounts_held": 3, "risk_states": 2, "state_bytes": 7, "tracker_accounts": 3,
             "rss_bytes": 5, "snapshot_bytes": 6, "structures": {}}
    assert soak_rows([mark], [month]) == [{
        "month": 1, "end": "2025-02-01", "events": 9, "ever_seen": 4, "active": 3,
        "accounts_held": 3, "risk_states": 2, "state_bytes": 7, "tracker_accounts": 3,
        "rss_bytes": 5, "snapshot_bytes": 6,
    }]
    del month["state_bytes"]  # a run measured before the shards counted their bytes
    assert soak_rows([mark], [month])[0]["state_bytes"] is None


@pytest.mark.parametrize(("first", "last", "expected"), [
    (2, 3, 1.5), (None, 3, None), (2, None, None), (0, 3, None),
])
def test_ratio(first: float | None, last: float | None, expected: float | None) -> None:
    assert ratio(first, last) == expected


def test_a_flat_year() -> None:
    result = verdict(year(held_growth=1.0))
    assert result["flat"] is True
    assert (result["from_month"], result["to_month"]) == (3, 12)
    assert result["accounts_held"] == result["rss_bytes"] == result["snapshot_bytes"] == 1.0
    assert result["ever_seen"] == 4.0
    assert verdict_line(result) == (
        "month 3 -> 12: RSS x1.00, accounts held x1.00, snapshot bytes x1.00, while "
        "accounts ever seen x4.00: flat"
    )


def test_growing_state_is_not_flat() -> None:
    result = verdict(year(held_growth=3.0))
    assert result["flat"] is False
    assert result["accounts_held"] == 3.0
    assert verdict_line(result).endswith("NOT flat (more than x1.2)")


def test_an_unknown_rss_is_not_called_flat() -> None:
    rows = year(held_growth=1.0)
    rows[-1]["rss_bytes"] = None
    result = verdict(rows)
    assert result["flat"] is False
    assert "RSS x-" in verdict_line(result)


def test_too_short_for_a_verdict() -> None:
    result = verdict(year(held_growth=1.0)[:3])
    assert result["flat"] is None
    assert verdict_line(result).startswith("too short")
    assert verdict(year(held_growth=1.0), 6)["from_month"] == 6


def test_table_lines_align_and_show_megabytes() -> None:
    lines = table_lines([row(1, held=500, rss=150_000_000, snapshot=1_234_567, seen=250),
                         row(2, held=510, rss=None, snapshot=9, seen=500)])
    assert len({len(line) for line in lines}) == 1  # every line as wide
    assert lines[0].split() == ["month", "ends", "events", "seen", "active", "40d", "held",
                                "risk", "state", "B", "tracked", "RSS", "MB", "snapshot", "B"]
    assert lines[1].split()[-5:] == ["700", "160,000", "510", "150.0", "1,234,567"]
    assert lines[2].split()[-2:] == ["-", "9"]


def test_structure_lines_name_what_grew_most() -> None:
    first = {"month": 3, "structures": {"AccountShard._frozen": 500, "AccountShard._risk": 9,
                                        "InactivityTracker._accounts": 400}}
    last = {"month": 12, "structures": {"AccountShard._frozen": 2_000, "AccountShard._risk": 5,
                                        "InactivityTracker._accounts": 450,
                                        "AccountShard._new": 7}}
    assert structure_lines(first, last) == [
        "grew most from month 3 to 12:",
        "AccountShard._frozen: 500 -> 2,000",
        "InactivityTracker._accounts: 400 -> 450",
        "AccountShard._new: 0 -> 7",
    ]


def test_allocation_lines() -> None:
    first = {"month": 3, "top_allocations": [{"where": "a.py:1", "bytes": 100, "blocks": 1}]}
    last = {"month": 12, "top_allocations": [{"where": "a.py:1", "bytes": 150, "blocks": 1},
                                             {"where": "b.py:2", "bytes": 90, "blocks": 1},
                                             {"where": "c.py:3", "bytes": 10, "blocks": 1}]}
    assert allocation_lines(first, last, limit=2) == [
        "allocation sites that grew most from month 3 to 12 (tracemalloc):",
        "b.py:2: 0 -> 90 B",
        "a.py:1: 100 -> 150 B",
    ]


def test_the_control_differs_by_its_idle_ttl_alone() -> None:
    runs = soak_runs(SoakOptions(env=("CHURNWATCH_SHARDS=32",)))
    assert [run.name for run in runs] == ["eviction", "control"]
    assert runs[0].overrides == ("CHURNWATCH_SHARDS=32",)
    assert runs[1].overrides == ("CHURNWATCH_SHARDS=32", NO_IDLE_EXPIRY)
    assert NO_IDLE_EXPIRY.startswith("CHURNWATCH_FEATURE_TTL_SECONDS=")
    assert [run.name for run in soak_runs(SoakOptions(control=False))] == ["eviction"]


def test_the_control_setting_outlives_the_period() -> None:
    from churnwatch.settings import Settings
    from churnwatch.wiring import idle_state_ttl

    name, _, value = NO_IDLE_EXPIRY.partition("=")
    assert idle_state_ttl(Settings.from_env({name: value})).days > 365 * 50
