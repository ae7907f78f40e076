"""The driver: call -> evaluate -> wait -> retry / fall back / give up.

One loop, sync (``Driver.call`` / ``Driver.run``) and async (``Driver.acall`` /
``Driver.arun``), built on the ``backoff`` package: ``backoff.on_predicate``
with ``backoff.runtime``, so backoff does the looping and the sleeping while
the engine computes every wait. The adapters (``policyengine.httpx``,
``.requests``, ``.aiohttp``, ``.openai``) are thin shells around it;
``policyengine.urllib3`` reuses its decisions inside urllib3's own loop.

The exceptions::

    Exception
    └── GaveUp     the policy gave up on a call; raised by ``Driver.call`` / ``acall``
                   .action: the final Action (why, remediation)
                   .last: the last response, or the last exception (also __cause__)
                   .history: one Decision per attempt

Logging goes to the ``policyengine`` logger: DEBUG for a success, INFO for a
retry or a fallback, WARNING for a give-up. Every record carries the fields of
``LOG_FIELDS`` as attributes (``record.rule_id``...). Request headers and
bodies are never logged, and what is logged has API keys masked.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import attrs
import backoff
from backoff.types import Details

from ._engine import Engine
from ._model import Action, ActionDetails, ActionKind, ParsedError, StaticDetails
from ._redact import redact
from ._text import seconds

__all__ = [
    "LOG_FIELDS",
    "Attempt",
    "Decision",
    "Driver",
    "GaveUp",
    "Hook",
    "Outcome",
    "Override",
    "TestingMode",
    "is_testing",
    "overriding",
    "set_testing",
    "testing_mode",
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


def _positive_int(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name} must be a whole number >= 1 or None, got {value!r}")


def _valid_seconds(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{attribute.name} must be a number of seconds or None, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must be finite and >= 0, got {value!r}")


@attrs.frozen
class Override:
    """Tighter limits for one call, without building a new policy.

    An override only ever makes the policy stricter: a call stops at the
    first of the rule's limit and the override's.

    Attributes:
        max_attempts: Attempts in all for this call, the first included
            (1 = never retry). None: the policy's.
        max_elapsed: Give up rather than wait past this many seconds since the
            first attempt started. None: the policy's.
    """

    max_attempts: int | None = attrs.field(default=None, validator=_positive_int)
    max_elapsed: float | None = attrs.field(default=None, validator=_valid_seconds)

    def merge(self, other: Override | None) -> Override:
        """The stricter of ``self`` and ``other``, limit by limit."""
        if other is None:
            return self

        attempts = [n for n in (self.max_attempts, other.max_attempts) if n is not None]
        elapsed = [s for s in (self.max_elapsed, other.max_elapsed) if s is not None]
        return Override(
            max_attempts=min(attempts) if attempts else None,
            max_elapsed=min(elapsed) if elapsed else None,
        )

    @classmethod
    def of(cls, value: object) -> Override | None:
        """An ``Override`` from an ``Override``, a mapping of its fields, or None.

        Raises:
            TypeError: ``value`` is something else, or a mapping with unknown keys.
            ValueError: A limit is out of range.
        """
        if value is None or isinstance(value, Override):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"max_attempts", "max_elapsed"}
            if unknown:
                raise TypeError(
                    f"unknown override keys {sorted(map(str, unknown))}: "
                    "use max_attempts and max_elapsed"
                )
            return cls(**dict(value))
        raise TypeError(
            f"expected a policyengine.Override or a dict of its fields, got {type(value).__name__}"
        )


_OVERRIDE: contextvars.ContextVar[Override | None] = contextvars.ContextVar(
    "policyengine_override", default=None
)


@contextlib.contextmanager
def overriding(
    *, max_attempts: int | None = None, max_elapsed: float | None = None
) -> Iterator[Override]:
    """Tighten the policy for every call the driver (or an adapter) makes
    inside the ``with`` block, in this thread or asyncio task.

    >>> with overriding(max_attempts=1):  # doctest: +SKIP
    ...     session.post(url, json=payload)  # tried once, whatever the policy says

    Args:
        max_attempts: Attempts in all per call (1 = never retry).
        max_elapsed: Seconds after which a call gives up rather than wait.

    Returns:
        A context manager giving the ``Override`` in force (nested blocks combine).

    Raises:
        ValueError: A limit is out of range.
    """
    current = Override(max_attempts=max_attempts, max_elapsed=max_elapsed).merge(_OVERRIDE.get())
    token = _OVERRIDE.set(current)
    try:
        yield current
    finally:
        _OVERRIDE.reset(token)


# --- Testing mode ------------------------------------------------------------------


@attrs.define
class TestingMode:
    """The state of testing mode: what the driver would have waited.

    Attributes:
        seed: The seed of the jitter source every engine uses meanwhile.
        max_attempts: A cap on attempts per call, or None.
        waits: Every wait, in seconds, in the order asked for (nothing sleeps).
    """

    __test__ = False  # not a pytest test class

    seed: int
    max_attempts: int | None = None
    waits: list[float] = attrs.field(factory=list)
    _engines: dict[int, tuple[Engine, Engine]] = attrs.field(factory=dict, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def engine_for(self, engine: Engine) -> Engine:
        """``engine`` with a jitter source seeded from ``seed`` (one per engine)."""
        with self._lock:
            found = self._engines.get(id(engine))
            if found is None or found[0] is not engine:
                seeded = Engine(engine.policy, clock=engine.clock, rng=random.Random(self.seed))
                found = (engine, seeded)
                self._engines[id(engine)] = found
            return found[1]

    def record(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)


_TESTING: TestingMode | None = None  # set_testing(): the whole process
_TESTING_LOCK = threading.Lock()
_UNSET = object()
# testing_mode(): this thread or asyncio task (and the tasks it starts) only.
_SCOPED: contextvars.ContextVar[object] = contextvars.ContextVar(
    "policyengine_testing", default=_UNSET
)


def current_testing() -> TestingMode | None:
    """The testing mode in force here: the innermost ``testing_mode()`` block
    of this thread or task, else the one ``set_testing`` switched on."""
    scoped = _SCOPED.get()
    if scoped is _UNSET:
        return _TESTING
    assert scoped is None or isinstance(scoped, TestingMode)
    return scoped


def set_testing(on: bool, *, seed: int = 0, max_attempts: int | None = None) -> TestingMode | None:
    """Switch testing mode on or off, for the whole process (every thread and
    task not inside a ``testing_mode()`` block, which has its own).

    In testing mode no driver or adapter sleeps: each wait is recorded in
    ``TestingMode.waits`` instead and counts as elapsed time for the policy's
    ``max_elapsed``; jitter comes from a ``random.Random(seed)`` per engine, so
    the waits are the same on every run.

    Args:
        on: True to switch it on (afresh), False to switch it off.
        seed: The jitter seed.
        max_attempts: Cap every call at this many attempts (None: the policy's).

    Returns:
        The new ``TestingMode``, or None when switched off.

    Raises:
        ValueError: ``max_attempts`` is not a whole number >= 1.
    """
    global _TESTING
    if max_attempts is not None:
        Override(max_attempts=max_attempts)  # validates
    with _TESTING_LOCK:
        _TESTING = TestingMode(seed, max_attempts) if on else None
        return _TESTING


def is_testing() -> bool:
    """Whether testing mode is in force here (see ``current_testing``)."""
    return current_testing() is not None


@contextlib.contextmanager
def testing_mode(
    seed: int = 0,  # noqa: PT028 - a context manager, not a test
    max_attempts: int | None = None,  # noqa: PT028
) -> Iterator[TestingMode]:
    """Testing mode for the ``with`` block (see ``set_testing``), in this
    thread or asyncio task and the tasks it starts: blocks in other threads
    or tasks, concurrent or not, each have their own mode and ``waits``.
    A thread started in the block runs without it unless it is started in a
    copy of the context (``contextvars.copy_context().run``, as
    ``asyncio.to_thread`` does); ``set_testing(True)`` covers every thread.

    Args:
        seed: The jitter seed.
        max_attempts: Cap every call at this many attempts (None: the policy's).

    Returns:
        A context manager giving the ``TestingMode``, whose ``waits`` the block
        can assert on.

    Raises:
        ValueError: ``max_attempts`` is not a whole number >= 1.
    """
    if max_attempts is not None:
        Override(max_attempts=max_attempts)  # validates
    mode = TestingMode(seed, max_attempts)
    before = _SCOPED.get()
    token = _SCOPED.set(mode)
    try:
        yield mode
    finally:
        try:
            _SCOPED.reset(token)
        except ValueError:  # left in another context (an async fixture's teardown)
            _SCOPED.set(before)


# Users import it into test modules: keep pytest from collecting it as a test.
testing_mode.__test__ = False  # type: ignore[attr-defined]


# --- Values ---------------------------------------------------------------------------


@attrs.frozen
class Attempt:
    """One attempt, as the function being retried sees it.

    Attributes:
        number: 1 for the first attempt, 2 for the first retry...
        model: The model to use: the one the call started with, or the
            fallback the policy switched to.
        elapsed: Seconds since the first attempt started (waits included).
    """

    number: int
    model: str | None
    elapsed: float


@attrs.frozen
class Decision:
    """What came of one attempt, and what the driver did about it.

    Attributes:
        attempt: The attempt.
        action: The engine's action (tightened by any override).
        outcome: What the attempt gave: a response, or the exception raised.
        wait: Seconds waited after it before the next attempt (0 if none).
    """

    attempt: Attempt
    action: Action
    outcome: object = attrs.field(repr=False)
    wait: float = 0.0

    @property
    def exception(self) -> BaseException | None:
        """The exception the attempt raised, or None if it gave a response."""
        return self.outcome if isinstance(self.outcome, BaseException) else None


@attrs.frozen
class Outcome(Generic[T]):
    """How a call ended.

    Attributes:
        action: The last action: ``succeed``, or ``fail`` with the remediation.
        value: The last response, or None if the last attempt raised.
        error: The exception the last attempt raised, or None.
        history: One ``Decision`` per attempt, in order.
    """

    action: Action
    value: T | None
    error: Exception | None
    history: tuple[Decision, ...]

    @property
    def ok(self) -> bool:
        """True when the policy called the last response a success."""
        return self.action.kind is ActionKind.SUCCEED

    @property
    def attempts(self) -> int:
        """How many attempts were made."""
        return len(self.history)

    @property
    def model(self) -> str | None:
        """The model the last attempt used."""
        return self.history[-1].attempt.model if self.history else None

    @property
    def waits(self) -> tuple[float, ...]:
        """The waits between attempts, in seconds."""
        return tuple(d.wait for d in self.history[:-1])

    def unwrap(self) -> T:
        """The successful response.

        Returns:
            ``value`` when the policy called it a success.

        Raises:
            GaveUp: The policy gave up; chained from the last exception.
            Exception: The last exception itself, when it was no network
                failure (a bug in the function being retried is not the
                policy's business).
        """
        if self.ok:
            return self.value  # type: ignore[return-value]
        error = self.error
        if error is not None and self.action.status is None and self.action.transport is None:
            raise error
        raise GaveUp(self.action, error if error is not None else self.value, self.history) from (
            error
        )

    def as_client(self) -> T:
        """What a client adapter hands back: the last response (a success, or
        the error response the policy gave up on), or the last exception
        raised again with a note saying why the policy gave up.

        Raises:
            Exception: The last attempt's own exception, noted.
        """
        if self.error is not None:
            add_note(self.error, explain_note(self.action, self.attempts))
            raise self.error
        assert self.value is not None
        return self.value


class GaveUp(Exception):
    """The policy gave up on a call.

    ``str(error)`` says what happened and what to do, with secrets masked.

    Attributes:
        action: The final action; ``action.remediation`` says what to do,
            ``action.explanation`` why.
        last: The last response, or the last exception (also ``__cause__``).
        history: One ``Decision`` per attempt.
    """

    action: Action
    last: object
    history: tuple[Decision, ...]

    def __init__(self, action: Action, last: object, history: tuple[Decision, ...]) -> None:
        self.action = action
        self.last = last
        self.history = history
        super().__init__(_give_up_message(action, len(history)))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its action's texts only: the last response, the history
        # and the engine's lazy details may hold what cannot be pickled.
        action = self.action
        static = StaticDetails(action.error, action.remediation, action.reasons)
        return (type(self), (attrs.evolve(action, details=static), None, ()))

    @property
    def response(self) -> object:
        """The last response, or None if the last attempt raised."""
        return None if isinstance(self.last, BaseException) else self.last


def _what(action: Action) -> str:
    if action.status is not None:
        what = f"status {action.status}"
        if action.error is not None and action.error.code:
            what += f", code {action.error.code}"
        return what
    if action.transport is not None:
        return action.transport
    return "no response"


def _give_up_message(action: Action, attempts: int) -> str:
    text = (
        f"gave up after {attempts} attempt{'s' * (attempts != 1)}: "
        f"{action.classification} ({_what(action)}, rule {action.rule_id or '(none)'!r})"
    )
    if action.remediation:
        text += f". {action.remediation}"
    return redact(text)


def delay_source(action: Action) -> str:
    """Where ``action.delay`` came from: ``server`` (a wait hint), ``clamp``
    (a hint cut to hint_max), ``backoff``, or ``none`` (no wait)."""
    return action.delay_source


Hook = Callable[[Decision], None]
"""A function called with every ``Decision`` (for metrics); what it raises is
logged and otherwise ignored."""


# --- Request body helpers for the adapters (no client library here) ---------------

_MAX_MODEL_BODY = 16 * 1024 * 1024


def body_model(body: object) -> str | None:
    """The ``"model"`` of a JSON object request body, or None."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return None
    raw = bytes(body)
    if not raw or len(raw) > _MAX_MODEL_BODY or raw.lstrip()[:1] != b"{" or b'"model"' not in raw:
        return None
    try:
        data = json.loads(raw)
    except Exception:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) and model else None


def swap_model(body: bytes, model: str) -> bytes:
    """``body`` (a JSON object with a ``"model"``) with the model replaced."""
    data = json.loads(body)
    data["model"] = model
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def wants_body(status: int, content_type: str | None) -> bool:
    """Whether an adapter reads a response's body to decide: every error, and a
    success only when it is JSON (an error may hide in it); a stream such as
    ``text/event-stream`` is left alone."""
    if status >= 300 or status < 200:
        return True
    kind = (content_type or "").lower()
    return "json" in kind and "stream" not in kind


def add_note(exc: BaseException, text: str) -> None:
    """Attach ``text`` to ``exc`` as a note (shown in tracebacks on 3.11+)."""
    with contextlib.suppress(Exception):
        notes = getattr(exc, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
            setattr(exc, "__notes__", notes)  # noqa: B010 - 3.10 has no add_note
        notes.append(text)


def explain_note(action: Action, attempts: int) -> str:
    """The note adapters attach to the exception they re-raise on a give-up."""
    return f"policyengine: {_give_up_message(action, attempts)}"


# --- The driver -------------------------------------------------------------------


@attrs.define
class _Step(Generic[T]):
    """One attempt's result, as backoff's predicate and wait function see it."""

    decision: Decision
    value: T | None
    error: Exception | None


def _again(step: _Step[Any]) -> bool:
    return step.decision.action.should_retry


@attrs.define
class _Call(Generic[T]):
    """The mutable state of one call (the driver itself is immutable)."""

    driver: Driver
    model: str | None
    method: str | None
    override: Override | None
    view: Callable[[T], object] | None
    testing: TestingMode | None
    started: float
    fallback: bool
    history: list[Decision] = attrs.field(factory=list)
    waited: float = 0.0

    def elapsed(self) -> float:
        if self.testing is not None:
            return self.waited
        return max(0.0, self.driver.clock() - self.started)

    def attempt(self) -> Attempt:
        return Attempt(len(self.history) + 1, self.model, self.elapsed())

    def settle(self, attempt: Attempt, value: T | None, error: Exception | None) -> _Step[T]:
        if error is not None:
            seen: object = error
        else:
            seen = self.view(value) if self.view is not None else value  # type: ignore[arg-type]
        # Decided with the time spent so far, this attempt's own included: a
        # slow attempt brings the policy's max_elapsed nearer.
        action = self.driver.decide(
            seen,
            attrs.evolve(attempt, elapsed=self.elapsed()),
            method=self.method,
            override=self.override,
            testing=self.testing,
            fallback=self.fallback,
        )
        decision = Decision(attempt, action, error if error is not None else value)
        if action.should_retry:
            decision = attrs.evolve(decision, wait=action.delay)
            if action.kind is ActionKind.FALLBACK and action.fallback:
                self.model = action.fallback
        self.history.append(decision)
        self.driver.notify(decision)
        return _Step(decision, value, error)

    def wait(self, step: _Step[T]) -> float:
        """backoff's runtime wait: the engine's delay, or 0 in testing mode."""
        seconds = step.decision.wait
        self.waited += seconds
        if self.testing is not None:
            self.testing.record(seconds)
            return 0.0
        return seconds

    def outcome(self, step: _Step[T]) -> Outcome[T]:
        return Outcome(step.decision.action, step.value, step.error, tuple(self.history))


def _discard_sync(discard: Callable[[Any], object] | None) -> Callable[[Details], None]:
    def handler(details: Details) -> None:
        step = details.get("value")
        if discard is not None and isinstance(step, _Step) and step.value is not None:
            with contextlib.suppress(Exception):
                discard(step.value)

    return handler


def _discard_async(
    discard: Callable[[Any], object] | None,
) -> Callable[[Details], Coroutine[Any, Any, None]]:
    async def handler(details: Details) -> None:
        step = details.get("value")
        if discard is not None and isinstance(step, _Step) and step.value is not None:
            with contextlib.suppress(Exception):
                result = discard(step.value)
                if isinstance(result, Awaitable):
                    await result

    return handler


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
        clock: A monotonic clock in seconds, for ``elapsed``.
    """

    engine: Engine = attrs.field(factory=Engine)
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=_hooks)
    logger: logging.Logger = attrs.field(default=LOGGER, repr=False)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False)

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
                wait (to close it and free the connection).
            fallback: False when ``fn`` cannot send another model (the request
                names none it could change): a ``fallback`` action then gives
                up, rather than resend what the policy wanted switched.

        Returns:
            The ``Outcome``: the final action, the last response or
            exception, and the history. Never raises what ``fn`` raised.
        """
        call = self._start(model, method, override, view, fallback)

        def once() -> _Step[T]:
            attempt = call.attempt()
            try:
                value = fn(attempt)
            except Exception as exc:
                return call.settle(attempt, None, exc)
            return call.settle(attempt, value, None)

        looped = backoff.on_predicate(
            backoff.runtime,
            _again,
            value=call.wait,
            jitter=None,
            logger=None,
            on_backoff=_discard_sync(discard),
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
    ) -> Outcome[T]:
        """The async ``run``: ``fn`` is a coroutine function; waits use
        ``asyncio.sleep``. ``discard`` may return an awaitable.

        Returns:
            The ``Outcome``. Never raises what ``fn`` raised (cancellation
            propagates).
        """
        call = self._start(model, method, override, view, fallback)

        async def once() -> _Step[T]:
            attempt = call.attempt()
            try:
                value = await fn(attempt)
            except Exception as exc:
                return call.settle(attempt, None, exc)
            return call.settle(attempt, value, None)

        looped = backoff.on_predicate(
            backoff.runtime,
            _again,
            value=call.wait,
            jitter=None,
            logger=None,
            on_backoff=_discard_async(discard),
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
        )
        return outcome.unwrap()

    def _start(
        self,
        model: str | None,
        method: str | None,
        override: Override | Mapping[str, Any] | None,
        view: Callable[[T], object] | None,
        fallback: bool,
    ) -> _Call[T]:
        return _Call(
            self,
            model,
            method.upper() if method else None,
            Override.of(override),
            view,
            current_testing(),
            self.clock(),
            fallback,
        )

    # --- one decision (also used by policyengine.urllib3) ----------------------------

    def decide(
        self,
        outcome: object,
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
            outcome: The response (or ``policyengine.Response``) or exception.
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
        mode = testing if testing is not None else current_testing()
        engine = mode.engine_for(self.engine) if mode is not None else self.engine
        action = engine.evaluate(
            outcome,
            attempt.number,
            attempt.elapsed,
            model=attempt.model,
            method=method,
            fallback=fallback,
        )
        limits = (Override.of(override) or Override()).merge(_OVERRIDE.get())
        if mode is not None and mode.max_attempts is not None:
            limits = limits.merge(Override(max_attempts=mode.max_attempts))
        action = _tighten(action, attempt, limits)
        self._log(action, attempt)
        return action

    def wait(self, action: Action, testing: TestingMode | None = None) -> float:
        """Seconds to really sleep before the attempt after ``action``: its
        delay, or 0 (recorded) in testing mode."""
        mode = testing if testing is not None else current_testing()
        seconds = action.delay if action.should_retry else 0.0
        if mode is not None:
            mode.record(seconds)
            return 0.0
        return seconds

    def notify(self, decision: Decision) -> None:
        """Call every hook with ``decision``; a failing hook is logged, not raised."""
        for hook in self.hooks:
            try:
                hook(decision)
            except Exception as exc:
                self.logger.warning(
                    "policyengine hook %r failed: %s", hook, redact(f"{type(exc).__name__}: {exc}")
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
        source = delay_source(action)
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
            f"attempt {attempt.number}: {action.classification} ({_what(action)}, "
            f"rule {action.rule_id or '(none)'!r})"
        )
        if kind is ActionKind.SUCCEED:
            text = f"attempt {attempt.number}: succeeded ({_what(action)})"
        elif kind is ActionKind.RETRY:
            text = f"{head}; retrying in {seconds(action.delay)}s ({source})"
        elif kind is ActionKind.FALLBACK:
            text = (
                f"{head}; falling back to {action.fallback!r} in "
                f"{seconds(action.delay)}s ({source})"
            )
        else:
            text = _give_up_message(action, attempt.number)
            last = action.reasons[-1] if action.reasons else ""
            if last:
                text += f" [{last}]"
        self.logger.log(level, "%s", redact(text), extra=fields)


def _tighten(action: Action, attempt: Attempt, limits: Override) -> Action:
    """``action`` turned into a give-up when a per-call limit is reached."""
    if not action.should_retry:
        return action
    n = attempt.number
    if limits.max_attempts is not None and n >= limits.max_attempts:
        why = (
            f"fail: gave up after {n} attempt{'s' * (n != 1)} "
            f"(per-call max_attempts = {limits.max_attempts})"
        )
    elif limits.max_elapsed is not None and attempt.elapsed + action.delay > limits.max_elapsed:
        why = (
            f"fail: waiting {seconds(action.delay)}s more at "
            f"{seconds(attempt.elapsed)}s elapsed would pass the per-call "
            f"max_elapsed = {seconds(limits.max_elapsed)}s"
        )
    else:
        return action
    return give_up(action, why)


def give_up(action: Action, why: str) -> Action:
    """``action`` turned into a give-up (no wait), ``why`` added to its reasons."""
    return attrs.evolve(
        action,
        kind=ActionKind.FAIL,
        delay=0.0,
        fallback=None,
        details=_Tightened(action.details, why),
    )


@attrs.frozen
class _Tightened:
    """The details of an action an override turned into a give-up: the
    engine's, one reason more (still rendered only when read)."""

    base: ActionDetails
    why: str

    @property
    def error(self) -> ParsedError | None:
        return self.base.error

    @property
    def remediation(self) -> str:
        return self.base.remediation

    @property
    def reasons(self) -> tuple[str, ...]:
        return (*self.base.reasons, self.why)

    @property
    def delay_source(self) -> str:
        return "none"  # a give-up waits for nothing
