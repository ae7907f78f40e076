"""aiohttp: a client middleware that retries, waits and falls back as the policy says.

    import aiohttp
    import policyengine as pe
    from policyengine.aiohttp import PolicyMiddleware

    async with aiohttp.ClientSession(middlewares=(PolicyMiddleware(engine=pe.Engine()),)) as s:
        async with s.post(url, json={"model": "gpt-4o", "messages": [...]}) as response:
            data = await response.json()

Client middlewares need aiohttp >= 3.12. What the session gets back is what
it would get without the middleware: the final response (a success, or the
error response the policy gave up on, its body already read; call
``raise_for_status()`` as usual), or the final exception
(``aiohttp.SocketTimeoutError``...), which carries a note saying why the
policy gave up.

On a fallback, the JSON body's ``"model"`` is replaced in the next request;
every other header, including an ``Idempotency-Key`` you set, is sent again
unchanged. A request whose body names no model (a GET, a model in the URL)
cannot fall back: the policy gives up with the response instead of resending
it. To tighten the policy for some calls, wrap them in
``policyengine.overriding(max_attempts=1)``.

aiohttp's ``ClientTimeout(total=...)`` covers the whole call, retries and
waits included; use ``sock_read`` / ``sock_connect`` for a per-attempt limit.

A streamed answer (a 2xx ``text/event-stream``) is read up to the end of its
first event inside the attempt and decided on (an error event first is
retried like an error status). ``response.content`` is then a stand-in for
aiohttp's ``StreamReader`` that replays what was read and passes the rest on
as it arrives, watched (``readany``, ``read``, ``readline``, ``readuntil``,
``readchunk``, ``readexactly``, ``read_nowait`` and their iterators): an
error event or a dropped connection later raises
``policyengine.StreamInterrupted`` from the read that reaches it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.client_middlewares import ClientHandlerType
from aiohttp.payload import AsyncIterablePayload, BytesPayload
from multidict import CIMultiDict, CIMultiDictProxy

from ._adapting import (
    body_model,
    destination,
    driver_for,
    refusal,
    swap_model,
    wants_body,
)
from ._driver import Driver
from ._engine import Engine
from ._errors import add_note, give_up_note
from ._governor import Deny, Governor
from ._model import Response
from ._peek import BodyRead, Peek, watched
from ._results import Attempt, Outcome
from ._streaming import Unwatched, Watch, judge

__all__ = ["PolicyMiddleware"]


class PolicyMiddleware:
    """An aiohttp client middleware driven by a policy.

    Pass it in ``ClientSession(middlewares=(...,))``, or per request with
    ``session.post(..., middlewares=(...,))``.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients; default one
            of this adapter's own, from the policy's ``[governor]``.

    When the governor refuses to send a call's first attempt (a sticky
    failure, an open circuit), there is no response to hand back: the
    middleware raises ``aiohttp.ClientResponseError`` with the status the
    refusal stands for (the replayed one, or 503 / 429), as
    ``raise_for_status()`` would, with a note saying why.

    Raises:
        TypeError: ``driver`` with ``engine`` or ``governor``.
    """

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        driver: Driver | None = None,
        governor: Governor | None = None,
    ) -> None:
        self.driver = driver_for(engine, driver, governor)

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Send ``request`` through ``handler``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            aiohttp.ClientError: The final network failure (a note says why).
            asyncio.TimeoutError: The session's total timeout ran out.
        """
        payload = request.body
        body: bytes | None = None
        if isinstance(payload, (BytesPayload, AsyncIterablePayload)):
            # An async iterable is read once (aiohttp caches its chunks), so
            # that a retry sends it whole rather than what is left of it.
            body = await payload.as_bytes()
        model = body_model(body)
        current = model
        method = request.method
        bodies: dict[int, bytes] = {}  # id(response) -> the body read for the policy
        watches: dict[int, Watch] = {}  # id(response) -> the watch of a stream

        async def attempt(a: Attempt) -> aiohttp.ClientResponse:
            nonlocal current
            if body is not None and model is not None and a.model not in (None, current):
                assert a.model is not None
                await request.update_body(swap_model(body, a.model))
                current = a.model
            response = await handler(request)
            headers = response.headers
            if watched(
                response.status, headers.get("Content-Type"), headers.get("Content-Encoding")
            ):
                decide = judge(self.driver, a, method=method, fallback=model is not None)
                watches[id(response)] = await _peek(response, decide, method, bodies)
            elif wants_body(response.status, response.headers.get("Content-Type")):
                bodies[id(response)] = await _read(response)
            return response

        def view(response: aiohttp.ClientResponse) -> Response:
            return Response(
                response.status, _headers(response), bodies.get(id(response), b""), method
            )

        outcome: Outcome[aiohttp.ClientResponse] = await self.driver.arun(
            attempt,
            model=model,
            method=method,
            view=view,
            discard=_release,
            fallback=model is not None,
            destination=destination(str(request.url), request.headers.items()),
            refused=lambda deny: _refused(deny, request),
        )
        response = outcome.as_client()
        watch = watches.get(id(response))
        if watch is not None:
            watch.settled = outcome.action
        return response


def _headers(response: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]


async def _peek(
    response: aiohttp.ClientResponse, decide: Any, method: str, bodies: dict[int, bytes]
) -> Watch:
    """Read ``response`` up to the end of its first event, put a watched
    replay in place of its ``content`` and the body to decide on in ``bodies``.

    Raises:
        aiohttp.ClientError: The stream broke before its first event.
    """
    content = response.content
    peek = Peek()
    await _fill(response, peek)
    watch = Watch(decide, response.status, _headers(response), method)
    response.content = _WatchedContent(content, b"".join(peek.chunks), watch)  # type: ignore[assignment]
    bodies[id(response)] = peek.body()
    return watch


async def _fill(response: aiohttp.ClientResponse, into: BodyRead | Peek) -> None:
    """Read the body of ``response`` into ``into`` until it has read enough or
    the body ends.

    Raises:
        aiohttp.ClientError: The body broke off (the response released).
    """
    content = response.content
    try:
        while True:
            chunk = await content.readany()
            if not chunk:
                into.end()
                return
            if into.add(chunk):
                return
    except BaseException:
        response.release()
        raise


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """Read the body of ``response`` for the policy, as far as ``BodyRead``
    allows, and put a replay of it in place of its ``content``, then what was
    not read yet (all read: kept, as ``read()`` keeps it). The body read.

    Raises:
        aiohttp.ClientError: The body broke off.
    """
    content = response.content
    read = BodyRead()
    await _fill(response, read)
    body = read.body()
    response.content = _WatchedContent(content, body, Unwatched())  # type: ignore[assignment]
    if read.ended:
        await response.read()
    return body


def _refused(deny: Deny, request: aiohttp.ClientRequest) -> aiohttp.ClientResponse:
    """The governor refused to send: raise what ``raise_for_status`` would."""
    made = refusal(deny)
    error = aiohttp.ClientResponseError(
        request.request_info,
        (),
        status=made.status,
        message=deny.action.remediation,
        headers=CIMultiDictProxy(
            CIMultiDict((n, v) for n, values in made.headers.items() for v in values)
        ),
    )
    add_note(error, give_up_note(deny.action, 1))
    raise error


def _release(response: aiohttp.ClientResponse) -> None:
    response.release()


class _Reads:
    """An async iterator over what ``read`` returns, until b""."""

    def __init__(self, read: Callable[[], Awaitable[bytes]]) -> None:
        self._read = read

    def __aiter__(self) -> _Reads:
        return self

    async def __anext__(self) -> bytes:
        data = await self._read()
        if not data:
            raise StopAsyncIteration
        return data


class _Chunks:
    """``iter_chunks()``: ``(data, end_of_http_chunk)`` until the end."""

    def __init__(self, content: _WatchedContent) -> None:
        self._content = content

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> tuple[bytes, bool]:
        data, end = await self._content.readchunk()
        if not data and not end:
            raise StopAsyncIteration
        return data, end


class _WatchedContent:
    """``response.content`` of a watched stream: what was peeked, replayed,
    then the rest of aiohttp's ``StreamReader``, every piece read through the
    watch. Any other attribute is the real reader's."""

    def __init__(
        self, inner: aiohttp.StreamReader, replay: bytes, watch: Watch | Unwatched
    ) -> None:
        self._inner = inner
        self._replay = replay
        self._watch = watch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _take(self, n: int = -1) -> bytes:
        self._watch.raise_pending()
        data = self._replay if n < 0 else self._replay[:n]
        self._replay = self._replay[len(data) :]
        return self._pass(data)

    def _pass(self, data: bytes) -> bytes:
        """What of ``data``, just read, to hand out (b"": the end)."""
        if not data:
            self._watch.ended()
            return data
        return self._watch.passing(data)

    async def _read(self, read: Awaitable[Any]) -> Any:
        self._watch.raise_pending()
        try:
            return await read
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = self._watch.broke(exc)
            if failure is exc:
                raise
            raise failure from exc

    async def readany(self) -> bytes:
        if self._replay:
            return self._take()
        return self._pass(await self._read(self._inner.readany()))

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = []
            while part := await self.readany():
                parts.append(part)
            return b"".join(parts)
        if self._replay:
            return self._take(n)
        return self._pass(await self._read(self._inner.read(n)))

    async def readchunk(self) -> tuple[bytes, bool]:
        if self._replay:
            return self._take(), False
        data, end = await self._read(self._inner.readchunk())
        if not data:
            if not end:  # (b"", False): the end of the stream
                self._watch.ended()
            return data, end
        return self._pass(data), end

    async def readuntil(self, separator: bytes = b"\n", *, max_size: int | None = None) -> bytes:
        if self._replay:
            found = self._replay.find(separator)
            if found >= 0:
                return self._take(found + len(separator))
            head = self._take()
            if self._watch.pending is not None:  # cut short: raise at the next read
                return head
            rest = await self._read(self._inner.readuntil(separator, max_size=max_size))
            return head + self._pass(rest)
        return self._pass(await self._read(self._inner.readuntil(separator, max_size=max_size)))

    async def readline(self, *, max_line_length: int | None = None) -> bytes:
        return await self.readuntil(max_size=max_line_length)

    async def readexactly(self, n: int) -> bytes:
        parts: list[bytes] = []
        while n > 0:
            part = await self.read(n)
            if not part:
                partial = b"".join(parts)
                raise asyncio.IncompleteReadError(partial, len(partial) + n)
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def read_nowait(self, n: int = -1) -> bytes:
        self._watch.raise_pending()
        if self._replay:
            return self._take(n)
        data = self._inner.read_nowait(n)
        return self._watch.passing(data) if data else data

    def at_eof(self) -> bool:
        return not self._replay and self._inner.at_eof()

    def is_eof(self) -> bool:
        return not self._replay and self._inner.is_eof()

    def __aiter__(self) -> _Reads:
        return _Reads(self.readline)

    def iter_chunked(self, n: int) -> _Reads:
        return _Reads(lambda: self.read(n))

    def iter_any(self) -> _Reads:
        return _Reads(self.readany)

    def iter_chunks(self) -> _Chunks:
        return _Chunks(self)
