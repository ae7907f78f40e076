"""policyengine.httpx2 with real httpx2 clients (the fork the Anthropic SDK 2.x
takes) against the fake gateway: the same scenarios as httpx2."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

httpx2 = pytest.importorskip("httpx2")

import policyengine as pe  # noqa: E402
from policyengine.httpx2 import AsyncPolicyTransport, PolicyTransport  # noqa: E402
from policyengine.testing import FakeGateway, TestingMode, unavailable  # noqa: E402

from .scenarios import TIMEOUT, Scenarios, Sent, Streamed, parse, read_stream  # noqa: E402


def _payload(model: str, method: str) -> dict[str, Any]:
    if method == "GET":
        return {}
    return {"json": {"model": model, "messages": [{"role": "user", "content": "hi"}]}}


class TestHttpx2Sync(Scenarios):
    def send(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Sent:
        with httpx2.Client(transport=PolicyTransport(driver=driver), timeout=TIMEOUT) as client:
            try:
                r = client.request(
                    method, gateway.chat_url, headers=headers, **_payload(model, method)
                )
            except httpx2.HTTPError as exc:
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
        with httpx2.Client(transport=PolicyTransport(driver=driver), timeout=TIMEOUT) as client:
            try:
                with client.stream(
                    "POST", gateway.chat_url, headers=headers, **_payload(model, "POST")
                ) as r:
                    status = r.status_code
                    chunks.extend(r.iter_raw())
            except (httpx2.HTTPError, pe.StreamInterrupted) as exc:
                return read_stream(status, chunks, exc)
        return read_stream(status, chunks, None)


class TestHttpx2Async(Scenarios):
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
            async with httpx2.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
                try:
                    r = await client.request(
                        method, gateway.chat_url, headers=headers, **_payload(model, method)
                    )
                except httpx2.HTTPError as exc:
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
            async with httpx2.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
                try:
                    async with client.stream(
                        "POST", gateway.chat_url, headers=headers, **_payload(model, "POST")
                    ) as r:
                        status = r.status_code
                        async for chunk in r.aiter_raw():
                            chunks.append(chunk)
                except (httpx2.HTTPError, pe.StreamInterrupted) as exc:
                    return read_stream(status, chunks, exc)
            return read_stream(status, chunks, None)

        return asyncio.run(go())


def test_fallback_moves_the_model_in_the_url_path(
    gateway: FakeGateway, testing: TestingMode, deployment_engine: pe.Engine
) -> None:
    gateway.script(unavailable())
    transport = PolicyTransport(engine=deployment_engine, model_in=pe.ModelInPath())
    with httpx2.Client(transport=transport) as client:
        r = client.post(gateway.url + "/v1beta/models/primary:generateContent", json={})
    assert r.status_code == 200
    assert [x.path for x in gateway.received] == [
        "/v1beta/models/primary:generateContent",
        "/v1beta/models/backup-model:generateContent",
    ]
    history = r.extensions["policyengine.history"]
    assert [d.attempt.model for d in history] == ["primary", "backup-model"]


def test_an_httpx_client_is_not_an_httpx2_client() -> None:
    # Why there are two modules: the fork's classes are its own.
    httpx = pytest.importorskip("httpx")
    assert not issubclass(httpx2.Client, httpx.Client)
    assert not issubclass(PolicyTransport, httpx.BaseTransport)
