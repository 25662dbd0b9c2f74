"""A product of its own: a definitions file with two features and one signal, no built-in
name anywhere, replayed through the production dataflow (and the batch backfill)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from accounts.backfill import backfill, read_jsonl
from churnwatch.cli import main
from churnwatch.errors import ConfigurationError
from churnwatch.replay import replay
from churnwatch.settings import Settings
from churnwatch.wiring import account_config, detector_rules, event_limits, policy_vocabulary
from decisions.policy import PolicyError, load_policy
from featurestore.definitions import load_definitions
from tests.builders import event_doc

DEFINITIONS = """\
version: 1
features:
  sessions_7d: {events: [game.session_started], aggregation: count, window: 7d}
  sessions_baseline_28d:
    events: [game.session_started]
    aggregation: count
    window: 28d
    offset: 7d
signals:
  session_slump:
    kind: drop
    current: sessions_7d
    baseline: sessions_baseline_28d
    baseline_scale: 0.25
    min_baseline: 2
    fire_below: 0.3
    recover_above: 0.6
    reason: "{name}: {value:g} sessions this week, {baseline:g} usual"
"""
START = datetime(2026, 8, 1, tzinfo=UTC)  # day 0
SLUMP_DAY = 35  # the slumping account plays no more from this day on


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)


def history() -> list[dict[str, object]]:
    """Two players' accounts, 4 sessions a day for 51 days; one stops playing on day 35
    but still visits the store every day (an event no feature reads), so its days
    close; a third plays 20 days and goes silent (no absence signal is declared)."""
    docs = []
    for day in range(51):
        for account, plays in (("steady", True), ("slumping", day < SLUMP_DAY),
                               ("silent", day < 20)):
            if account == "silent" and not plays:
                continue
            kinds = ["game.session_started"] * 4 if plays else ["game.store_visited"]
            for n, kind in enumerate(kinds):
                when = START + timedelta(days=day, hours=9 + 2 * n)
                docs.append(event_doc(
                    event_id=f"{account}-{day}-{n}", tenant_id="arcade", account_id=account,
                    user_id=f"{account}-player", event_type=kind,
                    event_time=when.isoformat().replace("+00:00", "Z"), source="game",
                ))
    docs.sort(key=lambda d: str(d["event_time"]))
    return docs


@pytest.fixture
def product(tmp_path: Path) -> tuple[Path, Path]:
    definitions = tmp_path / "arcade.yaml"
    definitions.write_text(DEFINITIONS, encoding="utf-8")
    events = tmp_path / "history.jsonl"
    events.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in history()))
    return definitions, events


def lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def test_two_features_and_one_signal_replay_end_to_end(
    product: tuple[Path, Path], tmp_path: Path
) -> None:
    definitions, events = product
    settings = Settings(recovery_dir=None, model_dir=None, feature_definitions=definitions)
    out = tmp_path / "out"
    counts = replay(events, out, settings)
    assert counts["dead_letters"] == 0
    signals = lines(out / "usage_signals.jsonl")
    # weekly sessions at the close of day d >= 35: 4 x (41 - d) against a weekly 28;
    # <= 0.3 x 28 from day 39, held two days (persist_days): the signal is day 40's
    assert [(s["account_id"], s["signal_type"], s["signal_date"], s["usage_count"],
             s["baseline_count"]) for s in signals] == [
        ("slumping", "session_slump", (START + timedelta(days=40)).date().isoformat(), 4.0,
         28.0)
    ]
    alerts = lines(out / "alerts.jsonl")
    assert [(a["rule"], a["reasons"]) for a in alerts] == [
        ("session_slump", ["session_slump: 4 sessions this week, 28 usual"])
    ]
    # the batch backfill runs the same detectors over the same file
    feature_set = load_definitions(definitions)
    batch = backfill(read_jsonl(events), account_config(settings, feature_set),
                     event_limits(settings))
    assert [s.signal_id for s in batch.signals] == [s["signal_id"] for s in signals]
    assert set(batch.rows["arcade", "slumping"].values) == {"sessions_7d",
                                                            "sessions_baseline_28d"}


def test_the_cli_replays_it_and_checks_it(
    product: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    definitions, events = product
    assert main(["features", "check", str(definitions), "--policy", "off"]) == 0
    assert "2 features, 1 signals (session_slump), 0 tier-1 rules" in capsys.readouterr().out
    out = tmp_path / "cli-out"
    assert main(["replay", "--events", str(events), "--out", str(out), "--definitions",
                 str(definitions), "--model", "off"]) == 0
    assert len(lines(out / "usage_signals.jsonl")) == 1


def test_the_shipped_policy_is_refused_against_it_naming_lines(
    product: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    definitions, _ = product
    feature_set = load_definitions(definitions)
    with pytest.raises(PolicyError) as caught:
        load_policy(Settings().policy_file or Path(), policy_vocabulary(Settings(), feature_set))
    problems = {(p.path, p.problem.split(":")[0]) for p in caught.value.problems}
    assert ("rules[0].when.trigger[0]", "unknown trigger 'payment_failed'") in problems
    assert ("rules[1].when.features.seats", "unknown feature") in problems
    assert all(p.line is not None for p in caught.value.problems)
    assert all(str(definitions) in p.problem for p in caught.value.problems)
    # features check reports the same, with the policy's path and lines, and fails
    assert main(["features", "check", str(definitions)]) == 1
    err = capsys.readouterr().err
    assert "unknown trigger 'payment_failed'" in err and "rules[1].when.features.seats" in err


def test_a_policy_of_its_own_vocabulary_is_accepted(
    product: tuple[Path, Path], tmp_path: Path
) -> None:
    definitions, _ = product
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        'policy_version: "1"\n'
        "workflows:\n  nudge: {channel: email, exits_on: [usage_recovered]}\n"
        "rules:\n"
        "  - name: slump\n"
        "    when: {trigger: [session_slump], features: {sessions_7d: {lt: 5}}}\n"
        "    decide: start_workflow\n    workflow: nudge\n",
        encoding="utf-8",
    )
    assert main(["policy", "check", str(policy), "--definitions", str(definitions)]) == 0
    assert main(["features", "check", str(definitions), "--policy", str(policy)]) == 0


def test_the_deprecated_overrides_apply_to_the_file_s_signals(
    product: tuple[Path, Path],
) -> None:
    definitions, _ = product
    feature_set = load_definitions(definitions)
    settings = Settings.from_env({
        "CHURNWATCH_USAGE_RULES": '{"session_slump": {"fire_below": 0.2}}',
        "CHURNWATCH_TIER1_RULES": '{"game.refund": {"rule": "refund", "severity": "low"}}',
    })
    rules = detector_rules(settings, feature_set)
    assert rules.usage.signals[0].fire_below == 0.2  # type: ignore[union-attr]
    assert set(rules.tier1) == {"game.refund"}
    assert Settings.from_env(settings.to_env()) == settings  # they round-trip to children
    unknown = Settings.from_env({"CHURNWATCH_USAGE_RULES": '{"login_drop": {"fire_below": 0.2}}'})
    with pytest.raises(ConfigurationError) as caught:
        detector_rules(unknown, feature_set)
    assert caught.value.variable == "CHURNWATCH_USAGE_RULES"
    assert "known: session_slump" in str(caught.value)


def test_a_custom_absence_and_tier1_rule_replay_under_their_own_names(
    product: tuple[Path, Path], tmp_path: Path
) -> None:
    definitions, events = product
    definitions.write_text(
        DEFINITIONS.replace(
            "signals:\n",
            "  days_since_play: {events: [game.session_started], aggregation: days_since_last}\n"
            "signals:\n"
            "  lapsed: {kind: absence, feature: days_since_play, days: 7, severity: medium}\n",
        )
        + "tier1:\n  game.refund_requested: {rule: refund, severity: low, reason: refund asked}\n",
        encoding="utf-8",
    )
    refund = event_doc(event_id="refund-1", tenant_id="arcade", account_id="steady",
                       event_type="game.refund_requested", source="game",
                       event_time=(START + timedelta(days=45, hours=20)).isoformat()
                       .replace("+00:00", "Z"))
    with events.open("ab") as out:
        out.write(orjson.dumps(refund) + b"\n")
    settings = Settings(recovery_dir=None, model_dir=None, feature_definitions=definitions)
    replay(events, tmp_path / "out", settings)
    signals = lines(tmp_path / "out" / "usage_signals.jsonl")
    # the silent account played last on day 19 at 15:00: silent 7 days on day 26; the
    # slumping one (store visits are no play) on day 34: lapsed on day 41
    assert sorted((s["account_id"], s["signal_type"], s["signal_date"]) for s in signals) == [
        ("silent", "lapsed", (START + timedelta(days=26)).date().isoformat()),
        ("slumping", "lapsed", (START + timedelta(days=41)).date().isoformat()),
        ("slumping", "session_slump", (START + timedelta(days=40)).date().isoformat()),
    ]
    alerts = {a["rule"]: a for a in lines(tmp_path / "out" / "alerts.jsonl")}
    assert set(alerts) == {"lapsed", "session_slump", "refund"}
    assert alerts["lapsed"]["reasons"] == ["no activity for 7 days"]
    assert alerts["lapsed"]["severity"] == "medium"
    assert (alerts["refund"]["account_id"], alerts["refund"]["reasons"]) == (
        "steady", ["refund asked"])


def test_features_check_names_the_file_and_line_of_a_dangling_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(DEFINITIONS.replace("baseline: sessions_baseline_28d",
                                          "baseline: sessions_28d"), encoding="utf-8")
    line = DEFINITIONS.splitlines().index("    baseline: sessions_baseline_28d") + 1
    assert main(["features", "check", str(broken), "--policy", "off"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"churnwatch: {broken}: line {line}: signals.session_slump.baseline: names no feature:"
        " 'sessions_28d' is not defined under features"
    )


TWO_ABSENCES = DEFINITIONS + """\
  lapsed_player:
    kind: absence
    feature: days_since_session
    days: 5
  gone:
    kind: absence
    feature: days_since_anything
    days: 10
    severity: medium
"""


def test_two_absence_signals_each_follow_their_own_activity(tmp_path: Path) -> None:
    definitions = tmp_path / "arcade.yaml"
    definitions.write_text(TWO_ABSENCES.replace(
        "signals:\n",
        "  days_since_session: {events: [game.session_started], aggregation: days_since_last}\n"
        "  days_since_anything: {events: [\"game.*\"], aggregation: days_since_last}\n"
        "signals:\n", 1), encoding="utf-8")
    events = tmp_path / "history.jsonl"
    events.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in history()))
    settings = Settings(recovery_dir=None, model_dir=None, feature_definitions=definitions)
    out = tmp_path / "out"
    replay(events, out, settings)
    found = sorted((s["account_id"], s["signal_type"], s["signal_date"])
                   for s in lines(out / "usage_signals.jsonl"))

    def day(n: int) -> str:
        return (START + timedelta(days=n)).date().isoformat()

    # silent: its last session (and last event) on day 19 at 15:00: 5 and 10 days later;
    # slumping: no session from day 35 (its last on day 34), but a store visit every day
    assert ("silent", "lapsed_player", day(24)) in found
    assert ("silent", "gone", day(29)) in found
    assert ("slumping", "lapsed_player", day(39)) in found
    assert not any(a == "slumping" and t == "gone" for a, t, _ in found)
    assert not any(a == "steady" and t in {"gone", "lapsed_player"} for a, t, _ in found)
    alerts = {(a["account_id"], a["rule"], a["severity"]) for a in lines(out / "alerts.jsonl")}
    assert {("silent", "lapsed_player", "high"), ("silent", "gone", "medium")} <= alerts
    # the batch backfill tracks both the same way
    batch = backfill(read_jsonl(events), account_config(settings, load_definitions(definitions)),
                     event_limits(settings))
    assert sorted(s.signal_id for s in batch.signals) == sorted(
        s["signal_id"] for s in lines(out / "usage_signals.jsonl"))
