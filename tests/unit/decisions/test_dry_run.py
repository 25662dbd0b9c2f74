"""policy dry-run: the same history under two policies, counts side by side, changed accounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnwatch.cli import main
from churnwatch.settings import DEFAULT_POLICY
from churnwatch.simulator import simulate, write_jsonl
from decisions.dry_run import compare, format_report


def decision(account: str, decision: str, workflow: str | None = None,
             reason: str = "rule_matched", version: str = "v1") -> dict[str, object]:
    return {"tenant_id": "acme", "account_id": account, "decision": decision,
            "workflow_key": workflow, "reasons": [reason], "policy_version": version}


def test_compare_counts_and_lists_the_accounts_whose_outcome_changes() -> None:
    current = [
        decision("a1", "start_workflow", "dunning"),
        decision("a2", "start_workflow", "win_back"),
        decision("a3", "ignore", reason="no_rule"),
    ]
    new = [
        decision("a1", "start_workflow", "dunning", version="v2"),
        decision("a2", "ignore", "win_back", reason="cap_hit", version="v2"),
        decision("a3", "holdout", "win_back", reason="holdout", version="v2"),
    ]
    report = compare(current, new)
    assert (report.current_version, report.new_version) == ("v1", "v2")
    assert report.decisions == {"holdout": (0, 1), "ignore": (1, 1), "start_workflow": (2, 1)}
    assert report.reasons["cap_hit"] == (0, 1)
    assert report.workflows == {"dunning:start_workflow": (1, 1),
                                "win_back:holdout": (0, 1), "win_back:start_workflow": (1, 0)}
    assert report.changed == {
        "acme:a2": ((("win_back:start_workflow", 1),), ()),
        "acme:a3": ((), (("win_back:holdout", 1),)),
    }
    text = format_report(report)
    assert "acme:a2: win_back:start_workflow -> (nothing)" in text
    assert "accounts whose outcome changes: 2 of 3" in text
    assert "acme:a1" not in text


def test_the_same_policy_changes_nothing() -> None:
    decisions = [decision("a1", "start_workflow", "dunning"), decision("a1", "ignore")]
    report = compare(decisions, decisions)
    assert report.changed == {}
    assert all(before == after for before, after in report.decisions.values())


def test_dry_run_command_on_a_small_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [k for k in __import__("os").environ if k.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)
    history = tmp_path / "history.jsonl"
    write_jsonl(simulate(accounts=60, days=30, seed=4), history)
    # The new policy stops dunning e-mails for failed payments.
    new = tmp_path / "new.yaml"
    text = DEFAULT_POLICY.read_text()
    text = text.replace('policy_version: "', 'policy_version: "next-').replace(
        "    when: {trigger: [payment_failed]}\n    decide: start_workflow\n    workflow: dunning",
        "    when: {trigger: [payment_failed]}\n    decide: ignore",
    )
    assert "decide: ignore\n  - name: cancel-intent-large" in text
    new.write_text(text)

    assert main(["policy", "dry-run", "--policy", str(new), "--events", str(history)]) == 0
    out = capsys.readouterr().out
    dunning = next(line for line in out.splitlines() if "dunning:start_workflow" in line)
    before, after = (int(n) for n in dunning.split()[1:3])
    assert before > 0 and after == 0
    changed = out.split("accounts whose outcome changes: ")[1]
    assert int(changed.split()[0]) >= before
    assert "dunning:start_workflow -> " in changed


def test_policy_check_lists_every_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_POLICY.read_text().replace("decide: escalate", "decide: shout")
                   .replace("tier: [high]", "tier: [severe]"))
    assert main(["policy", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "rules[1].decide: unknown decision 'shout'" in err
    assert "rules[3].when.tier[0]: unknown tier 'severe'" in err
    assert main(["policy", "check", str(DEFAULT_POLICY)]) == 0
