"""The driver: call -> evaluate -> wait -> retry / fall back / give up.

One loop, sync (``Driver.call`` / ``Driver.run``) and async (``Driver.acall`` /
``Driver.arun``), built on the ``backoff`` package: ``backoff.on_predicate``
with ``backoff.runtime``, so backoff does the looping and the sleeping while
the engine computes every wait. The adapters (``policyengine.httpx``,
``.requests``, ``.aiohttp``, ``.openai``) are thin shells around it;
``policyengine.urllib3`` reuses its decisions inside urllib3's own loop.

Logging goes to the ``policyengine`` logger: DEBUG for a success, INFO for a
retry or a fallback, WARNING for a give-up. Every record carries the fields of
``LOG_FIELDS`` as attributes (``record.rule_id``...). Request headers and
bodies are never logged, and what is logged, the message and every text
attribute, has secrets masked (``_redact``).

One job, the attempt loop, in a module above the usual size because it is
written twice on purpose: the sync and async twins (``run`` / ``arun``,
``call`` / ``acall``) stay side by side so that they cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

import attrs
import backoff

from ._clients import coerce_response
from ._engine import Engine
from ._errors import give_up_message, what_came_back
from ._governor import Deny, Destination, Go, Governor, Ticket, TrafficKey
from ._governor._governor import Admission
from ._layers import Layer
from ._loading import load_policy
from ._model import Action, ActionKind, AmendedDetails, Policy, Response
from ._overrides import Override, current_override, tighten
from ._redact import redact
from ._results import Attempt, Decision, Hook, Outcome
from ._testing import TestingMode, current_testing
from ._text import seconds

__all__ = [
    "HELD_MARGIN",
    "HELD_MARGIN_MAX",
    "LOGGER",
    "LOG_FIELDS",
    "MAX_HELD",
    "CallClock",
    "CallOptions",
    "Driver",
]

T = TypeVar("T")

LOGGER = logging.getLogger("policyengine")

#: The attributes every log record of the driver carries.
LOG_FIELDS = (
    "attempt",
    "model",
    "action",
    "rule_id",
    "classification",
    "status",
    "transport",
    "delay",
    "delay_source",
    "fallback",
    "elapsed",
    "remediation",
)


@attrs.define
class _Step(Generic[T]):
    """One attempt's result, as backoff's predicate and wait function see it."""

    decision: Decision
    value: T | None
    error: Exception | None


def _again(step: _Step[Any]) -> bool:
    return step.decision.action.should_retry


@attrs.define
class CallClock:
    """Time spent on one call: since its first attempt started, or, in testing
    mode (where nothing sleeps), the waits it would have slept."""

    clock: Callable[[], float]
    testing: TestingMode | None
    started: float
    waited: float = 0.0

    @classmethod
    def start(cls, clock: Callable[[], float], testing: TestingMode | None) -> CallClock:
        return cls(clock, testing, clock())

    def elapsed(self) -> float:
        """Seconds spent so far."""
        if self.testing is not None:
            return self.waited
        return max(0.0, self.clock() - self.started)

    def wait(self, seconds: float) -> float:
        """Count a wait; the seconds to really sleep (0, recorded, in testing mode)."""
        self.waited += seconds
        if self.testing is not None:
            self.testing.record(seconds)
            return 0.0
        return seconds

    def hold(self, seconds: float) -> float:
        """Count a wait the governor imposed; the seconds to really sleep."""
        self.waited += seconds
        if self.testing is not None:
            self.testing.record_hold(seconds)
            return 0.0
        return seconds

    def now(self) -> float:
        """The governor's time: the clock, plus what testing mode did not sleep."""
        if self.testing is not None:
            return self.clock() + self.testing.skipped
        return self.clock()


#: With no deadline (``max_elapsed = 0``), a call is held by the governor at
#: most this long in all (seconds): an outage does not hang it for ever.
MAX_HELD = 300.0
#: The governor holds a call no later than this fraction of its deadline
#: before it (at most ``HELD_MARGIN_MAX`` seconds), so that the attempt sent
#: after the wait can still finish in time.
HELD_MARGIN = 0.05
HELD_MARGIN_MAX = 1.0


@attrs.frozen
class CallOptions(Generic[T]):
    """What an adapter tells the driver about a call, beyond the attempt itself."""

    discard: Callable[[T], object] | None = None
    destination: Destination | None = None
    refused: Callable[[Deny], T] | None = None


def _admit_sync(call: _Call[Any], attempt: Attempt) -> Deny | None:
    """Wait until the governor lets this attempt go (None), or its refusal."""
    while True:
        admission = call.admit(attempt)
        if admission is None:
            return None
        if isinstance(admission, Deny):
            return admission
        if isinstance(admission, Go):
            pause = call.hold(admission.wait)
            if pause > 0.0:
                time.sleep(pause)
            return None
        if admission.signal is not None:  # the probe's answer: real I/O, not a policy wait
            admission.signal.wait(admission.wait)
        else:
            pause = call.hold(admission.wait)
            if pause > 0.0:
                time.sleep(pause)


async def _admit_async(call: _Call[Any], attempt: Attempt) -> Deny | None:
    """The async ``_admit_sync``."""
    while True:
        admission = await call.aadmit(attempt)
        if admission is None:
            return None
        if isinstance(admission, Deny):
            return admission
        if isinstance(admission, Go):
            pause = call.hold(admission.wait)
            if pause > 0.0:
                await asyncio.sleep(pause)
            return None
        if admission.signal is not None:
            await admission.signal.wait_async(admission.wait)
        else:
            pause = call.hold(admission.wait)
            if pause > 0.0:
                await asyncio.sleep(pause)


class _Live:
    """The driver's one mutable part: the engine new calls start with."""

    __slots__ = ("engine", "lock")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()


class _Question(NamedTuple):
    """What the driver asks the governor before an attempt."""

    governor: Governor
    key: TrafficKey
    now: float
    retry: bool
    deadline_at: float


@attrs.define
class _Call(Generic[T]):
    """The mutable state of one call (the driver itself is immutable)."""

    driver: Driver
    engine: Engine
    """The engine of the call: the driver's when it started (a reload waits)."""
    model: str | None
    method: str | None
    override: Override | None
    view: Callable[[T], object] | None
    clock: CallClock
    fallback: bool
    options: CallOptions[T]
    history: list[Decision] = attrs.field(factory=list)
    last: _Step[T] | None = None
    ticket: Ticket | None = None
    notes: list[str] = attrs.field(factory=list)
    held: float = 0.0

    def elapsed(self) -> float:
        return self.clock.elapsed()

    def attempt(self) -> Attempt:
        on_model = 1
        for decision in reversed(self.history):  # this model's attempts so far
            if decision.attempt.model != self.model:
                break
            on_model += 1
        return Attempt(len(self.history) + 1, self.model, self.elapsed(), on_model)

    # --- the governor ------------------------------------------------------------

    def _ask(self, attempt: Attempt) -> _Question | None:
        """What to ask the governor about this attempt (None: there is none)."""
        governor = self.driver.governor
        if governor is None or not governor.enabled:
            return None
        now = self.clock.now()
        previous = self.last.decision.action.rule_id if self.last is not None else ""
        limit = self.engine.max_elapsed(previous)
        tighter = (self.override or Override()).merge(current_override()).max_elapsed
        if tighter is not None:
            limit = min(limit, tighter) if limit else tighter
        if limit:  # leave the attempt itself time to finish within the deadline
            remaining = limit - self.elapsed() - min(HELD_MARGIN_MAX, HELD_MARGIN * limit)
        else:
            remaining = MAX_HELD - self.held
        where = self.options.destination or Destination()
        key = governor.key(where.host, where.credential, attempt.model)
        return _Question(governor, key, now, attempt.number > 1, now + remaining)

    def _heard(self, admission: Admission) -> Admission:
        if isinstance(admission, Go):
            self.ticket = admission.ticket
        if not isinstance(admission, Deny) and admission.note:
            self.notes.append(admission.note)
        return admission

    def admit(self, attempt: Attempt) -> Admission | None:
        """Ask the governor about this attempt (None: there is none)."""
        q = self._ask(attempt)
        if q is None:
            return None
        jitter = self.engine.rng.random()
        return self._heard(
            q.governor.admit(q.key, q.now, retry=q.retry, deadline_at=q.deadline_at, jitter=jitter)
        )

    async def aadmit(self, attempt: Attempt) -> Admission | None:
        """The async ``admit``."""
        q = self._ask(attempt)
        if q is None:
            return None
        jitter = self.engine.rng.random()
        return self._heard(
            await q.governor.aadmit(
                q.key, q.now, retry=q.retry, deadline_at=q.deadline_at, jitter=jitter
            )
        )

    def hold(self, seconds: float) -> float:
        """The seconds to really sleep for a governor wait (0 in testing mode)."""
        self.held += seconds
        return self.clock.hold(seconds)

    def retired(self) -> T | None:
        """The last response, which a retry is about to replace (to discard)."""
        if self.last is None or self.options.discard is None:
            return None
        value, self.last = self.last.value, attrs.evolve(self.last, value=None)
        return value

    def refuse(self, attempt: Attempt, deny: Deny) -> _Step[T]:
        """The governor refused to send: the call ends with its action."""
        decision = Decision(attempt, deny.action, None)
        self.driver._log(deny.action, attempt)
        self.history.append(decision)
        self.driver.notify(decision)
        if self.last is not None:
            return _Step(decision, self.last.value, self.last.error)
        refused = self.options.refused
        return _Step(decision, refused(deny) if refused is not None else None, None)

    # --- after an attempt --------------------------------------------------------

    def settle(self, attempt: Attempt, value: T | None, error: Exception | None) -> _Step[T]:
        if error is not None:
            seen: object = error
        else:
            seen = self.view(value) if self.view is not None else value  # type: ignore[arg-type]
        # Decided with the time spent so far, this attempt's own included: a
        # slow attempt brings the policy's max_elapsed nearer.
        judged = attrs.evolve(attempt, elapsed=self.elapsed())
        action = self.driver._evaluate(
            seen,
            judged,
            method=self.method,
            override=self.override,
            testing=self.clock.testing,
            fallback=self.fallback,
            engine=self.engine,
        )
        ticket, self.ticket = self.ticket, None
        governor = self.driver.governor
        if ticket is not None and governor is not None:
            if action.status is None and action.transport is None:
                governor.cancel(ticket, self.clock.now())  # not an answer: no lesson
            else:
                response = seen if isinstance(seen, Response) else coerce_response(seen)
                action = governor.settle(ticket, self.clock.now(), response, action)
        if self.notes:
            action = attrs.evolve(
                action, details=AmendedDetails(action.details, before=tuple(self.notes))
            )
            self.notes.clear()
        self.driver._log(action, judged)
        decision = Decision(attempt, action, error if error is not None else value)
        if action.should_retry:
            decision = attrs.evolve(decision, wait=action.delay)
            if action.kind is ActionKind.FALLBACK and action.fallback:
                self.model = action.fallback
        self.history.append(decision)
        self.driver.notify(decision)
        self.last = _Step(decision, value, error)
        return self.last

    def wait(self, step: _Step[T]) -> float:
        """backoff's runtime wait: the engine's delay, or 0 in testing mode."""
        return self.clock.wait(step.decision.wait)

    def outcome(self, step: _Step[T]) -> Outcome[T]:
        return Outcome(step.decision.action, step.value, step.error, tuple(self.history))


def _hooks(hooks: Iterable[Hook]) -> tuple[Hook, ...]:
    return tuple(hooks)


@attrs.frozen
class Driver:
    """Runs a call under a policy: call, evaluate, wait, retry / fall back / give up.

    Immutable and safe to share between threads and asyncio tasks.

    Args:
        engine: The engine deciding; default ``Engine()`` (the bundled
            default policy plus ``$POLICYENGINE_POLICY``).
        hooks: Functions called with every ``Decision``, for metrics.
        logger: Where decisions are logged; default the ``policyengine`` logger.
        clock: A monotonic clock in seconds, for ``elapsed`` and the governor.
        governor: The state shared by every call of this driver; default one
            made from the engine's policy (``[governor]``). Pass the same
            ``Governor`` to several drivers to share it; None for none.
    """

    _initial: Engine = attrs.field(factory=Engine, alias="engine", repr=False)
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=_hooks)
    logger: logging.Logger = attrs.field(default=LOGGER, repr=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False)
    governor: Governor | None = attrs.field(
        default=attrs.Factory(lambda self: Governor(self._initial.policy), takes_self=True),
        repr=False,
    )
    _live: _Live = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: _Live(self._initial), takes_self=True),
        eq=False,
        repr=False,
    )

    @property
    def engine(self) -> Engine:
        """The engine deciding new calls (``reload`` replaces it)."""
        return self._live.engine

    def __repr__(self) -> str:
        return f"Driver(engine={self.engine!r}, hooks={self.hooks!r})"

    def reload(self, *layers: Layer | Policy, env: bool = True, default: bool = True) -> Policy:
        """Swap to a new policy, atomically, for the calls that start from now
        on; calls in flight finish under the policy they started with, and the
        governor keeps its state (it takes the new ``[governor]`` settings).

        Args:
            layers: A ``Policy``; or files and dicts, as for ``load_policy``.
            env: As for ``load_policy``.
            default: As for ``load_policy``.

        Returns:
            The policy now in use.

        Raises:
            PolicyError: The new policy is unusable (every problem listed); the
                policy in use stays.
        """
        if len(layers) == 1 and isinstance(layers[0], Policy):
            policy = layers[0]
        else:
            files = [layer for layer in layers if not isinstance(layer, Policy)]
            if len(files) != len(layers):
                raise TypeError("pass one Policy, or files and dicts to load one from")
            policy = load_policy(*files, env=env, default=default)
        old = self.engine
        engine = Engine(policy, clock=old.clock, rng=old.rng)
        with self._live.lock:
            self._live.engine = engine
            if self.governor is not None:
                self.governor.reconfigure(policy)
        self.logger.info(
            "policy reloaded: %d rules from %s",
            len(policy.rules),
            ", ".join(policy.sources) or "a dict",
            extra={"sources": policy.sources},
        )
        return policy

    # --- the loop -----------------------------------------------------------------

    def run(
        self,
        fn: Callable[[Attempt], T],
        *,
        model: str | None = None,
        method: str | None = None,
        override: Override | Mapping[str, Any] | None = None,
        view: Callable[[T], object] | None = None,
        discard: Callable[[T], object] | None = None,
        fallback: bool = True,
        destination: Destination | None = None,
        refused: Callable[[Deny], T] | None = None,
    ) -> Outcome[T]:
        """Call ``fn`` until the policy calls it a success or gives up.

        Args:
            fn: Makes one attempt: given the ``Attempt`` (its number, the model
                to use), returns the response or raises the network error.
            model: The model the call starts with (fallbacks continue after it).
            method: The request method, for rules that match on it.
            override: Tighter limits for this call (``Override`` or a dict).
            view: Turns what ``fn`` returns into what the engine reads (e.g. a
                ``policyengine.Response``); default: the value itself.
            discard: Called with each response that is retried, before the
                retry is sent (to close it and free the connection).
            fallback: False when ``fn`` cannot send another model (the request
                names none it could change): a ``fallback`` action then gives
                up, rather than resend what the policy wanted switched.
            destination: Where the call goes (host, credential fingerprint),
                for the governor's key; the model comes from each attempt.
            refused: Makes what to return when the governor refuses the
                first attempt (a sticky failure replayed, an open circuit):
                given the ``Deny``, returns a response. Default: none (the
                outcome's value is None and ``call`` raises ``GaveUp``).

        Returns:
            The ``Outcome``: the final action, the last response or
            exception, and the history. Never raises what ``fn`` raised.
        """
        call = self._start(
            model, method, override, view, fallback, CallOptions(discard, destination, refused)
        )

        def once() -> _Step[T]:
            attempt = call.attempt()
            denied = _admit_sync(call, attempt)
            if denied is not None:
                return call.refuse(attempt, denied)
            old = call.retired()
            if old is not None and discard is not None:
                with contextlib.suppress(Exception):
                    discard(old)
            attempt = attrs.evolve(attempt, elapsed=call.elapsed())
            try:
                value = fn(attempt)
            except Exception as exc:
                return call.settle(attempt, None, exc)
            return call.settle(attempt, value, None)

        looped = backoff.on_predicate(
            backoff.runtime, _again, value=call.wait, jitter=None, logger=None
        )(once)
        return call.outcome(looped())

    def call(
        self,
        fn: Callable[[Attempt], T],
        *,
        model: str | None = None,
        method: str | None = None,
        override: Override | Mapping[str, Any] | None = None,
        view: Callable[[T], object] | None = None,
        discard: Callable[[T], object] | None = None,
        fallback: bool = True,
        destination: Destination | None = None,
        refused: Callable[[Deny], T] | None = None,
    ) -> T:
        """Like ``run``, but return the successful response or raise.

        Returns:
            What ``fn`` returned on the attempt the policy called a success.

        Raises:
            GaveUp: The policy gave up (its ``__cause__`` is the last exception).
            Exception: What ``fn`` raised when it was no network failure.
        """
        return self.run(
            fn,
            model=model,
            method=method,
            override=override,
            view=view,
            discard=discard,
            fallback=fallback,
            destination=destination,
            refused=refused,
        ).unwrap()

    async def arun(
        self,
        fn: Callable[[Attempt], Awaitable[T]],
        *,
        model: str | None = None,
        method: str | None = None,
        override: Override | Mapping[str, Any] | None = None,
        view: Callable[[T], object] | None = None,
        discard: Callable[[T], object] | None = None,
        fallback: bool = True,
        destination: Destination | None = None,
        refused: Callable[[Deny], T] | None = None,
    ) -> Outcome[T]:
        """The async ``run``: ``fn`` is a coroutine function; waits use
        ``asyncio.sleep``. ``discard`` may return an awaitable.

        Returns:
            The ``Outcome``. Never raises what ``fn`` raised (cancellation
            propagates).
        """
        call = self._start(
            model, method, override, view, fallback, CallOptions(discard, destination, refused)
        )

        async def once() -> _Step[T]:
            attempt = call.attempt()
            denied = await _admit_async(call, attempt)
            if denied is not None:
                return call.refuse(attempt, denied)
            old = call.retired()
            if old is not None and discard is not None:
                with contextlib.suppress(Exception):
                    result = discard(old)
                    if inspect.isawaitable(result):
                        await result
            attempt = attrs.evolve(attempt, elapsed=call.elapsed())
            try:
                value = await fn(attempt)
            except Exception as exc:
                return call.settle(attempt, None, exc)
            return call.settle(attempt, value, None)

        looped = backoff.on_predicate(
            backoff.runtime, _again, value=call.wait, jitter=None, logger=None
        )(once)
        return call.outcome(await looped())

    async def acall(
        self,
        fn: Callable[[Attempt], Awaitable[T]],
        *,
        model: str | None = None,
        method: str | None = None,
        override: Override | Mapping[str, Any] | None = None,
        view: Callable[[T], object] | None = None,
        discard: Callable[[T], object] | None = None,
        fallback: bool = True,
        destination: Destination | None = None,
        refused: Callable[[Deny], T] | None = None,
    ) -> T:
        """The async ``call``.

        Returns:
            What ``fn`` returned on the attempt the policy called a success.

        Raises:
            GaveUp: The policy gave up (its ``__cause__`` is the last exception).
            Exception: What ``fn`` raised when it was no network failure.
        """
        outcome = await self.arun(
            fn,
            model=model,
            method=method,
            override=override,
            view=view,
            discard=discard,
            fallback=fallback,
            destination=destination,
            refused=refused,
        )
        return outcome.unwrap()

    def _start(
        self,
        model: str | None,
        method: str | None,
        override: Override | Mapping[str, Any] | None,
        view: Callable[[T], object] | None,
        fallback: bool,
        options: CallOptions[T],
    ) -> _Call[T]:
        return _Call(
            self,
            self.engine,
            model,
            method.upper() if method else None,
            Override.of(override),
            view,
            CallClock.start(self.clock, current_testing()),
            fallback,
            options,
        )

    # --- one decision (also used by policyengine.urllib3) ----------------------------

    def decide(
        self,
        result: object,
        attempt: Attempt,
        *,
        method: str | None = None,
        override: Override | Mapping[str, Any] | None = None,
        testing: TestingMode | None = None,
        fallback: bool = True,
    ) -> Action:
        """Evaluate one attempt's response or exception, apply the overrides
        in force, and log the decision.

        Args:
            result: What the attempt gave: the response (or a
                ``policyengine.Response``) or the exception raised.
            attempt: Which attempt it was.
            method: The request method.
            override: Tighter limits for this call; the ``overriding()`` block
                in force and testing mode's cap are applied too.
            testing: The testing mode to use (default: the one in force).
            fallback: False when the call cannot send another model (its
                request names none): the engine then decides as if the
                fallback chain were used up (``evaluate(fallback=False)``): a
                retryable error is retried on the same model, any other gives up.

        Returns:
            The action (never raises).
        """
        action = self._evaluate(
            result, attempt, method=method, override=override, testing=testing, fallback=fallback
        )
        self._log(action, attempt)
        return action

    def _evaluate(
        self,
        result: object,
        attempt: Attempt,
        *,
        method: str | None,
        override: Override | Mapping[str, Any] | None,
        testing: TestingMode | None,
        fallback: bool,
        engine: Engine | None = None,
    ) -> Action:
        """``decide``, without the log line (the caller logs the final action)."""
        mode = testing if testing is not None else current_testing()
        base = engine if engine is not None else self.engine
        engine = mode.engine_for(base) if mode is not None else base
        action = engine.evaluate(
            result,
            attempt.number,
            attempt.elapsed,
            model=attempt.model,
            method=method,
            fallback=fallback,
            model_attempt=attempt.model_attempt,
        )
        limits = (Override.of(override) or Override()).merge(current_override())
        if mode is not None and mode.max_attempts is not None:
            limits = limits.merge(Override(max_attempts=mode.max_attempts))
        return tighten(action, attempt, limits)

    def notify(self, decision: Decision) -> None:
        """Call every hook with ``decision``; a failing hook is logged, not raised."""
        for hook in self.hooks:
            try:
                hook(decision)
            except Exception as exc:
                self.logger.warning(
                    "%s", redact(f"policyengine hook {hook!r} failed: {type(exc).__name__}: {exc}")
                )

    def _log(self, action: Action, attempt: Attempt) -> None:
        kind = action.kind
        level = {
            ActionKind.SUCCEED: logging.DEBUG,
            ActionKind.RETRY: logging.INFO,
            ActionKind.FALLBACK: logging.INFO,
        }.get(kind, logging.WARNING)
        if not self.logger.isEnabledFor(level):
            return
        source = action.delay_source
        fields: dict[str, object] = {
            "attempt": attempt.number,
            "model": attempt.model,
            "action": kind.value,
            "rule_id": action.rule_id,
            "classification": action.classification,
            "status": action.status,
            "transport": action.transport,
            "delay": action.delay,
            "delay_source": source,
            "fallback": action.fallback,
            "elapsed": round(attempt.elapsed, 3),
            "remediation": action.remediation if kind is ActionKind.FAIL else None,
        }
        head = (
            f"attempt {attempt.number}: {action.classification} ({what_came_back(action)}, "
            f"rule {action.rule_id or '(none)'!r})"
        )
        if kind is ActionKind.SUCCEED:
            text = f"attempt {attempt.number}: succeeded ({what_came_back(action)})"
        elif kind is ActionKind.RETRY:
            text = f"{head}; retrying in {seconds(action.delay)}s ({source})"
        elif kind is ActionKind.FALLBACK:
            text = (
                f"{head}; falling back to {action.fallback!r} in "
                f"{seconds(action.delay)}s ({source})"
            )
        else:
            text = give_up_message(action, attempt.number)
            last = action.reasons[-1] if action.reasons else ""
            if last:
                text += f" [{last}]"
        # The message and every text attribute are redacted: handlers may
        # format either (a JSON formatter writes the attributes).
        for name, value in fields.items():
            if isinstance(value, str):
                fields[name] = redact(value)
        self.logger.log(level, "%s", redact(text), extra=fields)
