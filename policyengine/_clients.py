"""Client response objects -> ``Response``, by duck typing behind one small
``Protocol``; no client library is imported."""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from ._errorbody import MAX_PARSE_BYTES
from ._headers import HeaderView
from ._model import Response
from ._transport import invented_status

__all__ = ["ClientResponse", "coerce_response", "read_body", "read_status"]


class ClientResponse(Protocol):
    """The seam to any HTTP client: what the engine reads of a response object.

    requests and httpx responses have exactly this shape. The other shapes
    read, by their public attributes, are: ``status`` and ``data`` (urllib3),
    ``status`` with ``headers`` and a body already read (aiohttp), ``status``
    with ``getheaders()`` and a buffered ``peek()`` (``http.client``,
    ``urllib.error.HTTPError``), and an exception whose ``.response`` is one of
    these (OpenAI SDK errors, ``requests.HTTPError``, ``httpx.HTTPStatusError``).
    An attribute that raises or holds something odd reads as absent.

    One fact no public attribute tells is read from a private one: whether a
    body is still unread (requests' ``_content`` is False under
    ``stream=True``; urllib3 has no ``_body`` while its ``_fp`` is open with
    ``preload_content=False``), because reading ``content`` or ``data`` would
    take the body from the caller and wait for all of it. Where those
    attributes are missing, the body is read as before.
    """

    @property
    def status_code(self) -> int:
        """The HTTP status."""

    @property
    def headers(self) -> Mapping[str, str] | Iterable[tuple[str, str]]:
        """Every header; repeated names kept where the client keeps them."""

    @property
    def content(self) -> bytes:
        """The body, already read."""


def read_body(obj: Any) -> bytes:
    """The body a client object already holds, without consuming a stream we
    cannot give back. Anything odd gives b"".

    How a class's objects are read is worked out once per class, for at most
    ``MAX_READER_CLASSES`` classes: aiohttp's kept body, an ``HTTPError``'s
    buffered reader, ``peek()``, ``getvalue()``, or ``content`` (requests,
    httpx) when the class has it; any other object is asked each time for
    ``content``, ``data`` (urllib3) or ``body``, whichever it has first.
    A body not read yet (requests' ``stream=True``, urllib3's
    ``preload_content=False``) reads as b"", as httpx's unread stream does."""
    try:
        kind = type(obj)
        # Kept by the class's identity: a metaclass may make its classes
        # unhashable, or equal to other classes.
        kept = _BODY_READERS.get(id(kind))
        if kept is not None:
            read = kept.read
        else:
            read = _body_reader(kind)
            if len(_BODY_READERS) < MAX_READER_CLASSES:
                _BODY_READERS[id(kind)] = _Kept(kind, read)
        return read(obj)
    except Exception:
        return b""


#: Classes whose body reader is kept (``read_body``): a bound on memory
#: (a program meets a handful; classes made on the fly are not kept past it).
MAX_READER_CLASSES = 256


class _Kept(NamedTuple):
    """The body reader of a class, with the class (whose id is the key: held
    here, the class lives on, and no other class takes its id)."""

    kind: type
    read: Callable[[Any], bytes]


_BODY_READERS: dict[int, _Kept] = {}


def _as_bytes(data: object) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "replace")
    return b""


def _buffered(data: object) -> bytes:
    return bytes(data) if isinstance(data, (bytes, bytearray)) else b""


def _body_reader(kind: type) -> Callable[[Any], bytes]:
    """How to read the body of an object of class ``kind`` (see ``read_body``)."""
    if kind.__module__.startswith("aiohttp"):
        # aiohttp reads bodies only asynchronously; after ``await resp.read()``
        # the bytes are kept on the response (there is no public sync getter).
        return lambda obj: _buffered(getattr(obj, "_body", None))
    # An object can only be an HTTPError if urllib.error was imported: look
    # there rather than import it (and ssl, http.client) for everyone.
    url_errors = sys.modules.get("urllib.error")
    if url_errors is not None and issubclass(kind, url_errors.HTTPError):
        return lambda obj: _read_any(obj.fp)
    if hasattr(kind, "peek"):  # http.client.HTTPResponse, buffered readers
        # peek() looks at what is buffered without consuming it.
        return lambda obj: _buffered(obj.peek(MAX_PARSE_BYTES))
    if hasattr(kind, "getvalue"):  # io.BytesIO
        return lambda obj: _buffered(obj.getvalue())
    if hasattr(kind, "content"):  # requests, httpx (which raises for an unread stream)
        return _attribute("content")
    return _read_any  # by what each object has (urllib3: .data, read and cached)


def _unread(obj: Any) -> bool:
    """Whether ``obj`` holds a body not read yet, which reading would take
    from the caller (and wait for, however long it keeps coming): requests'
    ``stream=True`` (``_content`` False until read), urllib3's
    ``preload_content=False`` (no ``_body`` while its reader is open). Read,
    like httpx's unread stream, as no body. (Looked up in the instance's
    ``__dict__``: an attribute it lacks costs no ``AttributeError``.)"""
    state = getattr(obj, "__dict__", None)
    if type(state) is not dict:
        return False
    if state.get("_content", None) is False:
        return True
    return state.get("_body", b"") is None and state.get("_fp") is not None


def _attribute(attr: str) -> Callable[[Any], bytes]:
    get = operator.attrgetter(attr)

    def read(obj: Any) -> bytes:
        if _unread(obj):
            return b""
        data = get(obj)
        return data if type(data) is bytes else _as_bytes(data)

    return read


def _read_any(obj: Any) -> bytes:
    """The body of an object whose class says nothing of how: by what it has."""
    url_errors = sys.modules.get("urllib.error")
    if url_errors is not None and isinstance(obj, url_errors.HTTPError):
        obj = obj.fp
    if hasattr(obj, "peek"):
        return _buffered(obj.peek(MAX_PARSE_BYTES))
    if hasattr(obj, "getvalue"):
        return _buffered(obj.getvalue())
    if _unread(obj):
        return b""
    kind = type(obj)
    for attr in ("content", "data", "body"):
        if hasattr(kind, attr) or hasattr(obj, attr):
            return _as_bytes(getattr(obj, attr))
    return b""


def _method(obj: Any) -> str | None:
    try:
        method = getattr(obj, "method", None)
        if not isinstance(method, str):
            request = getattr(obj, "request", None)  # requests, httpx (may raise)
            method = getattr(request, "method", None)
        return method.upper() if isinstance(method, str) else None
    except Exception:
        return None


def read_status(obj: Any) -> int | None:
    """The integer status of a client's response object, or None."""
    try:
        value = getattr(obj, "status_code", None)  # requests, httpx: the common case
        if type(value) is int:
            return value
    except Exception:
        pass
    # (an int subclass too: an IntEnum such as http.HTTPStatus)
    for attr in ("status_code", "status", "code"):
        try:
            value = getattr(obj, attr, None)
        except Exception:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def coerce_response(obj: Any, wanted: frozenset[str] = frozenset()) -> Response | None:
    """A ``Response`` from a client's response object, or None if ``obj`` has
    no integer status. Works by duck typing, importing no client library:
    requests, httpx, urllib3, aiohttp (body already read), ``http.client``,
    ``urllib.error.HTTPError``, and exceptions carrying one in ``.response``.

    Its headers are the client's, read as they are looked up (``HeaderView``):
    the ``wanted`` names (those a policy can look at) alone, unless others are
    asked for.
    """
    if isinstance(obj, BaseException):
        if invented_status(obj):  # aiohttp's 400 for a response it could not parse
            return None
        # An SDK / client error carrying the response (openai.APIStatusError,
        # requests.HTTPError, httpx.HTTPStatusError): read the response itself.
        try:
            inner = getattr(obj, "response", None)
        except Exception:
            inner = None
        if inner is not None and not isinstance(inner, BaseException):
            status = read_status(inner)
            if status is not None:
                obj = inner
    status = read_status(obj)
    if status is None:
        return None
    try:
        headers = getattr(obj, "headers", None)
        if headers is None and callable(getattr(obj, "getheaders", None)):
            headers = obj.getheaders()
    except Exception:
        headers = None
    view = HeaderView(headers, wanted) if headers is not None else None
    return Response(status, view, read_body(obj), _method(obj))
