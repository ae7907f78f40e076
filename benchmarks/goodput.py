"""Goodput under a rate limit, a brownout, an outage and an exhausted quota.

What callers sharing one client get done, and what it costs the server:
policyengine next to the retries of openai, urllib3, tenacity and stamina.

    python benchmarks/goodput.py                  # every cell, default sizes (~15 minutes)
    python benchmarks/goodput.py --quick          # a smoke run (well under a minute)
    python benchmarks/goodput.py --rate 50 --callers 40 --calls 5 --json goodput.json

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

To add a contender, write a function ``Endpoint -> Caller`` and list it in
``CONTENDERS``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import platform
import queue
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
from _goodput_server import REJECTED, SCENARIOS, GoodputServer, Hit, Scenario

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


class Caller(NamedTuple):
    """One client, shared by every caller thread of a cell."""

    call: Callable[[], bool]  # one chat completion: True if it succeeded (False or raises if not)
    close: Callable[[], None]


class Contender(NamedTuple):
    """A client configuration under test."""

    name: str
    factory: Callable[[Endpoint], Caller]  # called once per cell, in the worker process
    about: str


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


def _policyengine(governed: bool) -> Callable[[Endpoint], Caller]:
    def factory(endpoint: Endpoint) -> Caller:
        """httpx with ``PolicyTransport`` and the bundled default policy (its
        governor on, or off); each call bounded by the cell's deadline, as a
        user bounds a call (``overriding(max_elapsed=...)``)."""
        import httpx

        import policyengine as pe
        from policyengine.httpx import PolicyTransport

        layers = [] if governed else [{"governor": {"enabled": False}}]
        engine = pe.Engine(pe.load_policy(*layers, env=False))
        inner = httpx.HTTPTransport(limits=_httpx_limits(endpoint))
        transport = PolicyTransport(inner, engine=engine)
        client = httpx.Client(transport=transport, timeout=endpoint.timeout, headers=AUTH)
        url = endpoint.base_url + "/chat/completions"

        def call() -> bool:
            with pe.overriding(max_elapsed=endpoint.timeout):
                response = client.post(url, json=CHAT)
            if response.is_success:
                response.json()
                return True
            return False

        return Caller(call, client.close)

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


def worker(spec: dict[str, Any]) -> int:
    """Run one cell's callers and print one JSON line per event on stdout:
    ``ready`` once the client exists, ``start`` and ``end`` for each call,
    ``done`` at the end."""
    contender = CONTENDERS[spec["contender"]]
    callers, calls = int(spec["callers"]), int(spec["calls"])
    endpoint = Endpoint(spec["base_url"], float(spec["deadline"]), callers)
    caller = contender.factory(endpoint)
    lock = threading.Lock()

    def emit(**event: Any) -> None:
        line = json.dumps(event) + "\n"
        with lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    barrier = threading.Barrier(callers + 1)

    def run(who: int) -> None:
        barrier.wait()
        for number in range(calls):
            start = time.monotonic()
            emit(ev="start", caller=who, call=number, t=start)
            try:
                ok, why = caller.call(), ""
            except Exception as exc:
                ok, why = False, type(exc).__name__
            emit(ev="end", caller=who, call=number, t=time.monotonic(), ok=ok, why=why)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(callers)]
    for thread in threads:
        thread.start()
    emit(ev="ready", t=time.monotonic())
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


def _reader(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_cell(contender: str, scenario: str, settings: Settings) -> Cell:
    """Run one cell: a fresh server, a worker process, bounded by the cell's cap."""
    play = Scenario(scenario, rate=settings.rate, brownout=settings.brownout)
    with GoodputServer(play) as server, tempfile.TemporaryFile("w+") as stderr:
        spec = {
            "contender": contender,
            "base_url": server.base_url,
            "callers": settings.callers,
            "calls": settings.calls,
            "deadline": settings.deadline,
        }
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
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
    """Every figure of a cell."""
    planned = settings.callers * settings.calls
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
    }


def best_goodput(settings: Settings) -> float | None:
    """The goodput of a perfect client: the first R calls at once (the burst),
    the rest at R a second. None: every call fits in the burst."""
    calls = settings.callers * settings.calls
    if calls <= settings.rate:
        return None
    return calls / ((calls - settings.rate) / settings.rate) / settings.rate


def verdict(f: dict[str, Any]) -> str:
    """``met``, or ``MISSED`` and what missed, against the scenario's target."""
    goal = GOALS[f["scenario"]]
    misses: list[str] = []
    if f["error"]:
        misses.append("worker failed")
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


def describe(scenario: str, settings: Settings) -> str:
    r, t = f"{settings.rate:g}", f"{settings.brownout:g}"
    return {
        "ratelimit": f"token bucket {r} req/s (burst {r}), 429 with Retry-After and retry-after-ms",
        "ratelimit-noretryafter": f"token bucket {r} req/s (burst {r}), 429 without Retry-After",
        "brownout": f"503 for the first {t} s, then 200",
        "outage": "503 always",
        "quota": "429 insufficient_quota always, no Retry-After",
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
    return "\n".join(out)


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
    for name in ("policyengine", "httpx", "openai", "requests", "urllib3", "tenacity", "stamina"):
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
    scenario: str, contenders: Sequence[str], settings: Settings
) -> list[dict[str, Any]]:
    """Every contender's cell of one scenario, ``settings.jobs`` at a time; figures in order."""

    def one(contender: str) -> dict[str, Any]:
        cell = run_cell(contender, scenario, settings)
        f = figures(cell, settings)
        print(
            f"  {scenario} / {contender}: {f['succeeded']}/{f['calls']} ok, "
            f"{f['requests']} requests{', cut' if f['cut'] else ''}"
            f"{', ' + f['error'] if f['error'] else ''}",
            file=sys.stderr,
            flush=True,
        )
        f["call_records"] = [_call_json(r, cell.ready) for r in cell.records]
        f["request_times"] = [[h.at - cell.ready, h.status] for h in cell.hits]
        return f

    with concurrent.futures.ThreadPoolExecutor(max_workers=settings.jobs) as pool:
        return list(pool.map(one, contenders))


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
        default=list(CONTENDERS),
        help="comma-separated",
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
    }
    return base._replace(**{k: v for k, v in given.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    settings = settings_of(args)
    if min(settings.rate, settings.callers, settings.calls, settings.jobs) < 1:
        parser.error("--rate, --callers, --calls and --jobs must be >= 1")
    if min(settings.brownout, settings.deadline, settings.cell_timeout) <= 0:
        parser.error("--brownout, --call-deadline and --cell-timeout must be > 0")
    info = machine()
    print(
        f"python {info['python']} on {info['machine']} ({info['cpus']} CPUs); "
        f"R={settings.rate:g} req/s, C={settings.callers} callers x N={settings.calls} calls, "
        f"T={settings.brownout:g} s, deadline {settings.deadline:g} s, "
        f"cell cap {settings.cell_timeout:g} s",
        flush=True,
    )
    if settings.jobs > 1:
        print(
            f"{settings.jobs} cells at a time: figures to check the harness with, not to compare",
            flush=True,
        )
    cells: list[dict[str, Any]] = []
    began = time.monotonic()
    for scenario in args.scenarios:
        rows = run_scenario(scenario, args.contenders, settings)
        print("\n" + table(scenario, rows, settings) + "\n", flush=True)
        cells.extend(rows)
    print(f"{len(cells)} cells in {time.monotonic() - began:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": info, "settings": settings._asdict(), "cells": cells}, out)
    return 1 if any(c["error"] for c in cells) else 0


if __name__ == "__main__":
    raise SystemExit(main())
