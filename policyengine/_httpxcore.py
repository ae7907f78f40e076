"""The work of the httpx transports, written once for ``httpx`` and its fork
``httpx2`` (same API, other classes: the Anthropic SDK 2.x takes only
``httpx2`` clients). ``policyengine.httpx`` and ``policyengine.httpx2`` pass
their library's classes in a ``Kit``; neither library is imported here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple

from ._adapting import (
    ModelInBody,
    ModelLocation,
    destination,
    refusal,
    wants_body,
)
from ._driver import Driver
from ._governor import Deny
from ._model import Response
from ._overrides import Override
from ._peek import BodyRead, Peek, watched
from ._results import Attempt, Outcome
from ._streaming import Unwatched, Watch, judge, replay_watch

__all__ = ["EXTENSION", "AsyncWatchedIter", "Kit", "WatchedIter", "asend", "send"]

#: The ``request.extensions`` key of a per-request ``Override`` (or a dict of its fields).
EXTENSION = "policyengine"

#: Where the model is when an adapter is told nothing: the JSON body's ``"model"``.
_IN_BODY = ModelInBody()


class Kit(NamedTuple):
    """One httpx-like library: its module and its watched-stream classes
    (``WatchedIter`` / ``AsyncWatchedIter`` mixed into its own
    ``SyncByteStream`` / ``AsyncByteStream``)."""

    module: Any
    stream: Any
    async_stream: Any


def _override(request: Any) -> Override | None:
    return Override.of(request.extensions.get(EXTENSION))


def _retarget(
    kit: Kit, request: Any, model: str | None, original: str | None, where: ModelLocation
) -> Any:
    """The request to send for ``model``: the original, or a copy that names
    the fallback model where the model lives (the JSON body, the URL path)."""
    if model is None or original is None or model == original:
        return request
    url, content = where.moved(str(request.url), request.content, model)
    headers = request.headers.copy()
    headers["Content-Length"] = str(len(content))
    return kit.module.Request(
        request.method, url, headers=headers, content=content, extensions=request.extensions
    )


def _decoded(kit: Kit, response: Any, raw: bytes) -> bytes:
    """The body as the engine should read it: content-decoded (gzip...)."""
    if not response.headers.get("content-encoding"):
        return raw
    try:
        decoded: bytes = kit.module.Response(
            response.status_code, headers=response.headers, content=raw
        ).content
    except Exception:
        return raw
    return decoded


def _view_of(response: Any, body: bytes, request: Any) -> Response:
    """The engine's view: status, every header (repeats kept), the decoded body."""
    return Response(response.status_code, response.headers.multi_items(), body, request.method)


def _rebuilt(kit: Kit, response: Any, raw: bytes, request: Any) -> Any:
    """A fresh, unread response with the same status, headers and raw body, so
    the client reads (and streams) it as if nothing had been read."""
    return kit.module.Response(
        response.status_code,
        headers=response.headers,
        stream=kit.module.ByteStream(raw),
        extensions=dict(response.extensions),
        request=request,
    )


class _Result:
    """An attempt's response and the engine's view of it (and, for a stream,
    its watch)."""

    __slots__ = ("response", "view", "watch")

    def __init__(self, response: Any, view: Response, watch: Watch | None = None) -> None:
        self.response = response
        self.view = view
        self.watch = watch


class WatchedIter:
    """What was peeked, replayed, then the rest of the stream, watched (the
    body of a library's ``SyncByteStream``)."""

    def __init__(
        self, replay: list[bytes], rest: Iterator[bytes], watch: Watch | Unwatched, inner: Any
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


class AsyncWatchedIter:
    """The async ``WatchedIter`` (the body of an ``AsyncByteStream``)."""

    def __init__(
        self,
        replay: list[bytes],
        rest: AsyncIterator[bytes],
        watch: Watch | Unwatched,
        inner: Any,
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


def _streams(response: Any) -> bool:
    headers = response.headers
    return watched(
        response.status_code, headers.get("content-type"), headers.get("content-encoding")
    )


def _restreamed(kit: Kit, response: Any, stream: Any, sent: Any) -> Any:
    """``response`` again, with ``stream`` (a replay, then the rest) as its body."""
    return kit.module.Response(
        response.status_code,
        headers=response.headers,
        stream=stream,
        extensions=dict(response.extensions),
        request=sent,
    )


def _watched(kit: Kit, response: Any, peek: Peek, stream: Any, watch: Watch, sent: Any) -> _Result:
    """The response to hand over (its stream replays, then watches) and the
    view the driver decides on (the stream through its first event)."""
    rebuilt = _restreamed(kit, response, stream, sent)
    return _Result(rebuilt, _view_of(response, peek.body(), sent), watch)


def _handed_on(kit: Kit, response: Any, read: BodyRead, stream: Any, sent: Any) -> _Result:
    """A body longer than an adapter reads to decide (``BodyRead``): the view
    has what was read; the response handed over replays it, then reads on."""
    rebuilt = _restreamed(kit, response, stream, sent)
    return _Result(rebuilt, _view_of(response, _decoded(kit, response, read.body()), sent))


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


def _refused(kit: Kit, deny: Deny, request: Any, *, asynchronous: bool = False) -> _Result:
    """The governor refused to send: the response to hand back instead."""
    made = refusal(deny)
    headers = [(n, v) for n, values in made.headers.items() for v in values]
    watch = replay_watch(deny.action, made)
    if watch is None:
        response = kit.module.Response(
            made.status, headers=headers, content=made.body, request=request
        )
        return _Result(response, made)
    # A stream whose first event was the sticky error: replayed, and watched.
    if asynchronous:
        stream = kit.async_stream([made.body], _nothing(), watch, None)
    else:
        stream = kit.stream([made.body], iter(()), watch, None)
    response = kit.module.Response(made.status, headers=headers, stream=stream, request=request)
    return _Result(response, made)


def _finish(outcome: Outcome[_Result]) -> Any:
    result = outcome.as_client()
    if result.watch is not None:
        result.watch.settled = outcome.action
    response = result.response
    response.extensions["policyengine.action"] = outcome.action
    response.extensions["policyengine.history"] = outcome.history
    return response


def send(kit: Kit, driver: Driver, inner: Any, request: Any, where: ModelLocation | None) -> Any:
    """``PolicyTransport.handle_request``: send ``request`` through ``inner``
    as the policy says; the final response (or the final exception)."""
    request.read()  # a streamed upload must be replayable
    override = _override(request)
    where = where if where is not None else _IN_BODY
    url = str(request.url)
    model = where.find(url, request.content)

    def attempt(a: Attempt) -> _Result:
        sent = _retarget(kit, request, a.model, model, where)
        response = inner.handle_request(sent)
        if _streams(response):
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
                driver, a, method=sent.method, override=override, fallback=model is not None
            )
            watch = Watch(decide, response.status_code, response.headers.multi_items(), sent.method)
            stream = kit.stream(peek.chunks, rest, watch, response)
            return _watched(kit, response, peek, stream, watch, sent)
        if not wants_body(response.status_code, response.headers.get("content-type")):
            return _Result(response, _view_of(response, b"", sent))
        rest = response.iter_raw()
        read = BodyRead()
        try:
            for chunk in rest:
                if read.add(chunk):
                    break
            else:
                read.end()
        except BaseException:
            response.close()
            raise
        if not read.ended:  # decided on what was read; the rest is read on
            stream = kit.stream(read.chunks, rest, Unwatched(), response)
            return _handed_on(kit, response, read, stream, sent)
        response.close()
        raw = read.body()
        view = _view_of(response, _decoded(kit, response, raw), sent)
        return _Result(_rebuilt(kit, response, raw, sent), view)

    outcome = driver.run(
        attempt,
        model=model,
        method=request.method,
        override=override,
        view=_view,
        discard=_close,
        fallback=model is not None,
        destination=destination(url, request.headers.multi_items()),
        refused=lambda deny: _refused(kit, deny, request),
    )
    return _finish(outcome)


async def asend(
    kit: Kit, driver: Driver, inner: Any, request: Any, where: ModelLocation | None
) -> Any:
    """``AsyncPolicyTransport.handle_async_request``: the async ``send``."""
    await request.aread()
    override = _override(request)
    where = where if where is not None else _IN_BODY
    url = str(request.url)
    model = where.find(url, request.content)

    async def attempt(a: Attempt) -> _Result:
        sent = _retarget(kit, request, a.model, model, where)
        response = await inner.handle_async_request(sent)
        if _streams(response):
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
                driver, a, method=sent.method, override=override, fallback=model is not None
            )
            watch = Watch(decide, response.status_code, response.headers.multi_items(), sent.method)
            stream = kit.async_stream(peek.chunks, rest, watch, response)
            return _watched(kit, response, peek, stream, watch, sent)
        if not wants_body(response.status_code, response.headers.get("content-type")):
            return _Result(response, _view_of(response, b"", sent))
        rest = response.aiter_raw()
        read = BodyRead()
        try:
            async for chunk in rest:
                if read.add(chunk):
                    break
            else:
                read.end()
        except BaseException:
            await response.aclose()
            raise
        if not read.ended:  # decided on what was read; the rest is read on
            stream = kit.async_stream(read.chunks, rest, Unwatched(), response)
            return _handed_on(kit, response, read, stream, sent)
        await response.aclose()
        raw = read.body()
        view = _view_of(response, _decoded(kit, response, raw), sent)
        return _Result(_rebuilt(kit, response, raw, sent), view)

    outcome = await driver.arun(
        attempt,
        model=model,
        method=request.method,
        override=override,
        view=_view,
        discard=_aclose,
        fallback=model is not None,
        destination=destination(url, request.headers.multi_items()),
        refused=lambda deny: _refused(kit, deny, request, asynchronous=True),
    )
    return _finish(outcome)


def _view(result: _Result) -> Response:
    return result.view


def _close(result: _Result) -> None:
    result.response.close()


async def _aclose(result: _Result) -> None:
    await result.response.aclose()
