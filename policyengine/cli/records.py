"""Reading recorded attempts for the command line: JSON Lines records and
HAR files (a browser's devtools export), each attempt a ``Record``.

Nothing here raises anything but ``InputError`` on bad input; every problem
names the input and the line or key path it was found at.

Both formats live in one module (about 400 lines): they make the same
``Record``, share its checks and the ``Date`` reading, and ``read_records()``
tells them apart.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import attrs

from .._model import Response
from .._transport import TRANSPORT_FAMILIES
from .errors import InputError, brief
from .failures import make_failure

__all__ = [
    "Record",
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
                    problems.append((where, f"expected a string, got {brief(one)}"))
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
                problems.append((f"{path}[{i}]", f"expected [name, value], got {brief(pair)}"))
    elif value is not None:
        problems.append(
            (
                path,
                f"expected a table of name: value or a list of [name, value], got {brief(value)}",
            )
        )
    return out


def _method(value: object, problems: list[tuple[str, str]]) -> str | None:
    """A record's ``method``, or None (a problem noted if it is not one)."""
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z]+", value):
        return value
    problems.append(("$.method", f"expected an HTTP method such as 'POST', got {brief(value)}"))
    return None


def _duration(value: object, problems: list[tuple[str, str]]) -> float:
    """A record's ``duration`` in seconds, or 0 (a problem noted if it is not one)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value >= 0)
    ):
        problems.append(("$.duration", f"expected seconds >= 0, got {brief(value)}"))
        return 0.0
    return float(value)


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
        raise InputError([_problem(source, where, "$", f"expected an object, got {brief(obj)}")])
    status = obj.get("status")
    transport = obj.get("transport")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999
    ):
        problems.append(("$.status", f"expected a whole number 100-999, got {brief(status)}"))
    if transport is not None and transport not in TRANSPORT_FAMILIES:
        known = ", ".join(sorted(TRANSPORT_FAMILIES))
        problems.append(
            ("$.transport", f"unknown transport kind {brief(transport)}; known: {known}")
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
    method = _method(obj.get("method"), problems)
    duration = _duration(obj.get("duration", 0.0), problems)
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


def _har_duration(took: object) -> float:
    """A HAR entry's ``time`` (milliseconds) in seconds; 0 if it is not one."""
    if isinstance(took, (int, float)) and not isinstance(took, bool) and took >= 0:
        seconds = float(took) / 1000.0
        return seconds if math.isfinite(seconds) else 0.0
    return 0.0


def _har_headers(raw: object, path: str, problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if not isinstance(raw, list):
        problems.append((path, f"expected an array, got {brief(raw)}"))
        return headers
    for j, item in enumerate(raw):
        name = item.get("name") if isinstance(item, Mapping) else None
        value = item.get("value") if isinstance(item, Mapping) else None
        if isinstance(name, str) and isinstance(value, str):
            headers.append((name, value))
        else:
            problems.append((f"{path}[{j}]", f"expected {{name, value}}, got {brief(item)}"))
    return headers


def _har_body(content: Mapping[str, Any], path: str, problems: list[tuple[str, str]]) -> bytes:
    text = content.get("text", "")
    if not isinstance(text, str):
        return b""
    if content.get("encoding") != "base64":
        return text.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        problems.append((path, "expected base64 (encoding = base64)"))
        return b""


def _har_entry(
    entry: object, path: str, url: str | None, problems: list[tuple[str, str]]
) -> Record | None:
    """The record of one HAR entry; None if ``url`` filters it out or it has
    problems (added to ``problems`` as ``(key path, message)``)."""
    if not isinstance(entry, Mapping):
        problems.append((path, f"expected an object, got {brief(entry)}"))
        return None
    request = _table(entry.get("request"))
    entry_url = request.get("url") if isinstance(request.get("url"), str) else None
    if url is not None and (entry_url is None or url not in entry_url):
        return None
    response = entry.get("response")
    if not isinstance(response, Mapping):
        problems.append((f"{path}.response", f"expected an object, got {brief(response)}"))
        return None
    status = response.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 999:
        problems.append(
            (f"{path}.response.status", f"expected a whole number, got {brief(status)}")
        )
        return None
    method = request.get("method") if isinstance(request.get("method"), str) else None
    method = method.upper() if method else None
    duration = _har_duration(entry.get("time"))
    if status == 0:
        kind = _har_failure(entry, response)
        return Record(path, transport=kind, duration=duration, url=entry_url, method=method)
    before = len(problems)
    headers = _har_headers(response.get("headers", []), f"{path}.response.headers", problems)
    content = _table(response.get("content"))
    body = _har_body(content, f"{path}.response.content.text", problems)
    if len(problems) > before:
        return None
    r = Response(status, headers, body, method)
    started = _started(entry.get("startedDateTime"))
    finished = started + duration if started is not None else None
    return Record(
        path,
        response=r,
        duration=duration,
        now=_date(r.header("date")) or finished,
        url=entry_url,
        method=method,
    )


def _har(data: Mapping[str, Any], source: str, url: str | None) -> list[Record]:
    log = data.get("log")
    entries = log.get("entries") if isinstance(log, Mapping) else None
    if not isinstance(entries, list):
        raise InputError([f"{source}: $.log.entries: expected an array (is this a HAR file?)"])
    records = []
    problems: list[tuple[str, str]] = []
    for i, entry in enumerate(entries):
        record = _har_entry(entry, f"$.log.entries[{i}]", url, problems)
        if record is not None:
            records.append(record)
    if problems:
        raise InputError([f"{source}: {where}: {message}" for where, message in problems])
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
