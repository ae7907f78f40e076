"""Engine mechanics on small policies: precedence, hints, giving up, fallback."""

from __future__ import annotations

import math
import random
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policyengine as pe

from .conftest import NOW, error_body

K = pe.ActionKind


def engine_for(*rules: dict[str, Any], **top: Any) -> pe.Engine:
    layer: dict[str, Any] = {"inherit": False, "rules": list(rules), **top}
    layer.setdefault(
        "hints",
        {
            "sources": [
                {"header": "retry-after-ms", "format": "milliseconds"},
                {"header": "retry-after", "format": "retry-after"},
                {"header": "x-ratelimit-reset-requests", "format": "duration"},
            ]
        },
    )
    policy = pe.load_policy(layer, default=False, env=False)
    return pe.Engine(policy, clock=lambda: NOW, rng=random.Random(0))


RETRY = {
    "classification": "transient",
    "retryable": True,
    "action": "retry",
    "max_attempts": 4,
    "max_elapsed": 100.0,
    "hint_max": 60.0,
    "backoff": {"initial": 1.0, "multiplier": 2.0, "max_delay": 10.0, "jitter": "none"},
}


class TestPrecedence:
    def test_specific_beats_status_beats_range_beats_catch_all(self) -> None:
        engine = engine_for(
            {"id": "any"},
            {"id": "range", "match": {"status": "4xx"}},
            {"id": "exact", "match": {"status": 429}},
            {"id": "code", "match": {"code": "slow_down"}},
        )
        assert (
            engine.evaluate(pe.Response(429, {}, error_body("x", None, "slow_down"))).rule_id
            == "code"
        )
        assert engine.evaluate(pe.Response(429)).rule_id == "exact"
        assert engine.evaluate(pe.Response(404)).rule_id == "range"
        assert engine.evaluate(pe.Response(302)).rule_id == "any"

    def test_more_conditions_win_then_order(self) -> None:
        engine = engine_for(
            {"id": "first", "match": {"code": "c"}},
            {"id": "second", "match": {"code": "c"}},
            {"id": "both", "match": {"code": "c", "status": 500}},
        )
        assert engine.evaluate(pe.Response(500, {}, error_body("m", None, "c"))).rule_id == "both"
        assert engine.evaluate(pe.Response(400, {}, error_body("m", None, "c"))).rule_id == "first"

    def test_message_substring_and_regex(self) -> None:
        engine = engine_for(
            {"id": "any"},
            {"id": "sub", "match": {"message": ["Busy", "overloaded"]}},
            {"id": "re", "match": {"message_regex": r"try again in \d+s", "status": 429}},
        )
        assert engine.evaluate(pe.Response(500, {}, b"Server BUSY")).rule_id == "sub"
        assert engine.evaluate(pe.Response(429, {}, error_body("try again in 5s"))).rule_id == "re"
        assert engine.evaluate(pe.Response(500, {}, b"fine")).rule_id == "any"

    def test_headers_and_methods(self) -> None:
        engine = engine_for(
            {"id": "any"},
            {"id": "post-only", "match": {"status": 500, "method": "POST"}},
            {"id": "hdr", "match": {"status": 500, "headers": {"X-Cache": "MISS"}}},
            {"id": "absent", "match": {"status": 503, "headers": {"retry-after": False}}},
        )
        assert engine.evaluate(pe.Response(500, method="post")).rule_id == "any"
        assert engine.evaluate(pe.Response(500), method="post").rule_id == "post-only"
        assert engine.evaluate(pe.Response(500, {"x-cache": " miss "})).rule_id == "hdr"
        assert engine.evaluate(pe.Response(503)).rule_id == "absent"
        assert engine.evaluate(pe.Response(503, {"Retry-After": "1"})).rule_id == "any"

    def test_transport_families_and_kinds(self) -> None:
        engine = engine_for(
            {"id": "any"},
            {"id": "timeouts", "match": {"transport": "timeout"}},
            {"id": "refused", "match": {"transport": "refused"}},
            {"id": "post-read", "match": {"transport": "read_timeout", "method": "POST"}},
        )
        assert engine.evaluate(TimeoutError()).rule_id == "timeouts"
        assert engine.evaluate(ConnectionRefusedError()).rule_id == "refused"
        assert engine.evaluate(ConnectionResetError()).rule_id == "any"
        import httpx

        read = httpx.ReadTimeout("x", request=httpx.Request("POST", "http://127.0.0.1/"))
        assert engine.evaluate(read).rule_id == "post-read"
        assert engine.evaluate(httpx.ReadTimeout("x"), method="GET").rule_id == "timeouts"

    def test_disabled_rules_never_match(self) -> None:
        engine = engine_for({"id": "off", "enabled": False})
        action = engine.evaluate(pe.Response(500))
        assert (action.kind, action.rule_id) == (K.FAIL, "")
        assert "no enabled rule matched status 500" in action.explanation


class TestRetries:
    def test_backoff_then_give_up(self) -> None:
        engine = engine_for({"id": "r", **RETRY})
        kinds = [engine.evaluate(pe.Response(500), attempt=n) for n in (1, 2, 3, 4)]
        assert [a.kind for a in kinds] == [K.RETRY, K.RETRY, K.RETRY, K.FAIL]
        assert [a.delay for a in kinds] == [1.0, 2.0, 4.0, 0.0]
        assert kinds[-1].retryable
        assert "gave up after 4 attempts (max_attempts = 4)" in kinds[-1].explanation
        assert (
            "delay 2s from backoff: attempt 2, 1s x 2^1 capped at 10s = 2s" in kinds[1].explanation
        )

    def test_non_retryable_fails_at_once(self) -> None:
        engine = engine_for({"id": "f", "classification": "bad"})
        action = engine.evaluate(pe.Response(400))
        assert (action.kind, action.retryable, action.delay) == (K.FAIL, False, 0.0)
        assert "fail: the rule's action is fail" in action.explanation

    def test_deadline(self) -> None:
        engine = engine_for({"id": "r", **RETRY})
        assert engine.evaluate(pe.Response(500), attempt=2, elapsed=97.0).kind is K.RETRY
        action = engine.evaluate(pe.Response(500), attempt=2, elapsed=98.5)
        assert (action.kind, action.delay) == (K.FAIL, 0.0)
        assert "would pass max_elapsed = 100s" in action.explanation

    def test_infinite_elapsed_is_past_the_deadline(self) -> None:
        engine = engine_for({"id": "r", **RETRY})
        action = engine.evaluate(pe.Response(500), attempt=2, elapsed=float("inf"))
        assert action.kind is K.FAIL
        assert "would pass max_elapsed" in action.explanation
        nan = engine.evaluate(pe.Response(500), attempt=2, elapsed=float("nan"))
        assert nan.kind is K.RETRY  # unknown: taken as 0

    def test_max_elapsed_zero_means_no_limit(self) -> None:
        engine = engine_for({"id": "r", **RETRY, "max_elapsed": 0})
        assert engine.evaluate(pe.Response(500), attempt=2, elapsed=1e9).kind is K.RETRY

    @pytest.mark.parametrize(
        ("headers", "delay", "source"),
        [
            ({"Retry-After": "7"}, 7.0, "retry-after"),
            ({"retry-after-ms": "250", "Retry-After": "7"}, 0.25, "retry-after-ms"),
            ({"Retry-After": "Wed, 25 Nov 2026 12:00:20 GMT"}, 20.0, "retry-after"),
            ({"x-ratelimit-reset-requests": "1m30s"}, 90.0, None),  # > hint_max: fails
            (
                {"Retry-After": "garbage", "x-ratelimit-reset-requests": "3s"},
                3.0,
                "x-ratelimit-reset-requests",
            ),
            ({"Retry-After": "-3"}, 1.0, None),  # unusable: backoff
        ],
    )
    def test_server_hints(self, headers: dict[str, str], delay: float, source: str | None) -> None:
        engine = engine_for({"id": "r", **RETRY})
        action = engine.evaluate(pe.Response(429, headers))
        assert action.delay == delay
        if source:
            assert action.kind is K.RETRY
            assert f"server hint {source}:" in action.explanation

    def test_hint_header_names_in_the_policy_ignore_case(self) -> None:
        engine = engine_for(
            {"id": "r", **RETRY},
            hints={"sources": [{"header": "Retry-After", "format": "retry-after"}]},
        )
        assert engine.evaluate(pe.Response(429, {"RETRY-AFTER": "4"})).delay == 4.0

    def test_a_wait_said_in_the_message(self) -> None:
        engine = engine_for(
            {"id": "r", **RETRY},
            hints={
                "sources": [
                    {"header": "retry-after", "format": "retry-after"},
                    {"message": r"try again in (\S+?)\.?$", "format": "duration"},
                ]
            },
        )
        said = pe.Response(429, {}, error_body("Slow down. Please try again in 1m2.5s."))
        action = engine.evaluate(said)
        assert (action.delay, action.delay_source) == (62.5, "server")
        assert "server hint in the error message: '1m2.5s' = 62.5s" in action.explanation
        both = pe.Response(429, {"Retry-After": "4"}, error_body("Please try again in 9s."))
        assert engine.evaluate(both).delay == 4.0  # the earlier source wins

    def test_duplicate_hint_headers_take_the_longest(self) -> None:
        engine = engine_for({"id": "r", **RETRY})
        action = engine.evaluate(pe.Response(429, [("Retry-After", "2"), ("retry-after", "5")]))
        assert action.delay == 5.0

    @pytest.mark.parametrize(
        ("mode", "kind", "delay"),
        [
            ("fail", K.FAIL, 3600.0),
            ("honour", K.FAIL, 3600.0),
            ("clamp", K.RETRY, 60.0),
            ("fallback", K.FALLBACK, 1.0),
        ],
    )
    def test_long_hints(self, mode: str, kind: pe.ActionKind, delay: float) -> None:
        engine = engine_for({"id": "r", **RETRY, "on_long_hint": mode, "fallback": ["small"]})
        action = engine.evaluate(pe.Response(429, {"Retry-After": "3600"}))
        assert (action.kind, action.delay) == (kind, delay)
        if mode == "honour":  # honoured, then the deadline says no
            assert "would pass max_elapsed" in action.explanation

    def test_honour_long_hint_without_deadline(self) -> None:
        engine = engine_for({"id": "r", **RETRY, "on_long_hint": "honour", "max_elapsed": 0})
        action = engine.evaluate(pe.Response(429, {"Retry-After": "3600"}))
        assert (action.kind, action.delay) == (K.RETRY, 3600.0)

    def test_use_hints_false_ignores_them(self) -> None:
        engine = engine_for({"id": "r", **RETRY, "use_hints": False})
        assert engine.evaluate(pe.Response(429, {"Retry-After": "30"})).delay == 1.0

    def test_should_retry_header(self) -> None:
        engine = engine_for(
            {"id": "r", **RETRY, "match": {"status": 500}},
            {"id": "f", "match": {"status": 400}},
            {"id": "stubborn", "match": {"status": 401}, "honour_should_retry": False},
        )
        no = engine.evaluate(pe.Response(500, {"x-should-retry": "false"}))
        assert (no.kind, no.retryable) == (K.FAIL, False)
        assert "x-should-retry: false overrides retryable" in no.explanation
        # A rule whose action is fail stays failed; the error is marked retryable.
        yes = engine.evaluate(pe.Response(400, {"x-should-retry": "true"}))
        assert (yes.kind, yes.retryable) == (K.FAIL, True)
        assert engine.evaluate(pe.Response(401, {"x-should-retry": "true"})).retryable is False


class TestFallback:
    def test_walks_the_chain_then_retries(self) -> None:
        engine = engine_for({"id": "fb", **RETRY, "action": "fallback", "fallback": ["b", "c"]})
        first = engine.evaluate(pe.Response(503), model="a")
        assert (first.kind, first.fallback, first.delay) == (K.FALLBACK, "b", 1.0)
        assert engine.evaluate(pe.Response(503), attempt=2, model="b").fallback == "c"
        last = engine.evaluate(pe.Response(503), attempt=3, model="c")
        assert (last.kind, last.fallback) == (K.RETRY, None)
        assert "no fallback model left; retrying the same model" in last.explanation

    def test_non_retryable_fallback_fails_when_the_chain_ends(self) -> None:
        engine = engine_for(
            {"id": "fb", "action": "fallback", "retryable": False, "fallback": ["b"]}
        )
        assert engine.evaluate(pe.Response(404), model="a").fallback == "b"
        end = engine.evaluate(pe.Response(404), attempt=2, model="b")
        assert (end.kind, end.fallback) == (K.FAIL, None)
        none = engine_for({"id": "fb", "action": "fallback", "retryable": False})
        none = none.evaluate(pe.Response(404))
        assert "lists no fallback models" in none.explanation

    def test_a_caller_that_cannot_switch_models(self) -> None:
        engine = engine_for(
            {
                "id": "fb",
                **RETRY,
                "action": "fallback",
                "fallback": ["b"],
                "match": {"status": 503},
            },
            {
                "id": "nf",
                "action": "fallback",
                "retryable": False,
                "fallback": ["b"],
                "match": {"status": 404},
            },
        )
        retried = engine.evaluate(pe.Response(503, {"Retry-After": "3"}), model="a", fallback=False)
        assert (retried.kind, retried.fallback, retried.delay) == (K.RETRY, None, 3.0)
        assert "this caller cannot switch models; retrying the same model" in retried.explanation
        failed = engine.evaluate(pe.Response(404), model="a", fallback=False)
        assert (failed.kind, failed.fallback) == (K.FAIL, None)
        assert "fail: this caller cannot switch models" in failed.explanation

    def test_fallback_respects_max_attempts(self) -> None:
        engine = engine_for({"id": "fb", **RETRY, "action": "fallback", "fallback": ["b"]})
        assert engine.evaluate(pe.Response(503), attempt=4, model="a").kind is K.FAIL


class TestTexts:
    def test_placeholders(self) -> None:
        engine = engine_for(
            {
                "id": "r",
                **RETRY,
                "remediation": "{status} {code} {type} {param} {message} {model} {retry_after} "
                "{delay} {attempt}/{max_attempts} {classification} {rule_id} "
                "{fallback} {transport} {limit} {requested} {{x}}",
            }
        )
        body = error_body("Model 'm1' limit 5", "t", "c", param="p")
        action = engine.evaluate(pe.Response(429, {"Retry-After": "2"}, body), attempt=2)
        assert action.remediation == (
            "429 c t p Model 'm1' limit 5 m1 2 2 2/4 transient r (unknown) (unknown) 5 "
            "(unknown) {x}"
        )

    def test_secrets_never_come_back(self) -> None:
        engine = engine_for({"id": "r", "remediation": "Server said: {message}"})
        body = error_body("Incorrect API key provided: sk-proj-SECRETSECRET. Bearer abcdefghijk1")
        action = engine.evaluate(pe.Response(401, {}, body))
        everything = action.remediation + action.explanation + repr(action.error)
        assert "SECRET" not in everything and "abcdefghijk1" not in everything
        assert "sk-***" in action.remediation

    def test_secrets_echoed_in_code_type_or_param_never_come_back(self) -> None:
        engine = engine_for({"id": "r", "remediation": "{code} | {type} | {param}"})
        body = error_body(
            "x",
            "Bearer abcdefghijk1",
            "Incorrect API key provided: sk-proj-SECRETSECRET.",
            param="api_key=hunter2hunter2",
        )
        action = engine.evaluate(pe.Response(401, {}, body))
        everything = action.remediation + action.explanation + repr(action.error)
        for secret in ("SECRETSECRET", "abcdefghijk1", "hunter2hunter2"):
            assert secret not in everything
        assert action.remediation == (
            "Incorrect API key provided: sk-***. | Bearer *** | api_key=***"
        )
        assert action.error == pe.ParsedError(
            "x", "Bearer ***", "Incorrect API key provided: sk-***.", "api_key=***"
        )

    def test_actions_are_frozen_and_comparable(self) -> None:
        engine = engine_for({"id": "r", **RETRY})
        a = engine.evaluate(pe.Response(500))
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            a.delay = 0  # type: ignore[misc]
        assert a == engine.evaluate(pe.Response(500))
        assert a.should_retry


class TestHostileInput:
    @pytest.mark.parametrize(
        "response",
        [
            object(),
            None,
            "429",
            ValueError("not network"),
            pe.Response("abc", {}, b""),  # type: ignore[arg-type]
            pe.Response(10**30, {}, b""),
            pe.Response(-1, {}, b""),
            pe.Response(429, [("Retry-After", "1e309"), (b"\xff", b"\xfe"), ("x", None)]),  # type: ignore[list-item]
        ],
    )
    def test_garbage_never_raises(self, engine: pe.Engine, response: object) -> None:
        action = engine.evaluate(response)
        assert action.kind in set(K)
        assert math.isfinite(action.delay) and action.delay >= 0
        assert isinstance(action.explanation, str) and isinstance(action.remediation, str)

    def test_a_response_object_whose_attributes_explode(self, engine: pe.Engine) -> None:
        class Evil:
            status_code = 429

            @property
            def headers(self) -> dict[str, str]:
                raise RuntimeError("boom")

            @property
            def content(self) -> bytes:
                raise RuntimeError("boom")

        assert engine.evaluate(Evil()).classification == "rate_limit"

    def test_a_status_code_that_explodes_reads_as_absent(self, engine: pe.Engine) -> None:
        class Evil:
            status = 200
            content = b"{}"

            @property
            def status_code(self) -> int:
                raise RuntimeError("boom")

        assert engine.evaluate(Evil()).kind is K.SUCCEED

    def test_a_status_of_an_int_subclass_is_read(self, engine: pe.Engine) -> None:
        import http

        class Reply:
            status_code = http.HTTPStatus.TOO_MANY_REQUESTS
            content = b"{}"

        assert engine.evaluate(Reply()).classification == "rate_limit"

    def test_objects_of_one_class_are_read_alike_whatever_they_hold(
        self, engine: pe.Engine
    ) -> None:
        # The reader of a class is chosen once (by what the class has); what
        # each object holds is read afresh, attributes set per object included.
        class Reply:
            def __init__(self, status: int, body: object) -> None:
                self.status_code, self.content = status, body

        error = b'{"error": {"code": "invalid_api_key", "message": "bad key"}}'
        for _ in range(2):
            assert engine.evaluate(Reply(200, b"{}")).kind is K.SUCCEED
            assert engine.evaluate(Reply(200, error)).classification == "authentication"
            assert engine.evaluate(Reply(200, error.decode())).classification == "authentication"
            assert engine.evaluate(Reply(200, 5)).kind is K.SUCCEED  # an odd body: none

    def test_the_readers_kept_are_bounded(self, engine: pe.Engine) -> None:
        from policyengine import _clients

        error = b'{"error": {"code": "invalid_api_key", "message": "bad key"}}'
        for i in range(_clients.MAX_READER_CLASSES + 10):
            kind = type(f"Reply{i}", (), {"status_code": 200, "content": error})
            assert engine.evaluate(kind()).classification == "authentication"
        assert len(_clients._BODY_READERS) <= _clients.MAX_READER_CLASSES

    def test_classes_are_told_apart_by_identity_not_by_equality(self, engine: pe.Engine) -> None:
        # A metaclass may make its classes unhashable (__eq__ alone) or equal
        # to one another: each class is still read by what it has.
        class Unhashable(type):
            def __eq__(cls, other: object) -> bool:
                return cls is other

        class AllEqual(type):
            def __eq__(cls, other: object) -> bool:
                return isinstance(other, AllEqual)

            def __hash__(cls) -> int:
                return 1

        error = b'{"error": {"code": "invalid_api_key", "message": "bad key"}}'

        class Content(metaclass=Unhashable):
            status_code = 200
            content = error

        class First(metaclass=AllEqual):
            status_code = 200
            content = error

        class Second(metaclass=AllEqual):
            status_code = 200

            @property
            def data(self) -> bytes:
                return error

        for reply in (Content(), First(), Second(), Second()):
            assert engine.evaluate(reply).classification == "authentication"

    def test_wrong_argument_types_are_named(self, engine: pe.Engine) -> None:
        action = engine.evaluate(pe.Response(500), method=5)  # type: ignore[arg-type]
        assert action.kind is K.FAIL
        assert action.reasons[0] == "method must be a string or None, not int"
        unhashable = engine.evaluate(pe.Response([429], {}, b""))  # type: ignore[arg-type]
        assert unhashable.reasons[0] == "the status [429] is not a number"

    @pytest.mark.parametrize("attempt", [0, -3, 2**80, float("nan"), float("inf"), "2", None])
    def test_odd_attempt_and_elapsed(self, engine: pe.Engine, attempt: Any) -> None:
        action = engine.evaluate(pe.Response(500), attempt=attempt, elapsed=attempt)
        assert math.isfinite(action.delay) and action.delay >= 0

    def test_attempt_and_elapsed_too_big_for_a_float_are_still_decided(
        self, engine: pe.Engine
    ) -> None:
        # int(10**400) has no float: clamped, not an "internal error" action.
        spent = engine.evaluate(pe.Response(500), attempt=10**400)
        assert (spent.kind, spent.rule_id) == (K.FAIL, "server-error")
        assert "gave up after" in spent.explanation
        late = engine.evaluate(pe.Response(500), elapsed=10**400)
        assert (late.kind, late.rule_id) == (K.FAIL, "server-error")
        assert "would pass max_elapsed" in late.explanation


headers = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "Retry-After",
                "retry-after-ms",
                "x-ratelimit-reset-requests",
                "x-ratelimit-reset",
                "x-should-retry",
                "content-type",
            ]
        )
        | st.text(max_size=10),
        st.text(max_size=40)
        | st.sampled_from(
            [
                "1",
                "0",
                "-1",
                "nan",
                "1e999",
                "3600",
                "true",
                "6m0s",
                "Wed, 25 Nov 2026 12:00:20 GMT",
            ]
        ),
    ),
    max_size=6,
)
bodies = st.binary(max_size=300) | st.builds(
    lambda m, t, c: error_body(m, t, c),
    st.text(max_size=50),
    st.none()
    | st.sampled_from(["requests", "server_error", "insufficient_quota"])
    | st.text(max_size=10),
    st.none()
    | st.integers()
    | st.sampled_from(
        ["rate_limit_exceeded", "invalid_api_key", "model_not_found", "context_length_exceeded"]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.integers(-10, 1000),
    headers=headers,
    body=bodies,
    attempt=st.integers(-5, 100),
    elapsed=st.floats(allow_nan=True, allow_infinity=True),
    model=st.none() | st.sampled_from(["a", "b"]),
)
def test_evaluate_never_raises_and_delays_are_bounded(
    default_policy: pe.Policy,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    attempt: int,
    elapsed: float,
    model: str | None,
) -> None:
    engine = pe.Engine(default_policy, clock=lambda: NOW, rng=random.Random(0))
    action = engine.evaluate(pe.Response(status, headers, body), attempt, elapsed, model=model)
    assert math.isfinite(action.delay) and action.delay >= 0
    if action.kind in (K.RETRY, K.FALLBACK):
        rule = default_policy.rule(action.rule_id)
        # Never longer than the rule allows: its backoff cap or its hint cap.
        assert action.delay <= max(rule.backoff.max_delay, rule.hint_max)
        assert action.retryable or action.kind is K.FALLBACK
        assert max(attempt, 1) < rule.max_attempts
    assert isinstance(action.remediation, str)  # renders, whatever the fields
    assert action.explanation


@settings(max_examples=200, deadline=None)
@given(retry_after=st.integers(0, 10_000), attempt=st.integers(1, 3))
def test_never_earlier_than_a_usable_hint(retry_after: int, attempt: int) -> None:
    engine = engine_for({"id": "r", **RETRY, "max_elapsed": 0, "on_long_hint": "fail"})
    action = engine.evaluate(pe.Response(429, {"Retry-After": str(retry_after)}), attempt)
    if action.kind is K.RETRY:
        assert action.delay >= retry_after
    else:
        assert action.delay == retry_after > 60


def test_engine_is_shareable_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    engine = pe.Engine()
    responses = [
        pe.Response(s, {"Retry-After": "1"}, error_body("m", None, "rate_limit_exceeded"))
        for s in (429, 500, 200, 401)
    ] * 200
    with ThreadPoolExecutor(4) as pool:
        kinds = list(pool.map(lambda r: engine.evaluate(r).kind, responses))
    assert kinds[:4] == [K.RETRY, K.RETRY, K.RETRY, K.RETRY]
    assert len(kinds) == 800


class TestDelaySource:
    @pytest.mark.parametrize(
        ("headers", "mode", "kind", "source"),
        [
            ({}, "fail", K.RETRY, "backoff"),
            ({"Retry-After": "5"}, "fail", K.RETRY, "server"),
            ({"Retry-After": "3600"}, "clamp", K.RETRY, "clamp"),
            ({"Retry-After": "3600"}, "fail", K.FAIL, "server"),
        ],
    )
    def test_where_the_delay_came_from(
        self, headers: dict[str, str], mode: str, kind: pe.ActionKind, source: str
    ) -> None:
        engine = engine_for({"id": "r", **RETRY, "on_long_hint": mode})
        action = engine.evaluate(pe.Response(429, headers))
        assert (action.kind, action.delay_source) == (kind, source)

    def test_no_wait(self) -> None:
        engine = engine_for({"id": "f"})
        assert engine.evaluate(pe.Response(400)).delay_source == "none"


def test_method_argument_keeps_the_headers() -> None:
    # evaluate(method=...) rebuilds the response: the hint must survive.
    engine = pe.Engine(rng=random.Random(0))
    action = engine.evaluate(pe.Response(429, {"Retry-After": "2"}), method="POST")
    assert (action.delay, action.delay_source) == (2.0, "server")


@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6))
def test_indexing_headers_twice_changes_nothing(pairs: list[tuple[str, str]]) -> None:
    once = pe.Response(200, pairs)
    assert attrs.evolve(once, status=201).headers == once.headers


def test_an_engine_is_immutable_once_built() -> None:
    import attrs

    engine = pe.Engine()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        engine.policy = pe.load_policy()  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del engine.rng
    assert "rules from" in repr(engine)


@pytest.mark.parametrize(
    "response",
    [
        pe.Response(429, {"Retry-After": "2"}, error_body("rate_limit_exceeded")),
        pe.Response(401, {}, error_body("invalid_api_key")),
        pe.Response(503, {}, b"<html><title>Service Unavailable</title></html>"),
        pe.Response(200, {}, b'{"id": "x"}'),
    ],
)
def test_an_action_the_engine_builds_is_the_one_attrs_builds(response: pe.Response) -> None:
    # The engine sets an Action's slots itself (_engine._action): every
    # field, and the instance behaves as one made by attrs' __init__.
    action = pe.Engine(rng=random.Random(3)).evaluate(response, model="gpt-4o")
    fields = attrs.fields(pe.Action)
    rebuilt = pe.Action(
        **{f.name: getattr(action, f.name) for f in fields if f.name != "details"},
        details=action.details,
    )
    assert action == rebuilt and hash(action) == hash(rebuilt) and repr(action) == repr(rebuilt)
    assert attrs.asdict(action, recurse=False) == attrs.asdict(rebuilt, recurse=False)
    assert action.reasons == rebuilt.reasons
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        action.delay = 1.0  # type: ignore[misc]
    assert attrs.evolve(action, delay=9.0).delay == 9.0


def test_reading_the_reasons_replays_the_same_decision() -> None:
    # The jittered backoff is drawn once; the explanation shows that very delay.
    engine = pe.Engine(rng=random.Random(7))
    action = engine.evaluate(pe.Response(500, {}, b""), attempt=2)
    delay = action.delay
    assert any(f"delay {round(delay, 3):g}s from backoff" in r for r in action.reasons)
    assert action.delay == delay


def test_the_replayed_reasons_use_the_hint_read_at_decision_time() -> None:
    # An HTTP-date hint depends on the clock: the explanation, read later,
    # must still show the wait the decision used.
    ticks = iter(range(1_700_000_000, 1_700_001_000, 5))
    engine = pe.Engine(clock=lambda: float(next(ticks)))
    date = "Tue, 14 Nov 2023 22:13:50 GMT"  # 1_700_000_030
    action = engine.evaluate(pe.Response(429, {"Retry-After": date}, b""))
    assert action.delay == 30.0
    assert any("= 30s" in r for r in action.reasons), action.reasons


class TestFacts:
    """What was read from a response, as typed fields of the action."""

    def test_limit_requested_and_model(self) -> None:
        engine = pe.Engine(pe.load_policy(env=False))
        body = error_body(
            "This model's maximum context length is 8192 tokens. However, you requested 9000 "
            "tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        )
        facts = engine.evaluate(pe.Response(400, {}, body)).facts
        assert (facts.limit, facts.requested, facts.server_wait) == (8192, 9000, None)
        missing = engine.evaluate(pe.Response(404, {}, error_body("Model 'gpt-9' not found")))
        assert missing.facts.model == "gpt-9"

    def test_the_server_wait_and_where_it_came_from(self) -> None:
        engine = pe.Engine(pe.load_policy(env=False))
        header = engine.evaluate(pe.Response(429, {"Retry-After": "3600"})).facts
        assert (header.server_wait, header.server_wait_source) == (3600.0, "retry-after")
        google = b'{"error": {"code": 429, "details": [{"retryDelay": "38s"}]}}'
        body = engine.evaluate(pe.Response(429, {}, google)).facts
        assert (body.server_wait, body.server_wait_source) == (38.0, "body details[].retryDelay")
        said = error_body("Please try again in 3.89s.", "tokens", "rate_limit_exceeded")
        message = engine.evaluate(pe.Response(429, {}, said)).facts
        assert (message.server_wait, message.server_wait_source) == (3.89, "the error message")
        assert engine.evaluate(pe.Response(200)).facts == pe.Facts()
        assert engine.evaluate(TimeoutError()).facts == pe.Facts()

    def test_the_server_wait_of_an_action_that_does_not_wait(self) -> None:
        engine = pe.Engine(pe.load_policy(env=False))
        quota = error_body(
            "You exceeded your current quota.", "insufficient_quota", "insufficient_quota"
        )
        action = engine.evaluate(pe.Response(429, {"Retry-After": "3600"}, quota))
        assert (action.kind, action.delay, action.delay_source) == (pe.ActionKind.FAIL, 0.0, "none")
        assert (action.facts.server_wait, action.facts.server_wait_source) == (
            3600.0,
            "retry-after",
        )
        assert not any("3600" in reason for reason in action.reasons)  # the decision read no wait
        past = engine.evaluate(
            pe.Response(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, quota)
        )
        assert past.facts.server_wait is None

    def test_facts_survive_an_amendment(self) -> None:
        from policyengine._model import AmendedDetails

        action = pe.Engine(pe.load_policy(env=False)).evaluate(
            pe.Response(429, {"Retry-After": "2"})
        )
        amended = attrs.evolve(action, details=AmendedDetails(action.details, note="x"))
        assert amended.facts.server_wait == 2.0


class TestRetriesBeforeFallback:
    def test_the_same_model_first_then_the_chain(self) -> None:
        engine = engine_for(
            {
                "id": "fb",
                "action": "fallback",
                "retryable": True,
                "retries_before_fallback": 2,
                "max_attempts": 9,
                "fallback": ["b"],
                "match": {"status": 503},
            }
        )
        first = engine.evaluate(pe.Response(503), attempt=1, model="a")
        assert (first.kind, first.fallback) == (K.RETRY, None)
        assert "retries_before_fallback = 2" in first.explanation
        third = engine.evaluate(pe.Response(503), attempt=3, model="a", model_attempt=3)
        assert (third.kind, third.fallback) == (K.FALLBACK, "b")
        # Without model_attempt, attempt counts: the first model gets its retries.
        assert engine.evaluate(pe.Response(503), attempt=3, model="a").kind is K.FALLBACK
        # A non-retryable error is never retried on the same model.
        plain = engine_for(
            {"id": "nf", "action": "fallback", "retries_before_fallback": 2, "fallback": ["b"]}
        )
        assert plain.evaluate(pe.Response(404), model="a").kind is K.FALLBACK


def test_a_plain_success_meets_the_rules_on_headers_or_the_method_before_it() -> None:
    policy = pe.load_policy(
        {
            "rules": [
                {
                    "id": "challenge-200",
                    "match": {"status": 200, "headers": {"x-challenge": True}},
                    "classification": "unknown",
                },
                {
                    "id": "absent-200",
                    "match": {"status": 201, "headers": {"x-ok": False}},
                    "classification": "unknown",
                },
                {
                    "id": "put-202",
                    "match": {"status": 202, "method": "PUT"},
                    "classification": "unknown",
                },
                {
                    "id": "strict-203",
                    "match": {"status": 203, "headers": {"x-mode": "strict"}},
                    "classification": "unknown",
                },
                {
                    "id": "either-203",
                    "match": {"status": 203, "headers": {"x-either": True}},
                    "classification": "unknown",
                },
                {
                    "id": "mode-204",
                    "match": {"status": 204, "headers": {"x-mode": "strict"}},
                    "classification": "unknown",
                },
            ]
        },
        env=False,
    )
    engine = pe.Engine(policy)
    ok = pe.ActionKind.SUCCEED
    assert engine.evaluate(pe.Response(200)).kind is ok
    assert engine.evaluate(pe.Response(200, {"X-Challenge": "1"})).rule_id == "challenge-200"
    assert engine.evaluate(pe.Response(201)).rule_id == "absent-200"
    assert engine.evaluate(pe.Response(201, {"x-ok": "1"})).kind is ok
    assert engine.evaluate(pe.Response(202, method="POST")).kind is ok
    assert engine.evaluate(pe.Response(202), method="put").rule_id == "put-202"
    assert engine.evaluate(pe.Response(202, method="PUT")).rule_id == "put-202"
    # Guards on one header (one look-up) and on either of two.
    assert engine.evaluate(pe.Response(204)).kind is ok
    assert engine.evaluate(pe.Response(204, {"X-Mode": "lax"})).kind is ok
    assert engine.evaluate(pe.Response(204, {"X-Mode": " Strict "})).rule_id == "mode-204"
    assert engine.evaluate(pe.Response(203, {"x-other": "1"})).kind is ok
    assert engine.evaluate(pe.Response(203, {"x-mode": "lax"})).kind is ok
    assert engine.evaluate(pe.Response(203, {"x-either": ""})).rule_id == "either-203"
    assert engine.evaluate(pe.Response(203, {"x-mode": "STRICT"})).rule_id == "strict-203"
