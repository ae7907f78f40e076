"""Exceptions raised by policyengine, and the words they say.

The tree::

    Exception
    ├── ValueError
    │   └── PolicyError      a policy file (or layer) is unusable; nothing was applied
    │                        .problems: every Problem found, in file order
    ├── GaveUp               the policy gave up on a call (Driver.call / acall, Outcome.unwrap)
    │                        .action: the final Action (why, remediation)
    │                        .last: the last response, or the last exception (also __cause__)
    │                        .history: one Decision per attempt
    └── StreamInterrupted    a streamed answer broke off after it was handed over: an error
                             event, or a dropped connection (then chained from the client's
                             exception); raised by the stream's iterator (sync and async)
                             .action: the policy's Action on it (retry / fallback: a restart may do)
                             .events: how many events came before it, all handed out
                             .last_event_id: the id of the last of them, or None

``Engine.evaluate()`` never raises: a response or a network failure it cannot
make sense of becomes an ``Action`` whose explanation says so. The client
adapters raise what the client itself raises (``httpx.ReadTimeout``...), with
a note saying why the policy gave up (``add_note``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ._model import Action, ActionKind, StaticDetails
from ._redact import redact
from ._text import plural

if TYPE_CHECKING:
    from ._results import Decision

__all__ = [
    "GaveUp",
    "PolicyError",
    "Problem",
    "StreamInterrupted",
    "add_note",
    "give_up_message",
    "give_up_note",
]


@attrs.frozen
class Problem:
    """One thing wrong with a policy file.

    Attributes:
        file: The file (or ``<default>``, ``<dict>``) the bad value came from.
        path: Where in that file: a key path such as ``$.rules[2].backoff.max_delay``,
            or ``line 3, column 7`` for a syntax error; empty for the whole file.
        message: What is wrong, and where it helps, what to do instead.
    """

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        if self.path:
            return f"{self.file}: {self.path}: {self.message}"
        return f"{self.file}: {self.message}"


class PolicyError(ValueError):
    """A policy could not be loaded; the policy in use is unchanged.

    ``str(error)`` lists every problem, one per line, as
    ``file: key path: what is wrong``.
    """

    problems: tuple[Problem, ...]

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type[PolicyError], tuple[tuple[Problem, ...]]]:
        return (type(self), (self.problems,))


class GaveUp(Exception):
    """The policy gave up on a call.

    ``str(error)`` says what happened and what to do, with secrets masked.

    Attributes:
        action: The final action; ``action.remediation`` says what to do,
            ``action.explanation`` why.
        last: The last response, or the last exception (also ``__cause__``).
        history: One ``Decision`` per attempt.
    """

    action: Action
    last: object
    history: tuple[Decision, ...]

    def __init__(self, action: Action, last: object, history: tuple[Decision, ...]) -> None:
        self.action = action
        self.last = last
        self.history = history
        super().__init__(give_up_message(action, len(history)))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its action's texts only: the last response, the history
        # and the engine's lazy details may hold what cannot be pickled.
        action = self.action
        static = StaticDetails(action.error, action.remediation, action.reasons)
        return (type(self), (attrs.evolve(action, details=static), None, ()))

    @property
    def response(self) -> object:
        """The last response, or None if the last attempt raised."""
        return None if isinstance(self.last, BaseException) else self.last


class StreamInterrupted(Exception):
    """A streamed answer broke off after the adapter had handed it over, so it
    could not be retried unseen: an error event came, or the connection
    dropped (the exception is then chained ``from`` the client's own).

    ``str(error)`` says how many events came first, what the policy makes of
    it and what to do, with secrets masked. To start over when the policy
    says a retry may succeed, see ``policyengine.restarting``.

    Attributes:
        action: The policy's action on the error event or the network
            failure: ``classification``, ``remediation``, ``explanation``;
            ``kind`` retry or fallback when a new request may succeed.
        events: How many complete events came before it; the caller was
            handed all of them, and nothing of the error event.
        last_event_id: The ``id`` of the last of those events (for a
            ``Last-Event-ID`` resume), or None.
    """

    action: Action
    events: int
    last_event_id: str | None

    def __init__(self, action: Action, events: int, last_event_id: str | None = None) -> None:
        self.action = action
        self.events = events
        self.last_event_id = last_event_id
        super().__init__(interrupted_message(action, events))

    def __reduce__(self) -> tuple[Any, ...]:
        action = self.action
        static = StaticDetails(action.error, action.remediation, action.reasons)
        return (type(self), (attrs.evolve(action, details=static), self.events, self.last_event_id))


def interrupted_message(action: Action, events: int) -> str:
    """What ``StreamInterrupted`` says."""
    if action.kind is ActionKind.FALLBACK and action.fallback:
        would = f"fall back to {action.fallback!r}"
    else:
        would = "retry" if action.should_retry else "not retry"
    text = (
        f"stream interrupted after {plural(events, 'event')}: {action.classification} "
        f"({what_came_back(action)}, rule {action.rule_id or '(none)'!r}); "
        f"the policy would {would}"
    )
    if action.remediation:
        text += f". {action.remediation}"
    return redact(text)


def what_came_back(action: Action) -> str:
    """``status 429, code rate_limit_exceeded``, ``read_timeout`` or ``no response``."""
    if action.status is not None:
        what = f"status {action.status}"
        if action.error is not None and action.error.code:
            what += f", code {action.error.code}"
        return what
    if action.transport is not None:
        return action.transport
    return "no response"


def give_up_message(action: Action, attempts: int) -> str:
    """What a give-up says, everywhere it is said (``GaveUp``, the log, notes)."""
    text = (
        f"gave up after {plural(attempts, 'attempt')}: "
        f"{action.classification} ({what_came_back(action)}, rule {action.rule_id or '(none)'!r})"
    )
    if action.remediation:
        text += f". {action.remediation}"
    return redact(text)


def give_up_note(action: Action, attempts: int) -> str:
    """The note adapters attach to the client's exception they re-raise on a give-up."""
    return f"policyengine: {give_up_message(action, attempts)}"


def add_note(exc: BaseException, text: str) -> None:
    """Attach ``text`` to ``exc`` as a note (shown in tracebacks on 3.11+)."""
    with contextlib.suppress(Exception):
        notes = getattr(exc, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
            setattr(exc, "__notes__", notes)  # noqa: B010 - 3.10 has no add_note
        notes.append(text)
