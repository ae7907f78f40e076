"""The loopback server of benchmarks/goodput.py: an OpenAI-compatible
``POST /v1/chat/completions`` that plays one scenario and counts every request.

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
    "SCENARIOS",
    "Counts",
    "GoodputServer",
    "Hit",
    "Scenario",
    "TokenBucket",
    "go_duration",
]

#: Every scenario, in the order they are reported.
SCENARIOS = ("ratelimit", "ratelimit-noretryafter", "brownout", "outage", "quota")

#: Statuses counted as rejected: the server refused the work.
REJECTED = frozenset({429, 500, 502, 503, 504})


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


def _model_of(body: bytes) -> str:
    try:
        model = json.loads(body).get("model")
    except Exception:
        return "unknown"
    return model if isinstance(model, str) else "unknown"


class Scenario:
    """Decides the reply to each request. Not thread-safe on its own: the
    server calls ``reply`` under its lock.

    Args:
        name: One of ``SCENARIOS``.
        rate: R, requests a second, for the rate-limit scenarios.
        brownout: T, seconds of 503 from the first request, for ``brownout``.
        clock: The clock (``time.monotonic``).

    Raises:
        ValueError: An unknown name or a rate below 1.
    """

    def __init__(
        self, name: str, *, rate: float, brownout: float, clock: Any = time.monotonic
    ) -> None:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        self.name = name
        self.rate = rate
        self.brownout = brownout
        self.bucket = TokenBucket(rate, clock())
        self._first: float | None = None
        self._rate_limited = _rate_limited(rate)

    def reply(self, now: float, body: bytes, number: int) -> Reply:
        """The reply to request ``number`` (from 1), received at ``now``."""
        if self._first is None:
            self._first = now
        name = self.name
        if name == "outage" or (name == "brownout" and now - self._first < self.brownout):
            return Reply(503, (), _UNAVAILABLE)
        if name == "quota":
            return Reply(429, (), _QUOTA)
        if name == "brownout":
            return Reply(200, (), _completion(_model_of(body), number))
        bucket = self.bucket
        taken = bucket.take(now)
        headers = [
            ("x-ratelimit-limit-requests", f"{bucket.capacity:g}"),
            ("x-ratelimit-remaining-requests", str(bucket.remaining)),
            ("x-ratelimit-reset-requests", go_duration(bucket.until_full)),
        ]
        if taken:
            return Reply(200, tuple(headers), _completion(_model_of(body), number))
        if name == "ratelimit":
            wait = bucket.until_next
            headers.append(("retry-after", str(max(1, math.ceil(wait - 1e-6)))))
            headers.append(("retry-after-ms", str(max(1, math.ceil(wait * 1000 - 1e-6)))))
        return Reply(429, tuple(headers), self._rate_limited)


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
            if path.split("?", 1)[0].rstrip("/") != "/v1/chat/completions":
                reply = Reply(404, (), _NOT_FOUND)
            else:
                reply = self.scenario.reply(now, body, number)
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
