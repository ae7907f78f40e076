"""Stand-ins for network failures: an exception that ``transport_kind()``
reads as a given kind (``read_timeout``, ``dns``...), for ``explain
--transport``, a ``[[tests]]`` entry's ``transport`` and a recorded failure."""

from __future__ import annotations

import errno
import socket
import ssl

from .._transport import transport_kind

__all__ = ["make_failure"]


def _standin(name: str, base: type[Exception]) -> type[Exception]:
    # httpx names its precise timeouts this way; transport_kind() knows them by
    # (package, class name), so a stand-in needs no httpx installed.
    cls: type[Exception] = type(name, (base,), {"__module__": "httpx"})
    return cls


_STANDINS = {
    "connect_timeout": _standin("ConnectTimeout", TimeoutError),
    "read_timeout": _standin("ReadTimeout", TimeoutError),
    "write_timeout": _standin("WriteTimeout", TimeoutError),
    "pool_timeout": _standin("PoolTimeout", TimeoutError),
}


def make_failure(kind: str) -> BaseException:
    """An exception that ``transport_kind()`` reads as network failure ``kind``
    (a key of ``TRANSPORT_FAMILIES``): a stdlib one where there is one.

    Raises:
        ValueError: ``kind`` is not a transport kind.
    """
    exc: BaseException
    if kind == "timeout":
        exc = TimeoutError("timed out")
    elif kind in _STANDINS:
        exc = _STANDINS[kind]("timed out")
    elif kind == "connection":
        exc = ConnectionError("connection failed")
    elif kind == "dns":
        exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    elif kind == "tls":
        exc = ssl.SSLError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    elif kind == "refused":
        exc = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    elif kind == "reset":
        exc = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
    elif kind in ("incomplete", "protocol"):
        # Imported only here: http.client (and the email package it loads)
        # costs milliseconds that no other kind, and no response, needs.
        import http.client

        exc = (
            http.client.IncompleteRead(b"", 100)
            if kind == "incomplete"
            else http.client.HTTPException("malformed response")
        )
    else:
        raise ValueError(f"unknown transport kind {kind!r}")
    found = transport_kind(exc)
    if found != kind:  # pragma: no cover - guards the table above against core changes
        raise ValueError(f"cannot stand in for transport kind {kind!r} (got {found!r})")
    return exc
