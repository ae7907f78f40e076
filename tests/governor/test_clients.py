"""The governor through real clients against a real loopback gateway: callers
sharing one client pace themselves, stop hammering a dead upstream, remember
an exhausted quota, and ration retries. Threads and asyncio tasks alike.

Every loop here is bounded in calls and time; the figures asserted are counts
of requests the server received, never timings.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import policyengine as pe
from policyengine.httpx import AsyncPolicyTransport, PolicyTransport
from policyengine.testing import (
    FakeGateway,
    RateLimit,
    invalid_api_key,
    quota_exhausted,
    server_error,
    unavailable,
)

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
KEY = {"Authorization": "Bearer sk-test-0123456789"}


def policy(**governor: Any) -> pe.Policy:
    """The default policy, its governor tables changed as given."""
    return pe.load_policy({"governor": governor}, env=False)


def in_threads(n: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    # Each thread in a copy of this context: an overriding() block holds there too.
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(run, i)) for i in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


#: The pace tests' policy layer: callers wait for a new key's first answer
#: however long it takes. With the default (``first_contact = 1.0``), a first
#: answer stalled past a second on a loaded machine lets the whole first wave
#: through before anything is learned (12 callers on a bucket of 5: seven 429s);
#: these tests are about the pace learned from the answers.
PATIENT = {"governor": {"first_contact": 30.0}}


def patient() -> pe.Engine:
    return pe.Engine(pe.load_policy(PATIENT, env=False))


def test_threads_sharing_a_client_pace_to_the_rate_limit() -> None:
    # 30 requests/s, bucket of 5; 12 threads x 5 calls = 60 calls: about 2 s.
    limit = RateLimit(per_second=30.0, burst=5.0)
    statuses: list[int] = []
    with (
        FakeGateway(rate_limit=limit) as gateway,
        httpx.Client(transport=PolicyTransport(engine=patient()), timeout=10) as client,
    ):

        def work(_: int) -> None:
            for _ in range(5):
                statuses.append(client.post(gateway.chat_url, json=BODY, headers=KEY).status_code)

        in_threads(12, work)
        assert statuses == [200] * 60
        # Found by pacing, not by collecting 429s: at most a few rejections.
        assert gateway.rejected <= 3, gateway.rejected
        assert gateway.count() == 60 + gateway.rejected


def test_bare_429s_with_retry_after_are_not_met_in_waves() -> None:
    # 10 requests/s (burst 10), no budget headers: only Retry-After (1 s,
    # rounded up) on a 429. Each wait held every caller and let them all go
    # together when it ended: with 20 callers, a wave of 20 against a bucket
    # of 10, every second, for as long as there were calls (here 105-113
    # rejected, and 17 of the 40 calls gave up after 5 attempts). After a
    # second 429 the key's rate is learned (31-32 rejected, every call ok).
    limit = RateLimit(per_second=10.0, headers=False)
    statuses: list[int] = []
    with (
        FakeGateway(rate_limit=limit) as gateway,
        httpx.Client(transport=PolicyTransport(engine=patient()), timeout=10) as client,
    ):

        def work(_: int) -> None:
            for _ in range(2):
                statuses.append(client.post(gateway.chat_url, json=BODY, headers=KEY).status_code)

        in_threads(20, work)
    assert statuses == [200] * 40
    assert gateway.rejected <= 50, gateway.rejected


async def test_tasks_sharing_a_client_pace_to_the_rate_limit() -> None:
    limit = RateLimit(per_second=30.0, burst=5.0, retry_after=False)
    with FakeGateway(rate_limit=limit) as gateway:
        async with httpx.AsyncClient(
            transport=AsyncPolicyTransport(engine=patient()), timeout=10
        ) as client:

            async def work() -> list[int]:
                return [
                    (await client.post(gateway.chat_url, json=BODY, headers=KEY)).status_code
                    for _ in range(5)
                ]

            results = await asyncio.gather(*(work() for _ in range(12)))
        assert [s for r in results for s in r] == [200] * 60
        assert gateway.rejected <= 3, gateway.rejected


def test_an_exhausted_quota_is_asked_once_for_all_callers() -> None:
    statuses: list[int] = []
    with (
        FakeGateway(default=quota_exhausted()) as gateway,
        httpx.Client(transport=PolicyTransport(engine=pe.Engine()), timeout=10) as client,
    ):

        def work(_: int) -> None:
            for _ in range(3):
                response = client.post(gateway.chat_url, json=BODY, headers=KEY)
                statuses.append(response.status_code)
                action = response.extensions["policyengine.action"]
                assert action.classification == "quota_exhausted"
                assert "quota" in action.remediation.lower()

        in_threads(10, work)
        assert statuses == [429] * 30
        assert gateway.count() <= 2, gateway.count()


def test_another_api_key_is_another_key() -> None:
    with (
        FakeGateway(default=invalid_api_key(echo_key=False)) as gateway,
        httpx.Client(transport=PolicyTransport(engine=pe.Engine()), timeout=10) as client,
    ):
        for _ in range(3):
            client.post(gateway.chat_url, json=BODY, headers=KEY)
        for _ in range(3):
            client.post(gateway.chat_url, json=BODY, headers={"Authorization": "Bearer other"})
        assert gateway.count() == 2
        # The key is a fingerprint: no credential is kept.
        governor = client._transport.driver.governor  # type: ignore[attr-defined]
        assert len(governor.store.keys()) == 2
        assert "sk-test" not in repr(governor.store.keys())


def test_a_sticky_failure_is_replayed_with_the_same_body() -> None:
    with (
        FakeGateway(default=quota_exhausted()) as gateway,
        httpx.Client(transport=PolicyTransport(engine=pe.Engine()), timeout=10) as client,
    ):
        first = client.post(gateway.chat_url, json=BODY, headers=KEY)
        second = client.post(gateway.chat_url, json=BODY, headers=KEY)
        assert gateway.count() == 1
        assert second.status_code == first.status_code == 429
        assert second.json() == first.json()
        assert second.headers["x-policyengine-refused"] == "sticky"
        explanation = second.extensions["policyengine.action"].explanation
        assert "failing at once" in explanation


def test_an_outage_costs_a_trickle_of_probes_not_callers_times_attempts() -> None:
    fast = policy(breaker={"open_for": 0.2, "max_open_for": 0.4})
    statuses: list[int] = []
    with (
        FakeGateway(default=unavailable()) as gateway,
        httpx.Client(transport=PolicyTransport(engine=pe.Engine(fast)), timeout=10) as client,
        pe.overriding(max_elapsed=1.5),
    ):

        def work(_: int) -> None:
            for _ in range(3):
                statuses.append(client.post(gateway.chat_url, json=BODY, headers=KEY).status_code)

        in_threads(10, work)
        assert statuses == [503] * 30
        # Without the governor: 30 calls x 4 attempts = 120 requests.
        assert gateway.count() <= 30, gateway.count()


def test_calls_wait_out_a_brownout_behind_one_probe() -> None:
    fast = policy(breaker={"open_for": 0.2, "max_open_for": 0.4})
    statuses: list[int] = []
    with (
        FakeGateway() as gateway,
        httpx.Client(transport=PolicyTransport(engine=pe.Engine(fast)), timeout=10) as client,
    ):
        gateway.fail_for(1.0)

        def work(_: int) -> None:
            for _ in range(2):
                statuses.append(client.post(gateway.chat_url, json=BODY, headers=KEY).status_code)

        in_threads(10, work)
        assert statuses == [200] * 20
        failed = sum(1 for r in gateway.received if r.at < gateway.received[0].at + 1.0)
        assert failed <= 15, failed  # the first wave and a few probes


def test_the_circuit_shows_in_the_explanation_and_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fast = policy(breaker={"failures": 2, "open_for": 5.0, "max_open_for": 5.0})
    with (
        FakeGateway(default=unavailable()) as gateway,
        httpx.Client(transport=PolicyTransport(engine=pe.Engine(fast)), timeout=10) as client,
        pe.overriding(max_attempts=1, max_elapsed=1.0),  # the probe (in 5s) is past it
        caplog.at_level("INFO", logger="policyengine.governor"),
    ):
        client.post(gateway.chat_url, json=BODY, headers=KEY)
        client.post(gateway.chat_url, json=BODY, headers=KEY)
        refused = client.post(gateway.chat_url, json=BODY, headers=KEY)
        assert gateway.count() == 2
    assert refused.status_code == 503
    assert refused.headers["x-policyengine-refused"] == "circuit"
    assert "circuit" in refused.extensions["policyengine.action"].explanation
    assert any(getattr(r, "transition", "") == "circuit_opened" for r in caplog.records)


def test_a_spent_retry_budget_fails_a_retry_at_once() -> None:
    # The breaker off, so that only the budget holds retries back.
    tight = policy(breaker={"enabled": False}, retry_budget={"ratio": 0.0, "burst": 2.0})
    with (
        FakeGateway(default=server_error()) as gateway,
        httpx.Client(transport=PolicyTransport(engine=pe.Engine(tight)), timeout=10) as client,
        pe.testing.testing_mode(),
    ):
        responses = [client.post(gateway.chat_url, json=BODY, headers=KEY) for _ in range(5)]
    # Two retries in all, then each call is tried once.
    assert gateway.count() == 5 + 2
    last = responses[-1].extensions["policyengine.action"]
    assert last.kind == "fail" and "retry budget" in last.explanation
    assert "rationed" in last.remediation


def test_a_governor_can_be_shared_between_clients() -> None:
    governor = pe.Governor(pe.load_policy(env=False))
    with (
        FakeGateway(default=quota_exhausted()) as gateway,
        httpx.Client(transport=PolicyTransport(governor=governor), timeout=10) as a,
        httpx.Client(transport=PolicyTransport(governor=governor), timeout=10) as b,
    ):
        a.post(gateway.chat_url, json=BODY, headers=KEY)
        b.post(gateway.chat_url, json=BODY, headers=KEY)
        assert gateway.count() == 1


def test_a_governor_can_be_turned_off() -> None:
    with (
        FakeGateway(default=quota_exhausted()) as gateway,
        httpx.Client(
            transport=PolicyTransport(engine=pe.Engine(policy(enabled=False))), timeout=10
        ) as client,
    ):
        for _ in range(3):
            client.post(gateway.chat_url, json=BODY, headers=KEY)
        assert gateway.count() == 3


def test_testing_mode_records_the_holds_apart_from_the_waits() -> None:
    fast = policy(breaker={"failures": 1, "open_for": 3.0, "max_open_for": 3.0})
    with (
        FakeGateway() as gateway,
        httpx.Client(transport=PolicyTransport(engine=pe.Engine(fast)), timeout=10) as client,
        pe.testing.testing_mode(seed=1) as mode,
    ):
        gateway.script(unavailable())
        response = client.post(gateway.chat_url, json=BODY, headers=KEY)
    assert response.status_code == 200
    assert len(mode.waits) == 1  # the backoff after the 503
    assert sum(mode.held) == pytest.approx(3.0 - mode.waits[0], abs=0.05)  # the circuit's wait


async def test_aiohttp_tasks_share_a_sticky_failure_and_a_pace() -> None:
    aiohttp = pytest.importorskip("aiohttp")
    from policyengine.aiohttp import PolicyMiddleware

    with FakeGateway(default=quota_exhausted()) as gateway:
        async with aiohttp.ClientSession(middlewares=(PolicyMiddleware(),)) as session:

            async def call() -> int:
                try:
                    async with session.post(gateway.chat_url, json=BODY, headers=KEY) as r:
                        return int(r.status)
                except aiohttp.ClientResponseError as refused:  # refused before sending
                    return int(refused.status)

            statuses = await asyncio.gather(*(call() for _ in range(20)))
        assert statuses == [429] * 20
        assert gateway.count() <= 2

    limit = RateLimit(per_second=30.0, burst=3.0)
    with FakeGateway(rate_limit=limit) as gateway:
        async with aiohttp.ClientSession(
            middlewares=(PolicyMiddleware(engine=patient()),)
        ) as session:

            async def paced() -> int:
                async with session.post(gateway.chat_url, json=BODY, headers=KEY) as r:
                    return int(r.status)

            statuses = await asyncio.gather(*(paced() for _ in range(30)))
        assert statuses == [200] * 30
        assert gateway.rejected <= 2, gateway.rejected
