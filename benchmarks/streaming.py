"""Per-chunk overhead of a watched stream: the adapters' wrapping iterator
against the bare client iterator, measured in the same run.

    python benchmarks/streaming.py            # ~30 s
    python benchmarks/streaming.py --quick    # fewer repeats
    python benchmarks/streaming.py --json

Two measures, each the best of several interleaved repeats:

- in memory: the same chat-completion chunks (one event each, ~190 bytes)
  iterated through ``httpx.Response.iter_raw()`` over a bare byte stream,
  and over the stream ``PolicyTransport`` hands out (replay, SSE parser,
  event count, error check): the watch's CPU cost per chunk, with nothing
  else to hide it;
- over loopback: a streamed chat completion of 2,002 events from a server in
  another process (FakeGateway, one HTTP chunk per event), read whole with
  ``httpx.Client`` and ``requests``, bare and with the policy adapter: the
  time per event a caller sees (per event, not per chunk: how many events a
  read returns depends on who is faster, the reader or the server).

Absolute times drift on shared machines; the ratios are the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import requests

import policyengine as pe
from policyengine._streaming import Watch
from policyengine.httpx import PolicyTransport, _WatchedStream
from policyengine.requests import PolicyAdapter
from policyengine.testing import chat_events

CHUNK = (
    "".join(chat_events("Hello")).split("\n\n")[0].replace("{{model}}", "gpt-4o-mini").encode()
    + b"\n\n"
)


def _best(fn: Callable[[], float], repeats: int) -> float:
    return min(fn() for _ in range(repeats))


class _Bare(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


def in_memory(chunks: int, repeats: int) -> dict[str, Any]:
    """Seconds per chunk through iter_raw(): bare, and through the watch."""
    data = [CHUNK] * chunks
    engine = pe.Engine()

    def bare() -> float:
        response = httpx.Response(200, stream=_Bare(data))
        start = time.perf_counter()
        for _ in response.iter_raw():
            pass
        return (time.perf_counter() - start) / chunks

    def watched() -> float:
        watch = Watch(engine.evaluate, 200, [("content-type", "text/event-stream")], "POST")
        stream = _WatchedStream(data[:1], iter(data[1:]), watch, None)
        response = httpx.Response(200, stream=stream)
        start = time.perf_counter()
        for _ in response.iter_raw():
            pass
        elapsed = (time.perf_counter() - start) / chunks
        assert watch.events == chunks
        return elapsed

    times = {"bare": [], "watched": []}  # interleaved, so drift hits both
    for _ in range(repeats):
        times["bare"].append(bare())
        times["watched"].append(watched())
    b, w = min(times["bare"]), min(times["watched"])
    return {"chunk_bytes": len(CHUNK), "bare_us": b * 1e6, "watched_us": w * 1e6, "ratio": w / b}


def _serve(ready: Any, port: Any, events: int) -> None:  # pragma: no cover - child process
    from policyengine.testing import FakeGateway, streamed

    words = " ".join(["word"] * events)
    with FakeGateway(default=streamed(words)) as gateway:
        port.value = int(gateway.url.rsplit(":", 1)[1])
        ready.set()
        while True:
            time.sleep(3600)


def loopback(events: int, repeats: int) -> dict[str, Any]:
    """Seconds per event of a whole streamed answer, bare and through each adapter."""
    context = multiprocessing.get_context("spawn")
    ready, port = context.Event(), context.Value("i", 0)
    server = context.Process(target=_serve, args=(ready, port, events), daemon=True)
    server.start()
    ready.wait(30)
    url = f"http://127.0.0.1:{port.value}/v1/chat/completions"
    body = {"model": "m", "stream": True}
    engine = pe.Engine()
    plain_http, policy_http = httpx.Client(), httpx.Client(transport=PolicyTransport(engine=engine))
    plain_session, policy_session = requests.Session(), requests.Session()
    policy_session.mount("http://", PolicyAdapter(engine=engine))

    def with_httpx(client: httpx.Client) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            with client.stream("POST", url, json=body) as r:
                for _ in r.iter_raw():
                    pass
            return (time.perf_counter() - start) / (events + 2)

        return run

    def with_requests(session: requests.Session) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            with session.post(url, json=body, stream=True) as r:
                for _ in r.iter_content(None):
                    pass
            return (time.perf_counter() - start) / (events + 2)

        return run

    runs = {
        "httpx": (with_httpx(plain_http), with_httpx(policy_http)),
        "requests": (with_requests(plain_session), with_requests(policy_session)),
    }
    out: dict[str, Any] = {}
    try:
        for name, (bare, watched) in runs.items():
            bare(), watched()  # warm the pools
            times: dict[str, list[float]] = {"bare": [], "watched": []}
            for _ in range(repeats):
                times["bare"].append(bare())
                times["watched"].append(watched())
            b, w = min(times["bare"]), min(times["watched"])
            out[name] = {"bare_us": b * 1e6, "watched_us": w * 1e6, "ratio": w / b}
    finally:
        server.terminate()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 9
    memory = in_memory(20_000, repeats)
    network = loopback(2_000, repeats)
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "in_memory": memory,
        "loopback": network,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(f"Python {result['python']}, {result['machine']}; best of {repeats}")
    print("| measure | bare | watched | ratio |")
    print("|---|---|---|---|")
    print(
        f"| in memory, httpx `iter_raw()`, {memory['chunk_bytes']}-byte chunks | "
        f"{memory['bare_us']:.2f} µs | {memory['watched_us']:.2f} µs | {memory['ratio']:.2f}x |"
    )
    for name, row in network.items():
        print(
            f"| loopback, {name}, per event of a whole stream | {row['bare_us']:.2f} µs | "
            f"{row['watched_us']:.2f} µs | {row['ratio']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
