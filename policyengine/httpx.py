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

A streamed answer (a 2xx ``text/event-stream``) is read up to the end of its
first event before it is handed over, and decided on: an error event first
is retried like an error status. What the client then reads is what was read,
replayed, and the rest as it arrives; an error event or a dropped connection
later raises ``policyengine.StreamInterrupted`` from the response's iterator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx

from ._adapting import body_model, destination, driver_for, refusal, swap_model, wants_body
from ._driver import Driver
from ._engine import Engine
from ._governor import Deny, Governor
from ._model import Response
from ._overrides import Override
from ._peek import Peek, watched
from ._results import Attempt, Outcome
from ._streaming import Watch, judge, replay_watch

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
    """An attempt's response and the engine's view of it (and, for a stream,
    its watch)."""

    __slots__ = ("response", "view", "watch")

    def __init__(
        self, response: httpx.Response, view: Response, watch: Watch | None = None
    ) -> None:
        self.response = response
        self.view = view
        self.watch = watch


class _WatchedStream(httpx.SyncByteStream):
    """What was peeked, replayed, then the rest of the stream, watched."""

    def __init__(
        self,
        replay: list[bytes],
        rest: Iterator[bytes],
        watch: Watch,
        inner: httpx.Response | None,
    ) -> None:
        self._replay = replay
        self._rest = rest
        self._watch = watch
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        watch = self._watch
        replay, self._replay = self._replay, []
        for chunk in replay:
            watch.raise_pending()
            part = watch.passing(chunk)
            if part:
                yield part
        while True:
            if watch.pending is not None:
                raise watch.pending
            try:
                chunk = next(self._rest)
            except StopIteration:
                break
            except Exception as exc:
                failure = watch.broke(exc)
                if failure is exc:
                    raise
                raise failure from exc
            part = watch.passing(chunk)
            if part:
                yield part
        watch.ended()

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


class _AsyncWatchedStream(httpx.AsyncByteStream):
    """The async ``_WatchedStream``."""

    def __init__(
        self,
        replay: list[bytes],
        rest: AsyncIterator[bytes],
        watch: Watch,
        inner: httpx.Response | None,
    ) -> None:
        self._replay = replay
        self._rest = rest
        self._watch = watch
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        watch = self._watch
        replay, self._replay = self._replay, []
        for chunk in replay:
            watch.raise_pending()
            part = watch.passing(chunk)
            if part:
                yield part
        while True:
            watch.raise_pending()
            try:
                chunk = await self._rest.__anext__()
            except StopAsyncIteration:
                break
            except Exception as exc:
                failure = watch.broke(exc)
                if failure is exc:
                    raise
                raise failure from exc
            part = watch.passing(chunk)
            if part:
                yield part
        watch.ended()

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def _streams(response: httpx.Response) -> bool:
    headers = response.headers
    return watched(
        response.status_code, headers.get("content-type"), headers.get("content-encoding")
    )


def _watched(
    response: httpx.Response,
    peek: Peek,
    stream: httpx.SyncByteStream | httpx.AsyncByteStream,
    watch: Watch,
    sent: httpx.Request,
) -> _Result:
    """The response to hand over (its stream replays, then watches) and the
    view the driver decides on (the stream through its first event)."""
    rebuilt = httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=stream,
        extensions=dict(response.extensions),
        request=sent,
    )
    return _Result(rebuilt, _view_of(response, peek.body(), sent), watch)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


def _refused(deny: Deny, request: httpx.Request, *, asynchronous: bool = False) -> _Result:
    """The governor refused to send: the response to hand back instead."""
    made = refusal(deny)
    headers = [(n, v) for n, values in made.headers.items() for v in values]
    watch = replay_watch(deny.action, made)
    if watch is None:
        response = httpx.Response(made.status, headers=headers, content=made.body, request=request)
        return _Result(response, made)
    # A stream whose first event was the sticky error: replayed, and watched.
    stream: httpx.SyncByteStream | httpx.AsyncByteStream
    if asynchronous:
        stream = _AsyncWatchedStream([made.body], _nothing(), watch, None)
    else:
        stream = _WatchedStream([made.body], iter(()), watch, None)
    response = httpx.Response(made.status, headers=headers, stream=stream, request=request)
    return _Result(response, made)


def _finish(outcome: Outcome[_Result]) -> httpx.Response:
    result = outcome.as_client()
    if result.watch is not None:
        result.watch.settled = outcome.action
    response = result.response
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
            if _streams(response):
                assert isinstance(response.stream, httpx.SyncByteStream)
                rest = iter(response.stream)
                peek = Peek()
                try:
                    for chunk in rest:
                        if peek.add(chunk):
                            break
                    else:
                        peek.end()
                except BaseException:
                    response.close()
                    raise
                decide = judge(
                    self.driver,
                    a,
                    method=sent.method,
                    override=override,
                    fallback=model is not None,
                )
                watch = Watch(
                    decide, response.status_code, response.headers.multi_items(), sent.method
                )
                stream = _WatchedStream(peek.chunks, rest, watch, response)
                return _watched(response, peek, stream, watch, sent)
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
            if _streams(response):
                assert isinstance(response.stream, httpx.AsyncByteStream)
                rest = response.stream.__aiter__()
                peek = Peek()
                try:
                    async for chunk in rest:
                        if peek.add(chunk):
                            break
                    else:
                        peek.end()
                except BaseException:
                    await response.aclose()
                    raise
                decide = judge(
                    self.driver,
                    a,
                    method=sent.method,
                    override=override,
                    fallback=model is not None,
                )
                watch = Watch(
                    decide, response.status_code, response.headers.multi_items(), sent.method
                )
                stream = _AsyncWatchedStream(peek.chunks, rest, watch, response)
                return _watched(response, peek, stream, watch, sent)
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
            refused=lambda deny: _refused(deny, request, asynchronous=True),
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
