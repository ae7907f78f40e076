"""Reading a streamed answer up to its first event: what is decided before a
stream is handed over, live (the adapters' ``Peek``, inside the attempt) or
recorded (``recorded``, for the command line), the same way.

Which answers: a 2xx ``text/event-stream`` (``watched``). How much is read:
until the first event is complete, at most ``PEEK_MAX_BYTES`` and, checked
between reads, ``PEEK_MAX_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from ._errorbody import event_error
from ._sse import Event, EventParser, parse_events

__all__ = ["PEEK_MAX_BYTES", "PEEK_MAX_SECONDS", "Peek", "Recorded", "recorded", "watched"]

#: Before handing a stream over, read at most this many bytes looking for the
#: end of its first event; a first event longer than this is handed over
#: undecided (and watched like the rest).
PEEK_MAX_BYTES = 64 * 1024
#: ...and for at most this many seconds, checked between reads (a server
#: sending only comments while it thinks); a single read is bounded by the
#: client's own read timeout.
PEEK_MAX_SECONDS = 30.0


def watched(status: int, content_type: str | None, content_encoding: str | None) -> bool:
    """Whether an answer is a stream the adapters peek at and watch: a 2xx
    ``text/event-stream`` whose body is not compressed (a compressed stream
    is handed over as it is, unwatched)."""
    if not 200 <= status < 300 or "text/event-stream" not in (content_type or "").lower():
        return False
    return (content_encoding or "identity").strip().lower() == "identity"


class Peek:
    """What an adapter read of a stream before handing it over."""

    __slots__ = ("_clock", "_deadline", "_parser", "chunks", "ended", "first", "size")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.chunks: list[bytes] = []
        self.size = 0
        self.first: Event | None = None
        self.ended = False
        self._parser = EventParser()
        self._deadline = clock() + PEEK_MAX_SECONDS

    def add(self, chunk: bytes) -> bool:
        """Take one chunk read; True when enough was read: the first event is
        complete, or a bound was reached."""
        if not chunk:
            return False
        self.chunks.append(chunk)
        self.size += len(chunk)
        events = self._parser.feed(chunk)
        if events:
            self.first = events[0]
            return True
        return self.size >= PEEK_MAX_BYTES or self._clock() >= self._deadline

    def end(self) -> None:
        """The stream ended while peeking."""
        self.ended = True
        events = self._parser.close()
        if events:
            self.first = events[0]

    def body(self) -> bytes:
        """What the driver decides on: the stream through its first event, or
        all that was read when there was no complete first event (a whole
        stream that was no event stream: a JSON error under the wrong type)."""
        read = b"".join(self.chunks)
        if self.first is not None and not self.ended:
            return read[: self.first.end]
        return read


class Recorded(NamedTuple):
    """A recorded stream, read as the adapters read it live.

    Attributes:
        head: What they decide on before handing it over (``Peek.body``).
        events: How many events it holds.
        interrupted: How many events a caller is handed before an error
            event after the head stops the stream, or None if none does.
        error: That error event as stream text (b"" if none).
    """

    head: bytes
    events: int
    interrupted: int | None
    error: bytes


def recorded(body: bytes) -> Recorded:
    """``body``, a whole recorded stream, read as a live one would be."""
    events = parse_events(body)
    peek = Peek(clock=lambda: 0.0)
    for start in range(0, len(body), PEEK_MAX_BYTES):
        if peek.add(body[start : start + PEEK_MAX_BYTES]):
            break
    else:
        peek.end()
    head = peek.body()
    for n, event in enumerate(events):
        if event.end <= len(head):
            continue  # decided on with the head
        if event_error(event.name, event.data, True) is not None:
            return Recorded(head, len(events), n, event.encode())
    return Recorded(head, len(events), None, b"")
