"""The governor: shared state that callers of one client consult before each
send and update after each answer.

Before a send, ``admit`` says whether and when: at once, after a wait for a
paced slot (the limiter), after the key's probe answers (the breaker, or a key
seen for the first time), or not at all (a sticky failure, an open circuit
whose probe is past the call's deadline, a slot past the deadline). After the
answer, ``settle`` teaches the limiter the server's budget, counts the
failure or success for the breaker, remembers a sticky failure, and spends
the retry budget on a retry (a spent budget turns the retry into a give-up).

The engine stays a pure function; only the driver and the adapters call the
governor. Thread- and asyncio-safe: every step runs under the store's lock,
without waiting; the waiting is the caller's (``Hold``/``Go`` say how long,
and a ``Signal`` wakes a held caller when the probe answers).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import NamedTuple

import attrs

from .._model import (
    Action,
    ActionKind,
    AmendedDetails,
    Policy,
    Response,
    StaticDetails,
)
from .._model import Governor as Settings
from .._overrides import give_up
from .._redact import redact
from .._text import seconds
from . import _breaker, _budget, _limiter, _sticky
from ._breaker import GateKind, Transition
from ._keys import TrafficKey, make_key
from ._ratelimit import read_ratelimit
from ._signals import Signal
from ._store import KeyState, MemoryStore

__all__ = ["Admission", "Deny", "Go", "Governor", "Hold", "Ticket"]

LOGGER = logging.getLogger("policyengine.governor")


@attrs.frozen
class Ticket:
    """A send the governor admitted; hand it back to ``settle`` or ``cancel``."""

    key: TrafficKey
    seq: int | None
    """The limiter's number for the send; -1 without a limiter; None when the
    send was not admitted here (its answer counts as the latest)."""
    probe: bool
    retry: bool


class Go(NamedTuple):
    """Send after ``wait`` seconds (a slot reserved for this call)."""

    wait: float
    ticket: Ticket
    note: str
    """What the wait was for, for the explanation ("" when there was none)."""


class Hold(NamedTuple):
    """Wait up to ``wait`` seconds (or until ``signal`` fires), then ask again."""

    wait: float
    signal: Signal | None
    note: str


class Deny(NamedTuple):
    """Do not send: fail with ``action``; ``response`` is what to hand back, if any."""

    action: Action
    response: Response | None


Admission = Go | Hold | Deny


def _server_wait(action: Action) -> float | None:
    source = action.delay_source
    return action.delay if source in ("server", "clamp") and action.delay > 0.0 else None


class Governor:
    """Coordinates the calls of every caller that shares it, per key.

    One is made for each driver (so for each adapter or SDK client) from its
    policy's ``[governor]`` table; pass the same object to several to share
    it. Immutable settings, mutable state (in ``store``), safe to share
    between threads and asyncio tasks.

    Args:
        settings: The ``[governor]`` settings, or a ``Policy`` to take them from.
        logger: Where circuit transitions and sticky failures are logged.
        store: Where key states live; default a bounded in-process store.
    """

    def __init__(
        self,
        settings: Settings | Policy | None = None,
        *,
        logger: logging.Logger | None = None,
        store: MemoryStore | None = None,
    ) -> None:
        if isinstance(settings, Policy):
            settings = settings.governor
        self.settings: Settings = settings if settings is not None else Settings(enabled=True)
        self.logger = logger if logger is not None else LOGGER
        self.store = store if store is not None else MemoryStore()

    def __repr__(self) -> str:
        return f"Governor(enabled={self.settings.enabled}, keys={len(self.store)})"

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def key(self, host: str = "", credential: str = "", model: str | None = None) -> TrafficKey:
        """The key of a request, as the policy's ``key`` parts say."""
        return make_key(self.settings.key, host, credential, model)

    # --- before a send -----------------------------------------------------------

    def admit(
        self,
        key: TrafficKey,
        now: float,
        *,
        retry: bool,
        deadline_at: float = math.inf,
        jitter: float = 0.0,
    ) -> Admission:
        """Whether and when a call may send to ``key``.

        Args:
            key: Where it goes.
            now: The current time (the driver's monotonic clock).
            retry: This is not the call's first attempt.
            deadline_at: The call gives up at this time; a wait past it is a denial.
            jitter: A number in [0, 1), to spread callers released together.

        Returns:
            ``Go``, ``Hold`` or ``Deny``.
        """
        s = self.settings
        with self.store.state(key, now) as st:
            held = _sticky.current(st.sticky, now)
            if held is not None and held.action is not None:
                return Deny(self._sticky_action(key, held, now), held.response)
            gate = _breaker.admit(st.breaker, now, s.breaker, s.first_contact)
            if gate.kind is GateKind.WAIT:
                return self._hold(key, st, now, gate, deadline_at)
            probe = gate.kind is GateKind.PROBE
            if probe and (st.signal is None or st.signal.fired):
                st.signal = Signal()
            if not retry:
                _budget.deposit(st.budget, s.retry_budget)
            if not s.limiter.enabled:
                return Go(0.0, Ticket(key, -1, probe, retry), "")
            slot = _limiter.reserve(st.limiter, now, jitter)
            if slot.at > deadline_at or slot.seq == _limiter.NOT_RESERVED:
                if slot.seq != _limiter.NOT_RESERVED:
                    _limiter.release(st.limiter)
                if probe and st.signal is not None:  # let a held caller probe instead
                    st.breaker.probe_at = _breaker.NO_PROBE
                    st.signal.fire()
                    st.signal = None
                if slot.at > deadline_at:
                    return Deny(self._slot_action(key, slot.at - now, st), None)
                note = f"governor: held {seconds(slot.at - now)}s: the rate limit of {key} is spent"
                return Hold(slot.at - now, None, note)
            note = ""
            if slot.at > now:
                note = f"governor: paced {seconds(slot.at - now)}s for a send slot of {key}"
            return Go(slot.at - now, Ticket(key, slot.seq, probe, retry), note)

    def _hold(
        self, key: TrafficKey, st: KeyState, now: float, gate: _breaker.Gate, deadline_at: float
    ) -> Admission:
        if gate.for_probe:
            if now >= deadline_at:
                return Deny(self._circuit_action(key, st, now, "its probe's answer"), None)
            if st.signal is None:
                st.signal = Signal()
            what = "the circuit's probe" if st.breaker.open_until else "the key's first answer"
            return Hold(min(gate.until, deadline_at) - now, st.signal, f"governor: held for {what}")
        if gate.until > deadline_at:
            when = f"its probe in {seconds(gate.until - now)}s"
            return Deny(self._circuit_action(key, st, now, when), None)
        note = f"governor: held {seconds(gate.until - now)}s while the circuit of {key} is open"
        return Hold(gate.until - now, None, note)

    # --- after the answer --------------------------------------------------------

    def settle(
        self,
        ticket: Ticket,
        now: float,
        response: Response | None,
        action: Action,
        wall_now: Callable[[], float] = time.time,
    ) -> Action:
        """Learn from the answer to an admitted send.

        Args:
            ticket: What ``admit`` gave.
            now: The current time (the driver's monotonic clock).
            response: The answer, or None for a network failure.
            action: The engine's action for it.
            wall_now: The Unix time, for absolute reset times in headers.

        Returns:
            The action, or a give-up when a retry is over the budget.
        """
        s = self.settings
        failed = action.classification in s.transient and action.kind is not ActionKind.SUCCEED
        rejected = response is not None and response.status == 429
        wait = _server_wait(action)
        reading = None
        if s.limiter.enabled and response is not None and response.headers:
            reading = read_ratelimit(response.headers, wall_now())
        over_budget = False
        with self.store.state(ticket.key, now) as st:
            if s.limiter.enabled and (ticket.seq is None or ticket.seq >= 0):
                seq = ticket.seq if ticket.seq is not None else st.limiter.sent - 1
                _limiter.observe(st.limiter, now, seq, reading, rejected, wait)
            transition = _breaker.observe(st.breaker, now, failed, ticket.probe, s.breaker)
            if transition is Transition.OPENED or transition is Transition.REOPENED:
                st.opened_by = action
            signal = st.signal if ticket.probe else None
            if signal is not None:
                st.signal = None
            became_sticky = _sticky.remember(st.sticky, now, action, response, wait, s.sticky)
            if action.should_retry and failed and not st.breaker.open_until:
                over_budget = not _budget.withdraw(st.budget, s.retry_budget)
            open_for = st.breaker.open_for
        if signal is not None:
            signal.fire()
        if transition is not None:
            self._log_transition(ticket.key, transition, action, open_for)
        if became_sticky:
            cooldown = seconds(wait if wait is not None else s.sticky.cooldown)
            self._log(
                logging.WARNING,
                f"governor: {ticket.key} failed with {action.classification}; "
                f"other calls for it fail at once for {cooldown}s",
                {"key": str(ticket.key), "transition": "sticky"},
            )
        if over_budget:
            budget = s.retry_budget
            why = (
                f"governor: the retry budget of {ticket.key} is spent (retries may add "
                f"{budget.ratio:g} of its first attempts after {budget.burst:g} saved up); "
                "failing at once"
            )
            note = "Retries are rationed: the upstream fails often for every caller."
            return give_up(action, why, note)
        return action

    def cancel(self, ticket: Ticket, now: float) -> None:
        """The admitted call sent nothing the engine could judge: free its probe."""
        if not ticket.probe:
            return
        with self.store.state(ticket.key, now) as st:
            st.breaker.probe_at = _breaker.NO_PROBE
            signal, st.signal = st.signal, None
        if signal is not None:
            signal.fire()

    # --- words ---------------------------------------------------------------------

    def _log_transition(
        self, key: TrafficKey, transition: Transition, action: Action, open_for: float
    ) -> None:
        extra = {"key": str(key), "transition": f"circuit_{transition.value}"}
        if transition is Transition.CLOSED:
            self._log(
                logging.INFO, f"governor: circuit of {key} closed: the probe succeeded", extra
            )
            return
        why = (
            f"{self.settings.breaker.failures} transient failures in a row"
            if transition is Transition.OPENED
            else "its probe failed"
        )
        self._log(
            logging.WARNING,
            f"governor: circuit of {key} {transition.value} after {why} "
            f"({action.classification}); next probe in {seconds(open_for)}s",
            extra,
        )

    def _log(self, level: int, text: str, extra: dict[str, str]) -> None:
        """Log ``text``, its secrets masked, as every text leaving the library
        (a key is a fingerprint already; a model or host might not be clean)."""
        if self.logger.isEnabledFor(level):
            masked = {name: redact(value) for name, value in extra.items()}
            self.logger.log(level, "%s", redact(text), extra=masked)

    def _sticky_action(self, key: TrafficKey, held: _sticky.StickyState, now: float) -> Action:
        action = held.action
        assert action is not None
        why = (
            f"governor: {key} failed with {action.classification} (rule {action.rule_id!r}); "
            f"failing at once for {seconds(held.until - now)}s more instead of asking again"
        )
        return attrs.evolve(
            action,
            kind=ActionKind.FAIL,
            fallback=None,
            details=AmendedDetails(action.details, after=(why,)),
        )

    def _circuit_action(self, key: TrafficKey, st: KeyState, now: float, waiting: str) -> Action:
        base = st.opened_by
        why = (
            f"governor: the circuit of {key} is open after {st.breaker.failures} transient "
            f"failures in a row; not waiting for {waiting}, past this call's deadline"
        )
        note = "The upstream is failing for every caller of this client; try again later."
        if base is None:
            details = StaticDetails(reasons=(why,), remediation=note)
            return Action(ActionKind.FAIL, "upstream_unavailable", True, 0.0, "", details=details)
        return attrs.evolve(
            base,
            kind=ActionKind.FAIL,
            delay=0.0,
            fallback=None,
            details=AmendedDetails(base.details, after=(why,), note=note, source="none"),
        )

    def _slot_action(self, key: TrafficKey, wait: float, st: KeyState) -> Action:
        why = (
            f"governor: the next send slot of {key} is {seconds(wait)}s away "
            f"({st.limiter.remaining + 1:g} left of its rate limit), past this call's deadline"
        )
        remediation = (
            f"Rate limited by this client's pace: the next slot is in {seconds(wait)}s, later "
            "than this call may wait. Send less often, or allow a longer max_elapsed."
        )
        details = StaticDetails(reasons=(why,), remediation=remediation)
        return Action(ActionKind.FAIL, "rate_limit", True, 0.0, "", details=details)
