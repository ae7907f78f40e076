"""The breaker: one probe at a time when a key is unknown or failing.

States of a key's circuit::

    closed ──(failures in a row >= threshold)──> open ──(open_for passed)──> half-open
       ^                                          ^                             │
       └────────────(the probe succeeds)──────────┼──────(the probe fails:      │
                                                  │       open_for doubles)─────┘

While open, calls wait for the half-open probe (within their own deadline)
instead of each hitting the failing upstream; while half-open, one call is
the probe and the rest wait for its answer. A key no answer was seen for yet
is treated the same way for a moment (``first_contact``): one request goes,
the others wait for its answer briefly, so that twenty callers do not all
learn of an exhausted quota or an outage at once.

Pure functions of a ``BreakerState`` and the time passed in.
"""

from __future__ import annotations

import enum
import math
from typing import NamedTuple

import attrs

from .._model import Breaker

__all__ = [
    "NO_PROBE",
    "PROBE_LEASE",
    "BreakerState",
    "Gate",
    "GateKind",
    "Transition",
    "admit",
    "observe",
]

#: ``BreakerState.probe_at`` when no probe is out.
NO_PROBE = -math.inf
#: A probe that has not answered after this long no longer holds the others
#: back (seconds): another caller may probe.
PROBE_LEASE = 30.0


class GateKind(enum.Enum):
    GO = "go"
    """Send."""
    PROBE = "probe"
    """Send: this call is the probe; others wait for its answer."""
    WAIT = "wait"
    """Wait until ``until`` (or the probe's answer), then ask again."""


class Gate(NamedTuple):
    kind: GateKind
    until: float = 0.0
    """For ``WAIT``: when to ask again at the latest."""
    for_probe: bool = False
    """For ``WAIT``: a probe is out; its answer may come sooner."""


class Transition(enum.Enum):
    """A change of a circuit's state, for the log and explanations."""

    OPENED = "opened"
    REOPENED = "reopened"
    CLOSED = "closed"


@attrs.define(slots=True)
class BreakerState:
    known: bool = False
    """An answer was seen for this key."""
    failures: int = 0
    """Transient failures in a row, across callers."""
    open_until: float = 0.0
    """Open until then (half-open after); 0 when closed."""
    open_for: float = 0.0
    """How long it stays open this time."""
    probe_at: float = -math.inf
    """When the probe now out went (``NO_PROBE``: none)."""
    closed_at: float = 0.0
    """When it last closed after being open."""


def admit(s: BreakerState, now: float, settings: Breaker, first_contact: float) -> Gate:
    """Whether a call may send now (``s`` changed when it becomes the probe)."""
    probing = now - s.probe_at < PROBE_LEASE
    if s.open_until > 0.0 and settings.enabled:
        if now < s.open_until:
            return Gate(GateKind.WAIT, s.open_until)
        if probing:
            return Gate(GateKind.WAIT, s.probe_at + PROBE_LEASE, for_probe=True)
        s.probe_at = now
        return Gate(GateKind.PROBE)
    if not s.known and first_contact > 0.0:
        if now - s.probe_at < first_contact:
            return Gate(GateKind.WAIT, s.probe_at + first_contact, for_probe=True)
        if s.probe_at == NO_PROBE:
            s.probe_at = now
            return Gate(GateKind.PROBE)
    return Gate(GateKind.GO)


def observe(
    s: BreakerState, now: float, failed: bool, probe: bool, settings: Breaker
) -> Transition | None:
    """Learn from an answer: ``failed`` when it was a transient failure,
    ``probe`` when it answered the call ``admit`` made the probe."""
    s.known = True
    if probe:
        s.probe_at = NO_PROBE
    if not failed:
        s.failures = 0
        if s.open_until > 0.0 and (probe or now >= s.open_until):
            s.open_until, s.open_for, s.closed_at = 0.0, 0.0, now
            return Transition.CLOSED
        return None
    s.failures += 1
    if not settings.enabled:
        return None
    if s.open_until > 0.0:
        if probe or now >= s.open_until:  # the half-open probe failed
            s.open_for = min(settings.max_open_for, max(settings.open_for, s.open_for * 2.0))
            s.open_until = now + s.open_for
            return Transition.REOPENED
        return None
    if s.failures >= settings.failures:
        s.open_for = settings.open_for
        s.open_until = now + s.open_for
        return Transition.OPENED
    return None
