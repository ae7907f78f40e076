"""pe.restarting / pe.arestarting: a broken-off stream started over, with
real clients (httpx, the OpenAI SDK) against the fake gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

import policyengine as pe  # noqa: E402
from policyengine.httpx import AsyncPolicyTransport, PolicyTransport  # noqa: E402
from policyengine.testing import FakeGateway, TestingMode, error_event, streamed  # noqa: E402

from .conftest import BACKUP  # noqa: E402
from .scenarios import STREAMED_TEXT, text_in  # noqa: E402


def lines_of(client: Any, gateway: FakeGateway) -> Any:
    """``start`` for restarting(): a generator over one streamed request's lines."""

    def start(attempt: pe.Attempt) -> Iterator[str]:
        body = {"model": attempt.model or "m", "messages": []}
        with client.stream("POST", gateway.chat_url, json=body) as r:
            yield from r.iter_lines()

    return start


def text_of(lines: list[str]) -> str:
    return text_in("\n".join(lines).encode())


def test_an_accepted_restart_gives_the_whole_answer_after_the_broken_part(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(streamed(error_after=2), streamed())
    stops: list[pe.StreamInterrupted] = []
    with httpx.Client(transport=PolicyTransport(engine=default_engine)) as client:
        got = list(pe.restarting(lines_of(client, gateway), accept=lambda s: not stops.append(s)))
    assert gateway.count() == 2
    (stop,) = stops
    assert (stop.events, stop.action.classification) == (2, "overloaded")
    assert testing.waits == [stop.action.delay]
    assert text_of(got) == "Hello from" + STREAMED_TEXT  # the broken part, then the whole


def test_a_refused_restart_raises(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(streamed(error_after=1), streamed())
    with (
        httpx.Client(transport=PolicyTransport(engine=default_engine)) as client,
        pytest.raises(pe.StreamInterrupted) as caught,
    ):
        list(pe.restarting(lines_of(client, gateway), accept=lambda stop: False))
    assert caught.value.events == 1
    assert gateway.count() == 1


def test_what_the_policy_would_not_retry_is_not_restarted(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(streamed(error_after=1, error=error_event()), streamed())
    asked: list[pe.StreamInterrupted] = []
    with (
        httpx.Client(transport=PolicyTransport(engine=default_engine)) as client,
        pytest.raises(pe.StreamInterrupted) as caught,
    ):
        list(pe.restarting(lines_of(client, gateway), accept=lambda s: not asked.append(s)))
    assert caught.value.action.classification == "quota_exhausted"
    assert (asked, gateway.count(), testing.waits) == ([], 1, [])


def test_restarts_are_bounded(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(*[streamed(drop_after=1)] * 5)
    with (
        httpx.Client(transport=PolicyTransport(engine=default_engine)) as client,
        pytest.raises(pe.StreamInterrupted) as caught,
    ):
        list(pe.restarting(lines_of(client, gateway), accept=lambda s: True, max_restarts=1))
    assert caught.value.action.classification == "connection"
    assert gateway.count() == 2
    with pytest.raises(ValueError, match="max_restarts"):
        next(pe.restarting(lambda a: [], accept=lambda s: True, max_restarts=-1))


def test_a_fallback_restarts_on_the_next_model(gateway: FakeGateway, testing: TestingMode) -> None:
    policy = pe.load_policy(
        {"rules": [{"id": "overloaded-message", "action": "fallback", "fallback": [BACKUP]}]},
        env=False,
    )
    gateway.script(streamed(error_after=2), model="primary")
    gateway.script(streamed(), model=BACKUP)
    attempts: list[pe.Attempt] = []
    with httpx.Client(transport=PolicyTransport(engine=pe.Engine(policy))) as client:
        start = lines_of(client, gateway)

        def logged(attempt: pe.Attempt) -> Iterator[str]:
            attempts.append(attempt)
            return start(attempt)  # type: ignore[no-any-return]

        got = list(pe.restarting(logged, model="primary", accept=lambda s: True))
    assert gateway.models() == ["primary", BACKUP]
    assert [(a.number, a.model) for a in attempts] == [(1, "primary"), (2, BACKUP)]
    assert text_of(got) == "Hello from" + STREAMED_TEXT
    models = [line for line in got if '"model"' in line]
    assert ['"primary"' in m for m in models] == [True] * 2 + [False] * (len(models) - 2)


def test_async_with_httpx(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(streamed(error_after=2), streamed())

    async def go() -> list[str]:
        transport = AsyncPolicyTransport(engine=default_engine)
        async with httpx.AsyncClient(transport=transport) as client:

            async def start(attempt: pe.Attempt) -> AsyncIterator[str]:
                body = {"model": "m", "messages": []}
                async with client.stream("POST", gateway.chat_url, json=body) as r:
                    async for line in r.aiter_lines():
                        yield line

            return [line async for line in pe.arestarting(start, accept=lambda s: True)]

    assert text_of(asyncio.run(go())) == "Hello from" + STREAMED_TEXT
    assert gateway.count() == 2


def test_with_the_openai_sdk_sync_and_async(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    pytest.importorskip("openai")
    from policyengine.openai import async_client, client

    messages: list[Any] = [{"role": "user", "content": "hi"}]
    gateway.script(streamed(error_after=3), streamed())
    llm = client(engine=default_engine, api_key="sk-x", base_url=gateway.base_url)
    text = ""
    for chunk in pe.restarting(
        lambda a: llm.chat.completions.create(model=a.model or "m", messages=messages, stream=True),
        accept=lambda stop: True,
    ):
        text += "".join(c.delta.content or "" for c in chunk.choices)
    llm.close()
    assert text == "Hello from the" + STREAMED_TEXT

    async def go() -> str:
        allm = async_client(engine=default_engine, api_key="sk-x", base_url=gateway.base_url)
        text = ""
        async for chunk in pe.arestarting(
            lambda a: allm.chat.completions.create(model="m", messages=messages, stream=True),
            accept=lambda stop: True,
        ):
            text += "".join(c.delta.content or "" for c in chunk.choices)
        await allm.close()
        return text

    gateway.script(streamed(error_after=1), streamed())
    assert asyncio.run(go()) == "Hello" + STREAMED_TEXT
    assert gateway.count() == 4
