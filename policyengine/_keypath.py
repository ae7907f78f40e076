"""Key paths and the words of a policy problem: ``$.rules[2].backoff``, a
value shown short, its kind, and "did you mean" for a near miss."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable

__all__ = ["KeyPath", "format_path", "kind_of", "show_value", "suggest"]

KeyPath = tuple[str | int, ...]
"""A key path in a policy document: ``("rules", 2, "backoff")``."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@functools.lru_cache(maxsize=4096)
def _path_part(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return f".{part}" if _BARE_KEY.fullmatch(part) else f"[{part!r}]"


def format_path(path: KeyPath) -> str:
    """``("rules", 2, "backoff")`` -> ``$.rules[2].backoff``."""
    return "$" + "".join(map(_path_part, path))


def suggest(value: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss or a unique prefix, else ""."""
    text, options = str(value), list(choices)
    close = difflib.get_close_matches(text, options, n=1)
    if not close and text:
        close = [c for c in options if c.startswith(text)][:2]
        close = close if len(close) == 1 else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def show_value(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind_of(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)
