"""Lint: what a valid policy may still get wrong.

Checks (``Finding.check``), errors first:

- ``never-matches`` (error): a rule's conditions contradict each other.
- ``shadowed`` (error): every response a rule matches is taken by a rule of
  higher precedence (more specific, or equally specific and earlier).
- ``unknown-test-rule`` (error): a ``[[tests]]`` entry expects a rule the
  policy does not have (or has disabled).
- ``status-range`` (error when a status spec lies wholly outside 100-599,
  warning when partly): HTTP statuses are 100-599.
- ``partly-shadowed`` (warning): a generic rule of an override (an error
  type alone, or a status range) matches responses that an exact-status rule
  of a lower layer decides differently, first: on those statuses it never
  decides.
- ``overlap`` (warning): two rules on the same keys, equally specific, can
  match the same response and decide differently: only their order decides.
- ``uncapped-delay`` (warning): a retrying rule obeys a server's wait of any
  length (``on_long_hint = "honour"``) with no ``max_elapsed`` to bound it.
- ``unfilled-placeholder`` (warning): a remediation placeholder that has no
  value for any response the rule can match (it would always read "(unknown)").

A disabled rule is not linted. Precedence is the engine's (``specificity()``,
then position), so what lint calls unreachable the engine never selects.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

import attrs

from .._converter import template_fields
from .._keypath import format_path
from .._matching import EXACT_STATUS, STATUS_RANGE, TYPE_ALONE, specificity
from .._model import ActionKind, LongHint, Policy, Rule
from .locate import Locator
from .matchsets import condition_keys, contradiction, covers, domain, overlaps

__all__ = ["Finding", "lint"]


@attrs.frozen
class Finding:
    """One lint finding (or, from ``check``, one load problem: ``invalid``)."""

    severity: str  # "error" or "warning"
    check: str
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.severity}: {self.message} [{self.check}]"

    def as_dict(self) -> dict[str, str]:
        return {
            "severity": self.severity,
            "check": self.check,
            "file": self.file,
            "path": self.path,
            "message": self.message,
        }


class _Effect(NamedTuple):
    """What a rule decides for what it matches; two overlapping rules with
    the same effect do not conflict."""

    classification: str
    action: str
    retryable: bool


def _effect(rule: Rule) -> _Effect:
    return _Effect(rule.classification, rule.action.value, rule.retryable)


def _describe_effect(rule: Rule) -> str:
    return f"{rule.action.value}, {rule.classification}" + (", retryable" if rule.retryable else "")


# --- Placeholders ------------------------------------------------------------------------


def _unfilled(rule: Rule, policy: Policy) -> dict[str, str]:
    """Placeholders of the rule's remediation that can never have a value, and why."""
    m = rule.match
    kind = domain(m)
    responses = kind != "failure"
    failures = kind != "response"
    errors = responses and m.error is not False
    waits = rule.action in (ActionKind.RETRY, ActionKind.FALLBACK) and rule.max_attempts > 1
    why: dict[str, str] = {}
    no_response = "the rule matches only network failures, which have no response"
    for name in ("status",):
        if not responses:
            why[name] = no_response
    for name in ("code", "type", "message", "param", "limit", "requested"):
        if not responses:
            why[name] = no_response
        elif not errors:
            why[name] = "the rule matches only responses without an error (error = false)"
    if not failures:
        why["transport"] = "the rule matches only responses, not network failures"
    if not responses:
        why["retry_after"] = no_response
    elif not waits:
        why["retry_after"] = "the rule never retries, so no server wait hint is read"
    elif not rule.use_hints:
        why["retry_after"] = "the rule has use_hints = false"
    elif not policy.hints.sources:
        why["retry_after"] = "the policy has no [[hints.sources]]"
    falls_back = rule.action is ActionKind.FALLBACK or rule.on_long_hint is LongHint.FALLBACK
    if not rule.fallback:
        why["fallback"] = "the rule lists no fallback models"
    elif not falls_back or rule.max_attempts <= 1:
        why["fallback"] = "the rule never falls back"
    return why


# --- The checks ------------------------------------------------------------------------


class _StatusFinding(NamedTuple):
    severity: str
    message: str


def _status_finding(rule: Rule) -> _StatusFinding | None:
    outside = [r for r in rule.match.status if r.low < 100 or r.high > 599]
    if not outside:
        return None
    spec = ", ".join(str(r) for r in outside)
    if all(r.high < 100 or r.low > 599 for r in rule.match.status):
        return _StatusFinding("error", f"status {spec} is outside 100-599: no HTTP response has it")
    return _StatusFinding(
        "warning", f"status {spec} reaches outside 100-599, where no HTTP response is"
    )


#: How many rules a partly-shadowed finding names.
_SHOWN = 4


class _Precedence(NamedTuple):
    """The engine's order of rules, higher first: specificity, then position."""

    specificity: tuple[int, int]
    position: int  # minus the rule's index: an earlier rule is higher


class _Lint:
    """One run of lint over a policy: the findings so far, and the rules
    found unreachable (later checks skip them)."""

    def __init__(self, policy: Policy, where: Locator, broken: Collection[str] = ()) -> None:
        self.policy = policy
        self.broken = frozenset(broken)
        self.where = where
        self.findings: list[Finding] = []
        self.enabled = [(i, r) for i, r in enumerate(policy.rules) if r.enabled]
        self.keys = {i: _Precedence(specificity(r.match), -i) for i, r in self.enabled}
        self.dead: set[int] = set()
        self._layers = {file: n for n, file in enumerate(policy.sources)}

    def add(self, severity: str, check: str, path: tuple[Any, ...], message: str) -> None:
        file, key_path = self.where.where(path)
        self.findings.append(Finding(severity, check, file, key_path, message))

    def layer(self, i: int) -> int:
        """The layer (0: lowest) that wrote rule ``i``'s match."""
        file = self.where.source(("rules", i, "match")).file
        return self._layers.get(file, len(self._layers))

    def never_matches(self) -> None:
        for i, rule in self.enabled:
            why = contradiction(rule.match)
            if why is not None:
                self.dead.add(i)
                self.add(
                    "error",
                    "never-matches",
                    ("rules", i, "match"),
                    f"rule {rule.id!r} can never match: {why}",
                )

    def shadowed(self) -> None:
        keys = self.keys
        for i, rule in self.enabled:
            if i in self.dead:
                continue
            for j, other in self.enabled:
                if j == i or j in self.dead or keys[j] <= keys[i]:
                    continue
                if covers(other.match, rule.match):
                    self.dead.add(i)
                    self._shadow(i, rule, j, other)
                    break

    def _shadow(self, i: int, rule: Rule, j: int, other: Rule) -> None:
        """Report that rule ``j`` (``other``) takes everything rule ``i`` matches."""
        reason = (
            "which is more specific"
            if self.keys[j].specificity > self.keys[i].specificity
            else "which is as specific and comes first"
        )
        if self.layer(j) > self.layer(i):
            # An override's rule taking over a lower layer's: often meant,
            # but overriding the rule by id says so and keeps one rule.
            self.add(
                "warning",
                "shadowed",
                ("rules", j, "match"),
                f"rule {other.id!r} takes everything rule {rule.id!r} ({self.where.rule(rule.id)}) "
                f"matches, {reason}: {rule.id!r} can never match; to change that rule, "
                f"override it by id (or set enabled = false on it)",
            )
        else:
            self.add(
                "error",
                "shadowed",
                ("rules", i, "match"),
                f"rule {rule.id!r} can never match: everything it matches goes to rule "
                f"{other.id!r} ({self.where.rule(other.id)}), {reason}",
            )

    def partly_shadowed(self) -> None:
        """A generic rule (a type alone, a status range) of a layer above
        that an exact status of a lower layer decides differently, in part."""
        for i, rule in self.enabled:
            if i in self.dead or self.keys[i].specificity[0] not in (TYPE_ALONE, STATUS_RANGE):
                continue
            takers = [
                other
                for j, other in self.enabled
                if j not in self.dead
                and self.keys[j].specificity[0] == EXACT_STATUS
                and self.layer(j) < self.layer(i)
                and _effect(other) != _effect(rule)
                and overlaps(other.match, rule.match)
            ]
            if not takers:
                continue
            statuses = ", ".join("/".join(str(r) for r in t.match.status) for t in takers)
            ids = ", ".join(repr(t.id) for t in takers[:_SHOWN])
            more = f" and {len(takers) - _SHOWN} more" if len(takers) > _SHOWN else ""
            kind = "an error type alone" if rule.match.type else "a status range"
            self.add(
                "warning",
                "partly-shadowed",
                ("rules", i, "match"),
                f"rule {rule.id!r} matches {kind}, less specific than an exact status: on "
                f"status {statuses} a rule of a lower layer decides differently, first "
                f"({ids}{more}); to decide those too, name the statuses in its match "
                "(status = [...]), or override those rules by id",
            )

    def overlap(self) -> None:
        keys = self.keys
        for i, rule in self.enabled:
            if i in self.dead:
                continue
            for j, other in self.enabled:
                if j >= i or j in self.dead or keys[j].specificity != keys[i].specificity:
                    continue
                if condition_keys(rule.match) != condition_keys(other.match):
                    continue
                if _effect(rule) == _effect(other):
                    continue
                if covers(rule.match, other.match) or not overlaps(rule.match, other.match):
                    continue  # a carve-out that comes first, or no common ground
                # Report at the rule of the higher layer (the one a user wrote).
                at, against = (j, i) if self.layer(j) > self.layer(i) else (i, j)
                mine, theirs = self.policy.rules[at], self.policy.rules[against]
                self.add(
                    "warning",
                    "overlap",
                    ("rules", at, "match"),
                    f"rule {mine.id!r} ({_describe_effect(mine)}) overlaps rule {theirs.id!r} "
                    f"({self.where.rule(theirs.id)}; {_describe_effect(theirs)}) and only their "
                    f"order decides: {other.id!r} wins; make one more specific, or the two "
                    "disjoint",
                )

    def each_rule(self) -> None:
        """The checks of one rule at a time: status-range (of unreachable
        rules too), uncapped-delay, unfilled-placeholder."""
        for i, rule in self.enabled:
            found = _status_finding(rule)
            if found is None and i in self.dead:
                continue
            if found is not None:
                path = ("rules", i, "match", "status")
                self.add(found.severity, "status-range", path, found.message)
            if _uncapped(rule, self.policy):
                self.add(
                    "warning",
                    "uncapped-delay",
                    ("rules", i, "on_long_hint"),
                    f"rule {rule.id!r} waits as long as a server asks (on_long_hint = 'honour') "
                    "and max_elapsed = 0 sets no limit: a Retry-After of a day stalls the caller "
                    "a day; set max_elapsed, or on_long_hint = 'clamp'",
                )
            if i not in self.dead:
                self.unfilled_placeholders(i, rule)

    def unfilled_placeholders(self, i: int, rule: Rule) -> None:
        unfilled = _unfilled(rule, self.policy)
        at: tuple[Any, ...] = ("rules", i, "remediation")
        inherited = self.policy.inherited.get(format_path(at))
        source = ""
        if inherited is not None:  # "$.classifications.x.remediation" -> [classifications.x]
            source = f" (inherited from [{inherited[2:].rsplit('.', 1)[0]}])"
            at = ("rules", i)
        try:
            names = template_fields(rule.remediation)
        except ValueError:  # pragma: no cover - the loader checked the template
            names = []
        for name in dict.fromkeys(names):
            if name in unfilled:
                self.add(
                    "warning",
                    "unfilled-placeholder",
                    at,
                    f"rule {rule.id!r}: {{{name}}} in the remediation{source} can never be filled "
                    f"({unfilled[name]}); it would always read '(unknown)'",
                )

    def unknown_test_rules(self) -> None:
        ids = {r.id for _, r in self.enabled}
        for t, test in enumerate(self.policy.tests):
            wanted = test.expect.rule
            if wanted is not None and wanted not in ids and wanted not in self.broken:
                known = {r.id for r in self.policy.rules}
                state = "is disabled" if wanted in known else "does not exist"
                self.add(
                    "error",
                    "unknown-test-rule",
                    ("tests", t, "expect", "rule"),
                    f"test {test.name!r} expects rule {wanted!r}, which {state}",
                )


def _uncapped(rule: Rule, policy: Policy) -> bool:
    """Whether the rule waits as long as any server asks, with nothing to bound it."""
    return bool(
        rule.action in (ActionKind.RETRY, ActionKind.FALLBACK)
        and rule.on_long_hint is LongHint.HONOUR
        and float(rule.max_elapsed) == 0.0
        and rule.use_hints
        and policy.hints.sources
    )


def lint(
    policy: Policy, locator: Locator | None = None, *, broken: Collection[str] = ()
) -> list[Finding]:
    """Every finding of every check, errors first, then in rule order.
    ``broken``: ids of rules that did not load (a partial load's disabled
    stand-ins), which tests may expect without a finding."""
    run = _Lint(policy, locator or Locator(policy), broken)
    run.never_matches()
    run.shadowed()
    run.partly_shadowed()
    run.overlap()
    run.each_rule()
    run.unknown_test_rules()
    order = {"error": 0, "warning": 1}
    return sorted(run.findings, key=lambda f: order[f.severity])
