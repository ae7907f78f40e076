"""policyengine.httpx with real httpx clients against the fake gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

import policyengine as pe  # noqa: E402
from policyengine.httpx import AsyncPolicyTransport, PolicyTransport  # noqa: E402
from policyengine.testing import FakeGateway, TestingMode, rate_limited, unavailable  # noqa: E402

from .scenarios import TIMEOUT, Scenarios, Sent, Streamed, parse, read_stream  # noqa: E402


def _payload(model: str, method: str) -> dict[str, Any]:
    if method == "GET":
        return {}
    return {"json": {"model": model, "messages": [{"role": "user", "content": "hi"}]}}


class TestHttpxSync(Scenarios):
    def send(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Sent:
        with httpx.Client(transport=PolicyTransport(driver=driver), timeout=TIMEOUT) as client:
            try:
                r = client.request(
                    method, gateway.chat_url, headers=headers, **_payload(model, method)
                )
            except httpx.HTTPError as exc:
                return Sent(None, None, exc)
            return Sent(r.status_code, parse(r.content), None)

    def stream(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        headers: dict[str, str] | None = None,
    ) -> Streamed:
        chunks: list[bytes] = []
        status = None
        with httpx.Client(transport=PolicyTransport(driver=driver), timeout=TIMEOUT) as client:
            try:
                with client.stream(
                    "POST", gateway.chat_url, headers=headers, **_payload(model, "POST")
                ) as r:
                    status = r.status_code
                    chunks.extend(r.iter_raw())
            except (httpx.HTTPError, pe.StreamInterrupted) as exc:
                return read_stream(status, chunks, exc)
        return read_stream(status, chunks, None)


class TestHttpxAsync(Scenarios):
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
            transport = AsyncPolicyTransport(driver=driver)
            async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
                try:
                    r = await client.request(
                        method, gateway.chat_url, headers=headers, **_payload(model, method)
                    )
                except httpx.HTTPError as exc:
                    return Sent(None, None, exc)
                return Sent(r.status_code, parse(r.content), None)

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
            transport = AsyncPolicyTransport(driver=driver)
            async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
                try:
                    async with client.stream(
                        "POST", gateway.chat_url, headers=headers, **_payload(model, "POST")
                    ) as r:
                        status = r.status_code
                        async for chunk in r.aiter_raw():
                            chunks.append(chunk)
                except (httpx.HTTPError, pe.StreamInterrupted) as exc:
                    return read_stream(status, chunks, exc)
            return read_stream(status, chunks, None)

        return asyncio.run(go())


def test_per_request_override_through_extensions(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(unavailable(), unavailable())
    with httpx.Client(transport=PolicyTransport(engine=default_engine)) as client:
        r = client.post(
            gateway.chat_url,
            json={"model": "m"},
            extensions={"policyengine": {"max_attempts": 2}},
        )
    assert r.status_code == 503
    assert gateway.count() == 2
    action = r.extensions["policyengine.action"]
    assert action.kind is pe.ActionKind.FAIL
    assert "per-call max_attempts = 2" in action.explanation
    assert len(r.extensions["policyengine.history"]) == 2


def test_bad_override_says_what_to_use(gateway: FakeGateway, default_engine: pe.Engine) -> None:
    with (
        httpx.Client(transport=PolicyTransport(engine=default_engine)) as client,
        pytest.raises(TypeError, match="use max_attempts and max_elapsed"),
    ):
        client.post(gateway.chat_url, json={}, extensions={"policyengine": {"tries": 1}})
    assert gateway.count() == 0


def test_final_exception_carries_a_note(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    from policyengine.testing import slow

    gateway.script(*[slow(3.0)] * 3)
    with (
        httpx.Client(transport=PolicyTransport(engine=default_engine), timeout=0.2) as client,
        pytest.raises(httpx.ReadTimeout) as caught,
    ):
        client.post(
            gateway.chat_url, json={"model": "m"}, extensions={"policyengine": {"max_attempts": 2}}
        )
    assert gateway.count() == 2
    notes = getattr(caught.value, "__notes__", [])
    assert any("gave up after 2 attempts: timeout (read_timeout" in n for n in notes)


def test_streamed_success_is_not_buffered(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    from policyengine.testing import Reply

    gateway.script(Reply(200, body="data: hello\n\n", content_type="text/event-stream"))
    with (
        httpx.Client(transport=PolicyTransport(engine=default_engine)) as client,
        client.stream("POST", gateway.chat_url, json={"model": "m"}) as r,
    ):
        assert r.status_code == 200
        assert not r.is_stream_consumed
        assert list(r.iter_raw()) == [b"data: hello\n\n"]


def test_error_body_stays_readable_as_a_stream(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    from policyengine.testing import invalid_api_key

    gateway.script(invalid_api_key(echo_key=False))
    with (
        httpx.Client(transport=PolicyTransport(engine=default_engine)) as client,
        client.stream("POST", gateway.chat_url, json={"model": "m"}) as r,
    ):
        body = b"".join(r.iter_raw())
    assert r.status_code == 401
    assert b"invalid_api_key" in body


def test_real_wait_is_at_least_what_the_server_asked(
    gateway: FakeGateway, default_engine: pe.Engine
) -> None:
    # Not in testing mode: the transport really sleeps. Lower bound only.
    gateway.script(rate_limited(retry_after=None, retry_after_ms=150))
    with httpx.Client(transport=PolicyTransport(engine=default_engine)) as client:
        r = client.post(gateway.chat_url, json={"model": "m"})
    assert r.status_code == 200
    first, second = gateway.received
    assert second.at - first.at >= 0.15
    assert r.extensions["policyengine.history"][0].wait == 0.15
