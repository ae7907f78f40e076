"""Facts stated in an error message: the model it names, a limit and the
amount requested (as in a context-length error)."""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["Amounts", "extract_amounts", "extract_model"]

_MODEL = (
    re.compile(  # straight, back and curly quotes
        "\\bmodel\\s*(?:[:=]\\s*)?['\"`\u2018\u201c]([^'\"`\u2019\u201d\\s]{1,128})['\"`\u2019\u201d]",
        re.IGNORECASE,
    ),
    re.compile(r"\bfor model\s+([\w./:@-]{1,128})", re.IGNORECASE),
    re.compile(r"^model: ([\w.:@-][\w./:@-]{0,127})$"),  # Anthropic: "model: claude-x"
    re.compile(r"^models/([\w.:@-][\w./:@-]{0,127}) is not found"),  # Gemini
)
_LIMIT = (
    re.compile(r"maximum context length is (\d{1,12})", re.IGNORECASE),
    re.compile(r"(\d{1,12}) maximum\b", re.IGNORECASE),
    re.compile(r"maximum number of tokens allowed \((\d{1,12})\)", re.IGNORECASE),
    re.compile(r"token limit\s*:\s*(\d{1,12})", re.IGNORECASE),
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


class Amounts(NamedTuple):
    """A limit and the amount requested, as a message states them (digits), or None."""

    limit: str | None
    requested: str | None


def extract_amounts(message: str) -> Amounts:
    """The limit and the amount requested stated in a message such as a
    context-length error."""
    limit = next((m.group(1) for p in _LIMIT if (m := p.search(message))), None)
    requested = next((m.group(1) for p in _REQUESTED if (m := p.search(message))), None)
    return Amounts(limit, requested)
