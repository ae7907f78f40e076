"""The Anthropic SDK: clients whose retries, waits and fallbacks follow the policy.

    import policyengine as pe
    from policyengine.anthropic import client

    claude = client(engine=pe.Engine(), api_key="sk-ant-...")
    message = claude.messages.create(model="claude-sonnet-5-5", max_tokens=256, messages=[...])

``client()`` / ``async_client()`` build an ``anthropic.Anthropic`` /
``anthropic.AsyncAnthropic`` whose own retries are off (``max_retries=0``) and
whose HTTP client is an ``httpx2`` client (the SDK 2.x takes no other) with
``policyengine.httpx2.PolicyTransport``: exactly one layer retries, and it
does what the policy says. A fallback switches the ``model`` of the next
Messages request (``POST /v1/messages``, the model in the JSON body); the
SDK's headers are sent unchanged on every attempt. The SDK's own retry hint,
``x-should-retry``, and 529 ``overloaded_error`` are read by the policy, not
by the SDK. A stream (``stream=True``, ``messages.stream()``) whose first
event is ``event: error`` is retried inside the attempt; an error event
later raises ``policyengine.StreamInterrupted`` from the SDK's iterator.

When the policy gives up, the SDK raises as usual
(``anthropic.RateLimitError``, ``anthropic.InternalServerError`` for a 529,
``anthropic.APITimeoutError``...): on a response,
``error.response.extensions["policyengine.action"]`` is the final action.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2

from ._adapting import sdk_options
from ._driver import Driver
from ._engine import Engine
from ._governor import Governor
from .httpx2 import AsyncPolicyTransport, PolicyTransport

__all__ = ["async_client", "client"]


def client(
    *,
    engine: Engine | None = None,
    driver: Driver | None = None,
    governor: Governor | None = None,
    transport: httpx2.BaseTransport | None = None,
    **kwargs: Any,
) -> anthropic.Anthropic:
    """An ``anthropic.Anthropic`` client that retries as the policy says.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients (rate limits,
            circuit, sticky failures); default one of this client's own.
        transport: The ``httpx2`` transport that really sends; default
            ``httpx2.HTTPTransport()``.
        **kwargs: Arguments of ``anthropic.Anthropic`` (``api_key``,
            ``base_url``, ``timeout``...), except ``max_retries`` and ``http_client``.

    Returns:
        The client.

    Raises:
        TypeError: ``max_retries`` (other than 0) or ``http_client`` was
            given, or ``driver`` with ``engine`` or ``governor``.
    """
    kwargs = sdk_options(kwargs, "httpx2")
    http = httpx2.Client(
        transport=PolicyTransport(transport, engine=engine, driver=driver, governor=governor)
    )
    return anthropic.Anthropic(max_retries=0, http_client=http, **kwargs)


def async_client(
    *,
    engine: Engine | None = None,
    driver: Driver | None = None,
    governor: Governor | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    **kwargs: Any,
) -> anthropic.AsyncAnthropic:
    """An ``anthropic.AsyncAnthropic`` client that retries as the policy says.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients (rate limits,
            circuit, sticky failures); default one of this client's own.
        transport: The ``httpx2`` transport that really sends; default
            ``httpx2.AsyncHTTPTransport()``.
        **kwargs: Arguments of ``anthropic.AsyncAnthropic`` (``api_key``,
            ``base_url``, ``timeout``...), except ``max_retries`` and ``http_client``.

    Returns:
        The client.

    Raises:
        TypeError: ``max_retries`` (other than 0) or ``http_client`` was
            given, or ``driver`` with ``engine`` or ``governor``.
    """
    kwargs = sdk_options(kwargs, "httpx2")
    http = httpx2.AsyncClient(
        transport=AsyncPolicyTransport(transport, engine=engine, driver=driver, governor=governor)
    )
    return anthropic.AsyncAnthropic(max_retries=0, http_client=http, **kwargs)
