"""churnwatch replay: the production operators over a JSONL file, deterministic outputs."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from churnwatch.replay import OUTPUTS, replay
from churnwatch.settings import Settings
from churnwatch.simulator import simulate, write_jsonl
from detectors.tier1 import DEFAULT_TIER1_RULES
from schemas.alert import alert_id


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "history.jsonl"
    write_jsonl(simulate(accounts=40, days=30, seed=4), path)
    return path


def test_two_replays_write_identical_files(history: Path, tmp_path: Path) -> None:
    settings = Settings(recovery_dir=None)
    first = replay(history, tmp_path / "one", settings)
    second = replay(history, tmp_path / "two", settings)
    assert first == second
    assert first["alerts"] > 0 and first["scores"] > 0 and first["dead_letters"] > 0
    assert first["decisions"] == first["alerts"]  # one decision per alert
    assert first["workflows"] > 0 and first["experiment_assignments"] > 0
    for name in OUTPUTS:
        one = (tmp_path / "one" / f"{name}.jsonl").read_bytes()
        assert one == (tmp_path / "two" / f"{name}.jsonl").read_bytes(), name


def test_replay_raises_every_tier1_alert_of_the_history(history: Path, tmp_path: Path) -> None:
    replay(history, tmp_path / "out", Settings(recovery_dir=None, model_dir=None))
    expected = set()
    seen = set()
    for line in history.read_bytes().splitlines():
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        rule = DEFAULT_TIER1_RULES.get(doc.get("event_type", "")) if isinstance(doc, dict) else None
        if rule and doc["event_id"] not in seen and doc["event_time"] < "2100":
            seen.add(doc["event_id"])
            expected.add(alert_id(doc["tenant_id"], doc["account_id"], rule.rule, doc["event_id"]))
    lines = (tmp_path / "out" / "alerts.jsonl").read_bytes().splitlines()
    alerts = [orjson.loads(line) for line in lines]
    assert {a["alert_id"] for a in alerts if a["tier"] == 1} == expected
    assert not (tmp_path / "out" / "scores.jsonl").read_bytes()  # scoring off


def test_decisions_do_not_depend_on_how_the_input_was_batched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inactivity alerts come from a per-partition tracker, not the account's own
    # feed, so they can reach the decisions before or after the account's later
    # events (here: cancellations). On this history, before decisions were judged
    # as of each trigger's event time, 11 decisions and 2 workflow messages
    # differed between batches of 5,000 and of 50 lines.
    import dataflows.files as replay_module

    history = tmp_path / "history.jsonl"
    write_jsonl(simulate(accounts=400, days=45, seed=7), history)
    settings = Settings(recovery_dir=None)
    outputs = {}
    for batch in (5_000, 50):
        monkeypatch.setattr(replay_module, "BATCH", batch)
        replay(history, tmp_path / str(batch), settings)
        outputs[batch] = {name: (tmp_path / str(batch) / f"{name}.jsonl").read_bytes()
                          for name in ("decisions", "workflows", "experiment_assignments")}
    assert outputs[5_000]["workflows"].count(b"\n") > 100
    assert outputs[5_000] == outputs[50]


def test_a_replay_with_processes_writes_what_one_process_writes(
    history: Path, tmp_path: Path
) -> None:
    from churnwatch.cli import main

    one, two = tmp_path / "one", tmp_path / "two"
    (two / "alerts.part7.jsonl").parent.mkdir(parents=True)
    (two / "alerts.part7.jsonl").write_bytes(b'{"left": "by an earlier run"}\n')
    assert main(["replay", "--events", str(history), "--out", str(one)]) == 0
    assert main(["replay", "--events", str(history), "--out", str(two), "--processes", "2"]) == 0
    assert sorted(p.name for p in two.iterdir()) == sorted(f"{n}.jsonl" for n in OUTPUTS)
    for name in OUTPUTS:
        if name == "dead_letters":
            continue
        assert (one / f"{name}.jsonl").read_bytes() == (two / f"{name}.jsonl").read_bytes(), name
    # a dead letter names the partition that read its line: the rest is the same
    def letters(out: Path) -> list[dict[str, object]]:
        documents = [orjson.loads(line) for line in (out / "dead_letters.jsonl").open("rb")]
        for document in documents:
            del document["source"]["partition"]
        return sorted(documents, key=lambda d: int(d["source"]["offset"]))
    assert letters(one) == letters(two) and letters(one)
    scores = (one / "scores.jsonl").read_bytes()
    assert b"day-close:" in scores  # rescoring at day closes is among what agrees


def test_a_file_is_partitioned_by_account_and_control_messages_reach_every_partition() -> None:
    from dataflows.files import partition_of

    lines = [orjson.dumps({"event_id": f"e{n}", "tenant_id": "acme", "account_id": f"a{n % 7}"})
             for n in range(70)]
    by_account: dict[bytes, set[int | None]] = {}
    for line in lines:
        by_account.setdefault(line.split(b'"account_id":')[1], set()).add(partition_of(line, 3))
    assert all(len(parts) == 1 for parts in by_account.values())
    assert {p for parts in by_account.values() for p in parts} == {0, 1, 2}
    assert partition_of(b'{"account_id" : "a1"}', 3) == partition_of(b'{"account_id":"a1"}', 3)
    assert partition_of(b"{nope", 3) == 0
    assert partition_of(b'{"account_id": 7}', 3) == 0  # not a string: a dead letter anyway
    assert partition_of(b'{"churnwatch_control": {"erase": {}}}', 3) is None


def test_a_replay_reads_its_model_and_policy_once() -> None:
    from datetime import timedelta

    from churnwatch.replay import read_once

    settings = read_once(Settings(recovery_dir=None))
    assert settings.model_reload_interval == timedelta(0) == settings.policy_reload_interval
    assert Settings().model_reload_interval > timedelta(0)  # a run does watch them
