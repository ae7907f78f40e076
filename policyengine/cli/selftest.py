"""Policy self-tests: run the ``[[tests]]`` of a policy through its engine.

Each test gets an engine of its own with ``random.Random(seed)``, so a
result never depends on the order of the tests. A ``transport`` test is fed
an exception that ``transport_kind()`` reads as that kind (a stdlib one, or a
stand-in named like httpx's precise timeouts).
"""

from __future__ import annotations

import random
from collections.abc import Collection
from typing import Any, NamedTuple

import attrs

from .._engine import Engine
from .._model import Action, Policy, PolicyTest, Response
from .._text import seconds
from .failures import make_failure
from .locate import Locator

__all__ = ["Check", "Report", "Result", "Trial", "run_test", "run_tests"]

#: Delays are compared with this much slack (float rounding in the backoff math).
DELAY_SLACK = 1e-9


def _show(value: object) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        low, high = value
        return f"{low:g}s" if low == high else f"{low:g}s-{high:g}s"
    if isinstance(value, float):
        return f"{seconds(value)}s"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


@attrs.frozen
class Check:
    """One expected key of a test, against what the engine did."""

    key: str
    expected: Any
    actual: Any
    ok: bool

    def line(self) -> str:
        return f"{self.key}: expected {_show(self.expected)}, got {_show(self.actual)}"

    def as_dict(self) -> dict[str, Any]:
        expected = list(self.expected) if isinstance(self.expected, tuple) else self.expected
        return {"key": self.key, "expected": expected, "actual": self.actual, "ok": self.ok}


@attrs.frozen
class Result:
    """The outcome of one test."""

    name: str
    file: str
    path: str
    checks: tuple[Check, ...]
    action: Action

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def line(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        return f"{verdict}  {self.name}  ({self.file}: {self.path})"

    def as_dict(self) -> dict[str, Any]:
        a = self.action
        return {
            "name": self.name,
            "file": self.file,
            "path": self.path,
            "ok": self.ok,
            "checks": [c.as_dict() for c in self.checks],
            "actual": {
                "kind": a.kind.value,
                "classification": a.classification,
                "retryable": a.retryable,
                "rule": a.rule_id or None,
                "delay": a.delay,
                "fallback": a.fallback,
            },
        }


@attrs.frozen
class Report:
    """All results, and the enabled rules no test's action came from."""

    results: tuple[Result, ...]
    unexercised: tuple[str, ...]

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "results": [r.as_dict() for r in self.results],
            "unexercised_rules": list(self.unexercised),
        }


class Trial(NamedTuple):
    """One test run: the engine's action, and a check per expected key."""

    action: Action
    checks: tuple[Check, ...]


def run_test(policy: Policy, test: PolicyTest, seed: int = 0) -> Trial:
    """Run one test; returns the action and a check per expected key."""
    engine = Engine(policy, rng=random.Random(seed))
    r = test.response
    subject: Response | BaseException
    if r.transport is not None:
        subject = make_failure(r.transport)
    else:
        subject = Response(r.status if r.status is not None else 0, r.headers, r.body, r.method)
    action = engine.evaluate(subject, test.attempt, test.elapsed, model=test.model, method=r.method)
    e = test.expect
    checks = []
    if e.kind is not None:
        checks.append(Check("kind", e.kind.value, action.kind.value, e.kind is action.kind))
    if e.classification is not None:
        checks.append(
            Check(
                "classification",
                e.classification,
                action.classification,
                e.classification == action.classification,
            )
        )
    if e.retryable is not None:
        checks.append(
            Check("retryable", e.retryable, action.retryable, e.retryable is action.retryable)
        )
    if e.rule is not None:
        checks.append(Check("rule", e.rule, action.rule_id, e.rule == action.rule_id))
    if e.delay is not None:
        low, high = e.delay
        ok = low - DELAY_SLACK <= action.delay <= high + DELAY_SLACK
        checks.append(Check("delay", e.delay, action.delay, ok))
    if e.fallback is not None:
        checks.append(Check("fallback", e.fallback, action.fallback, e.fallback == action.fallback))
    if not checks:  # a test that checks nothing passes whatever the policy does
        checks.append(Check("expect", "at least one key", "none", False))
    return Trial(action, tuple(checks))


def run_tests(
    policy: Policy,
    *,
    seed: int = 0,
    locator: Locator | None = None,
    only_files: Collection[str] | None = None,
) -> Report:
    """Run the policy's tests (those written in ``only_files``, if given, by
    the names the command line shows; then only the rules written there are
    listed as unexercised).

    A test whose ``expect`` sets no key fails: it would pass whatever happens.
    """
    where = locator or Locator(policy)
    results = []
    used: set[str] = set()
    for i, test in enumerate(policy.tests):
        file, path = where.where(("tests", i))
        if only_files is not None and file not in only_files:
            continue
        trial = run_test(policy, test, seed)
        used.add(trial.action.rule_id)
        results.append(Result(test.name, file, path, trial.checks, trial.action))
    unexercised = tuple(
        r.id
        for r in policy.rules
        if r.enabled
        and r.id not in used
        and (only_files is None or where.rule(r.id).file in only_files)
    )
    return Report(tuple(results), unexercised)
