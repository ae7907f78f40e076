"""Streamed chat completions (server-sent events) with the OpenAI SDK + policyengine.

An error event first is retried before you see a byte; an error after the
answer has started raises ``pe.StreamInterrupted`` with the policy's action,
and ``pe.restarting`` starts the answer over when you accept it.

Runs offline: it starts the fake gateway on 127.0.0.1 and scripts its streams.

    python examples/streaming.py
"""

from __future__ import annotations

from typing import Any

import policyengine as pe
from policyengine.openai import client
from policyengine.testing import FakeGateway, streamed, testing_mode

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]


def text_of(chunk: Any) -> str:
    return "".join(choice.delta.content or "" for choice in chunk.choices)


def main() -> None:
    # Testing mode: the policy's waits are recorded, not slept.
    with FakeGateway() as gateway, testing_mode(seed=1) as mode:
        llm = client(engine=pe.Engine(), api_key="sk-example-key-0001", base_url=gateway.base_url)

        # Anthropic-style overload as the first event of a 200 stream: retried unseen.
        gateway.script(streamed(error_after=0), streamed("Hello there, how can I help?"))
        answer = llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        text = "".join(text_of(chunk) for chunk in answer)
        print(f"-> {text!r} after {gateway.count()} requests (waited {mode.waits[0]:.2f}s)")
        assert (gateway.count(), text) == (2, "Hello there, how can I help?")

        # An error after three chunks: what was shown cannot be taken back.
        gateway.clear()
        gateway.script(streamed("Hello there, how can I help?", error_after=3))
        shown = ""
        cut: pe.StreamInterrupted | None = None
        try:
            for chunk in llm.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            ):
                shown += text_of(chunk)
        except pe.StreamInterrupted as stop:
            print(f"-> cut off after {stop.events} chunks ({shown!r}): {stop.action.remediation}")
            cut = stop
        assert cut is not None
        assert (cut.events, cut.action.classification) == (3, "overloaded")

        # Opt in to starting over: forget what was shown, and the policy retries.
        gateway.clear()
        gateway.script(streamed("Hello there, how can I help?", error_after=3), streamed("Hi!"))
        screen: list[str] = []

        def start(attempt: pe.Attempt) -> Any:
            return llm.chat.completions.create(model=attempt.model, messages=MESSAGES, stream=True)

        def accept(stop: pe.StreamInterrupted) -> bool:
            screen.clear()
            return True

        for chunk in pe.restarting(start, model="gpt-4o", accept=accept):
            screen.append(text_of(chunk))
        print(f"-> {''.join(screen)!r} after a restart ({gateway.count()} requests)")
        assert ("".join(screen), gateway.count()) == ("Hi!", 2)
        llm.close()


if __name__ == "__main__":
    main()
