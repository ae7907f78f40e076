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
``policyengine.Override``) tightens the policy. On a fallback the JSON
body's ``"model"`` is replaced in the next request; every other header,
including an ``Idempotency-Key`` you set, is sent again unchanged. A
request whose body names no model (a GET, a model in the URL) cannot fall
back: the policy gives up with the response instead of resending it.
"""

from __future__ import annotations

import httpx

from ._adapting import body_model, destination, driver_for, refusal, swap_model, wants_body
from ._driver import Driver
from ._engine import Engine
from ._governor import Deny, Governor
from ._model import Response
from ._overrides import Override
from ._results import Attempt, Outcome

__all__ = ["EXTENSION", "AsyncPolicyTransport", "PolicyTransport"]

#: The ``request.extensions`` key of a per-request ``Override`` (or a dict of its fields).
EXTENSION = "policyengine"


def _override(request: httpx.Request) -> Override | None:
    return Override.of(request.extensions.get(EXTENSION))


def _retarget(request: httpx.Request, model: str | None, original: str | None) -> httpx.Request:
    """The request to send for ``model``: the original, or a copy whose JSON
    body names the fallback model."""
    if model is None or original is None or model == original:
        return request
    content = swap_model(request.content, model)
    headers = request.headers.copy()
    headers["Content-Length"] = str(len(content))
    return httpx.Request(
        request.method,
        request.url,
        headers=headers,
        content=content,
        extensions=request.extensions,
    )


def _decoded(response: httpx.Response, raw: bytes) -> bytes:
    """The body as the engine should read it: content-decoded (gzip...)."""
    if not response.headers.get("content-encoding"):
        return raw
    try:
        return httpx.Response(response.status_code, headers=response.headers, content=raw).content
    except Exception:
        return raw


def _view_of(response: httpx.Response, body: bytes, request: httpx.Request) -> Response:
    """The engine's view: status, every header (repeats kept), the decoded body."""
    return Response(response.status_code, response.headers.multi_items(), body, request.method)


def _rebuilt(response: httpx.Response, raw: bytes, request: httpx.Request) -> httpx.Response:
    """A fresh, unread response with the same status, headers and raw body, so
    the client reads (and streams) it as if nothing had been read."""
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx.ByteStream(raw),
        extensions=dict(response.extensions),
        request=request,
    )


class _Result:
    """An attempt's response and the engine's view of it."""

    __slots__ = ("response", "view")

    def __init__(self, response: httpx.Response, view: Response) -> None:
        self.response = response
        self.view = view


def _refused(deny: Deny, request: httpx.Request) -> _Result:
    """The governor refused to send: the response to hand back instead."""
    made = refusal(deny)
    response = httpx.Response(
        made.status,
        headers=[(n, v) for n, values in made.headers.items() for v in values],
        content=made.body,
        request=request,
    )
    return _Result(response, made)


def _finish(outcome: Outcome[_Result]) -> httpx.Response:
    response = outcome.as_client().response
    response.extensions["policyengine.action"] = outcome.action
    response.extensions["policyengine.history"] = outcome.history
    return response


class PolicyTransport(httpx.BaseTransport):
    """An ``httpx`` transport that makes each request as the policy says.

    Args:
        transport: The transport that really sends; default ``httpx.HTTPTransport()``.
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients; default one
            of this transport's own, from the policy's ``[governor]``.

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
    ) -> None:
        self._inner = transport if transport is not None else httpx.HTTPTransport()
        self.driver = driver_for(engine, driver, governor)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            httpx.TransportError: The final network failure (a note says why).
            TypeError: ``extensions["policyengine"]`` is not an override.
        """
        request.read()  # a streamed upload must be replayable
        override = _override(request)
        model = body_model(request.content)

        def attempt(a: Attempt) -> _Result:
            sent = _retarget(request, a.model, model)
            response = self._inner.handle_request(sent)
            if not wants_body(response.status_code, response.headers.get("content-type")):
                return _Result(response, _view_of(response, b"", sent))
            try:
                raw = b"".join(response.iter_raw())
            finally:
                response.close()
            view = _view_of(response, _decoded(response, raw), sent)
            return _Result(_rebuilt(response, raw, sent), view)

        outcome = self.driver.run(
            attempt,
            model=model,
            method=request.method,
            override=override,
            view=_view,
            discard=_close,
            fallback=model is not None,
            destination=destination(str(request.url), request.headers.multi_items()),
            refused=lambda deny: _refused(deny, request),
        )
        return _finish(outcome)

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
    ) -> None:
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.driver = driver_for(engine, driver, governor)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            httpx.TransportError: The final network failure (a note says why).
            TypeError: ``extensions["policyengine"]`` is not an override.
        """
        await request.aread()
        override = _override(request)
        model = body_model(request.content)

        async def attempt(a: Attempt) -> _Result:
            sent = _retarget(request, a.model, model)
            response = await self._inner.handle_async_request(sent)
            if not wants_body(response.status_code, response.headers.get("content-type")):
                return _Result(response, _view_of(response, b"", sent))
            try:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
            view = _view_of(response, _decoded(response, raw), sent)
            return _Result(_rebuilt(response, raw, sent), view)

        outcome = await self.driver.arun(
            attempt,
            model=model,
            method=request.method,
            override=override,
            view=_view,
            discard=_aclose,
            fallback=model is not None,
            destination=destination(str(request.url), request.headers.multi_items()),
            refused=lambda deny: _refused(deny, request),
        )
        return _finish(outcome)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()


def _view(result: _Result) -> Response:
    return result.view


def _close(result: _Result) -> None:
    result.response.close()


async def _aclose(result: _Result) -> None:
    await result.response.aclose()
