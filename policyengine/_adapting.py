"""What every client adapter shares: the request-body model swap, when to
read a response body, and the one way to get a driver from the keywords every
adapter takes (``engine=`` or ``driver=``). No client library is imported here.
"""

from __future__ import annotations

import json

from ._driver import Driver
from ._engine import Engine

__all__ = ["body_model", "driver_for", "swap_model", "wants_body"]


def driver_for(engine: Engine | None, driver: Driver | None) -> Driver:
    """The driver an adapter runs its calls with.

    Raises:
        TypeError: Both were given (a driver has its own engine).
    """
    if driver is not None and engine is not None:
        raise TypeError("pass engine= or driver=, not both (a driver has its own engine)")
    if driver is not None:
        return driver
    return Driver(engine) if engine is not None else Driver()


#: A request body larger than this is not parsed for its model (it is sent as it is).
MAX_MODEL_BODY = 16 * 1024 * 1024


def body_model(body: object) -> str | None:
    """The ``"model"`` of a JSON object request body, or None."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return None
    raw = bytes(body)
    if not raw or len(raw) > MAX_MODEL_BODY or raw.lstrip()[:1] != b"{" or b'"model"' not in raw:
        return None
    try:
        data = json.loads(raw)
    except Exception:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) and model else None


def swap_model(body: bytes, model: str) -> bytes:
    """``body`` (a JSON object with a ``"model"``) with the model replaced."""
    data = json.loads(body)
    data["model"] = model
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def wants_body(status: int, content_type: str | None) -> bool:
    """Whether an adapter reads a response's body to decide: every error, and a
    success only when it is JSON (an error may hide in it); a stream such as
    ``text/event-stream`` is left alone."""
    if status >= 300 or status < 200:
        return True
    kind = (content_type or "").lower()
    return "json" in kind and "stream" not in kind
