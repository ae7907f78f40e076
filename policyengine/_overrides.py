"""Overrides: tighter limits for one call or one block of code, and the
give-up they turn a retry into.

An override only ever makes the policy stricter: a call stops at the first of
the rule's limit and the override's. ``overriding()`` holds for the current
thread or asyncio task (a contextvar), adapters included.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from ._model import Action, ActionKind, AmendedDetails
from ._results import Attempt
from ._text import plural, seconds

__all__ = ["Override", "current_override", "give_up", "overriding", "tighten"]


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


def current_override() -> Override | None:
    """The ``overriding()`` block in force in this thread or task, or None."""
    return _OVERRIDE.get()


def tighten(action: Action, attempt: Attempt, limits: Override) -> Action:
    """``action`` turned into a give-up when a per-call limit is reached."""
    if not action.should_retry:
        return action
    n = attempt.number
    if limits.max_attempts is not None and n >= limits.max_attempts:
        limit = limits.max_attempts
        why = f"fail: gave up after {plural(n, 'attempt')} (per-call max_attempts = {limit})"
    elif limits.max_elapsed is not None and attempt.elapsed + action.delay > limits.max_elapsed:
        why = (
            f"fail: waiting {seconds(action.delay)}s more at "
            f"{seconds(attempt.elapsed)}s elapsed would pass the per-call "
            f"max_elapsed = {seconds(limits.max_elapsed)}s"
        )
    else:
        return action
    return give_up(action, why)


def give_up(action: Action, why: str, note: str = "") -> Action:
    """``action`` turned into a give-up (no wait), ``why`` added to its
    reasons and ``note`` to its remediation."""
    return attrs.evolve(
        action,
        kind=ActionKind.FAIL,
        delay=0.0,
        fallback=None,
        details=AmendedDetails(action.details, after=(why,), note=note, source="none"),
    )
