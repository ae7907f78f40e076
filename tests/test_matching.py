"""The rule index selects exactly what a scan of every rule would."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policyengine as pe
from policyengine._errorbody import parse_raw
from policyengine._matching import CompiledRule, Index, specificity
from policyengine._model import StatusRange
from policyengine._transport import TRANSPORT_FAMILIES

from .conftest import error_body


def scan(policy: pe.Policy, response: pe.Response) -> str | None:
    """The reference: every enabled rule, brute force, highest precedence wins."""
    raw = parse_raw(response.body, response.status)
    compiled = [CompiledRule.compile(r, i) for i, r in enumerate(policy.rules) if r.enabled]
    hits = [c for c in compiled if c.matches(response, raw)]
    return max(hits, key=lambda c: c.key).rule.id if hits else None


def scan_transport(policy: pe.Policy, kind: str, method: str | None) -> str | None:
    compiled = [CompiledRule.compile(r, i) for i, r in enumerate(policy.rules) if r.enabled]
    hits = [
        c for c in compiled if c.covers_transport(kind) and (not c.methods or method in c.methods)
    ]
    return max(hits, key=lambda c: c.key).rule.id if hits else None


def test_specificity_tiers() -> None:
    assert specificity(pe.Match()) == (0, 0)
    assert specificity(pe.Match(status=(StatusRange(500, 599),))) == (1, 1)
    assert specificity(pe.Match(type=("server_error",))) == (2, 1)  # generic: below a status
    assert specificity(pe.Match(status=(StatusRange(429, 429),))) == (3, 1)
    assert specificity(pe.Match(status=(StatusRange(429, 429), StatusRange(500, 599)))) == (1, 1)
    assert specificity(pe.Match(code=("x",), status=(StatusRange(429, 429),))) == (4, 2)
    # A type written for its statuses (a range too) is specific.
    assert specificity(pe.Match(type=("t",), status=(StatusRange(400, 499),))) == (4, 2)
    assert specificity(pe.Match(transport=("timeout",))) == (4, 1)  # type: ignore[arg-type]
    assert specificity(pe.Match(headers={"a": True, "b": False}, error=True)) == (0, 3)


def test_a_generic_type_never_beats_an_exact_status() -> None:
    # The case: OpenAI-style gateways send "type": "server_error" on
    # every 5xx; a 502 / 503 is still an unavailable upstream.
    engine = pe.Engine(pe.load_policy(env=False))
    body = error_body("Bad gateway", "server_error")
    for status, rule in (
        (502, "upstream-unavailable"),
        (503, "upstream-unavailable"),
        (500, "server-error"),
        (504, "request-timeout"),
        (599, "server-error-type"),
    ):
        assert engine.evaluate(pe.Response(status, {}, body)).rule_id == rule, status


def test_words_after_a_type_are_checked() -> None:
    # Found by the property below: a type + message rule, no other message
    # rule in the policy, must still look at the message.
    policy = pe.load_policy(
        {"inherit": False, "rules": [{"id": "q", "match": {"type": "t2", "message": "quota"}}]},
        default=False,
        env=False,
    )
    body = error_body("Quota busy", "t2", "c")
    chosen = Index.build(policy).select(pe.Response(200, {}, body), parse_raw(body, 200))
    assert chosen is not None and chosen.rule.id == "q"


def test_default_policy_agrees_with_a_scan(default_policy: pe.Policy) -> None:
    index = Index.build(default_policy)
    for status in range(100, 600):
        for body in (
            b"",
            error_body("overloaded", "rate_limit_error", "invalid_api_key"),
            error_body("x", "insufficient_quota", None),
            b'{"error": "busy"}',
        ):
            response = pe.Response(status, {}, body)
            chosen = index.select(response, parse_raw(body, status))
            assert (chosen.rule.id if chosen else None) == scan(default_policy, response)
    for kind in TRANSPORT_FAMILIES:
        chosen = index.select_transport(kind, None)
        assert (chosen.rule.id if chosen else None) == scan_transport(default_policy, kind, None)


codes = st.sampled_from(["a", "b", "c"])
matches = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from([429, 500, "4xx", "5xx", "400-499", [429, 503]]),
        "code": codes | st.lists(codes, min_size=1, max_size=2),
        "type": st.sampled_from(["t1", "t2"]),
        "message": st.sampled_from(["slow", "quota", ["busy", "slow"]]),
        "message_regex": st.sampled_from([r"try \d", "^Q"]),
        "headers": st.sampled_from([{"x-a": True}, {"x-a": False}, {"x-a": "yes"}]),
        "method": st.sampled_from(["POST", ["GET", "POST"]]),
        "transport": st.sampled_from(["timeout", "read_timeout", "connection", "reset"]),
        "error": st.booleans(),
    },
)
rules = st.lists(st.fixed_dictionaries({"match": matches, "enabled": st.booleans()}), max_size=25)
responses = st.builds(
    lambda status, body, headers, method: pe.Response(status, headers, body, method),
    st.sampled_from([200, 404, 429, 500, 503, 999]),
    st.sampled_from(
        [
            b"",
            b"try 5 later",
            error_body("Slow down", "t1", "a"),
            error_body("Quota busy", "t2", "c"),
            error_body("Q", None, "b"),
            b'{"id": 1, "error": {"code": "a", "message": "try 1"}}',
        ]
    ),
    st.sampled_from([{}, {"x-a": "yes"}, {"X-A": "no"}]),
    st.sampled_from([None, "POST", "GET"]),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=rules,
    response=responses,
    kind=st.sampled_from(sorted(TRANSPORT_FAMILIES)),
    method=st.sampled_from([None, "POST"]),
)
def test_index_equals_scan(
    rules: list[dict[str, object]], response: pe.Response, kind: str, method: str | None
) -> None:
    layer = {"inherit": False, "rules": [{"id": f"r{i}", **r} for i, r in enumerate(rules)]}
    policy = pe.load_policy(layer, default=False, env=False)
    index = Index.build(policy)
    chosen = index.select(response, parse_raw(response.body, response.status))
    assert (chosen.rule.id if chosen else None) == scan(policy, response)
    chosen = index.select_transport(kind, method)
    assert (chosen.rule.id if chosen else None) == scan_transport(policy, kind, method)
