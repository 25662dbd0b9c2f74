"""The replay of a seeded history, pinned by digest: refactors must not change behaviour.

``tests/golden/replay-digest.json`` holds the SHA-256 of every output file of
``churnwatch replay`` over ``simulate(accounts=60, days=30, seed=11)`` with the
shipped definitions, model and policy. It was taken before the layout change
(issue 10) and must only change when behaviour is meant to change; then
regenerate it with ``CHURNWATCH_UPDATE_GOLDEN=1 pytest tests/unit/test_replay_digest.py``
and say why in the commit.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson

from churnwatch.replay import OUTPUTS, replay
from churnwatch.settings import Settings
from churnwatch.simulator import simulate, write_jsonl

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "replay-digest.json"


def _digests(out_dir: Path) -> dict[str, dict[str, object]]:
    digests = {}
    for name in OUTPUTS:
        data = (out_dir / f"{name}.jsonl").read_bytes()
        digests[name] = {"lines": data.count(b"\n"), "sha256": hashlib.sha256(data).hexdigest()}
    return digests


def test_replay_outputs_match_the_checked_in_digest(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    write_jsonl(simulate(accounts=60, days=30, seed=11), history)
    replay(history, tmp_path / "out", Settings(recovery_dir=None))
    found = _digests(tmp_path / "out")
    if os.environ.get("CHURNWATCH_UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(orjson.dumps(found, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    expected = orjson.loads(GOLDEN.read_bytes())
    assert all(found[name]["lines"] for name in ("alerts", "scores", "decisions", "workflows"))
    assert found == expected
