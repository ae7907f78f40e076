"""Text for people: seconds, plurals, clipping, remediation templates.

One formatter for each of these, used by the engine's explanations, the
driver's log lines and the command-line tools alike, so a wait reads the same
everywhere (``2``, ``1.5``, ``0.125``).
"""

from __future__ import annotations

import string
from typing import NamedTuple

__all__ = ["ELLIPSIS", "TemplatePart", "clip", "parse_template", "plural", "seconds"]

#: Marks text that was cut short.
ELLIPSIS = "…"

_FORMATTER = string.Formatter()


def seconds(value: float) -> str:
    """Seconds for people, without a unit: ``2``, ``1.5``, ``0.125``, ``inf``."""
    return format(round(value, 3), "g")


def plural(count: int, word: str) -> str:
    """``1 attempt``, ``2 attempts``."""
    return f"{count} {word}{'s' * (count != 1)}"


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the cut marked with ``…``."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS


class TemplatePart(NamedTuple):
    """A piece of a remediation template: literal text, then a placeholder (or None)."""

    literal: str
    field: str | None


def parse_template(text: str) -> tuple[TemplatePart, ...]:
    """A remediation template as literal text and placeholders, ``{{`` and
    ``}}`` already unescaped; never an empty tuple.

    Raises:
        ValueError: The template is malformed, or a placeholder has a
            conversion or format spec (``{status!r}``, ``{delay:.2f}``).
    """
    parts: list[TemplatePart] = []
    literal = ""
    for text_part, field, spec, conversion in _FORMATTER.parse(text):
        literal += text_part
        if field is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{field}}} takes no conversion or format spec")
        parts.append(TemplatePart(literal, field))
        literal = ""
    if literal or not parts:
        parts.append(TemplatePart(literal, None))
    return tuple(parts)
