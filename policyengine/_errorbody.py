"""Error bodies: the error object a response body carries, in any shape real
APIs send (JSON objects of several dialects, server-sent event streams, HTML
pages, plain text, JSON cut off mid-way).

Only the first ``MAX_PARSE_BYTES`` of a body are read. Every field is bounded
before any pattern runs on it: messages to ``MAX_MESSAGE_CHARS``, codes,
types and params to ``MAX_FIELD_CHARS``; a cut drops the word it falls in, so
no part of a secret cut short is left for redaction to miss. The raw error
stays inside the engine; ``to_error`` makes the public ``ParsedError``,
redacting every field first and cutting after.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from ._json import decode
from ._model import ParsedError
from ._redact import redact
from ._sse import parse_events
from ._text import ELLIPSIS, clip

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_NESTED_ITEMS",
    "MAX_PARSE_BYTES",
    "RawError",
    "event_error",
    "parse_error",
    "parse_raw",
    "to_error",
]

#: Only this much of a body is parsed for an error; the rest is never looked at.
MAX_PARSE_BYTES = 64 * 1024
#: Error messages longer than this are cut (with "…").
MAX_MESSAGE_CHARS = 2000
#: Error codes, types and params longer than this are cut (with "…"); such a
#: value names no rule (real codes are a few dozen characters).
MAX_FIELD_CHARS = 256

_WS = re.compile(r"\s+")
# [^<>] stops a tag at the next "<": linear even on a page of nothing but "<".
_TAG = re.compile(r"<[^<>]{0,2000}>")


def _cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters; a cut also drops the word it
    falls in (up to the last white space), which may be a secret cut short."""
    if len(text) <= limit:
        return text
    return _cut_short(text[: max(0, limit - 1)])


def _cut_short(head: str) -> str:
    """``head``, the start of a longer text, without the word it ends in, and "…"."""
    end = len(head)
    while end and not head[end - 1].isspace():
        end -= 1
    return head[:end] + ELLIPSIS


def _clip(text: str) -> str:
    return _cut(text, MAX_MESSAGE_CHARS)


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
    return text[opened + 1 : end if end >= 0 else opened + 2 + MAX_MESSAGE_CHARS]


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
        return _clip(json.dumps(value, ensure_ascii=False)[: MAX_MESSAGE_CHARS + 1])
    except Exception:  # pragma: no cover - json.dumps of parsed JSON
        return ""


def _google_reason(err: dict[str, Any]) -> str | None:
    details = err.get("details")
    if isinstance(details, list):
        for d in details[:16]:
            if isinstance(d, dict) and isinstance(d.get("reason"), str) and d["reason"]:
                return str(d["reason"])
    return None


class RawError(NamedTuple):
    """An error as the body gave it: clipped, not yet redacted. Never leaves
    the engine; ``to_error`` makes the public ``ParsedError``."""

    message: str
    type: str | None
    code: str | None
    param: str | None
    more_codes: tuple[str, ...] = ()
    """Codes nested in the error object (``_nested_codes``), ``code`` excluded."""
    source: dict[str, Any] | None = None
    """The error object itself, for body wait hints (``[[hints.sources]] body``)."""

    @property
    def codes(self) -> tuple[str, ...]:
        """Every code the error carries: ``code`` first, then the nested ones."""
        return self.more_codes if self.code is None else (self.code, *self.more_codes)


#: Nested items looked at per array (details, errors, violations): a bound.
MAX_NESTED_ITEMS = 16
#: Keys that hold a machine-readable code in a nested object.
_NESTED_CODE_KEYS = ("reason", "error_code", "code", "quotaId")


def _nested_codes(err: dict[str, Any], primary: str | None) -> tuple[str, ...]:
    """The codes an error object carries below its top level, in order, each
    once: Google's ``details[].reason`` (``ErrorInfo``) and
    ``details[].violations[].quotaId`` (``QuotaFailure``), the legacy
    ``errors[].reason``, Anthropic's ``details.error_code``, Azure's
    ``innererror.code`` (one level of ``innererror`` within it too)."""
    found: list[str] = []
    for key in ("details", "errors"):
        nested = err.get(key)
        for item in nested[:MAX_NESTED_ITEMS] if isinstance(nested, list) else (nested,):
            _take_codes(item, primary, found)
    inner = err.get("innererror")
    _take_codes(inner, primary, found)
    if isinstance(inner, dict):
        _take_codes(inner.get("innererror"), primary, found)
    return tuple(found[:MAX_NESTED_ITEMS])


def _take_codes(obj: object, primary: str | None, found: list[str]) -> None:
    """The codes of one nested object (and of its ``violations``) into ``found``."""
    if not isinstance(obj, dict):
        return
    for key in _NESTED_CODE_KEYS:
        value = _scalar(obj.get(key))
        if value is not None and value != primary and value not in found:
            found.append(value[:200])
    violations = obj.get("violations")
    if isinstance(violations, list):
        for item in violations[:MAX_NESTED_ITEMS]:
            _take_codes(item, primary, found)


def _redact_field(value: str | None) -> str | None:
    return clip(redact(value), MAX_FIELD_CHARS) if value else value


def _bound_field(value: str | None) -> str | None:
    return _cut(value, MAX_FIELD_CHARS) if value is not None else None


def to_error(raw: RawError) -> ParsedError:
    """The public ``ParsedError`` of a raw error, secrets redacted from every
    field (a server may echo a key in its code, type or param as well), then
    cut: the mask may be longer than what it hides."""
    return ParsedError(
        message=clip(redact(raw.message), MAX_MESSAGE_CHARS),
        type=_redact_field(raw.type),
        code=_redact_field(raw.code),
        param=_redact_field(raw.param),
        nested_codes=tuple(redact(c) for c in raw.more_codes),
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
    code = code if type(code) is str and code else _scalar(code)
    return RawError(
        _clip(message) if type(message) is str else _message(message),
        etype,
        code,
        param if isinstance(param, str) and param else None,
        # (OpenAI's shape, the common case, nests nothing: no call for it)
        _nested_codes(err, code)
        if "details" in err or "errors" in err or "innererror" in err
        else (),
        err,
    )


def _from_json(data: object, success: bool) -> RawError | None:
    if isinstance(data, list) and data and isinstance(data[0], dict) and not success:
        data = data[0]  # Google's streaming endpoints wrap the error in a list
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if err is None and data.get("type") == "response.failed":
        # OpenAI / Azure Responses API: the stream's failure event nests the
        # error in the response object ({"type": "response.failed",
        # "response": {"status": "failed", "error": {code, message}}}).
        response = data.get("response")
        err = response.get("error") if isinstance(response, dict) else None
    if isinstance(err, dict):
        return _from_object(err)
    if isinstance(err, str) and err:
        # {"error": "Model x is currently loading", "estimated_time": 20.0}
        # (Hugging Face): the object holding the message holds the wait too;
        # text-generation-inference names the kind in "error_type".
        etype = _scalar(data.get("type")) or _scalar(data.get("error_type"))
        return RawError(_clip(err), etype, _scalar(data.get("code")), None, (), data)
    if err not in (None, False, "", {}):
        return RawError(_message(err), None, None, None)
    if data.get("object") == "error" or (
        not success and ("message" in data or "code" in data or "type" in data)
    ):
        # Unwrapped {"message", "type", "code"} (vLLM, some gateways)
        return _from_object(data)
    if not success and "detail" in data:  # FastAPI-style
        return RawError(_message(data["detail"]), None, None, None)
    return None


def event_error(name: str, data: bytes, success: bool) -> RawError | None:
    """The error one server-sent event carries, or None: an error object in
    its data (OpenAI, OpenRouter, one-api), or any event named ``error``
    (Anthropic), whose data is then read as an error body."""
    named = name == "error"
    if not named and data.find(b'"error"') < 0:
        return None
    payload = data.strip()
    if payload[:1] in (b"{", b"["):
        try:
            decoded = decode(payload)
        except Exception:  # broken, truncated, too deep
            decoded = None
        if decoded is not None:
            parsed = _from_json(decoded, success and not named)
            if parsed is not None:
                return parsed
        elif named:
            salvaged = _salvage(payload)
            if salvaged is not None:
                return salvaged
    if not named:
        return None
    return RawError(_text_message(payload), None, None, None)


def _from_events(body: bytes, success: bool) -> RawError | None:
    """The first error event of an event stream (see ``_sse`` for how it is read)."""
    for event in parse_events(body):
        found = event_error(event.name, event.data, success)
        if found is not None:
            return found
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
        if not text.startswith('"', message.end(1)):  # cut short: its last word may be too
            words = _cut_short(words)
    return RawError(
        _clip(words),
        etype.group(1) if etype else None,
        (code.group(1) or code.group(2)) if code else None,
        None,
    )


def parse_error(body: bytes, status: int) -> ParsedError | None:
    """The error ``body`` carries (secrets redacted), or None; see ``parse_raw``."""
    raw = parse_raw(body, status)
    return None if raw is None else to_error(raw)


def parse_raw(body: bytes, status: int) -> RawError | None:
    """The error ``body`` carries, every field bounded, or None; see ``_parse``."""
    raw = _parse(body, status)
    if raw is None or (
        # The common case, checked without building anything.
        len(raw.message) <= MAX_MESSAGE_CHARS
        and (raw.type is None or len(raw.type) <= MAX_FIELD_CHARS)
        and (raw.code is None or len(raw.code) <= MAX_FIELD_CHARS)
        and (raw.param is None or len(raw.param) <= MAX_FIELD_CHARS)
    ):
        return raw
    return RawError(
        _clip(raw.message), _bound_field(raw.type), _bound_field(raw.code), _bound_field(raw.param)
    )


#: How a server-sent event stream starts (a field name, or a comment).
_EVENT_STARTS = (b"data:", b"event", b"retry", b":", b"id:")


def _parse(body: bytes, status: int) -> RawError | None:
    """The error ``body`` carries, or None.

    A 2xx body is an error only if it holds an error object. Any other body
    is an error: a recognised JSON shape gives message / type / code / param;
    anything else (HTML, text, broken JSON) gives its text as the message.
    In a server-sent event stream, the first event holding an error object,
    or named ``error``, is the error. An empty body gives None.
    """
    success = 200 <= status < 300
    if len(body) > MAX_PARSE_BYTES:
        body = body[:MAX_PARSE_BYTES]
    if success and body.find(b'"error"') < 0 and (body[:1] == b"{" or body.find(b"error") < 0):
        return None  # (an event stream may name an event "error" without the quotes)
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(_EVENT_STARTS):
        # A server-sent event stream: the error comes as an event after the
        # status line said 200 (Anthropic, OpenAI, OpenRouter).
        found = _from_events(stripped, success)
        if found is not None or success:
            return found
    if stripped[:1] in (b"{", b"["):
        try:
            # A stray invalid byte (in a message) must not hide the error code.
            data = decode(stripped)
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
    return RawError(message, None, None, None) if message else None
