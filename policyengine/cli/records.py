"""Reading recorded responses for the command line: a raw HTTP response (the
output of ``curl -si``), JSON Lines records and HAR files; and making the
exception that stands for a network failure of a given kind.

Nothing here raises anything but ``InputError`` on bad input; every problem
names the input and the line or key path it was found at.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import gzip
import http.client
import json
import math
import re
import socket
import ssl
import zlib
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import attrs

from .._model import Response
from .._response import TRANSPORT_FAMILIES, transport_kind
from .errors import InputError

__all__ = [
    "Record",
    "make_failure",
    "parse_raw_http",
    "read_records",
    "record_from_json",
    "response_date",
]


@attrs.frozen
class Record:
    """One recorded attempt: a response, or a network failure of a kind.

    Attributes:
        where: Where it was read (``line 3``, ``$.log.entries[2]``).
        response: The response, or None for a network failure.
        transport: The network failure kind, or None for a response.
        duration: Seconds the attempt took (counts toward ``elapsed``).
        now: The Unix time the response was received, if the recording says
            (its ``Date`` header, or a HAR entry's start time); HTTP-date and
            timestamp wait hints are measured from it.
        url: The request URL, when recorded.
        method: The request method (upper case), when recorded: a network
            failure has no response to carry it, and rules can match it.
    """

    where: str
    response: Response | None = None
    transport: str | None = None
    duration: float = 0.0
    now: float | None = None
    url: str | None = None
    method: str | None = None

    def subject(self) -> Response | BaseException:
        """What to pass to ``Engine.evaluate``."""
        if self.response is not None:
            return self.response
        return make_failure(self.transport or "connection")


def response_date(response: Response) -> float | None:
    """The Unix time of a response's ``Date`` header, or None."""
    return _date(response.header("date"))


def _brief(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters for a problem line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _date(value: str | None) -> float | None:
    """Unix time of an HTTP-date, or None."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    stamp = when.timestamp()
    return stamp if math.isfinite(stamp) else None


# --- Network failures ------------------------------------------------------------


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
    elif kind == "incomplete":
        exc = http.client.IncompleteRead(b"", 100)
    elif kind == "protocol":
        exc = http.client.HTTPException("malformed response")
    else:
        raise ValueError(f"unknown transport kind {kind!r}")
    found = transport_kind(exc)
    if found != kind:  # pragma: no cover - guards the table above against core changes
        raise ValueError(f"cannot stand in for transport kind {kind!r} (got {found!r})")
    return exc


# --- Raw HTTP ----------------------------------------------------------------------

_STATUS_LINE = re.compile(rb"HTTP/[0-9](?:\.[0-9])?[ \t]+([0-9]{3})(?:[ \t].*)?")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _dechunk(body: bytes) -> bytes | None:
    out, pos = bytearray(), 0
    while True:
        end = body.find(b"\n", pos)
        if end < 0:
            return None
        size_text = body[pos:end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return None
        pos = end + 1
        if size == 0:
            return bytes(out)
        if pos + size > len(body):
            return None
        out += body[pos : pos + size]
        pos += size
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1


def _decode_body(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Undo chunked transfer coding and gzip / deflate, as curl without
    ``--compressed`` or a raw socket capture leaves them; keep the bytes as
    they are when that fails."""
    names = {k.lower(): v.lower() for k, v in headers}
    if "chunked" in names.get("transfer-encoding", ""):
        body = _dechunk(body) or body
    coding = names.get("content-encoding", "").strip()
    with contextlib.suppress(OSError, EOFError, zlib.error):
        if coding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if coding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    return body


def parse_raw_http(data: bytes, source: str) -> Response:
    """A response from its raw HTTP/1.x or curl-printed HTTP/2 form: a status
    line, header lines, a blank line, the body. Interim responses (``100
    Continue``, a proxy's ``200 Connection established``, redirects printed by
    ``curl -siL``) are skipped: the last response counts.

    Raises:
        InputError: Empty input, or no status line where one must be.
    """
    rest = data.lstrip(b"\r\n\t ")
    line = 1 + data[: len(data) - len(rest)].count(b"\n")
    if not rest:
        raise InputError(
            [
                f"{source}: empty input: expected a raw HTTP response "
                "(curl -si URL | policyengine explain), or give --status or --transport"
            ]
        )
    while True:
        blank = _BLANK_LINE.search(rest)
        head, body = (rest, b"") if blank is None else (rest[: blank.start()], rest[blank.end() :])
        lines = [raw.rstrip(b"\r") for raw in head.split(b"\n")]
        m = _STATUS_LINE.fullmatch(lines[0])
        if m is None:
            raise InputError(
                [
                    f"{source}: line {line}: expected a status line such as "
                    f"'HTTP/1.1 429 Too Many Requests', got {_brief(lines[0].decode('latin-1'))}"
                ]
            )
        status = int(m.group(1))
        if status < 100:
            raise InputError(
                [
                    f"{source}: line {line}: expected an HTTP status 100-999, "
                    f"got {m.group(1).decode()!r}"
                ]
            )
        headers: list[tuple[str, str]] = []
        problems = []
        for offset, raw in enumerate(lines[1:], start=1):
            text = raw.decode("latin-1")  # RFC 9110: header bytes are ISO-8859-1
            if text[:1] in (" ", "\t") and headers:  # obsolete line folding
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                problems.append(
                    f"{source}: line {line + offset}: expected a header 'Name: value', "
                    f"got {_brief(text)}"
                )
                continue
            headers.append((name, value.strip()))
        if problems:
            raise InputError(problems)
        if _STATUS_LINE.match(body.split(b"\n", 1)[0].rstrip(b"\r")):
            # An interim response: the real one follows.
            line += head.count(b"\n") + (blank.group().count(b"\n") if blank else 0)
            rest = body
            continue
        return Response(status, headers, _decode_body(headers, body))


# --- JSON records ------------------------------------------------------------------


def _problem(source: str, where: str, path: str, message: str) -> str:
    return f"{source}: {where}: {path}: {message}" if where else f"{source}: {path}: {message}"


def _headers(value: object, path: str, problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        for name, item in value.items():
            items = item if isinstance(item, list) else [item]
            for i, one in enumerate(items):
                if not isinstance(one, str):
                    where = f"{path}[{name!r}]" + (f"[{i}]" if isinstance(item, list) else "")
                    problems.append((where, f"expected a string, got {_brief(one)}"))
                else:
                    out.append((str(name), one))
    elif isinstance(value, list):
        for i, pair in enumerate(value):
            if (
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(part, str) for part in pair)
            ):
                out.append((pair[0], pair[1]))
            else:
                problems.append((f"{path}[{i}]", f"expected [name, value], got {_brief(pair)}"))
    elif value is not None:
        problems.append(
            (
                path,
                f"expected a table of name: value or a list of [name, value], got {_brief(value)}",
            )
        )
    return out


def record_from_json(obj: object, source: str, where: str) -> Record:
    """A record from one JSON object::

        {"status": 429, "headers": {"Retry-After": "2"}, "body": {"error": {...}},
         "method": "POST", "duration": 0.4}
        {"transport": "read_timeout", "method": "POST"}

    ``method`` (any case) is kept for a network failure too, for rules that
    match it. ``headers`` may also be a list of ``[name, value]`` pairs (for repeats);
    ``body`` a string or any JSON value; other keys are ignored.

    Raises:
        InputError: Naming ``source``, ``where`` and the key path of every problem.
    """
    problems: list[tuple[str, str]] = []
    if not isinstance(obj, dict):
        raise InputError([_problem(source, where, "$", f"expected an object, got {_brief(obj)}")])
    status = obj.get("status")
    transport = obj.get("transport")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999
    ):
        problems.append(("$.status", f"expected a whole number 100-999, got {_brief(status)}"))
    if transport is not None and transport not in TRANSPORT_FAMILIES:
        known = ", ".join(sorted(TRANSPORT_FAMILIES))
        problems.append(
            ("$.transport", f"unknown transport kind {_brief(transport)}; known: {known}")
        )
    if (status is None) == (transport is None):
        problems.append(("$", "give exactly one of status (a response) or transport (a failure)"))
    headers = _headers(obj.get("headers"), "$.headers", problems)
    raw_body = obj.get("body", "")
    body = (
        raw_body.encode("utf-8", "surrogatepass")
        if isinstance(raw_body, str)
        else json.dumps(raw_body).encode()
    )
    method = obj.get("method")
    if method is not None and not (isinstance(method, str) and re.fullmatch(r"[A-Za-z]+", method)):
        problems.append(
            ("$.method", f"expected an HTTP method such as 'POST', got {_brief(method)}")
        )
        method = None
    duration = obj.get("duration", 0.0)
    if (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float))
        or not (math.isfinite(duration) and duration >= 0)
    ):
        problems.append(("$.duration", f"expected seconds >= 0, got {_brief(duration)}"))
        duration = 0.0
    if problems:
        raise InputError([_problem(source, where, path, message) for path, message in problems])
    method = method.upper() if method else None
    if transport is not None:
        return Record(where, transport=str(transport), duration=float(duration), method=method)
    assert isinstance(status, int)  # checked above
    response = Response(status, headers, body, method)
    return Record(
        where,
        response=response,
        duration=float(duration),
        now=_date(response.header("date")),
        method=method,
    )


def _decode_text(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(
            [f"{source}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start})"]
        ) from None


def _json_lines(text: str, source: str) -> list[Record]:
    records, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{source}: line {number}, column {e.colno}: invalid JSON: {e.msg}")
            continue
        except RecursionError:
            problems.append(f"{source}: line {number}: invalid JSON: nested too deeply")
            continue
        try:
            records.append(record_from_json(obj, source, f"line {number}"))
        except InputError as e:
            problems += e.lines
    if problems:
        raise InputError(problems)
    return records


_HAR_ERRORS = (
    ("ERR_CONNECTION_TIMED_OUT", "connect_timeout"),
    ("ERR_TIMED_OUT", "timeout"),
    ("ERR_CONNECTION_REFUSED", "refused"),
    ("ERR_CONNECTION_RESET", "reset"),
    ("ERR_CONNECTION_CLOSED", "reset"),
    ("ERR_CONNECTION_ABORTED", "reset"),
    ("ERR_EMPTY_RESPONSE", "reset"),
    ("ERR_NAME_NOT_RESOLVED", "dns"),
    ("ERR_NAME_RESOLUTION_FAILED", "dns"),
    ("ERR_SSL", "tls"),
    ("ERR_CERT", "tls"),
    ("ERR_INCOMPLETE_CHUNKED_ENCODING", "incomplete"),
    ("ERR_CONTENT_LENGTH_MISMATCH", "incomplete"),
)


def _table(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _har_failure(entry: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    """The transport kind of a HAR entry with status 0 (no response): from
    Chromium's ``_error`` (``net::ERR_CONNECTION_REFUSED``...), else connection."""
    text = str(response.get("_error") or entry.get("_error") or "")
    for marker, kind in _HAR_ERRORS:
        if marker in text:
            return kind
    return "connection"


def _started(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def _har(data: Mapping[str, Any], source: str, url: str | None) -> list[Record]:
    log = data.get("log")
    entries = log.get("entries") if isinstance(log, Mapping) else None
    if not isinstance(entries, list):
        raise InputError([f"{source}: $.log.entries: expected an array (is this a HAR file?)"])
    records, problems = [], []
    for i, entry in enumerate(entries):
        path = f"$.log.entries[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{source}: {path}: expected an object, got {_brief(entry)}")
            continue
        request = _table(entry.get("request"))
        entry_url = request.get("url") if isinstance(request.get("url"), str) else None
        if url is not None and (entry_url is None or url not in entry_url):
            continue
        response = entry.get("response")
        if not isinstance(response, Mapping):
            problems.append(
                f"{source}: {path}.response: expected an object, got {_brief(response)}"
            )
            continue
        status = response.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 999:
            problems.append(
                f"{source}: {path}.response.status: expected a whole number, got {_brief(status)}"
            )
            continue
        method = request.get("method") if isinstance(request.get("method"), str) else None
        method = method.upper() if method else None
        took = entry.get("time")
        duration = (
            float(took) / 1000.0
            if isinstance(took, (int, float)) and not isinstance(took, bool) and took >= 0
            else 0.0
        )
        duration = duration if math.isfinite(duration) else 0.0
        started = _started(entry.get("startedDateTime"))
        if status == 0:
            kind = _har_failure(entry, response)
            records.append(
                Record(path, transport=kind, duration=duration, url=entry_url, method=method)
            )
            continue
        header_problems: list[tuple[str, str]] = []
        headers = []
        raw_headers = response.get("headers", [])
        if isinstance(raw_headers, list):
            for j, item in enumerate(raw_headers):
                name = item.get("name") if isinstance(item, Mapping) else None
                value = item.get("value") if isinstance(item, Mapping) else None
                if isinstance(name, str) and isinstance(value, str):
                    headers.append((name, value))
                else:
                    header_problems.append(
                        (
                            f"{path}.response.headers[{j}]",
                            f"expected {{name, value}}, got {_brief(item)}",
                        )
                    )
        else:
            header_problems.append(
                (f"{path}.response.headers", f"expected an array, got {_brief(raw_headers)}")
            )
        content = _table(response.get("content"))
        text = content.get("text", "")
        body = b""
        if isinstance(text, str):
            if content.get("encoding") == "base64":
                try:
                    body = base64.b64decode(text, validate=True)
                except (binascii.Error, ValueError):
                    header_problems.append(
                        (f"{path}.response.content.text", "expected base64 (encoding = base64)")
                    )
            else:
                body = text.encode("utf-8", "surrogatepass")
        problems += [f"{source}: {where}: {message}" for where, message in header_problems]
        if header_problems:
            continue
        r = Response(status, headers, body, method)
        finished = started + duration if started is not None else None
        records.append(
            Record(
                path,
                response=r,
                duration=duration,
                now=_date(r.header("date")) or finished,
                url=entry_url,
                method=method,
            )
        )
    if problems:
        raise InputError(problems)
    return records


def read_records(data: bytes, source: str, url: str | None = None) -> list[Record]:
    """The records of a recording: a HAR file (a JSON object with ``log``) or
    JSON Lines (one record per line, see ``record_from_json``). ``url``: keep
    only HAR entries whose request URL contains it.

    Raises:
        InputError: Every problem, with its line or key path; or no records.
    """
    text = _decode_text(data, source)
    stripped = text.lstrip()
    if not stripped:
        raise InputError([f"{source}: empty input: no responses to replay"])
    records: list[Record]
    data_obj: object = None
    if stripped.startswith("{"):
        try:
            data_obj = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            data_obj = None  # not one JSON document: JSON Lines (which say where it breaks)
    if isinstance(data_obj, dict) and "log" in data_obj:
        records = _har(data_obj, source, url)
        if not records:
            where = f" whose URL contains {url!r}" if url is not None else ""
            raise InputError([f"{source}: $.log.entries: no entries{where} to replay"])
    elif isinstance(data_obj, dict):  # one record, perhaps spread over lines
        records = [record_from_json(data_obj, source, "")]
    else:
        records = _json_lines(text, source)
        if not records:
            raise InputError([f"{source}: empty input: no responses to replay"])
    return records
