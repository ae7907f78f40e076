"""requests + policyengine: retries, waits and model fallback as the policy says.

Runs offline: it starts the fake gateway on 127.0.0.1 and scripts its errors.

    python examples/requests_example.py
"""

from __future__ import annotations

import logging
from pathlib import Path

import requests

import policyengine as pe
from policyengine.requests import PolicyAdapter
from policyengine.testing import FakeGateway, invalid_api_key, rate_limited, unavailable

POLICY = Path(__file__).with_name("deployment.toml")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    engine = pe.Engine(pe.load_policy(POLICY))

    with FakeGateway() as gateway:
        session = requests.Session()
        session.mount("http://", PolicyAdapter(engine=engine))  # the five lines: this one does it
        chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}

        # 429 asking for 200 ms, then a 503: wait as asked, then fall back.
        gateway.script(rate_limited(retry_after=None, retry_after_ms=200), unavailable())
        reply = session.post(gateway.chat_url, json=chat, timeout=5)
        print(f"-> {reply.status_code}, answered by {reply.json()['model']}")
        print(f"   the gateway saw models {gateway.models()}")
        assert reply.ok
        assert reply.json()["model"] == "gpt-4o-mini"

        # A bad key is never retried: the 401 comes back at once, as requests gives it.
        gateway.clear()
        gateway.script(invalid_api_key())
        reply = session.post(
            gateway.chat_url, json=chat, headers={"Authorization": "Bearer sk-wrong-key-123"}
        )
        print(f"-> {reply.status_code} after {gateway.count()} request(s)")
        assert reply.status_code == 401
        assert gateway.count() == 1


if __name__ == "__main__":
    main()
