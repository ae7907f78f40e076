"""The Anthropic SDK + policyengine: the SDK's own retries off, the policy's on.

Runs offline: it starts the fake gateway on 127.0.0.1, speaking Anthropic's
Messages API, and scripts its errors.

    python examples/anthropic_sdk.py
"""

from __future__ import annotations

import logging

import anthropic

import policyengine as pe
from policyengine.anthropic import client
from policyengine.testing import ANTHROPIC, FakeGateway

# A deployment layer: an overloaded Claude (529) falls back to a smaller one.
LAYER = {
    "rules": [{"id": "overloaded-message", "action": "fallback", "fallback": ["claude-haiku-4-5"]}]
}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    engine = pe.Engine(pe.load_policy(LAYER))

    with FakeGateway() as gateway:
        claude = client(engine=engine, api_key="sk-ant-example-0001", base_url=gateway.url)
        print(f"SDK retries: {claude.max_retries} (the policy retries instead)")

        gateway.script(ANTHROPIC.overloaded(), model="claude-sonnet-5-5")
        message = claude.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=64,
            messages=[{"role": "user", "content": "Hello"}],
        )
        print(f"-> {message.content[0].text!r} from {message.model}")  # type: ignore[union-attr]
        print(f"   the gateway saw models {gateway.models()}")
        assert message.model == "claude-haiku-4-5"

        # A stream whose first event is `event: error` is retried unseen.
        gateway.clear()
        gateway.script(ANTHROPIC.streamed(error_after=0), ANTHROPIC.streamed("Hi there."))
        with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            text = "".join(stream.text_stream)
        print(f"-> streamed {text!r} after {gateway.count()} requests")
        assert (text, gateway.count()) == ("Hi there.", 2)

        # Given up: the SDK raises its own error; the action says why.
        gateway.clear()
        gateway.script(ANTHROPIC.quota_exhausted())
        try:
            claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[])
        except anthropic.BadRequestError as exc:
            action = exc.response.extensions["policyengine.action"]
            print(f"-> {type(exc).__name__} after {gateway.count()} request: {action.remediation}")
        assert gateway.count() == 1
        claude.close()


if __name__ == "__main__":
    main()
