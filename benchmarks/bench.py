"""policyengine benchmarks: ratios against baselines measured in the same run.

    python benchmarks/bench.py            # full run (~1 minute)
    python benchmarks/bench.py --quick    # fewer repeats

Absolute times drift on shared machines; the ratios are what the targets are
about. Each figure is the best of several repeats (the least disturbed run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
import timeit
from collections.abc import Callable, Mapping
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
# The 21 headers OpenAI sends with a 429 (values of a real reply, ids changed).
HEADERS_429_LIST = [
    ("Date", "Mon, 30 Nov 2026 02:49:33 GMT"),
    ("Content-Type", "application/json; charset=utf-8"),
    ("Content-Length", str(len(BODY_429))),
    ("Connection", "keep-alive"),
    ("vary", "Origin"),
    ("x-request-id", "req_6f1c0a7e2d3b4c5d9e8f7a6b5c4d3e2f"),
    ("openai-organization", "org-abc123"),
    ("openai-processing-ms", "14"),
    ("openai-version", "2020-10-01"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
    ("x-ratelimit-limit-requests", "500"),
    ("x-ratelimit-limit-tokens", "30000"),
    ("x-ratelimit-remaining-requests", "0"),
    ("x-ratelimit-remaining-tokens", "29640"),
    ("x-ratelimit-reset-requests", "120ms"),
    ("x-ratelimit-reset-tokens", "720ms"),
    ("Retry-After", "2"),
    ("X-Content-Type-Options", "nosniff"),
    ("Server", "cloudflare"),
    ("CF-RAY", "8e6f1c0a7e2d3b4c-AMS"),
    ("alt-svc", 'h3=":443"; ma=86400'),
]
HEADERS_429 = dict(HEADERS_429_LIST)
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
    status: int, headers: Mapping[str, str], body: bytes, attempt: int = 1
) -> tuple[str, float]:
    """json-parse the error body, look status and code up in dicts, jittered backoff.

    Its 2xx path looks for an error object in the body first, as every
    decider must (an error can come with a 200), before calling it a success."""
    if 200 <= status < 300 and body.find(b'"error"', 0, 65536) < 0:
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


def hand_written_on(response: Any) -> tuple[str, float]:
    """(a) on a requests or httpx response object: the same, reading its
    ``status_code``, ``content`` and ``headers`` (case-insensitive lookups)."""
    return hand_written(response.status_code, response.headers, response.content)


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


# --- Client response objects ---------------------------------------------------------------


def requests_response(status: int, headers: list[tuple[str, str]], body: bytes) -> Any:
    """A ``requests.Response`` as a session hands it back (headers in its
    case-insensitive dict, the body read, the prepared request attached)."""
    import requests
    from requests.structures import CaseInsensitiveDict

    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(headers)
    response._content = body
    response.request = requests.Request(
        "POST", "https://api.openai.com/v1/chat/completions"
    ).prepare()
    response.url = response.request.url or ""
    return response


def httpx_response(status: int, headers: list[tuple[str, str]], body: bytes) -> Any:
    import httpx

    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
    return httpx.Response(status, headers=headers, content=body, request=request)


# --- Measuring -----------------------------------------------------------------------------


def best_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def _subprocess_env() -> dict[str, str]:
    # Bytecode is cached as it is for users (a shell may turn that off).
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def load_cold_ms(runs: int) -> float:
    """The first ``load_policy()`` in a fresh process, its modules already
    imported (import time is measured apart), best of ``runs``."""
    code = (
        "import time, policyengine as pe; load = pe.load_policy; t = time.perf_counter();"
        " load(env=False); print((time.perf_counter() - t) * 1e3)"
    )
    env = _subprocess_env()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return min(
        float(subprocess.check_output([sys.executable, "-c", code], text=True, env=env))
        for _ in range(runs)
    )


def import_ms(module: str, runs: int) -> tuple[float, bool]:
    """``python -X importtime -c "import <module>"``: the cumulative time of
    the module's own line (best of ``runs``), and whether asyncio was imported."""
    env = _subprocess_env()
    code = f"import {module}, sys; print('asyncio' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    best, asyncio_seen = math.inf, False
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        asyncio_seen = asyncio_seen or done.stdout.strip() == "True"
        for line in done.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() == module:
                best = min(best, int(parts[1]) / 1e3)
    return best, asyncio_seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--stdlib-json",
        action="store_true",
        help="decode error bodies with the stdlib alone, even with the fast extra installed",
    )
    args = parser.parse_args()
    if args.stdlib_json:
        from policyengine import _json

        _json._fast = None
    number, repeat = (5_000, 5) if args.quick else (20_000, 9)
    runs = 3 if args.quick else 9

    default = pe.load_policy(env=False)
    engine = pe.Engine(default, rng=random.Random(1))
    big = pe.Engine(big_policy(), rng=random.Random(1))
    r429 = pe.Response(429, HEADERS_429_LIST, BODY_429, method="POST")
    r200 = pe.Response(200, HEADERS_200, BODY_200, method="POST")
    rq429 = requests_response(429, HEADERS_429_LIST, BODY_429)
    hx429 = httpx_response(429, HEADERS_429_LIST, BODY_429)
    rq200 = requests_response(200, list(HEADERS_200.items()), BODY_200)
    for e in (engine, big):
        for r in (r429, rq429, hx429):
            action = e.evaluate(r)
            assert (action.kind, action.delay) == (pe.ActionKind.RETRY, 2.0), action
        assert e.evaluate(r200).kind is pe.ActionKind.SUCCEED
        assert e.evaluate(rq200).kind is pe.ActionKind.SUCCEED
    assert hand_written(429, HEADERS_429, BODY_429) == ("retry", 2.0)
    assert hand_written_on(rq429) == hand_written_on(hx429) == ("retry", 2.0)
    mixed = {
        "400 context length": pe.Response(
            400, {}, b'{"error": {"message": "x", "type": "t", "code": "context_length_exceeded"}}'
        ),
        "401 bad key": pe.Response(
            401,
            {},
            b'{"error": {"message": "x", "type": "authentication_error", '
            b'"code": "invalid_api_key"}}',
        ),
        "503 HTML": pe.Response(503, {}, b"<html><title>503 Service Unavailable</title></html>"),
        "500 empty": pe.Response(500, {}, b""),
        "529 overloaded": pe.Response(
            529, {}, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
        ),
        "429": r429,
        "2xx": r200,
    }

    u3 = urllib3_decider()
    figures: dict[str, float] = {}
    # Contenders on one input are measured one after the other, so that drift
    # hits them alike.
    figures["rq_a_429_us"] = best_us(lambda: hand_written_on(rq429), number, repeat)
    figures["rq_engine_429_us"] = best_us(lambda: engine.evaluate(rq429), number, repeat)
    figures["hx_a_429_us"] = best_us(lambda: hand_written_on(hx429), number, repeat)
    figures["hx_engine_429_us"] = best_us(lambda: engine.evaluate(hx429), number, repeat)
    figures["a_429_us"] = best_us(lambda: hand_written(429, HEADERS_429, BODY_429), number, repeat)
    figures["engine_429_us"] = best_us(lambda: engine.evaluate(r429), number, repeat)
    figures["b_429_us"] = best_us(u3, number, repeat)
    figures["a_200_us"] = best_us(lambda: hand_written(200, HEADERS_200, BODY_200), number, repeat)
    figures["engine_200_us"] = best_us(lambda: engine.evaluate(r200), number, repeat)
    figures["rq_a_200_us"] = best_us(lambda: hand_written_on(rq200), number, repeat)
    figures["rq_engine_200_us"] = best_us(lambda: engine.evaluate(rq200), number, repeat)
    for name, r in mixed.items():
        figures[f"default {name}_us"] = best_us(lambda r=r: engine.evaluate(r), number, repeat)
        figures[f"big {name}_us"] = best_us(lambda r=r: big.evaluate(r), number, repeat)
    loads = [0.0] * 10
    for i in range(10):
        t = time.perf_counter()
        pe.load_policy(env=False)
        loads[i] = (time.perf_counter() - t) * 1e3
    figures["load_warm_ms"] = min(loads)
    figures["load_cold_ms"] = load_cold_ms(runs)
    figures["import_ms"], asyncio_imported = import_ms("policyengine", runs)
    figures["import_asyncio_ms"], _ = import_ms("asyncio", runs)
    figures["import_attrs_ms"], _ = import_ms("attrs", runs)

    rows = [
        (
            "429, requests.Response, 21 headers, vs (a) on it",
            "rq_engine_429_us",
            "rq_a_429_us",
            2.0,
        ),
        ("429, httpx.Response, 21 headers, vs (a) on it", "hx_engine_429_us", "hx_a_429_us", 2.0),
        ("429, prepared Response, vs (a)", "engine_429_us", "a_429_us", 1.6),
        ("429, prepared Response, vs (b) urllib3 Retry", "engine_429_us", "b_429_us", 0.6),
        ("2xx, prepared Response, vs (a) with its body scan", "engine_200_us", "a_200_us", 1.5),
        ("2xx, requests.Response, vs (a) on it", "rq_engine_200_us", "rq_a_200_us", 1.5),
    ] + [
        (f"1,000 rules vs default: {name}", f"big {name}_us", f"default {name}_us", 1.2)
        for name in mixed
    ]
    ratios = {name: figures[ours] / figures[theirs] for name, ours, theirs, _ in rows}
    if args.json:
        print(
            json.dumps(
                {"figures": figures, "ratios": ratios, "asyncio_imported": asyncio_imported},
                indent=2,
            )
        )
        return 0
    try:
        from policyengine import _json

        parser_name = "stdlib" if _json.fast_decoder() is None else "msgspec, then stdlib"
    except ImportError:  # the code before issue 12
        parser_name = "stdlib"
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{number} calls x {repeat} repeats, best repeat; processes best of {runs}; "
        f"JSON: {parser_name}\n"
    )
    print("| measure | engine | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for name, ours, theirs, target in rows:
        ratio = ratios[name]
        mark = "ok" if ratio <= target else "MISSED"
        print(
            f"| {name} | {figures[ours]:.2f} us | {figures[theirs]:.2f} us | {ratio:.2f}x "
            f"| <= {target}x {mark} |"
        )
    mark = "ok" if figures["import_ms"] <= 30 and not asyncio_imported else "MISSED"
    print(
        f"| `import policyengine` (-X importtime, cumulative) | {figures['import_ms']:.1f} ms "
        f"| asyncio {figures['import_asyncio_ms']:.1f} ms, attrs {figures['import_attrs_ms']:.1f} ms "
        f"| asyncio imported: {'yes' if asyncio_imported else 'no'} | <= 30 ms, no asyncio {mark} |"
    )
    mark = "ok" if figures["load_cold_ms"] <= 20 else "MISSED"
    print(
        f"| load default policy (first in a fresh process / warm) | {figures['load_cold_ms']:.1f} ms "
        f"/ {figures['load_warm_ms']:.1f} ms | | | <= 20 ms cold {mark} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
