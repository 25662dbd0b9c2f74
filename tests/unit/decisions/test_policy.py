"""decisions.policy: validation (every problem, with its path and line), the shipped
policy, first-match rules, condition semantics, durations and the reloading holder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from decisions.policy import (
    Comparison,
    Condition,
    DecisionContext,
    Policy,
    PolicyError,
    PolicyHolder,
    PolicyProblem,
    Recovery,
    Threshold,
    Vocabulary,
    default_policy_path,
    load_policy,
    parse_duration,
    parse_policy,
    vocabulary_for,
)
from detectors.tier1 import DEFAULT_TIER1_RULES
from featurestore.definitions import load_definitions
from schemas.decision import Decision
from schemas.signal import SignalType

MINUTE = 60.0
HOUR = 3_600.0
DAY = 86_400.0

VOCABULARY = Vocabulary(
    triggers=frozenset({"payment_failed", "cancel_intent", "login_drop", "risk_high"}),
    features=frozenset({"seats", "tenure_days", "logins_7d"}),
)

# A valid policy; the validation cases below each change one line of it, so the
# line numbers they expect are the numbers in this margin.
BASE = """\
policy_version: "t.1"
caps:
  email: {max: 2, per: 7d}
workflows:
  dunning:
    channel: email
    exits_on: [payment_succeeded]
  win_back: {channel: email}
experiments:
  offer:
    workflow: win_back
    holdout: 20
    variants: {coaching: 40, discount: 40}
rules:
  - name: dunning
    when: {trigger: [payment_failed]}
    decide: start_workflow
    workflow: dunning
  - name: rest
    decide: ignore
"""
#  1 policy_version   2 caps   3 email cap   4 workflows   5 dunning   6 channel
#  7 exits_on   8 win_back   9 experiments   10 offer   11 workflow   12 holdout
# 13 variants   14 rules   15 - name: dunning   16 when   17 decide   18 workflow
# 19 - name: rest   20 decide: ignore


def edit(text: str, *changes: tuple[str, str]) -> str:
    """``text`` with each ``old`` (which must occur exactly once) replaced by ``new``."""
    for old, new in changes:
        assert text.count(old) == 1, f"{old!r} must occur once in the base policy"
        text = text.replace(old, new)
    return text


def problems_of(text: str) -> list[tuple[str, int | None]]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, VOCABULARY, source="test.yaml")
    return [(p.path, p.line) for p in caught.value.problems]


def write(path: Path, text: str, *, mtime: float) -> None:
    """Rewrite a policy file with an explicit modification time (the holder compares it)."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))


# --- 1. validation: one problem per kind, with its path and its line --------------------------


@dataclass(frozen=True)
class Invalid:
    id: str
    changes: tuple[tuple[str, str], ...]
    expected: list[tuple[str, int | None]]  # (path, line) of every problem, in order
    says: str  # a fragment of the (first) problem's text


INVALID = [
    Invalid("yaml-syntax-error",
            (("when: {trigger: [payment_failed]}", "when: {trigger: [payment_failed}"),),
            [("<yaml>", 16)], "expected ',' or ']'"),
    Invalid("unknown-top-level-key",
            (("    decide: ignore\n", "    decide: ignore\nowner: growth\n"),),
            [("policy.owner", 21)], "unknown key"),
    Invalid("unknown-rule-key",
            (("    decide: ignore\n", "    decide: ignore\n    priority: 1\n"),),
            [("rules[1].priority", 21)], "unknown key"),
    Invalid("unknown-decision",
            (("decide: start_workflow", "decide: nudge"),),
            [("rules[0].decide", 17)], "unknown decision 'nudge'"),
    Invalid("unknown-trigger",
            (("[payment_failed]", "[payment_failed, refund_issued]"),),
            [("rules[0].when.trigger[1]", 16)], "unknown trigger 'refund_issued'"),
    Invalid("unknown-tier",
            (("{trigger: [payment_failed]}", "{trigger: [payment_failed], tier: [critical]}"),),
            [("rules[0].when.tier[0]", 16)], "unknown tier 'critical'"),
    Invalid("unknown-feature",
            (("{trigger: [payment_failed]}", "{features: {seatz: {lt: 3}}}"),),
            [("rules[0].when.features.seatz", 16)], "unknown feature"),
    Invalid("bad-comparison-operator",
            # beside a good one: alone, it also leaves "expected a comparison" behind
            (("{trigger: [payment_failed]}", "{features: {seats: {gte: 3, between: 4}}}"),),
            [("rules[0].when.features.seats.between", 16)], "unknown key"),
    Invalid("non-numeric-comparison-value",
            (("{trigger: [payment_failed]}", "{features: {seats: {gte: many}}}"),),
            [("rules[0].when.features.seats.gte", 16)], "expected a number"),
    Invalid("bad-duration-in-a-cap",
            (("per: 7d", "per: 7w"),),
            [("caps.email.per", 3)], "'7w' is not a duration"),
    Invalid("bad-duration-in-a-workflow",
            (("  win_back: {channel: email}", "  win_back: {channel: email, cooldown: 0d}"),),
            # win_back is then left out, so the experiment on it is reported as well
            [("workflows.win_back.cooldown", 8), ("experiments.offer.workflow", 11)],
            "'0d' is not a duration"),
    Invalid("cap-missing-max",
            (("{max: 2, per: 7d}", "{per: 7d}"),),
            [("caps.email", 3)], "needs both max and per"),
    Invalid("cap-missing-per",
            (("{max: 2, per: 7d}", "{max: 2}"),),
            [("caps.email", 3)], "needs both max and per"),
    Invalid("cap-max-below-one",
            (("{max: 2, per: 7d}", "{max: 0, per: 7d}"),),
            [("caps.email.max", 3)], "expected a whole number >= 1"),
    Invalid("workflow-channel-without-a-cap",
            (("    channel: email\n", "    channel: sms\n"),),
            [("workflows.dunning.channel", 6)], "channel 'sms' has no cap"),
    Invalid("unknown-workflow-in-a-rule",
            (("    workflow: dunning\n", "    workflow: dunnning\n"),),
            [("rules[0].workflow", 18)], "unknown workflow 'dunnning'"),
    Invalid("non-ignore-rule-without-a-workflow",
            (("    workflow: dunning\n", "    # (no workflow)\n"),),
            # the rule's mapping starts on its `- name:` line
            [("rules[0]", 15)], "decide: start_workflow needs a workflow"),
    Invalid("ignore-rule-with-a-workflow",
            (("decide: start_workflow", "decide: ignore"),),
            [("rules[0].workflow", 18)], "an ignore rule starts no workflow"),
    Invalid("duplicate-rule-name",
            (("  - name: rest", "  - name: dunning"),),
            [("rules[1].name", 19)], "duplicate rule name 'dunning'"),
    Invalid("experiment-shares-not-adding-to-100",
            (("{coaching: 40, discount: 40}", "{coaching: 40, discount: 30}"),),
            # the experiment's mapping starts on its first key's line
            [("experiments.offer", 11)], "must add up to 100, not 90"),
    Invalid("experiment-on-unknown-workflow",
            (("    workflow: win_back\n", "    workflow: winback\n"),),
            [("experiments.offer.workflow", 11)], "unknown workflow 'winback'"),
    Invalid("two-experiments-on-one-workflow",
            (("    variants: {coaching: 40, discount: 40}\n",
              "    variants: {coaching: 40, discount: 40}\n"
              "  offer_two: {workflow: win_back, holdout: 50, variants: {coaching: 50}}\n"),),
            [("experiments.offer_two.workflow", 14)], "already has experiment 'offer'"),
    Invalid("bad-exits-on-recovery-name",
            (("[payment_succeeded]", "[payment_succeeded, paid_in_full]"),),
            [("workflows.dunning.exits_on[1]", 7)], "unknown recovery 'paid_in_full'"),
]


def test_the_base_policy_is_valid() -> None:
    policy = parse_policy(BASE, VOCABULARY)
    assert policy.version == "t.1"
    assert [rule.name for rule in policy.rules] == ["dunning", "rest"]


@pytest.mark.parametrize("case", INVALID, ids=lambda case: case.id)
def test_each_problem_is_reported_with_its_path_and_line(case: Invalid) -> None:
    text = edit(BASE, *case.changes)
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, VOCABULARY, source="test.yaml")
    error = caught.value
    assert [(p.path, p.line) for p in error.problems] == case.expected
    assert case.says in error.problems[0].problem
    assert error.source == "test.yaml"


def test_a_missing_policy_version_is_reported_at_the_top_mapping() -> None:
    text = edit(BASE, ('policy_version: "t.1"\n', "# no version\n"))
    problems = problems_of(text)
    # the document's mapping starts on line 2 (`caps:`), after the comment
    assert ("policy_version", 2) in problems


def test_a_missing_policy_version_is_reported_once_with_a_line() -> None:
    text = edit(BASE, ('policy_version: "t.1"\n', "# no version\n"))
    assert problems_of(text) == [("policy_version", 2)]


def test_a_rule_without_decide_is_reported_with_a_line() -> None:
    text = edit(BASE, ("    decide: start_workflow\n", "    # (no decide)\n"))
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0][1] is not None


def test_an_empty_value_is_a_policy_problem_not_a_crash() -> None:
    text = edit(BASE, ('policy_version: "t.1"', "policy_version:"))
    assert problems_of(text) == [("policy_version", 1)]


def test_a_null_policy_version_is_reported() -> None:
    text = edit(BASE, ('policy_version: "t.1"', "policy_version: ~"))
    assert problems_of(text) == [("policy_version", 1)]


def test_a_rule_with_a_null_decision_is_refused() -> None:
    text = edit(BASE, ("decide: start_workflow", "decide: ~"))
    assert problems_of(text) == [("rules[0].decide", 17)]


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = edit(
        BASE,
        ("{max: 2, per: 7d}", "{max: 0, per: 7d}"),
        ("[payment_succeeded]", "[payment_succeeded, paid_in_full]"),
        ("{coaching: 40, discount: 40}", "{coaching: 40, discount: 30}"),
        ("[payment_failed]", "[payment_failed, refund_issued]"),
        ("decide: start_workflow", "decide: nudge"),
        ("  - name: rest", "  - name: dunning"),
    )
    assert problems_of(text) == [
        ("caps.email.max", 3),
        ("workflows.dunning.exits_on[1]", 7),
        ("experiments.offer", 11),
        ("rules[0].when.trigger[1]", 16),
        ("rules[0].decide", 17),
        ("rules[1].name", 19),
    ]


def test_a_policy_error_lists_every_problem_in_its_message() -> None:
    text = edit(BASE, ("{max: 2, per: 7d}", "{max: 0, per: 7d}"),
                ("decide: start_workflow", "decide: nudge"))
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, VOCABULARY, source="test.yaml")
    message = str(caught.value)
    assert message.startswith("test.yaml: 2 problem(s)")
    assert "line 3: caps.email.max: expected a whole number >= 1" in message
    assert "line 17: rules[0].decide: unknown decision 'nudge'" in message


def test_a_problem_without_a_line_prints_only_its_path() -> None:
    assert str(PolicyProblem("<file>", None, "no such file")) == "<file>: no such file"
    assert str(PolicyProblem("caps.email", 3, "bad")) == "line 3: caps.email: bad"


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "absent.yaml", VOCABULARY)
    assert [(p.path, p.line) for p in caught.value.problems] == [("<file>", None)]


def test_an_empty_file_is_not_a_policy() -> None:
    assert problems_of("") == [("policy", None)]


# --- 2. what a valid policy means --------------------------------------------------------------


def test_defaults_apply_to_workflows_that_do_not_override_them() -> None:
    text = edit(BASE, ('policy_version: "t.1"\n',
                       'policy_version: "t.1"\ndefaults: {cooldown: 2d, active_for: 12h}\n'),
                ("    channel: email\n", "    channel: email\n    cooldown: 30m\n"))
    policy = parse_policy(text, VOCABULARY)
    dunning, win_back = policy.workflows["dunning"], policy.workflows["win_back"]
    assert (dunning.cooldown_seconds, dunning.active_seconds) == (30 * MINUTE, 12 * HOUR)
    assert (win_back.cooldown_seconds, win_back.active_seconds) == (2 * DAY, 12 * HOUR)
    assert dunning.exits_on == frozenset({Recovery.PAYMENT_SUCCEEDED})
    assert win_back.exits_on == frozenset(Recovery)  # no exits_on: every recovery


def test_without_defaults_a_workflow_cools_down_14_days_and_stays_active_21() -> None:
    workflow = parse_policy(BASE, VOCABULARY).workflows["win_back"]
    assert (workflow.cooldown_seconds, workflow.active_seconds) == (14 * DAY, 21 * DAY)


def test_experiments_are_kept_by_workflow_with_the_split_in_file_order() -> None:
    experiment = parse_policy(BASE, VOCABULARY).experiments["win_back"]
    assert experiment.key == "offer"
    assert experiment.split() == (("holdout", 20), ("coaching", 40), ("discount", 40))


def test_the_longest_memory_is_the_longest_window_cooldown_or_active_span() -> None:
    policy = parse_policy(BASE, VOCABULARY)  # caps 7d, cooldowns 14d, active 21d
    assert policy.longest_memory_seconds == 21 * DAY


def test_the_digest_follows_the_text() -> None:
    first = parse_policy(BASE, VOCABULARY)
    assert parse_policy(BASE, VOCABULARY).digest == first.digest
    assert parse_policy(BASE + "# a comment\n", VOCABULARY).digest != first.digest


# --- 3. the shipped policy ---------------------------------------------------------------------


def shipped_vocabulary() -> Vocabulary:
    rules = (rule.rule for rule in DEFAULT_TIER1_RULES.values())
    return vocabulary_for(rules, load_definitions().names)


def test_the_shipped_default_policy_loads() -> None:
    policy = load_policy(default_policy_path(), shipped_vocabulary())
    assert policy.version == "2026-11-22.1"
    assert policy.source == str(default_policy_path())
    assert [rule.name for rule in policy.rules] == [
        "failed-payment-dunning",
        "cancel-intent-large-account",
        "cancel-intent",
        "high-risk-established",
        "usage-drop-medium-risk",
        "everything-else",
    ]
    assert set(policy.workflows) == {"dunning", "win_back", "csm_outreach"}
    assert set(policy.caps) == {"email", "csm"}
    assert {w.channel for w in policy.workflows.values()} <= set(policy.caps)
    assert policy.experiments["win_back"].split() == (
        ("holdout", 20), ("coaching", 40), ("discount_20", 40))


def test_the_vocabulary_holds_tier1_rules_usage_signals_and_risk_rises() -> None:
    vocabulary = vocabulary_for(["payment_failed"], ["seats"])
    assert vocabulary.triggers == (
        {"payment_failed", "risk_medium", "risk_high"} | {s.value for s in SignalType})
    assert vocabulary.features == {"seats"}


# --- 4. first match wins -----------------------------------------------------------------------


def context(trigger: str = "payment_failed", tier: str | None = "high",
            features: dict[str, float] | None = None, plan: str | None = None
            ) -> DecisionContext:
    return DecisionContext(trigger, tier, features or {}, plan)


@pytest.mark.parametrize(
    ("trigger", "tier", "features", "rule"),
    [
        pytest.param("cancel_intent", "low", {"seats": 12}, "cancel-intent-large-account",
                     id="the-narrow-rule-listed-first-wins"),
        pytest.param("cancel_intent", "low", {"seats": 3}, "cancel-intent",
                     id="the-next-rule-when-the-first-does-not-hold"),
        pytest.param("cancel_intent", None, {}, "cancel-intent",
                     id="no-score-skips-the-feature-rule"),
        pytest.param("login_drop", "high", {"tenure_days": 30}, "high-risk-established",
                     id="high-risk-before-medium"),
        pytest.param("login_drop", "medium", {"tenure_days": 30}, "usage-drop-medium-risk",
                     id="medium-risk"),
        pytest.param("login_drop", "low", {"tenure_days": 30}, "everything-else",
                     id="the-catch-all-last"),
    ],
)
def test_the_first_matching_rule_decides(trigger: str, tier: str | None,
                                         features: dict[str, float], rule: str) -> None:
    policy = load_policy(default_policy_path(), shipped_vocabulary())
    matched = policy.match(context(trigger, tier, features))
    assert matched is not None
    assert matched.name == rule


def test_two_rules_that_both_hold_the_first_in_the_file_wins() -> None:
    text = edit(BASE, ("  - name: rest\n    decide: ignore\n",
                       "  - name: later\n    when: {trigger: [payment_failed]}\n"
                       "    decide: escalate\n    workflow: win_back\n"))
    policy = parse_policy(text, VOCABULARY)
    matched = policy.match(context("payment_failed"))
    assert matched is not None
    assert (matched.name, matched.decision, matched.workflow_key) == (
        "dunning", Decision.START_WORKFLOW, "dunning")


def test_no_rule_holding_matches_nothing() -> None:
    text = edit(BASE, ("  - name: rest\n    decide: ignore\n", ""))
    assert parse_policy(text, VOCABULARY).match(context("login_drop")) is None


# --- 5. conditions -----------------------------------------------------------------------------


def seats(comparison: Comparison, value: float) -> Condition:
    return Condition(thresholds=(Threshold("seats", comparison, value),))


@pytest.mark.parametrize(
    ("condition", "ctx", "holds"),
    [
        pytest.param(Condition(), context(), True, id="empty-always-holds"),
        pytest.param(Condition(triggers=frozenset({"payment_failed"})), context(), True,
                     id="trigger-listed"),
        pytest.param(Condition(triggers=frozenset({"cancel_intent"})), context(), False,
                     id="trigger-not-listed"),
        pytest.param(Condition(tiers=frozenset({"high"})), context(tier="high"), True,
                     id="tier-listed"),
        pytest.param(Condition(tiers=frozenset({"high"})), context(tier="medium"), False,
                     id="tier-not-listed"),
        pytest.param(Condition(tiers=frozenset({"low", "medium", "high"})), context(tier=None),
                     False, id="no-score-matches-no-tier"),
        pytest.param(Condition(plans=frozenset({"pro"})), context(plan="pro"), True,
                     id="plan-listed"),
        pytest.param(Condition(plans=frozenset({"pro"})), context(plan="starter"), False,
                     id="plan-not-listed"),
        pytest.param(Condition(plans=frozenset({"pro"})), context(plan=None), False,
                     id="plan-unknown"),
        pytest.param(seats(Comparison.GTE, 10), context(features={"seats": 10}), True,
                     id="gte-at-the-limit"),
        pytest.param(seats(Comparison.GTE, 10), context(features={"seats": 9}), False,
                     id="gte-below"),
        pytest.param(seats(Comparison.GT, 10), context(features={"seats": 10}), False,
                     id="gt-at-the-limit"),
        pytest.param(seats(Comparison.GT, 10), context(features={"seats": 11}), True,
                     id="gt-above"),
        pytest.param(seats(Comparison.LT, 3), context(features={"seats": 3}), False,
                     id="lt-at-the-limit"),
        pytest.param(seats(Comparison.LT, 3), context(features={"seats": 2}), True,
                     id="lt-below"),
        pytest.param(seats(Comparison.LTE, 3), context(features={"seats": 3}), True,
                     id="lte-at-the-limit"),
        pytest.param(seats(Comparison.LTE, 3), context(features={"seats": 4}), False,
                     id="lte-above"),
        pytest.param(seats(Comparison.EQ, 5), context(features={"seats": 5}), True,
                     id="eq-equal"),
        pytest.param(seats(Comparison.EQ, 5), context(features={"seats": 6}), False,
                     id="eq-different"),
        pytest.param(seats(Comparison.NE, 5), context(features={"seats": 5}), False,
                     id="ne-equal"),
        pytest.param(seats(Comparison.NE, 5), context(features={"seats": 6}), True,
                     id="ne-different"),
        pytest.param(seats(Comparison.NE, 5), context(features={"tenure_days": 30}), False,
                     id="missing-feature-never-matches"),
        pytest.param(seats(Comparison.LT, 3), context(features={}), False,
                     id="no-features-never-match"),
        pytest.param(
            Condition(thresholds=(Threshold("seats", Comparison.GTE, 2),
                                  Threshold("seats", Comparison.LTE, 4))),
            context(features={"seats": 5}), False, id="every-threshold-must-hold"),
        pytest.param(
            Condition(triggers=frozenset({"payment_failed"}), tiers=frozenset({"high"}),
                      thresholds=(Threshold("seats", Comparison.GTE, 10),)),
            context(tier="high", features={"seats": 3}), False,
            id="every-part-must-hold"),
        pytest.param(
            Condition(triggers=frozenset({"payment_failed"}), tiers=frozenset({"high"}),
                      plans=frozenset({"pro"}),
                      thresholds=(Threshold("seats", Comparison.GTE, 10),)),
            context(tier="high", features={"seats": 10}, plan="pro"), True,
            id="all-parts-holding"),
    ],
)
def test_condition_semantics(condition: Condition, ctx: DecisionContext, holds: bool) -> None:
    assert condition.holds(ctx) is holds


def test_a_parsed_condition_reads_a_scalar_or_a_list_and_several_comparisons() -> None:
    text = edit(BASE, ("{trigger: [payment_failed]}",
                       "{trigger: payment_failed, tier: [medium, high], plan: pro,"
                       " features: {seats: {gte: 2, lt: 10}}}"))
    condition = parse_policy(text, VOCABULARY).rules[0].when
    assert condition.triggers == {"payment_failed"}
    assert condition.tiers == {"medium", "high"}
    assert condition.plans == {"pro"}
    assert set(condition.thresholds) == {Threshold("seats", Comparison.GTE, 2.0),
                                         Threshold("seats", Comparison.LT, 10.0)}


# --- 6. durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("30m", 30 * MINUTE, id="minutes"),
        pytest.param("12h", 12 * HOUR, id="hours"),
        pytest.param("7d", 7 * DAY, id="days"),
        pytest.param("9999d", 9999 * DAY, id="four-digits"),
        pytest.param("0d", None, id="zero"),
        pytest.param("10000d", None, id="five-digits"),
        pytest.param("7w", None, id="weeks-unknown"),
        pytest.param("1.5d", None, id="fraction"),
        pytest.param("7", None, id="no-unit"),
        pytest.param("d", None, id="no-number"),
        pytest.param(" 7d", None, id="leading-space"),
        pytest.param("7D", None, id="upper-case-unit"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


# --- 7. the holder: reload on change, keep the last good ---------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def versioned(version: str) -> str:
    return edit(BASE, ('policy_version: "t.1"', f'policy_version: "{version}"'))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    write(path, versioned("v1"), mtime=1_700_000_000)
    return path


def test_the_holder_reloads_a_changed_file_at_its_next_check(policy_file: Path) -> None:
    clock = Clock()
    holder = PolicyHolder(policy_file, VOCABULARY, check_seconds=10, clock=clock)
    write(policy_file, versioned("v2"), mtime=1_700_000_100)
    clock.now += 9
    assert holder.current().version == "v1"  # not due for a check yet
    clock.now += 1
    assert holder.current().version == "v2"
    assert (holder.reloaded, holder.rejected) == (1, 0)


def test_the_holder_keeps_the_same_policy_when_only_the_mtime_changes(
        policy_file: Path) -> None:
    clock = Clock()
    holder = PolicyHolder(policy_file, VOCABULARY, check_seconds=10, clock=clock)
    first = holder.current()
    os.utime(policy_file, (1_700_000_100, 1_700_000_100))
    clock.now += 10
    assert holder.current() is first
    assert (holder.reloaded, holder.rejected) == (0, 0)


def test_the_holder_refuses_a_bad_file_and_keeps_the_last_good(policy_file: Path) -> None:
    clock = Clock()
    holder = PolicyHolder(policy_file, VOCABULARY, check_seconds=10, clock=clock)
    write(policy_file, edit(versioned("v2"), ("decide: start_workflow", "decide: nudge")),
          mtime=1_700_000_100)
    clock.now += 10
    assert holder.current().version == "v1"
    assert (holder.reloaded, holder.rejected) == (0, 1)
    clock.now += 10
    assert holder.current().version == "v1"
    assert holder.rejected == 1  # the same bad file is refused once, not at every check
    write(policy_file, versioned("v3"), mtime=1_700_000_200)
    clock.now += 10
    assert holder.current().version == "v3"
    assert (holder.reloaded, holder.rejected) == (1, 1)


def test_the_holder_keeps_the_last_good_when_the_file_disappears(policy_file: Path) -> None:
    clock = Clock()
    holder = PolicyHolder(policy_file, VOCABULARY, check_seconds=10, clock=clock)
    policy_file.unlink()
    clock.now += 10
    assert holder.current().version == "v1"
    assert holder.rejected == 1


def test_an_accept_hook_that_raises_refuses_the_reload(policy_file: Path) -> None:
    clock = Clock()
    seen: list[str] = []

    def accept(policy: Policy) -> None:
        seen.append(policy.version)
        if policy.version == "v2":
            msg = "experiment split changed"
            raise ValueError(msg)

    holder = PolicyHolder(policy_file, VOCABULARY, check_seconds=10, accept=accept, clock=clock)
    write(policy_file, versioned("v2"), mtime=1_700_000_100)
    clock.now += 10
    assert holder.current().version == "v1"
    assert (holder.reloaded, holder.rejected) == (0, 1)
    assert seen == ["v1", "v2"]  # the first policy passed the hook too


def test_the_holder_tells_on_change_what_happened(policy_file: Path) -> None:
    clock = Clock()
    heard: list[tuple[str, str]] = []
    holder = PolicyHolder(policy_file, VOCABULARY, check_seconds=10, clock=clock,
                          on_change=lambda outcome, live: heard.append((outcome, live.version)))
    write(policy_file, edit(versioned("v2"), ("decide: start_workflow", "decide: nudge")),
          mtime=1_700_000_100)
    clock.now += 10
    holder.current()
    write(policy_file, versioned("v3"), mtime=1_700_000_200)
    clock.now += 10
    holder.current()
    assert heard == [("loaded", "v1"), ("refused", "v1"), ("accepted", "v3")]


def test_an_invalid_first_policy_raises(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    write(path, edit(BASE, ("{max: 2, per: 7d}", "{max: 0, per: 7d}")), mtime=1_700_000_000)
    with pytest.raises(PolicyError) as caught:
        PolicyHolder(path, VOCABULARY, clock=Clock())
    assert [(p.path, p.line) for p in caught.value.problems] == [("caps.email.max", 3)]
    assert caught.value.source == str(path)


def test_a_missing_first_policy_raises(tmp_path: Path) -> None:
    with pytest.raises(PolicyError):
        PolicyHolder(tmp_path / "absent.yaml", VOCABULARY, clock=Clock())


@pytest.mark.parametrize(("old", "new", "path"), [
    ('policy_version: "t.1"', 'policy_version: !!int "abc"', "policy_version"),
    ('policy_version: "t.1"', "policy_version: !!python/name:os.system x", "policy_version"),
    ("decide: start_workflow", 'decide: !!float "x"', "rules[0].decide"),
], ids=["bad-int-tag", "python-tag", "bad-float-tag"])
def test_a_tagged_value_that_does_not_construct_is_a_problem_not_a_crash(
    old: str, new: str, path: str
) -> None:
    assert [p for p, _ in problems_of(edit(BASE, (old, new)))] == [path]


def test_an_unquoted_numeric_version_must_be_quoted() -> None:
    # 2026.10 would load as the number 2026.1 and collide with version 2026.1
    problems = problems_of(edit(BASE, ('policy_version: "t.1"', "policy_version: 2026.10")))
    assert problems == [("policy_version", 1)]


def test_the_holder_never_looks_again_with_zero_seconds(policy_file: Path) -> None:
    clock = Clock()
    holder = PolicyHolder(policy_file, VOCABULARY, check_seconds=0, clock=clock)
    write(policy_file, versioned("v2"), mtime=1_700_000_100)
    clock.now += 3_600
    assert holder.current().version == "v1"
    assert (holder.reloaded, holder.rejected) == (0, 0)
