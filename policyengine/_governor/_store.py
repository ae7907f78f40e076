"""Where the governor keeps each key's state: in this process, bounded.

``MemoryStore`` holds a ``KeyState`` per key in a dict used as an LRU list:
at most ``MAX_KEYS`` keys, and a key untouched for ``IDLE_TTL`` seconds is
forgotten (nothing grows without bound however many hosts, keys and models
pass through). One lock guards it; every step under it is a few arithmetic
operations, and nothing waits while holding it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from .._model import Action
from ._breaker import BreakerState
from ._budget import BudgetState
from ._keys import TrafficKey
from ._limiter import LimiterState
from ._signals import Signal
from ._sticky import StickyState

__all__ = ["IDLE_TTL", "MAX_KEYS", "KeyState", "MemoryStore"]

#: Keys kept at most; the least recently used goes first.
MAX_KEYS = 10_000
#: A key untouched this long (seconds) is forgotten.
IDLE_TTL = 3600.0


@attrs.define(slots=True)
class KeyState:
    """Everything the governor knows of one key."""

    limiter: LimiterState = attrs.Factory(LimiterState)
    breaker: BreakerState = attrs.Factory(BreakerState)
    budget: BudgetState = attrs.Factory(BudgetState)
    sticky: StickyState = attrs.Factory(StickyState)
    signal: Signal | None = None
    """Fired when the probe now out answers."""
    opened_by: Action | None = None
    """The failure that opened the circuit (what held calls are told)."""
    touched: float = 0.0


class MemoryStore:
    """Key states in this process."""

    def __init__(self, max_keys: int = MAX_KEYS, idle_ttl: float = IDLE_TTL) -> None:
        self._states: dict[TrafficKey, KeyState] = {}
        self._lock = threading.Lock()
        self._max_keys = max(1, max_keys)
        self._idle_ttl = idle_ttl

    def __len__(self) -> int:
        return len(self._states)

    @contextmanager
    def state(self, key: TrafficKey, now: float) -> Iterator[KeyState]:
        """The key's state, locked for the ``with`` block (made if new)."""
        with self._lock:
            states = self._states
            found = states.pop(key, None)
            if found is None or now - found.touched > self._idle_ttl:
                found = KeyState()
                while len(states) >= self._max_keys:
                    del states[next(iter(states))]
            found.touched = now
            states[key] = found  # most recently used last
            yield found

    def peek(self, key: TrafficKey, read: Callable[[KeyState], Any]) -> Any:
        """``read(state)`` under the lock, or None when the key is unknown."""
        with self._lock:
            found = self._states.get(key)
            return None if found is None else read(found)
