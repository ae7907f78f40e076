"""Sticky failures: a key that saw an exhausted quota or a bad key keeps
failing at once, with the same action, instead of each caller asking again.

Held until the reset the server named (a ``Retry-After``, a rate-limit reset
header) or, when it named none, for the policy's ``cooldown``.
"""

from __future__ import annotations

import attrs

from .._model import Sticky
from ._remembered import Remembered

__all__ = ["StickyState", "current", "hold_for", "remember"]


@attrs.define(slots=True)
class StickyState:
    until: float = 0.0
    failure: Remembered | None = None


def hold_for(classification: str, server_wait: float | None, settings: Sticky) -> float | None:
    """How long a failure of ``classification`` is sticky (None: it is not)."""
    if not settings.enabled or classification not in settings.classifications:
        return None
    return server_wait if server_wait is not None and server_wait > 0.0 else settings.cooldown


def remember(s: StickyState, now: float, hold: float, failure: Remembered) -> None:
    """Hold ``failure`` for the key for ``hold`` seconds."""
    s.until, s.failure = now + hold, failure


def current(s: StickyState, now: float) -> Remembered | None:
    """The sticky failure in force, or None (forgotten once it ran out)."""
    if s.failure is None:
        return None
    if now < s.until:
        return s.failure
    s.until, s.failure = 0.0, None
    return None
