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

from ._dialects import ANTHROPIC, GEMINI, OPENAI, Dialect, dialect_of
from ._gateway import FakeGateway, RateLimit, Received
from ._replies import (
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
