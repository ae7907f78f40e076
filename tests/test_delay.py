"""Backoff math and server wait hints."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import policyengine as pe
from policyengine._delay import MAX_WAIT_SECONDS, compute_backoff, parse_duration, parse_hint
from policyengine._model import HintFormat, Jitter

from .conftest import NOW


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2", 2.0),
            ("0", 0.0),
            (" 120 ", 120.0),
            ("1.5", 1.5),
            (b"3", 3.0),
            ("300.8891906738281", 300.8891906738281),  # a JSON float written back
        ],
    )
    def test_delta_seconds(self, value: str | bytes, expected: float) -> None:
        assert pe.parse_retry_after(value, now=NOW) == expected

    @pytest.mark.parametrize(
        "value",
        [
            "Wed, 25 Nov 2026 12:00:30 GMT",  # IMF-fixdate
            "Wednesday, 25-Nov-26 12:00:30 GMT",  # RFC 850
            "Wed Nov 25 12:00:30 2026",  # asctime
        ],
    )
    def test_http_dates_all_three_forms(self, value: str) -> None:
        assert pe.parse_retry_after(value, now=NOW) == 30.0

    def test_date_with_offset(self) -> None:
        assert pe.parse_retry_after("Wed, 25 Nov 2026 13:00:30 +0100", now=NOW) == 30.0

    @pytest.mark.parametrize(
        "value",
        [
            "-1",
            "nan",
            "NaN",
            "inf",
            "1e9999",
            "soon",
            "",
            "   ",
            "2 seconds",
            "Wed, 25 Nov 2026 11:59:00 GMT",  # in the past
            "Wed, 99 Nov 2026 12:00:30 GMT",
            "\x00\xff",
            "2" * 200,
            None,
        ],
    )
    def test_unusable_values_give_none(self, value: str | None) -> None:
        assert pe.parse_retry_after(value, now=NOW) is None

    def test_default_now_is_the_clock(self) -> None:
        # A date one hour ahead of the real clock is about an hour away.
        import email.utils
        import time

        value = email.utils.formatdate(time.time() + 3600, usegmt=True)
        seconds = pe.parse_retry_after(value)
        assert seconds is not None
        assert 3500 < seconds <= 3600

    @given(st.text(max_size=60) | st.binary(max_size=60))
    def test_never_raises_and_is_finite(self, value: str | bytes) -> None:
        seconds = pe.parse_retry_after(value, now=NOW)
        assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_WAIT_SECONDS)


class TestParseDuration:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("6m0s", 360.0),
            ("1s", 1.0),
            ("250ms", 0.25),
            ("1h2m3.5s", 3723.5),
            ("1.5s", 1.5),
            ("12ms", 0.012),
            ("0s", 0.0),
            ("7", 7.0),
            ("500us", 0.0005),
        ],
    )
    def test_go_durations(self, value: str, expected: float) -> None:
        assert parse_duration(value) == pytest.approx(expected)

    @pytest.mark.parametrize("value", ["", "s", "6x", "1m-2s", "-1s", "1s2", "ms", "1e3s"])
    def test_garbage(self, value: str) -> None:
        assert parse_duration(value) is None


class TestParseHint:
    def test_milliseconds(self) -> None:
        assert parse_hint("1500", HintFormat.MILLISECONDS) == 1.5

    def test_epoch_milliseconds(self) -> None:
        assert parse_hint(str(int((NOW + 12) * 1000)), HintFormat.EPOCH_MILLISECONDS, NOW) == 12

    def test_epoch_seconds_past_is_unusable(self) -> None:
        assert parse_hint(str(int(NOW - 5)), HintFormat.EPOCH_SECONDS, NOW) is None

    def test_epoch_seconds_read_as_milliseconds_is_unusable(self) -> None:
        # A seconds timestamp read as milliseconds is in 1970: ignored, never "wait 0".
        assert parse_hint(str(int(NOW + 10)), HintFormat.EPOCH_MILLISECONDS, NOW) is None

    @pytest.mark.parametrize(
        "value", ["2026-11-25T12:00:05Z", "2026-11-25T12:00:05+00:00", "2026-11-25T13:00:05+01:00"]
    )
    def test_rfc3339(self, value: str) -> None:
        assert parse_hint(value, HintFormat.RFC3339, NOW) == 5.0

    @given(st.text(max_size=40), st.sampled_from(list(HintFormat)))
    def test_never_raises(self, value: str, fmt: HintFormat) -> None:
        seconds = parse_hint(value, fmt, NOW)
        assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


class TestBackoff:
    def test_exponential_without_jitter(self) -> None:
        rng = random.Random(0)
        delays = [compute_backoff(n, 0.5, 2.0, 8.0, Jitter.NONE, rng)[0] for n in range(1, 8)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]

    def test_equal_jitter_bounds(self) -> None:
        rng = random.Random(0)
        for n in range(1, 10):
            delay, base = compute_backoff(n, 1.0, 2.0, 30.0, Jitter.EQUAL, rng)
            assert base / 2 <= delay <= base

    def test_seeded_jitter_is_reproducible(self) -> None:
        a = [compute_backoff(n, 1, 2, 30, Jitter.FULL, random.Random(7))[0] for n in range(1, 6)]
        b = [compute_backoff(n, 1, 2, 30, Jitter.FULL, random.Random(7))[0] for n in range(1, 6)]
        assert a == b

    def test_huge_attempt_does_not_overflow(self) -> None:
        delay, base = compute_backoff(10**9, 0.5, 10.0, 60.0, Jitter.NONE, random.Random(0))
        assert delay == base == 60.0

    @given(
        attempt=st.integers(min_value=-5, max_value=10**12),
        initial=st.floats(allow_nan=True, allow_infinity=True),
        multiplier=st.floats(allow_nan=True, allow_infinity=True),
        max_delay=st.floats(allow_nan=True, allow_infinity=True),
        jitter=st.sampled_from(list(Jitter)),
        seed=st.integers(0, 2**32),
    )
    def test_always_finite_and_capped(
        self,
        attempt: int,
        initial: float,
        multiplier: float,
        max_delay: float,
        jitter: Jitter,
        seed: int,
    ) -> None:
        delay, base = compute_backoff(
            attempt, initial, multiplier, max_delay, jitter, random.Random(seed)
        )
        cap = max_delay if math.isfinite(max_delay) and max_delay > 0 else 0.0
        assert math.isfinite(delay) and math.isfinite(base)
        assert 0.0 <= delay <= cap
        assert 0.0 <= base <= cap


class TestLongWaits:
    """A wait of any length is a wait: hint_max / on_long_hint decide."""

    def test_a_long_wait_is_a_wait_clamped_to_a_finite_bound(self) -> None:
        assert pe.parse_retry_after("31536001") == 31536001.0
        assert pe.parse_retry_after("99999999999999") == MAX_WAIT_SECONDS
        assert pe.parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=NOW) == MAX_WAIT_SECONDS
        assert parse_hint("9999999h", pe.HintFormat.DURATION) == MAX_WAIT_SECONDS

    @pytest.mark.parametrize(
        ("value", "wait"),
        [
            ("31536000", 31536000.0),
            ("31536001", 31536001.0),
            ("Sat, 25 Nov 2028 12:00:00 GMT", 2 * 365 * 86400.0 + 86400.0),  # 2028 is a leap year
            ("99999999999999", MAX_WAIT_SECONDS),
        ],
    )
    def test_the_engine_fails_with_the_wait_attached(
        self, engine: pe.Engine, value: str, wait: float
    ) -> None:
        action = engine.evaluate(pe.Response(429, {"Retry-After": value}))
        assert (action.kind, action.delay, action.delay_source) == (
            pe.ActionKind.FAIL,
            wait,
            "server",
        )
        assert f"the server asked for {action.delay:g}"[:25] in action.explanation

    def test_clamp_and_honour_decide_a_long_wait(self) -> None:
        for mode, kind, delay in (("clamp", "retry", 60.0), ("honour", "fail", 31536001.0)):
            policy = pe.load_policy(
                {"classifications": {"rate_limit": {"on_long_hint": mode}}}, env=False
            )
            action = pe.Engine(policy, clock=lambda: NOW).evaluate(
                pe.Response(429, {"Retry-After": "31536001"})
            )
            # honour waits as asked, bounded by max_elapsed (120 s): it gives up, wait attached
            assert (action.kind.value, action.delay) == (kind, delay), mode

    def test_a_date_in_the_past_is_no_wait_and_says_so(self, engine: pe.Engine) -> None:
        action = engine.evaluate(pe.Response(429, {"Retry-After": "Wed, 25 Nov 2026 11:59:00 GMT"}))
        assert (action.kind, action.delay_source) == (pe.ActionKind.RETRY, "backoff")
        assert action.reasons[1] == (
            "server hint retry-after: 'Wed, 25 Nov 2026 11:59:00 GMT' is 60s in the past: no wait"
        )
        assert action.reasons[2].startswith("delay ")
        # A usable hint of a later source still wins over a past one.
        both = {
            "Retry-After": "Wed, 25 Nov 2026 11:59:00 GMT",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "3s",
        }
        action = engine.evaluate(pe.Response(429, both))
        assert (action.delay, action.delay_source) == (3.0, "server")


class TestBodyHints:
    def test_a_structured_wait_in_the_error_object(self) -> None:
        policy = pe.load_policy(
            {
                "inherit": False,
                "hints": {
                    "sources": [
                        {"body": "retry_after", "format": "seconds"},
                        {"body": "details[].retryDelay", "format": "duration"},
                    ]
                },
                "rules": [{"id": "r", "match": {}, "action": "retry", "max_attempts": 3}],
            },
            default=False,
            env=False,
        )
        engine = pe.Engine(policy, clock=lambda: NOW)
        gateway = pe.Response(429, {}, b'{"error": {"message": "slow down", "retry_after": 12}}')
        action = engine.evaluate(gateway)
        assert (action.delay, action.delay_source) == (12.0, "server")
        assert "server hint body retry_after: '12' = 12s" in action.explanation
        google = (
            b'{"error": {"code": 429, "details": [{"@type": "x.Help"}, {"retryDelay": "1.5s"}]}}'
        )
        assert engine.evaluate(pe.Response(429, {}, google)).delay == 1.5
        # Not an object, not a number, not there: no hint, the backoff.
        for body in (
            b'{"error": {"retry_after": "soon"}}',
            b'{"error": {"details": "x"}}',
            b"oops",
        ):
            assert engine.evaluate(pe.Response(429, {}, body)).delay_source == "backoff"

    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["details", "retryDelay", "retry_after", "x"]),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=30,
        )
    )
    def test_body_values_never_raise_and_are_bounded(self, obj: object) -> None:
        from policyengine._delay import MAX_BODY_VALUES, body_values

        for path in ((("details", True), ("retryDelay", False)), (("retry_after", False),)):
            values = body_values(obj if isinstance(obj, dict) else {"details": obj}, path)
            assert len(values) <= MAX_BODY_VALUES and all(isinstance(v, str) for v in values)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (20, 20.0),
        (300.8891906738281, 300.8891906738281),
        (5e-05, 5e-05),
        (1e20, MAX_WAIT_SECONDS),  # written 1e+20 by repr: still a (very long) wait
        (10**400, MAX_WAIT_SECONDS),
        (float("inf"), MAX_WAIT_SECONDS),
    ],
)
def test_a_number_in_the_body_is_a_wait_however_it_is_written(value: float, seconds: float) -> None:
    from policyengine._delay import _READERS, body_values

    (text,) = body_values({"wait": value}, (("wait", False),))
    assert _READERS[HintFormat.SECONDS](text, None) == seconds


@pytest.mark.parametrize("value", [-5, float("nan"), float("-inf"), "soon", True, None])
def test_a_body_wait_that_is_no_number_is_no_wait(value: object) -> None:
    from policyengine._delay import _READERS, body_values

    texts = body_values({"wait": value}, (("wait", False),))
    assert all(_READERS[HintFormat.SECONDS](t, None) is None for t in texts)


def test_a_long_run_of_digits_is_a_long_wait_and_a_longer_one_is_garbage() -> None:
    from policyengine._delay import _READERS, MAX_NUMBER_CHARS

    seconds = _READERS[HintFormat.SECONDS]
    assert seconds("9" * 40, None) == MAX_WAIT_SECONDS
    assert seconds("9" * (MAX_NUMBER_CHARS + 1), None) is None
