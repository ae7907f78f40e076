"""Lint: what a valid policy may still get wrong.

Checks (``Finding.check``), errors first:

- ``never-matches`` (error): a rule's conditions contradict each other.
- ``shadowed`` (error): every response a rule matches is taken by a rule of
  higher precedence (more specific, or equally specific and earlier).
- ``unknown-test-rule`` (error): a ``[[tests]]`` entry expects a rule the
  policy does not have (or has disabled).
- ``status-range`` (error when a status spec lies wholly outside 100-599,
  warning when partly): HTTP statuses are 100-599.
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

from collections.abc import Iterable
from typing import Any, NamedTuple

import attrs

from .._loading import template_fields
from .._matching import specificity
from .._model import ActionKind, LongHint, Match, Policy, Rule, StatusRange
from .._response import TRANSPORT_FAMILIES
from .locate import Locator

__all__ = ["Finding", "covers", "lint", "overlaps"]

_RESPONSE_FIELDS = ("status", "code", "type", "message", "message_regex", "headers")
_ERROR_FIELDS = ("code", "type", "message", "message_regex")


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


# --- What a match can match ------------------------------------------------------------


def _responses(m: Match) -> bool:
    """Whether the match sets a condition only a response can meet."""
    return bool(m.status or m.code or m.type or m.message or m.message_regex or m.headers) or (
        m.error is not None
    )


def _domain(m: Match) -> str:
    """``failure`` (network failures only), ``response`` or ``both``."""
    if m.transport:
        return "failure"
    return "response" if _responses(m) else "both"


def _needs_error(m: Match) -> bool:
    return m.error is True or any(getattr(m, f) for f in _ERROR_FIELDS)


def contradiction(m: Match) -> str | None:
    """Why a match can never match anything, or None."""
    if m.transport and _responses(m):
        return "it sets transport (a network failure, no response) and response conditions"
    if m.error is False and any(getattr(m, f) for f in _ERROR_FIELDS):
        return "it sets error = false and conditions on the error (code, type or message)"
    return None


def _statuses(ranges: Iterable[StatusRange]) -> set[int]:
    out: set[int] = set()
    for r in ranges:
        out.update(range(max(r.low, 0), min(r.high, 999) + 1))
    return out


def _leaf_kinds(kinds: Iterable[str]) -> set[str]:
    wanted = set(kinds)
    return {k for k, family in TRANSPORT_FAMILIES.items() if k in wanted or family in wanted}


def _header_implies(inner: bool | str | None, outer: bool | str) -> bool:
    """Whether header condition ``inner`` (None: not set) implies ``outer``."""
    if inner is None:
        return False
    if outer is True:
        return inner is not False
    if outer is False:
        return inner is False
    return isinstance(inner, str) and inner.strip().lower() == outer.strip().lower()


def _header_compatible(a: bool | str, b: bool | str) -> bool:
    if a is False or b is False:
        return a is b
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return True


def _headers(m: Match) -> dict[str, bool | str]:
    return {name.lower(): value for name, value in m.headers.items()}


def covers(outer: Match, inner: Match) -> bool:
    """Whether every response or failure that ``inner`` matches also meets ``outer``."""
    d_out, d_in = _domain(outer), _domain(inner)
    if d_out != "both" and d_out != d_in:
        return False
    if outer.method and not (inner.method and set(inner.method) <= set(outer.method)):
        return False
    if outer.transport and not _leaf_kinds(inner.transport) <= _leaf_kinds(outer.transport):
        return False
    if outer.status and not (inner.status and _statuses(inner.status) <= _statuses(outer.status)):
        return False
    for name in ("code", "type"):
        mine, theirs = getattr(outer, name), getattr(inner, name)
        if mine and not (theirs and set(theirs) <= set(mine)):
            return False
    if outer.message:
        wanted = [s.lower() for s in outer.message]
        if not inner.message or not all(any(w in s.lower() for w in wanted) for s in inner.message):
            return False
    if outer.message_regex is not None and inner.message_regex != outer.message_regex:
        return False
    inner_headers = _headers(inner)
    for name, value in _headers(outer).items():
        if not _header_implies(inner_headers.get(name), value):
            return False
    if outer.error is True and not _needs_error(inner):
        return False
    return not (outer.error is False and inner.error is not False)


def overlaps(a: Match, b: Match) -> bool:
    """Whether some response or failure can meet both ``a`` and ``b`` (two
    message substrings are taken to overlap only when one contains the other,
    two regular expressions only when they are the same)."""
    da, db = _domain(a), _domain(b)
    if "both" not in (da, db) and da != db:
        return False
    if a.method and b.method and not set(a.method) & set(b.method):
        return False
    if a.transport and b.transport and not _leaf_kinds(a.transport) & _leaf_kinds(b.transport):
        return False
    if a.status and b.status and not _statuses(a.status) & _statuses(b.status):
        return False
    for name in ("code", "type"):
        mine, theirs = getattr(a, name), getattr(b, name)
        if mine and theirs and not set(mine) & set(theirs):
            return False
    if a.message and b.message:
        ma, mb = [s.lower() for s in a.message], [s.lower() for s in b.message]
        if not any(x in y or y in x for x in ma for y in mb):
            return False
    if a.message_regex and b.message_regex and a.message_regex != b.message_regex:
        return False
    hb = _headers(b)
    for name, value in _headers(a).items():
        if name in hb and not _header_compatible(value, hb[name]):
            return False
    if a.error is not None and b.error is not None and a.error is not b.error:
        return False
    if (a.error is False and _needs_error(b)) or (b.error is False and _needs_error(a)):
        return False
    return contradiction(a) is None and contradiction(b) is None


def _fields(m: Match) -> frozenset[str]:
    names = {
        name
        for name in ("status", "code", "type", "message", "message_regex", "method", "transport")
        if getattr(m, name)
    }
    names.update(f"header:{h}" for h in _headers(m))
    if m.error is not None:
        names.add("error")
    return frozenset(names)


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
    domain = _domain(m)
    responses = domain != "failure"
    failures = domain != "response"
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


class _Precedence(NamedTuple):
    """The engine's order of rules, higher first: specificity, then position."""

    specificity: tuple[int, int]
    position: int  # minus the rule's index: an earlier rule is higher


def lint(policy: Policy, locator: Locator | None = None) -> list[Finding]:
    """Every finding of every check, errors first, then in rule order."""
    where = locator or Locator(policy)
    findings: list[Finding] = []

    def add(severity: str, check: str, path: tuple[Any, ...], message: str) -> None:
        file, key_path = where.where(path)
        findings.append(Finding(severity, check, file, key_path, message))

    enabled = [(i, r) for i, r in enumerate(policy.rules) if r.enabled]
    keys = {i: _Precedence(specificity(r.match), -i) for i, r in enabled}
    dead: set[int] = set()
    for i, rule in enabled:
        why = contradiction(rule.match)
        if why is not None:
            dead.add(i)
            add(
                "error",
                "never-matches",
                ("rules", i, "match"),
                f"rule {rule.id!r} can never match: {why}",
            )
    sources = {file: n for n, file in enumerate(policy.sources)}

    def layer(i: int) -> int:
        return sources.get(where.source(("rules", i, "match")).file, len(sources))

    for i, rule in enabled:
        if i in dead:
            continue
        for j, other in enabled:
            if j == i or j in dead or keys[j] <= keys[i]:
                continue
            if not covers(other.match, rule.match):
                continue
            dead.add(i)
            reason = (
                "which is more specific"
                if keys[j].specificity > keys[i].specificity
                else "which is as specific and comes first"
            )
            if layer(j) > layer(i):
                # An override's rule taking over a lower layer's: often meant,
                # but overriding the rule by id says so and keeps one rule.
                place = where.rule(rule.id)
                add(
                    "warning",
                    "shadowed",
                    ("rules", j, "match"),
                    f"rule {other.id!r} takes everything rule {rule.id!r} ({place}) "
                    f"matches, {reason}: {rule.id!r} can never match; to change that rule, "
                    f"override it by id (or set enabled = false on it)",
                )
            else:
                place = where.rule(other.id)
                add(
                    "error",
                    "shadowed",
                    ("rules", i, "match"),
                    f"rule {rule.id!r} can never match: everything it matches goes to rule "
                    f"{other.id!r} ({place}), {reason}",
                )
            break
    for i, rule in enabled:
        if i in dead:
            continue
        for j, other in enabled:
            if j >= i or j in dead or keys[j].specificity != keys[i].specificity:
                continue
            if _fields(rule.match) != _fields(other.match) or _effect(rule) == _effect(other):
                continue
            if covers(rule.match, other.match) or not overlaps(rule.match, other.match):
                continue  # a carve-out that comes first, or no common ground
            # Report at the rule of the higher layer (the one a user wrote).
            at, against = (j, i) if layer(j) > layer(i) else (i, j)
            mine, theirs = policy.rules[at], policy.rules[against]
            place = where.rule(theirs.id)
            add(
                "warning",
                "overlap",
                ("rules", at, "match"),
                f"rule {mine.id!r} ({_describe_effect(mine)}) overlaps rule {theirs.id!r} "
                f"({place}; {_describe_effect(theirs)}) and only their order decides: "
                f"{other.id!r} wins; make one more specific, or the two disjoint",
            )
    for i, rule in enabled:
        found = _status_finding(rule)
        if found is None and i in dead:
            continue
        if found is not None:
            add(found.severity, "status-range", ("rules", i, "match", "status"), found.message)
        if (
            rule.action in (ActionKind.RETRY, ActionKind.FALLBACK)
            and rule.on_long_hint is LongHint.HONOUR
            and float(rule.max_elapsed) == 0.0
            and rule.use_hints
            and policy.hints.sources
        ):
            add(
                "warning",
                "uncapped-delay",
                ("rules", i, "on_long_hint"),
                f"rule {rule.id!r} waits as long as a server asks (on_long_hint = 'honour') "
                "and max_elapsed = 0 sets no limit: a Retry-After of a day stalls the caller a "
                "day; set max_elapsed, or on_long_hint = 'clamp'",
            )
        if i in dead:
            continue
        unfilled = _unfilled(rule, policy)
        own = where.source(("rules", i, "remediation")).path[-1:] == ("remediation",)
        source = "" if own else " (inherited from [defaults])"
        try:
            names = template_fields(rule.remediation)
        except ValueError:  # pragma: no cover - the loader checked the template
            names = []
        for name in dict.fromkeys(names):
            if name in unfilled:
                add(
                    "warning",
                    "unfilled-placeholder",
                    ("rules", i, "remediation"),
                    f"rule {rule.id!r}: {{{name}}} in the remediation{source} can never be filled "
                    f"({unfilled[name]}); it would always read '(unknown)'",
                )
    ids = {r.id for _, r in enabled}
    for t, test in enumerate(policy.tests):
        wanted = test.expect.rule
        if wanted is not None and wanted not in ids:
            known = {r.id for r in policy.rules}
            state = "is disabled" if wanted in known else "does not exist"
            add(
                "error",
                "unknown-test-rule",
                ("tests", t, "expect", "rule"),
                f"test {test.name!r} expects rule {wanted!r}, which {state}",
            )
    order = {"error": 0, "warning": 1}
    return sorted(findings, key=lambda f: order[f.severity])
