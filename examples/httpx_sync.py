"""httpx (sync) + policyengine: a transport that follows the policy.

Runs offline: it starts the fake gateway on 127.0.0.1 and scripts its errors.

    python examples/httpx_sync.py
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

import policyengine as pe
from policyengine.httpx import PolicyTransport
from policyengine.testing import FakeGateway, bad_gateway_html, reset, slow

POLICY = Path(__file__).with_name("deployment.toml")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    engine = pe.Engine(pe.load_policy(POLICY))
    transport = PolicyTransport(engine=engine)

    with FakeGateway() as gateway, httpx.Client(transport=transport, timeout=0.5) as client:
        chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}

        # A proxy's HTML 502, then a connection reset mid-answer, then success.
        gateway.script(bad_gateway_html(), reset())
        reply = client.post(gateway.chat_url, json=chat, headers={"Idempotency-Key": "req-1"})
        print(f"-> {reply.status_code} after {gateway.count()} requests, models {gateway.models()}")
        keys = {r.header("Idempotency-Key") for r in gateway.received}
        print(f"   one Idempotency-Key for all attempts: {keys}")
        for decision in reply.extensions["policyengine.history"]:
            print(
                f"   attempt {decision.attempt.number}: {decision.action.kind}, "
                f"waited {decision.wait:.2f}s ({decision.action.rule_id})"
            )
        assert reply.status_code == 200
        assert keys == {"req-1"}

        # This deployment does not resend a POST whose answer timed out.
        gateway.clear()
        gateway.script(slow(5.0))
        try:
            client.post(gateway.chat_url, json=chat)
        except httpx.ReadTimeout as exc:
            print(
                f"-> {type(exc).__name__} after {gateway.count()} request: {getattr(exc, '__notes__', [''])[-1]}"
            )
        assert gateway.count() == 1

        # One call may be tighter than the policy: extensions["policyengine"].
        gateway.clear()
        gateway.script(bad_gateway_html())
        reply = client.post(
            gateway.chat_url, json=chat, extensions={"policyengine": {"max_attempts": 1}}
        )
        print(f"-> {reply.status_code} after {gateway.count()} request (max_attempts = 1)")
        assert reply.status_code == 502


if __name__ == "__main__":
    main()
