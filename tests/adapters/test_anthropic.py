"""policyengine.anthropic: the real Anthropic SDK (2.x, on httpx2), its own
retries off, against the fake gateway speaking Anthropic's Messages API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")

import policyengine as pe  # noqa: E402
from policyengine.anthropic import async_client, client  # noqa: E402
from policyengine.testing import ANTHROPIC, FakeGateway, TestingMode, sse  # noqa: E402

from .conftest import BACKUP  # noqa: E402
from .scenarios import TIMEOUT, Scenarios, Sent, Streamed  # noqa: E402

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


#: What the policy decides wrongly for Anthropic's bodies today (issue 10).
def _options(gateway: FakeGateway, headers: dict[str, str] | None) -> tuple[dict[str, Any], Any]:
    headers = dict(headers or {})
    auth = headers.pop("Authorization", "Bearer sk-ant-test-key")
    options = {"api_key": auth.split(" ", 1)[1], "base_url": gateway.url, "timeout": TIMEOUT}
    return options, headers or None


def _sent_error(exc: Exception) -> Sent:
    if isinstance(exc, anthropic.APIStatusError):
        return Sent(exc.status_code, exc.body, exc)
    return Sent(None, None, exc)


def _text(event: Any) -> str:
    return event.delta.text if event.type == "content_block_delta" else ""


class TestAnthropicSync(Scenarios):
    dialect = ANTHROPIC
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
        claude = client(driver=driver, **options)
        try:
            reply = claude.messages.create(
                model=model, max_tokens=16, messages=MESSAGES, extra_headers=extra
            )
        except anthropic.AnthropicError as exc:
            return _sent_error(exc)
        finally:
            claude.close()
        return Sent(200, {"model": reply.model}, None)

    def stream(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        headers: dict[str, str] | None = None,
    ) -> Streamed:
        # The SDK's own event iteration: it hands out parsed events, not bytes.
        options, extra = _options(gateway, headers)
        claude = client(driver=driver, **options)
        events, text = 0, ""
        try:
            for event in claude.messages.create(
                model=model, max_tokens=16, messages=MESSAGES, extra_headers=extra, stream=True
            ):
                events += 1
                text += _text(event)
        except (anthropic.AnthropicError, pe.StreamInterrupted) as exc:
            status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else 200
            return Streamed(status, None, events, exc, text)
        finally:
            claude.close()
        return Streamed(200, None, events, None, text)


class TestAnthropicAsync(Scenarios):
    dialect = ANTHROPIC
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
            claude = async_client(driver=driver, **options)
            try:
                reply = await claude.messages.create(
                    model=model, max_tokens=16, messages=MESSAGES, extra_headers=extra
                )
            except anthropic.AnthropicError as exc:
                return _sent_error(exc)
            finally:
                await claude.close()
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
            claude = async_client(driver=driver, **options)
            events, text = 0, ""
            try:
                answer = await claude.messages.create(
                    model=model, max_tokens=16, messages=MESSAGES, extra_headers=extra, stream=True
                )
                async for event in answer:
                    events += 1
                    text += _text(event)
            except (anthropic.AnthropicError, pe.StreamInterrupted) as exc:
                status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else 200
                return Streamed(status, None, events, exc, text)
            finally:
                await claude.close()
            return Streamed(200, None, events, None, text)

        return asyncio.run(go())


def test_sdk_retries_are_off_so_one_layer_retries(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(*[ANTHROPIC.overloaded()] * 20)
    claude = client(engine=default_engine, api_key="sk-ant-x", base_url=gateway.url)
    assert claude.max_retries == 0
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(model="m", max_tokens=16, messages=MESSAGES)
    action = caught.value.response.extensions["policyengine.action"]
    assert caught.value.status_code == 529
    assert action.kind is pe.ActionKind.FAIL
    assert action.classification == "overloaded"
    limit = default_engine.policy.rule(action.rule_id).max_attempts
    assert gateway.count() == limit  # not limit * (SDK retries + 1)
    assert len(testing.waits) == limit - 1


def test_x_should_retry_false_is_the_policy_s_to_read(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    # The SDK would obey x-should-retry itself; with its retries off the
    # policy reads it (honour_should_retry): a 529 the server says not to retry.
    refused = ANTHROPIC.overloaded()
    gateway.script(type(refused)(529, (("x-should-retry", "false"),), refused.body), ANTHROPIC.ok())
    claude = client(engine=default_engine, api_key="sk-ant-x", base_url=gateway.url)
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(model="m", max_tokens=16, messages=MESSAGES)
    assert gateway.count() == 1
    action = caught.value.response.extensions["policyengine.action"]
    assert action.kind is pe.ActionKind.FAIL
    assert "x-should-retry" in action.explanation


def test_messages_stream_helper_falls_back_on_an_error_event_first(
    gateway: FakeGateway, testing: TestingMode
) -> None:
    # messages.stream() (the SDK's helper) over an `event: error` first event:
    # the fallback model's stream is what the helper reads.
    policy = pe.load_policy(
        {"rules": [{"id": "overloaded-message", "action": "fallback", "fallback": [BACKUP]}]},
        env=False,
    )
    gateway.script(ANTHROPIC.streamed(error_after=0), model="claude-primary")
    gateway.script(ANTHROPIC.streamed("Hi from the backup"), model=BACKUP)
    claude = client(engine=pe.Engine(policy), api_key="sk-ant-x", base_url=gateway.url)
    with claude.messages.stream(model="claude-primary", max_tokens=16, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Hi from the backup"
    assert final.model == BACKUP
    assert gateway.models() == ["claude-primary", BACKUP]
    assert [r.json()["model"] for r in gateway.received] == ["claude-primary", BACKUP]


def test_a_ping_event_first_is_a_first_event_like_any_other(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    events = (sse({"type": "ping"}, event="ping"), *ANTHROPIC.events())
    gateway.script(ANTHROPIC.streamed(events=events))
    claude = client(engine=default_engine, api_key="sk-ant-x", base_url=gateway.url)
    with claude.messages.stream(model="m", max_tokens=16, messages=MESSAGES) as s:
        assert "".join(s.text_stream) == "Hello from the fake gateway."
    assert gateway.count() == 1


def test_max_retries_and_http_client_are_refused() -> None:
    with pytest.raises(TypeError, match="exactly one layer retries"):
        client(max_retries=2, api_key="sk-ant-x")
    with pytest.raises(TypeError, match="transport="):
        async_client(http_client=object(), api_key="sk-ant-x")
