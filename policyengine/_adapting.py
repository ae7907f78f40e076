"""What every client adapter shares: the one way to get a driver from the
keywords every adapter takes (``engine=``, ``driver=``, ``governor=``), where a
request goes (for the governor's key), what to hand back when the governor
refuses to send, where a request names its model (a JSON body field or a
URL path segment) and how a fallback moves it, and when to read a response
body (how far: ``_peek.BodyRead``). No client library is imported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import attrs

from ._driver import Driver
from ._engine import Engine
from ._governor import Deny, Destination, Governor, credential_fingerprint
from ._model import Response

__all__ = [
    "REFUSED_HEADER",
    "ModelInBody",
    "ModelInPath",
    "ModelLocation",
    "Retargeted",
    "body_model",
    "destination",
    "driver_for",
    "refusal",
    "sdk_options",
    "swap_model",
    "wants_body",
]

#: A header on every response the governor made up or replayed instead of
#: sending: ``sticky`` (an earlier answer replayed), ``circuit`` or ``rate_limit``.
REFUSED_HEADER = "x-policyengine-refused"

_DEFAULT_PORTS = {"http": 80, "https": 443}


def driver_for(
    engine: Engine | None, driver: Driver | None, governor: Governor | None = None
) -> Driver:
    """The driver an adapter runs its calls with.

    Raises:
        TypeError: ``driver`` with ``engine`` or ``governor`` (a driver has its own).
    """
    if driver is not None:
        if engine is not None or governor is not None:
            raise TypeError(
                "pass engine= (and governor=) or driver=, not both: "
                "a driver has its own engine and governor"
            )
        return driver
    engine = engine if engine is not None else Engine()
    return Driver(engine) if governor is None else Driver(engine, governor=governor)


def destination(url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Destination:
    """Where a request goes: ``scheme://host:port`` and its credential's fingerprint."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
        host = f"{scheme}://{parts.hostname or ''}:{port}"
    except ValueError:  # a port that is not a number
        host = ""
    return Destination(host, credential_fingerprint(headers))


def refusal(deny: Deny) -> Response:
    """What a caller gets when the governor refuses to send: the answer that
    made the key sticky, replayed, or a made-up error response in the
    gateway's error format (503 for an open circuit, 429 for a send slot past
    the deadline), marked with ``REFUSED_HEADER``."""
    if deny.response is not None:
        replayed = deny.response
        headers = [(n, v) for n, values in replayed.headers.items() for v in values]
        headers.append((REFUSED_HEADER, "sticky"))
        return Response(replayed.status, headers, replayed.body, replayed.method)
    action = deny.action
    limited = action.classification == "rate_limit"
    body = json.dumps(
        {
            "error": {
                "message": action.remediation,
                "type": "policyengine_refused",
                "code": "rate_limit" if limited else "circuit_open",
            }
        }
    )
    made_up = {
        "content-type": "application/json",
        REFUSED_HEADER: "rate_limit" if limited else "circuit",
    }
    return Response(429 if limited else 503, made_up, body)


#: A request body larger than this is not parsed for its model (it is sent as it is).
MAX_MODEL_BODY = 16 * 1024 * 1024


def body_model(body: object, field: str = "model") -> str | None:
    """The ``"model"`` (or ``field``) of a JSON object request body, or None."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return None
    raw = bytes(body)
    if not raw or len(raw) > MAX_MODEL_BODY or raw.lstrip()[:1] != b"{":
        return None
    if f'"{field}"'.encode() not in raw:
        return None
    try:
        data = json.loads(raw)
    except Exception:
        return None
    model = data.get(field) if isinstance(data, dict) else None
    return model if isinstance(model, str) and model else None


def swap_model(body: bytes, model: str, field: str = "model") -> bytes:
    """``body`` (a JSON object with a ``"model"``, or ``field``) with the model replaced."""
    data = json.loads(body)
    data[field] = model
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Retargeted(NamedTuple):
    """A request's URL and body once a fallback moved it to another model."""

    url: str
    body: bytes


@attrs.frozen
class ModelInBody:
    """The model is a top-level field of the JSON request body: OpenAI's,
    Anthropic's and Groq's APIs (``{"model": "gpt-4o", ...}``). The default.

    Attributes:
        field: The field's name.
    """

    field: str = "model"

    def find(self, url: str, body: bytes) -> str | None:
        """The model a request names, or None (no JSON body, no such field)."""
        return body_model(body, self.field)

    def moved(self, url: str, body: bytes, model: str) -> Retargeted:
        """The request's URL (unchanged) and body with ``model`` in its field."""
        return Retargeted(url, swap_model(body, model, self.field))


#: Gemini's ``generateContent``: ``.../models/{model}:generateContent``.
GEMINI_MODEL_PATH = r"/models/(?P<model>[^/:]+)"


def _path_pattern(value: str | re.Pattern[str]) -> re.Pattern[str]:
    pattern = re.compile(value) if isinstance(value, str) else value
    if "model" not in pattern.groupindex:
        raise ValueError(
            f"the pattern {pattern.pattern!r} has no group named model: write (?P<model>...) "
            "around the path segment that is the model"
        )
    return pattern


@attrs.frozen
class ModelInPath:
    """The model is a segment of the URL path: Gemini's
    ``/v1beta/models/{model}:generateContent``. The group ``model`` of the
    first match of ``pattern`` in the URL's path is the model
    (percent-decoded); a fallback puts the next model, percent-encoded, in
    its place. The body is left as it is.

    Attributes:
        pattern: A regular expression with a group named ``model``; default
            ``GEMINI_MODEL_PATH``, ``/models/(?P<model>[^/:]+)``.

    Raises:
        ValueError: ``pattern`` has no group named ``model``.
    """

    pattern: re.Pattern[str] = attrs.field(default=GEMINI_MODEL_PATH, converter=_path_pattern)

    def find(self, url: str, body: bytes) -> str | None:
        """The model in ``url``'s path (percent-decoded), or None."""
        try:
            path = urlsplit(url).path
        except ValueError:
            return None
        found = self.pattern.search(path)
        model = unquote(found.group("model")) if found else ""
        return model or None

    def moved(self, url: str, body: bytes, model: str) -> Retargeted:
        """``url`` with ``model`` (percent-encoded) in the path segment the
        pattern matched; the rest of the URL as it was."""
        parts = urlsplit(url)
        found = self.pattern.search(parts.path)
        if found is None:  # find() named a model, so the pattern matches
            return Retargeted(url, body)
        start, end = found.span("model")
        path = parts.path[:start] + quote(model, safe="") + parts.path[end:]
        return Retargeted(urlunsplit(parts._replace(path=path)), body)


#: Where an adapter looks for a request's model and how it moves it on a fallback.
ModelLocation = ModelInBody | ModelInPath


#: Media types of JSON sent a line or a record at a time (Ollama's
#: ``application/x-ndjson``, JSON Lines, RFC 7464 ``json-seq``): a stream,
#: whose success is handed over as it comes, not read to decide.
_STREAMED_JSON = ("stream", "ndjson", "jsonl", "json-seq", "jsonlines")


def wants_body(status: int, content_type: str | None) -> bool:
    """Whether an adapter reads a response's body to decide: every error, and a
    success only when it is JSON (an error may hide in it); a stream such as
    ``text/event-stream`` or ``application/x-ndjson`` is left alone."""
    if status >= 300 or status < 200:
        return True
    kind = (content_type or "").lower()
    return "json" in kind and not any(s in kind for s in _STREAMED_JSON)


def sdk_options(kwargs: dict[str, Any], http: str) -> dict[str, Any]:
    """An SDK client's arguments, checked: the policy does the retrying
    (``max_retries`` only 0, then left out) and the adapter builds the ``http``
    client (``httpx`` or ``httpx2``), so ``http_client`` is refused.

    Raises:
        TypeError: Either was given.
    """
    if kwargs.get("max_retries", 0) != 0:
        raise TypeError(
            "the policy does the retrying: leave max_retries out (it is set to 0 so that "
            "exactly one layer retries); tighten the policy with policyengine.overriding()"
        )
    if "http_client" in kwargs:
        raise TypeError(
            f"client() builds the HTTP client itself: pass transport= (the inner {http} "
            "transport) instead of http_client="
        )
    return {k: v for k, v in kwargs.items() if k != "max_retries"}
