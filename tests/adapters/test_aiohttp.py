"""policyengine.aiohttp with a real aiohttp session against the fake gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

aiohttp = pytest.importorskip("aiohttp")

import policyengine as pe  # noqa: E402
from policyengine.aiohttp import PolicyMiddleware  # noqa: E402
from policyengine.testing import (  # noqa: E402
    FakeGateway,
    TestingMode,
    rate_limited,
    slow,
    unavailable,
)

from .scenarios import TIMEOUT, Scenarios, Sent, Streamed, parse, read_stream  # noqa: E402


class TestAiohttp(Scenarios):
    def send(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Sent:
        async def go() -> Sent:
            timeout = aiohttp.ClientTimeout(sock_read=TIMEOUT)
            middlewares = (PolicyMiddleware(driver=driver),)
            async with aiohttp.ClientSession(middlewares=middlewares, timeout=timeout) as s:
                payload = {"model": model, "messages": []} if method == "POST" else None
                try:
                    async with s.request(
                        method, gateway.chat_url, json=payload, headers=headers
                    ) as r:
                        return Sent(r.status, parse(await r.read()), None)
                except aiohttp.ClientError as exc:
                    return Sent(None, None, exc)

        return asyncio.run(go())

    def stream(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        headers: dict[str, str] | None = None,
    ) -> Streamed:
        async def go() -> Streamed:
            chunks: list[bytes] = []
            status = None
            timeout = aiohttp.ClientTimeout(sock_read=TIMEOUT)
            middlewares = (PolicyMiddleware(driver=driver),)
            async with aiohttp.ClientSession(middlewares=middlewares, timeout=timeout) as s:
                payload = {"model": model, "messages": []}
                try:
                    async with s.post(gateway.chat_url, json=payload, headers=headers) as r:
                        status = r.status
                        async for chunk in r.content.iter_any():
                            chunks.append(chunk)
                except (aiohttp.ClientError, pe.StreamInterrupted) as exc:
                    return read_stream(status, chunks, exc)
            return read_stream(status, chunks, None)

        return asyncio.run(go())


async def test_final_timeout_is_aiohttp_own_exception_with_a_note(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(*[slow(3.0)] * 3)
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    async with aiohttp.ClientSession(
        middlewares=(PolicyMiddleware(engine=default_engine),), timeout=timeout
    ) as s:
        with pe.overriding(max_attempts=2), pytest.raises(aiohttp.SocketTimeoutError) as caught:
            await s.post(gateway.chat_url, json={"model": "m"})
    assert gateway.count() == 2
    assert any("gave up after 2 attempts" in n for n in getattr(caught.value, "__notes__", []))


async def test_concurrent_calls_keep_their_own_state(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(rate_limited(retry_after=1), model="a")
    gateway.script(rate_limited(retry_after=2), rate_limited(retry_after=2), model="b")
    async with aiohttp.ClientSession(middlewares=(PolicyMiddleware(engine=default_engine),)) as s:

        async def call(model: str) -> int:
            async with s.post(gateway.chat_url, json={"model": model}) as r:
                return int(r.status)

        assert list(await asyncio.gather(call("a"), call("b"))) == [200, 200]
    assert (gateway.count(model="a"), gateway.count(model="b")) == (2, 3)
    assert sorted(testing.waits) == [1.0, 2.0, 2.0]


async def test_real_wait_is_at_least_what_the_server_asked(
    gateway: FakeGateway, default_engine: pe.Engine
) -> None:
    gateway.script(rate_limited(retry_after=None, retry_after_ms=150))
    async with (
        aiohttp.ClientSession(middlewares=(PolicyMiddleware(engine=default_engine),)) as s,
        s.post(gateway.chat_url, json={"model": "m"}) as r,
    ):
        assert r.status == 200
    first, second = gateway.received
    assert second.at - first.at >= 0.15


async def test_an_async_iterable_body_is_sent_whole_on_every_attempt(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": '
        yield b'"m"}'

    gateway.script(unavailable(), unavailable())
    async with (
        aiohttp.ClientSession(middlewares=(PolicyMiddleware(engine=default_engine),)) as s,
        s.post(gateway.chat_url, data=body()) as r,
    ):
        assert r.status == 200
    assert [q.body for q in gateway.received] == [b'{"model": "m"}'] * 3
