"""The driver on its own: any function that returns a response (or raises),
retried as the policy says; testing mode shows the waits without sleeping.

Runs offline: it starts the fake gateway on 127.0.0.1 and scripts its errors.

    python examples/driver.py
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import policyengine as pe
from policyengine.testing import FakeGateway, rate_limited, testing_mode, unavailable

POLICY = Path(__file__).with_name("deployment.toml")


def main() -> None:
    driver = pe.Driver(pe.Engine(pe.load_policy(POLICY)))

    with FakeGateway() as gateway, testing_mode(seed=1) as mode:
        gateway.script(rate_limited(retry_after=20), unavailable())

        def ask(attempt: pe.Attempt) -> pe.Response:
            # Plain urllib: build the engine's view of each answer yourself.
            body = json.dumps({"model": attempt.model, "messages": []}).encode()
            request = urllib.request.Request(gateway.chat_url, body, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=5) as r:
                    return pe.Response(r.status, r.getheaders(), r.read(), "POST")
            except urllib.error.HTTPError as e:
                return pe.Response(e.code, e.headers.items(), e.read(), "POST")

        outcome = driver.run(ask, model="gpt-4o", method="POST")
        for d in outcome.history:
            print(
                f"attempt {d.attempt.number} ({d.attempt.model}): {d.action.kind}, "
                f"wait {d.wait:.2f}s - {d.action.explanation.splitlines()[-1]}"
            )
        print(f"waits recorded, not slept: {[round(w, 2) for w in mode.waits]}")
        assert outcome.ok
        assert outcome.model == "gpt-4o-mini"
        assert mode.waits[0] == 20.0


if __name__ == "__main__":
    main()
