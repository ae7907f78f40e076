"""The retry budget: retries of a key's transient failures may add at most a
fraction of its traffic.

A token bucket, as gRPC's retry throttling and botocore's retry quota: every
first attempt saves ``ratio`` of a retry, up to ``burst``; a retry spends one.
With the defaults (0.2, 10), a thousand failing calls retry at most 210
times, not three thousand. A retry that will wait for an open circuit's probe
spends nothing (the breaker already keeps it from the failing upstream).

Pure functions of a ``BudgetState``.
"""

from __future__ import annotations

import attrs

from .._model import RetryBudget

__all__ = ["BudgetState", "deposit", "withdraw"]


@attrs.define(slots=True)
class BudgetState:
    tokens: float = -1.0
    """Retries saved up; below 0 until first used (then ``burst``)."""


def _tokens(s: BudgetState, settings: RetryBudget) -> float:
    if s.tokens < 0.0:
        s.tokens = settings.burst
    return s.tokens


def deposit(s: BudgetState, settings: RetryBudget) -> None:
    """A first attempt: save ``ratio`` of a retry."""
    s.tokens = min(settings.burst, _tokens(s, settings) + settings.ratio)


def withdraw(s: BudgetState, settings: RetryBudget) -> bool:
    """A retry: spend one, if there is one."""
    if not settings.enabled:
        return True
    if _tokens(s, settings) >= 1.0:
        s.tokens -= 1.0
        return True
    return False
