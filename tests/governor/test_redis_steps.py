"""The Redis store runs the same steps as the in-process store: random
sequences of admissions and answers, in virtual time, give the same verdicts,
waits, probes, transitions and budget refusals from both (a real redis-server;
the script's clock set to the test's)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import policyengine as pe
from policyengine._governor import TrafficKey
from policyengine._governor._ratelimit import Allowance, Reading
from policyengine._governor._remembered import Remembered
from policyengine._governor._steps import SettleReport
from policyengine._governor._store import MemoryStore

redis = pytest.importorskip("redis")
from policyengine.redis import RedisStore  # noqa: E402

SETTINGS = pe.load_policy(
    {
        "governor": {
            "breaker": {"failures": 3, "open_for": 0.5, "max_open_for": 2.0},
            "retry_budget": {"ratio": 0.5, "burst": 2.0},
        }
    },
    env=False,
).governor
QUOTA = pe.Engine().evaluate(
    pe.Response(429, {}, b'{"error": {"code": "insufficient_quota", "message": "spent"}}')
)
FAILURE = Remembered.of(QUOTA, None)
_prefixes = itertools.count()

admit_op = st.tuples(
    st.just("admit"),
    st.booleans(),  # retry
    st.sampled_from([math.inf, 0.0, 0.3, 5.0]),  # deadline_in
    st.floats(0.0, 0.999),  # jitter
)
reading = st.one_of(
    st.none(),
    st.builds(
        lambda limit, left, reset: Reading(
            Allowance(limit, min(left, limit), reset, None), None, "t"
        ),
        st.sampled_from([5.0, 20.0]),
        st.floats(0.0, 20.0).map(float.__floor__).map(float),
        st.floats(0.0, 3.0),
    ),
)
settle_op = st.tuples(
    st.just("settle"),
    st.sampled_from(["ok", "429", "429wait", "429hours", "503", "quota"]),
    reading,
    st.booleans(),  # retrying (for a 503)
)
ops = st.lists(
    st.tuples(st.floats(0.0, 0.4), st.one_of(admit_op, settle_op, st.just(("cancel",)))),
    max_size=40,
)


def _report(
    kind: str, reading: Reading | None, retrying: bool, seq: int | None, probe: bool
) -> SettleReport:
    failed = kind == "503"
    return SettleReport(
        seq=seq,
        probe=probe,
        failed=failed,
        rejected=kind.startswith("429"),
        server_wait={"429wait": 0.7, "429hours": 44220.0}.get(kind),
        reading=reading,
        sticky_for=10.0 if kind == "quota" else None,
        retrying=failed and retrying,
        failure=lambda: FAILURE,
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops)
@example(  # a wait of hours, a caller held past it, then a 429 to an older send
    steps=[
        (0.0, ("admit", False, math.inf, 0.0)),
        (0.0, ("settle", "ok", None, False)),
        (0.0, ("admit", False, math.inf, 0.0)),
        (0.0, ("admit", False, math.inf, 0.0)),
        (0.1, ("settle", "429hours", None, False)),
        (0.1, ("admit", False, 5.0, 0.0)),
        (0.1, ("settle", "429hours", None, False)),
    ]
)
def test_redis_and_memory_take_the_same_steps(
    redis_url: str, steps: list[tuple[float, Any]]
) -> None:
    clock = [1_000_000.0]
    memory = MemoryStore()
    shared = RedisStore(
        redis_url,
        prefix=f"pe-test-{next(_prefixes)}",
        clock=lambda: clock[0],
        timeout=2.0,
        background=False,
    )
    key = TrafficKey("https://api.example.com:443", "0123456789ab", "m")
    # (memory's seq, Redis's seq, probe) of admitted sends, oldest first
    tickets: list[tuple[int, int, bool]] = []
    for advance, op in steps:
        clock[0] += advance
        now = clock[0]
        if op[0] == "admit":
            _, retry, deadline_in, jitter = op
            mine, _ = memory.admit(key, now, SETTINGS, retry, deadline_in, jitter)
            theirs, _ = shared.admit(key, now, SETTINGS, retry, deadline_in, jitter)
            assert shared.up
            theirs = theirs._replace(wait=mine.wait) if mine.for_probe else theirs  # polled there
            marked = theirs.seq
            assert marked == -1 or marked <= -2  # Redis's send numbers are marked apart
            theirs = theirs._replace(seq=-2 - marked if marked <= -2 else marked)
            for field in mine._fields:
                if field == "failure":
                    assert (getattr(mine, field) is None) == (getattr(theirs, field) is None)
                    continue
                assert _same(getattr(mine, field), getattr(theirs, field)), (field, mine, theirs)
            if mine.verdict.value == "go":
                tickets.append((mine.seq, marked, mine.probe))
        elif op[0] == "settle" and tickets:
            _, kind, reading_, retrying = op
            seq, marked, probe = tickets.pop(0)
            mine_s = memory.settle(
                key, now, SETTINGS, _report(kind, reading_, retrying, seq, probe)
            )
            theirs_s = shared.settle(
                key, now, SETTINGS, _report(kind, reading_, retrying, marked, probe)
            )
            for field in mine_s._fields:
                assert _same(getattr(mine_s, field), getattr(theirs_s, field)), (
                    field,
                    mine_s,
                    theirs_s,
                )
        elif op[0] == "cancel" and tickets:
            _, _, probe = tickets.pop(0)
            memory.cancel(key, now, probe)
            shared.cancel(key, now, probe)


def test_a_key_name_is_hash_tagged_and_holds_no_credential(redis_url: str) -> None:
    store = RedisStore(redis_url)
    name = store.name(TrafficKey("https://api.example.com:443", "0123456789ab", "gpt-4o"))
    assert name.startswith("policyengine:{") and name.endswith("}")
    assert "0123456789ab" not in name and "example" not in name


def test_every_key_expires(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix="pe-ttl", idle_ttl=30.0)
    key = TrafficKey("h", "", "")
    store.admit(key, 0.0, SETTINGS, False, math.inf, 0.0)
    client = redis.Redis.from_url(redis_url)
    assert 0 < client.pttl(store.name(key)) <= 30_000
