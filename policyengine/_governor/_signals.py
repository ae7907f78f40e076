"""Signals: a one-shot event that threads and asyncio tasks can both wait on.

A probe's answer (the first answer for a new key, a half-open circuit's
probe) wakes every caller held for it, whichever thread or event loop it
waits in, without polling. No lock is held across an ``await``: an async
waiter parks a future on its own loop, which ``fire`` resolves with
``call_soon_threadsafe``. asyncio is imported by the first async waiter:
a program of threads never loads it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["Signal"]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Signal:
    """Fired once; ``wait`` / ``wait_async`` return True once it has fired."""

    __slots__ = ("_cond", "_fired", "_futures")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._fired = False
        self._futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def fired(self) -> bool:
        return self._fired

    def fire(self) -> None:
        """Wake every waiter, now and later."""
        with self._cond:
            if self._fired:
                return
            self._fired = True
            self._cond.notify_all()
            futures, self._futures = self._futures, []
        for loop, future in futures:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    def wait(self, timeout: float) -> bool:
        """Block this thread until fired or ``timeout`` seconds pass."""
        with self._cond:
            return self._cond.wait_for(lambda: self._fired, max(0.0, timeout))

    async def wait_async(self, timeout: float) -> bool:
        """Wait in this task until fired or ``timeout`` seconds pass."""
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._fired:
                return True
            self._futures.append((loop, future))
        try:
            await asyncio.wait_for(future, max(0.0, timeout))
        except asyncio.TimeoutError:
            return self._fired
        finally:
            with self._cond, contextlib.suppress(ValueError):
                self._futures.remove((loop, future))
        return True
