"""The Groq SDK + policyengine: the SDK's own retries off, the policy's on.

Runs offline: it starts the fake gateway on 127.0.0.1 (Groq speaks OpenAI's
wire format, under /openai/v1) and scripts its errors.

    python examples/groq_sdk.py
"""

from __future__ import annotations

import logging

import policyengine as pe
from policyengine.groq import client
from policyengine.testing import FakeGateway, rate_limited


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")

    with FakeGateway() as gateway:
        llm = client(engine=pe.Engine(), api_key="gsk_example_0001", base_url=gateway.url)
        print(f"SDK retries: {llm.max_retries} (the policy retries instead)")

        gateway.script(rate_limited(retry_after=None, retry_after_ms=200))
        answer = llm.chat.completions.create(
            model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "Hello"}]
        )
        print(f"-> {answer.choices[0].message.content!r} after {gateway.count()} requests")
        assert gateway.count() == 2
        llm.close()


if __name__ == "__main__":
    main()
