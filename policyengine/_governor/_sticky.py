"""Sticky failures: a key that saw an exhausted quota or a bad key keeps
failing at once, with the same action, instead of each caller asking again.

Held until the reset the server named (a ``Retry-After``, a rate-limit reset
header, a field or the message of the error: ``Action.facts.server_wait``), at
most ``MAX_STICKY_SECONDS``, or, when it named none, for the policy's
``cooldown``.
"""

from __future__ import annotations

import attrs

from .._model import Sticky
from ._remembered import Remembered

__all__ = ["MAX_STICKY_SECONDS", "StickyState", "current", "hold_for", "remember", "sticks"]

#: The longest a failure is held on the server's word (a day): a quota said to
#: reset next month is asked again once a day, not never (nor after a hostile
#: ``Retry-After`` of ten years).
MAX_STICKY_SECONDS = 86400.0


@attrs.define(slots=True)
class StickyState:
    until: float = 0.0
    failure: Remembered | None = None


def sticks(classification: str, settings: Sticky) -> bool:
    """Whether a failure of ``classification`` is held."""
    return settings.enabled and classification in settings.classifications


def hold_for(classification: str, server_wait: float | None, settings: Sticky) -> float | None:
    """How long a failure of ``classification`` is sticky (None: it is not)."""
    if not sticks(classification, settings):
        return None
    if server_wait is not None and server_wait > 0.0:
        return min(server_wait, MAX_STICKY_SECONDS)
    return settings.cooldown


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
