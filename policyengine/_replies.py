"""The fake gateway's replies in OpenAI's format: a scripted ``Reply`` and
the functions that build the usual ones (errors, slow and reset replies,
server-sent event streams). Re-exported by ``policyengine.testing``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

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


def quota_exhausted() -> Reply:
    """429 ``insufficient_quota``: the account's quota or credit is spent (no
    ``Retry-After``, as OpenAI sends it)."""
    body = _error(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )
    return Reply(429, body=body)
