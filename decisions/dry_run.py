"""Compare the decisions two policies make on the same history (``policy dry-run``).

Pure: two lists of decision documents (as ``churnwatch replay`` writes them to
``decisions.jsonl``) in, a :class:`DryRunReport` out. An account's *outcome*
is what it would live through: the workflows started, escalated or held out
for it (with counts); ``ignore`` decisions are not an outcome. The accounts
whose outcome differs are listed, so a threshold change never surprises anyone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Outcome = tuple[tuple[str, int], ...]  # ("win_back:start_workflow", 2), ... sorted


@dataclass(frozen=True, slots=True)
class DryRunReport:
    current_version: str
    new_version: str
    decisions: Mapping[str, tuple[int, int]]  # decision -> (current, new)
    reasons: Mapping[str, tuple[int, int]]  # reason code -> (current, new)
    workflows: Mapping[str, tuple[int, int]]  # "workflow:decision" -> (current, new)
    changed: Mapping[str, tuple[Outcome, Outcome]]  # "tenant:account" -> (current, new)
    accounts: int


def compare(current: Iterable[Mapping[str, object]],
            new: Iterable[Mapping[str, object]]) -> DryRunReport:
    current, new = list(current), list(new)
    outcomes_before, outcomes_after = _outcomes(current), _outcomes(new)
    accounts = sorted(set(outcomes_before) | set(outcomes_after)
                      | {_account(d) for d in current} | {_account(d) for d in new})
    changed = {
        account: (outcomes_before.get(account, ()), outcomes_after.get(account, ()))
        for account in accounts
        if outcomes_before.get(account, ()) != outcomes_after.get(account, ())
    }
    return DryRunReport(
        current_version=_version(current),
        new_version=_version(new),
        decisions=_side_by_side(Counter(str(d["decision"]) for d in current),
                                Counter(str(d["decision"]) for d in new)),
        reasons=_side_by_side(Counter(str(r) for d in current for r in _list(d["reasons"])),
                              Counter(str(r) for d in new for r in _list(d["reasons"]))),
        workflows=_side_by_side(_workflow_counts(current), _workflow_counts(new)),
        changed=changed,
        accounts=len(accounts),
    )


def format_report(report: DryRunReport, *, limit: int = 50) -> str:
    """The report as text: counts side by side, then the accounts that change."""
    width = 34
    col = max(10, len(report.current_version), len(report.new_version))
    lines = [f"{'':<{width}} {'current':>{col}} {'new':>{col}} {'change':>8}",
             f"{'policy_version':<{width}} {report.current_version:>{col}} "
             f"{report.new_version:>{col}}"]
    for title, table in (("decisions", report.decisions), ("reasons", report.reasons),
                         ("workflows (started, escalated, held out)", report.workflows)):
        lines.append(title)
        for name, (before, after) in table.items():
            delta = after - before
            mark = f"{delta:+d}" if delta else ""
            lines.append(f"  {name:<{width - 2}} {before:>{col}} {after:>{col}} {mark:>8}")
    lines.append(f"accounts whose outcome changes: {len(report.changed)} of {report.accounts}")
    for account, (was, will_be) in list(report.changed.items())[:limit]:
        lines.append(f"  {account}: {_show(was)} -> {_show(will_be)}")
    if len(report.changed) > limit:
        lines.append(f"  ... and {len(report.changed) - limit} more")
    return "\n".join(lines)


def _outcomes(decisions: list[Mapping[str, object]]) -> dict[str, Outcome]:
    counts: dict[str, Counter[str]] = {}
    for d in decisions:
        if d["decision"] == "ignore":
            continue
        counts.setdefault(_account(d), Counter())[f"{d['workflow_key']}:{d['decision']}"] += 1
    return {account: tuple(sorted(c.items())) for account, c in counts.items()}


def _workflow_counts(decisions: list[Mapping[str, object]]) -> Counter[str]:
    return Counter(f"{d['workflow_key']}:{d['decision']}" for d in decisions
                   if d["decision"] != "ignore")


def _side_by_side(before: Counter[str], after: Counter[str]) -> dict[str, tuple[int, int]]:
    return {name: (before[name], after[name]) for name in sorted(set(before) | set(after))}


def _account(decision: Mapping[str, object]) -> str:
    return f"{decision['tenant_id']}:{decision['account_id']}"


def _version(decisions: list[Mapping[str, object]]) -> str:
    versions = sorted({str(d["policy_version"]) for d in decisions})
    return ",".join(versions) if versions else "-"


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _show(outcome: Outcome) -> str:
    if not outcome:
        return "(nothing)"
    return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in outcome)
