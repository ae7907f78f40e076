"""The fake gateway: a small HTTP/1.1 server on 127.0.0.1 that replays
scripted replies in the dialect of each request, enforces an optional rate
limit, and records every request. Re-exported by ``policyengine.testing``."""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import re
import socket
import socketserver
import struct
import threading
import time
import urllib.parse
from typing import Any

import attrs

from ._dialects import Dialect, dialect_of
from ._replies import API_KEY, MODEL, Reply


@attrs.frozen
class Received:
    """A request the gateway received.

    Attributes:
        method: The request method.
        path: The path, with the query string.
        headers: ``(name, value)`` pairs as sent.
        body: The request body.
        model: The ``"model"`` of a JSON body, or else the model in the URL
            path (Gemini's ``/models/{model}:generateContent``), or None.
        at: When it arrived (``time.monotonic()``).
    """

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    model: str | None
    at: float

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def dialect(self) -> Dialect:
        """The dialect of the request's path (``dialect_of``)."""
        return dialect_of(self.path)

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: The body is not JSON.
        """
        return json.loads(self.body)


_PATH_MODEL = re.compile(r"/models/([^/:?]+)")


def _model_of(path: str, body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except Exception:
        data = None
    model = data.get("model") if isinstance(data, dict) else None
    if isinstance(model, str):
        return model
    found = _PATH_MODEL.search(path.split("?", 1)[0])
    return urllib.parse.unquote(found.group(1)) if found else None


@attrs.define
class RateLimit:
    """A token bucket the gateway enforces before any scripted reply: ``burst``
    requests at once, refilled at ``per_second``. An empty bucket answers 429
    ``rate_limit_exceeded``.

    Attributes:
        per_second: The refill rate.
        burst: The bucket's size; default one second's worth.
        retry_after: Send ``Retry-After`` (whole seconds, rounded up, as real
            servers do) and ``retry-after-ms`` on a 429.
        headers: Send ``x-ratelimit-limit-requests``, ``-remaining-requests``
            and ``-reset-requests`` (the time until the bucket is full, as
            OpenAI does) on every response.
    """

    per_second: float
    burst: float | None = None
    retry_after: bool = True
    headers: bool = True
    _tokens: float = attrs.field(default=-1.0, init=False, repr=False)
    _at: float = attrs.field(default=0.0, init=False, repr=False)

    @property
    def size(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.per_second)

    def take(self, now: float) -> tuple[bool, list[tuple[str, str]]]:
        """Take a token at ``now``: whether there was one, and the headers to send."""
        if self._tokens < 0:
            self._tokens = self.size
        self._tokens = min(self.size, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        granted = self._tokens >= 1.0
        if granted:
            self._tokens -= 1.0
        headers: list[tuple[str, str]] = []
        if self.headers:
            full_in = (self.size - self._tokens) / self.per_second
            headers += [
                ("x-ratelimit-limit-requests", format(self.size, "g")),
                ("x-ratelimit-remaining-requests", str(int(self._tokens))),
                ("x-ratelimit-reset-requests", f"{math.ceil(full_in * 1000)}ms"),
            ]
        if not granted and self.retry_after:
            wait = (1.0 - self._tokens) / self.per_second
            headers += [
                ("Retry-After", str(max(1, math.ceil(wait)))),
                ("retry-after-ms", str(math.ceil(wait * 1000))),
            ]
        return granted, headers


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Many clients at once (a governor test, a load test) must not find the
    # listen queue full: the default of 5 resets connections itself.
    request_queue_size = 1024
    gateway: FakeGateway

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (a timeout test) is no error of the gateway


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._body()
        gateway = self.server.gateway
        received = Received(
            self.command,
            self.path,
            tuple(self.headers.items()),
            body,
            _model_of(self.path, body),
            time.monotonic(),
        )
        reply, extra = gateway._take(received)
        if reply.delay > 0 and gateway._stopping.wait(reply.delay):
            return
        if reply.events is not None:
            self._stream(reply, received, extra)
            return
        payload = _render(reply, received)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (*reply.headers, *extra):
            self.send_header(name, value)
        self.end_headers()
        if reply.reset:
            self.wfile.write(payload[: max(1, len(payload) // 3)])
            self.wfile.flush()
            # SO_LINGER 0: close with a RST, as a crashed upstream does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def _stream(self, reply: Reply, received: Received, extra: list[tuple[str, str]]) -> None:
        """Send a streamed reply: one HTTP chunk per event, as they are due."""
        assert reply.events is not None
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        for name, value in (*reply.headers, *extra):
            self.send_header(name, value)
        self.end_headers()
        stopping = self.server.gateway._stopping
        for n, event in enumerate(reply.events):
            if reply.drop_after is not None and n >= reply.drop_after:
                break
            if n and reply.gap > 0 and stopping.wait(reply.gap):
                break
            data = _fill(event, received).encode("utf-8")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        else:
            if reply.drop_after is None:
                self.wfile.write(b"0\r\n\r\n")
                return
        # A drop (or the gateway stopping): close without ending the chunked body.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def _render(reply: Reply, received: Received) -> bytes:
    text = reply.body if reply.body is not None else received.dialect.ok("Hello.").body
    return _fill(text or "", received).encode("utf-8")


def _fill(text: str, received: Received) -> str:
    """``text`` with ``{{model}}`` and ``{{api_key}}`` filled in."""
    if MODEL in text:
        text = text.replace(MODEL, json.dumps(received.model or "unknown")[1:-1])
    if API_KEY in text:
        text = text.replace(API_KEY, json.dumps(_api_key(received))[1:-1])
    return text


def _api_key(received: Received) -> str:
    """The API key a request sent: ``Authorization: Bearer`` (OpenAI),
    ``x-api-key`` (Anthropic), ``x-goog-api-key`` or ``?key=`` (Google)."""
    auth = received.header("Authorization")
    if auth:
        return auth.split(" ", 1)[1] if " " in auth else auth
    key = received.header("x-api-key") or received.header("x-goog-api-key")
    if key:
        return key
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(received.path).query)
    return (query.get("key") or [""])[0]


class FakeGateway:
    """An LLM gateway on 127.0.0.1 that replays scripted replies.

    Use it as a context manager (or call ``start()`` and ``stop()``). Each
    request takes the next scripted reply: first from the replies scripted
    for its model, then from those for any model; with none left, it gets
    ``default``: by default a 200 answer in the dialect of its path (an
    OpenAI chat completion, an Anthropic message, a Gemini
    ``GenerateContentResponse``; see ``dialect_of``).

    Args:
        default: The reply when nothing is scripted, whatever the path;
            None: the ``ok()`` of the request's dialect.
        rate_limit: A ``RateLimit`` enforced before any scripted reply.
        host: The address to listen on; loopback only.
        port: The port; 0 picks a free one.

    Raises:
        ValueError: ``host`` is not a loopback address.
    """

    def __init__(
        self,
        *,
        default: Reply | None = None,
        rate_limit: RateLimit | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        if not (host.startswith("127.") or host in ("localhost", "::1")):
            raise ValueError(f"FakeGateway listens on loopback only, not {host!r}")
        self.default = default
        self.rate_limit = rate_limit
        self._outage: tuple[float, Reply | None] | None = None
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._scripts: dict[str | None, list[Reply]] = {}
        self._received: list[Received] = []
        self._rejected = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> FakeGateway:
        """Start serving in a background thread.

        Returns:
            The gateway itself.

        Raises:
            RuntimeError: It is already running.
        """
        if self._server is not None:
            raise RuntimeError("the gateway is already running")
        server = _Server((self._host, self._port), _Handler)
        server.gateway = self
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; replies still waiting out a delay are dropped."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``.

        Raises:
            RuntimeError: The gateway is not running.
        """
        if self._server is None:
            raise RuntimeError("start the gateway first (use it in a with block)")
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    @property
    def chat_url(self) -> str:
        """``.../v1/chat/completions``."""
        return self.base_url + "/chat/completions"

    @property
    def messages_url(self) -> str:
        """Anthropic's ``.../v1/messages`` (the Anthropic SDK's ``base_url``
        is ``url``)."""
        return self.url + "/v1/messages"

    def gemini_url(self, model: str, *, stream: bool = False) -> str:
        """Gemini's ``.../v1beta/models/{model}:generateContent`` (with
        ``stream``, ``:streamGenerateContent?alt=sse``); Google's GenAI SDK
        takes ``url`` as its ``base_url``."""
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.url}/v1beta/models/{urllib.parse.quote(model, safe='')}:{method}"

    # --- scripting ------------------------------------------------------------------

    def script(self, *replies: Reply, model: str | None = None) -> FakeGateway:
        """Queue replies, in order, for requests for ``model`` (None: any model).

        Args:
            replies: The replies.
            model: Only requests for this model (named in a JSON body, or in
                the URL path for Gemini) take them.

        Returns:
            The gateway itself.
        """
        with self._lock:
            self._scripts.setdefault(model, []).extend(replies)
        return self

    def clear(self) -> None:
        """Forget the scripted replies and the received requests."""
        with self._lock:
            self._scripts.clear()
            self._received.clear()
            self._rejected = 0

    def fail_for(self, seconds: float, reply: Reply | None = None) -> FakeGateway:
        """Answer every request with ``reply`` (default the ``unavailable()``
        of its dialect) for the next ``seconds``, scripts and rate limit
        aside: an outage, or a brownout that ends.

        Returns:
            The gateway itself.
        """
        with self._lock:
            self._outage = (time.monotonic() + seconds, reply)
        return self

    def _take(self, received: Received) -> tuple[Reply, list[tuple[str, str]]]:
        with self._lock:
            self._received.append(received)
            if self._outage is not None:
                until, outage = self._outage
                if received.at < until:
                    return outage or received.dialect.unavailable(), []
            extra: list[tuple[str, str]] = []
            if self.rate_limit is not None:
                granted, extra = self.rate_limit.take(received.at)
                if not granted:
                    self._rejected += 1
                    return received.dialect.rate_limited(retry_after=None), extra
            for key in dict.fromkeys((received.model, None)):
                queue = self._scripts.get(key)
                if queue:
                    return queue.pop(0), extra
            return self.default or received.dialect.ok(), extra

    # --- what came in ---------------------------------------------------------------

    @property
    def received(self) -> tuple[Received, ...]:
        """Every request received, in order."""
        with self._lock:
            return tuple(self._received)

    def count(self, *, model: str | None = None) -> int:
        """How many requests were received (for ``model`` only, if given)."""
        return sum(1 for r in self.received if model is None or r.model == model)

    @property
    def rejected(self) -> int:
        """How many requests the rate limit turned away."""
        with self._lock:
            return self._rejected

    def models(self) -> list[str | None]:
        """The model of each request received, in order."""
        return [r.model for r in self.received]

    def pending(self) -> int:
        """How many scripted replies no request has taken yet."""
        with self._lock:
            return sum(len(q) for q in self._scripts.values())
