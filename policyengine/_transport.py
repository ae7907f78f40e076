"""The network failure taxonomy: which kind of failure an exception is
(``read_timeout``, ``refused``, ``tls``...), found by class name along the
MRO and refined from its causes, importing no client library."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

__all__ = ["TRANSPORT_FAMILIES", "invented_status", "transport_kind"]

#: Each transport kind and the family it belongs to (what ``match.transport``
#: may also name to mean "any kind of").
TRANSPORT_FAMILIES: dict[str, str] = {
    "timeout": "timeout",
    "connect_timeout": "timeout",
    "read_timeout": "timeout",
    "write_timeout": "timeout",
    "pool_timeout": "timeout",
    "connection": "connection",
    "dns": "connection",
    "tls": "connection",
    "refused": "connection",
    "reset": "connection",
    "incomplete": "connection",
    "protocol": "connection",
}

# (top-level package, class name) -> kind. Looked up along the exception's MRO,
# so the most derived known class wins. No client library is imported.
_KNOWN: dict[tuple[str, str], str] = {
    # stdlib
    ("builtins", "TimeoutError"): "timeout",
    ("asyncio", "TimeoutError"): "timeout",
    ("concurrent", "TimeoutError"): "timeout",
    ("builtins", "ConnectionRefusedError"): "refused",
    ("builtins", "ConnectionResetError"): "reset",
    ("builtins", "ConnectionAbortedError"): "reset",
    ("builtins", "BrokenPipeError"): "reset",
    ("builtins", "ConnectionError"): "connection",
    ("socket", "gaierror"): "dns",
    ("socket", "herror"): "dns",
    ("ssl", "SSLError"): "tls",
    ("ssl", "CertificateError"): "tls",
    ("http", "IncompleteRead"): "incomplete",
    ("http", "RemoteDisconnected"): "reset",
    ("http", "HTTPException"): "protocol",
    ("urllib", "URLError"): "connection",
    # requests
    ("requests", "ConnectTimeout"): "connect_timeout",
    ("requests", "ReadTimeout"): "read_timeout",
    ("requests", "Timeout"): "timeout",
    ("requests", "SSLError"): "tls",
    ("requests", "ChunkedEncodingError"): "incomplete",
    ("requests", "ConnectionError"): "connection",
    # httpx
    ("httpx", "ConnectTimeout"): "connect_timeout",
    ("httpx", "ReadTimeout"): "read_timeout",
    ("httpx", "WriteTimeout"): "write_timeout",
    ("httpx", "PoolTimeout"): "pool_timeout",
    ("httpx", "TimeoutException"): "timeout",
    ("httpx", "RemoteProtocolError"): "protocol",
    ("httpx", "NetworkError"): "connection",
    # urllib3
    ("urllib3", "ConnectTimeoutError"): "connect_timeout",
    ("urllib3", "ReadTimeoutError"): "read_timeout",
    ("urllib3", "TimeoutError"): "timeout",
    ("urllib3", "NameResolutionError"): "dns",
    ("urllib3", "SSLError"): "tls",
    ("urllib3", "IncompleteRead"): "incomplete",
    ("urllib3", "ProtocolError"): "protocol",
    ("urllib3", "NewConnectionError"): "connection",
    ("urllib3", "ProxyError"): "connection",
    ("urllib3", "MaxRetryError"): "connection",
    # aiohttp
    ("aiohttp", "ConnectionTimeoutError"): "connect_timeout",
    ("aiohttp", "SocketTimeoutError"): "read_timeout",
    ("aiohttp", "ServerTimeoutError"): "read_timeout",
    ("aiohttp", "ClientConnectorDNSError"): "dns",
    ("aiohttp", "ClientSSLError"): "tls",
    ("aiohttp", "ClientConnectionResetError"): "reset",
    ("aiohttp", "ServerDisconnectedError"): "reset",
    ("aiohttp", "ClientPayloadError"): "incomplete",
    ("aiohttp", "ClientConnectionError"): "connection",
    # a response aiohttp's parser refused (bad status line, header or chunk):
    # the kinds httpx, requests and urllib3 give the same bytes
    ("aiohttp", "TransferEncodingError"): "incomplete",
    ("aiohttp", "ContentLengthError"): "incomplete",
    ("aiohttp", "HttpProcessingError"): "protocol",
    # openai (wraps httpx's exceptions; the cause refines the kind)
    ("openai", "APITimeoutError"): "timeout",
    ("openai", "APIConnectionError"): "connection",
}
# openai 3.x may run on the httpx2 / httpcore2 forks: same exception names.
for (_package, _name), _kind in list(_KNOWN.items()):
    if _package == "httpx":
        _KNOWN[("httpx2", _name)] = _kind
for _name, _kind in (
    ("ConnectTimeout", "connect_timeout"),
    ("ReadTimeout", "read_timeout"),
    ("WriteTimeout", "write_timeout"),
    ("PoolTimeout", "pool_timeout"),
    ("TimeoutException", "timeout"),
    ("RemoteProtocolError", "protocol"),
    ("NetworkError", "connection"),
):
    for _package in ("httpcore", "httpcore2"):
        _KNOWN[(_package, _name)] = _kind
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENETUNREACH",
        "EHOSTUNREACH",
        "ENETDOWN",
        "EHOSTDOWN",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "ECONNRESET",
        "ECONNABORTED",
        "EPIPE",
        "EADDRNOTAVAIL",
    )
    if hasattr(errno, name)
)
_GENERIC = frozenset({"timeout", "connection", "protocol"})
_cache: dict[type, str | None] = {}
_CACHE_MAX = 1024


def _own_kind(exc: BaseException) -> str | None:
    cls = type(exc)
    try:
        return _cache[cls]
    except KeyError:
        pass
    kind = None
    for klass in cls.__mro__:
        top = (getattr(klass, "__module__", "") or "").partition(".")[0]
        kind = _KNOWN.get((top, klass.__name__))
        if kind is not None:
            break
    if kind is None and isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        kind = None  # decided per instance below (errno), not cached
    elif len(_cache) < _CACHE_MAX:
        _cache[cls] = kind
    if kind is None and isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        kind = "timeout" if exc.errno == getattr(errno, "ETIMEDOUT", -1) else "connection"
    return kind


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions behind ``exc``, breadth first, bounded, cycle safe."""
    seen = {id(exc)}
    queue = [exc]
    for _ in range(32):
        if not queue:
            return
        current = queue.pop(0)
        inner: list[object] = [current.__cause__, current.__context__]
        for attr in ("reason", "os_error", "original_error"):
            with contextlib.suppress(Exception):  # hostile __getattr__
                inner.append(getattr(current, attr, None))
        with contextlib.suppress(Exception):
            inner.extend(current.args[:3])
        for item in inner:
            if isinstance(item, BaseException) and id(item) not in seen:
                seen.add(id(item))
                queue.append(item)
                yield item


# Client errors that stand for the failure that caused them: aiohttp raises a
# ClientResponseError, with a status 400 of its own making, for a response its
# parser refused (the cause, an HttpProcessingError). One without such a cause
# is raise_for_status()'s, for a real response.
_WRAPPERS = frozenset({("aiohttp", "ClientResponseError")})


def _wrapped(exc: BaseException) -> BaseException | None:
    """The failure ``exc`` stands for, if it is a wrapper of one (see ``_WRAPPERS``)."""
    cls = type(exc)
    top = (getattr(cls, "__module__", "") or "").partition(".")[0]
    if (top, cls.__name__) not in _WRAPPERS:
        return None
    cause = exc.__cause__ if exc.__cause__ is not None else exc.__context__
    if cause is None or _own_kind(cause) is None:
        return None
    return cause


def invented_status(exc: BaseException) -> bool:
    """Whether the status ``exc`` carries was made up by the client for a
    response it could not read (it is a network failure, not a response)."""
    try:
        return _wrapped(exc) is not None
    except Exception:
        return False


def transport_kind(exc: BaseException) -> str | None:
    """The kind of network failure ``exc`` is (a key of ``TRANSPORT_FAMILIES``),
    or None if it is not one. A generic kind (``connection``, ``timeout``,
    ``protocol``) is refined from the exceptions that caused it, so a
    ``requests.ConnectionError`` caused by a refused socket is ``refused``."""
    try:
        kind = _own_kind(exc)
        if kind is None:
            cause = _wrapped(exc)
            if cause is None:
                return None
            exc, kind = cause, _own_kind(cause)
        if kind is None or kind not in _GENERIC:
            return kind
        for cause in _causes(exc):
            inner = _own_kind(cause)
            if inner is None or inner in _GENERIC:
                continue
            if kind == "timeout" and TRANSPORT_FAMILIES[inner] != "timeout":
                continue  # a timeout stays a timeout
            return inner
        return kind
    except Exception:
        return None
