"""Reading an answer as far as the adapters decide on it: a body to its
bounds (``BodyRead``), a stream up to its first event, live (``Peek``,
inside the attempt) or recorded (``recorded``, for the command line), the
same way.

Which answers: a 2xx ``text/event-stream`` (``watched``). How much is read:
until the first event is complete, at most ``PEEK_MAX_BYTES`` and, checked
between reads, ``PEEK_MAX_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from ._errorbody import MAX_PARSE_BYTES, event_error
from ._sse import Event, EventParser, parse_events

__all__ = [
    "BODY_MAX_BYTES",
    "BODY_MAX_SECONDS",
    "PEEK_MAX_BYTES",
    "PEEK_MAX_SECONDS",
    "BodyRead",
    "Peek",
    "Recorded",
    "recorded",
    "watched",
]

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


#: To decide on an answer that is not a stream (an error, a JSON success), an
#: adapter reads at most this many bytes of its body (the engine parses no
#: more: ``MAX_PARSE_BYTES``); a longer body is decided on what was read and
#: handed over to be read on, what was read replayed first.
BODY_MAX_BYTES = MAX_PARSE_BYTES
#: ...and for at most this many seconds, checked between reads (a body that
#: trickles, or never ends); a single read is bounded by the client's own
#: read timeout.
BODY_MAX_SECONDS = 30.0


class BodyRead:
    """What an adapter read of a body to decide on it: all of it (``ended``),
    or as much as ``BODY_MAX_BYTES`` and ``BODY_MAX_SECONDS`` allow."""

    __slots__ = ("_clock", "_deadline", "_most", "chunks", "ended", "size")

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        most_bytes: int | None = None,
        most_seconds: float | None = None,
    ) -> None:
        self._clock = clock
        self._most = BODY_MAX_BYTES if most_bytes is None else most_bytes
        self._deadline = clock() + (BODY_MAX_SECONDS if most_seconds is None else most_seconds)
        self.chunks: list[bytes] = []
        self.size = 0
        self.ended = False

    def _take(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)

    def _bounded(self) -> bool:
        return self.size >= self._most or self._clock() >= self._deadline

    def add(self, chunk: bytes) -> bool:
        """Take one chunk read; True when a bound is reached (read no more)."""
        if chunk:
            self._take(chunk)
        return self._bounded()

    def end(self) -> None:
        """The body ended while reading: all of it was read."""
        self.ended = True

    def body(self) -> bytes:
        """What was read."""
        return b"".join(self.chunks)


class Peek(BodyRead):
    """What an adapter read of a stream before handing it over: a
    ``BodyRead`` that also stops at the end of the first event, within
    ``PEEK_MAX_BYTES`` and ``PEEK_MAX_SECONDS``."""

    __slots__ = ("_parser", "first")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock, PEEK_MAX_BYTES, PEEK_MAX_SECONDS)
        self.first: Event | None = None
        self._parser = EventParser()

    def add(self, chunk: bytes) -> bool:
        """Take one chunk read; True when enough was read: the first event is
        complete, or a bound was reached."""
        if not chunk:
            return False
        self._take(chunk)
        events = self._parser.feed(chunk)
        if events:
            self.first = events[0]
            return True
        return self._bounded()

    def end(self) -> None:
        """The stream ended while peeking."""
        super().end()
        events = self._parser.close()
        if events:
            self.first = events[0]

    def body(self) -> bytes:
        """What the driver decides on: the stream through its first event, or
        all that was read when there was no complete first event (a whole
        stream that was no event stream: a JSON error under the wrong type)."""
        read = super().body()
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
