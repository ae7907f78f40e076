"""The OpenAI SDK + policyengine: the SDK's own retries off, the policy's on.

Runs offline: it starts the fake gateway on 127.0.0.1 and scripts its errors.

    python examples/openai_sdk.py
"""

from __future__ import annotations

import logging
from pathlib import Path

import openai

import policyengine as pe
from policyengine.openai import client
from policyengine.testing import FakeGateway, invalid_api_key, rate_limited, unavailable

POLICY = Path(__file__).with_name("deployment.toml")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    engine = pe.Engine(pe.load_policy(POLICY))

    with FakeGateway() as gateway:
        llm = client(engine=engine, api_key="sk-example-key-0001", base_url=gateway.base_url)
        print(f"SDK retries: {llm.max_retries} (the policy retries instead)")

        gateway.script(rate_limited(retry_after=None, retry_after_ms=200), unavailable())
        answer = llm.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hello"}]
        )
        print(f"-> {answer.choices[0].message.content!r} from {answer.model}")
        print(f"   the gateway saw models {gateway.models()}")
        assert answer.model == "gpt-4o-mini"
        assert gateway.count() == 3

        # Given up: the SDK raises its own error; the action says why.
        gateway.clear()
        gateway.script(invalid_api_key())
        try:
            llm.chat.completions.create(model="gpt-4o", messages=[])
        except openai.AuthenticationError as exc:
            action = exc.response.extensions["policyengine.action"]
            print(f"-> {type(exc).__name__} after {gateway.count()} request: {action.remediation}")
        assert gateway.count() == 1
        llm.close()


if __name__ == "__main__":
    main()
