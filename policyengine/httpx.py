"""httpx: a transport that retries, waits and falls back as the policy says.

    import httpx
    import policyengine as pe
    from policyengine.httpx import PolicyTransport

    client = httpx.Client(transport=PolicyTransport(engine=pe.Engine()))
    response = client.post(url, json={"model": "gpt-4o", "messages": [...]})

``AsyncPolicyTransport`` does the same for ``httpx.AsyncClient``. Each wraps
any inner transport (default ``httpx.HTTPTransport()`` / ``AsyncHTTPTransport()``).

What the client gets back is what it would get without the transport: the
final response (a success, or the error response the policy gave up on; call
``raise_for_status()`` as usual), or the final exception (``httpx.ReadTimeout``
...), which carries a note saying why the policy gave up. The final response's
``extensions["policyengine.action"]`` is the last ``Action`` and
``extensions["policyengine.history"]`` the ``Decision`` of every attempt.

Per request, ``extensions={"policyengine": {"max_attempts": 1}}`` (or a
``policyengine.Override``) tightens the policy. On a fallback the model is
replaced where it lives in the next request: by default the JSON body's
``"model"`` (``model_in=policyengine.ModelInBody()``); with
``model_in=policyengine.ModelInPath()`` a segment of the URL path (Gemini's
``/models/{model}:generateContent``). Every other header, including an
``Idempotency-Key`` you set, is sent again unchanged. A request that names
no model where the transport looks (a GET without a body) cannot fall back:
the policy gives up with the response instead of resending it. The model
found is also the governor's key.

A streamed answer (a 2xx ``text/event-stream``) is read up to the end of its
first event before it is handed over, and decided on: an error event first
is retried like an error status. What the client then reads is what was read,
replayed, and the rest as it arrives; an error event or a dropped connection
later raises ``policyengine.StreamInterrupted`` from the response's iterator.

``policyengine.httpx2`` is the same for the ``httpx2`` fork.
"""

from __future__ import annotations

import httpx

from ._adapting import ModelLocation, driver_for
from ._driver import Driver
from ._engine import Engine
from ._governor import Governor
from ._httpxcore import EXTENSION, AsyncWatchedIter, Kit, WatchedIter, asend, send

__all__ = ["EXTENSION", "AsyncPolicyTransport", "PolicyTransport"]


class _WatchedStream(WatchedIter, httpx.SyncByteStream):
    """What was peeked, replayed, then the rest of the stream, watched."""


class _AsyncWatchedStream(AsyncWatchedIter, httpx.AsyncByteStream):
    """The async ``_WatchedStream``."""


_KIT = Kit(httpx, _WatchedStream, _AsyncWatchedStream)


class PolicyTransport(httpx.BaseTransport):
    """An ``httpx`` transport that makes each request as the policy says.

    Args:
        transport: The transport that really sends; default ``httpx.HTTPTransport()``.
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients; default one
            of this transport's own, from the policy's ``[governor]``.
        model_in: Where a request names its model (what a fallback replaces
            and the governor keys on); default ``ModelInBody()``, the JSON
            body's ``"model"``.

    Raises:
        TypeError: ``driver`` with ``engine`` or ``governor``.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        engine: Engine | None = None,
        driver: Driver | None = None,
        governor: Governor | None = None,
        model_in: ModelLocation | None = None,
    ) -> None:
        self._inner = transport if transport is not None else httpx.HTTPTransport()
        self.driver = driver_for(engine, driver, governor)
        self.model_in = model_in

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            httpx.TransportError: The final network failure (a note says why).
            TypeError: ``extensions["policyengine"]`` is not an override.
        """
        response: httpx.Response = send(_KIT, self.driver, self._inner, request, self.model_in)
        return response

    def close(self) -> None:
        """Close the inner transport."""
        self._inner.close()


class AsyncPolicyTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` async transport that makes each request as the policy says.

    Args:
        transport: The transport that really sends; default
            ``httpx.AsyncHTTPTransport()``.
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients; default one
            of this transport's own, from the policy's ``[governor]``.
        model_in: Where a request names its model; default ``ModelInBody()``.

    Raises:
        TypeError: ``driver`` with ``engine`` or ``governor``.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        engine: Engine | None = None,
        driver: Driver | None = None,
        governor: Governor | None = None,
        model_in: ModelLocation | None = None,
    ) -> None:
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.driver = driver_for(engine, driver, governor)
        self.model_in = model_in

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            httpx.TransportError: The final network failure (a note says why).
            TypeError: ``extensions["policyengine"]`` is not an override.
        """
        response: httpx.Response = await asend(
            _KIT, self.driver, self._inner, request, self.model_in
        )
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()
