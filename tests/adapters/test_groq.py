"""policyengine.groq: the real Groq SDK (httpx), its own retries off, against
the fake gateway (Groq speaks OpenAI's dialect, under /openai/v1)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

groq = pytest.importorskip("groq")

import policyengine as pe  # noqa: E402
from policyengine.groq import async_client, client  # noqa: E402
from policyengine.testing import (  # noqa: E402
    FakeGateway,
    TestingMode,
    rate_limited,
    unavailable,
)

from .scenarios import TIMEOUT, Scenarios, Sent, Streamed  # noqa: E402

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def _options(gateway: FakeGateway, headers: dict[str, str] | None) -> tuple[dict[str, Any], Any]:
    headers = dict(headers or {})
    auth = headers.pop("Authorization", "Bearer gsk_test_key")
    options = {"api_key": auth.split(" ", 1)[1], "base_url": gateway.url, "timeout": TIMEOUT}
    return options, headers or None


def _text(chunk: Any) -> str:
    return "".join(c.delta.content or "" for c in chunk.choices)


def _sent_error(exc: Exception) -> Sent:
    if isinstance(exc, groq.APIStatusError):
        return Sent(exc.status_code, exc.body, exc)
    return Sent(None, None, exc)


class TestGroqSync(Scenarios):
    get = False

    def send(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Sent:
        options, extra = _options(gateway, headers)
        llm = client(driver=driver, **options)
        try:
            reply = llm.chat.completions.create(model=model, messages=MESSAGES, extra_headers=extra)
        except groq.GroqError as exc:
            return _sent_error(exc)
        finally:
            llm.close()
        return Sent(200, {"model": reply.model}, None)

    def stream(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        headers: dict[str, str] | None = None,
    ) -> Streamed:
        # The SDK's own stream iteration, end to end: it hands out parsed
        # chunks, not bytes.
        options, extra = _options(gateway, headers)
        llm = client(driver=driver, **options)
        events, text = 0, ""
        try:
            for chunk in llm.chat.completions.create(
                model=model, messages=MESSAGES, extra_headers=extra, stream=True
            ):
                events += 1
                text += _text(chunk)
        except (groq.GroqError, pe.StreamInterrupted) as exc:
            status = exc.status_code if isinstance(exc, groq.APIStatusError) else 200
            return Streamed(status, None, events, exc, text)
        finally:
            llm.close()
        return Streamed(200, None, events, None, text)


class TestGroqAsync(Scenarios):
    get = False

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
            options, extra = _options(gateway, headers)
            llm = async_client(driver=driver, **options)
            try:
                reply = await llm.chat.completions.create(
                    model=model, messages=MESSAGES, extra_headers=extra
                )
            except groq.GroqError as exc:
                return _sent_error(exc)
            finally:
                await llm.close()
            return Sent(200, {"model": reply.model}, None)

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
            options, extra = _options(gateway, headers)
            llm = async_client(driver=driver, **options)
            events, text = 0, ""
            try:
                answer = await llm.chat.completions.create(
                    model=model, messages=MESSAGES, extra_headers=extra, stream=True
                )
                async for chunk in answer:
                    events += 1
                    text += _text(chunk)
            except (groq.GroqError, pe.StreamInterrupted) as exc:
                status = exc.status_code if isinstance(exc, groq.APIStatusError) else 200
                return Streamed(status, None, events, exc, text)
            finally:
                await llm.close()
            return Streamed(200, None, events, None, text)

        return asyncio.run(go())


def test_sdk_retries_are_off_so_one_layer_retries(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    limit = default_engine.policy.rule("upstream-unavailable").max_attempts
    gateway.script(*[unavailable()] * (limit + 5))
    llm = client(engine=default_engine, api_key="sk-x", base_url=gateway.url)
    assert llm.max_retries == 0
    with pytest.raises(groq.InternalServerError) as caught:
        llm.chat.completions.create(model="m", messages=MESSAGES)
    assert gateway.count() == limit  # not limit * (SDK retries + 1)
    action = caught.value.response.extensions["policyengine.action"]
    assert action.kind is pe.ActionKind.FAIL


def test_rate_limit_error_after_give_up_carries_the_action(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(*[rate_limited(retry_after=1)] * 2)
    llm = client(engine=default_engine, api_key="sk-x", base_url=gateway.url)
    with pe.overriding(max_attempts=2), pytest.raises(groq.RateLimitError) as caught:
        llm.chat.completions.create(model="m", messages=MESSAGES)
    assert gateway.count() == 2
    assert testing.waits == [1.0]
    action = caught.value.response.extensions["policyengine.action"]
    assert action.classification == "rate_limit"


def test_max_retries_and_http_client_are_refused() -> None:
    with pytest.raises(TypeError, match="exactly one layer retries"):
        client(max_retries=2, api_key="sk-x")
    with pytest.raises(TypeError, match="transport="):
        client(http_client=object(), api_key="sk-x")


def test_requests_go_to_groq_s_openai_path(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    llm = client(engine=default_engine, api_key="gsk_x", base_url=gateway.url)
    llm.chat.completions.create(model="m", messages=MESSAGES)
    assert [r.path for r in gateway.received] == ["/openai/v1/chat/completions"]
