"""httpx2, the fork of httpx that the Anthropic SDK 2.x takes (and the OpenAI
SDK 3.x and Google's GenAI SDK accept): transports that retry, wait and fall
back as the policy says, exactly as ``policyengine.httpx``'s do (its docstring
tells the whole behaviour: the final response or exception, the extensions,
per-request overrides, where the model lives, streams).

    import httpx2
    import policyengine as pe
    from policyengine.httpx2 import PolicyTransport

    client = httpx2.Client(transport=PolicyTransport(engine=pe.Engine()))
    response = client.post(url, json={"model": "claude-sonnet-5-5", "messages": [...]})

``AsyncPolicyTransport`` does the same for ``httpx2.AsyncClient``. An
``httpx`` transport cannot serve an ``httpx2`` client (nor the reverse):
their requests, responses and streams are different classes.
"""

from __future__ import annotations

import httpx2

from ._adapting import ModelLocation, driver_for
from ._driver import Driver
from ._engine import Engine
from ._governor import Governor
from ._httpxcore import EXTENSION, AsyncWatchedIter, Kit, WatchedIter, asend, send

__all__ = ["EXTENSION", "AsyncPolicyTransport", "PolicyTransport"]


class _WatchedStream(WatchedIter, httpx2.SyncByteStream):
    """What was peeked, replayed, then the rest of the stream, watched."""


class _AsyncWatchedStream(AsyncWatchedIter, httpx2.AsyncByteStream):
    """The async ``_WatchedStream``."""


_KIT = Kit(httpx2, _WatchedStream, _AsyncWatchedStream)


class PolicyTransport(httpx2.BaseTransport):
    """An ``httpx2`` transport that makes each request as the policy says.

    Args:
        transport: The transport that really sends; default ``httpx2.HTTPTransport()``.
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
        transport: httpx2.BaseTransport | None = None,
        *,
        engine: Engine | None = None,
        driver: Driver | None = None,
        governor: Governor | None = None,
        model_in: ModelLocation | None = None,
    ) -> None:
        self._inner = transport if transport is not None else httpx2.HTTPTransport()
        self.driver = driver_for(engine, driver, governor)
        self.model_in = model_in

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            httpx2.TransportError: The final network failure (a note says why).
            TypeError: ``extensions["policyengine"]`` is not an override.
        """
        response: httpx2.Response = send(_KIT, self.driver, self._inner, request, self.model_in)
        return response

    def close(self) -> None:
        """Close the inner transport."""
        self._inner.close()


class AsyncPolicyTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2`` async transport that makes each request as the policy says.

    Args:
        transport: The transport that really sends; default
            ``httpx2.AsyncHTTPTransport()``.
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
        transport: httpx2.AsyncBaseTransport | None = None,
        *,
        engine: Engine | None = None,
        driver: Driver | None = None,
        governor: Governor | None = None,
        model_in: ModelLocation | None = None,
    ) -> None:
        self._inner = transport if transport is not None else httpx2.AsyncHTTPTransport()
        self.driver = driver_for(engine, driver, governor)
        self.model_in = model_in

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            httpx2.TransportError: The final network failure (a note says why).
            TypeError: ``extensions["policyengine"]`` is not an override.
        """
        response: httpx2.Response = await asend(
            _KIT, self.driver, self._inner, request, self.model_in
        )
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()
