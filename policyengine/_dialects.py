"""The same replies in each API's wire format: OpenAI's chat completions,
Anthropic's Messages API, Gemini's ``generateContent``, and which one a
request path speaks. Re-exported by ``policyengine.testing``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._replies import (
    API_KEY,
    MODEL,
    Reply,
    bad_gateway_html,
    chat_events,
    context_length_exceeded,
    error_event,
    invalid_api_key,
    model_not_found,
    ok,
    overloaded_event,
    quota_exhausted,
    rate_limited,
    reset,
    server_error,
    slow,
    sse,
    streamed,
    unavailable,
)

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
