"""Redis: the governor's state shared by every process pointed at one Redis.

    import policyengine as pe
    from policyengine.redis import RedisStore

    governor = pe.Governor(pe.load_policy(), store=RedisStore(url="redis://127.0.0.1:6379/0"))

or, with no code change, ``POLICYENGINE_REDIS_URL=redis://...`` (or
``[governor] redis_url`` in the policy): every driver's governor then shares
its limiter, retry budget, circuit and sticky failures through that Redis.

Each step (admit a send, settle its answer) is one Lua script on one key, run
atomically with the server's clock, so processes agree on time and no
read-modify-write can race. A key's hash is named
``policyengine:{<digest>}``: the braces make it its own hash tag (Redis
Cluster), the digest is a SHA-256 of the traffic key (never the API key, which
the traffic key already holds only as a fingerprint), and every write renews
its TTL (``IDLE_TTL``). The same script runs on Valkey.

**Fail open.** A Redis that is down, slow (``timeout``, default 50 ms) or
answers garbage never fails or hangs a call: the step runs on an in-process
store instead, the fallback is logged once on the ``policyengine.governor``
logger, and Redis is tried again ``RETRY_AFTER`` seconds later (logged once
more when it is back).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from importlib import resources
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import redis
import redis.asyncio

from .._model import Governor as Settings
from .._redact import redact
from ._breaker import Transition
from ._keys import TrafficKey
from ._ratelimit import Reading
from ._remembered import Remembered
from ._signals import Signal
from ._steps import AdmitStep, SettleReport, SettleStep, Verdict
from ._store import IDLE_TTL, MemoryStore

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_BATCH",
    "MAX_PENDING",
    "POLL_INTERVAL",
    "RETRY_AFTER",
    "RedisStore",
    "shown_url",
]

LOGGER = logging.getLogger("policyengine.governor")

#: Seconds a Redis command may take before the step runs in-process instead.
DEFAULT_TIMEOUT = 0.05
#: After a failure, Redis is tried again this many seconds later.
RETRY_AFTER = 1.0
#: A caller held for another process's probe asks again this often (seconds):
#: a probe elsewhere cannot wake it.
POLL_INTERVAL = 0.05

_SCRIPT = resources.files(__package__).joinpath("_redis.lua").read_text("utf-8")
_INF = 1e300


def shown_url(url: str) -> str:
    """``url`` fit to log: its password masked."""
    try:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            url = parts._replace(netloc=netloc).geturl()
    except ValueError:
        return "(a Redis URL)"
    return redact(url)


def _opt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _reading_args(reading: Reading | None) -> list[str]:
    req = reading.requests if reading is not None else None
    tok = reading.tokens if reading is not None else None
    return [
        _opt(req.limit) if req else "",
        _opt(req.remaining) if req else "",
        _opt(req.reset_after) if req else "",
        _opt(req.window) if req else "",
        _opt(tok.remaining) if tok else "",
        _opt(tok.reset_after) if tok else "",
    ]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _number(text: str) -> float:
    """A number of the script's: its stand-in for infinity read back as one."""
    value = float(text)
    if math.isnan(value):
        raise ValueError("not a number")
    return math.copysign(math.inf, value) if abs(value) >= _INF / 2 else value


def _opt_int(value: int | None) -> str:
    return "" if value is None else str(value)


def _ours(seq: int) -> int:
    """A send number Redis gave, marked apart from the fallback's (below -1)."""
    return -2 - seq if seq >= 0 else seq


def _theirs(seq: int | None, redis_side: bool) -> int | None:
    """The send number for the store about to settle: Redis's own for Redis,
    the fallback's own for the fallback, and None (the latest) for a send the
    other one numbered, whose number means nothing here."""
    if seq is None or seq == -1:
        return seq
    marked = seq <= -2
    if marked == redis_side:
        return -2 - seq if marked else seq
    return None


def _admit_step(reply: Any) -> AdmitStep:
    """The script's answer to ``admit`` as a step (ValueError for garbage)."""
    if not isinstance(reply, list) or len(reply) != 9:
        raise ValueError(f"unexpected reply {reply!r:.80}")
    verdict, wait, seq, probe, for_probe, why, blob, failures, left = (_text(v) for v in reply)
    return AdmitStep(
        Verdict(verdict),
        max(0.0, _number(wait)),
        _ours(int(float(seq))),
        probe == "1",
        for_probe == "1",
        why,
        Remembered.from_json(blob),
        int(float(failures)),
        _number(left),
    )


def _settle_step(reply: Any) -> SettleStep:
    if not isinstance(reply, list) or len(reply) != 3:
        raise ValueError(f"unexpected reply {reply!r:.80}")
    transition, over, open_for = (_text(v) for v in reply)
    return SettleStep(
        Transition(transition) if transition else None, over == "1", _number(open_for)
    )


class _Pending(NamedTuple):
    """A settlement waiting for the flusher."""

    key: TrafficKey
    now: float
    settings: Settings
    report: SettleReport
    args: list[str]


_NOTHING_YET = SettleStep(None, False, 0.0)
#: Settlements sent in one pipeline at most.
MAX_BATCH = 256
#: Settlements waiting at most; past it the oldest are settled in-process only.
MAX_PENDING = 10_000


class _Flusher:
    """A daemon thread that sends queued settlements, batched."""

    def __init__(self, send: Callable[[list[_Pending]], None]) -> None:
        self._send = send
        self._queue: collections.deque[_Pending] = collections.deque(maxlen=MAX_PENDING)
        self._cond = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None

    def put(self, pending: _Pending) -> None:
        with self._cond:
            self._queue.append(pending)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="policyengine-redis-settle", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait()
                self._busy = True
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
            with contextlib.suppress(Exception):  # never let the thread die
                self._send(batch)

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class RedisStore:
    """Key states in Redis, shared by every process that uses the same one.

    Args:
        url: A ``redis://`` (or ``rediss://``, ``unix://``) URL; ignored when
            ``client`` is given.
        client: A ``redis.Redis`` to use instead (its own timeouts apply).
        timeout: Seconds a command may take before the step runs in-process.
        prefix: The start of every key's name.
        idle_ttl: A key untouched this long (seconds) expires.
        logger: Where the fallback (and the recovery) is logged, once each.
        clock: The time every process uses (the same clock in all of them,
            e.g. ``time.time``); default Redis's own ``TIME``.
        background: Send the settlement of an answer that is not retried from
            a background thread (a call costs one round trip); False: wait for
            every settlement.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: redis.Redis | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        prefix: str = "policyengine",
        idle_ttl: float = IDLE_TTL,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] | None = None,
        background: bool = True,
    ) -> None:
        self._url = url
        self._clock = clock
        self._background = background
        self._timeout = timeout
        self._client = client or redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._sha = hashlib.sha1(_SCRIPT.encode("utf-8")).hexdigest()
        self._loaded = False  # whether this server has the script (for pipelines)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._prefix = prefix
        self._ttl_ms = str(max(1, int(idle_ttl * 1000)))
        self._fallback = MemoryStore(idle_ttl=idle_ttl)
        self._logger = logger if logger is not None else LOGGER
        self._lock = threading.Lock()
        self._down_until = 0.0  # monotonic time before which Redis is not asked
        self._down = False  # between a failure and the next success
        self._flusher = _Flusher(self._settle_batch)

    def __repr__(self) -> str:
        return f"RedisStore({shown_url(self._url)!r}, up={self.up})"

    def __len__(self) -> int:
        return len(self._fallback)

    @property
    def up(self) -> bool:
        """Whether Redis is being asked (not falling back)."""
        return time.monotonic() >= self._down_until

    # --- names and arguments ------------------------------------------------------

    def name(self, key: TrafficKey) -> str:
        """The Redis key of a traffic key: ``prefix:{digest}``."""
        digest = hashlib.sha256(repr(tuple(key)).encode("utf-8", "replace")).hexdigest()[:32]
        return f"{self._prefix}:{{{digest}}}"

    def _run(self, key: TrafficKey, args: list[str], client: Any = None) -> Any:
        """The script on ``key``: by its SHA, loaded on the first NOSCRIPT."""
        target = client if client is not None else self._client
        try:
            return target.evalsha(self._sha, 1, self.name(key), *args)
        except redis.exceptions.NoScriptError:
            self._client.script_load(_SCRIPT)
            return target.evalsha(self._sha, 1, self.name(key), *args)

    def _now(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    def _admit_args(
        self, settings: Settings, retry: bool, deadline_in: float, jitter: float
    ) -> list[str]:
        return [
            "admit",
            self._ttl_ms,
            self._now(),
            "1" if retry else "0",
            repr(min(deadline_in, _INF)),
            repr(jitter),
            repr(settings.first_contact),
            "1" if settings.breaker.enabled else "0",
            "1" if settings.limiter.enabled else "0",
            repr(settings.retry_budget.ratio),
            repr(settings.retry_budget.burst),
        ]

    def _settle_args(self, settings: Settings, r: SettleReport) -> list[str]:
        keep = r.sticky_for is not None or r.failed
        return [
            "settle",
            self._ttl_ms,
            self._now(),
            _opt_int(_theirs(r.seq, redis_side=True)),
            "1" if r.probe else "0",
            "1" if r.failed else "0",
            "1" if r.rejected else "0",
            _opt(r.server_wait),
            *_reading_args(r.reading),
            _opt(r.sticky_for),
            "1" if r.retrying else "0",
            r.failure().to_json() if keep else "",
            "1" if settings.limiter.enabled else "0",
            "1" if settings.breaker.enabled else "0",
            str(settings.breaker.failures),
            repr(settings.breaker.open_for),
            repr(settings.breaker.max_open_for),
            "1" if settings.retry_budget.enabled else "0",
            repr(settings.retry_budget.burst),
        ]

    # --- failing open ----------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        self._loaded = False  # a restarted server has forgotten the script
        with self._lock:
            first = not self._down  # said once an outage, not at each retry that fails
            self._down = True
            self._down_until = time.monotonic() + RETRY_AFTER
        if first:
            self._logger.warning(
                "governor: Redis at %s failed (%s); deciding in this process until it is back",
                shown_url(self._url),
                redact(f"{type(exc).__name__}: {exc}"),
                extra={"transition": "store_down"},
            )

    def _recovered(self) -> None:
        if not self._down:
            return
        with self._lock:
            was_down, self._down = self._down, False
            self._down_until = 0.0
        if was_down:
            self._logger.info(
                "governor: Redis at %s is back",
                shown_url(self._url),
                extra={"transition": "store_up"},
            )

    @staticmethod
    def _polled(step: AdmitStep) -> AdmitStep:
        # A probe may answer in another process: ask again soon rather than
        # sleep the whole hold.
        if step.for_probe:
            return step._replace(wait=min(step.wait, POLL_INTERVAL))
        return step

    # --- the steps ------------------------------------------------------------------------

    def admit(
        self,
        key: TrafficKey,
        now: float,
        settings: Settings,
        retry: bool,
        deadline_in: float,
        jitter: float,
    ) -> tuple[AdmitStep, Signal | None]:
        if self.up:
            try:
                reply = self._run(key, self._admit_args(settings, retry, deadline_in, jitter))
                step = _admit_step(reply)
            except Exception as exc:
                self._failed(exc)
            else:
                self._recovered()
                return self._polled(step), None
        return self._fallback.admit(key, now, settings, retry, deadline_in, jitter)

    async def aadmit(
        self,
        key: TrafficKey,
        now: float,
        settings: Settings,
        retry: bool,
        deadline_in: float,
        jitter: float,
    ) -> tuple[AdmitStep, Signal | None]:
        if self.up:
            try:
                args = self._admit_args(settings, retry, deadline_in, jitter)
                reply = await asyncio.wait_for(self._arun(key, args), self._timeout)
                step = _admit_step(reply)
            except Exception as exc:
                self._failed(exc)
            else:
                self._recovered()
                return self._polled(step), None
        return self._fallback.admit(key, now, settings, retry, deadline_in, jitter)

    async def _arun(self, key: TrafficKey, args: list[str]) -> Any:
        """``_run`` on this event loop's own client (one per loop)."""
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            kwargs = dict(self._client.connection_pool.connection_kwargs)
            client = self._async[loop] = redis.asyncio.Redis(**kwargs)
        try:
            return await client.evalsha(self._sha, 1, self.name(key), *args)
        except redis.exceptions.NoScriptError:
            await client.script_load(_SCRIPT)
            return await client.evalsha(self._sha, 1, self.name(key), *args)

    def settle(
        self, key: TrafficKey, now: float, settings: Settings, report: SettleReport
    ) -> SettleStep:
        """Settle an answer. A retry waits for the answer (the budget decides
        it); anything else is sent by a background thread, so that a call
        costs one round trip (its admission), and its step is told to
        ``report.later``."""
        if not self.up:
            return self._settle_here(key, now, settings, report)
        args = self._settle_args(settings, report)
        if self._background and not report.retrying:
            self._flusher.put(_Pending(key, now, settings, report, args))
            return _NOTHING_YET
        try:
            step = _settle_step(self._run(key, args))
        except Exception as exc:
            self._failed(exc)
            return self._settle_here(key, now, settings, report)
        self._recovered()
        return step

    def _settle_here(
        self, key: TrafficKey, now: float, settings: Settings, report: SettleReport
    ) -> SettleStep:
        """Settle on the in-process fallback (a send Redis numbered counts as
        the latest there: its number means nothing to the fallback's limiter)."""
        report = report._replace(seq=_theirs(report.seq, redis_side=False))
        return self._fallback.settle(key, now, settings, report)

    def _settle_batch(self, batch: list[_Pending]) -> None:
        """Send queued settlements in one pipeline (the flusher's thread)."""
        if not self.up:
            for p in batch:
                self._settle_here(p.key, p.now, p.settings, p.report)
            return
        try:
            if not self._loaded:  # a pipeline cannot load it on NOSCRIPT: before, then
                self._client.script_load(_SCRIPT)
                self._loaded = True
            pipe = self._client.pipeline(transaction=False)
            for p in batch:
                pipe.evalsha(self._sha, 1, self.name(p.key), *p.args)
            replies = pipe.execute(raise_on_error=False)
            steps = [_settle_step(r) for r in replies]
        except Exception as exc:
            self._failed(exc)
            for p in batch:
                self._settle_here(p.key, p.now, p.settings, p.report)
            return
        self._recovered()
        for p, step in zip(batch, steps, strict=True):
            if p.report.later is not None:
                with contextlib.suppress(Exception):
                    p.report.later(step)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued settlement is sent; whether it was in time."""
        return self._flusher.drain(timeout)

    def cancel(self, key: TrafficKey, now: float, probe: bool) -> None:
        if not probe:
            return
        if self.up:
            try:
                self._run(key, ["cancel", self._ttl_ms, self._now(), "1"])
            except Exception as exc:
                self._failed(exc)
            else:
                return
        self._fallback.cancel(key, now, probe)
