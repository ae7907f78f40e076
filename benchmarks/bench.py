"""policyengine benchmarks: ratios against baselines measured in the same run.

    python benchmarks/bench.py            # full run (~1 minute)
    python benchmarks/bench.py --quick    # fewer repeats

Absolute times drift on shared machines; the ratios are what the targets are
about. Each figure is the best of several repeats (the least disturbed run).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

import policyengine as pe

BODY_429 = json.dumps(
    {
        "error": {
            "message": "Rate limit reached for gpt-4o in organization org-abc on requests per min "
            "(RPM): Limit 500, Used 500, Requested 1.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
).encode()
HEADERS_429 = {
    "Content-Type": "application/json",
    "Retry-After": "2",
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "0",
    "x-request-id": "req_123",
}
BODY_200 = json.dumps(
    {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1764072000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! How can I help you today? I can answer "
                    "questions, write code, or explain errors.",
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 24, "total_tokens": 33},
    }
).encode()
HEADERS_200 = {"Content-Type": "application/json", "x-request-id": "req_124"}

# --- Baseline (a): what apps hand-write ----------------------------------------------

RETRYABLE_STATUS = {
    408: True,
    409: True,
    429: True,
    500: True,
    502: True,
    503: True,
    504: True,
    529: True,
}
CODE_RETRYABLE = {
    "rate_limit_exceeded": True,
    "invalid_api_key": False,
    "insufficient_quota": False,
    "model_not_found": False,
    "context_length_exceeded": False,
}
_rng = random.Random(1)


def hand_written(
    status: int, headers: dict[str, str], body: bytes, attempt: int = 1
) -> tuple[str, float]:
    """json-parse the error body, look status and code up in dicts, jittered backoff."""
    if 200 <= status < 300:
        return "succeed", 0.0
    try:
        error = json.loads(body).get("error") or {}
    except ValueError:
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    retry = CODE_RETRYABLE.get(code, RETRYABLE_STATUS.get(status, False))
    if not retry:
        return "fail", 0.0
    retry_after = headers.get("Retry-After")
    if retry_after is not None:
        try:
            return "retry", float(retry_after)
        except ValueError:
            pass
    delay = min(30.0, 0.5 * 2 ** (attempt - 1))
    return "retry", delay / 2 + _rng.uniform(0, delay / 2)


# --- Baseline (b): urllib3's Retry deciding the same response ----------------------------


def urllib3_decider() -> Callable[[], Any]:
    from urllib3 import HTTPResponse
    from urllib3.util.retry import Retry

    retry = Retry(
        total=5,
        backoff_factor=0.5,
        status_forcelist=[429, 500, 502, 503, 504],
        allowed_methods=None,
        respect_retry_after_header=True,
    )
    response = HTTPResponse(body=BODY_429, headers=HEADERS_429, status=429, preload_content=True)

    def decide() -> Any:
        if retry.is_retry("POST", response.status, has_retry_after=True):
            after = retry.increment("POST", "/v1/chat/completions", response=response)
            return after.get_retry_after(response) or after.get_backoff_time()
        return None

    return decide


# --- A policy of 1,000 rules ---------------------------------------------------------------


def big_policy() -> pe.Policy:
    rules: list[dict[str, Any]] = []
    for i in range(400):
        rules.append(
            {
                "id": f"code-{i}",
                "match": {"code": f"vendor_code_{i}"},
                "classification": "bad_request",
            }
        )
    for i in range(300):
        rules.append(
            {
                "id": f"type-{i}",
                "match": {"type": f"vendor_type_{i}"},
                "classification": "server_error",
                "retryable": True,
                "action": "retry",
            }
        )
    for i in range(290):
        rules.append(
            {
                "id": f"status-{i}",
                "match": {"status": 100 + i, "headers": {f"x-vendor-{i}": True}},
                "classification": "unknown",
            }
        )
    for i in range(10):
        rules.append(
            {
                "id": f"message-{i}",
                "match": {"message": f"vendor message {i}"},
                "classification": "bad_request",
            }
        )
    policy = pe.load_policy({"rules": rules}, env=False)
    assert len(policy.rules) >= 1000
    return policy


# --- Measuring -----------------------------------------------------------------------------


def best_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def load_cold_ms() -> float:
    code = (
        "import time, policyengine as pe; t = time.perf_counter(); pe.load_policy(env=False);"
        " print((time.perf_counter() - t) * 1e3)"
    )
    runs = [
        float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(3)
    ]
    return min(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    number, repeat = (5_000, 5) if args.quick else (20_000, 9)

    default = pe.load_policy(env=False)
    engine = pe.Engine(default, rng=random.Random(1))
    big = pe.Engine(big_policy(), rng=random.Random(1))
    r429 = pe.Response(429, HEADERS_429, BODY_429, method="POST")
    r200 = pe.Response(200, HEADERS_200, BODY_200, method="POST")
    assert engine.evaluate(r429).delay == 2.0
    assert big.evaluate(r429).delay == 2.0
    assert hand_written(429, HEADERS_429, BODY_429) == ("retry", 2.0)
    mixed = [
        pe.Response(s, {}, b)
        for s, b in [
            (400, b'{"error": {"message": "x", "type": "t", "code": "context_length_exceeded"}}'),
            (
                401,
                b'{"error": {"message": "x", "type": "authentication_error", '
                b'"code": "invalid_api_key"}}',
            ),
            (503, b"<html><title>503 Service Unavailable</title></html>"),
            (500, b""),
            (529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'),
        ]
    ] + [r429, r200]

    def each(e: pe.Engine) -> Callable[[], None]:
        def run() -> None:
            for r in mixed:
                e.evaluate(r)

        return run

    u3 = urllib3_decider()
    figures: dict[str, float] = {}
    # Interleave the contenders so that drift hits them alike.
    figures["a_429_us"] = best_us(lambda: hand_written(429, HEADERS_429, BODY_429), number, repeat)
    figures["engine_429_us"] = best_us(lambda: engine.evaluate(r429), number, repeat)
    figures["b_429_us"] = best_us(u3, number, repeat)
    figures["a_200_us"] = best_us(lambda: hand_written(200, HEADERS_200, BODY_200), number, repeat)
    figures["engine_200_us"] = best_us(lambda: engine.evaluate(r200), number, repeat)
    figures["default_mixed_us"] = best_us(each(engine), number // 5, repeat)
    figures["big_mixed_us"] = best_us(each(big), number // 5, repeat)
    figures["default_429_again_us"] = best_us(lambda: engine.evaluate(r429), number, repeat)
    figures["big_429_us"] = best_us(lambda: big.evaluate(r429), number, repeat)
    t0 = time.perf_counter()
    loads = [0.0] * 10
    for i in range(10):
        t = time.perf_counter()
        pe.load_policy(env=False)
        loads[i] = (time.perf_counter() - t) * 1e3
    figures["load_warm_ms"] = min(loads)
    figures["load_cold_ms"] = load_cold_ms()
    del t0

    ratios = {
        "429 vs (a) hand-written": figures["engine_429_us"] / figures["a_429_us"],
        "429 vs (b) urllib3 Retry": figures["engine_429_us"] / figures["b_429_us"],
        "2xx vs (a) 2xx path": figures["engine_200_us"] / figures["a_200_us"],
        "1,000 rules vs default (429)": figures["big_429_us"] / figures["default_429_again_us"],
        "1,000 rules vs default (mixed)": figures["big_mixed_us"] / figures["default_mixed_us"],
    }
    targets = {
        "429 vs (a) hand-written": 1.3,
        "429 vs (b) urllib3 Retry": 0.5,
        "2xx vs (a) 2xx path": 3.0,
        "1,000 rules vs default (429)": 1.2,
        "1,000 rules vs default (mixed)": 1.2,
    }
    if args.json:
        print(json.dumps({"figures": figures, "ratios": ratios}, indent=2))
        return 0
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{number} calls x {repeat} repeats, best repeat\n"
    )
    print("| measure | engine | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    rows = [
        ("429 vs (a) hand-written", "engine_429_us", "a_429_us"),
        ("429 vs (b) urllib3 Retry", "engine_429_us", "b_429_us"),
        ("2xx vs (a) 2xx path", "engine_200_us", "a_200_us"),
        ("1,000 rules vs default (429)", "big_429_us", "default_429_again_us"),
        ("1,000 rules vs default (mixed)", "big_mixed_us", "default_mixed_us"),
    ]
    for name, ours, theirs in rows:
        ratio, target = ratios[name], targets[name]
        mark = "ok" if ratio <= target else "MISSED"
        print(
            f"| {name} | {figures[ours]:.2f} us | {figures[theirs]:.2f} us | {ratio:.2f}x "
            f"| <= {target}x {mark} |"
        )
    print(
        f"| load default policy (warm / cold process) | {figures['load_warm_ms']:.1f} ms / "
        f"{figures['load_cold_ms']:.1f} ms | | | <= 20 ms |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
