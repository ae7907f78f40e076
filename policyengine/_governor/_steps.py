"""The governor's two steps on one key's state: admit a send, settle its answer.

Pure functions of a ``KeyState``, the time and the settings, returning plain
records: the in-process store runs them under its lock; the Redis store runs
the same steps, written again in Lua (``_redis.lua``), atomically on the
server. Both are held to the same answers by a test that drives them side by
side.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple

import attrs

from .._model import Governor as Settings
from . import _breaker, _budget, _limiter, _sticky
from ._breaker import BreakerState, GateKind, Transition
from ._budget import BudgetState
from ._limiter import LimiterState
from ._ratelimit import Reading
from ._remembered import Remembered
from ._sticky import StickyState

__all__ = ["AdmitStep", "KeyState", "SettleReport", "SettleStep", "Verdict", "admit", "settle"]


@attrs.define(slots=True)
class KeyState:
    """Everything the governor knows of one key."""

    limiter: LimiterState = attrs.Factory(LimiterState)
    breaker: BreakerState = attrs.Factory(BreakerState)
    budget: BudgetState = attrs.Factory(BudgetState)
    sticky: StickyState = attrs.Factory(StickyState)
    opened_by: Remembered | None = None
    """The failure that opened the circuit (what refused calls are told)."""


class Verdict(enum.Enum):
    GO = "go"
    """Send after ``wait`` (a slot reserved)."""
    HOLD = "hold"
    """Ask again after ``wait`` (or when the probe answers, if ``for_probe``)."""
    STICKY = "sticky"
    """Refused: the key's sticky failure."""
    CIRCUIT = "circuit"
    """Refused: the circuit's next probe is past the call's deadline."""
    SLOT = "slot"
    """Refused: the next send slot is past the call's deadline."""


class AdmitStep(NamedTuple):
    verdict: Verdict
    wait: float = 0.0
    seq: int = -1
    """``GO``: the limiter's number for the send (-1 without a limiter)."""
    probe: bool = False
    """``GO``: this call is the probe; the others wait for its answer."""
    for_probe: bool = False
    """``HOLD``: a probe is out; its answer may come before ``wait``."""
    why: str = ""
    """``HOLD``: ``circuit`` (open), ``probe`` (half-open), ``first`` (a new
    key's first answer) or ``spent`` (the rate limit, until its reset)."""
    failure: Remembered | None = None
    """``STICKY``: the failure; ``CIRCUIT``: the one that opened it."""
    failures: int = 0
    """``CIRCUIT``: transient failures in a row."""
    left: float = 0.0
    """``SLOT``: what the limiter has left."""


def admit(
    st: KeyState, now: float, s: Settings, retry: bool, deadline_in: float, jitter: float
) -> AdmitStep:
    """Whether and when a call may send (the state changed accordingly).

    Args:
        st: The key's state.
        now: The current time.
        s: The ``[governor]`` settings.
        retry: Not the call's first attempt.
        deadline_in: Seconds until the call gives up (``inf``: never).
        jitter: A number in [0, 1), to spread callers released together.
    """
    held = _sticky.current(st.sticky, now)
    if held is not None:
        return AdmitStep(Verdict.STICKY, failure=held, wait=st.sticky.until - now)
    gate = _breaker.admit(st.breaker, now, s.breaker, s.first_contact)
    if gate.kind is GateKind.WAIT:
        wait = gate.until - now
        opened = st.breaker.open_until > 0.0
        if gate.for_probe:
            if deadline_in <= 0.0:
                return AdmitStep(
                    Verdict.CIRCUIT, failure=st.opened_by, failures=st.breaker.failures
                )
            why = "probe" if opened else "first"
            return AdmitStep(Verdict.HOLD, min(wait, deadline_in), for_probe=True, why=why)
        if wait > deadline_in:
            return AdmitStep(
                Verdict.CIRCUIT, wait, failure=st.opened_by, failures=st.breaker.failures
            )
        return AdmitStep(Verdict.HOLD, wait, why="circuit")
    probe = gate.kind is GateKind.PROBE
    if not retry:
        _budget.deposit(st.budget, s.retry_budget)
    if not s.limiter.enabled:
        return AdmitStep(Verdict.GO, 0.0, -1, probe)
    slot = _limiter.reserve(st.limiter, now, jitter)
    if slot.at - now > deadline_in or slot.seq == _limiter.NOT_RESERVED:
        if slot.seq != _limiter.NOT_RESERVED:
            _limiter.release(st.limiter)
        if probe:  # let a held caller probe instead
            st.breaker.probe_at = _breaker.NO_PROBE
        if slot.at - now > deadline_in:
            return AdmitStep(Verdict.SLOT, slot.at - now, left=st.limiter.remaining + 1.0)
        return AdmitStep(Verdict.HOLD, slot.at - now, why="spent")
    return AdmitStep(Verdict.GO, slot.at - now, slot.seq, probe)


class SettleReport(NamedTuple):
    """What came of an admitted send, as the steps need it."""

    seq: int | None
    """The limiter's number for the send; None: not admitted here (the latest)."""
    probe: bool
    failed: bool
    """A transient failure (the breaker counts it)."""
    rejected: bool
    """A 429: the rate limit said no."""
    server_wait: float | None
    reading: Reading | None
    sticky_for: float | None
    """Hold this failure that long for the other callers; None: not sticky."""
    retrying: bool
    """The engine retries this transient failure: it spends the budget."""
    failure: Callable[[], Remembered]
    """The failure, remembered (asked for only when it is kept)."""
    later: Callable[[SettleStep], object] | None = None
    """For a store that settles after returning (not waiting for its answer):
    called with the step once it is known, from another thread."""


class SettleStep(NamedTuple):
    transition: Transition | None
    over_budget: bool
    open_for: float


def settle(st: KeyState, now: float, s: Settings, r: SettleReport) -> SettleStep:
    """Learn from an answer (the state changed accordingly)."""
    if s.limiter.enabled and (r.seq is None or r.seq >= 0):
        seq = r.seq if r.seq is not None else st.limiter.sent - 1
        _limiter.observe(st.limiter, now, seq, r.reading, r.rejected, r.server_wait)
    transition = _breaker.observe(st.breaker, now, r.failed, r.probe, s.breaker)
    if transition is Transition.OPENED or transition is Transition.REOPENED:
        st.opened_by = r.failure()
    if r.sticky_for is not None:
        _sticky.remember(st.sticky, now, r.sticky_for, r.failure())
    over_budget = False
    if r.retrying and not st.breaker.open_until:
        over_budget = not _budget.withdraw(st.budget, s.retry_budget)
    return SettleStep(transition, over_budget, st.breaker.open_for)


def cancel(st: KeyState, probe: bool) -> None:
    """An admitted call sent nothing the engine could judge: free its probe."""
    if probe:
        st.breaker.probe_at = _breaker.NO_PROBE
