"""policyengine.genai: the real Google GenAI SDK (Gemini), its own retries off,
against the fake gateway speaking Gemini's generateContent (the model in the
URL path)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

genai = pytest.importorskip("google.genai")

import httpx2  # noqa: E402
from google.genai import errors, types  # noqa: E402

import policyengine as pe  # noqa: E402
from policyengine.genai import client  # noqa: E402
from policyengine.testing import GEMINI, FakeGateway, TestingMode  # noqa: E402

from .conftest import BACKUP  # noqa: E402
from .scenarios import TIMEOUT, Scenarios, Sent, Streamed  # noqa: E402


def _client(gateway: FakeGateway, driver: pe.Driver, headers: dict[str, str] | None) -> Any:
    headers = dict(headers or {})
    auth = headers.pop("Authorization", "Bearer AIza-test-key")
    options = {"base_url": gateway.url, "timeout": int(TIMEOUT * 1000), "headers": headers}
    return client(driver=driver, api_key=auth.split(" ", 1)[1], http_options=options)


def _sent_error(exc: Exception) -> Sent:
    if isinstance(exc, errors.APIError):
        return Sent(exc.code, exc.details, exc)
    return Sent(None, None, exc)


def _stream_error(exc: Exception, events: int, text: str) -> Streamed:
    status = exc.code if isinstance(exc, errors.APIError) else 200
    return Streamed(status, None, events, exc, text)


class TestGenAISync(Scenarios):
    dialect = GEMINI
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
        gemini = _client(gateway, driver, headers)
        try:
            reply = gemini.models.generate_content(model=model, contents="hi")
        except Exception as exc:  # the SDK's errors, and httpx2's own
            return _sent_error(exc)
        finally:
            gemini.close()
        return Sent(200, {"model": reply.model_version}, None)

    def stream(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        headers: dict[str, str] | None = None,
    ) -> Streamed:
        gemini = _client(gateway, driver, headers)
        events, text = 0, ""
        try:
            for chunk in gemini.models.generate_content_stream(model=model, contents="hi"):
                events += 1
                text += chunk.text or ""
        except Exception as exc:
            return _stream_error(exc, events, text)
        finally:
            gemini.close()
        return Streamed(200, None, events, None, text)


class TestGenAIAsync(Scenarios):
    dialect = GEMINI
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
            gemini = _client(gateway, driver, headers)
            try:
                reply = await gemini.aio.models.generate_content(model=model, contents="hi")
            except Exception as exc:
                return _sent_error(exc)
            finally:
                await gemini.aio.aclose()
            return Sent(200, {"model": reply.model_version}, None)

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
            gemini = _client(gateway, driver, headers)
            events, text = 0, ""
            try:
                answer = await gemini.aio.models.generate_content_stream(model=model, contents="hi")
                async for chunk in answer:
                    events += 1
                    text += chunk.text or ""
            except Exception as exc:
                return _stream_error(exc, events, text)
            finally:
                await gemini.aio.aclose()
            return Streamed(200, None, events, None, text)

        return asyncio.run(go())


def test_sdk_retries_are_off_so_one_layer_retries(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(*[GEMINI.unavailable()] * 20)
    gemini = client(engine=default_engine, api_key="AIza-x", http_options={"base_url": gateway.url})
    with pytest.raises(errors.ServerError) as caught:
        gemini.models.generate_content(model="gemini-x", contents="hi")
    assert caught.value.code == 503
    rule = default_engine.evaluate(
        pe.Response(503, {}, (GEMINI.unavailable().body or "").encode())
    ).rule_id
    limit = default_engine.policy.rule(rule).max_attempts
    assert gateway.count() == limit  # not limit * (the SDK's attempts)
    assert len(testing.waits) == limit - 1


def test_fallback_moves_the_model_in_the_path_and_the_governor_keys_on_it(
    gateway: FakeGateway, testing: TestingMode, deployment_engine: pe.Engine
) -> None:
    gateway.script(GEMINI.unavailable(), model="gemini-primary")
    decisions: list[pe.Decision] = []
    driver = pe.Driver(deployment_engine, hooks=(decisions.append,))
    gemini = client(driver=driver, api_key="AIza-x", http_options={"base_url": gateway.url})
    reply = gemini.models.generate_content(model="gemini-primary", contents="hi")
    assert reply.model_version == BACKUP
    assert [r.path.split("/models/")[1] for r in gateway.received] == [
        "gemini-primary:generateContent",
        f"{BACKUP}:generateContent",
    ]
    assert gateway.received[0].body == gateway.received[1].body  # the body is left as it was
    assert [d.attempt.model for d in decisions] == ["gemini-primary", BACKUP]


def test_the_governor_keys_on_the_model_in_the_path(
    gateway: FakeGateway, testing: TestingMode
) -> None:
    # A circuit opened by one model's failures holds that model's calls only.
    policy = pe.load_policy(
        {"governor": {"breaker": {"failures": 2, "open_for": 5.0, "max_open_for": 5.0}}},
        env=False,
    )
    gateway.script(*[GEMINI.unavailable()] * 2, model="gemini-a")
    gemini = client(
        engine=pe.Engine(policy), api_key="AIza-x", http_options={"base_url": gateway.url}
    )
    with pe.overriding(max_attempts=1, max_elapsed=1.0):
        for _ in range(3):
            with pytest.raises(errors.ServerError):
                gemini.models.generate_content(model="gemini-a", contents="hi")
        reply = gemini.models.generate_content(model="gemini-b", contents="hi")
    assert reply.model_version == "gemini-b"
    assert gateway.models() == ["gemini-a", "gemini-a", "gemini-b"]


def test_http_options_that_would_retry_twice_are_refused() -> None:
    with pytest.raises(TypeError, match="exactly one layer retries"):
        client(api_key="AIza-x", http_options={"retry_options": {"attempts": 3}})
    with pytest.raises(TypeError, match="transport="):
        client(api_key="AIza-x", http_options=types.HttpOptions(httpx_client=httpx2.Client()))
