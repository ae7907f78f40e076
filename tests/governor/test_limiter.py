"""The limiter, as pure functions, against simulated servers in virtual time.

The property: a limiter fed truthful rate-limit headers never makes a server
reject a request (after the first answer, which the governor's first-contact
gate sends alone), whatever the server's kind (a token bucket refilled
continuously, a fixed window), its size, the number of callers and the
latency of the answers; and it still uses most of what the server allows.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from policyengine._governor._limiter import NOT_RESERVED, LimiterState, observe, reserve
from policyengine._governor._ratelimit import Allowance, Reading


@attrs.define
class Bucket:
    """A token bucket of ``burst`` refilled at ``rate`` per second."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = 0.0

    def take(self, now: float) -> tuple[bool, Reading]:
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        ok = self.tokens >= 1.0
        if ok:
            self.tokens -= 1.0
        left = math.floor(self.tokens)
        full_in = (self.burst - self.tokens) / self.rate
        return ok, Reading(Allowance(self.burst, left, full_in, None), None, "sim")


@attrs.define
class Window:
    """``limit`` requests per fixed window of ``length`` seconds."""

    limit: float
    length: float
    used: int = 0
    start: float = 0.0

    def take(self, now: float) -> tuple[bool, Reading]:
        if now >= self.start + self.length:
            self.start = now - (now - self.start) % self.length
            self.used = 0
        ok = self.used < self.limit
        if ok:
            self.used += 1
        left = max(0.0, self.limit - self.used)
        return ok, Reading(
            Allowance(self.limit, left, self.start + self.length - now, None), None, "sim"
        )


def simulate(
    server: Bucket | Window, callers: int, calls: int, latency: float, seed: int
) -> tuple[int, int, float]:
    """Run ``callers`` x ``calls`` through one limiter; (rejected, accepted, end time)."""
    rng = random.Random(seed)
    state = LimiterState()
    events: list[tuple[float, int, int]] = []  # (time, caller, calls left)
    # The first-contact gate: one request first, the rest after its answer.
    slot, seq = reserve(state, 0.0, 0.0)
    assert seq != NOT_RESERVED
    ok, reading = server.take(slot)
    observe(state, slot + latency, seq, reading, not ok, None)
    rejected, accepted = (0 if ok else 1), (1 if ok else 0)
    for caller in range(callers):
        heapq.heappush(events, (slot + latency, caller, calls - (1 if caller == 0 else 0)))
    pending: list[tuple[float, int, int, bool, Reading]] = []  # answers in flight
    end = 0.0
    while events or pending:
        if pending and (not events or pending[0][0] <= events[0][0]):
            at, seq, _, ok, reading = heapq.heappop(pending)
            observe(state, at, seq, reading, not ok, None)
            continue
        now, caller, left = heapq.heappop(events)
        if left <= 0:
            continue
        slot, seq = reserve(state, now, rng.random())
        if seq == NOT_RESERVED:  # spent: ask again then
            heapq.heappush(events, (slot, caller, left))
            continue
        ok, reading = server.take(slot)
        rejected += not ok
        accepted += ok
        answer = slot + latency * rng.random()
        heapq.heappush(pending, (answer, seq, caller, ok, reading))
        # The caller's next call starts once this one is answered (and, on a
        # rejection, it is retried: one more call to make).
        heapq.heappush(events, (answer + 1e-9, caller, left - (1 if ok else 0)))
        end = max(end, answer)
    return rejected, accepted, end


servers = st.one_of(
    st.builds(Bucket, rate=st.floats(1.0, 200.0), burst=st.integers(1, 100).map(float)),
    st.builds(Window, limit=st.integers(1, 200).map(float), length=st.floats(0.2, 10.0)),
)


@settings(max_examples=150, deadline=None)
@given(
    server=servers,
    callers=st.integers(1, 40),
    calls=st.integers(1, 8),
    latency=st.sampled_from([0.0, 0.005, 0.05, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_truthful_headers_mean_no_rejection(
    server: Bucket | Window, callers: int, calls: int, latency: float, seed: int
) -> None:
    rejected, accepted, _ = simulate(server, callers, calls, latency, seed)
    assert rejected == 0
    assert accepted == callers * calls


def test_a_token_bucket_is_used_to_the_full() -> None:
    # 20 requests/s, burst 20, 20 callers x 20 calls: 400 requests need
    # (400 - 20) / 20 = 19 s at the server's pace; the limiter takes little more.
    _, accepted, end = simulate(Bucket(20.0, 20.0), 20, 20, 0.005, 1)
    assert accepted == 400
    assert end < 19.0 * 1.1


def test_a_fixed_window_is_used_to_the_full() -> None:
    # 50 per 5 s window: 200 requests need three whole windows after the first.
    _, accepted, end = simulate(Window(50.0, 5.0), 10, 20, 0.005, 2)
    assert accepted == 200
    assert end < 20.0


def test_a_429_without_headers_lowers_the_rate() -> None:
    state = LimiterState()
    for i in range(50):  # 50 sends within half a second: about 100/s
        reserve(state, i * 0.01, 0.0)
    observe(state, 0.5, 49, None, True, None)
    slots = [reserve(state, 0.5, 0.0).at for _ in range(10)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) > 0.0  # paced now, not a burst
    assert 1.0 / min(gaps) < 0.7 * 100 * 1.05


def test_a_server_wait_blocks_the_key_and_spreads_the_release() -> None:
    state = LimiterState()
    first = reserve(state, 0.0, 0.0)
    observe(state, 0.0, first.seq, None, True, 2.0)
    released = sorted(reserve(state, 0.1, j / 10).at for j in range(10))
    assert released[0] >= 2.0
    assert released[-1] > released[0]  # not one wave
    assert released[-1] <= 2.0 + 1.0  # within the bounded spread


def test_a_bare_429_with_a_wait_lowers_the_rate_too() -> None:
    # Retry-After alone (no budget headers, as many servers send it) says when
    # to come back, not how fast: every caller held came back in one wave at
    # the end of the wait, and the wave was turned away again, each second.
    # A first wait is trusted; a 429 to a send made after it passed lowers the rate.
    state = LimiterState()
    first = reserve(state, 0.0, 0.0)
    observe(state, 0.0, first.seq, None, True, 1.0)
    assert state.cap == 0.0
    for i in range(50):  # the wave after the wait: about 100/s
        reserve(state, 1.0 + i * 0.01, 0.0)
    observe(state, 1.5, 50, None, True, 1.0)
    slots = [reserve(state, 1.5, j / 10).at for j in range(10)]
    assert min(slots) >= 2.5  # held for the server's wait
    gaps = [b - a for a, b in itertools.pairwise(sorted(slots))]
    assert min(gaps) > 0.0  # and paced after it, not released as one wave
    assert 1.0 / min(gaps) < 0.7 * 100 * 1.05


def test_a_lowered_rate_is_never_above_what_the_server_let_through() -> None:
    # Twenty callers against a server of 5 a second: the wave after a wait
    # goes at some 100/s and five of it are answered. 0.7 of the wave's pace
    # would take several more waves (each turned away) to come down to 5/s;
    # the rate of answers the server let through bounds it at once.
    state = LimiterState()
    first = reserve(state, 0.0, 0.0)
    observe(state, 0.0, first.seq, None, True, 1.0)  # the first wait: trusted
    wave = [reserve(state, 1.0 + i * 0.005, 0.0).seq for i in range(20)]
    for seq in wave[:5]:
        observe(state, 1.1, seq, None, False, None)
    observe(state, 1.1, wave[5], None, True, 1.0)
    assert 0.7 * 5.0 <= state.cap <= 5.0 + 1e-9


def test_a_rate_learned_under_a_wait_counts_the_sends_before_it() -> None:
    # Callers held for the server's wait took their slots after it; the rate
    # learned from the next 429 is the pace of the sends that drew it, not
    # that pace decayed to the slots ahead (which halved it, and the goodput).
    state = LimiterState()
    for i in range(50):  # about 100/s
        reserve(state, i * 0.01, 0.0)
    observe(state, 0.5, 10, None, True, 1.0)  # the first wait: trusted
    sending = state.rate
    for j in range(10):  # callers held until 1.5 take their slots
        reserve(state, 0.5, j / 10)
    observe(state, 0.5, 20, None, True, 1.0)
    assert state.cap >= 0.7 * sending


def test_a_wait_of_hours_after_callers_were_held_is_learned_from_without_overflow() -> None:
    # A daily limit answers 429 with a Retry-After of hours (GitHub Models:
    # 44220 s). A caller arriving meanwhile takes (or is refused) a slot at
    # the wait's end; then the 429 to a send made before it came back. The
    # rate learned from it undid the decay over the whole wait: math.exp of
    # more than ~709 raised OverflowError out of the caller's HTTP call (the
    # Redis script computed inf).
    state = LimiterState()
    first, second = reserve(state, 0.0, 0.0), reserve(state, 0.0, 0.0)
    observe(state, 0.1, first.seq, None, True, 44220.0)
    assert reserve(state, 0.2, 0.0).at >= 44220.1  # held for the server's wait
    observe(state, 0.3, second.seq, None, True, 44220.0)
    assert math.isfinite(state.cap)
    assert state.blocked_until == 44220.3
