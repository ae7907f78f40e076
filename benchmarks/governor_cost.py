"""What the governor costs a call: the driver deciding a 200 that carries
OpenAI's rate-limit headers, with no governor, with the in-process one, and
with the state on Redis (loopback), in one run; and the Redis round trips a
call makes (from Redis's own command counts).

    python benchmarks/governor_cost.py            # ~20 s; starts its own redis-server
    python benchmarks/governor_cost.py --calls 2000

Each figure is the best of several repeats (the least disturbed run); the
ratios against the no-governor driver are what to compare across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import policyengine as pe

HEADERS = {
    "content-type": "application/json",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-tokens": "1999000",
    "x-ratelimit-reset-tokens": "30ms",
    "x-request-id": "req_123",
}
OK = pe.Response(200, HEADERS, b'{"id": "chatcmpl-1", "choices": []}')


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A redis-server of this run, or None without the binary."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def per_call(driver: pe.Driver, calls: int, repeats: int) -> float:
    """Seconds per call, best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            driver.run(lambda _: OK, model="gpt-4o")
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def script_calls(url: str) -> int:
    import redis

    stats: dict[str, Any] = redis.Redis.from_url(url).info("commandstats")
    return sum(int(v.get("calls", 0)) for k, v in stats.items() if "eval" in k)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    engine = pe.Engine(pe.load_policy(env=False))
    policy = engine.policy
    rows: list[tuple[str, float, str]] = []
    baseline = per_call(pe.Driver(engine, governor=None), args.calls, args.repeats)
    rows.append(("no governor", baseline, ""))
    memory = per_call(pe.Driver(engine, governor=pe.Governor(policy)), args.calls, args.repeats)
    rows.append(("governor, in-process", memory, ""))
    with redis_server() as url:
        if url is None:
            print("no redis-server: the Redis rows are left out")
        else:
            import redis

            from policyengine.redis import RedisStore

            client = redis.Redis.from_url(url)
            best_ping = float("inf")
            for _ in range(args.repeats):
                started = time.perf_counter()
                for _ in range(args.calls):
                    client.ping()
                best_ping = min(best_ping, (time.perf_counter() - started) / args.calls)
            rows.append(("(a bare redis-py PING, for scale)", best_ping, "1 round trip"))

            for background, name in (
                (True, "governor, Redis"),
                (False, "governor, Redis, waits every settle"),
            ):
                store = RedisStore(url, background=background, timeout=1.0)
                driver = pe.Driver(engine, governor=pe.Governor(policy, store=store))
                per_call(driver, 50, 1)  # warm: the script loaded, the connection made
                store.flush()
                before = script_calls(url)
                seconds = per_call(driver, args.calls, args.repeats)
                store.flush()
                trips = (script_calls(url) - before) / (args.calls * args.repeats)
                rows.append((name, seconds, f"{trips:.2f} scripts per call"))
    print(
        f"python {platform.python_version()} on {platform.machine()} ({os.cpu_count()} CPUs), "
        f"{args.calls} calls x {args.repeats} repeats, best repeat\n"
    )
    print("| driver | per call | over no governor | Redis |")
    print("|---|---|---|---|")
    for name, seconds, note in rows:
        extra = f"+{(seconds - baseline) * 1e6:.0f} us ({seconds / baseline:.2f}x)"
        print(f"| {name} | {seconds * 1e6:.1f} us | {extra} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
