"""Policy self-tests: the default policy's [[tests]] pass and cover the seed doc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import policyengine as pe
from policyengine.cli.selftest import run_test, run_tests

SEED_STATUSES = {200, 400, 401, 403, 429, 500, 502, 503}
SEED_CODES = {
    "invalid_api_key",
    "model_not_found",
    "rate_limit_exceeded",
    "context_length_exceeded",
}


def test_default_tests_pass(default_policy: pe.Policy) -> None:
    report = run_tests(default_policy)
    failures = [
        (r.name, [c.line() for c in r.checks if not c.ok]) for r in report.results if not r.ok
    ]
    assert failures == []
    assert report.passed == len(default_policy.tests) > 0


@pytest.mark.parametrize("seed", [1, 2, 3, 99])
def test_default_tests_pass_whatever_the_seed(default_policy: pe.Policy, seed: int) -> None:
    assert run_tests(default_policy, seed=seed).failed == 0


def test_default_tests_cover_the_seed_doc(default_policy: pe.Policy) -> None:
    tests = default_policy.tests
    statuses = {t.response.status for t in tests}
    assert statuses >= SEED_STATUSES | {529}
    codes = set()
    for t in tests:
        if t.response.body.startswith("{"):
            error = json.loads(t.response.body).get("error")
            if isinstance(error, dict) and isinstance(error.get("code"), str):
                codes.add(error["code"])
    assert codes >= SEED_CODES | {"insufficient_quota"}
    transports = {t.response.transport for t in tests}
    assert {"read_timeout", "connect_timeout"} <= transports
    assert all(t.expect.kind is not None for t in tests)


def test_unexercised_rules_are_listed(default_policy: pe.Policy) -> None:
    report = run_tests(default_policy)
    used = {r.action.rule_id for r in report.results}
    assert set(report.unexercised) == {r.id for r in default_policy.rules} - used
    assert "rate-limit" not in report.unexercised


def _policy(tmp_path: Path, text: str) -> pe.Policy:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return pe.load_policy(path, env=False)


def test_every_expect_key_is_checked(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        '[[rules]]\nid = "upstream-unavailable"\nfallback = ["a", "b"]\n'
        '[defaults.backoff]\njitter = "none"\n'
        "[[tests]]\n"
        'name = "all keys right"\nmodel = "a"\nresponse = { status = 502 }\n'
        'expect = { kind = "fallback", classification = "upstream_unavailable", '
        'retryable = true, rule = "upstream-unavailable", delay = 0.5, fallback = "b" }\n'
        "[[tests]]\n"
        'name = "all keys wrong"\nmodel = "a"\nresponse = { status = 502 }\n'
        'expect = { kind = "retry", classification = "x", retryable = false, rule = "y", '
        'delay = [1, 2], fallback = "c" }\n'
        '[[tests]]\nname = "expects nothing"\nresponse = { status = 502 }\nexpect = {}\n',
    )
    by_name = {t.name: t for t in policy.tests}
    ok, wrong, empty = (by_name[n] for n in ("all keys right", "all keys wrong", "expects nothing"))
    assert all(c.ok for c in run_test(policy, ok)[1])
    assert [c.line() for c in run_test(policy, wrong)[1]] == [
        "kind: expected 'retry', got 'fallback'",
        "classification: expected 'x', got 'upstream_unavailable'",
        "retryable: expected false, got true",
        "rule: expected 'y', got 'upstream-unavailable'",
        "delay: expected 1s-2s, got 0.5s",
        "fallback: expected 'c', got 'b'",
    ]
    assert [c.line() for c in run_test(policy, empty)[1]] == [
        "expect: expected 'at least one key', got 'none'"
    ]


def test_only_files(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        '[[tests]]\nname = "mine"\nresponse = { status = 401 }\nexpect = { kind = "fail" }\n',
    )
    report = run_tests(policy, only_files={str(tmp_path / "p.toml")})
    assert [r.name for r in report.results] == ["mine"]
    assert report.results[0].path == "$.tests[0]"
    assert report.unexercised == ()  # the file has no rules of its own
    everything = run_tests(policy)
    assert len(everything.results) == len(policy.tests)
    assert "not-implemented" in everything.unexercised  # no default test sends a 501
