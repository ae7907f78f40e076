"""Goodput under a rate limit, a brownout, an outage and an exhausted quota.

What callers sharing one client get done, and what it costs the server:
policyengine next to the retries of openai, urllib3, tenacity and stamina.

    python benchmarks/goodput.py                  # every cell, default sizes (~15 minutes)
    python benchmarks/goodput.py --quick          # a smoke run (well under a minute)
    python benchmarks/goodput.py --rate 50 --callers 40 --calls 5 --json goodput.json
    python benchmarks/goodput.py --processes 4 --callers 5 \
        --contenders policyengine,policyengine-redis --redis-fault kill

A cell is one contender in one scenario. Each cell gets a fresh loopback
server (benchmarks/_goodput_server.py) in this process, and a worker process
(this file, run with ``--worker``) in which C threads make N calls each
through ONE client of the contender. The worker is a process of its own so
that the clients never compete with the server for the GIL, and so that a
cell that outlives ``--cell-timeout`` (a client sleeping for minutes in an
outage) can be cut off by killing it; the cell is then marked ``cut``.

Every call has a deadline (``--call-deadline``): it is each attempt's HTTP
timeout, and the report counts the calls that took longer to give up (or
were still running past it when the cell was cut). The contenders are set up
as their users would set them up; none is told the deadline as a total.

Many processes (``--processes P``): a cell runs P worker processes of C
callers each (caller ids unique across the fleet), all against the cell's one
server, released together once every worker is ready; the figures are the
fleet's. ``policyengine-redis`` is policyengine with its governor's state on
ONE ``redis-server`` that the run starts (a free loopback port, no
persistence) and empties before each cell, so that P processes share one
limiter, budget, circuit and sticky failures where ``policyengine`` has one of
each per process. ``--redis-fault kill`` kills that Redis once a third of the
fleet's calls have ended and starts it again (same port, empty) once two
thirds have; ``--redis-fault slow`` makes it sleep 1 s (``DEBUG SLEEP 1``)
at the start of the cell and every 2 s after. A call must never fail because
of Redis: the report counts the calls whose exception came from the redis
package, the store's fallbacks to in-process state, and the calls that ran
during a fault.

To add a contender, write a function ``Endpoint -> Caller`` and list it in
``CONTENDERS``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import platform
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import IO, Any, NamedTuple

# Run as a script (and so is the worker), so the server module is next door on sys.path.
from _goodput_server import HEADER_DIALECTS, REJECTED, SCENARIOS, GoodputServer, Hit, Scenario

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]
CHAT = {"model": MODEL, "messages": MESSAGES}
API_KEY = "sk-test"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

# --- Contenders --------------------------------------------------------------------------


class Endpoint(NamedTuple):
    """Where and how a contender's client calls."""

    base_url: str  # http://127.0.0.1:PORT/v1
    timeout: float  # seconds, for each attempt: the call's deadline
    pool: int  # connections to keep alive: one per caller
    redis_url: str = ""  # the run's Redis, for contenders that keep state there
    client: str = "httpx"  # the HTTP client of the policyengine contenders (CLIENTS)


class Caller(NamedTuple):
    """One client, shared by every caller thread of a cell."""

    call: Callable[[], bool]  # one chat completion: True if it succeeded (False or raises if not)
    close: Callable[[], None]


class Contender(NamedTuple):
    """A client configuration under test."""

    name: str
    factory: Callable[[Endpoint], Caller]  # called once per cell, in the worker process
    about: str
    redis: bool = False  # needs the run's Redis (Endpoint.redis_url)


#: Where a contender's store says it falls back to in-process state and comes
#: back (records with ``transition`` ``store_down`` / ``store_up``): the worker
#: reports each one as an event.
STORE_LOGGER = logging.getLogger("goodput.store")


class RetryableStatus(Exception):
    """A 429 or 5xx reply, raised so that exception-based retriers retry it."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _httpx_limits(endpoint: Endpoint) -> Any:
    import httpx

    return httpx.Limits(max_connections=100, max_keepalive_connections=max(20, endpoint.pool))


def _post_or_raise(client: Any, url: str) -> bool:
    """POST the chat request with a plain httpx client; a 429 or 5xx raises."""
    response = client.post(url, json=CHAT)
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableStatus(response.status_code)
    if response.is_success:
        response.json()
        return True
    return False


def _plain_httpx(endpoint: Endpoint) -> Any:
    import httpx

    return httpx.Client(limits=_httpx_limits(endpoint), timeout=endpoint.timeout, headers=AUTH)


#: The clients a policyengine contender can call through (``--client``), each
#: with the policy's adapter, and what it is.
CLIENTS = {
    "httpx": "httpx.Client(transport=PolicyTransport(...)), caller threads",
    "requests": "requests.Session with PolicyAdapter(...) mounted, caller threads",
    "aiohttp": "aiohttp.ClientSession(middlewares=(PolicyMiddleware(...),)), callers as "
    "tasks of one event loop",
    "anthropic": "policyengine.anthropic.client(...), messages.create on POST /v1/messages, "
    "caller threads",
}


def _on_loop() -> tuple[Any, Callable[[], None]]:
    """An event loop running in a thread of its own, and how to stop it: the
    caller threads hand it their calls, so that they run as its tasks."""
    import asyncio

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    return loop, stop


def _policyengine_caller(endpoint: Endpoint, engine: Any, governor: Any) -> Caller:
    """One client of ``endpoint.client`` with the policy's adapter; each call
    bounded by the cell's deadline, as a user bounds a call
    (``overriding(max_elapsed=...)``)."""
    import policyengine as pe

    deadline, client = endpoint.timeout, endpoint.client
    url = endpoint.base_url + "/chat/completions"
    if client == "httpx":
        import httpx

        from policyengine.httpx import PolicyTransport

        inner = httpx.HTTPTransport(limits=_httpx_limits(endpoint))
        transport = PolicyTransport(inner, engine=engine, governor=governor)
        session = httpx.Client(transport=transport, timeout=deadline, headers=AUTH)

        def call() -> bool:
            with pe.overriding(max_elapsed=deadline):
                response = session.post(url, json=CHAT)
            if response.is_success:
                response.json()
                return True
            return False

        return Caller(call, session.close)
    if client == "requests":
        import requests

        from policyengine.requests import PolicyAdapter

        adapter = PolicyAdapter(engine=engine, governor=governor, pool_maxsize=endpoint.pool)
        rsession = requests.Session()
        rsession.mount("http://", adapter)

        def call() -> bool:
            with pe.overriding(max_elapsed=deadline):
                response = rsession.post(url, json=CHAT, headers=AUTH, timeout=deadline)
            if response.ok:
                response.json()
                return True
            return False

        return Caller(call, rsession.close)
    if client == "aiohttp":
        import asyncio

        import aiohttp

        from policyengine.aiohttp import PolicyMiddleware

        loop, stop = _on_loop()

        async def open_session() -> Any:
            return aiohttp.ClientSession(
                middlewares=(PolicyMiddleware(engine=engine, governor=governor),),
                connector=aiohttp.TCPConnector(limit=max(100, endpoint.pool)),
                timeout=aiohttp.ClientTimeout(sock_read=deadline, sock_connect=deadline),
                headers=AUTH,
            )

        asession = asyncio.run_coroutine_threadsafe(open_session(), loop).result()

        async def one() -> bool:
            with pe.overriding(max_elapsed=deadline):
                async with asession.post(url, json=CHAT) as response:
                    if response.ok:
                        await response.json()
                        return True
                    await response.read()
                    return False

        def close() -> None:
            asyncio.run_coroutine_threadsafe(asession.close(), loop).result(timeout=10)
            stop()

        return Caller(lambda: asyncio.run_coroutine_threadsafe(one(), loop).result(), close)
    if client == "anthropic":
        import anthropic
        import httpx2

        from policyengine.anthropic import client as claude_client

        limits = httpx2.Limits(
            max_connections=100, max_keepalive_connections=max(20, endpoint.pool)
        )
        claude = claude_client(
            engine=engine,
            governor=governor,
            transport=httpx2.HTTPTransport(limits=limits),
            api_key="sk-ant-test",
            base_url=endpoint.base_url.removesuffix("/v1"),
            timeout=deadline,
        )

        def call() -> bool:
            try:
                with pe.overriding(max_elapsed=deadline):
                    claude.messages.create(
                        model="claude-goodput",
                        max_tokens=64,
                        messages=MESSAGES,  # type: ignore[arg-type]
                    )
            except anthropic.APIStatusError:
                return False
            return True

        return Caller(call, claude.close)
    raise ValueError(f"unknown client {client!r}; choose from {', '.join(CLIENTS)}")


def _policyengine(governed: bool, redis: bool = False) -> Callable[[Endpoint], Caller]:
    def factory(endpoint: Endpoint) -> Caller:
        """The bundled default policy (its governor on, or off; with
        ``redis``, its governor's state in the run's Redis:
        ``Governor(policy, store=RedisStore(url))``), through the client
        ``--client`` names (``CLIENTS``)."""
        import policyengine as pe

        layers = [] if governed else [{"governor": {"enabled": False}}]
        policy = pe.load_policy(*layers, env=False)
        engine = pe.Engine(policy)
        store: Any = None
        governor = None
        if redis:
            from policyengine.redis import RedisStore

            store = RedisStore(endpoint.redis_url, logger=STORE_LOGGER)
            governor = pe.Governor(policy, store=store)
        caller = _policyengine_caller(endpoint, engine, governor)

        def close() -> None:
            caller.close()
            if store is not None:
                store.flush(5.0)  # the settlements still queued, before the process ends

        return Caller(caller.call, close)

    return factory


def _openai(max_retries: int) -> Callable[[Endpoint], Caller]:
    def factory(endpoint: Endpoint) -> Caller:
        import openai

        client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=API_KEY,
            max_retries=max_retries,
            timeout=endpoint.timeout,
        )

        def call() -> bool:
            try:
                client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
            except openai.APIStatusError:
                return False
            return True

        return Caller(call, client.close)

    return factory


def urllib3_retry(endpoint: Endpoint) -> Caller:
    """requests with urllib3's ``Retry`` configured to retry POST."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util import Retry

    retry = Retry(
        total=10,
        status_forcelist=[429, 500, 502, 503, 504],
        allowed_methods=None,  # None: every method, POST included
        backoff_factor=0.5,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=endpoint.pool))
    url = endpoint.base_url + "/chat/completions"

    def call() -> bool:
        try:
            response = session.post(url, json=CHAT, headers=AUTH, timeout=endpoint.timeout)
        except requests.exceptions.RetryError:  # retries used up on a 429/5xx
            return False
        if response.ok:
            response.json()
            return True
        return False

    return Caller(call, session.close)


def tenacity_recipe(endpoint: Endpoint) -> Caller:
    """httpx wrapped in tenacity's recipe for OpenAI (random exponential wait)."""
    import httpx
    import tenacity

    client = _plain_httpx(endpoint)
    url = endpoint.base_url + "/chat/completions"

    @tenacity.retry(
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=20),
        stop=tenacity.stop_after_attempt(10),
        retry=tenacity.retry_if_exception_type((RetryableStatus, httpx.TransportError)),
        reraise=True,
    )
    def post() -> bool:
        return _post_or_raise(client, url)

    def call() -> bool:
        try:
            return post()
        except RetryableStatus:
            return False

    return Caller(call, client.close)


def stamina_defaults(endpoint: Endpoint) -> Caller:
    """httpx wrapped in stamina's ``retry`` (its defaults: 10 attempts, 45 s)."""
    import httpx
    import stamina

    client = _plain_httpx(endpoint)
    url = endpoint.base_url + "/chat/completions"

    @stamina.retry(on=(RetryableStatus, httpx.TransportError), attempts=10)
    def post() -> bool:
        return _post_or_raise(client, url)

    def call() -> bool:
        try:
            return post()
        except RetryableStatus:
            return False

    return Caller(call, client.close)


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender(
            "policyengine",
            _policyengine(governed=True),
            "httpx + PolicyTransport(engine=Engine()), the default policy (governor on)",
        ),
        Contender(
            "policyengine-nogov",
            _policyengine(governed=False),
            "the same with [governor] enabled = false: each call decides alone",
        ),
        Contender(
            "policyengine-redis",
            _policyengine(governed=True, redis=True),
            "the same as policyengine, its governor's state in the run's Redis "
            "(Governor(policy, store=RedisStore(url)))",
            redis=True,
        ),
        Contender("openai-default", _openai(2), "openai.OpenAI(max_retries=2), its default"),
        Contender("openai-10", _openai(10), "openai.OpenAI(max_retries=10)"),
        Contender(
            "urllib3-retry",
            urllib3_retry,
            "requests + Retry(total=10, backoff_factor=0.5, POST allowed, Retry-After honoured)",
        ),
        Contender(
            "tenacity",
            tenacity_recipe,
            "httpx + wait_random_exponential(0.5, max=20), stop_after_attempt(10)",
        ),
        Contender("stamina", stamina_defaults, "httpx + stamina.retry(attempts=10), defaults"),
    )
}

# --- The worker: C callers through one client ---------------------------------------------


def _from_redis(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or during, is the
    redis package's: a call that failed because of Redis."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.split(".")[0] == "redis":
            return True
        current = current.__cause__ or current.__context__
    return False


class _StoreEvents(logging.Handler):
    """Reports the store's fallbacks and recoveries (``STORE_LOGGER``) as events."""

    def __init__(self, send: Callable[..., None]) -> None:
        super().__init__(logging.INFO)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        what = getattr(record, "transition", "") or record.levelname.lower()
        self._send(ev="store", what=what, t=time.monotonic())


def worker(spec: dict[str, Any]) -> int:
    """Run one cell's callers and print one JSON line per event on stdout:
    ``ready`` once the client exists, ``start`` and ``end`` for each call,
    ``store`` when a contender's store falls back or recovers, ``done`` at the
    end. With ``gate`` (many processes), the callers start once a line comes
    on stdin: when every worker of the cell is ready."""
    contender = CONTENDERS[spec["contender"]]
    callers, calls = int(spec["callers"]), int(spec["calls"])
    first = int(spec.get("first_caller", 0))  # this worker's callers: first, first + 1, ...
    endpoint = Endpoint(
        spec["base_url"],
        float(spec["deadline"]),
        callers,
        spec.get("redis_url", ""),
        spec.get("client", "httpx"),
    )
    lock = threading.Lock()

    def emit(**event: Any) -> None:
        line = json.dumps(event) + "\n"
        with lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    STORE_LOGGER.setLevel(logging.INFO)
    STORE_LOGGER.propagate = False
    STORE_LOGGER.addHandler(_StoreEvents(emit))
    caller = contender.factory(endpoint)
    barrier = threading.Barrier(callers + 1)

    def run(who: int) -> None:
        barrier.wait()
        for number in range(calls):
            start = time.monotonic()
            emit(ev="start", caller=who, call=number, t=start)
            redis = False
            try:
                ok, why = caller.call(), ""
            except Exception as exc:
                ok, why, redis = False, type(exc).__name__, _from_redis(exc)
            end = {"redis": True} if redis else {}
            emit(ev="end", caller=who, call=number, t=time.monotonic(), ok=ok, why=why, **end)

    threads = [threading.Thread(target=run, args=(first + i,), daemon=True) for i in range(callers)]
    for thread in threads:
        thread.start()
    emit(ev="ready", t=time.monotonic())
    if spec.get("gate"):
        sys.stdin.readline()
    barrier.wait()
    for thread in threads:
        thread.join()
    caller.close()
    emit(ev="done", t=time.monotonic())
    return 0


# --- Running a cell -----------------------------------------------------------------------

#: Seconds a worker may take to import its client library and build the client.
READY_TIMEOUT = 60.0


class Settings(NamedTuple):
    """The sizes and bounds of a run."""

    rate: float
    callers: int
    calls: int
    brownout: float
    deadline: float
    cell_timeout: float
    jobs: int  # cells run at once: 1 for figures worth comparing
    processes: int = 1  # P, worker processes per cell, C callers each
    redis_fault: str = "none"  # none, kill or slow: done to Redis in policyengine-redis cells
    headers: str = "openai"  # how the server describes its bucket (HEADER_DIALECTS)
    client: str = "httpx"  # the policyengine contenders' client (CLIENTS)


class CallRecord(NamedTuple):
    """One call, as the worker reported it."""

    caller: int
    number: int  # from 0, in the caller's order
    start: float
    end: float | None  # None: still running when the cell was cut
    ok: bool
    why: str  # the exception's class name when the call raised


class Cell(NamedTuple):
    """What happened in one cell."""

    contender: str
    scenario: str
    ready: float  # time.monotonic() when the worker's callers started
    finished: float  # when the last call ended, or the cell was cut
    cut: bool
    records: tuple[CallRecord, ...]
    hits: tuple[Hit, ...]
    error: str  # the worker's failure, if it failed
    redis: dict[str, Any] | None = None  # a Redis contender's: fault, fallbacks, ...
    skipped: str = ""  # why the cell was not run (no redis-server)


# --- The run's Redis and its faults -------------------------------------------------------

#: Seconds redis-server may take to answer PING after it is started.
REDIS_START_TIMEOUT = 10.0
#: ``--redis-fault slow``: DEBUG SLEEP this long, this often (seconds).
SLOW_SLEEP, SLOW_EVERY = 1.0, 2.0
REDIS_FAULTS = ("none", "kill", "slow")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """ONE redis-server for the run: loopback, a free port, no persistence, in
    a temporary directory, DEBUG allowed from loopback (``--redis-fault slow``).
    ``stop`` and ``start`` again keep its port (``--redis-fault kill``)."""

    def __init__(self, binary: str) -> None:
        import redis  # the harness's client: FLUSHALL, DBSIZE, DEBUG SLEEP

        self._redis = redis
        self.binary = binary
        self._dir = tempfile.TemporaryDirectory(prefix="goodput-redis-")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None
        found = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        self.version = found.stdout.strip()

    def client(self, timeout: float | None = 5.0) -> Any:
        return self._redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=5.0
        )

    def start(self) -> None:
        """Start it and wait until it answers (RuntimeError if it does not)."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", self._dir.name]
        args += ["--enable-debug-command", "local", "--logfile", "redis.log"]
        self._proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        cap = time.monotonic() + REDIS_START_TIMEOUT
        while True:
            try:
                with contextlib.closing(self.client(1.0)) as client:
                    client.ping()
                return
            except self._redis.RedisError:
                if self._proc.poll() is not None or time.monotonic() > cap:
                    self.stop()
                    try:
                        with open(os.path.join(self._dir.name, "redis.log")) as log:
                            tail = log.read()[-500:]
                    except OSError:
                        tail = ""
                    raise RuntimeError(f"redis-server did not start: {tail}") from None
                time.sleep(0.02)

    def stop(self, kill: bool = False) -> None:
        """Stop it: SIGKILL (a crash) with ``kill``, else SIGTERM."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill() if kill else proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def flushall(self) -> None:
        with contextlib.closing(self.client()) as client:
            client.flushall()

    def dbsize(self) -> int | None:
        try:
            with contextlib.closing(self.client()) as client:
                return int(client.dbsize())
        except self._redis.RedisError:
            return None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()


def start_redis() -> tuple[RedisServer | None, str]:
    """The run's Redis, started; or None and why not."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        return None, "no redis-server"
    try:
        server = RedisServer(binary)
    except ImportError:
        return None, "no redis package"
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        server.close()
        return None, f"redis-server failed to start ({exc})"
    return server, ""


class Fault:
    """What ``--redis-fault`` does to the run's Redis during one cell, and when
    (``windows``: (from, to) in ``time.monotonic()``, Redis down or asleep)."""

    def __init__(self, kind: str, redis: RedisServer, planned: int) -> None:
        self.kind = kind
        self._redis = redis
        self._planned = planned
        self.windows: list[tuple[float, float]] = []
        self._killed: float | None = None
        self._restarted = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error = ""

    def begin(self) -> None:
        """The cell's callers are about to start."""
        if self.kind == "slow":
            self._thread = threading.Thread(target=self._sleeper, daemon=True)
            self._thread.start()

    def _sleeper(self) -> None:
        # A connection of its own that waits out the sleep, at the start and every 2 s.
        try:
            with contextlib.closing(self._redis.client(SLOW_SLEEP + 10)) as client:
                tick = time.monotonic()
                while not self._stop.is_set():
                    began = time.monotonic()
                    client.execute_command("DEBUG", "SLEEP", repr(SLOW_SLEEP))
                    self.windows.append((began, time.monotonic()))
                    tick += SLOW_EVERY
                    self._stop.wait(max(0.0, tick - time.monotonic()))
        except Exception as exc:  # reported, not raised: the cell goes on
            self.error = f"DEBUG SLEEP failed: {type(exc).__name__}: {exc}"

    def progress(self, ended: int) -> None:
        """``ended`` of the fleet's calls have ended: kill at a third, restart at two."""
        if self.kind != "kill":
            return
        if self._killed is None and ended * 3 >= self._planned:
            self._killed = time.monotonic()
            self._redis.stop(kill=True)
        elif self._killed is not None and not self._restarted and ended * 3 >= 2 * self._planned:
            self._restart()

    def _restart(self) -> None:
        self._restarted = True
        assert self._killed is not None
        try:
            self._redis.start()
        except RuntimeError as exc:
            self.error = str(exc)
        self.windows.append((self._killed, time.monotonic()))

    def end(self) -> None:
        """The cell is over: stop sleeping, restart a killed Redis."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=SLOW_SLEEP + 15)
        if self._killed is not None and not self._restarted:
            self._restart()


# --- Running a cell -----------------------------------------------------------------------


def _reader(stream: IO[str], lines: queue.Queue[Any], tag: int | None = None) -> None:
    for line in stream:
        lines.put(line if tag is None else (tag, line))
    lines.put(None if tag is None else (tag, None))


def _worker_env() -> dict[str, str]:
    """The harness's environment without POLICYENGINE_REDIS_URL: ``policyengine``
    keeps its state in its process whatever the shell says; only
    ``policyengine-redis`` uses a Redis, the run's, named explicitly."""
    return {k: v for k, v in os.environ.items() if k != "POLICYENGINE_REDIS_URL"}


def run_cell(
    contender: str, scenario: str, settings: Settings, redis: RedisServer | None = None
) -> Cell:
    """Run one cell: a fresh server, a worker process, bounded by the cell's cap."""
    if settings.processes > 1 or CONTENDERS[contender].redis:
        return run_fleet_cell(contender, scenario, settings, redis)
    play = Scenario(
        scenario, rate=settings.rate, brownout=settings.brownout, headers=settings.headers
    )
    with GoodputServer(play) as server, tempfile.TemporaryFile("w+") as stderr:
        spec = {
            "contender": contender,
            "base_url": server.base_url,
            "callers": settings.callers,
            "calls": settings.calls,
            "deadline": settings.deadline,
            "client": settings.client,
        }
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_worker_env(),
        )
        assert proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
        starts: dict[tuple[int, int], float] = {}
        records: list[CallRecord] = []
        ready: float | None = None
        done = False
        cap = time.monotonic() + READY_TIMEOUT
        while not done:
            try:
                line = lines.get(timeout=max(0.0, cap - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            event = json.loads(line)
            kind = event["ev"]
            if kind == "ready":
                ready = event["t"]
                cap = ready + settings.cell_timeout
            elif kind == "start":
                starts[event["caller"], event["call"]] = event["t"]
            elif kind == "end":
                key = (event["caller"], event["call"])
                records.append(
                    CallRecord(*key, starts.pop(key), event["t"], event["ok"], event["why"])
                )
            elif kind == "done":
                done = True
        cut = not done and proc.poll() is None
        if cut:
            proc.kill()
        finished = time.monotonic() if cut else max((r.end or 0.0 for r in records), default=0.0)
        proc.wait(timeout=30)
        records.extend(CallRecord(*key, t, None, False, "cut") for key, t in starts.items())
        error = ""
        if ready is None or not (done or cut):
            stderr.seek(0)
            what = "not ready" if ready is None else "exited early"
            error = f"worker {what} (exit code {proc.returncode}): {stderr.read()[-2000:]}"
        return Cell(
            contender,
            scenario,
            ready if ready is not None else time.monotonic(),
            finished,
            cut,
            tuple(sorted(records, key=lambda r: r.start)),
            server.hits(),
            error,
        )


def _fallbacks(store: list[tuple[int, str, float]]) -> dict[str, int]:
    """The store's fallbacks to in-process state (a ``store_down`` in a worker
    whose Redis was up), its ``store_down`` warnings (logged again each time
    it tries Redis and fails: every ``RETRY_AFTER`` while Redis is down), and
    its recoveries."""
    last: dict[int, str] = {}
    fallbacks = 0
    for worker, what, _ in store:
        fallbacks += what == "store_down" and last.get(worker) != "store_down"
        last[worker] = what
    return {
        "fallbacks": fallbacks,
        "store_down_warnings": sum(1 for _, what, _ in store if what == "store_down"),
        "recoveries": sum(1 for _, what, _ in store if what == "store_up"),
    }


def _kill_all(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def run_fleet_cell(
    contender: str, scenario: str, settings: Settings, redis: RedisServer | None
) -> Cell:
    """Run one cell of P worker processes (or of a Redis contender): a fresh
    server, the workers released together once all are ready, the run's Redis
    emptied first and faulted as ``--redis-fault`` says."""
    needs_redis = CONTENDERS[contender].redis
    if needs_redis and redis is None:
        return Cell(contender, scenario, 0.0, 0.0, False, (), (), "", None, "no Redis")
    count, callers = settings.processes, settings.callers
    planned = count * callers * settings.calls
    gated = count > 1
    fault = None
    if needs_redis:
        assert redis is not None
        try:
            redis.flushall()
        except Exception as exc:  # a restart after a fault failed: say so, go on
            error = f"the run's Redis is not answering: {type(exc).__name__}: {exc}"
            return Cell(contender, scenario, 0.0, 0.0, False, (), (), error)
        if settings.redis_fault != "none":
            fault = Fault(settings.redis_fault, redis, planned)
    play = Scenario(
        scenario, rate=settings.rate, brownout=settings.brownout, headers=settings.headers
    )
    with GoodputServer(play) as server, contextlib.ExitStack() as stack:
        lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
        procs: list[subprocess.Popen[str]] = []
        stack.callback(_kill_all, procs)  # none left behind if the harness is interrupted
        stderrs: list[IO[str]] = []
        for index in range(count):
            spec: dict[str, Any] = {
                "contender": contender,
                "base_url": server.base_url,
                "callers": callers,
                "calls": settings.calls,
                "deadline": settings.deadline,
                "first_caller": index * callers,
                "client": settings.client,
            }
            if gated:
                spec["gate"] = True
            if needs_redis:
                assert redis is not None
                spec["redis_url"] = redis.url
            stderrs.append(stack.enter_context(tempfile.TemporaryFile("w+")))
            proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                stdin=subprocess.PIPE if gated else None,
                stdout=subprocess.PIPE,
                stderr=stderrs[-1],
                text=True,
                env=_worker_env(),
            )
            procs.append(proc)
            assert proc.stdout is not None
            threading.Thread(target=_reader, args=(proc.stdout, lines, index), daemon=True).start()
        starts: dict[tuple[int, int], float] = {}
        records: list[CallRecord] = []
        from_redis = 0
        store: list[tuple[int, str, float]] = []  # (worker, store_down or store_up, t)
        readies: set[int] = set()
        done: set[int] = set()
        closed: set[int] = set()
        ready: float | None = None
        cap = time.monotonic() + READY_TIMEOUT
        while len(done) < count:
            try:
                index, line = lines.get(timeout=max(0.0, cap - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                closed.add(index)
                if index not in done:
                    break  # a worker died: the cell is over
                continue
            event = json.loads(line)
            kind = event["ev"]
            if kind == "ready":
                readies.add(index)
                if len(readies) == count:
                    if fault is not None:
                        fault.begin()
                    if gated:
                        for proc in procs:
                            assert proc.stdin is not None
                            with contextlib.suppress(OSError):
                                proc.stdin.write("go\n")
                                proc.stdin.flush()
                        ready = time.monotonic()
                    else:
                        ready = event["t"]
                    cap = ready + settings.cell_timeout
            elif kind == "start":
                starts[event["caller"], event["call"]] = event["t"]
            elif kind == "end":
                key = (event["caller"], event["call"])
                records.append(
                    CallRecord(*key, starts.pop(key), event["t"], event["ok"], event["why"])
                )
                from_redis += bool(event.get("redis"))
                if fault is not None:
                    fault.progress(len(records))
            elif kind == "store":
                store.append((index, event["what"], event["t"]))
            elif kind == "done":
                done.add(index)
        killed = [i for i, proc in enumerate(procs) if i not in done and proc.poll() is None]
        for i in killed:
            procs[i].kill()
        cut = bool(killed)
        finished = time.monotonic() if cut else max((r.end or 0.0 for r in records), default=0.0)
        for proc in procs:
            proc.wait(timeout=30)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if fault is not None:
            fault.end()
        records.extend(CallRecord(*key, t, None, False, "cut") for key, t in starts.items())
        errors = []
        for i, proc in enumerate(procs):
            if i in readies and (i in done or i in killed):
                continue
            stderrs[i].seek(0)
            what = "not ready" if i not in readies else "exited early"
            errors.append(
                f"worker {i} {what} (exit code {proc.returncode}): {stderrs[i].read()[-2000:]}"
            )
        origin = ready if ready is not None else time.monotonic()
        about = None
        if needs_redis:
            assert redis is not None
            windows = fault.windows if fault is not None else []
            during = [
                r
                for r in records
                if any(r.start < b and (r.end or finished) > a for a, b in windows)
            ]
            about = {
                "url": redis.url,
                "fault": settings.redis_fault,
                "fault_windows_s": [[a - origin, b - origin] for a, b in windows],
                "fault_error": fault.error if fault is not None else "",
                "calls_during_fault": len(during),
                "not_ok_during_fault": sum(1 for r in during if not r.ok),
                **_fallbacks(store),
                "failed_by_redis": from_redis,
                "keys_at_end": redis.dbsize(),
            }
        return Cell(
            contender,
            scenario,
            origin,
            finished,
            cut,
            tuple(sorted(records, key=lambda r: r.start)),
            server.hits(),
            "\n".join(errors),
            about,
        )


# --- Figures ------------------------------------------------------------------------------


class Goal(NamedTuple):
    """The target the governor must meet in a scenario (None: no bound on that figure)."""

    text: str
    all_ok: bool = False
    goodput: float | None = None
    wasted_per_success: float | None = None
    requests_per_call: float | None = None
    within_deadline: bool = False
    max_requests: int | None = None


GOALS: dict[str, Goal] = {
    "ratelimit": Goal(
        "every call succeeds, goodput >= 95% of R, <= 0.1 wasted per success",
        all_ok=True,
        goodput=0.95,
        wasted_per_success=0.1,
    ),
    "ratelimit-noretryafter": Goal(
        "every call succeeds, goodput >= 95% of R, <= 0.1 wasted per success",
        all_ok=True,
        goodput=0.95,
        wasted_per_success=0.1,
    ),
    "brownout": Goal(
        "every call survives the brownout, <= 0.3 wasted per success",
        all_ok=True,
        wasted_per_success=0.3,
    ),
    "outage": Goal(
        "<= 1.5 requests per call across all callers, every call gives up within its deadline",
        requests_per_call=1.5,
        within_deadline=True,
    ),
    "quota": Goal("the server is asked at most twice in all", max_requests=2),
}


def _percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def figures(cell: Cell, settings: Settings) -> dict[str, Any]:
    """Every figure of a cell (of the fleet's, with many processes)."""
    planned = settings.processes * settings.callers * settings.calls
    if cell.skipped:
        return {
            "contender": cell.contender,
            "scenario": cell.scenario,
            "calls": planned,
            "skipped": cell.skipped,
        }
    ended = [r for r in cell.records if r.end is not None]
    ok = [r for r in ended if r.ok]
    failed = [r for r in ended if not r.ok]
    running = [r for r in cell.records if r.end is None]
    started = len(cell.records)
    requests = len(cell.hits)
    accepted = sum(1 for h in cell.hits if 200 <= h.status < 300)
    rejected = sum(1 for h in cell.hits if h.status in REJECTED)
    first = min((r.start for r in cell.records), default=cell.ready)
    window = max(1e-9, cell.finished - first)
    past = sum(1 for r in ended if r.end is not None and r.end - r.start > settings.deadline)
    past += sum(1 for r in running if cell.finished - r.start > settings.deadline)
    limited = cell.scenario.startswith("ratelimit")
    goodput = len(ok) / window / settings.rate if limited else None
    # Successes over what the bucket let through in the window (the burst, then R a
    # second): <= 100%. Goodput can pass its ceiling when calls give up early and
    # shorten the window; this cannot.
    of_capacity = len(ok) / (settings.rate * (1 + window)) if limited else None
    give_up = [r.end - r.start for r in failed if r.end is not None]
    latency = [r.end - r.start for r in ok if r.end is not None]
    reasons: dict[str, int] = {}
    for r in failed + running:
        key = r.why or "failed"
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "contender": cell.contender,
        "scenario": cell.scenario,
        "calls": planned,
        "started": started,
        "succeeded": len(ok),
        "failed": len(failed),
        "unfinished": planned - len(ended),
        "cut": cell.cut,
        "error": cell.error,
        "requests": requests,
        "accepted": accepted,
        "rejected": rejected,
        "wasted_per_success": rejected / len(ok) if ok else None,
        "wasted_per_call": rejected / started if started else None,
        "requests_per_call": requests / started if started else None,
        "window_s": window,
        "goodput": goodput,
        "goodput_of_capacity": of_capacity,
        "latency_p50_s": _percentile(latency, 50),
        "latency_p99_s": _percentile(latency, 99),
        "give_up_p50_s": statistics.median(give_up) if give_up else None,
        "past_deadline": past,
        "failures": reasons,
        **({"redis": cell.redis} if cell.redis is not None else {}),
    }


def best_goodput(settings: Settings) -> float | None:
    """The goodput of a perfect client: the first R calls at once (the burst),
    the rest at R a second. None: every call fits in the burst."""
    calls = settings.processes * settings.callers * settings.calls
    if calls <= settings.rate:
        return None
    return calls / ((calls - settings.rate) / settings.rate) / settings.rate


def verdict(f: dict[str, Any]) -> str:
    """``met``, or ``MISSED`` and what missed, against the scenario's target."""
    goal = GOALS[f["scenario"]]
    if f.get("skipped"):
        return "skipped"
    misses: list[str] = []
    if f["error"]:
        misses.append("worker failed")
    if f.get("redis", {}).get("failed_by_redis"):
        misses.append(f"{f['redis']['failed_by_redis']} calls raised a Redis error")
    if goal.all_ok and f["succeeded"] < f["calls"]:
        misses.append(f"{f['calls'] - f['succeeded']} calls not ok")
    if goal.goodput is not None and (f["goodput"] or 0.0) < goal.goodput:
        misses.append(f"goodput {(f['goodput'] or 0.0):.0%}")
    bound = goal.wasted_per_success
    if bound is not None and (f["wasted_per_success"] is None or f["wasted_per_success"] > bound):
        misses.append("wasted " + _wasted(f))
    bound = goal.requests_per_call
    if bound is not None and (f["requests_per_call"] is None or f["requests_per_call"] > bound):
        misses.append(f"{_num(f['requests_per_call'])} req/call")
    if goal.within_deadline and (f["past_deadline"] or f["unfinished"]):
        late = f["past_deadline"] or f["unfinished"]
        misses.append(f"{late} calls past deadline" if f["past_deadline"] else f"{late} unfinished")
    if goal.max_requests is not None and f["requests"] > goal.max_requests:
        misses.append(f"{f['requests']} requests")
    return "MISSED: " + ", ".join(misses) if misses else "met"


# --- Report -------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _wasted(f: dict[str, Any]) -> str:
    if f["wasted_per_success"] is not None:
        return _num(f["wasted_per_success"])
    return f"{_num(f['wasted_per_call'])}/call" if f["wasted_per_call"] is not None else "-"


#: How each header dialect words the budget, the wait, the outage and the quota.
WORDING = {
    "openai": (
        "x-ratelimit-*-requests",
        "Retry-After and retry-after-ms",
        "503",
        "429 insufficient_quota",
    ),
    "anthropic": (
        "anthropic-ratelimit-requests-* (reset RFC 3339)",
        "retry-after",
        "529 overloaded_error",
        "400 credit balance too low",
    ),
    "ietf": ("RateLimit-Policy / RateLimit", "Retry-After", "503", "429 insufficient_quota"),
    "openrouter": (
        "X-RateLimit-* (reset epoch ms)",
        "Retry-After",
        "503",
        "402 insufficient credits",
    ),
    "none": ("no budget headers", "Retry-After", "503", "429 insufficient_quota"),
}


def describe(scenario: str, settings: Settings) -> str:
    r, t = f"{settings.rate:g}", f"{settings.brownout:g}"
    budget, wait, down, quota = WORDING[settings.headers]
    return {
        "ratelimit": f"token bucket {r} req/s (burst {r}), {budget}, 429 with {wait}",
        "ratelimit-noretryafter": f"token bucket {r} req/s (burst {r}), {budget}, "
        "429 without Retry-After",
        "brownout": f"{down} for the first {t} s, then 200",
        "outage": f"{down} always",
        "quota": f"{quota} always, no Retry-After",
    }[scenario]


HEADER = (
    "| contender | ok / calls | server requests | wasted / success | requests / call "
    "| goodput | p50 | p99 | give up p50 | past deadline | target |"
)


def table(scenario: str, rows: list[dict[str, Any]], settings: Settings) -> str:
    """The Markdown table of one scenario."""
    out = [
        f"### {scenario}: {describe(scenario, settings)}",
        "",
        f"Target: {GOALS[scenario].text}.",
    ]
    best = best_goodput(settings)
    if scenario.startswith("ratelimit") and best is not None:
        out[-1] += f" The best possible goodput here is {best:.0%} (the burst, then R a second)."
    out += [
        "",
        HEADER,
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in rows:
        if f.get("skipped"):
            dashes = " | -" * 8
            out.append(f"| {f['contender']} | skipped: {f['skipped']}{dashes} | skipped |")
            continue
        ok = f"{f['succeeded']}/{f['calls']}"
        if f["cut"]:
            ok += f" (cut, {f['unfinished']} unfinished)"
        goodput = "-" if f["goodput"] is None else f"{f['goodput']:.0%}"
        out.append(
            f"| {f['contender']} | {ok} | {f['requests']} | {_wasted(f)} "
            f"| {_num(f['requests_per_call'])} | {goodput} | {_secs(f['latency_p50_s'])} "
            f"| {_secs(f['latency_p99_s'])} | {_secs(f['give_up_p50_s'])} "
            f"| {f['past_deadline']} | {verdict(f)} |"
        )
    redis = [f for f in rows if "redis" in f]
    if redis:
        out += ["", *redis_table(redis)]
    return "\n".join(out)


REDIS_HEADER = (
    "| contender | Redis fault | Redis down or asleep | calls during a fault (not ok) "
    "| fallbacks (warnings) / recoveries | keys at the end | Redis errors raised to callers |"
)


def redis_table(rows: list[dict[str, Any]]) -> list[str]:
    """What the Redis contenders' store did: the fault, the calls that ran
    during it (and of those, the ones not ok), the store's fallbacks to
    in-process state, and the calls that raised an error of the redis package
    (must be 0: a failing Redis must never fail a call)."""
    out = [REDIS_HEADER, "|---|---|---|---|---|---|---|"]
    for f in rows:
        r = f["redis"]
        spans = [(max(0.0, a), max(0.0, b)) for a, b in r["fault_windows_s"]]
        if len(spans) > 2:  # slow: asleep n times, from the first to the last
            took = statistics.mean(b - a for a, b in spans)
            windows = f"{len(spans)} x {took:.1f} s, {spans[0][0]:.1f}-{spans[-1][1]:.1f} s"
        else:
            windows = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in spans) or "-"
        if r["fault_error"]:
            windows += f" ({r['fault_error']})"
        keys = "-" if r["keys_at_end"] is None else str(r["keys_at_end"])
        out.append(
            f"| {f['contender']} | {r['fault']} | {windows} "
            f"| {r['calls_during_fault']} ({r['not_ok_during_fault']}) "
            f"| {r['fallbacks']} ({r['store_down_warnings']}) / {r['recoveries']} | {keys} "
            f"| {r['failed_by_redis']} |"
        )
    return out


def _call_json(r: CallRecord, origin: float) -> dict[str, Any]:
    took = None if r.end is None else r.end - r.start
    start = r.start - origin
    return {
        "caller": r.caller,
        "call": r.number,
        "start_s": start,
        "took_s": took,
        "ok": r.ok,
        "why": r.why,
    }


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    names = (
        "policyengine",
        "httpx",
        "openai",
        "requests",
        "urllib3",
        "tenacity",
        "stamina",
        "aiohttp",
        "anthropic",
    )
    for name in (*names, "redis"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "system": platform.system(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def run_scenario(
    scenario: str,
    contenders: Sequence[str],
    settings: Settings,
    redis: RedisServer | None = None,
    no_redis: str = "",
) -> list[dict[str, Any]]:
    """Every contender's cell of one scenario, ``settings.jobs`` at a time; figures in order.
    A contender that needs Redis is skipped (``no_redis`` says why) when there is none."""

    def one(contender: str) -> dict[str, Any]:
        cell = run_cell(contender, scenario, settings, redis)
        if cell.skipped:
            cell = cell._replace(skipped=no_redis or cell.skipped)
        f = figures(cell, settings)
        if f.get("skipped"):
            print(f"  {scenario} / {contender}: skipped, {f['skipped']}", file=sys.stderr)
            return f
        print(
            f"  {scenario} / {contender}: {f['succeeded']}/{f['calls']} ok, "
            f"{f['requests']} requests{', cut' if f['cut'] else ''}"
            f"{', ' + f['error'] if f['error'] else ''}"
            + (f", {f['redis']['failed_by_redis']} Redis errors raised" if "redis" in f else ""),
            file=sys.stderr,
            flush=True,
        )
        f["call_records"] = [_call_json(r, cell.ready) for r in cell.records]
        f["request_times"] = [[h.at - cell.ready, h.status] for h in cell.hits]
        return f

    # One Redis cell at a time: each empties the run's Redis and may fault it.
    plain = [c for c in contenders if not CONTENDERS[c].redis]
    with concurrent.futures.ThreadPoolExecutor(max_workers=settings.jobs) as pool:
        done = dict(zip(plain, pool.map(one, plain), strict=True))
    done.update((c, one(c)) for c in contenders if CONTENDERS[c].redis)
    return [done[c] for c in contenders]


# --- Command line -------------------------------------------------------------------------

DEFAULTS = Settings(
    rate=20, callers=20, calls=10, brownout=3.0, deadline=30.0, cell_timeout=60.0, jobs=1
)
# A smoke run: more calls than the burst, so that the limit bites; every cell cut at 3 s.
QUICK = Settings(rate=5, callers=4, calls=3, brownout=0.5, deadline=5.0, cell_timeout=3.0, jobs=6)


def _names(text: str, known: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
    )
    d = DEFAULTS
    parser.add_argument("--rate", type=float, help=f"R, requests a second ({d.rate:g})")
    parser.add_argument("--callers", type=int, help=f"C, caller threads ({d.callers})")
    parser.add_argument("--calls", type=int, help=f"N, calls per caller ({d.calls})")
    parser.add_argument("--brownout", type=float, help=f"T, seconds of 503 ({d.brownout:g})")
    parser.add_argument("--call-deadline", type=float, help=f"seconds per call ({d.deadline:g})")
    parser.add_argument("--cell-timeout", type=float, help=f"seconds per cell ({d.cell_timeout:g})")
    parser.add_argument(
        "--scenarios",
        type=lambda s: _names(s, SCENARIOS, "scenario"),
        default=list(SCENARIOS),
        help="comma-separated",
    )
    parser.add_argument(
        "--contenders",
        type=lambda s: _names(s, list(CONTENDERS), "contender"),
        default=[c for c in CONTENDERS if not CONTENDERS[c].redis],
        help="comma-separated (default: all but policyengine-redis, which needs a redis-server)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller sizes for a smoke run: R={QUICK.rate:g}, C={QUICK.callers}, "
        f"N={QUICK.calls}, T={QUICK.brownout:g}, deadline {QUICK.deadline:g} s, "
        f"cell cap {QUICK.cell_timeout:g} s, {QUICK.jobs} cells at a time",
    )
    parser.add_argument(
        "--jobs", type=int, help=f"cells to run at once ({d.jobs}; more is faster and noisier)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        help=f"P, worker processes per cell, C callers each, one server ({d.processes})",
    )
    parser.add_argument(
        "--redis-fault",
        choices=REDIS_FAULTS,
        help="in policyengine-redis cells: kill Redis a third of the way through the calls "
        "and restart it at two thirds, or make it sleep 1 s every 2 s (none)",
    )
    parser.add_argument(
        "--headers",
        choices=HEADER_DIALECTS,
        help="how the server describes its bucket and words its errors: OpenAI's "
        "x-ratelimit-*-requests, Anthropic's anthropic-ratelimit-requests-*, the IETF "
        "RateLimit-Policy / RateLimit fields, OpenRouter's X-RateLimit-* (reset in epoch "
        "ms), or none (Retry-After only) (openai)",
    )
    parser.add_argument(
        "--client",
        choices=list(CLIENTS),
        help="the client of the policyengine contenders, with the policy's adapter: "
        + "; ".join(f"{k}: {v}" for k, v in CLIENTS.items())
        + " (httpx)",
    )
    parser.add_argument("--json", metavar="PATH", help="write every figure to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one cell's callers
    return parser


def settings_of(args: argparse.Namespace) -> Settings:
    base = QUICK if args.quick else DEFAULTS
    given = {
        "rate": args.rate,
        "callers": args.callers,
        "calls": args.calls,
        "brownout": args.brownout,
        "deadline": args.call_deadline,
        "cell_timeout": args.cell_timeout,
        "jobs": args.jobs,
        "processes": args.processes,
        "redis_fault": args.redis_fault,
        "headers": args.headers,
        "client": args.client,
    }
    return base._replace(**{k: v for k, v in given.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    settings = settings_of(args)
    if min(settings.rate, settings.callers, settings.calls, settings.jobs, settings.processes) < 1:
        parser.error("--rate, --callers, --calls, --jobs and --processes must be >= 1")
    if min(settings.brownout, settings.deadline, settings.cell_timeout) <= 0:
        parser.error("--brownout, --call-deadline and --cell-timeout must be > 0")
    info = machine()
    fleet = f"P={settings.processes} processes x " if settings.processes > 1 else ""
    print(
        f"python {info['python']} on {info['machine']} ({info['cpus']} CPUs); "
        f"R={settings.rate:g} req/s, {fleet}C={settings.callers} callers x "
        f"N={settings.calls} calls, "
        f"T={settings.brownout:g} s, deadline {settings.deadline:g} s, "
        f"cell cap {settings.cell_timeout:g} s; headers {settings.headers}, "
        f"policyengine through {settings.client}",
        flush=True,
    )
    if settings.jobs > 1:
        print(
            f"{settings.jobs} cells at a time: figures to check the harness with, not to compare",
            flush=True,
        )
    redis: RedisServer | None = None
    no_redis = ""
    try:
        if any(CONTENDERS[c].redis for c in args.contenders):
            redis, no_redis = start_redis()
            if redis is not None:
                info["redis_server"] = redis.version
                print(
                    f"{redis.version.split(' sha=')[0]} on {redis.url}; "
                    f"fault: {settings.redis_fault}",
                    flush=True,
                )
            else:
                print(f"{no_redis}: the Redis contender's cells are skipped", flush=True)
        cells: list[dict[str, Any]] = []
        began = time.monotonic()
        for scenario in args.scenarios:
            rows = run_scenario(scenario, args.contenders, settings, redis, no_redis)
            print("\n" + table(scenario, rows, settings) + "\n", flush=True)
            cells.extend(rows)
    finally:
        if redis is not None:
            redis.close()
    print(f"{len(cells)} cells in {time.monotonic() - began:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": info, "settings": settings._asdict(), "cells": cells}, out)
    return 1 if any(c.get("error") for c in cells) else 0


if __name__ == "__main__":
    raise SystemExit(main())
