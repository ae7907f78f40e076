"""The Groq SDK: clients whose retries, waits and fallbacks follow the policy.

    import policyengine as pe
    from policyengine.groq import client

    llm = client(engine=pe.Engine(), api_key="gsk_...")
    reply = llm.chat.completions.create(model="llama-3.3-70b-versatile", messages=[...])

``client()`` / ``async_client()`` build a ``groq.Groq`` / ``groq.AsyncGroq``
whose own retries are off (``max_retries=0``) and whose HTTP client is an
``httpx`` client with ``policyengine.httpx.PolicyTransport``: exactly one
layer retries, and it does what the policy says. Groq speaks OpenAI's wire
format (``POST /openai/v1/chat/completions``): a fallback switches the
``model`` of the JSON body of the next request, and Groq's
``x-ratelimit-*`` headers pace the governor.

When the policy gives up, the SDK raises as usual (``groq.RateLimitError``,
``groq.APITimeoutError``...): on a response,
``error.response.extensions["policyengine.action"]`` is the final action; on a
network failure, the ``httpx`` exception in ``error.__cause__`` carries a
note saying why the policy gave up.
"""

from __future__ import annotations

from typing import Any

import groq
import httpx

from ._adapting import sdk_options
from ._driver import Driver
from ._engine import Engine
from ._governor import Governor
from .httpx import AsyncPolicyTransport, PolicyTransport

__all__ = ["async_client", "client"]


def client(
    *,
    engine: Engine | None = None,
    driver: Driver | None = None,
    governor: Governor | None = None,
    transport: httpx.BaseTransport | None = None,
    **kwargs: Any,
) -> groq.Groq:
    """A ``groq.Groq`` client that retries as the policy says.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients (rate limits,
            circuit, sticky failures); default one of this client's own.
        transport: The ``httpx`` transport that really sends; default
            ``httpx.HTTPTransport()``.
        **kwargs: Arguments of ``groq.Groq`` (``api_key``, ``base_url``,
            ``timeout``...), except ``max_retries`` and ``http_client``.

    Returns:
        The client.

    Raises:
        TypeError: ``max_retries`` (other than 0) or ``http_client`` was
            given, or ``driver`` with ``engine`` or ``governor``.
    """
    kwargs = sdk_options(kwargs, "httpx")
    http = httpx.Client(
        transport=PolicyTransport(transport, engine=engine, driver=driver, governor=governor)
    )
    return groq.Groq(max_retries=0, http_client=http, **kwargs)


def async_client(
    *,
    engine: Engine | None = None,
    driver: Driver | None = None,
    governor: Governor | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **kwargs: Any,
) -> groq.AsyncGroq:
    """A ``groq.AsyncGroq`` client that retries as the policy says.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients (rate limits,
            circuit, sticky failures); default one of this client's own.
        transport: The ``httpx`` transport that really sends; default
            ``httpx.AsyncHTTPTransport()``.
        **kwargs: Arguments of ``groq.AsyncGroq`` (``api_key``,
            ``base_url``, ``timeout``...), except ``max_retries`` and ``http_client``.

    Returns:
        The client.

    Raises:
        TypeError: ``max_retries`` (other than 0) or ``http_client`` was
            given, or ``driver`` with ``engine`` or ``governor``.
    """
    kwargs = sdk_options(kwargs, "httpx")
    http = httpx.AsyncClient(
        transport=AsyncPolicyTransport(transport, engine=engine, driver=driver, governor=governor)
    )
    return groq.AsyncGroq(max_retries=0, http_client=http, **kwargs)
