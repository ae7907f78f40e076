"""Reading what came back: any client's response object, its error body, or
the exception raised instead of a response.

Nothing here raises on hostile input. Bodies are parsed only up to
``MAX_PARSE_BYTES``; messages are cut to ``MAX_MESSAGE_CHARS`` and have echoed
secrets redacted before anything else sees them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from ._model import ParsedError, Response

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_PARSE_BYTES",
    "TRANSPORT_FAMILIES",
    "HeaderConditions",
    "coerce_response",
    "compile_headers",
    "extract_amounts",
    "extract_model",
    "headers_hold",
    "RawError",
    "parse_error",
    "parse_raw",
    "redact",
    "to_error",
    "transport_kind",
]

#: Only this much of a body is parsed for an error; the rest is never looked at.
MAX_PARSE_BYTES = 64 * 1024
#: Error messages longer than this are cut (with "…").
MAX_MESSAGE_CHARS = 2000

# --- Secrets -------------------------------------------------------------------

_KEY_PREFIXES = r"(?:sk|gsk|xai|hf|ghp|gho|ghs|github_pat|glpat|r8|pplx|nvapi)[-_]"
_SECRET = re.compile(
    r"""
    (?P<bearer>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=-]{8,}
    | (?P<prefix>\b"""
    + _KEY_PREFIXES
    + r""")
      [A-Za-z0-9_*-](?:[A-Za-z0-9._*-]*[A-Za-z0-9_*])?
    # OpenAI's "Incorrect API key provided: <key>." whatever the key looks like
    # (a gateway's own format); a known prefix is kept by the branch above.
    | (?P<provided>\b(?:api[ _-]?key|token)\s+provided:\s*["'`]?)(?!"""
    + _KEY_PREFIXES
    + r""")
      [^\s"'`,;]*[^\s"'`,;.]
    | (?P<google>\bAIza)[0-9A-Za-z_-]{20,}
    | (?P<jwt>\beyJ)[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*
    | (?P<kv>\b(?:api[_-]?key|apikey|access[_-]?token|token|secret|password|key)
         \s*[=:]\s*["']?)[^\s"',;&)]{6,}
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _mask(m: re.Match[str]) -> str:
    return (
        m.group("bearer")
        or m.group("prefix")
        or m.group("google")
        or m.group("jwt")
        or m.group("kv")
        or m.group("provided")
        or ""
    ) + "***"


def redact(text: str) -> str:
    """``text`` with API keys, bearer tokens and ``key=value`` secrets masked.

    >>> redact("Invalid API key provided: sk-nex-abc123.")
    'Invalid API key provided: sk-***.'
    """
    return _SECRET.sub(_mask, text)


# --- Error bodies --------------------------------------------------------------

_WS = re.compile(r"\s+")
# [^<>] stops a tag at the next "<": linear even on a page of nothing but "<".
_TAG = re.compile(r"<[^<>]{0,2000}>")


def _clip(text: str) -> str:
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text


def _element_text(text: str, lowered: str, tag: str) -> str | None:
    """The text of the first ``<tag ...>...</tag>``, found with ``str.find``
    (linear, whatever the page holds)."""
    start = lowered.find(f"<{tag}")
    if start < 0:
        return None
    opened = lowered.find(">", start)
    if opened < 0:
        return None
    end = lowered.find(f"</{tag}", opened)
    return text[opened + 1 : end if end >= 0 else opened + 1 + MAX_MESSAGE_CHARS]


def _text_message(body: bytes) -> str:
    """A one-line message from a non-JSON body: an HTML page's title, or the text."""
    text = body[:MAX_PARSE_BYTES].decode("utf-8", "replace").lstrip("\ufeff")
    head = text[:512].lower()
    if "<html" in head or "<!doctype" in head or "<title" in head or "<body" in head:
        lowered = text.lower()
        found = _element_text(text, lowered, "title") or _element_text(text, lowered, "h1")
        text = _TAG.sub(" ", found if found is not None else text)
    return _clip(_WS.sub(" ", text).strip())


def _scalar(value: object) -> str | None:
    """An error code / type as text: strings as they are, numbers as digits."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return None


def _message(value: object) -> str:
    if isinstance(value, str):
        return _clip(value)
    if value is None:
        return ""
    try:
        return _clip(json.dumps(value, ensure_ascii=False)[:MAX_MESSAGE_CHARS])
    except Exception:  # pragma: no cover - json.dumps of parsed JSON
        return ""


def _google_reason(err: dict[str, Any]) -> str | None:
    details = err.get("details")
    if isinstance(details, list):
        for d in details[:16]:
            if isinstance(d, dict) and isinstance(d.get("reason"), str) and d["reason"]:
                return str(d["reason"])
    return None


#: ``(message, type, code, param)`` as the body gave them: clipped, not yet
#: redacted. Never leaves the engine; ``to_error`` makes the public value.
RawError = tuple[str, "str | None", "str | None", "str | None"]


def _redact_field(value: str | None) -> str | None:
    return redact(value) if value else value


def to_error(raw: RawError) -> ParsedError:
    """The public ``ParsedError`` of a raw error, secrets redacted from every
    field: a server may echo a key in its code, type or param as well."""
    return ParsedError(
        message=redact(raw[0]),
        type=_redact_field(raw[1]),
        code=_redact_field(raw[2]),
        param=_redact_field(raw[3]),
    )


def _from_object(err: dict[str, Any]) -> RawError:
    code = err.get("code")
    etype = _scalar(err.get("type"))
    status = err.get("status")
    if isinstance(status, str) and status:
        # Google: {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED",
        # "details": [{"reason": "RATE_LIMIT_EXCEEDED"}]}: the symbolic status is
        # the type, the machine-readable reason (if any) the code.
        etype = etype or status
        code = _google_reason(err) or code
    param = err.get("param")
    message = err.get("message")
    return (
        _clip(message) if type(message) is str else _message(message),
        etype,
        code if type(code) is str and code else _scalar(code),
        param if isinstance(param, str) and param else None,
    )


def _from_json(data: object, success: bool) -> RawError | None:
    if isinstance(data, list) and data and isinstance(data[0], dict) and not success:
        data = data[0]  # Google's streaming endpoints wrap the error in a list
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict):
        return _from_object(err)
    if isinstance(err, str) and err:
        return (_clip(err), _scalar(data.get("type")), _scalar(data.get("code")), None)
    if err not in (None, False, "", {}):
        return (_message(err), None, None, None)
    if data.get("object") == "error" or (
        not success and ("message" in data or "code" in data or "type" in data)
    ):
        # Unwrapped {"message", "type", "code"} (vLLM, some gateways)
        return _from_object(data)
    if not success and "detail" in data:  # FastAPI-style
        return (_message(data["detail"]), None, None, None)
    return None


def _from_events(body: bytes, success: bool) -> RawError | None:
    """The first error object in the ``data:`` lines of an event stream."""
    for line in body.splitlines():
        if not line.startswith(b"data:") or line.find(b'"error"') < 0:
            continue
        payload = line[5:].strip()
        if payload[:1] not in (b"{", b"["):
            continue
        try:
            data = _decode(payload.decode("utf-8", "replace"))
        except Exception:  # broken, truncated, too deep
            continue
        parsed = _from_json(data, success)
        if parsed is not None:
            return parsed
    return None


# Linear: each alternative is told apart by its first character.
_SALVAGE_CODE = re.compile(r'"code"\s*:\s*(?:"([^"\\]{1,200})"|(-?[0-9]{1,12}))')
_SALVAGE_TYPE = re.compile(r'"(?:type|status)"\s*:\s*"([^"\\]{1,200})"')
_SALVAGE_MESSAGE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.){0,2000})')


def _salvage(body: bytes) -> RawError | None:
    """The code, type and message of an error object in JSON that does not
    parse (cut off by the read limit or a dropped connection), so that a
    truncated quota error is still a quota error."""
    text = body.decode("utf-8", "replace")
    start = text.find('"error"')
    if start < 0:
        return None
    text = text[start:]
    code = _SALVAGE_CODE.search(text)
    etype = _SALVAGE_TYPE.search(text)
    if code is None and etype is None:
        return None
    message = _SALVAGE_MESSAGE.search(text)
    words = ""
    if message is not None:
        try:
            words = json.loads(f'"{message.group(1)}"')
        except ValueError:  # cut inside an escape
            words = message.group(1)
    return (
        _clip(words),
        etype.group(1) if etype else None,
        (code.group(1) or code.group(2)) if code else None,
        None,
    )


def parse_error(body: bytes, status: int) -> ParsedError | None:
    """The error ``body`` carries (secrets redacted), or None; see ``parse_raw``."""
    raw = parse_raw(body, status)
    return None if raw is None else to_error(raw)


_decode = json.JSONDecoder().decode


def parse_raw(body: bytes, status: int) -> RawError | None:
    """The error ``body`` carries, or None.

    A 2xx body is an error only if it holds an error object. Any other body
    is an error: a recognised JSON shape gives message / type / code / param;
    anything else (HTML, text, broken JSON) gives its text as the message.
    In a server-sent event stream, the first ``data:`` line holding an error
    object is the error. An empty body gives None.
    """
    success = 200 <= status < 300
    if len(body) > MAX_PARSE_BYTES:
        body = body[:MAX_PARSE_BYTES]
    if success and body.find(b'"error"') < 0:
        return None
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:5] in (b"data:", b"event") or stripped[:1] == b":":
        # A server-sent event stream: the error comes as an event after the
        # status line said 200 (Anthropic, OpenAI, OpenRouter).
        found = _from_events(stripped, success)
        if found is not None or success:
            return found
    if stripped[:1] in (b"{", b"["):
        try:
            # A stray invalid byte (in a message) must not hide the error code.
            data = _decode(stripped.decode("utf-8", "replace"))
        except Exception:  # broken, truncated, too deep
            data = None
        if data is not None:
            parsed = _from_json(data, success)
            if parsed is not None or success:
                return parsed
        elif not success:
            salvaged = _salvage(stripped)
            if salvaged is not None:
                return salvaged
    if success:
        return None
    message = _text_message(body) if stripped else ""
    return (message, None, None, None) if message else None


# --- Facts in a message ----------------------------------------------------------

_MODEL = (
    re.compile(  # straight, back and curly quotes
        "\\bmodel\\s*[:=]?\\s*['\"`\u2018\u201c]([^'\"`\u2019\u201d\\s]{1,128})['\"`\u2019\u201d]",
        re.IGNORECASE,
    ),
    re.compile(r"\bfor model\s+([\w./:@-]{1,128})", re.IGNORECASE),
)
_LIMIT = (
    re.compile(r"maximum context length is (\d{1,12})", re.IGNORECASE),
    re.compile(r"(\d{1,12}) maximum\b", re.IGNORECASE),
    re.compile(r"maximum number of tokens allowed \((\d{1,12})\)", re.IGNORECASE),
    re.compile(r"\blimit(?: of| is|:)? (\d{1,12})", re.IGNORECASE),
)
_REQUESTED = (
    re.compile(r"you requested (\d{1,12})", re.IGNORECASE),
    re.compile(r"resulted in (\d{1,12}) tokens", re.IGNORECASE),
    re.compile(r"too long: (\d{1,12}) tokens", re.IGNORECASE),
    re.compile(r"token count \((\d{1,12})\)", re.IGNORECASE),
)


def extract_model(message: str) -> str | None:
    """The model a message names (``Model 'x' not found``), or None."""
    for pattern in _MODEL:
        m = pattern.search(message)
        if m:
            return m.group(1)
    return None


def extract_amounts(message: str) -> tuple[str | None, str | None]:
    """``(limit, requested)`` stated in a message such as a context-length error."""
    limit = next((m.group(1) for p in _LIMIT if (m := p.search(message))), None)
    requested = next((m.group(1) for p in _REQUESTED if (m := p.search(message))), None)
    return limit, requested


# --- Header conditions ---------------------------------------------------------------

#: ``(lower-cased name, True | False | lower-cased value)``, as ``compile_headers`` makes.
HeaderConditions = tuple[tuple[str, "bool | str"], ...]


def compile_headers(conditions: Mapping[str, bool | str]) -> HeaderConditions:
    """Header conditions of a policy (``match.headers``, ``hints.sources[].when``)
    normalised once: names and values lower-cased, values stripped."""
    return tuple(
        (name.strip().lower(), value.strip().lower() if isinstance(value, str) else value)
        for name, value in conditions.items()
    )


def headers_hold(headers: Mapping[str, tuple[str, ...]], conditions: HeaderConditions) -> bool:
    """Whether indexed ``headers`` meet every condition: ``True`` present,
    ``False`` absent, a value equal to one of the header's (ignoring case and
    surrounding space)."""
    for name, expected in conditions:
        values = headers.get(name)
        if expected is True:
            if not values:
                return False
        elif expected is False:
            if values:
                return False
        elif not values or all(v.strip().lower() != expected for v in values):
            return False
    return True


# --- Client response objects -----------------------------------------------------


def _read_body(obj: Any) -> bytes:
    """The body a client object already holds, without consuming a stream we
    cannot give back. Anything odd gives b""."""
    try:
        if type(obj).__module__.startswith("aiohttp"):
            # aiohttp reads bodies only asynchronously; after ``await resp.read()``
            # the bytes are kept on the response (there is no public sync getter).
            body = getattr(obj, "_body", None)
            return body if isinstance(body, bytes) else b""
        # An object can only be an HTTPError if urllib.error was imported: look
        # there rather than import it (and ssl, http.client) for everyone.
        url_errors = sys.modules.get("urllib.error")
        if url_errors is not None and isinstance(obj, url_errors.HTTPError):
            obj = obj.fp
        if hasattr(obj, "peek"):  # http.client.HTTPResponse, buffered readers
            # peek() looks at what is buffered without consuming it.
            data = obj.peek(MAX_PARSE_BYTES)
            return bytes(data) if isinstance(data, (bytes, bytearray)) else b""
        if hasattr(obj, "getvalue"):  # io.BytesIO
            data = obj.getvalue()
            return bytes(data) if isinstance(data, (bytes, bytearray)) else b""
        for attr in ("content", "data", "body"):
            # requests / httpx: .content; urllib3: .data (read and cached);
            # httpx raises ResponseNotRead for an unread stream: no body then.
            if hasattr(type(obj), attr) or hasattr(obj, attr):
                data = getattr(obj, attr)
                if isinstance(data, (bytes, bytearray)):
                    return bytes(data)
                if isinstance(data, str):
                    return data.encode("utf-8", "replace")
                return b""
    except Exception:
        pass
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


def _status(obj: Any) -> int | None:
    for attr in ("status_code", "status", "code"):
        try:
            value = getattr(obj, attr, None)
        except Exception:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def coerce_response(obj: Any) -> Response | None:
    """A ``Response`` from a client's response object, or None if ``obj`` has
    no integer status. Works by duck typing, importing no client library:
    requests, httpx, urllib3, aiohttp (body already read), ``http.client``,
    ``urllib.error.HTTPError``, and exceptions carrying one in ``.response``.
    """
    if isinstance(obj, BaseException):
        # An SDK / client error carrying the response (openai.APIStatusError,
        # requests.HTTPError, httpx.HTTPStatusError): read the response itself.
        try:
            inner = getattr(obj, "response", None)
        except Exception:
            inner = None
        if inner is not None and not isinstance(inner, BaseException):
            status = _status(inner)
            if status is not None:
                obj = inner
    status = _status(obj)
    if status is None:
        return None
    try:
        headers = getattr(obj, "headers", None)
        if headers is None and callable(getattr(obj, "getheaders", None)):
            headers = obj.getheaders()
    except Exception:
        headers = None
    return Response(status, headers, _read_body(obj), _method(obj))


# --- Network failures ------------------------------------------------------------

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


def transport_kind(exc: BaseException) -> str | None:
    """The kind of network failure ``exc`` is (a key of ``TRANSPORT_FAMILIES``),
    or None if it is not one. A generic kind (``connection``, ``timeout``,
    ``protocol``) is refined from the exceptions that caused it, so a
    ``requests.ConnectionError`` caused by a refused socket is ``refused``."""
    try:
        kind = _own_kind(exc)
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
