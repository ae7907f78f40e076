"""JSON documents of error bodies, decoded as ``json.loads`` decodes them.

The stdlib's C scanner is called directly (``json.loads`` wraps it in two
regular-expression scans for white space and a type check). With the
``fast`` extra installed (msgspec),
msgspec decodes first, imported the first time a body is decoded, and its
answer is used only where it is certainly the stdlib's: msgspec refuses
(and the stdlib then decides) every input on which the two would differ -
``NaN`` and ``Infinity``, numbers out of a float's range, lone surrogate
escapes, bytes that are not UTF-8 (which the stdlib reads with
replacement characters) - and integers of any size come out alike (both
refuse more than 4,300 digits). Nesting is the one difference left: msgspec
goes one level deeper before Python's recursion limit stops it, so a
document with more than ``MAX_FAST_OPENERS`` brackets goes to the stdlib.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import scanner
from typing import Any

__all__ = ["MAX_FAST_OPENERS", "decode", "decode_text", "fast_decoder"]

#: A document with more ``[`` and ``{`` than this is decoded by the stdlib
#: alone (deep nesting: see above). Error bodies hold a dozen.
MAX_FAST_OPENERS = 100

# (the C scanner, where there is one; typeshed types its argument wrongly)
_scan = scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_WHITE = " \t\n\r"  # JSON's white space, as the stdlib skips it

_UNSET: Any = object()
_fast: Callable[[bytes], Any] | None = _UNSET
"""msgspec's decoder, None without it; looked up on first use."""


def fast_decoder() -> Callable[[bytes], Any] | None:
    """msgspec's JSON decoder if the ``fast`` extra is installed, else None
    (imported on the first call)."""
    global _fast
    if _fast is _UNSET:
        try:
            import msgspec.json
        except ImportError:
            _fast = None
        else:
            _fast = msgspec.json.Decoder().decode
    return _fast


def decode_text(text: str) -> Any:
    """``json.loads(text)``: the same value, or the same failure (a
    ``ValueError``, or ``RecursionError`` for very deep nesting)."""
    start = 0 if text[:1] not in _WHITE else len(text) - len(text.lstrip(_WHITE))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:  # nothing a value can start with
        raise json.JSONDecodeError("Expecting value", text, e.value) from None
    if end != len(text) and text[end:].strip(_WHITE):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def decode(data: bytes) -> Any:
    """``json.loads`` of ``data`` read as UTF-8, an invalid byte read as a
    replacement character: the same value, or the same failure."""
    fast = _fast if _fast is not _UNSET else fast_decoder()
    if fast is not None and data.count(b"[") + data.count(b"{") <= MAX_FAST_OPENERS:
        try:
            return fast(data)
        except Exception:  # msgspec refuses: the stdlib says what it is
            pass
    return decode_text(data.decode("utf-8", "replace"))
