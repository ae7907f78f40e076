"""The loopback server of benchmarks/goodput.py: an OpenAI-compatible
``POST /v1/chat/completions`` (and Anthropic's ``POST /v1/messages``) that
plays one scenario and counts every request.

Scenarios (``SCENARIOS``):

- ``ratelimit``: a token bucket of R requests a second holding at most R
  tokens (a burst of one second's worth), full at the start. A request that
  finds a token gets a 200 chat completion; one that finds none gets a 429
  ``rate_limit_exceeded`` with ``Retry-After`` (whole seconds, rounded up, as
  real servers send it) and ``retry-after-ms``, both the time until the next
  token. Every reply, 200 or 429, carries ``x-ratelimit-limit-requests`` (R,
  the bucket's size), ``x-ratelimit-remaining-requests`` (whole tokens left)
  and ``x-ratelimit-reset-requests`` (a Go duration, ``1s`` / ``250ms``: the
  time until the bucket is full again). These describe the bucket the server
  really enforces: per second, where OpenAI's limits are per minute.
- ``ratelimit-noretryafter``: the same, without ``Retry-After`` and
  ``retry-after-ms`` on the 429.
- ``brownout``: 503 ``server_error`` for T seconds from the first request, then 200.
- ``outage``: 503 ``server_error`` always.
- ``quota``: 429 ``insufficient_quota`` always, with no wait hint (OpenAI sends none).

The 429 message names the limit but not the wait ("Please try again in ..."
is left out), so that the headers are the only wait hints a client gets.

Header dialects (``HEADER_DIALECTS``, ``Wire``): the same bucket described
as one provider describes its budget, with that provider's error bodies
(``--headers`` of the harness; the scenarios are unchanged):

- ``openai``: as above, the default.
- ``anthropic``: ``anthropic-ratelimit-requests-limit`` / ``-remaining`` /
  ``-reset``, the reset the RFC 3339 time when the bucket is full again, in
  whole seconds rounded up (as Anthropic sends it); ``retry-after`` whole
  seconds on a 429. Bodies ``{"type": "error", "error": {"type", "message"}}``:
  429 ``rate_limit_error``, 529 ``overloaded_error`` for the brownout and the
  outage, 400 ``invalid_request_error`` "Your credit balance is too low" for
  the quota (Anthropic sends neither a 402 nor a 429 for it).
- ``ietf``: ``RateLimit-Policy: "default";q=R;w=1`` and
  ``RateLimit: "default";r=REMAINING;t=SECONDS`` (draft-ietf-httpapi-
  ratelimit-headers -08 on; ``t`` whole seconds, rounded up, until full),
  ``Retry-After`` on a 429; OpenAI's bodies (a generic gateway).
- ``openrouter``: ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``, the
  reset the epoch milliseconds when the bucket is full; ``Retry-After`` on a
  429. Bodies ``{"error": {"code": STATUS, "message", "metadata"}}``: the
  429's metadata repeats the rate-limit headers (as OpenRouter's do), 402
  "Insufficient credits" for the quota, 503 for the brownout and outage.
- ``none``: no budget headers at all; ``Retry-After`` on a 429 only.

The server is a ``ThreadingMixIn`` ``HTTPServer`` (a thread per connection,
listen backlog 1,024, HTTP/1.1 keep-alive, ``Content-Length`` on every reply,
no Nagle delay); it never closes a connection itself. On a shared 2-core
machine it answered 900-1,300 requests a second to 20-40 httpx threads in
another process, several times the rates the benchmark makes.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import math
import socketserver
import threading
import time
from typing import Any, NamedTuple

__all__ = [
    "HEADER_DIALECTS",
    "SCENARIOS",
    "Counts",
    "GoodputServer",
    "Hit",
    "Scenario",
    "TokenBucket",
    "Wire",
    "go_duration",
]

#: Every scenario, in the order they are reported.
SCENARIOS = ("ratelimit", "ratelimit-noretryafter", "brownout", "outage", "quota")

#: How the bucket is described, in the order they are reported (``Wire``).
HEADER_DIALECTS = ("openai", "anthropic", "ietf", "openrouter", "none")

#: Statuses counted as rejected: the server refused the work (529: Anthropic's overloaded).
REJECTED = frozenset({429, 500, 502, 503, 504, 529})


class Reply(NamedTuple):
    """A reply to send."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Hit(NamedTuple):
    """One request the server received."""

    at: float  # time.monotonic() when it was answered
    status: int


class Counts(NamedTuple):
    """Requests received, by outcome."""

    total: int
    accepted: int  # 2xx
    rejected: int  # 429 and 5xx


def go_duration(seconds: float) -> str:
    """A duration as Go prints it and OpenAI sends it: ``1s``, ``250ms``,
    ``1.5s``, ``6m0s``. Rounded up to the millisecond, so that a client that
    believes it never comes back too early."""
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class TokenBucket:
    """``rate`` tokens a second, holding at most ``rate`` (one second's worth).

    Not thread-safe: the server calls it under its lock.
    """

    def __init__(self, rate: float, now: float) -> None:
        if rate < 1:
            raise ValueError(f"rate must be >= 1 request a second, got {rate}")
        self.rate = rate
        self.capacity = rate
        self.tokens = rate  # full at the start
        self._at = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self._at) * self.rate)
        self._at = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    @property
    def remaining(self) -> int:
        """Whole tokens left."""
        return math.floor(self.tokens)

    @property
    def until_next(self) -> float:
        """Seconds until one whole token is there."""
        return max(0.0, (1 - self.tokens) / self.rate)

    @property
    def until_full(self) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.tokens) / self.rate)


def _error(message: str, type_: str, code: str | None) -> bytes:
    error = {"message": message, "type": type_, "param": None, "code": code}
    return json.dumps({"error": error}).encode()


_UNAVAILABLE = _error(
    "The server is currently overloaded with other requests. Sorry about that! "
    "You can retry your request.",
    "server_error",
    None,
)
_QUOTA = _error(
    "You exceeded your current quota, please check your plan and billing details. For "
    "more information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    "insufficient_quota",
    "insufficient_quota",
)
_NOT_FOUND = _error("Unknown request URL.", "invalid_request_error", "unknown_url")


def _rate_limited(rate: float) -> bytes:
    return _error(
        f"Rate limit reached for requests in organization org-goodput on requests per "
        f"second (RPS): Limit {rate:g}, Used {rate:g}, Requested 1.",
        "requests",
        "rate_limit_exceeded",
    )


def _completion(model: str, number: int) -> bytes:
    return json.dumps(
        {
            "id": f"chatcmpl-goodput{number:08d}",
            "object": "chat.completion",
            "created": 1_764_072_000,
            "model": model,
            "system_fingerprint": "fp_goodput",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Hello! How can I help you today?",
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20},
        }
    ).encode()


def _message(model: str, number: int) -> bytes:
    """An Anthropic Messages API answer (``POST /v1/messages``)."""
    return json.dumps(
        {
            "id": f"msg_goodput{number:08d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 11, "output_tokens": 9},
        }
    ).encode()


def _model_of(body: bytes) -> str:
    try:
        model = json.loads(body).get("model")
    except Exception:
        return "unknown"
    return model if isinstance(model, str) else "unknown"


def _ceil(seconds: float) -> int:
    """Whole seconds, rounded up (a hair of float noise is not a second more)."""
    return max(0, math.ceil(seconds - 1e-6))


def _rfc3339(unix: float) -> str:
    """A Unix time as RFC 3339 UTC, whole seconds rounded up: ``2025-08-21T12:40:59Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_ceil(unix)))


def _anthropic_error(type_: str, message: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_goodput"}
    ).encode()


def _openrouter_error(status: int, message: str, metadata: Any = None) -> bytes:
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return json.dumps({"error": error, "user_id": "user_goodput"}).encode()


class Wire:
    """How one header dialect (``HEADER_DIALECTS``) describes the bucket and
    words its errors: the budget headers of a reply, the wait hints of a 429,
    and the error replies.

    Args:
        dialect: One of ``HEADER_DIALECTS``.
        rate: R, for the messages.
        wall: The Unix clock (``time.time``), for resets given as times.

    Raises:
        ValueError: An unknown dialect.
    """

    def __init__(self, dialect: str, rate: float, wall: Any = time.time) -> None:
        if dialect not in HEADER_DIALECTS:
            raise ValueError(
                f"unknown header dialect {dialect!r}; choose from {', '.join(HEADER_DIALECTS)}"
            )
        self.dialect = dialect
        self.rate = rate
        self._wall = wall
        if dialect == "anthropic":
            self.unavailable = Reply(529, (), _anthropic_error("overloaded_error", "Overloaded"))
            self.quota = Reply(
                400,
                (),
                _anthropic_error(
                    "invalid_request_error",
                    "Your credit balance is too low to access the Anthropic API. Please go to "
                    "Plans & Billing to upgrade or purchase credits.",
                ),
            )
        elif dialect == "openrouter":
            self.unavailable = Reply(
                503, (), _openrouter_error(503, "Service temporarily unavailable")
            )
            self.quota = Reply(
                402,
                (),
                _openrouter_error(
                    402,
                    "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
                ),
            )
        else:
            self.unavailable = Reply(503, (), _UNAVAILABLE)
            self.quota = Reply(429, (), _QUOTA)

    def budget(self, bucket: TokenBucket) -> list[tuple[str, str]]:
        """The headers that describe the bucket, on every rate-limited reply."""
        limit, remaining = f"{bucket.capacity:g}", str(bucket.remaining)
        dialect = self.dialect
        if dialect == "openai":
            return [
                ("x-ratelimit-limit-requests", limit),
                ("x-ratelimit-remaining-requests", remaining),
                ("x-ratelimit-reset-requests", go_duration(bucket.until_full)),
            ]
        if dialect == "anthropic":
            return [
                ("anthropic-ratelimit-requests-limit", limit),
                ("anthropic-ratelimit-requests-remaining", remaining),
                ("anthropic-ratelimit-requests-reset", _rfc3339(self._wall() + bucket.until_full)),
            ]
        if dialect == "ietf":
            window = _ceil(bucket.capacity / bucket.rate)
            return [
                ("RateLimit-Policy", f'"default";q={limit};w={window}'),
                ("RateLimit", f'"default";r={remaining};t={_ceil(bucket.until_full)}'),
            ]
        if dialect == "openrouter":
            reset = math.ceil((self._wall() + bucket.until_full) * 1000)
            return [
                ("X-RateLimit-Limit", limit),
                ("X-RateLimit-Remaining", remaining),
                ("X-RateLimit-Reset", str(reset)),
            ]
        return []

    def waits(self, wait: float) -> list[tuple[str, str]]:
        """The wait hints of a 429: ``Retry-After`` (whole seconds, rounded up,
        at least 1), and OpenAI's ``retry-after-ms`` too."""
        headers = [("retry-after", str(max(1, _ceil(wait))))]
        if self.dialect == "openai":
            headers.append(("retry-after-ms", str(max(1, math.ceil(wait * 1000 - 1e-6)))))
        return headers

    def rate_limited(self, headers: list[tuple[str, str]]) -> bytes:
        """The body of a 429 that carries ``headers``."""
        rate = self.rate
        if self.dialect == "anthropic":
            return _anthropic_error(
                "rate_limit_error",
                f"This request would exceed the rate limit for your organization of {rate:g} "
                "requests per second. Please slow down.",
            )
        if self.dialect == "openrouter":
            message = f"Rate limit exceeded: limit_rps/{rate:g}"
            return _openrouter_error(429, message, {"headers": dict(headers)})
        return _rate_limited(rate)


class Scenario:
    """Decides the reply to each request. Not thread-safe on its own: the
    server calls ``reply`` under its lock.

    Args:
        name: One of ``SCENARIOS``.
        rate: R, requests a second, for the rate-limit scenarios.
        brownout: T, seconds of 503 from the first request, for ``brownout``.
        headers: One of ``HEADER_DIALECTS``: how the bucket is described and
            the errors worded.
        clock: The clock (``time.monotonic``).

    Raises:
        ValueError: An unknown name or header dialect, or a rate below 1.
    """

    def __init__(
        self,
        name: str,
        *,
        rate: float,
        brownout: float,
        headers: str = "openai",
        clock: Any = time.monotonic,
    ) -> None:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        self.name = name
        self.rate = rate
        self.brownout = brownout
        self.wire = Wire(headers, rate)
        self.bucket = TokenBucket(rate, clock())
        self._first: float | None = None

    def reply(self, now: float, body: bytes, number: int, messages: bool = False) -> Reply:
        """The reply to request ``number`` (from 1), received at ``now``;
        ``messages``: on Anthropic's path, a success is a ``message``."""
        if self._first is None:
            self._first = now
        name, wire = self.name, self.wire
        if name == "outage" or (name == "brownout" and now - self._first < self.brownout):
            return wire.unavailable
        if name == "quota":
            return wire.quota
        success = (_message if messages else _completion)(_model_of(body), number)
        if name == "brownout":
            return Reply(200, (), success)
        bucket = self.bucket
        taken = bucket.take(now)
        headers = wire.budget(bucket)
        if taken:
            return Reply(200, tuple(headers), success)
        if name == "ratelimit":
            headers += wire.waits(bucket.until_next)
        return Reply(429, tuple(headers), wire.rate_limited(headers))


class _HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # The listen backlog: a burst of new connections is queued, not refused.
    request_queue_size = 1024
    goodput: GoodputServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a worker killed at the cell's cap drops its connections: no error of ours


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body are two writes; no 40 ms stall between them
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self._send(self.server.goodput.answer(self.path, body))

    def do_GET(self) -> None:
        self._send(self.server.goodput.answer(self.path, b""))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()


class GoodputServer:
    """The scenario's server on 127.0.0.1 (a free port), in a thread.

    Args:
        scenario: What to answer.
        clock: The clock of the timestamps (``time.monotonic``, which on
            Linux is one clock for every process).
    """

    def __init__(self, scenario: Scenario, *, clock: Any = time.monotonic) -> None:
        self.scenario = scenario
        self._clock = clock
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._hits: list[Hit] = []
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def answer(self, path: str, body: bytes) -> Reply:
        """Decide, record and return the reply to one request."""
        with self._lock:
            now = self._clock()
            number = next(self._numbers)
            route = path.split("?", 1)[0].rstrip("/")
            if route not in ("/v1/chat/completions", "/v1/messages"):
                reply = Reply(404, (), _NOT_FOUND)
            else:
                reply = self.scenario.reply(now, body, number, route == "/v1/messages")
            self._hits.append(Hit(now, reply.status))
        request_id = ("x-request-id", f"req_goodput{number:08d}")
        return reply._replace(headers=(*reply.headers, request_id))

    def start(self) -> GoodputServer:
        """Listen and serve in a daemon thread."""
        server = _HTTPServer(("127.0.0.1", 0), _Handler)
        server.goodput = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (connections still open are the clients' to close)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GoodputServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        if self._server is None:
            raise RuntimeError("start the server first")
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    def hits(self) -> tuple[Hit, ...]:
        """Every request received so far, in order."""
        with self._lock:
            return tuple(self._hits)

    def counts(self) -> Counts:
        """Requests received so far: all, accepted, rejected."""
        hits = self.hits()
        return Counts(
            len(hits),
            sum(1 for h in hits if 200 <= h.status < 300),
            sum(1 for h in hits if h.status in REJECTED),
        )
