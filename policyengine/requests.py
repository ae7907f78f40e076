"""requests: an ``HTTPAdapter`` that retries, waits and falls back as the policy says.

    import requests
    import policyengine as pe
    from policyengine.requests import PolicyAdapter

    session = requests.Session()
    session.mount("https://", PolicyAdapter(engine=pe.Engine()))
    response = session.post(url, json={"model": "gpt-4o", "messages": [...]})

``PolicyAdapter`` is a ``requests.adapters.HTTPAdapter`` (it takes the same
pool arguments), so a session keeps its auth, cookies, proxies and hooks.
What the session gets back is what it would get without it: the final
response (a success, or the error response the policy gave up on; call
``raise_for_status()`` as usual), or the final exception
(``requests.ReadTimeout``...), which carries a note saying why the policy
gave up.

On a fallback, the JSON body's ``"model"`` is replaced in the next request;
every other header, including an ``Idempotency-Key`` you set, is sent again
unchanged. A request whose body names no model (a GET, a model in the URL)
cannot fall back: the policy gives up with the response instead of resending
it. To tighten the policy for some calls, wrap them in
``policyengine.overriding(max_attempts=1)``.

A streamed answer (a 2xx ``text/event-stream``) is read up to the end of its
first event inside the attempt and decided on (an error event first is
retried like an error status); ``response.raw`` then replays what was read
and passes the rest on as it arrives, watched: an error event or a dropped
connection later raises ``policyengine.StreamInterrupted`` from
``iter_content`` / ``iter_lines`` / ``raw.read`` (or from the call itself
without ``stream=True``, as requests reads the body there).

For retries and waits below requests (no model fallback), urllib3's way:
``HTTPAdapter(max_retries=policyengine.urllib3.PolicyRetry())``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.exceptions import (
    ChunkedEncodingError,
    ContentDecodingError,
    UnrewindableBodyError,
)
from requests.utils import rewind_body
from urllib3 import HTTPHeaderDict
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

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
from ._governor import Deny, Governor
from ._model import Response
from ._peek import BodyRead, Peek, watched
from ._results import Attempt, Outcome
from ._streaming import Unwatched, Watch, judge, replay_watch

__all__ = ["PolicyAdapter"]

#: A read of a streamed answer asks for at most this many bytes (and, on a
#: chunked stream, returns what one HTTP chunk holds, as soon as it arrives).
READ_SIZE = 16 * 1024


class PolicyAdapter(HTTPAdapter):
    """A transport adapter for ``requests`` sessions driven by a policy.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients; default one
            of this adapter's own, from the policy's ``[governor]``.
        **kwargs: ``HTTPAdapter`` arguments (``pool_connections``,
            ``pool_maxsize``, ``pool_block``); not ``max_retries``.

    Raises:
        TypeError: ``max_retries`` was given (the policy does the retrying),
            or ``driver`` with ``engine`` or ``governor``.
    """

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        driver: Driver | None = None,
        governor: Governor | None = None,
        **kwargs: Any,
    ) -> None:
        if "max_retries" in kwargs:
            raise TypeError(
                "PolicyAdapter does the retrying as the policy says: drop max_retries "
                "(to limit attempts for some calls, use policyengine.overriding(max_attempts=...))"
            )
        self.driver = driver_for(engine, driver, governor)
        super().__init__(**kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            requests.RequestException: The final network failure (a note says why).
        """
        request, rewind = _replayable(request)
        model = body_model(request.body)
        method = request.method or "GET"
        peeked: dict[int, tuple[Watch, bytes]] = {}  # id(response) -> its watch, the view's body
        bodies: dict[int, bytes] = {}  # id(response) -> the body read for the policy

        def attempt(a: Attempt) -> requests.Response:
            if rewind and a.number > 1:
                rewind_body(request)  # the last attempt read the file to its end
            sent = _retarget(request, a.model, model)
            response = HTTPAdapter.send(
                self,
                sent,
                stream=stream,
                timeout=timeout,
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
            headers = response.headers
            if watched(
                response.status_code, headers.get("content-type"), headers.get("content-encoding")
            ):
                decide = judge(self.driver, a, method=method, fallback=model is not None)
                peeked[id(response)] = _peek(response, decide, method)
            elif wants_body(response.status_code, headers.get("content-type")):
                bodies[id(response)] = _read(response)  # so the policy can look at the error
            return response

        def view(response: requests.Response) -> Response:
            headers = list(response.headers.items())
            watching = peeked.get(id(response))
            if watching is not None:
                return Response(response.status_code, headers, watching[1], method)
            return Response(response.status_code, headers, bodies.get(id(response), b""), method)

        outcome: Outcome[requests.Response] = self.driver.run(
            attempt,
            model=model,
            method=method,
            view=view,
            discard=_close,
            fallback=model is not None,
            destination=destination(request.url or "", request.headers.items()),
            refused=lambda deny: self._refused(deny, request),
        )
        response = outcome.as_client()
        watching = peeked.get(id(response))
        if watching is not None:
            watching[0].settled = outcome.action
        return response

    def _refused(self, deny: Deny, request: requests.PreparedRequest) -> requests.Response:
        """The governor refused to send: a response built as requests builds one."""
        made = refusal(deny)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(made.body),
            headers=HTTPHeaderDict([(n, v) for n, values in made.headers.items() for v in values]),
            status=made.status,
            preload_content=False,
            decode_content=False,
        )
        response = self.build_response(request, raw)
        watch = replay_watch(deny.action, made)
        if watch is not None:  # a stream whose first event was the sticky error
            response.raw = _WatchedRaw(raw, [made.body], iter(()), watch)
            return response
        _ = response.content  # read now: nothing waits on a socket
        return response


def _translated(error: Exception) -> Exception:
    """A urllib3 error raised while reading a body, as requests raises it
    from ``iter_content``."""
    if isinstance(error, ProtocolError):
        return ChunkedEncodingError(error)
    if isinstance(error, DecodeError):
        return ContentDecodingError(error)
    if isinstance(error, ReadTimeoutError):
        return requests.ConnectionError(error)
    if isinstance(error, SSLError):
        return requests.exceptions.SSLError(error)
    return error


def _pieces(raw: urllib3.BaseHTTPResponse, decode: bool = False) -> Iterator[bytes]:
    """The raw body as it arrives: an HTTP chunk at a time when chunked, else
    whatever one read returns (never waiting to fill a buffer); ``decode``:
    content-decoded (gzip...), as requests reads it."""
    if isinstance(raw, urllib3.HTTPResponse) and raw.chunked and raw.supports_chunked_reads():
        yield from raw.stream(READ_SIZE, decode_content=decode)
        return
    while True:
        data = raw.read1(READ_SIZE, decode_content=decode)
        if not data:
            return
        yield data


def _fill(response: requests.Response, pieces: Iterator[bytes], into: BodyRead | Peek) -> None:
    """Read ``pieces`` of ``response`` into ``into`` until it has read enough
    or they end.

    Raises:
        requests.RequestException: The body broke off (the response closed).
    """
    try:
        for piece in pieces:
            if into.add(piece):
                return
        into.end()
    except Exception as exc:
        response.close()
        error = _translated(exc)
        if error is exc:
            raise
        raise error from exc


def _read(response: requests.Response) -> bytes:
    """Read the body of ``response`` for the policy, as far as ``BodyRead``
    allows, and put a replay of it in place of its ``raw``, then what was not
    read yet: requests reads ``content`` as usual. The body read, decoded.

    Raises:
        requests.RequestException: The body broke off.
    """
    raw = response.raw
    pieces = _pieces(raw, decode=True)
    read = BodyRead()
    _fill(response, pieces, read)
    response.raw = _WatchedRaw(raw, read.chunks, iter(()) if read.ended else pieces, Unwatched())
    if read.ended:
        _ = response.content  # all read: kept, and the connection goes back to the pool
    return read.body()


def _peek(response: requests.Response, decide: Any, method: str) -> tuple[Watch, bytes]:
    """Read ``response`` up to the end of its first event and put a watched
    replay in place of its ``raw``: the watch, and the body to decide on.

    Raises:
        requests.RequestException: The stream broke before its first event.
    """
    raw = response.raw
    pieces = _pieces(raw)
    peek = Peek()
    _fill(response, pieces, peek)
    watch = Watch(decide, response.status_code, list(response.headers.items()), method)
    response.raw = _WatchedRaw(raw, peek.chunks, pieces, watch)
    return watch, peek.body()


class _WatchedRaw:
    """``response.raw`` of a watched stream: what was peeked, replayed, then
    the rest as it arrives, each piece through the watch. It reads like
    urllib3's response (``stream``, ``read``, ``read1``, ``close``...); any
    other attribute is the real response's."""

    def __init__(
        self,
        raw: urllib3.BaseHTTPResponse,
        replay: list[bytes],
        pieces: Iterator[bytes],
        watch: Watch | Unwatched,
    ) -> None:
        self._raw = raw
        self._replay = replay[::-1]  # popped from the end
        self._pieces = pieces
        self._watch = watch
        self._left = b""
        self._ended = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def _next(self) -> bytes:
        """The next piece to hand out; b"" at the end of the stream."""
        watch = self._watch
        while True:
            watch.raise_pending()
            if self._replay:
                piece = self._replay.pop()
            elif self._ended:
                return b""
            else:
                try:
                    piece = next(self._pieces)
                except StopIteration:
                    self._ended = True
                    watch.ended()
                    return b""
                except Exception as exc:
                    self._ended = True
                    error = _translated(exc)
                    failure = watch.broke(error)
                    if failure is exc:
                        raise
                    raise failure from (error if failure is not error else exc)
            part = watch.passing(piece)
            if part:
                return part

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        """At most ``amt`` bytes, as soon as there are any."""
        data, self._left = (self._left, b"") if self._left else (self._next(), b"")
        if amt is not None and 0 < amt < len(data):
            data, self._left = data[:amt], data[amt:]
        return data

    def read(
        self,
        amt: int | None = None,
        decode_content: bool | None = None,
        cache_content: bool = False,
    ) -> bytes:
        """``amt`` bytes (fewer at the end), or all the rest."""
        parts: list[bytes] = []
        got = 0
        while amt is None or amt < 0 or got < amt:
            data = self.read1(None if amt is None or amt < 0 else amt - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def stream(
        self, amt: int | None = READ_SIZE, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        """The pieces as they arrive, each at most ``amt`` bytes."""
        while True:
            data = self.read1(amt)
            if not data:
                return
            yield data

    def close(self) -> None:
        self._raw.close()

    def release_conn(self) -> None:
        self._raw.release_conn()


def _replayable(request: requests.PreparedRequest) -> tuple[requests.PreparedRequest, bool]:
    """``request`` with a body every attempt can send whole, and whether it
    is a file to rewind before each retry. A file that can tell its position
    is rewound (as requests does on a redirect); any other stream (a
    generator...) is read into bytes once, as httpx does."""
    body = request.body
    if body is None or isinstance(body, (bytes, str)):
        return request, False
    try:  # a file requests knows the start of (as for a redirect): rewound each time
        rewind_body(request)
    except UnrewindableBodyError:
        pass
    else:
        return request, True
    chunks = body if not isinstance(body, (bytearray, memoryview)) else [bytes(body)]
    data = b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in chunks)
    copy = request.copy()
    copy.body = data
    copy.headers.pop("Transfer-Encoding", None)
    copy.headers["Content-Length"] = str(len(data))
    return copy, False


def _retarget(
    request: requests.PreparedRequest, model: str | None, original: str | None
) -> requests.PreparedRequest:
    """The request to send for ``model``: the original, or a copy whose JSON
    body names the fallback model."""
    if model is None or original is None or model == original:
        return request
    body = request.body
    raw = body.encode("utf-8") if isinstance(body, str) else body
    assert isinstance(raw, bytes)  # body_model found a JSON object in it
    copy = request.copy()
    copy.body = swap_model(raw, model)
    copy.headers["Content-Length"] = str(len(copy.body))
    return copy


def _close(response: requests.Response) -> None:
    response.close()
