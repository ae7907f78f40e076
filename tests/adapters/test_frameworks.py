"""The recipes for LangChain (langchain-openai, langchain-anthropic) and
pydantic-ai: their HTTP goes through the policy, with their own retries off,
tested with the real packages against the fake gateway."""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import Any

import pytest

import policyengine as pe
from policyengine.testing import ANTHROPIC, FakeGateway, TestingMode, unavailable

from .conftest import BACKUP


def test_langchain_openai_through_the_policy(
    gateway: FakeGateway, testing: TestingMode, deployment_engine: pe.Engine
) -> None:
    pytest.importorskip("langchain_openai")
    import httpx
    from langchain_openai import ChatOpenAI

    from policyengine.httpx import AsyncPolicyTransport, PolicyTransport

    driver = pe.Driver(deployment_engine)
    llm = ChatOpenAI(
        model="primary",
        api_key="sk-lc-0001",  # type: ignore[arg-type]
        base_url=gateway.base_url,
        max_retries=0,  # the policy retries
        http_client=httpx.Client(transport=PolicyTransport(driver=driver)),
        http_async_client=httpx.AsyncClient(transport=AsyncPolicyTransport(driver=driver)),
    )
    gateway.script(unavailable(), model="primary")
    reply = llm.invoke("hi")
    assert reply.response_metadata["model_name"] == BACKUP
    assert gateway.models() == ["primary", BACKUP]
    assert len(testing.waits) == 1

    gateway.clear()
    gateway.script(unavailable(), unavailable(), model="primary")
    reply = asyncio.run(llm.ainvoke("hi"))
    assert gateway.models() == ["primary", BACKUP]


def _policy_chat_anthropic(driver: pe.Driver) -> Any:
    """The recipe: langchain-anthropic takes no HTTP client, so a subclass
    hands it the policy's Anthropic clients."""
    from langchain_anthropic import ChatAnthropic

    from policyengine.anthropic import async_client, client

    class PolicyChatAnthropic(ChatAnthropic):
        @cached_property
        def _client(self) -> Any:
            return client(driver=driver, **self._client_params)

        @cached_property
        def _async_client(self) -> Any:
            return async_client(driver=driver, **self._client_params)

    return PolicyChatAnthropic


def test_langchain_anthropic_through_the_policy(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    pytest.importorskip("langchain_anthropic")
    driver = pe.Driver(default_engine)
    chat = _policy_chat_anthropic(driver)
    llm = chat(
        model="claude-x",  # type: ignore[call-arg]
        api_key="sk-ant-lc-0001",
        base_url=gateway.url,
        max_retries=0,  # the policy retries
    )
    gateway.script(ANTHROPIC.overloaded(), ANTHROPIC.rate_limited(retry_after=2))
    reply = llm.invoke("hi")
    assert reply.content == "Hello from the fake gateway."
    assert gateway.count() == 3
    assert testing.waits[1] == 2.0
    assert all(r.path == "/v1/messages" for r in gateway.received)

    gateway.clear()
    gateway.script(ANTHROPIC.overloaded())
    reply = asyncio.run(llm.ainvoke("hi"))
    assert gateway.count() == 2


def test_pydantic_ai_openai_and_anthropic_through_the_policy(
    gateway: FakeGateway, testing: TestingMode, deployment_engine: pe.Engine
) -> None:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.openai import OpenAIProvider

    from policyengine.anthropic import async_client as anthropic_client
    from policyengine.openai import async_client as openai_client

    # The provider takes the SDK client: the policy's, with max_retries=0.
    openai_model = OpenAIChatModel(
        "primary",
        provider=OpenAIProvider(
            openai_client=openai_client(
                engine=deployment_engine, api_key="sk-pa-0001", base_url=gateway.base_url
            )
        ),
    )
    gateway.script(unavailable(), model="primary")
    result = Agent(openai_model).run_sync("hi")
    assert result.output == "Hello from the fake gateway."
    assert gateway.models() == ["primary", BACKUP]

    gateway.clear()
    claude_model = AnthropicModel(
        "claude-x",
        provider=AnthropicProvider(
            anthropic_client=anthropic_client(
                engine=deployment_engine, api_key="sk-ant-pa-0001", base_url=gateway.url
            )
        ),
    )
    gateway.script(ANTHROPIC.rate_limited(retry_after=3))
    result = Agent(claude_model).run_sync("hi")
    assert result.output == "Hello from the fake gateway."
    assert gateway.count() == 2
    assert testing.waits[-1] == 3.0
