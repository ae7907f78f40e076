"""The breaker, the retry budget, sticky failures and the governor's admission,
as pure steps in virtual time (the clients' tests drive them for real)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import policyengine as pe
from policyengine._governor import Deny, Go, Governor, Hold, TrafficKey
from policyengine._governor._breaker import (
    PROBE_LEASE,
    BreakerState,
    GateKind,
    Transition,
    admit,
    observe,
)
from policyengine._governor._budget import BudgetState, deposit, withdraw
from policyengine._governor._remembered import Remembered
from policyengine._governor._sticky import (
    MAX_STICKY_SECONDS,
    StickyState,
    current,
    hold_for,
    remember,
)
from policyengine._model import Breaker, RetryBudget, Sticky

BREAKER = Breaker(failures=3, open_for=1.0, max_open_for=4.0)
KEY = TrafficKey("https://api.example.com:443", "0123456789ab", "gpt-4o")


def test_a_new_key_gets_one_probe_and_the_others_wait_briefly() -> None:
    s = BreakerState()
    assert admit(s, 0.0, BREAKER, first_contact=1.0).kind is GateKind.PROBE
    held = admit(s, 0.1, BREAKER, first_contact=1.0)
    assert held.kind is GateKind.WAIT and held.for_probe and held.until == 1.0
    # Past first_contact without an answer, the others go.
    assert admit(s, 1.5, BREAKER, first_contact=1.0).kind is GateKind.GO
    observe(s, 2.0, failed=False, probe=True, settings=BREAKER)
    assert admit(s, 2.1, BREAKER, first_contact=1.0).kind is GateKind.GO


def test_the_circuit_opens_probes_doubles_and_closes() -> None:
    s = BreakerState(known=True)
    transitions = [observe(s, 0.0, True, False, BREAKER) for _ in range(3)]
    assert transitions == [None, None, Transition.OPENED]
    assert admit(s, 0.5, BREAKER, 0.0) == (GateKind.WAIT, 1.0, False)
    assert admit(s, 1.0, BREAKER, 0.0).kind is GateKind.PROBE
    assert admit(s, 1.1, BREAKER, 0.0).kind is GateKind.WAIT  # the probe is out
    assert observe(s, 1.2, True, True, BREAKER) is Transition.REOPENED
    assert s.open_for == 2.0 and s.open_until == pytest.approx(3.2)
    for t in (3.2, 7.2):  # 2, then 4 (the most)
        assert admit(s, t, BREAKER, 0.0).kind is GateKind.PROBE
        observe(s, t, True, True, BREAKER)
    assert s.open_for == 4.0
    assert admit(s, 11.2, BREAKER, 0.0).kind is GateKind.PROBE
    assert observe(s, 11.3, False, True, BREAKER) is Transition.CLOSED
    assert admit(s, 11.4, BREAKER, 0.0).kind is GateKind.GO


def test_a_probe_that_never_answers_lets_another_probe() -> None:
    s = BreakerState(known=True, open_until=1.0, open_for=1.0, failures=3)
    assert admit(s, 1.0, BREAKER, 0.0).kind is GateKind.PROBE
    assert admit(s, 1.0 + PROBE_LEASE + 0.1, BREAKER, 0.0).kind is GateKind.PROBE


def test_a_success_in_between_resets_the_count() -> None:
    s = BreakerState(known=True)
    for failed in (True, True, False, True, True):
        assert observe(s, 0.0, failed, False, BREAKER) is None
    assert s.open_until == 0.0


def test_a_disabled_breaker_never_opens() -> None:
    off = Breaker(enabled=False)
    s = BreakerState(known=True)
    for _ in range(20):
        observe(s, 0.0, True, False, off)
    assert admit(s, 0.0, off, 0.0).kind is GateKind.GO


@settings(max_examples=200, deadline=None)
@given(
    ratio=st.floats(0.0, 1.0),
    burst=st.floats(0.0, 20.0),
    steps=st.lists(st.booleans(), max_size=300),
)
def test_retries_never_exceed_the_ratio_plus_the_burst(
    ratio: float, burst: float, steps: list[bool]
) -> None:
    settings_ = RetryBudget(ratio=ratio, burst=burst)
    s = BudgetState()
    firsts = retries = 0
    for is_retry in steps:
        if is_retry:
            retries += withdraw(s, settings_)
        else:
            deposit(s, settings_)
            firsts += 1
        assert retries <= math.floor(burst + ratio * firsts + 1e-9)


def test_sticky_holds_for_the_servers_wait_else_the_cooldown() -> None:
    quota = pe.Engine().evaluate(
        pe.Response(429, {}, b'{"error": {"code": "insufficient_quota", "message": "no"}}')
    )
    assert hold_for("rate_limit", 2.0, Sticky()) is None  # not a sticky classification
    assert hold_for(quota.classification, None, Sticky(cooldown=30.0)) == 30.0
    assert hold_for(quota.classification, 5.0, Sticky(cooldown=30.0)) == 5.0
    assert hold_for(quota.classification, None, Sticky(enabled=False)) is None
    assert hold_for(quota.classification, 1e9, Sticky()) == MAX_STICKY_SECONDS
    s = StickyState()
    failure = Remembered.of(quota, None)
    remember(s, 0.0, 30.0, failure)
    assert current(s, 29.9) is failure
    assert current(s, 30.0) is None and s.failure is None


def test_a_remembered_failure_survives_a_trip_through_json() -> None:
    body = (
        b'{"error": {"code": "insufficient_quota", "message": "Quota for sk-abcdef123456 spent"}}'
    )
    response = pe.Response(429, {"x-request-id": "r1"}, body)
    action = pe.Engine().evaluate(response)
    remembered = Remembered.of(action, response)
    back = Remembered.from_json(remembered.to_json())
    assert back == remembered
    assert back.response is not None
    assert b"sk-abcdef123456" not in back.response.body  # masked in what is replayed
    assert "sk-abcdef123456" not in back.remediation + " ".join(back.reasons)
    assert Remembered.from_json(b"garbage") is None
    assert Remembered.from_json('{"classification": 1}') is None
    told = back.action("governor: told")
    assert (told.kind, told.classification, told.rule_id) == (
        "fail",
        "quota_exhausted",
        action.rule_id,
    )
    assert told.reasons[-1] == "governor: told"


def test_admission_denies_a_slot_past_the_deadline() -> None:
    governor = Governor(pe.load_policy(env=False).governor)
    first = governor.admit(KEY, 0.0, retry=False)
    assert isinstance(first, Go)
    reading = pe.Response(
        200,
        {
            "x-ratelimit-limit-requests": "10",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "30s",
        },
        b"{}",
    )
    ok = pe.Engine().evaluate(reading)
    governor.settle(first.ticket, 0.01, reading, ok, wall_now=lambda: 1e9)
    held = governor.admit(KEY, 0.02, retry=False, deadline_at=60.0)
    assert isinstance(held, Hold) and held.wait == pytest.approx(30.0, abs=1.0)
    denied = governor.admit(KEY, 0.02, retry=False, deadline_at=10.0)
    assert isinstance(denied, Deny)
    assert denied.action.classification == "rate_limit"
    assert "past this call's deadline" in denied.action.explanation


@pytest.mark.parametrize(
    ("headers", "held"),
    [
        ({"Retry-After": "3600"}, 3600.0),  # the server's reset, though the rule fails at once
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2m"}, 120.0),
        ({"Retry-After": "999999999"}, MAX_STICKY_SECONDS),  # a hostile wait: a day at most
        ({}, 60.0),  # none said: the cooldown
    ],
)
def test_a_quota_is_held_as_long_as_the_server_said(headers: dict[str, str], held: float) -> None:
    policy = pe.load_policy(env=False)
    governor = Governor(policy.governor)
    told: list[pe.GovernorEvent] = []
    governor.listeners.append(told.append)
    go = governor.admit(KEY, 0.0, retry=False)
    assert isinstance(go, Go)
    quota = pe.Response(
        429, headers, b'{"error": {"code": "insufficient_quota", "message": "You exceeded it."}}'
    )
    action = pe.Engine(policy).evaluate(quota)
    assert action.kind is pe.ActionKind.FAIL and action.delay == 0.0
    governor.settle(go.ticket, 0.01, quota, action, wall_now=lambda: 1e9)
    (sticky,) = [e for e in told if e.kind == "sticky"]
    assert sticky.seconds == pytest.approx(held)
    assert isinstance(governor.admit(KEY, min(held - 1.0, 1800.0), retry=False), Deny)
    assert not isinstance(governor.admit(KEY, 0.02 + held, retry=False), Deny)


def test_keys_are_bounded() -> None:
    from policyengine._governor._store import MemoryStore

    governor = Governor(pe.load_policy(env=False).governor, store=MemoryStore(max_keys=50))
    for i in range(500):
        governor.admit(TrafficKey(f"h{i}", "", ""), float(i), retry=False)
    assert len(governor.store) == 50
