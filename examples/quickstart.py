"""Decide the responses of the gateway doc's error table with the default policy.

    python examples/quickstart.py

Runs offline: it builds the responses itself and prints, for each, what to do
next and why.
"""

from __future__ import annotations

import json
import random

import policyengine as pe


def body(message: str, type: str, code: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type, "code": code}}).encode()


CASES: list[tuple[str, object]] = [
    ("200 Success", pe.Response(200, {}, b'{"id": "chatcmpl-1", "choices": []}')),
    (
        "400 Bad Request",
        pe.Response(400, {}, body("'messages' is required", "invalid_request_error", None)),
    ),
    (
        "401 invalid_api_key",
        pe.Response(
            401,
            {},
            body(
                "Invalid API key provided: sk-nex-abc123def456.",
                "authentication_error",
                "invalid_api_key",
            ),
        ),
    ),
    ("403 Forbidden", pe.Response(403, {}, body("Not allowed", "permission_error", None))),
    (
        "404 model_not_found",
        pe.Response(
            404,
            {},
            body("Model 'gpt-5-turbo' not found", "invalid_request_error", "model_not_found"),
        ),
    ),
    (
        "429 rate_limit_exceeded",
        pe.Response(
            429,
            {"Retry-After": "2"},
            body("Rate limit exceeded", "requests", "rate_limit_exceeded"),
        ),
    ),
    (
        "429 insufficient_quota",
        pe.Response(
            429,
            {},
            body("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
        ),
    ),
    (
        "429 asking for an hour",
        pe.Response(
            429,
            {"Retry-After": "3600"},
            body("Rate limit exceeded", "requests", "rate_limit_exceeded"),
        ),
    ),
    (
        "400 context_length_exceeded",
        pe.Response(
            400,
            {},
            body(
                "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
            ),
        ),
    ),
    (
        "500 Internal Server Error",
        pe.Response(500, {}, body("The server had an error", "server_error", None)),
    ),
    (
        "502 from a proxy (HTML)",
        pe.Response(502, {}, b"<html><head><title>502 Bad Gateway</title></head></html>"),
    ),
    ("503 Upstream Unavailable", pe.Response(503, {}, b"")),
    ("read timeout (no response)", TimeoutError("timed out")),
]


def main() -> None:
    engine = pe.Engine(pe.load_policy(env=False), rng=random.Random(0))
    for title, response in CASES:
        action = engine.evaluate(response, attempt=1)
        delay = f" after {action.delay:.2f}s" if action.delay else ""
        print(f"{title}: {action.kind}{delay}  [{action.classification}, rule {action.rule_id}]")
        if action.remediation:
            print(f"    {action.remediation}")
        for reason in action.reasons:
            print(f"    - {reason}")


if __name__ == "__main__":
    main()
