"""Where the governor keeps each key's state, and the one seam for another place.

``Store`` is what the governor asks: admit a send, settle its answer, cancel
a probe, each one step on one key, atomic. ``MemoryStore`` keeps the states
in this process in a dict used as an LRU list: at most ``MAX_KEYS`` keys, and
a key untouched for ``IDLE_TTL`` seconds is forgotten (nothing grows without
bound however many hosts, keys and models pass through). One lock guards it;
every step under it is a few arithmetic operations, and nothing waits while
holding it. A held caller is woken by a ``Signal`` when the probe it waits
for answers. ``policyengine._governor._redis.RedisStore`` shares the states
between processes.
"""

from __future__ import annotations

import threading
from typing import Protocol

from .._model import Governor as Settings
from . import _steps
from ._breaker import NO_PROBE
from ._keys import TrafficKey
from ._signals import Signal
from ._steps import AdmitStep, KeyState, SettleReport, SettleStep, Verdict

__all__ = ["IDLE_TTL", "MAX_KEYS", "MemoryStore", "Store"]

#: Keys kept at most; the least recently used goes first.
MAX_KEYS = 10_000
#: A key untouched this long (seconds) is forgotten.
IDLE_TTL = 3600.0


class Store(Protocol):
    """Key states, and the governor's steps on them, each atomic."""

    def admit(
        self,
        key: TrafficKey,
        now: float,
        settings: Settings,
        retry: bool,
        deadline_in: float,
        jitter: float,
    ) -> tuple[AdmitStep, Signal | None]:
        """The admission step; with the signal a held caller may wait on (or None)."""

    async def aadmit(
        self,
        key: TrafficKey,
        now: float,
        settings: Settings,
        retry: bool,
        deadline_in: float,
        jitter: float,
    ) -> tuple[AdmitStep, Signal | None]:
        """``admit``, without blocking the event loop."""

    def settle(
        self, key: TrafficKey, now: float, settings: Settings, report: SettleReport
    ) -> SettleStep:
        """The settlement step."""

    def cancel(self, key: TrafficKey, now: float, probe: bool) -> None:
        """Free a probe that sent nothing the engine could judge."""

    def __len__(self) -> int:
        """Keys known (in this process)."""


class _Entry:
    __slots__ = ("signal", "state", "touched")

    def __init__(self) -> None:
        self.state = KeyState()
        self.signal: Signal | None = None
        self.touched = 0.0


class MemoryStore:
    """Key states in this process."""

    def __init__(self, max_keys: int = MAX_KEYS, idle_ttl: float = IDLE_TTL) -> None:
        self._entries: dict[TrafficKey, _Entry] = {}
        self._lock = threading.Lock()
        self._max_keys = max(1, max_keys)
        self._idle_ttl = idle_ttl

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[TrafficKey]:
        """The keys known, least recently used first."""
        with self._lock:
            return list(self._entries)

    def _entry(self, key: TrafficKey, now: float) -> _Entry:
        """The key's entry, made if new, moved to the most recently used end
        (call with the lock held)."""
        entries = self._entries
        found = entries.pop(key, None)
        if found is None or now - found.touched > self._idle_ttl:
            found = _Entry()
            while len(entries) >= self._max_keys:
                del entries[next(iter(entries))]
        found.touched = now
        entries[key] = found
        return found

    def admit(
        self,
        key: TrafficKey,
        now: float,
        settings: Settings,
        retry: bool,
        deadline_in: float,
        jitter: float,
    ) -> tuple[AdmitStep, Signal | None]:
        with self._lock:
            entry = self._entry(key, now)
            step = _steps.admit(entry.state, now, settings, retry, deadline_in, jitter)
            released = None
            if step.verdict is Verdict.GO and step.probe:
                if entry.signal is None or entry.signal.fired:
                    entry.signal = Signal()
            elif step.for_probe:
                if entry.signal is None:
                    entry.signal = Signal()
            elif entry.state.breaker.probe_at == NO_PROBE and entry.signal is not None:
                released, entry.signal = entry.signal, None  # no probe out: wake the held
            signal = entry.signal if step.for_probe else None
        if released is not None:
            released.fire()
        return step, signal

    async def aadmit(
        self,
        key: TrafficKey,
        now: float,
        settings: Settings,
        retry: bool,
        deadline_in: float,
        jitter: float,
    ) -> tuple[AdmitStep, Signal | None]:
        return self.admit(key, now, settings, retry, deadline_in, jitter)

    def settle(
        self, key: TrafficKey, now: float, settings: Settings, report: SettleReport
    ) -> SettleStep:
        with self._lock:
            entry = self._entry(key, now)
            step = _steps.settle(entry.state, now, settings, report)
            signal = None
            if report.probe:
                signal, entry.signal = entry.signal, None
        if signal is not None:
            signal.fire()
        return step

    def cancel(self, key: TrafficKey, now: float, probe: bool) -> None:
        if not probe:
            return
        with self._lock:
            entry = self._entry(key, now)
            _steps.cancel(entry.state, probe)
            signal, entry.signal = entry.signal, None
        if signal is not None:
            signal.fire()
