"""Streamed answers (server-sent events), as every adapter handles them.

A 2xx ``text/event-stream`` answer is decided in two halves:

- Before the first event, inside the attempt: the adapter reads the stream
  until its first event is complete (``_peek.Peek``, bounded) and gives the
  driver a view of the answer whose body is what was read. The driver decides on it
  like on any answer, so an error event first is retried, waited for, fallen
  back from and taught to the governor like an error status.
- After, as the caller reads: the adapter replays what was read, then passes
  the rest through as it arrives, each piece through ``Watch``, which counts
  events and, at an error event or a dropped connection, decides on it and
  raises ``StreamInterrupted`` once everything before it was handed out.

No client library is imported here: the adapters do the reading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from ._driver import Driver
from ._errorbody import event_error
from ._errors import StreamInterrupted
from ._model import Action, ActionKind, Response
from ._overrides import Override
from ._peek import watched
from ._results import Attempt, Decision
from ._sse import Event, EventParser
from ._testing import current_testing
from ._transport import transport_kind

__all__ = ["Unwatched", "Watch", "judge", "replay_watch"]

Decide = Callable[[object], Action]


def judge(
    driver: Driver,
    attempt: Attempt,
    *,
    method: str | None,
    override: Override | None = None,
    fallback: bool = True,
) -> Decide:
    """How a ``Watch`` decides on what breaks a stream off: with the driver of
    the call (its logger and hooks, the overrides in force), as the attempt
    that opened the stream, ``elapsed`` grown by the time since (except in
    testing mode, where only waits count)."""
    testing = current_testing()
    opened = driver.clock()

    def decide(subject: object) -> Action:
        elapsed = attempt.elapsed
        if testing is None:
            elapsed += max(0.0, driver.clock() - opened)
        now = attrs.evolve(attempt, elapsed=elapsed)
        action = driver.decide(
            subject, now, method=method, override=override, testing=testing, fallback=fallback
        )
        driver.notify(Decision(now, action, subject))
        return action

    return decide


class Watch:
    """Watches a stream as the caller reads it (see the module docstring).

    An adapter hands every piece it reads to ``passing`` (what to give the
    caller), calls ``ended`` at the end of the stream and ``broke`` with what
    reading raised; ``raise_pending`` before each read. ``settled`` is the
    driver's action on this answer (its first event): an error event first
    that the policy gave up on raises with that action, not a new one.
    """

    __slots__ = (
        "_at",
        "_decide",
        "_done",
        "_headers",
        "_method",
        "_parser",
        "_status",
        "events",
        "last_event_id",
        "pending",
        "settled",
    )

    def __init__(
        self,
        decide: Decide,
        status: int,
        headers: Iterable[tuple[str, str]],
        method: str | None,
    ) -> None:
        self._decide = decide
        self._status = status
        self._headers = tuple(headers)
        self._method = method
        self._parser = EventParser()
        self._at = 0
        self._done = False
        self.events = 0
        self.last_event_id: str | None = None
        self.pending: StreamInterrupted | None = None
        self.settled: Action | None = None

    def passing(self, chunk: bytes) -> bytes:
        """The part of ``chunk`` to hand the caller: all of it, or what comes
        before an error event (``pending`` is then set: raise it before the
        next read).

        Raises:
            StreamInterrupted: An error event starts ``chunk`` (nothing to hand out).
        """
        if self._done:
            return chunk
        at = self._at
        self._at = at + len(chunk)
        for event in self._parser.feed(chunk):
            if self._stops(event):
                assert self.pending is not None
                if event.start - at <= 0:
                    raise self.pending
                return chunk[: event.start - at]
            self.events += 1
            self.last_event_id = event.id
        return chunk

    def raise_pending(self) -> None:
        """Raise the interruption ``passing`` found, if any.

        Raises:
            StreamInterrupted: It did.
        """
        if self.pending is not None:
            raise self.pending

    def ended(self) -> None:
        """The stream ended: a last event without its blank line is an event too.

        Raises:
            StreamInterrupted: That last event is an error.
        """
        if self._done:
            self.raise_pending()
            return
        self._done = True
        for event in self._parser.close():
            if self._stops(event):
                self.raise_pending()
            self.events += 1
            self.last_event_id = event.id

    def broke(self, error: Exception) -> Exception:
        """What to raise for ``error``, raised while reading the stream: a
        ``StreamInterrupted`` (chained from it) for a network failure, else
        ``error`` itself."""
        if self.pending is not None:
            return self.pending
        if self._done or transport_kind(error) is None:
            return error
        self._done = True
        action = self._decide(error)
        self.pending = StreamInterrupted(action, self.events, self.last_event_id)
        self.pending.__cause__ = error
        return self.pending

    def _stops(self, event: Event) -> bool:
        """Whether ``event`` ends the stream for the caller (``pending`` set)."""
        if event.name != "error" and event.data.find(b'"error"') < 0:
            return False  # the common case, decided without parsing
        if event_error(event.name, event.data, True) is None:
            return False
        settled = self.settled
        if self.events == 0 and settled is not None and settled.kind is not ActionKind.SUCCEED:
            action = settled  # the first event, which the driver already decided on
        else:
            action = self._decide(
                Response(self._status, self._headers, event.encode(), self._method)
            )
        if action.kind is ActionKind.SUCCEED:
            return False  # the policy calls this error a success: one more event
        self._done = True
        self.pending = StreamInterrupted(action, self.events, self.last_event_id)
        return True


class Unwatched:
    """The stand-in for a ``Watch`` where an adapter hands over a body that is
    no stream, past what it read to decide on it (``BodyRead``): every piece
    passes as it is, and what reading raises is raised."""

    __slots__ = ("settled",)

    pending: StreamInterrupted | None = None

    def __init__(self) -> None:
        self.settled: Action | None = None

    def passing(self, chunk: bytes) -> bytes:
        return chunk

    def raise_pending(self) -> None:
        pass

    def ended(self) -> None:
        pass

    def broke(self, error: Exception) -> Exception:
        return error


def replay_watch(action: Action, answer: Response) -> Watch | None:
    """The watch for a stream the governor replays instead of sending (a
    sticky failure first seen in a stream's first event), or None when
    ``answer`` is no such stream: its error event raises ``StreamInterrupted``
    with the governor's ``action``, as the original did."""
    if not watched(answer.status, answer.header("content-type"), answer.header("content-encoding")):
        return None
    headers = [(name, value) for name, values in answer.headers.items() for value in values]
    watch = Watch(lambda subject: action, answer.status, headers, answer.method)
    watch.settled = action
    return watch
