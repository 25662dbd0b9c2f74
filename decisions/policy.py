"""The decision policy: a small, validated language in a versioned YAML file.

A policy says what to do when an account raises a trigger (an alert's rule:
``payment_failed``, ``login_drop``, ``risk_high`` ...): the first rule whose
``when`` matches gives the decision (``ignore``, ``start_workflow``,
``escalate``, ``holdout``) and the workflow. It also names the workflows (their
contact channel, cooldown, how long one stays active and which recoveries end
it), the contact caps per channel and the experiments. See
``decisions/policies/default.yaml`` for a commented example.

:func:`load_policy` reports *every* problem at once, each with its line and
path in the file (``rules[2].when.tier: ...``), so ``churnwatch policy check``
can list them all; the running flow refuses an invalid policy at start.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from schemas.decision import Decision
from scoring.errors import ScoringError

log = logging.getLogger(__name__)

DEFAULT_POLICY = "default.yaml"
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_DURATION_RE = re.compile(r"([1-9][0-9]{0,3})(m|h|d)")
_DURATION_UNITS = {"m": 60, "h": 3_600, "d": 86_400}
_TIERS = ("low", "medium", "high")
# The alert statuses a rule may ask about (``when: {alert_status: acknowledged}``): those a
# human sets through the API. ``open`` is every alert nobody has touched, so it is not one.
ALERT_STATUSES = ("acknowledged", "snoozed", "resolved", "expired")


class Recovery(StrEnum):
    """Events that say an account is coming back (they end workflows early)."""

    PAYMENT_SUCCEEDED = "payment_succeeded"
    RENEWED = "renewed"
    USAGE_RECOVERED = "usage_recovered"


class Comparison(StrEnum):
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    EQ = "eq"
    NE = "ne"

    def holds(self, value: float, limit: float) -> bool:
        if self is Comparison.LT:
            return value < limit
        if self is Comparison.LTE:
            return value <= limit
        if self is Comparison.GT:
            return value > limit
        if self is Comparison.GTE:
            return value >= limit
        if self is Comparison.EQ:
            return value == limit
        return value != limit


@dataclass(frozen=True, slots=True)
class Threshold:
    """``feature <op> value``."""

    feature: str
    comparison: Comparison
    value: float


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a rule can look at: the trigger, the latest risk, the account's segment, and
    the statuses of the account's alerts that people have changed (the API's lifecycle:
    ``acknowledged``, ``snoozed``, ``resolved``, ``expired``), as last read."""

    trigger: str
    tier: str | None  # None: the account has no score yet
    features: Mapping[str, float]
    plan: str | None
    alert_statuses: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule's ``when``: every part given must hold (an absent part always holds)."""

    triggers: frozenset[str] | None = None
    tiers: frozenset[str] | None = None
    plans: frozenset[str] | None = None
    thresholds: tuple[Threshold, ...] = ()
    # the account has at least one alert in one of these statuses
    alert_statuses: frozenset[str] | None = None

    def holds(self, context: DecisionContext) -> bool:
        if self.triggers is not None and context.trigger not in self.triggers:
            return False
        if self.tiers is not None and context.tier not in self.tiers:
            return False
        if self.plans is not None and context.plan not in self.plans:
            return False
        if self.alert_statuses is not None and not self.alert_statuses & context.alert_statuses:
            return False
        for threshold in self.thresholds:
            value = context.features.get(threshold.feature)
            if value is None or not threshold.comparison.holds(value, threshold.value):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: Condition
    decision: Decision
    workflow_key: str | None  # set unless the decision is ignore


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``max_contacts`` contacts on ``channel`` per rolling ``window_seconds``."""

    channel: str
    max_contacts: int
    window_seconds: float


@dataclass(frozen=True, slots=True)
class Workflow:
    key: str
    channel: str
    cooldown_seconds: float  # from one trigger of this workflow to the next
    active_seconds: float  # a started workflow counts as active this long
    exits_on: frozenset[Recovery]


@dataclass(frozen=True, slots=True)
class Experiment:
    """A split of one workflow's decisions: buckets 0..holdout-1 are held out."""

    key: str
    workflow_key: str
    holdout_percent: int
    variants: tuple[tuple[str, int], ...]  # (name, percent), in file order

    def split(self) -> tuple[tuple[str, int], ...]:
        """The stored form of the split (a change of it under one key is refused)."""
        return (("holdout", self.holdout_percent), *self.variants)


@dataclass(frozen=True)
class Policy:
    version: str
    rules: tuple[Rule, ...]
    workflows: Mapping[str, Workflow]
    caps: Mapping[str, Cap]
    experiments: Mapping[str, Experiment]  # by workflow key
    source: str = "<policy>"
    digest: str = field(default="", compare=False)

    def match(self, context: DecisionContext) -> Rule | None:
        """The first rule whose condition holds."""
        for rule in self.rules:
            if rule.when.holds(context):
                return rule
        return None

    @cached_property
    def longest_memory_seconds(self) -> float:
        """How long per-account decision state must be remembered."""
        spans = [c.window_seconds for c in self.caps.values()]
        spans += [w.cooldown_seconds for w in self.workflows.values()]
        spans += [w.active_seconds for w in self.workflows.values()]
        return max(spans, default=0.0)


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    path: str
    line: int | None
    problem: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.path}: {self.problem}"


class PolicyError(ScoringError):
    """A policy file is invalid; ``problems`` lists every one found."""

    def __init__(self, source: str, problems: Iterable[PolicyProblem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        listed = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{listed}")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The names a policy may use: triggers and features that exist."""

    triggers: frozenset[str]
    features: frozenset[str]
    # where the triggers and features come from, for the problems that name one
    source: str = "the feature definitions"


def default_policy_path() -> Path:
    return Path(str(resources.files("decisions") / "policies" / DEFAULT_POLICY))


def load_policy(path: Path | str, vocabulary: Vocabulary) -> Policy:
    """Read and validate a policy file; raises :class:`PolicyError` listing every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, [PolicyProblem("<file>", None, str(exc))]) from None
    return parse_policy(text, vocabulary, source=source)


def parse_policy(text: str, vocabulary: Vocabulary, *, source: str = "<policy>") -> Policy:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(source, [PolicyProblem("<yaml>", line, str(problem))]) from None
    checker = _Checker(vocabulary)
    policy = checker.policy(node, source, hashlib.sha256(text.encode()).hexdigest()[:16])
    if checker.problems or policy is None:
        raise PolicyError(source, checker.problems)
    return policy


def parse_duration(text: str) -> float | None:
    """``"7d"``, ``"12h"``, ``"30m"`` in seconds; None if malformed."""
    found = _DURATION_RE.fullmatch(text)
    if found is None:
        return None
    return int(found.group(1)) * float(_DURATION_UNITS[found.group(2)])


class _Missing:
    """A required key that is absent: it points at the mapping that lacks it."""

    def __init__(self, parent: yaml.Node) -> None:
        self.start_mark = parent.start_mark


class _Fields(dict[str, yaml.Node]):
    """A mapping's entries; ``get`` of an absent key gives a :class:`_Missing`,
    so a problem about it still has a line."""

    def __init__(self, node: yaml.Node) -> None:
        super().__init__()
        self.node = node

    def get(self, key: str, default: object = None) -> Any:  # type: ignore[override]
        return self[key] if key in self else _Missing(self.node)


class _Checker:
    """Walks the YAML node tree (which keeps line numbers), collecting problems."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.problems: list[PolicyProblem] = []

    def fail(self, path: str, node: yaml.Node | None, problem: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(PolicyProblem(path, line, problem))

    # -- shapes ------------------------------------------------------------

    def mapping(
        self, node: yaml.Node | None, path: str, allowed: Iterable[str]
    ) -> _Fields | None:
        if not isinstance(node, yaml.MappingNode):
            self.fail(path, node, "missing" if isinstance(node, _Missing)
                      else "expected a mapping")
            return None
        allowed = set(allowed)
        out = _Fields(node)
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or (allowed and key not in allowed):
                known = f" (known: {', '.join(sorted(allowed))})" if allowed else ""
                self.fail(f"{path}.{key}", key_node, f"unknown key{known}")
                continue
            if key in out:
                self.fail(f"{path}.{key}", key_node, "duplicate key")
                continue
            out[key] = value_node
        return out

    def entries(self, node: yaml.Node | None, path: str) -> dict[str, yaml.Node]:
        """A mapping of user-chosen names (each a valid name)."""
        found: dict[str, yaml.Node] = self.mapping(node, path, ()) or {}
        for name in list(found):
            if not _NAME_RE.fullmatch(name):
                self.fail(f"{path}.{name}", found.pop(name),
                          "names are lower_snake_case, at most 63 characters")
        return found

    def scalar(self, node: yaml.Node | None, path: str) -> Any:
        """The node's value; None (with the problem recorded) if missing, empty or not
        a single value."""
        if isinstance(node, _Missing):
            self.fail(path, node, "missing")
            return None
        if not isinstance(node, yaml.ScalarNode):
            self.fail(path, node, "expected a single value")
            return None
        try:
            value = yaml.SafeLoader("").construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
            # e.g. `!!int "abc"` or a `!!python/...` tag: not a value of ours
            self.fail(path, node, f"not a valid value ({type(exc).__name__}: {exc})"[:200])
            return None
        if value is None or value == "":
            self.fail(path, node, "empty: expected a value")
        return value

    def text(self, node: yaml.Node | None, path: str) -> str | None:
        value = self.scalar(node, path)
        if value is None or value == "":
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.fail(path, node, "expected text")
            return None
        return str(value)

    def name(self, node: yaml.Node | None, path: str) -> str | None:
        value = self.text(node, path)
        if value is not None and not _NAME_RE.fullmatch(value):
            self.fail(path, node, f"{value!r} is not a lower_snake_case name")
            return None
        return value

    def duration(self, node: yaml.Node | None, path: str) -> float | None:
        value = self.text(node, path)
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds is None:
            self.fail(path, node, f"{value!r} is not a duration such as 30m, 12h or 7d")
        return seconds

    def number(self, node: yaml.Node | None, path: str) -> float | None:
        value = self.scalar(node, path)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, node, "expected a number")
            return None
        return float(value)

    def percent(self, node: yaml.Node | None, path: str) -> int | None:
        value = self.scalar(node, path)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            self.fail(path, node, "expected a whole percentage 0..100")
            return None
        return value

    def choices(
        self, node: yaml.Node | None, path: str, allowed: Iterable[str], what: str,
        defined_in: str = "",
    ) -> frozenset[str] | None:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        allowed = set(allowed)
        before = len(self.problems)
        out: set[str] = set()
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]" if isinstance(node, yaml.SequenceNode) else path
            value = self.text(item, item_path)
            if value is None:
                continue
            if allowed and value not in allowed:
                self.fail(item_path, item,
                          f"unknown {what} {value!r}{defined_in}"
                          f" (known: {', '.join(sorted(allowed))})")
                continue
            out.add(value)
        if not out and len(self.problems) == before:
            self.fail(path, node, f"expected at least one {what}")
        return frozenset(out) if out else None

    # -- the document ------------------------------------------------------

    def policy(self, node: yaml.Node | None, source: str, digest: str) -> Policy | None:
        top = self.mapping(
            node, "policy",
            ("policy_version", "defaults", "caps", "workflows", "experiments", "rules"),
        )
        if top is None:
            return None
        version = None
        if "policy_version" in top:
            raw = self.scalar(top["policy_version"], "policy_version")
            if isinstance(raw, str) and raw:
                version = raw
            elif raw is not None:
                # 2026.10 would be the number 2026.1: quote versions
                self.fail("policy_version", top["policy_version"],
                          f"must be text: quote it (\"{raw}\")")
        else:
            self.fail("policy_version", node, "missing: every policy names its version")
        defaults: dict[str, yaml.Node] | None = self.mapping(
            top["defaults"], "defaults", ("cooldown", "active_for")
        ) if "defaults" in top else {}
        cooldown = self.duration(defaults["cooldown"], "defaults.cooldown") \
            if defaults and "cooldown" in defaults else 14 * 86_400.0
        active = self.duration(defaults["active_for"], "defaults.active_for") \
            if defaults and "active_for" in defaults else 21 * 86_400.0
        caps = self.caps(top.get("caps")) if "caps" in top else {}
        workflows = self.workflows(top.get("workflows"), caps, cooldown or 0.0, active or 0.0)
        experiments = self.experiments(top.get("experiments"), workflows) \
            if "experiments" in top else {}
        rules = self.rules(top.get("rules"), workflows)
        if self.problems or version is None:
            return None
        return Policy(version, rules, workflows, caps, experiments, source, digest)

    def caps(self, node: yaml.Node | None) -> dict[str, Cap]:
        caps = {}
        for channel, spec in self.entries(node, "caps").items():
            path = f"caps.{channel}"
            fields = self.mapping(spec, path, ("max", "per"))
            if fields is None:
                continue
            if "max" not in fields or "per" not in fields:
                self.fail(path, spec, "a cap needs both max and per (e.g. {max: 3, per: 7d})")
                continue
            most = self.scalar(fields["max"], f"{path}.max")
            if isinstance(most, bool) or not isinstance(most, int) or most < 1:
                self.fail(f"{path}.max", fields["max"], "expected a whole number >= 1")
                continue
            window = self.duration(fields["per"], f"{path}.per")
            if window is not None:
                caps[channel] = Cap(channel, most, window)
        return caps

    def workflows(
        self, node: yaml.Node | None, caps: Mapping[str, Cap], cooldown: float, active: float
    ) -> dict[str, Workflow]:
        if node is None:
            self.fail("workflows", node, "missing: name at least one workflow")
            return {}
        workflows = {}
        for key, spec in self.entries(node, "workflows").items():
            path = f"workflows.{key}"
            fields = self.mapping(spec, path, ("channel", "cooldown", "active_for", "exits_on"))
            if fields is None:
                continue
            channel = self.name(fields.get("channel"), f"{path}.channel")
            if channel is not None and caps and channel not in caps:
                self.fail(f"{path}.channel", fields["channel"],
                          f"channel {channel!r} has no cap (capped: {', '.join(sorted(caps))})")
            own_cooldown = self.duration(fields["cooldown"], f"{path}.cooldown") \
                if "cooldown" in fields else cooldown
            own_active = self.duration(fields["active_for"], f"{path}.active_for") \
                if "active_for" in fields else active
            exits = self.choices(fields["exits_on"], f"{path}.exits_on",
                                 (r.value for r in Recovery), "recovery") \
                if "exits_on" in fields else frozenset(r.value for r in Recovery)
            if channel is None or own_cooldown is None or own_active is None:
                continue
            workflows[key] = Workflow(
                key, channel, own_cooldown, own_active,
                frozenset(Recovery(e) for e in exits or ()),
            )
        return workflows

    def experiments(
        self, node: yaml.Node | None, workflows: Mapping[str, Workflow]
    ) -> dict[str, Experiment]:
        by_workflow: dict[str, Experiment] = {}
        for key, spec in self.entries(node, "experiments").items():
            path = f"experiments.{key}"
            fields = self.mapping(spec, path, ("workflow", "holdout", "variants"))
            if fields is None:
                continue
            workflow = self.name(fields.get("workflow"), f"{path}.workflow")
            if workflow is not None and workflow not in workflows:
                self.fail(f"{path}.workflow", fields.get("workflow"),
                          f"unknown workflow {workflow!r}")
                workflow = None
            if workflow is not None and workflow in by_workflow:
                self.fail(f"{path}.workflow", fields.get("workflow"),
                          f"workflow {workflow!r} already has experiment "
                          f"{by_workflow[workflow].key!r}")
                workflow = None
            holdout = self.percent(fields.get("holdout"), f"{path}.holdout")
            variants = []
            for name, share in self.entries(fields.get("variants"), f"{path}.variants").items():
                percent = self.percent(share, f"{path}.variants.{name}")
                if name == "holdout":
                    self.fail(f"{path}.variants.holdout", share, "holdout is not a variant name")
                elif percent is not None:
                    variants.append((name, percent))
            if holdout is None or workflow is None:
                continue
            total = holdout + sum(p for _, p in variants)
            if total != 100:
                self.fail(path, spec, f"holdout and variants must add up to 100, not {total}")
                continue
            by_workflow[workflow] = Experiment(key, workflow, holdout, tuple(variants))
        return by_workflow

    def rules(self, node: yaml.Node | None, workflows: Mapping[str, Workflow]) -> tuple[Rule, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.fail("rules", node, "expected a list of at least one rule")
            return ()
        rules = []
        names: set[str] = set()
        for index, spec in enumerate(node.value):
            path = f"rules[{index}]"
            fields = self.mapping(spec, path, ("name", "when", "decide", "workflow"))
            if fields is None:
                continue
            name = self.text(fields.get("name"), f"{path}.name")
            if name is not None and name in names:
                self.fail(f"{path}.name", fields.get("name"), f"duplicate rule name {name!r}")
            names.add(name or "")
            when = self.condition(fields["when"], f"{path}.when") if "when" in fields \
                else Condition()
            decision_text = self.text(fields.get("decide"), f"{path}.decide")
            decision = None
            if decision_text is not None:
                try:
                    decision = Decision(decision_text)
                except ValueError:
                    self.fail(f"{path}.decide", fields.get("decide"),
                              f"unknown decision {decision_text!r} "
                              f"(known: {', '.join(d.value for d in Decision)})")
            workflow = None
            if "workflow" in fields:
                workflow = self.name(fields["workflow"], f"{path}.workflow")
                if workflow is not None and workflow not in workflows:
                    self.fail(f"{path}.workflow", fields["workflow"],
                              f"unknown workflow {workflow!r}")
                    workflow = None
                elif decision is Decision.IGNORE:
                    self.fail(f"{path}.workflow", fields["workflow"],
                              "an ignore rule starts no workflow")
            elif decision is not None and decision is not Decision.IGNORE:
                self.fail(path, spec, f"decide: {decision} needs a workflow")
            if name is not None and decision is not None and when is not None:
                rules.append(Rule(name, when, decision, workflow))
        return tuple(rules)

    def condition(self, node: yaml.Node | None, path: str) -> Condition | None:
        fields = self.mapping(node, path, ("trigger", "tier", "plan", "features",
                                           "alert_status"))
        if fields is None:
            return None
        before = len(self.problems)
        triggers = self.choices(fields["trigger"], f"{path}.trigger",
                                self.vocabulary.triggers, "trigger",
                                f": no tier-1 rule or signal of {self.vocabulary.source}") \
            if "trigger" in fields else None
        tiers = self.choices(fields["tier"], f"{path}.tier", _TIERS, "tier") \
            if "tier" in fields else None
        plans = self.choices(fields["plan"], f"{path}.plan", (), "plan") \
            if "plan" in fields else None
        statuses = self.choices(fields["alert_status"], f"{path}.alert_status",
                                ALERT_STATUSES, "alert status") \
            if "alert_status" in fields else None
        thresholds: list[Threshold] = []
        if "features" in fields:
            for feature, spec in self.entries(fields["features"], f"{path}.features").items():
                feature_path = f"{path}.features.{feature}"
                if feature not in self.vocabulary.features:
                    self.fail(feature_path, spec,
                              f"unknown feature: not defined in {self.vocabulary.source}")
                    continue
                tests = self.mapping(spec, feature_path, (c.value for c in Comparison))
                if not tests:
                    if tests is not None:
                        self.fail(feature_path, spec, "expected a comparison such as {lt: 3}")
                    continue
                for op_name, value_node in tests.items():
                    limit = self.number(value_node, f"{feature_path}.{op_name}")
                    if limit is not None:
                        thresholds.append(Threshold(feature, Comparison(op_name), limit))
        if len(self.problems) > before:
            return None
        return Condition(triggers, tiers, plans, tuple(thresholds), statuses)


def vocabulary_for(
    tier1_rules: Iterable[str],
    feature_names: Iterable[str],
    *,
    signals: Iterable[str] | None = None,
    source: str = "the feature definitions",
) -> Vocabulary:
    """Every trigger the flow raises: tier-1 rules, usage signals, risk-tier rises.

    ``signals``: the usage signals the definitions declare (None: the shipped ones);
    ``source``: the definitions file, named by the problems."""
    if signals is None:
        from schemas.signal import SignalType

        signals = (s.value for s in SignalType)
    triggers = set(tier1_rules) | set(signals)
    triggers |= {f"risk_{tier}" for tier in _TIERS if tier != "low"}
    return Vocabulary(frozenset(triggers), frozenset(feature_names), source)


class PolicyHolder:
    """The live policy, re-read when its file changes; a bad new version is refused.

    ``current()`` looks at the file's modification time at most every
    ``check_seconds`` (monotonic clock, injected; 0: never). A changed file is loaded and
    passed to ``accept`` (which may raise, e.g. when an experiment's split
    changed); on any error the last good policy stays live, and the problems
    are logged and counted in ``rejected``. ``on_change(outcome, live_policy)``
    hears ``loaded``, ``accepted`` and ``refused`` (for metrics).
    """

    def __init__(
        self,
        path: Path,
        vocabulary: Vocabulary,
        *,
        check_seconds: float = 10.0,
        accept: Callable[[Policy], None] | None = None,
        on_change: Callable[[str, Policy], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(path)
        self._vocabulary = vocabulary
        self._check_seconds = check_seconds
        self._accept = accept
        self._on_change = on_change
        self._clock = clock
        self._stamp = self._stat()
        policy = load_policy(self._path, vocabulary)  # the first one must be good
        if accept is not None:
            accept(policy)
        self._policy = policy
        self._next_check = clock() + check_seconds
        self.rejected = 0
        self.reloaded = 0
        if on_change is not None:
            on_change("loaded", policy)

    def current(self) -> Policy:
        if self._check_seconds <= 0:  # 0: never re-read
            return self._policy
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._check_seconds
            stamp = self._stat()
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
        return self._policy

    def _reload(self) -> None:
        try:
            policy = load_policy(self._path, self._vocabulary)
            if self._accept is not None:
                self._accept(policy)
        except Exception as exc:  # any refusal keeps the last good policy live
            self.rejected += 1
            log.error("policy %s refused; keeping %s: %s", self._path, self._policy.version, exc)
            if self._on_change is not None:
                self._on_change("refused", self._policy)
            return
        if policy.digest != self._policy.digest:
            self.reloaded += 1
            log.info("policy reloaded: %s -> %s", self._policy.version, policy.version)
            self._policy = policy
            if self._on_change is not None:
                self._on_change("accepted", policy)

    def _stat(self) -> tuple[float, int] | None:
        try:
            info = self._path.stat()
        except OSError:
            return None
        return info.st_mtime, info.st_size
