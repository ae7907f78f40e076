"""httpx (async) + policyengine: concurrent calls, each retried as the policy says.

Runs offline: it starts the fake gateway on 127.0.0.1 and scripts its errors.

    python examples/httpx_async.py
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx

import policyengine as pe
from policyengine.httpx import AsyncPolicyTransport
from policyengine.testing import FakeGateway, model_not_found, rate_limited, unavailable

POLICY = Path(__file__).with_name("deployment.toml")


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    engine = pe.Engine(pe.load_policy(POLICY))

    with FakeGateway() as gateway:
        gateway.script(rate_limited(retry_after=None, retry_after_ms=300), model="gpt-4o")
        gateway.script(unavailable(), model="claude-3-5-sonnet")
        gateway.script(model_not_found(), model="gpt-5-typo")

        transport = AsyncPolicyTransport(engine=engine)
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:

            async def ask(model: str) -> str:
                chat = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
                reply = await client.post(gateway.chat_url, json=chat)
                reply.raise_for_status()
                return str(reply.json()["model"])

            models = ["gpt-4o", "claude-3-5-sonnet", "gpt-5-typo"]
            answered = await asyncio.gather(*(ask(m) for m in models))
        for asked, got in zip(models, answered, strict=True):
            print(f"-> asked {asked}, answered by {got}")
        print(f"   {gateway.count()} requests in all")
        assert answered == ["gpt-4o", "gpt-4o-mini", "gpt-4o-mini"]
        assert gateway.count() == 6


if __name__ == "__main__":
    asyncio.run(main())
