"""The driver: the loop, give-up, overrides, testing mode, logging and hooks.
No network here: the function being retried returns policyengine.Response
values or raises; the adapters' tests drive real clients."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import policyengine as pe
from policyengine._testing import is_testing, set_testing, testing_mode

from .conftest import error_body


def reply(status: int, code: str | None = None, **headers: str) -> pe.Response:
    body = error_body("boom", code=code) if status >= 400 else b'{"ok": true}'
    return pe.Response(status, headers, body)


def script(*items: pe.Response | Exception) -> Any:
    """A function giving items in order (and counting calls)."""
    calls: list[pe.Attempt] = []

    def fn(attempt: pe.Attempt) -> pe.Response:
        calls.append(attempt)
        item = items[min(len(calls), len(items)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


@pytest.fixture
def driver(engine: pe.Engine) -> pe.Driver:
    return pe.Driver(engine)


@pytest.fixture
def testing() -> Any:
    with testing_mode(seed=3) as mode:
        yield mode


def test_retries_until_success_and_returns_the_response(driver: pe.Driver, testing: Any) -> None:
    ok = reply(200)
    fn = script(reply(429, **{"Retry-After": "2"}), reply(500), ok)
    assert driver.call(fn) is ok
    assert [a.number for a in fn.calls] == [1, 2, 3]
    assert testing.waits[0] == 2.0
    assert len(testing.waits) == 2


def test_waits_count_as_elapsed_in_testing_mode(driver: pe.Driver, testing: Any) -> None:
    fn = script(reply(429, **{"Retry-After": "2"}), reply(429, **{"Retry-After": "3"}), reply(200))
    driver.call(fn)
    assert [a.elapsed for a in fn.calls] == [0.0, 2.0, 5.0]


def test_give_up_raises_gave_up_with_action_last_and_history(
    driver: pe.Driver, testing: Any
) -> None:
    last = reply(401, "invalid_api_key")
    fn = script(last)
    with pytest.raises(pe.GaveUp) as caught:
        driver.call(fn)
    error = caught.value
    assert error.action.kind is pe.ActionKind.FAIL
    assert error.action.rule_id == "invalid-api-key"
    assert error.last is last and error.response is last
    assert [d.attempt.number for d in error.history] == [1]
    assert str(error).startswith("gave up after 1 attempt: authentication (status 401")
    assert "re-copy the full key" in str(error)
    assert error.__cause__ is None
    assert testing.waits == []


def test_give_up_on_network_failure_chains_the_original_error(
    driver: pe.Driver, testing: Any
) -> None:
    boom = ConnectionResetError(104, "reset")
    fn = script(boom)
    with pytest.raises(pe.GaveUp) as caught:
        driver.call(fn)
    assert caught.value.__cause__ is boom
    assert caught.value.last is boom
    assert caught.value.response is None
    limit = driver.engine.policy.rule("connection").max_attempts
    assert len(fn.calls) == limit
    assert caught.value.history[-1].exception is boom


def test_a_bug_in_the_function_is_raised_as_it_is(driver: pe.Driver, testing: Any) -> None:
    fn = script(KeyError("oops"))
    with pytest.raises(KeyError):
        driver.call(fn)
    assert len(fn.calls) == 1


def test_run_never_raises_and_reports_the_outcome(driver: pe.Driver, testing: Any) -> None:
    outcome = driver.run(script(TimeoutError("slow"), reply(200)))
    assert outcome.ok
    assert outcome.attempts == 2
    assert outcome.history[0].action.transport == "timeout"
    assert outcome.waits == (outcome.history[0].action.delay,)


def test_fallback_passes_the_next_model(default_policy: pe.Policy, testing: Any) -> None:
    policy = pe.load_policy(
        {"rules": [{"id": "upstream-unavailable", "fallback": ["b", "c"]}]}, env=False
    )
    fn = script(reply(503), reply(503), reply(200))
    outcome = pe.Driver(pe.Engine(policy)).run(fn, model="a")
    assert [a.model for a in fn.calls] == ["a", "b", "c"]
    assert outcome.model == "c"
    assert [d.action.kind for d in outcome.history] == [
        pe.ActionKind.FALLBACK,
        pe.ActionKind.FALLBACK,
        pe.ActionKind.SUCCEED,
    ]


def test_override_only_tightens(driver: pe.Driver, testing: Any) -> None:
    fn = script(reply(500))
    outcome = driver.run(fn, override=pe.Override(max_attempts=2))
    assert len(fn.calls) == 2
    assert "per-call max_attempts = 2" in outcome.action.explanation
    fn = script(reply(500))
    outcome = driver.run(fn, override={"max_attempts": 99})
    assert len(fn.calls) == driver.engine.policy.rule("server-error").max_attempts


def test_override_max_elapsed(driver: pe.Driver, testing: Any) -> None:
    fn = script(reply(429, **{"Retry-After": "5"}))
    outcome = driver.run(fn, override=pe.Override(max_elapsed=4))
    assert len(fn.calls) == 1
    assert "per-call max_elapsed = 4s" in outcome.action.explanation
    assert testing.waits == []


def test_overriding_block_applies_and_nests(driver: pe.Driver, testing: Any) -> None:
    with pe.overriding(max_attempts=3), pe.overriding(max_attempts=5) as inner:
        assert inner.max_attempts == 3
        fn = script(reply(500))
        driver.run(fn)
        assert len(fn.calls) == 3
    fn = script(reply(500), reply(200))
    assert driver.run(fn).ok


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be a whole number >= 1"),
        ({"max_elapsed": -1.0}, "max_elapsed must be finite and >= 0"),
        ({"max_elapsed": "10"}, "max_elapsed must be a number of seconds"),
    ],
)
def test_bad_overrides_say_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pe.Override(**kwargs)


def test_override_of_rejects_unknown_keys_and_types() -> None:
    with pytest.raises(TypeError, match="use max_attempts and max_elapsed"):
        pe.Override.of({"attempts": 2})
    with pytest.raises(TypeError, match="got int"):
        pe.Override.of(3)


def test_testing_mode_caps_attempts_and_restores(driver: pe.Driver) -> None:
    assert not is_testing()
    with testing_mode(max_attempts=1) as mode:
        assert is_testing()
        fn = script(reply(500))
        driver.run(fn)
        assert len(fn.calls) == 1
        assert mode.waits == []
    assert not is_testing()


def test_set_testing_switches_on_and_off() -> None:
    try:
        mode = set_testing(True, seed=1)
        assert mode is not None and is_testing()
    finally:
        assert set_testing(False) is None
    assert not is_testing()


def test_testing_mode_jitter_is_seeded(default_policy: pe.Policy) -> None:
    waits = []
    for _ in range(2):
        with testing_mode(seed=11) as mode:
            pe.Driver(pe.Engine(default_policy)).run(script(reply(500), reply(500), reply(200)))
            waits.append(list(mode.waits))
    assert waits[0] == waits[1]
    assert len(waits[0]) == 2


def test_real_sleep_is_at_least_the_delay(engine: pe.Engine) -> None:
    fn = script(reply(429, **{"retry-after-ms": "120"}), reply(200))
    started = time.monotonic()
    outcome = pe.Driver(engine).run(fn)
    assert outcome.ok
    assert time.monotonic() - started >= 0.12
    assert fn.calls[1].elapsed >= 0.12


async def test_async_run_retries_and_sleeps(engine: pe.Engine) -> None:
    calls = []

    async def fn(attempt: pe.Attempt) -> pe.Response:
        calls.append(asyncio.get_running_loop().time())
        return reply(429, **{"retry-after-ms": "50"}) if attempt.number == 1 else reply(200)

    outcome = await pe.Driver(engine).arun(fn)
    assert outcome.ok
    assert calls[1] - calls[0] >= 0.05


async def test_async_call_gives_up_and_discards_retried_responses(
    engine: pe.Engine, testing: Any
) -> None:
    discarded = []

    async def fn(attempt: pe.Attempt) -> pe.Response:
        return reply(503)

    async def discard(response: pe.Response) -> None:
        discarded.append(response)

    with pytest.raises(pe.GaveUp):
        await pe.Driver(engine).acall(fn, discard=discard)
    limit = engine.policy.rule("upstream-unavailable").max_attempts
    assert len(discarded) == limit - 1  # the last response is handed back, not closed


def test_method_reaches_the_engine(testing: Any) -> None:
    policy = pe.load_policy(
        {
            "rules": [
                {
                    "id": "no-post-timeouts",
                    "match": {"transport": "read_timeout", "method": "POST"},
                    "classification": "timeout",
                    "action": "fail",
                }
            ]
        },
        env=False,
    )
    import urllib3

    error = urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")  # type: ignore[arg-type]
    post = pe.Driver(pe.Engine(policy)).run(script(error), method="post")
    assert post.attempts == 1 and post.action.rule_id == "no-post-timeouts"
    get = pe.Driver(pe.Engine(policy)).run(script(error, reply(200)), method="GET")
    assert get.attempts == 2


def test_logging_fields_and_levels(
    driver: pe.Driver, testing: Any, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-proj-abcdef1234567890"
    body = error_body(f"Incorrect API key provided: {secret}", code="invalid_api_key")
    fn = script(reply(429, **{"Retry-After": "1"}), pe.Response(401, {}, body))
    with caplog.at_level(logging.DEBUG, logger="policyengine"):
        driver.run(fn)
    retry, fail = [r for r in caplog.records if r.name == "policyengine"]
    assert retry.levelno == logging.INFO
    assert retry.getMessage().endswith("retrying in 1s (server)")
    assert (retry.attempt, retry.rule_id, retry.delay, retry.delay_source) == (  # type: ignore[attr-defined]
        1,
        "rate-limit",
        1.0,
        "server",
    )
    assert fail.levelno == logging.WARNING
    assert fail.action == "fail"  # type: ignore[attr-defined]
    assert "re-copy the full key" in fail.remediation  # type: ignore[attr-defined]
    assert secret not in caplog.text
    for field in pe._driver.LOG_FIELDS:
        assert hasattr(fail, field), field


def test_hooks_see_every_decision_and_a_failing_hook_is_only_logged(
    engine: pe.Engine, testing: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[pe.Decision] = []

    def broken(decision: pe.Decision) -> None:
        raise RuntimeError("metrics down")

    driver = pe.Driver(engine, hooks=[seen.append, broken])
    with caplog.at_level(logging.WARNING, logger="policyengine"):
        assert driver.run(script(reply(500), reply(200))).ok
    assert [d.action.kind for d in seen] == [pe.ActionKind.RETRY, pe.ActionKind.SUCCEED]
    assert seen[0].wait == seen[0].action.delay > 0
    assert "metrics down" in caplog.text


def test_delay_source(engine: pe.Engine) -> None:
    assert engine.evaluate(reply(429, **{"Retry-After": "1"})).delay_source == "server"
    assert engine.evaluate(reply(500)).delay_source == "backoff"
    assert engine.evaluate(reply(200)).delay_source == "none"


def test_gave_up_pickles(driver: pe.Driver, testing: Any) -> None:
    with pytest.raises(pe.GaveUp) as caught:
        driver.call(script(reply(400)))
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy, pe.GaveUp)
    assert copy.action == caught.value.action
    assert copy.action.remediation == caught.value.action.remediation
    assert copy.action.explanation == caught.value.action.explanation


# --- properties ---------------------------------------------------------------------

_statuses = st.sampled_from([200, 400, 401, 404, 408, 409, 429, 500, 502, 503, 504, 529])
_outcomes = st.one_of(
    st.builds(
        lambda status, hint: pe.Response(
            status, {"Retry-After": str(hint)} if hint is not None else {}, b""
        ),
        _statuses,
        st.one_of(st.none(), st.integers(0, 90)),
    ),
    st.sampled_from([TimeoutError("t"), ConnectionResetError(104, "r"), ConnectionRefusedError()]),
)


@settings(max_examples=150, deadline=None)
@given(
    outcomes=st.lists(_outcomes, min_size=1, max_size=12),
    cap=st.one_of(st.none(), st.integers(1, 6)),
)
def test_property_waits_are_the_actions_and_attempts_are_bounded(
    default_policy: pe.Policy, outcomes: list[Any], cap: int | None
) -> None:
    engine = pe.Engine(default_policy)
    fn = script(*outcomes)
    with testing_mode(seed=5) as mode:
        # The loop as the policy drives it (no governor pacing on top: its own tests).
        outcome = pe.Driver(engine, governor=None).run(fn, override=pe.Override(max_attempts=cap))
    history = outcome.history
    # Never more attempts than any rule (or the override) allows.
    most = max(r.max_attempts for r in default_policy.rules)
    assert len(fn.calls) == len(history) <= (cap or most)
    # It stops at the first non-retry action and only there.
    assert all(d.action.should_retry for d in history[:-1])
    assert not history[-1].action.should_retry
    # Each wait is exactly the action's delay: never less than it asked for,
    # and never less than the server's hint when the hint was honoured.
    assert mode.waits == [d.action.delay for d in history[:-1]]
    for decision in history[:-1]:
        hint = getattr(decision.result, "header", lambda _: None)("retry-after")
        if hint is not None and decision.action.delay_source == "server":
            assert decision.wait >= float(hint)
        assert decision.wait >= 0 and decision.wait == decision.action.delay
    # Elapsed (testing mode's clock) is the sum of the waits before.
    for i, attempt in enumerate(fn.calls):
        assert attempt.elapsed == pytest.approx(sum(mode.waits[:i]))


@settings(max_examples=60, deadline=None)
@given(bodies=st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_property_garbage_never_breaks_the_loop(
    default_policy: pe.Policy, bodies: list[bytes]
) -> None:
    fn = script(*[pe.Response(503, {}, b) for b in bodies], pe.Response(200, {}, b"{}"))
    with testing_mode():
        outcome = pe.Driver(pe.Engine(default_policy)).run(fn)
    assert outcome.attempts == len(fn.calls) >= 1


def test_body_model_and_swap_model() -> None:
    from policyengine._adapting import body_model, swap_model

    body = json.dumps({"model": "a", "messages": [{"content": "é"}]}).encode()
    assert body_model(body) == "a"
    assert body_model(body.decode()) == "a"
    assert json.loads(swap_model(body, "b")) == {"model": "b", "messages": [{"content": "é"}]}
    assert body_model(b"[1]") is None
    assert body_model(b'{"model": 3}') is None
    assert body_model(b"not json") is None
    assert body_model(None) is None


def test_a_call_that_cannot_switch_models_retries_the_same_model(testing: Any) -> None:
    # The engine decides as if the chain were used up: a retryable 503 is
    # retried on the same model rather than resent as a "fallback".
    policy = pe.load_policy(
        {"rules": [{"id": "upstream-unavailable", "fallback": ["b"]}]}, env=False
    )
    fn = script(reply(503), reply(200))
    outcome = pe.Driver(pe.Engine(policy)).run(fn, fallback=False)
    assert len(fn.calls) == 2
    assert [a.model for a in fn.calls] == [None, None]
    assert outcome.action.kind is pe.ActionKind.SUCCEED
    first = outcome.history[0].action
    assert (first.kind, first.fallback) == (pe.ActionKind.RETRY, None)
    assert "this caller cannot switch models; retrying the same model" in first.explanation


def test_a_call_that_cannot_switch_models_gives_up_on_a_fallback(
    testing: Any, caplog: pytest.LogCaptureFixture
) -> None:
    policy = pe.load_policy({"rules": [{"id": "model-not-found", "fallback": ["b"]}]}, env=False)
    fn = script(reply(404, code="model_not_found"), reply(200))
    with caplog.at_level(logging.INFO, logger="policyengine"):
        outcome = pe.Driver(pe.Engine(policy)).run(fn, fallback=False)
    assert len(fn.calls) == 1
    assert outcome.action.kind is pe.ActionKind.FAIL
    assert outcome.action.fallback is None
    assert "fail: this caller cannot switch models" in outcome.action.explanation
    assert testing.waits == []
    (record,) = [r for r in caplog.records if r.name == "policyengine"]
    assert record.levelno == logging.WARNING  # logged as the give-up it is


def test_max_elapsed_counts_the_time_the_attempt_itself_took() -> None:
    # Each attempt takes 8 s (a slow server, on a fake clock); the policy's
    # max_elapsed is 10 s. After the first attempt 8 s have passed: one more
    # 8 s attempt may start (8 + wait <= 10), after the second (16 s) none.
    policy = pe.load_policy(
        {
            "rules": [
                {
                    "id": "server-error",
                    "max_attempts": 10,
                    "max_elapsed": 10.0,
                    "backoff": {"initial": 0.001, "max_delay": 0.001, "jitter": "none"},
                }
            ]
        },
        env=False,
    )
    now = [0.0]

    def slow_500(attempt: pe.Attempt) -> pe.Response:
        now[0] += 8.0
        return reply(500)

    outcome = pe.Driver(pe.Engine(policy), clock=lambda: now[0]).run(slow_500)
    assert outcome.attempts == 2
    assert "max_elapsed" in outcome.action.explanation
    assert [d.attempt.elapsed for d in outcome.history] == [0.0, 8.0]


def test_retries_before_fallback_count_per_model(testing: Any) -> None:
    # LiteLLM's "retries before fallback": two retries on each model, then the next.
    policy = pe.load_policy(
        {
            "classifications": {
                "upstream_unavailable": {"retries_before_fallback": 2, "max_attempts": 8}
            },
            "defaults": {"fallback": ["a", "b"]},
        },
        env=False,
    )
    fn = script(*[reply(503)] * 6, reply(200))
    outcome = pe.Driver(pe.Engine(policy)).run(fn, model="a")
    assert outcome.attempts == 7
    assert [(a.model, a.model_attempt) for a in fn.calls] == [
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("b", 1),
        ("b", 2),
        ("b", 3),
        ("b", 4),
    ]
    explanation = outcome.history[0].action.explanation
    assert "retrying the same model before falling back: attempt 1 on it" in explanation
