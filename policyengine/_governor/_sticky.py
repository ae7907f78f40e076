"""Sticky failures: a key that saw an exhausted quota or a bad key keeps
failing at once, with the same action, instead of each caller asking again.

Held until the reset the server named (a ``Retry-After``, a rate-limit reset
header) or, when it named none, for the policy's ``cooldown``.
"""

from __future__ import annotations

import attrs

from .._model import Action, Response, Sticky

__all__ = ["StickyState", "current", "remember"]


@attrs.define(slots=True)
class StickyState:
    until: float = 0.0
    action: Action | None = None
    response: Response | None = None
    """The answer that made it sticky, replayed to callers (None: a network failure)."""


def remember(
    s: StickyState,
    now: float,
    action: Action,
    response: Response | None,
    server_wait: float | None,
    settings: Sticky,
) -> bool:
    """Hold ``action`` for the key when its classification is sticky."""
    if not settings.enabled or action.classification not in settings.classifications:
        return False
    hold = server_wait if server_wait is not None and server_wait > 0.0 else settings.cooldown
    s.until, s.action, s.response = now + hold, action, response
    return True


def current(s: StickyState, now: float) -> StickyState | None:
    """The sticky failure in force, or None (forgotten once it ran out)."""
    if s.action is None:
        return None
    if now < s.until:
        return s
    s.until, s.action, s.response = 0.0, None, None
    return None
