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
import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import attrs

from .._model import Action, ActionKind, Policy, Response, StaticDetails
from .._model import Governor as Settings
from .._overrides import give_up
from .._redact import redact
from .._text import seconds
from . import _sticky
from ._breaker import Transition
from ._keys import TrafficKey, make_key
from ._ratelimit import read_ratelimit
from ._remembered import Remembered
from ._signals import Signal
from ._steps import AdmitStep, SettleReport, SettleStep, Verdict
from ._store import MemoryStore, Store

__all__ = [
    "REDIS_URL_VAR",
    "Admission",
    "Deny",
    "Go",
    "GovernorEvent",
    "Listener",
    "Governor",
    "Hold",
    "Ticket",
    "default_store",
]

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


class GovernorEvent(NamedTuple):
    """Something the governor did, told to its listeners (metrics, traces).

    ``kind`` is one of ``paced`` (a send waited ``seconds`` for its slot),
    ``held`` (a call waited ``seconds`` before asking again: an open circuit,
    a probe, a spent rate limit), ``refused`` (a call was failed at once:
    ``reason`` is ``sticky``, ``circuit`` or ``slot``), ``circuit_opened``,
    ``circuit_reopened``, ``circuit_closed``, or ``sticky`` (a failure of
    ``classification`` is held for ``seconds``).
    """

    kind: str
    key: TrafficKey
    seconds: float = 0.0
    reason: str = ""
    classification: str = ""


Listener = Callable[[GovernorEvent], object]
"""A function told every ``GovernorEvent``; what it raises is logged, not raised."""


class Deny(NamedTuple):
    """Do not send: fail with ``action``; ``response`` is what to hand back, if any."""

    action: Action
    response: Response | None


Admission = Go | Hold | Deny


def _server_wait(action: Action) -> float | None:
    source = action.delay_source
    return action.delay if source in ("server", "clamp") and action.delay > 0.0 else None


#: The environment variable naming a Redis to share the governor's state in
#: (over ``[governor] redis_url``).
REDIS_URL_VAR = "POLICYENGINE_REDIS_URL"

_shared: dict[str, Store] = {}
_shared_lock = threading.Lock()


def default_store(settings: Settings) -> Store:
    """The store a governor gets unless given one: the process's one store
    for the Redis named by ``POLICYENGINE_REDIS_URL`` or ``redis_url`` (one
    per URL, shared by every governor of the process), else a new in-process
    store. Without the ``redis`` extra, or for a URL redis-py cannot read,
    the in-process store, said once."""
    url = os.environ.get(REDIS_URL_VAR, "").strip() or settings.redis_url.strip()
    if not url or not settings.enabled:
        return MemoryStore()
    with _shared_lock:
        found = _shared.get(url)
        if found is None:
            try:
                from ._redisstore import RedisStore, shown_url
            except ImportError as exc:
                LOGGER.warning(
                    "governor: a Redis is named but the redis package is missing (%s); "
                    "install policyengine[redis]. Deciding in this process.",
                    exc,
                )
                found = MemoryStore()
            else:
                try:
                    found = RedisStore(url)
                except Exception as exc:  # a URL redis-py cannot read: fail open too
                    LOGGER.warning(
                        "governor: the Redis URL %s is not usable (%s); deciding in this process",
                        shown_url(url),
                        redact(f"{type(exc).__name__}: {exc}"),
                    )
                    found = MemoryStore()
            _shared[url] = found
        return found


class Governor:
    """Coordinates the calls of every caller that shares it, per key.

    One is made for each driver (so for each adapter or SDK client) from its
    policy's ``[governor]`` table; pass the same object to several to share
    it. Its settings can be replaced (a policy reload) while its state stays.
    Safe to share between threads and asyncio tasks.

    Args:
        settings: The ``[governor]`` settings, or a ``Policy`` to take them from.
        logger: Where circuit transitions and sticky failures are logged.
        store: Where key states live; default a bounded in-process store
            (``policyengine.redis.RedisStore`` shares them between processes).
    """

    def __init__(
        self,
        settings: Settings | Policy | None = None,
        *,
        logger: logging.Logger | None = None,
        store: Store | None = None,
    ) -> None:
        if isinstance(settings, Policy):
            settings = settings.governor
        self.settings: Settings = settings if settings is not None else Settings(enabled=True)
        self.logger = logger if logger is not None else LOGGER
        self.store: Store = store if store is not None else default_store(self.settings)
        self.listeners: list[Listener] = []
        """Told every ``GovernorEvent`` (append to it: ``policyengine.otel`` does)."""

    def __repr__(self) -> str:
        return f"Governor(enabled={self.settings.enabled}, keys={len(self.store)})"

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def reconfigure(self, settings: Settings | Policy) -> None:
        """Take new settings (a reloaded policy); the state of every key stays."""
        self.settings = settings.governor if isinstance(settings, Policy) else settings

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
        step, signal = self.store.admit(key, now, self.settings, retry, deadline_at - now, jitter)
        return self._admission(key, step, signal, retry)

    async def aadmit(
        self,
        key: TrafficKey,
        now: float,
        *,
        retry: bool,
        deadline_at: float = math.inf,
        jitter: float = 0.0,
    ) -> Admission:
        """``admit``, without blocking the event loop on a shared store."""
        step, signal = await self.store.aadmit(
            key, now, self.settings, retry, deadline_at - now, jitter
        )
        return self._admission(key, step, signal, retry)

    def _emit(self, event: GovernorEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as exc:
                self._log(logging.WARNING, f"governor: listener {listener!r} failed: {exc}", {})

    def _admission(
        self, key: TrafficKey, step: AdmitStep, signal: Signal | None, retry: bool
    ) -> Admission:
        if self.listeners:
            self._tell_admission(key, step)
        verdict = step.verdict
        if verdict is Verdict.GO:
            note = ""
            if step.wait > 0.0:
                note = f"governor: paced {seconds(step.wait)}s for a send slot of {key}"
            return Go(step.wait, Ticket(key, step.seq, step.probe, retry), note)
        if verdict is Verdict.HOLD:
            what = {
                "probe": "for the circuit's probe",
                "first": "for the key's first answer",
                "spent": f"{seconds(step.wait)}s: the rate limit of {key} is spent",
            }.get(step.why, f"{seconds(step.wait)}s while the circuit of {key} is open")
            return Hold(step.wait, signal, f"governor: held {what}")
        if verdict is Verdict.STICKY:
            assert step.failure is not None
            return Deny(self._sticky_action(key, step.failure, step.wait), step.failure.response)
        if verdict is Verdict.CIRCUIT:
            waiting = f"its probe in {seconds(step.wait)}s" if step.wait else "its probe's answer"
            return Deny(self._circuit_action(key, step, waiting), None)
        return Deny(self._slot_action(key, step.wait, step.left), None)

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
        wait = _server_wait(action)
        reading = None
        if s.limiter.enabled and response is not None and response.headers:
            reading = read_ratelimit(response.headers, wall_now())
        sticky_for = None
        if _sticky.sticks(action.classification, s.sticky):  # held as long as the server said
            sticky_for = _sticky.hold_for(action.classification, action.facts.server_wait, s.sticky)
        report = SettleReport(
            seq=ticket.seq,
            probe=ticket.probe,
            failed=failed,
            rejected=response is not None and response.status == 429,
            server_wait=wait,
            reading=reading,
            sticky_for=sticky_for,
            retrying=action.should_retry and failed,
            failure=lambda: Remembered.of(action, response),
            later=lambda step: self._told(ticket.key, step, action),
        )
        step = self.store.settle(ticket.key, now, s, report)
        self._told(ticket.key, step, action)
        if sticky_for is not None:
            self._emit(GovernorEvent("sticky", ticket.key, sticky_for, "", action.classification))
            self._log(
                logging.WARNING,
                f"governor: {ticket.key} failed with {action.classification}; "
                f"other calls for it fail at once for {seconds(sticky_for)}s",
                {"key": str(ticket.key), "transition": "sticky"},
            )
        if step.over_budget:
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
        self.store.cancel(ticket.key, now, ticket.probe)

    # --- words ---------------------------------------------------------------------

    def _tell_admission(self, key: TrafficKey, step: AdmitStep) -> None:
        verdict = step.verdict
        if verdict is Verdict.GO:
            if step.wait > 0.0:
                self._emit(GovernorEvent("paced", key, step.wait))
        elif verdict is Verdict.HOLD:
            self._emit(GovernorEvent("held", key, step.wait, step.why))
        else:
            self._emit(GovernorEvent("refused", key, reason=verdict.value))

    def _told(self, key: TrafficKey, step: SettleStep, action: Action) -> None:
        if step.transition is not None:
            self._log_transition(key, step.transition, action, step.open_for)
            event = f"circuit_{step.transition.value}"
            self._emit(GovernorEvent(event, key, step.open_for, "", action.classification))

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

    def _sticky_action(self, key: TrafficKey, failure: Remembered, left: float) -> Action:
        why = (
            f"governor: {key} failed with {failure.classification} (rule "
            f"{failure.rule_id!r}); failing at once for {seconds(left)}s more instead of "
            "asking again"
        )
        return failure.action(why)

    def _circuit_action(self, key: TrafficKey, step: AdmitStep, waiting: str) -> Action:
        why = (
            f"governor: the circuit of {key} is open after {step.failures} transient "
            f"failures in a row; not waiting for {waiting}, past this call's deadline"
        )
        note = "The upstream is failing for every caller of this client; try again later."
        if step.failure is None:
            details = StaticDetails(reasons=(why,), remediation=note)
            return Action(ActionKind.FAIL, "upstream_unavailable", True, 0.0, "", details=details)
        return attrs.evolve(step.failure.action(why, note), delay=0.0)

    def _slot_action(self, key: TrafficKey, wait: float, left: float) -> Action:
        why = (
            f"governor: the next send slot of {key} is {seconds(wait)}s away "
            f"({left:g} left of its rate limit), past this call's deadline"
        )
        remediation = (
            f"Rate limited by this client's pace: the next slot is in {seconds(wait)}s, later "
            "than this call may wait. Send less often, or allow a longer max_elapsed."
        )
        details = StaticDetails(reasons=(why,), remediation=remediation)
        return Action(ActionKind.FAIL, "rate_limit", True, 0.0, "", details=details)
