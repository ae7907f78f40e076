"""Testing mode: no driver or adapter sleeps; waits are recorded, jitter is
seeded, attempts may be capped. For a ``with`` block of one thread or task
(``testing_mode()``) or the whole process (``set_testing()``)."""

from __future__ import annotations

import contextlib
import contextvars
import random
import threading
import weakref
from collections.abc import Iterator

import attrs

from ._engine import Engine
from ._overrides import Override

__all__ = ["TestingMode", "current_testing", "is_testing", "set_testing", "testing_mode"]


_TESTING: TestingMode | None = None  # set_testing(): the whole process
_TESTING_LOCK = threading.Lock()
_UNSET = object()


@attrs.define
class TestingMode:
    """The state of testing mode: what the driver would have waited.

    Attributes:
        seed: The seed of the jitter source every engine uses meanwhile.
        max_attempts: A cap on attempts per call, or None.
        waits: Every wait the policy asked for between attempts, in seconds,
            in order (nothing sleeps).
        held: Every wait the governor imposed before a send (pacing to a
            rate limit, an open circuit), in order (nothing sleeps either).
        skipped: The seconds not slept so far, waits and holds together: the
            governor's clock runs this far ahead of the real one meanwhile.
    """

    __test__ = False  # not a pytest test class

    seed: int
    max_attempts: int | None = None
    waits: list[float] = attrs.field(factory=list)
    held: list[float] = attrs.field(factory=list)
    skipped: float = 0.0
    # The seeded twin of each engine seen, kept only while that engine lives.
    _engines: weakref.WeakKeyDictionary[Engine, Engine] = attrs.field(
        factory=weakref.WeakKeyDictionary, repr=False
    )
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)
    # What set_testing() replaced (for use as a context manager); _UNSET otherwise.
    _restores: object = attrs.field(default=None, repr=False, kw_only=True)

    def engine_for(self, engine: Engine) -> Engine:
        """``engine`` with a jitter source seeded from ``seed`` (one per engine)."""
        with self._lock:
            seeded = self._engines.get(engine)
            if seeded is None:
                seeded = Engine(engine.policy, clock=engine.clock, rng=random.Random(self.seed))
                self._engines[engine] = seeded
            return seeded

    def record(self, seconds: float) -> None:
        """A wait the policy asked for, not slept."""
        with self._lock:
            self.waits.append(seconds)
            self.skipped += seconds

    def record_hold(self, seconds: float) -> None:
        """A wait the governor imposed, not slept."""
        with self._lock:
            self.held.append(seconds)
            self.skipped += seconds

    def __enter__(self) -> TestingMode:
        if self._restores is _UNSET:
            raise TypeError(
                "only the mode set_testing(True) returns is a context manager; "
                "use testing_mode() for a block of one thread or task"
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Put back the process-wide mode that ``set_testing`` replaced."""
        global _TESTING
        with _TESTING_LOCK:
            _TESTING = self._restores  # type: ignore[assignment]


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
        The new ``TestingMode``, or None when switched off. The mode is also
        a context manager that puts back what was in force before when the
        block ends: ``with set_testing(True) as mode: ...``.

    Raises:
        ValueError: ``max_attempts`` is not a whole number >= 1.
    """
    global _TESTING
    if max_attempts is not None:
        Override(max_attempts=max_attempts)  # validates
    with _TESTING_LOCK:
        _TESTING = TestingMode(seed, max_attempts, restores=_TESTING) if on else None
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
    mode = TestingMode(seed, max_attempts, restores=_UNSET)
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
