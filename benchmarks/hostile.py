"""Worst cases of hostile input: wall times, measured here, never asserted in tests.

    python benchmarks/hostile.py            # every case (~1 minute)
    python benchmarks/hostile.py --quick    # one repeat
    python benchmarks/hostile.py --json     # the figures as JSON

For every place a server can put text (error message, code, type, param, a
nested object, a bare error string, plain text, HTML, an event stream, JSON
cut off, a header value), a 64 KiB payload shaped against each pattern that
reads server text (redaction, facts, HTML tags, salvage, wait hints) is
evaluated with the default policy and every text of the action is read
(``error``, ``remediation``, ``reasons``, ``explanation``), as the driver
does when it logs a give-up. The figure per place is the slowest shape.
Also: a layer overriding 4,000 rules by id, and 50,000 headers of one name.

``tests/test_hostile.py`` checks the same inputs for bounded *work* (what
each pattern is given to scan); this script is where time is measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import policyengine as pe

PAYLOAD = 64 * 1024

#: Shapes aimed at the patterns that read server text.
SHAPES: dict[str, str] = {
    "eyJ-": "eyJ-",  # JSON web tokens
    "eyJa.": "eyJabcde.",
    "sk-": "sk-",  # provider key prefixes
    "sk-a.": "sk-a.",
    "Bearer": "Bearer ",
    "api_key=": "api_key=",
    '"apiKey":"': '"apiKey":"',
    "key: ": "key: ",
    "provided:": "token provided: ",
    "AIza": "AIza",
    "url userinfo": "https://u:",
    "hex": "0123456789abcdef",
    "AKIA": "AKIA",
    "model": "model ",
    "digits": "1",
    "limit": "limit ",
    "<": "<",
    "<a": "<a",
    "try again in": "try again in 1",
    "1s": "1s",
    "spaces": " ",
    "letters": "a",
    "PEM": "-----BEGIN PRIVATE KEY-----",
}


def _error_body(field: str, text: str) -> bytes:
    error: dict[str, Any] = {"message": "m", "type": "t", "code": "c", "param": "p"}
    error[field] = text
    return json.dumps({"error": error}).encode()


def _fit(shape: str, room: int) -> str:
    return (shape * (room // len(shape) + 1))[:room]


def place(where: str, shape: str) -> pe.Response:
    """A 429 carrying ``shape`` repeated to fill ``PAYLOAD`` at ``where``."""
    room = PAYLOAD - 200
    text = _fit(shape, room)
    if where in ("message", "code", "type", "param"):
        return pe.Response(429, {}, _error_body(where, text)[:PAYLOAD])
    if where == "nested object":
        body = json.dumps({"error": {"message": {"detail": [text]}, "code": "c"}})
        return pe.Response(429, {}, body)
    if where == "error string":
        return pe.Response(429, {}, json.dumps({"error": text}))
    if where == "plain text":
        return pe.Response(429, {"content-type": "text/plain"}, text)
    if where == "HTML":
        return pe.Response(503, {}, f"<html><title>{text}</title></html>")
    if where == "event stream":
        line = json.dumps({"error": {"message": text, "type": "overloaded_error"}})
        return pe.Response(200, {}, f"event: error\ndata: {line}\n\n")
    if where == "cut-off JSON":
        return pe.Response(429, {}, '{"error": {"code": "rate_limit_exceeded", "message": "' + text)
    if where == "context-length message":  # its remediation reads the limit and the amount
        body = json.dumps({"error": {"message": text, "code": "context_length_exceeded"}})
        return pe.Response(400, {}, body)
    if where == "model message":  # its remediation reads the model from the message
        body = json.dumps({"error": {"message": text, "code": "model_not_found"}})
        return pe.Response(404, {}, body)
    if where == "Retry-After":
        return pe.Response(429, {"retry-after": text}, _error_body("message", "m"))
    if where == "other header":
        return pe.Response(429, {"x-ratelimit-reset-requests": text}, _error_body("message", "m"))
    raise ValueError(where)


PLACES = (
    "message",
    "code",
    "type",
    "param",
    "nested object",
    "error string",
    "plain text",
    "HTML",
    "event stream",
    "cut-off JSON",
    "Retry-After",
    "other header",
    "context-length message",
    "model message",
)


def read_all(action: pe.Action) -> int:
    """Read every text of ``action``, as a log line of a give-up does."""
    error = action.error
    size = len(action.remediation) + len(action.explanation) + sum(map(len, action.reasons))
    if error is not None:
        size += sum(len(x or "") for x in (error.message, error.code, error.type, error.param))
    return size


def timed(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def hostile_inputs(repeat: int) -> dict[str, tuple[float, str]]:
    engine = pe.Engine(pe.load_policy(env=False))
    worst: dict[str, tuple[float, str]] = {}
    for where in PLACES:
        for name, shape in SHAPES.items():
            response = place(where, shape)

            def run(response: pe.Response = response) -> None:
                read_all(engine.evaluate(response))

            seconds = timed(run, repeat)
            if seconds > worst.get(where, (-1.0, ""))[0]:
                worst[where] = (seconds, name)
    return worst


def merge_overrides(repeat: int, count: int = 4000) -> float:
    base = {"rules": [{"id": f"r{i}", "match": {"code": f"c{i}"}} for i in range(count)]}
    over = {
        "rules": [
            {"id": f"r{i}", "retryable": True, "backoff": {"initial": 2}} for i in range(count)
        ]
    }
    return timed(lambda: pe.load_policy(base, over, env=False, default=False), repeat)


def repeated_headers(repeat: int, count: int = 50_000) -> float:
    engine = pe.Engine(pe.load_policy(env=False))
    headers = [("retry-after", "1")] * count

    def run() -> None:
        read_all(engine.evaluate(pe.Response(429, headers, _error_body("message", "m"))))

    return timed(run, repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    worst = hostile_inputs(repeat)
    merge = merge_overrides(repeat)
    headers = repeated_headers(repeat)
    if args.json:
        figures = {where: {"ms": s * 1e3, "shape": shape} for where, (s, shape) in worst.items()}
        print(
            json.dumps(
                {
                    "hostile": figures,
                    "merge_4000_ids_ms": merge * 1e3,
                    "headers_50000_ms": headers * 1e3,
                },
                indent=2,
            )
        )
        return 0
    print(f"python {platform.python_version()} on {platform.machine()}, best of {repeat}\n")
    print("| input (64 KiB) | worst shape | evaluate + every text |")
    print("|---|---|---|")
    for where, (seconds, shape) in worst.items():
        print(f"| {where} | `{shape}` | {seconds * 1e3:.1f} ms |")
    print(f"| a layer overriding 4,000 rules by id | | {merge * 1e3:.1f} ms |")
    print(f"| 50,000 `Retry-After` headers | | {headers * 1e3:.1f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
