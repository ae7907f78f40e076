"""Testing helpers for your own test suite: testing mode and a fake gateway.

Testing mode makes every driver and adapter skip the real sleeping (each wait
is recorded instead), seeds the jitter and can cap attempts::

    from policyengine.testing import FakeGateway, testing_mode, rate_limited

    with FakeGateway() as gateway, testing_mode(seed=1) as mode:
        gateway.script(rate_limited(retry_after=2))
        ...  # call gateway.chat_url with your client and adapter
        assert gateway.count() == 2 and mode.waits == [2.0]

``FakeGateway`` is a small HTTP/1.1 server on 127.0.0.1 (a free port, in a
thread) that speaks the gateway's error format
``{"error": {"message", "type", "code"}}`` and replays scripted replies: a 429
with ``Retry-After``, a 503, a 502 HTML page from a proxy, a 401
``invalid_api_key``, ``context_length_exceeded``, ``model_not_found``, a reply
slower than your client's timeout, a connection reset in the middle of a
reply; and streamed replies (server-sent events, sent as they would be, one
HTTP chunk each): a chat completion in chunks, delays between events, an
error event after N events, a connection dropped after N events. Every
request it receives is recorded (method, path, headers, body, model), so a
test can count them and check the model of each. It imports no client library.

It speaks three dialects, picked by the request's path (``dialect_of``):
OpenAI's chat completions (the module's reply functions, ``OPENAI``),
Anthropic's Messages API (``POST /v1/messages``: ``ANTHROPIC``) and Gemini's
``generateContent`` (``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``, the model read from the path:
``GEMINI``). Each ``Dialect`` builds the same replies in its own shapes
(``ok()``, ``rate_limited()``, ``quota_exhausted()``, ``unavailable()``,
``server_error()``, ``invalid_api_key()``, ``context_length_exceeded()``,
``model_not_found()``, ``streamed()``, ``events()``, ``overloaded_event()``,
``error_event()``, ``slow()``, ``reset()``), plus its own
(``ANTHROPIC.overloaded()``: 529 ``overloaded_error``;
``GEMINI.resource_exhausted()``: 429 ``RESOURCE_EXHAUSTED`` with a
``RetryInfo``). Unscripted requests, the ``RateLimit``'s 429 and an outage
answer in the request's dialect::

    gateway.script(ANTHROPIC.overloaded(), GEMINI.resource_exhausted(retry_after=3))
"""

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
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._testing import TestingMode, is_testing, set_testing, testing_mode

__all__ = [
    "ANTHROPIC",
    "Dialect",
    "FakeGateway",
    "GEMINI",
    "OPENAI",
    "RateLimit",
    "Received",
    "Reply",
    "TestingMode",
    "bad_gateway_html",
    "chat_events",
    "context_length_exceeded",
    "dialect_of",
    "error_event",
    "invalid_api_key",
    "is_testing",
    "model_not_found",
    "ok",
    "overloaded_event",
    "quota_exhausted",
    "rate_limited",
    "reset",
    "server_error",
    "set_testing",
    "slow",
    "sse",
    "streamed",
    "testing_mode",
    "unavailable",
]

#: In a ``Reply.body``, replaced by the model the request asked for.
MODEL = "{{model}}"
#: In a ``Reply.body``, replaced by the API key the request sent (what some
#: servers echo in an authentication error).
API_KEY = "{{api_key}}"


def _headers(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(k), str(v)) for k, v in items)


def _events(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen
class Reply:
    """One scripted reply.

    Attributes:
        status: The HTTP status.
        headers: Extra response headers, as ``(name, value)`` pairs (a mapping
            is accepted too).
        body: The body text, with ``{{model}}`` and ``{{api_key}}``
            filled in; None: an OpenAI-style chat completion for the requested model.
        content_type: The ``Content-Type``.
        delay: Seconds to wait before answering (longer than your client's
            timeout makes it time out).
        reset: Send the headers and part of the body, then reset the connection.
        events: A streamed reply: these server-sent events (stream text,
            each with its blank line; see ``sse()``), one HTTP chunk each
            (``Transfer-Encoding: chunked``), in place of ``body``. None: not
            streamed.
        gap: Seconds to wait between two events.
        drop_after: Close the connection after sending this many events,
            without ending the chunked body (a drop mid-stream); None: end
            the stream normally.
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_headers)
    body: str | None = None
    content_type: str = "application/json"
    delay: float = 0.0
    reset: bool = False
    events: tuple[str, ...] | None = attrs.field(default=None, converter=_events)
    gap: float = 0.0
    drop_after: int | None = None


def _error(message: str, type_: str, code: str | None, param: str | None = None) -> str:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if param is not None:
        error["param"] = param
    return json.dumps({"error": error})


def ok(content: str = "Hello from the fake gateway.") -> Reply:
    """200: a chat completion for the requested model, saying ``content``."""
    return Reply(200, body=_completion_template(content))


def rate_limited(
    retry_after: str | float | None = 1, *, retry_after_ms: int | None = None
) -> Reply:
    """429 ``rate_limit_exceeded``, with ``Retry-After`` (seconds) and/or
    ``retry-after-ms`` when given."""
    headers = []
    if retry_after is not None:
        text = retry_after if isinstance(retry_after, str) else format(retry_after, "g")
        headers.append(("Retry-After", text))
    if retry_after_ms is not None:
        headers.append(("retry-after-ms", str(retry_after_ms)))
    body = _error(
        "Rate limit exceeded: too many requests per minute (RPM). Please slow down.",
        "rate_limit_error",
        "rate_limit_exceeded",
    )
    return Reply(429, headers, body)


def unavailable() -> Reply:
    """503 Upstream Service Unavailable."""
    body = _error(
        "Upstream service unavailable, please try again later.",
        "upstream_error",
        "service_unavailable",
    )
    return Reply(503, body=body)


def server_error() -> Reply:
    """500 Internal Server Error."""
    return Reply(500, body=_error("Internal server error.", "server_error", None))


def bad_gateway_html() -> Reply:
    """502 as an HTML page from a proxy (nginx), not JSON."""
    page = (
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Reply(502, body=page, content_type="text/html")


def invalid_api_key(*, echo_key: bool = True) -> Reply:
    """401 ``invalid_api_key``; with ``echo_key`` the message repeats the key
    the request sent, as some servers do (what you log must not)."""
    shown = API_KEY if echo_key else "sk-nex-xxx...xxx"
    body = _error(
        f"Invalid API key provided: {shown}.",
        "authentication_error",
        "invalid_api_key",
    )
    return Reply(401, body=body)


def context_length_exceeded(limit: int = 8192, requested: int = 9000) -> Reply:
    """400 ``context_length_exceeded``."""
    body = _error(
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{requested} tokens. Please reduce the length of the messages.",
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
    )
    return Reply(400, body=body)


def model_not_found() -> Reply:
    """404 ``model_not_found`` for the requested model."""
    body = _error(f"Model '{MODEL}' not found", "invalid_request_error", "model_not_found")
    return Reply(404, body=body)


def slow(seconds: float, then: Reply | None = None) -> Reply:
    """``then`` (default ``ok()``), sent only after ``seconds``."""
    return attrs.evolve(then if then is not None else ok(), delay=seconds)


def reset(then: Reply | None = None) -> Reply:
    """The headers and part of ``then``'s body (default ``ok()``), then a reset
    connection."""
    return attrs.evolve(then if then is not None else ok(), reset=True)


def sse(data: object, *, event: str | None = None, id: str | None = None) -> str:
    """One server-sent event as stream text: ``event:`` and ``id:`` when
    given, ``data`` (a string, or any JSON value, dumped) over as many
    ``data:`` lines as it has lines, and the blank line that ends it."""
    text = data if isinstance(data, str) else json.dumps(data)
    lines = [f"event: {event}"] if event is not None else []
    if id is not None:
        lines.append(f"id: {id}")
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


def chat_events(content: str = "Hello from the fake gateway.") -> tuple[str, ...]:
    """An OpenAI-style streamed chat completion for the requested model: a
    ``chat.completion.chunk`` per word of ``content``, one with the
    ``finish_reason``, then ``data: [DONE]``."""
    words = content.split(" ")
    pieces = [word if i == 0 else f" {word}" for i, word in enumerate(words)]

    def chunk(delta: dict[str, str], finish: str | None) -> str:
        return sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    return (
        *(chunk({"content": piece}, None) for piece in pieces),
        chunk({}, "stop"),
        sse("[DONE]"),
    )


def overloaded_event() -> str:
    """Anthropic's error event: ``event: error`` with an ``overloaded_error``
    (transient: the bundled policy retries it)."""
    return sse(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        event="error",
    )


def error_event(
    message: str = "You exceeded your current quota, please check your plan and billing details.",
    type_: str = "insufficient_quota",
    code: str | None = "insufficient_quota",
) -> str:
    """An OpenAI-style error in a stream: a ``data:`` line holding
    ``{"error": {...}}`` (by default an exhausted quota, which is never retried)."""
    return sse({"error": {"message": message, "type": type_, "code": code}})


def streamed(
    content: str = "Hello from the fake gateway.",
    *,
    events: Iterable[str] | None = None,
    gap: float = 0.0,
    error_after: int | None = None,
    error: str | None = None,
    drop_after: int | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
) -> Reply:
    """200 ``text/event-stream``: a streamed reply.

    Args:
        content: The text of the default events (``chat_events(content)``).
        events: The events to send instead (stream text; see ``sse()``).
        gap: Seconds to wait between two events.
        error_after: Send ``error`` after this many events (0: first) and end
            the stream there.
        error: The error event; default ``overloaded_event()``.
        drop_after: Drop the connection after this many events.
        headers: Extra response headers.
    """
    sent = tuple(events) if events is not None else chat_events(content)
    if error_after is not None:
        sent = (*sent[:error_after], error if error is not None else overloaded_event())
    return Reply(
        200,
        headers,
        content_type="text/event-stream",
        events=sent,
        gap=gap,
        drop_after=drop_after,
    )


def _completion_template(content: str) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
        }
    )


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


def quota_exhausted() -> Reply:
    """429 ``insufficient_quota``: the account's quota or credit is spent (no
    ``Retry-After``, as OpenAI sends it)."""
    body = _error(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )
    return Reply(429, body=body)


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


# --- dialects: the same replies in each API's wire format -----------------------------


class Dialect:
    """One API's wire format: its paths, and the same set of scripted replies
    shaped as that API sends them (success bodies, error bodies, streams).

    ``OPENAI`` (the functions of this module), ``ANTHROPIC`` (the Messages
    API) and ``GEMINI`` (``generateContent``) are the instances. The gateway
    answers a request in the dialect of its path (``dialect_of``) when
    nothing is scripted for it, when its ``RateLimit`` turns it away and in
    an outage; a scripted reply is sent as it is, whatever the path.

    Attributes:
        name: ``"openai"``, ``"anthropic"`` or ``"gemini"``.
    """

    name = ""

    def ok(self, content: str = "Hello from the fake gateway.") -> Reply:
        """200: an answer for the requested model, saying ``content``."""
        raise NotImplementedError

    def rate_limited(
        self, retry_after: str | float | None = 1, *, retry_after_ms: int | None = None
    ) -> Reply:
        """429: requests per minute exceeded, with ``Retry-After`` (seconds)
        and/or ``retry-after-ms`` when given."""
        raise NotImplementedError

    def quota_exhausted(self) -> Reply:
        """The account's quota or credit is spent (never worth retrying)."""
        raise NotImplementedError

    def unavailable(self) -> Reply:
        """The service is unavailable or overloaded for now (worth retrying)."""
        raise NotImplementedError

    def server_error(self) -> Reply:
        """500 Internal Server Error."""
        raise NotImplementedError

    def invalid_api_key(self, *, echo_key: bool = True) -> Reply:
        """The API key is not valid; with ``echo_key`` the message repeats
        the key the request sent."""
        raise NotImplementedError

    def context_length_exceeded(self, limit: int = 8192, requested: int = 9000) -> Reply:
        """400: the prompt is longer than the model's context."""
        raise NotImplementedError

    def model_not_found(self) -> Reply:
        """404: no such model (the requested one)."""
        raise NotImplementedError

    def events(self, content: str = "Hello from the fake gateway.") -> tuple[str, ...]:
        """A streamed answer saying ``content``, as server-sent events."""
        raise NotImplementedError

    def overloaded_event(self) -> str:
        """An error event in a stream that is worth retrying (overloaded)."""
        raise NotImplementedError

    def error_event(self) -> str:
        """An error event in a stream that is not worth retrying (an
        exhausted quota)."""
        raise NotImplementedError

    def bad_gateway_html(self) -> Reply:
        """502 as an HTML page from a proxy in front of any API."""
        return bad_gateway_html()

    def slow(self, seconds: float, then: Reply | None = None) -> Reply:
        """``then`` (default ``ok()``), sent only after ``seconds``."""
        return slow(seconds, then if then is not None else self.ok())

    def reset(self, then: Reply | None = None) -> Reply:
        """Part of ``then`` (default ``ok()``), then a reset connection."""
        return reset(then if then is not None else self.ok())

    def streamed(
        self,
        content: str = "Hello from the fake gateway.",
        *,
        events: Iterable[str] | None = None,
        gap: float = 0.0,
        error_after: int | None = None,
        error: str | None = None,
        drop_after: int | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> Reply:
        """200 ``text/event-stream``: ``streamed()`` with this dialect's
        events (``events(content)``) and, after ``error_after`` events, its
        ``overloaded_event()`` unless ``error`` is given."""
        return streamed(
            events=events if events is not None else self.events(content),
            gap=gap,
            error_after=error_after,
            error=error if error is not None else self.overloaded_event(),
            drop_after=drop_after,
            headers=headers,
        )

    def __repr__(self) -> str:
        return f"<Dialect {self.name}>"


class _OpenAI(Dialect):
    """OpenAI's chat completions (and Groq, OpenRouter, one-api...):
    ``{"error": {"message", "type", "code"}}``; the module's functions."""

    name = "openai"

    def ok(self, content: str = "Hello from the fake gateway.") -> Reply:
        return ok(content)

    def rate_limited(
        self, retry_after: str | float | None = 1, *, retry_after_ms: int | None = None
    ) -> Reply:
        return rate_limited(retry_after, retry_after_ms=retry_after_ms)

    def quota_exhausted(self) -> Reply:
        return quota_exhausted()

    def unavailable(self) -> Reply:
        return unavailable()

    def server_error(self) -> Reply:
        return server_error()

    def invalid_api_key(self, *, echo_key: bool = True) -> Reply:
        return invalid_api_key(echo_key=echo_key)

    def context_length_exceeded(self, limit: int = 8192, requested: int = 9000) -> Reply:
        return context_length_exceeded(limit, requested)

    def model_not_found(self) -> Reply:
        return model_not_found()

    def events(self, content: str = "Hello from the fake gateway.") -> tuple[str, ...]:
        return chat_events(content)

    def overloaded_event(self) -> str:
        # What the module's streamed() has always sent: Anthropic's shape,
        # which OpenAI-compatible gateways in front of Claude pass through.
        return overloaded_event()

    def error_event(self) -> str:
        return error_event()


def _retry_headers(
    retry_after: str | float | None, retry_after_ms: int | None
) -> list[tuple[str, str]]:
    headers = []
    if retry_after is not None:
        text = retry_after if isinstance(retry_after, str) else format(retry_after, "g")
        headers.append(("Retry-After", text))
    if retry_after_ms is not None:
        headers.append(("retry-after-ms", str(retry_after_ms)))
    return headers


def _anthropic_error(type_: str, message: str) -> str:
    return json.dumps(
        {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_fake"}
    )


class _Anthropic(Dialect):
    """Anthropic's Messages API (``POST /v1/messages``): a ``message``,
    ``{"type": "error", "error": {"type", "message"}}``, 529
    ``overloaded_error``, ``event:``-named stream events and ``event: error``."""

    name = "anthropic"

    def ok(self, content: str = "Hello from the fake gateway.") -> Reply:
        body = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [{"type": "text", "text": content}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 9, "output_tokens": 7},
        }
        return Reply(200, body=json.dumps(body))

    def rate_limited(
        self, retry_after: str | float | None = 1, *, retry_after_ms: int | None = None
    ) -> Reply:
        body = _anthropic_error(
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests "
            "per minute. Please slow down.",
        )
        return Reply(429, _retry_headers(retry_after, retry_after_ms), body)

    def quota_exhausted(self) -> Reply:
        """400 ``invalid_request_error``: the credit balance is too low (as
        Anthropic sends it: neither a 402 nor a 429)."""
        body = _anthropic_error(
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to "
            "Plans & Billing to upgrade or purchase credits.",
        )
        return Reply(400, body=body)

    def unavailable(self) -> Reply:
        """529 ``overloaded_error`` (Anthropic's "come back later")."""
        return self.overloaded()

    def overloaded(self) -> Reply:
        """529 ``overloaded_error``."""
        return Reply(529, body=_anthropic_error("overloaded_error", "Overloaded"))

    def server_error(self) -> Reply:
        """500 ``api_error``."""
        return Reply(500, body=_anthropic_error("api_error", "Internal server error"))

    def invalid_api_key(self, *, echo_key: bool = True) -> Reply:
        """401 ``authentication_error``."""
        shown = API_KEY if echo_key else "sk-ant-xxx...xxx"
        return Reply(
            401, body=_anthropic_error("authentication_error", f"invalid x-api-key: {shown}")
        )

    def context_length_exceeded(self, limit: int = 8192, requested: int = 9000) -> Reply:
        """400 ``invalid_request_error``: the prompt is too long."""
        body = _anthropic_error(
            "invalid_request_error", f"prompt is too long: {requested} tokens > {limit} maximum"
        )
        return Reply(400, body=body)

    def model_not_found(self) -> Reply:
        """404 ``not_found_error`` naming the model."""
        return Reply(404, body=_anthropic_error("not_found_error", f"model: {MODEL}"))

    def events(self, content: str = "Hello from the fake gateway.") -> tuple[str, ...]:
        """``message_start``, ``content_block_start``, a
        ``content_block_delta`` per word, ``content_block_stop``,
        ``message_delta``, ``message_stop``."""
        words = content.split(" ")
        start: dict[str, Any] = {
            "type": "message_start",
            "message": {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 9, "output_tokens": 1},
            },
        }
        block: dict[str, Any] = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        deltas: list[dict[str, Any]] = [
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": word if i == 0 else f" {word}"},
            }
            for i, word in enumerate(words)
        ]
        end: list[dict[str, Any]] = [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(words)},
            },
            {"type": "message_stop"},
        ]
        return tuple(sse(e, event=str(e["type"])) for e in (start, block, *deltas, *end))

    def overloaded_event(self) -> str:
        return overloaded_event()

    def error_event(self) -> str:
        """``event: error`` with a ``billing_error``."""
        return sse(
            {
                "type": "error",
                "error": {
                    "type": "billing_error",
                    "message": "Your credit balance is too low to access the Anthropic API.",
                },
            },
            event="error",
        )


def _google_error(
    code: int, status: str, message: str, details: Iterable[dict[str, Any]] = ()
) -> str:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error})


def _quota_failure(quota_id: str, metric: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": MODEL},
                "quotaValue": "15",
            }
        ],
    }


def _retry_info(seconds: float) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds:g}s"}


class _Gemini(Dialect):
    """Google's Gemini API (``POST /v1beta/models/{model}:generateContent``,
    ``:streamGenerateContent?alt=sse``): ``candidates``, and Google error
    bodies ``{"error": {"code", "message", "status", "details"}}``."""

    name = "gemini"

    @staticmethod
    def _answer(text: str, *, last: bool = True) -> dict[str, Any]:
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "index": 0,
        }
        answer: dict[str, Any] = {"candidates": [candidate], "modelVersion": MODEL}
        if last:
            candidate["finishReason"] = "STOP"
            answer["usageMetadata"] = {
                "promptTokenCount": 9,
                "candidatesTokenCount": 7,
                "totalTokenCount": 16,
            }
        answer["responseId"] = "fake"
        return answer

    def ok(self, content: str = "Hello from the fake gateway.") -> Reply:
        return Reply(200, body=json.dumps(self._answer(content)))

    def rate_limited(
        self, retry_after: str | float | None = 1, *, retry_after_ms: int | None = None
    ) -> Reply:
        """429 ``RESOURCE_EXHAUSTED`` for a per-minute quota, with a
        ``RetryInfo`` of ``retry_after`` seconds in its details (Google
        sends no ``Retry-After`` header; ``retry_after_ms`` adds one, for
        a gateway in front that does)."""
        return self.resource_exhausted(retry_after, retry_after_ms=retry_after_ms)

    def resource_exhausted(
        self, retry_after: str | float | None = 1, *, retry_after_ms: int | None = None
    ) -> Reply:
        """429 ``RESOURCE_EXHAUSTED``: requests per minute, a ``QuotaFailure``
        and a ``RetryInfo`` of ``retry_after`` seconds."""
        details = [
            _quota_failure(
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "generate_content_free_tier_requests",
            )
        ]
        if retry_after is not None:
            details.append(_retry_info(float(retry_after)))
        body = _google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
            details,
        )
        headers = [] if retry_after_ms is None else [("retry-after-ms", str(retry_after_ms))]
        return Reply(429, headers, body)

    def quota_exhausted(self) -> Reply:
        """429 ``RESOURCE_EXHAUSTED`` for the day's quota (the free tier's
        requests per day): "You exceeded your current quota"."""
        body = _google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            [
                _quota_failure(
                    "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                    "generate_content_free_tier_requests",
                )
            ],
        )
        return Reply(429, body=body)

    def unavailable(self) -> Reply:
        """503 ``UNAVAILABLE``: the model is overloaded."""
        body = _google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        return Reply(503, body=body)

    def server_error(self) -> Reply:
        """500 ``INTERNAL``."""
        body = _google_error(
            500, "INTERNAL", "An internal error has occurred. Please retry or report it."
        )
        return Reply(500, body=body)

    def invalid_api_key(self, *, echo_key: bool = True) -> Reply:
        """400 ``INVALID_ARGUMENT`` with the reason ``API_KEY_INVALID`` (as
        Google sends a bad key: not a 401)."""
        shown = f" ({API_KEY})" if echo_key else ""
        body = _google_error(
            400,
            "INVALID_ARGUMENT",
            f"API key not valid{shown}. Please pass a valid API key.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ],
        )
        return Reply(400, body=body)

    def context_length_exceeded(self, limit: int = 8192, requested: int = 9000) -> Reply:
        """400 ``INVALID_ARGUMENT``: the input token count exceeds the maximum."""
        body = _google_error(
            400,
            "INVALID_ARGUMENT",
            f"The input token count ({requested}) exceeds the maximum number of tokens "
            f"allowed ({limit}).",
        )
        return Reply(400, body=body)

    def model_not_found(self) -> Reply:
        """404 ``NOT_FOUND``: the model is not found for this API version."""
        body = _google_error(
            404,
            "NOT_FOUND",
            f"models/{MODEL} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and "
            "their supported methods.",
        )
        return Reply(404, body=body)

    def events(self, content: str = "Hello from the fake gateway.") -> tuple[str, ...]:
        """A ``GenerateContentResponse`` per word (``alt=sse``), the last with
        its ``finishReason`` and usage; no ``[DONE]``."""
        words = content.split(" ")
        return tuple(
            sse(self._answer(word if i == 0 else f" {word}", last=i == len(words) - 1))
            for i, word in enumerate(words)
        )

    def overloaded_event(self) -> str:
        """A Google error object as the stream's data: 503 ``UNAVAILABLE``."""
        return sse(
            json.loads(
                _google_error(
                    503, "UNAVAILABLE", "The model is overloaded. Please try again later."
                )
            )
        )

    def error_event(self) -> str:
        """A Google error object as the stream's data: the day's quota spent."""
        return sse(json.loads(self.quota_exhausted().body or "{}"))


#: The OpenAI dialect: this module's reply functions, as a ``Dialect``.
OPENAI = _OpenAI()
#: Anthropic's Messages API.
ANTHROPIC = _Anthropic()
#: Google's Gemini API (``generateContent``).
GEMINI = _Gemini()

_GEMINI_PATH = re.compile(r"/models/[^/:?]+:(?:stream)?[gG]enerateContent\b")


def dialect_of(path: str) -> Dialect:
    """The dialect a request's path speaks: ``/v1/messages`` Anthropic,
    ``/models/{model}:generateContent`` (or ``:streamGenerateContent``)
    Gemini, anything else OpenAI."""
    route = path.split("?", 1)[0]
    if route.endswith("/v1/messages"):
        return ANTHROPIC
    if _GEMINI_PATH.search(route):
        return GEMINI
    return OPENAI


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
