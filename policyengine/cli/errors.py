"""The command line's own exceptions, and the exit code each ends in.

    Exception
     +-- UsageError    the command line is wrong: usage and the message on stderr, exit 2
     +-- InputError    an input other than a policy (a recording, a body file,
     |                 stdin) is unusable: one line per problem on stderr, exit 1
     +-- OutputError   standard output cannot be written: one line on stderr, exit 1

A policy that does not load raises the core's ``PolicyError`` (its problems on
stderr, exit 1). ``commands.main()`` is the one place that catches them all.
``brief()`` is how an ``InputError`` line quotes the value it rejects.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["InputError", "OutputError", "UsageError", "brief"]


class UsageError(Exception):
    """The command line is wrong (exit 2); the message says how to fix it."""


class InputError(Exception):
    """An input other than a policy (a recording, a body file, stdin) is
    unusable. ``lines``: one ``source: where: what`` line per problem."""

    lines: tuple[str, ...]

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = tuple(lines)
        super().__init__("\n".join(self.lines))


class OutputError(Exception):
    """Standard output cannot be written: it is closed, or the disk is full (exit 1)."""


def brief(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters for a problem line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
