"""What a call gives back: its attempts, a decision per attempt, and how it ended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import attrs

from ._errors import GaveUp, add_note, give_up_note
from ._model import Action, ActionKind

__all__ = ["Attempt", "Decision", "Hook", "Outcome"]

T = TypeVar("T")


@attrs.frozen
class Attempt:
    """One attempt, as the function being retried sees it.

    Attributes:
        number: 1 for the first attempt, 2 for the first retry...
        model: The model to use: the one the call started with, or the
            fallback the policy switched to.
        elapsed: Seconds since the first attempt started (waits included).
        model_attempt: Attempts made on ``model`` so far, this one included
            (1 for the first attempt after a fallback).
    """

    number: int
    model: str | None
    elapsed: float
    model_attempt: int = 1


@attrs.frozen
class Decision:
    """What came of one attempt, and what the driver did about it.

    Attributes:
        attempt: The attempt.
        action: The engine's action (tightened by any override).
        result: What the attempt gave: a response, or the exception raised.
        wait: Seconds waited after it before the next attempt (0 if none).
    """

    attempt: Attempt
    action: Action
    result: object = attrs.field(repr=False)
    wait: float = 0.0

    @property
    def exception(self) -> BaseException | None:
        """The exception the attempt raised, or None if it gave a response."""
        return self.result if isinstance(self.result, BaseException) else None


@attrs.frozen
class Outcome(Generic[T]):
    """How a call ended.

    Attributes:
        action: The last action: ``succeed``, or ``fail`` with the remediation.
        value: The last response, or None if the last attempt raised.
        error: The exception the last attempt raised, or None.
        history: One ``Decision`` per attempt, in order.
    """

    action: Action
    value: T | None
    error: Exception | None
    history: tuple[Decision, ...]

    @property
    def ok(self) -> bool:
        """True when the policy called the last response a success."""
        return self.action.kind is ActionKind.SUCCEED

    @property
    def attempts(self) -> int:
        """How many attempts were made."""
        return len(self.history)

    @property
    def model(self) -> str | None:
        """The model the last attempt used."""
        return self.history[-1].attempt.model if self.history else None

    @property
    def waits(self) -> tuple[float, ...]:
        """The waits between attempts, in seconds."""
        return tuple(d.wait for d in self.history[:-1])

    def unwrap(self) -> T:
        """The successful response.

        Returns:
            ``value`` when the policy called it a success.

        Raises:
            GaveUp: The policy gave up; chained from the last exception.
            Exception: The last exception itself, when it was no network
                failure (a bug in the function being retried is not the
                policy's business).
        """
        if self.ok:
            return self.value  # type: ignore[return-value]
        error = self.error
        if error is not None and self.action.status is None and self.action.transport is None:
            raise error
        raise GaveUp(self.action, error if error is not None else self.value, self.history) from (
            error
        )

    def as_client(self) -> T:
        """What a client adapter hands back: the last response (a success, or
        the error response the policy gave up on), or the last exception
        raised again with a note saying why the policy gave up.

        Raises:
            Exception: The last attempt's own exception, noted.
        """
        if self.error is not None:
            add_note(self.error, give_up_note(self.action, self.attempts))
            raise self.error
        assert self.value is not None
        return self.value


Hook = Callable[[Decision], None]
"""A function called with every ``Decision`` (for metrics); what it raises is
logged and otherwise ignored."""
