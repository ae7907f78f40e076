"""aiohttp + policyengine: a client middleware that follows the policy.

Runs offline: it starts the fake gateway on 127.0.0.1 and scripts its errors.

    python examples/aiohttp_example.py
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp

import policyengine as pe
from policyengine.aiohttp import PolicyMiddleware
from policyengine.testing import FakeGateway, context_length_exceeded, reset, unavailable

POLICY = Path(__file__).with_name("deployment.toml")


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    engine = pe.Engine(pe.load_policy(POLICY))

    with FakeGateway() as gateway:
        middleware = PolicyMiddleware(engine=engine)
        timeout = aiohttp.ClientTimeout(sock_read=2)  # per attempt; total= spans retries
        async with aiohttp.ClientSession(middlewares=(middleware,), timeout=timeout) as session:
            chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}

            gateway.script(reset(), unavailable())
            async with session.post(gateway.chat_url, json=chat) as reply:
                data = await reply.json()
            print(f"-> {reply.status}, answered by {data['model']}; models {gateway.models()}")
            assert reply.status == 200
            assert data["model"] == "gpt-4o-mini"

            # Too long an input is not retried: fix the request instead.
            gateway.clear()
            gateway.script(context_length_exceeded(limit=8192, requested=9000))
            async with session.post(gateway.chat_url, json=chat) as reply:
                error = (await reply.json())["error"]
            print(f"-> {reply.status} {error['code']} after {gateway.count()} request")
            assert reply.status == 400
            assert gateway.count() == 1


if __name__ == "__main__":
    asyncio.run(main())
