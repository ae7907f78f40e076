"""Starting a broken-off stream over, when the policy says a new request may
succeed and the caller accepts (``restarting`` / ``arestarting``).

A stream that broke off after part of it was handed out cannot be retried
unseen: the caller has shown or used that part. These helpers make the
restart explicit: the caller's ``accept`` is asked first (and resets what it
showed), the policy's wait is waited (recorded, not slept, in testing mode),
a fallback switches the model, and the restarted stream's items follow.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TypeVar

from ._errors import StreamInterrupted
from ._model import ActionKind
from ._results import Attempt
from ._testing import current_testing

__all__ = ["DEFAULT_MAX_RESTARTS", "arestarting", "restarting"]

T = TypeVar("T")

#: ``restarting`` starts a stream over at most this many times (the policy's
#: ``max_attempts`` counts the attempts of one request, not restarts).
DEFAULT_MAX_RESTARTS = 2


class _Restarts:
    """The state of one restarting iteration: its attempts, model and clock."""

    def __init__(self, model: str | None, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"max_restarts must be >= 0, got {limit}")
        self.number = 1
        self.model = model
        self.limit = limit
        self.testing = current_testing()
        self.started = time.monotonic()
        self.waited = 0.0

    def attempt(self) -> Attempt:
        if self.testing is not None:
            return Attempt(self.number, self.model, self.waited)
        return Attempt(self.number, self.model, time.monotonic() - self.started)

    def again(self, stop: StreamInterrupted, accept: Callable[[StreamInterrupted], bool]) -> float:
        """The seconds to sleep before starting over.

        Raises:
            StreamInterrupted: ``stop``, when not to start over.
        """
        action = stop.action
        if not action.should_retry or self.number > self.limit or not accept(stop):
            raise stop
        self.number += 1
        if action.kind is ActionKind.FALLBACK and action.fallback:
            self.model = action.fallback
        self.waited += action.delay
        if self.testing is not None:
            self.testing.record(action.delay)
            return 0.0
        return action.delay


def restarting(
    start: Callable[[Attempt], Iterable[T]],
    *,
    accept: Callable[[StreamInterrupted], bool],
    model: str | None = None,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
) -> Iterator[T]:
    """Iterate a stream, starting it over when it breaks off with a
    ``StreamInterrupted`` whose action is retry or fallback and ``accept``
    agrees.

        def start(attempt):
            return llm.chat.completions.create(model=attempt.model, stream=True, ...)

        for chunk in pe.restarting(start, model="gpt-4o", accept=lambda stop: ui.clear() or True):
            ui.show(chunk)

    Args:
        start: Opens the stream for an attempt (its ``number``, and the
            ``model``: the fallback after a fallback) and returns an iterable
            (the SDK's stream, a generator over ``response.iter_lines()``...).
        accept: Called with each interruption the policy would retry or fall
            back on, before starting over: True to start over (forget what
            was shown of the broken answer first), False to let it raise.
        model: The model of the first attempt.
        max_restarts: How many times at most to start over
            (``DEFAULT_MAX_RESTARTS``; 0: never).

    Yields:
        What the streams yield: the broken one's items, then the restarted one's.

    Raises:
        StreamInterrupted: The policy would not retry, ``accept`` said no, or
            the restarts are used up.
        ValueError: ``max_restarts`` is negative.
    """
    restarts = _Restarts(model, max_restarts)
    while True:
        try:
            yield from start(restarts.attempt())
            return
        except StreamInterrupted as stop:
            pause = restarts.again(stop, accept)
        if pause > 0:
            time.sleep(pause)


async def arestarting(
    start: Callable[[Attempt], AsyncIterable[T] | Awaitable[AsyncIterable[T]]],
    *,
    accept: Callable[[StreamInterrupted], bool],
    model: str | None = None,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
) -> AsyncIterator[T]:
    """The async ``restarting``: ``start`` returns an async iterable, or an
    awaitable of one (``await llm.chat.completions.create(..., stream=True)``
    of ``AsyncOpenAI``); waits use ``asyncio.sleep``.

    Yields:
        What the streams yield.

    Raises:
        StreamInterrupted: The policy would not retry, ``accept`` said no, or
            the restarts are used up.
        ValueError: ``max_restarts`` is negative.
    """
    restarts = _Restarts(model, max_restarts)
    while True:
        try:
            opened = start(restarts.attempt())
            stream = await opened if inspect.isawaitable(opened) else opened
            async for item in stream:
                yield item
            return
        except StreamInterrupted as stop:
            pause = restarts.again(stop, accept)
        if pause > 0:
            await asyncio.sleep(pause)
