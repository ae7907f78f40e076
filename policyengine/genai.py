"""Google's GenAI SDK (Gemini): a client whose retries, waits and fallbacks
follow the policy.

    import policyengine as pe
    from policyengine.genai import client

    gemini = client(engine=pe.Engine(), api_key="AIza...")
    answer = gemini.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    answer = await gemini.aio.models.generate_content(model="gemini-2.5-flash", contents="Hi")

``client()`` builds a ``google.genai.Client`` whose own retries are off
(``http_options.retry_options`` of one attempt) and whose HTTP clients, sync
(``client.models``) and async (``client.aio.models``), are ``httpx2``
clients with ``policyengine.httpx2`` transports: exactly one layer retries,
and it does what the policy says. Gemini names the model in the URL path
(``/v1beta/models/{model}:generateContent``), not in the body: the
transports read it there (``policyengine.ModelInPath()``), so a fallback
sends the next request to the fallback model's path, and the governor keys
on it. A stream (``generate_content_stream``, ``:streamGenerateContent?alt=sse``)
whose first event is an error object is retried inside the attempt; one
later raises ``policyengine.StreamInterrupted`` from the SDK's iterator.

When the policy gives up, the SDK raises as usual
(``google.genai.errors.ClientError`` / ``ServerError``, whose ``code`` is the
status; ``httpx2.ReadTimeout``...).
"""

from __future__ import annotations

from typing import Any

import httpx2
from google import genai
from google.genai import types

from ._adapting import ModelInPath
from ._driver import Driver
from ._engine import Engine
from ._governor import Governor
from .httpx2 import AsyncPolicyTransport, PolicyTransport

__all__ = ["client"]

_OURS = ("httpx_client", "httpx_async_client", "aiohttp_client")


def _options(http_options: types.HttpOptions | dict[str, Any] | None) -> types.HttpOptions:
    options = (
        types.HttpOptions.model_validate(http_options)
        if isinstance(http_options, dict)
        else (http_options or types.HttpOptions()).model_copy()
    )
    for name in _OURS:
        if getattr(options, name) is not None:
            raise TypeError(
                f"client() builds the HTTP clients itself: leave http_options.{name} out and "
                "pass transport= / async_transport= (the inner httpx2 transports) instead"
            )
    retry = options.retry_options
    if retry is not None and (retry.attempts or 0) > 1:
        raise TypeError(
            "the policy does the retrying: leave http_options.retry_options out (it is set "
            "to one attempt so that exactly one layer retries); tighten the policy with "
            "policyengine.overriding()"
        )
    return options


def client(
    *,
    engine: Engine | None = None,
    driver: Driver | None = None,
    governor: Governor | None = None,
    transport: httpx2.BaseTransport | None = None,
    async_transport: httpx2.AsyncBaseTransport | None = None,
    http_options: types.HttpOptions | dict[str, Any] | None = None,
    **kwargs: Any,
) -> genai.Client:
    """A ``google.genai.Client`` that retries as the policy says, sync and
    async (``.aio``) alike.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients (rate limits,
            circuit, sticky failures); default one shared by this client's
            sync and async calls.
        transport: The ``httpx2`` transport that really sends sync calls;
            default ``httpx2.HTTPTransport()``.
        async_transport: The one for async calls; default
            ``httpx2.AsyncHTTPTransport()``.
        http_options: The SDK's ``HttpOptions`` (``base_url``, ``timeout``
            in milliseconds, ``headers``...), except its HTTP clients and
            retry options.
        **kwargs: Arguments of ``google.genai.Client`` (``api_key``...).

    Returns:
        The client.

    Raises:
        TypeError: ``http_options`` names an HTTP client or retries more
            than once, or ``driver`` with ``engine`` or ``governor``.
    """
    options = _options(http_options)
    sync = PolicyTransport(
        transport, engine=engine, driver=driver, governor=governor, model_in=ModelInPath()
    )
    # One driver (so one governor) for the sync and the async calls.
    asynchronous = AsyncPolicyTransport(async_transport, driver=sync.driver, model_in=ModelInPath())
    options.httpx_client = httpx2.Client(transport=sync)
    options.httpx_async_client = httpx2.AsyncClient(transport=asynchronous)
    options.retry_options = types.HttpRetryOptions(attempts=1)
    return genai.Client(http_options=options, **kwargs)
