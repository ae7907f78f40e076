"""The limiter: pace a key's sends by the budget its server reports.

A server that sends rate-limit headers says how many requests are left
(``remaining``) until when (``reset``). The limiter spreads what is left evenly
over the time left: each send takes the next slot, ``(reset - t) / remaining``
after the one before. That one rule fits both kinds of server:

- a fixed window (``remaining`` of ``limit`` until the window ends): the
  allowance is used evenly, never collected as 429s at the window's end;
- a token bucket refilled continuously (``reset`` = the time until full): the
  pace settles where sends match the refill, with the bucket half full.

Readings are ordered by send: a response tells the server's count as of its
own request, so the sends made after it are subtracted, and a reading older
than one already applied is ignored. A spent budget waits for its reset; a
server's explicit wait (``Retry-After`` on a 429, an empty token budget)
blocks the key until then. A 429 with no rate-limit budget lowers a learned
send rate instead (multiplicative decrease, regrowing over time). With a
server's wait too: a first wait is trusted, but a 429 after it says the
callers held came back in one wave, faster than the server goes, and the
waves would repeat for as long as there are calls; the rate is then lowered
once per wave (not for each 429 of sends taken at the old pace). A lowered
rate is never above the rate of answers the server let through lately.

Everything here is a pure function of a ``LimiterState`` and the time passed
in, so a store elsewhere (Redis) can run the same steps.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import attrs

from ._ratelimit import Reading

__all__ = [
    "RATE_DECREASE",
    "RATE_GROWTH",
    "SPREAD_FRACTION",
    "SPREAD_MAX",
    "SPREAD_MIN",
    "NOT_RESERVED",
    "LimiterState",
    "Slot",
    "observe",
    "release",
    "reserve",
]

#: On a 429 without rate-limit headers, the learned rate drops to this
#: fraction of the recent send rate (AWS adaptive retry uses 0.7 too).
RATE_DECREASE = 0.7
#: The learned rate regrows by this factor per second without a 429.
RATE_GROWTH = 1.1
#: The learned rate is never set below this (requests per second).
MIN_RATE = 0.5
#: A learned rate this far above the recent send rate limits nothing: dropped.
RATE_HEADROOM = 8.0
#: A send that waits for a reset goes this much after it (seconds): servers
#: round the reset they state, and a send on the very edge may find the budget
#: a hair short.
RESET_MARGIN = 0.005
#: Resets counted at once when a key was idle for long (the allowance is
#: whole again after one anyway; this bounds the arithmetic).
MAX_RENEWALS = 64
#: Time constant of the recent send rate (seconds).
RATE_WINDOW = 1.0
#: The most of a server's wait whose decay of the send rate is undone when
#: a rate is learned under it (seconds; ``math.exp`` overflows past ~709).
RATE_UNDO_MAX = 60.0
#: Callers released together (a reset, a server's wait) are spread over this
#: fraction of the wait, at least SPREAD_MIN and at most SPREAD_MAX seconds.
SPREAD_FRACTION = 0.1
SPREAD_MIN = 0.05
SPREAD_MAX = 1.0


@attrs.define(slots=True)
class LimiterState:
    """What the limiter knows of one key."""

    remaining: float = math.inf
    """Sends allowed before ``reset_at`` (an estimate: ours subtracted;
    below 0 when more were sent than the server had seen room for)."""
    reset_at: float = 0.0
    """When the allowance is whole again; 0 when no reset is known."""
    limit: float = math.inf
    """The whole allowance."""
    span: float = 0.0
    """How long the whole allowance takes to come back, as learned (the
    window a server states, else its reset scaled to the whole allowance):
    after a reset, the next one is this far."""
    next_slot: float = 0.0
    """The earliest time the next send may go."""
    blocked_until: float = 0.0
    """A server asked for nothing before this."""
    sent: int = 0
    """Sends so far (each send's sequence number)."""
    read_seq: int = -1
    """The send whose reading was applied last."""
    longest: float = 0.0
    """The longest reset a server stated."""
    since: int = 0
    """Sends since that reading (or since the last reset): what a server that
    refills continuously has not given back yet when the reset comes."""
    rate: float = 0.0
    """Recent sends per second (decayed over ``RATE_WINDOW``)."""
    rate_at: float = 0.0
    cap: float = 0.0
    """A learned send rate (per second) after 429s without headers; 0: none."""
    cap_at: float = 0.0
    cap_seq: int = 0
    """The first send reserved after the learned rate was last lowered: the
    429s with a wait of earlier sends (reserved at the old pace) lower it no
    further."""
    ok_rate: float = 0.0
    """Recent answers per second that were no 429 (decayed over
    ``RATE_WINDOW``): the pace the server let through."""
    ok_at: float = 0.0


def spread(wait: float) -> float:
    """How widely callers released after ``wait`` seconds are spread."""
    return min(SPREAD_MAX, max(SPREAD_MIN, SPREAD_FRACTION * wait))


def _cap(s: LimiterState, now: float) -> float:
    if s.cap <= 0.0:
        return 0.0
    grown: float = s.cap * RATE_GROWTH ** min(60.0, max(0.0, now - s.cap_at))
    if grown > RATE_HEADROOM * max(s.rate, MIN_RATE):
        s.cap = 0.0
        return 0.0
    return grown


def _rate_before(s: LimiterState, now: float, wait: float) -> float:
    """The recent send rate as of ``now``, when a server's wait holds the key.
    ``rate`` is kept as of the latest slot, and callers held for a wait take
    slots after it: decayed to then, it counts the sends that drew the 429
    as long past, and a rate learned from it is a fraction of the pace the
    server allowed. Undone for at most the wait (slots further ahead were
    paced, not pushed by it), and for at most ``RATE_UNDO_MAX`` (a wait of
    hours would overflow; undone for a minute, the rate is far above any the
    server allowed already)."""
    undone = min(wait, max(0.0, s.rate_at - now), RATE_UNDO_MAX)
    return s.rate * math.exp(undone / RATE_WINDOW)


def _allowance_after(s: LimiterState, resets: int) -> float:
    """What ``remaining`` is after ``resets`` more resets: the first since a
    reading gives a whole allowance less ours sent since (a token bucket
    refills those only one by one; no slot is promised past a reset, so these
    were all sent before it), each further one a whole allowance more; never
    more than the whole."""
    left = s.remaining
    for n in range(resets):
        left = s.limit - s.since if n == 0 and s.since else min(s.limit, left + s.limit)
    return left


def _catch_up(s: LimiterState, t: float) -> bool:
    """Apply the resets that have come by ``t``; whether any had."""
    if not s.reset_at or t < s.reset_at + RESET_MARGIN:
        return False
    spans = 0.0  # whole spans past the reset (a hair of slack: t often sits on one)
    if s.span > 0.0:
        spans = math.floor(min(MAX_RENEWALS, (t - s.reset_at - RESET_MARGIN) / s.span + 1e-9))
    s.remaining = _allowance_after(s, 1 + int(max(0.0, spans)))
    s.since = 0
    if not (s.span > 0.0 and math.isfinite(s.limit)):
        s.reset_at = 0.0
    elif spans >= MAX_RENEWALS:  # idle for long: a fresh window from now
        s.reset_at = t + s.span
    else:
        s.reset_at += (1.0 + max(0.0, spans)) * s.span
    return True


class Slot(NamedTuple):
    """When a caller may send."""

    at: float
    """The time to send at; or, when not reserved, the time to ask again."""
    seq: int
    """The send's sequence number; ``NOT_RESERVED`` when the budget is spent
    until ``at`` (no slot is promised beyond the current window: what the
    answers in flight say by then decides)."""


#: ``Slot.seq`` of a caller told to come back, not given a slot.
NOT_RESERVED = -1


def reserve(s: LimiterState, now: float, jitter: float) -> Slot:
    """Take the next send slot, or say when to ask again.

    Args:
        s: The key's state (changed).
        now: The current time.
        jitter: A number in [0, 1): where in the spread this caller lands
            when callers are released together.

    Returns:
        A ``Slot`` at a time >= now.
    """
    _catch_up(s, now)  # resets that came while nobody sent
    t = max(now, s.next_slot)
    released = 0.0  # callers released at a reset or a server's wait are spread
    if s.blocked_until >= t:
        released, t = s.blocked_until - now, s.blocked_until
    if s.reset_at and (s.remaining < 1.0 or t >= s.reset_at + RESET_MARGIN):
        # Spent, or the slot would fall after the reset: ask again then (no
        # slot is promised past a reset, which the answers in flight move).
        edge = max(t, s.reset_at + RESET_MARGIN)
        return Slot(edge + jitter * spread(edge - now), NOT_RESERVED)
    if released > 0.0:
        t += jitter * spread(released)
    interval = 0.0
    if s.reset_at > t and s.remaining >= 1.0:
        interval = (s.reset_at - t) / s.remaining
    cap = _cap(s, now)
    if cap > 0.0:
        interval = max(interval, 1.0 / cap)
    if interval > 0.0:  # paced: the next caller goes after this one
        s.next_slot = t + interval
    s.remaining -= 1.0
    s.since += 1
    s.rate = s.rate * math.exp(-max(0.0, t - s.rate_at) / RATE_WINDOW) + 1.0 / RATE_WINDOW
    s.rate_at = max(s.rate_at, t)
    seq = s.sent
    s.sent += 1
    return Slot(t, seq)


def release(s: LimiterState) -> None:
    """Give back a slot that was not used (the call gave up before sending)."""
    s.remaining += 1.0


def observe(
    s: LimiterState,
    now: float,
    seq: int,
    reading: Reading | None,
    rejected: bool,
    server_wait: float | None,
) -> None:
    """Learn from the answer to send ``seq``.

    Args:
        s: The key's state (changed).
        now: The current time.
        seq: The sequence number ``reserve`` gave the send.
        reading: The rate-limit headers of the answer, if any.
        rejected: The answer was a rate limit (a 429).
        server_wait: The wait the server asked for, if any (seconds).
    """
    # A wait asked for before (this one aside), and another 429 to a send
    # made since the rate was last lowered: the pace is too fast.
    told_before = s.blocked_until > 0.0 and seq >= s.cap_seq
    if not rejected:
        s.ok_rate = s.ok_rate * math.exp(-max(0.0, now - s.ok_at) / RATE_WINDOW) + 1.0 / RATE_WINDOW
        s.ok_at = max(s.ok_at, now)
    if server_wait is not None and rejected:
        s.blocked_until = max(s.blocked_until, now + server_wait)
    if reading is not None and seq > s.read_seq:
        s.read_seq = seq
        later = s.sent - seq - 1  # sends the server had not seen when it counted
        s.since = later
        requests = reading.requests
        if requests is not None:
            if requests.limit is not None:
                s.limit = requests.limit
            s.remaining = requests.remaining - later  # below 0: owed
            if requests.window is not None:
                s.span = requests.window
            if requests.reset_after is not None:
                s.reset_at = now + requests.reset_after
                s.longest = max(s.longest, requests.reset_after)
                used = s.limit - requests.remaining
                if requests.window is None and math.isfinite(s.limit):
                    # How long the whole allowance takes to come back: a
                    # fixed window's length is its longest reset; a bucket
                    # refills ``used`` in ``reset_after``, all of it in that
                    # scaled (longer than a window's: conservative).
                    scaled = requests.reset_after * s.limit / used if used >= 1.0 else 0.0
                    s.span = max(s.longest, scaled)
            elif requests.window is not None and s.reset_at <= now:
                s.reset_at = now + requests.window
        tokens = reading.tokens
        if tokens is not None and tokens.remaining < 1.0 and tokens.reset_after is not None:
            s.blocked_until = max(s.blocked_until, now + tokens.reset_after)
    if rejected and (server_wait is None or told_before):
        told = reading.requests if reading is not None else None
        if told is None or told.remaining >= 1.0 or told.reset_after is None:
            # No budget says how fast to go: learn a lower send rate. A wait
            # alone (Retry-After on a bare 429) says when to come back, not at
            # what pace (see the module's docstring).
            sent = s.rate if server_wait is None else _rate_before(s, now, server_wait)
            lowered = RATE_DECREASE * max(sent, _cap(s, now))
            # ...and never faster than the server let answers through lately
            # (callers four times its rate find the pace in one wave, not in
            # the several that 0.7x a wave's burst of sends would take).
            accepted = s.ok_rate * math.exp(-max(0.0, now - s.ok_at) / RATE_WINDOW)
            if accepted > 0.0:
                lowered = min(lowered, accepted)
            s.cap = max(MIN_RATE, lowered)
            s.cap_at = now
            s.cap_seq = s.sent
