"""LangChain and pydantic-ai + policyengine: their HTTP through the policy,
their own retries off.

Runs offline: it starts the fake gateway on 127.0.0.1 and scripts its errors.

    python examples/frameworks.py
"""

from __future__ import annotations

import logging

import httpx
from langchain_openai import ChatOpenAI
from pydantic_ai import Agent
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.providers.anthropic import AnthropicProvider

import policyengine as pe
from policyengine.anthropic import async_client
from policyengine.httpx import AsyncPolicyTransport, PolicyTransport
from policyengine.testing import ANTHROPIC, FakeGateway, rate_limited


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    driver = pe.Driver(pe.Engine())  # one governor for every call below

    with FakeGateway() as gateway:
        llm = ChatOpenAI(
            model="gpt-4o",
            api_key="sk-example-lc-0001",  # type: ignore[arg-type]
            base_url=gateway.base_url,
            max_retries=0,
            http_client=httpx.Client(transport=PolicyTransport(driver=driver)),
            http_async_client=httpx.AsyncClient(transport=AsyncPolicyTransport(driver=driver)),
        )
        gateway.script(rate_limited(retry_after=None, retry_after_ms=200))
        reply = llm.invoke("Hello")
        print(f"-> LangChain: {reply.content!r} after {gateway.count()} requests")
        assert gateway.count() == 2

        gateway.clear()
        claude = async_client(driver=driver, api_key="sk-ant-example-0001", base_url=gateway.url)
        model = AnthropicModel(
            "claude-haiku-4-5", provider=AnthropicProvider(anthropic_client=claude)
        )
        agent = Agent(model, model_settings={"max_tokens": 256})
        gateway.script(ANTHROPIC.rate_limited(retry_after=None, retry_after_ms=200))
        result = agent.run_sync("Hello")
        print(f"-> pydantic-ai: {result.output!r} after {gateway.count()} requests")
        assert gateway.count() == 2


if __name__ == "__main__":
    main()
