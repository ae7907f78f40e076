"""Server-sent events: an incremental parser, bytes in, events out.

It reads a stream the way the HTML standard's "interpreting an event stream"
does: lines end with CRLF, LF or CR (a CRLF split between two chunks is one
line end); a UTF-8 byte order mark at the start is skipped; a line starting
with ``:`` is a comment; ``field: value`` loses one space after the colon; a
line with no colon is a field with an empty value; ``data`` lines of one event
are joined with ``\\n``; ``event`` names it (``message`` when unnamed); ``id``
sets the last event id (kept across events, ignored if it holds NUL); other
fields (``retry``...) are ignored; a blank line dispatches the event, unless
it has no ``data`` line. One departure: at the end of the stream, an event
that lost its blank line is dispatched rather than dropped (``close()``), as
a server that failed while writing may leave its error event so.

The parser works on bytes, never decodes ``data`` (the reader does, if it
cares), and is bounded: a line keeps at most ``MAX_LINE_BYTES`` (the rest of
it is skipped) and an event's data at most ``MAX_EVENT_BYTES``, so a stream
of any size and shape is parsed in constant memory. It never raises.

Each event knows where it lies in the stream (``start``, ``end``: byte
offsets from the first byte fed; ``end`` is just past the first byte of the
line end of its blank line, the CR of a CRLF, so that it is the same however
the stream is cut in chunks), so that a reader passing the stream on can hand
out exactly what came before an event.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["MAX_EVENT_BYTES", "MAX_LINE_BYTES", "Event", "EventParser", "parse_events"]

#: A line of the stream keeps at most this many bytes; the rest of it is skipped.
MAX_LINE_BYTES = 64 * 1024
#: An event's data keeps at most this many bytes (an error object fits many
#: times over); the rest of it is skipped.
MAX_EVENT_BYTES = 64 * 1024

_BOM = b"\xef\xbb\xbf"
_EOL = re.compile(rb"\r\n|\r|\n")


class Event(NamedTuple):
    """One dispatched event.

    Attributes:
        name: The ``event`` field, or ``message`` when none was given.
        data: The ``data`` lines joined with ``\\n``, as bytes (at most
            ``MAX_EVENT_BYTES``).
        id: The last event id in force when it was dispatched, or None.
        start: Offset in the stream of its first field line.
        end: Offset in the stream just past the blank line that ended it (the
            end of the stream for an event ``close()`` dispatched).
    """

    name: str
    data: bytes
    id: str | None
    start: int
    end: int

    def encode(self) -> bytes:
        """The event as stream text (``event:`` if named, ``data:`` lines, a blank line)."""
        lines = [b"data: " + part for part in self.data.split(b"\n")]
        if self.name != "message":
            lines.insert(0, b"event: " + self.name.encode("utf-8", "replace"))
        return b"\n".join(lines) + b"\n\n"


class EventParser:
    """Bytes in (``feed``, in chunks of any size), events out; ``close()`` at
    the end of the stream. See the module docstring for the rules and bounds."""

    __slots__ = (
        "_at",
        "_begun",
        "_cr",
        "_data",
        "_id",
        "_kept",
        "_name",
        "_start",
        "_tail",
        "_tail_at",
    )

    def __init__(self) -> None:
        self._at = 0  # stream offset of the next byte fed
        self._begun = False  # the first line (where a BOM may be) was read
        self._cr = False  # the last chunk ended with CR: a LF first in the next is its pair
        self._tail: bytes | None = None  # the start of a line whose end is not yet fed
        self._tail_at = 0  # its offset in the stream
        self._name = ""
        self._data: list[bytes] | None = None  # None: no data line in this event yet
        self._kept = 0  # bytes of data kept for this event
        self._id: str | None = None
        self._start = -1  # offset of this event's first field line; -1: none yet

    def feed(self, chunk: bytes) -> list[Event]:
        """The events ``chunk`` completes (often none, or one)."""
        end = len(chunk)
        if (
            self._start < 0  # nothing pending: no event, line or CR begun
            and self._tail is None
            and not self._cr
            and self._begun
            and end <= MAX_LINE_BYTES
            and chunk.find(b"\n\n") == end - 2
            and b"\r" not in chunk
        ):
            # What most LLM servers send in one piece: exactly one event.
            event = self._one(chunk, end)
            if event is not None:
                return [event]
        events: list[Event] = []
        if not end:
            return events
        at = self._at
        self._at = at + end
        pos = 0
        if self._cr:
            self._cr = False
            if chunk[:1] == b"\n":
                pos = 1
        crs = b"\r" in chunk
        tail = self._tail
        while pos < end:
            if crs:
                found = _EOL.search(chunk, pos)
                if found is None:
                    break
                stop, after = found.span()
                if after == end and after - stop == 1 and chunk[stop] == 13:
                    # A lone CR last: the LF of a CRLF may start the next chunk.
                    self._cr = True
            else:
                stop = chunk.find(b"\n", pos)
                if stop < 0:
                    break
                after = stop + 1
            if tail is not None:
                line = (tail + chunk[pos:stop])[:MAX_LINE_BYTES]
                line_at = self._tail_at
                tail = None
            else:
                line = (
                    chunk[pos:stop]
                    if stop - pos <= MAX_LINE_BYTES
                    else chunk[pos : pos + MAX_LINE_BYTES]
                )
                line_at = at + pos
            # An event ends after the first byte of its blank line's end: a
            # CRLF's LF may come in the next chunk, and must not move the end.
            self._line(line, line_at, at + stop + 1, events)
            pos = after
        if pos < end:
            if tail is None:
                self._tail_at = at + pos
                tail = chunk[pos : pos + MAX_LINE_BYTES]
            elif len(tail) < MAX_LINE_BYTES:
                tail = (tail + chunk[pos:])[:MAX_LINE_BYTES]
        self._tail = tail
        return events

    def _one(self, chunk: bytes, end: int) -> Event | None:
        """``chunk``, one whole event of ``event:`` and ``data:`` lines and
        nothing else, as an event; None for any other shape (read line by line)."""
        name = "message"
        data: list[bytes] = []
        for line in chunk[:-2].split(b"\n"):
            if line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[:6] == b"event:":
                name = (line[7:] if line[6:7] == b" " else line[6:]).decode("utf-8", "replace")
            else:
                return None
        if not data:
            return None
        joined = data[0] if len(data) == 1 else b"\n".join(data)
        at = self._at
        self._at = at + end
        return Event(name or "message", joined[:MAX_EVENT_BYTES], self._id, at, at + end)

    def close(self) -> list[Event]:
        """The end of the stream: the events a last line without its line end
        or an event without its blank line complete."""
        events: list[Event] = []
        if self._tail is not None:
            tail, self._tail = self._tail, None
            self._line(tail, self._tail_at, self._at, events)
        if self._data is not None:
            self._line(b"", self._at, self._at, events)
        return events

    def _line(self, line: bytes, line_at: int, after: int, events: list[Event]) -> None:
        if not self._begun:
            self._begun = True
            if line[:3] == _BOM:
                line = line[3:]
                line_at += 3
        if not line:
            data = self._data
            if data is not None:
                joined = data[0] if len(data) == 1 else b"\n".join(data)
                events.append(Event(self._name or "message", joined, self._id, self._start, after))
            self._name = ""
            self._data = None
            self._kept = 0
            self._start = -1
            return
        colon = line.find(b":")
        if colon == 0:
            return  # a comment
        if self._start < 0:
            self._start = line_at
        if colon < 0:
            field, value = line, b""
        else:
            field = line[:colon]
            value = line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if field == b"data":
            room = MAX_EVENT_BYTES - self._kept
            if self._data is None:
                self._data = [value[:room]]
            elif room > 0:
                self._data.append(value[:room])
            self._kept += len(value) + 1
        elif field == b"event":
            self._name = value.decode("utf-8", "replace")
        elif field == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")


def parse_events(body: bytes) -> list[Event]:
    """Every event of a whole stream ``body`` (``feed`` then ``close``)."""
    parser = EventParser()
    events = parser.feed(body)
    events += parser.close()
    return events
