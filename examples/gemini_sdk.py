"""Google's GenAI SDK (Gemini) + policyengine: the SDK's own retries off, the
policy's on, and a fallback that moves the model in the URL path.

Runs offline: it starts the fake gateway on 127.0.0.1, speaking Gemini's
generateContent, and scripts its errors.

    python examples/gemini_sdk.py
"""

from __future__ import annotations

import asyncio
import logging

import policyengine as pe
from policyengine.genai import client
from policyengine.testing import GEMINI, FakeGateway

# A deployment layer: an overloaded model (503 UNAVAILABLE) falls back.
LAYER = {
    "rules": [
        {"id": "overloaded-message", "action": "fallback", "fallback": ["gemini-2.5-flash-lite"]}
    ]
}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
    engine = pe.Engine(pe.load_policy(LAYER))

    with FakeGateway() as gateway:
        gemini = client(
            engine=engine, api_key="AIza-example-0001", http_options={"base_url": gateway.url}
        )

        gateway.script(GEMINI.unavailable(), model="gemini-2.5-flash")
        answer = gemini.models.generate_content(model="gemini-2.5-flash", contents="Hello")
        print(f"-> {answer.text!r} from {answer.model_version}")
        print(f"   the gateway saw {[r.path.split('/models/')[1] for r in gateway.received]}")
        assert answer.model_version == "gemini-2.5-flash-lite"

        # The async client (.aio) goes through the same policy and governor.
        gateway.clear()
        gateway.script(GEMINI.server_error())

        async def stream() -> str:
            chunks = await gemini.aio.models.generate_content_stream(
                model="gemini-2.5-flash-lite", contents="Hi"
            )
            return "".join([c.text or "" async for c in chunks])

        text = asyncio.run(stream())
        print(f"-> streamed {text!r} after {gateway.count()} requests")
        assert gateway.count() == 2
        gemini.close()


if __name__ == "__main__":
    main()
