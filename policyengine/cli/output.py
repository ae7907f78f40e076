"""Writing the command line's output: stdout that survives a reader leaving
(``policyengine check | head -1``), stderr that is never fatal, and text
that any stream can take.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import TextIO

from .errors import OutputError

__all__ = ["err", "flush", "out", "out_json", "silence", "write"]


def _encodable(text: str, stream: TextIO) -> str:
    """``text`` as ``stream`` can take it: an undecodable file name or argument
    reaches Python as lone surrogates, shown escaped (``bad\\udcff.toml``, as
    stderr shows them) so that JSON and TOML output stays valid UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        with contextlib.suppress(LookupError):
            text = text.encode(encoding, "backslashreplace").decode(encoding)
    return text


def silence(stream: TextIO) -> None:
    """Point ``stream`` at /dev/null, so that what is still buffered (and
    Python's flush at exit) goes nowhere instead of failing again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


def _stdout(act: Callable[[TextIO], object]) -> None:
    """Do ``act`` on stdout.

    Raises:
        OutputError: stdout is closed or cannot be written (not when the
            reader left: that is silenced, and the command goes on).
    """
    stream = sys.stdout
    if stream is None:
        raise OutputError("standard output is closed")
    try:
        act(stream)
    except BrokenPipeError:
        # The reader left (`policyengine check | head -1`): the rest of the output
        # goes nowhere, and the command still ends with its own exit code.
        silence(stream)
    except OSError as e:
        silence(stream)
        raise OutputError(e.strerror or str(e)) from None


def write(text: str) -> None:
    """Write to stdout (see ``_stdout``)."""
    _stdout(lambda stream: stream.write(_encodable(text, stream)))


def out(text: str = "") -> None:
    """A line on stdout."""
    write(text + "\n")


def out_json(data: object) -> None:
    """``data`` as indented JSON on stdout."""
    out(json.dumps(data, indent=2, ensure_ascii=False))


def flush() -> None:
    """Flush stdout, so that a failure to write surfaces as ``OutputError``."""
    _stdout(lambda stream: stream.flush())


def err(text: str) -> None:
    """A line on stderr; nothing if stderr is closed or unwritable."""
    stream = sys.stderr
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.write(_encodable(text + "\n", stream))
