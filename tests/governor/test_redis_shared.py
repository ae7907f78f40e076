"""The governor's state on a real Redis, shared by real processes: worker
processes of real httpx clients against one loopback gateway learn the rate
limit, the outage and the exhausted quota together; a Redis that is down,
slow, restarted or not a Redis never fails a call."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import policyengine as pe
from policyengine.testing import FakeGateway, RateLimit, quota_exhausted, unavailable

redis = pytest.importorskip("redis")
httpx = pytest.importorskip("httpx")
from policyengine.httpx import PolicyTransport  # noqa: E402
from policyengine.redis import RedisStore  # noqa: E402

from .conftest import RedisServer  # noqa: E402

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
KEY = {"Authorization": "Bearer sk-test-fleet"}

WORKER = r"""
import json, sys, threading
import httpx
import policyengine as pe
from policyengine.httpx import PolicyTransport

url, threads, calls, layer = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
engine = pe.Engine(pe.load_policy(layer, env=False))
client = httpx.Client(transport=PolicyTransport(engine=engine), timeout=10)
statuses = []
lock = threading.Lock()

def work():
    for _ in range(calls):
        with pe.overriding(max_elapsed=3.0):
            status = client.post(url, json={"model": "gpt-4o", "messages": []},
                                 headers={"Authorization": "Bearer sk-test-fleet"}).status_code
        with lock:
            statuses.append(status)

pool = [threading.Thread(target=work) for _ in range(threads)]
for t in pool: t.start()
for t in pool: t.join()
print(json.dumps(statuses))
"""


def fleet(
    redis_url: str, url: str, *, processes: int, threads: int, calls: int, layer: Any = None
) -> list[int]:
    """Run worker processes sharing ``redis_url``; every status they saw."""
    env = {**os.environ, "POLICYENGINE_REDIS_URL": redis_url}
    spec = json.dumps(layer or {})
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(threads), str(calls), spec],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(processes)
    ]
    statuses: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()[-2000:]
        statuses += json.loads(out)
    return statuses


def flushed(redis_url: str) -> None:
    """Empty the test Redis between scenarios."""
    redis.Redis.from_url(redis_url).flushdb()


def test_a_fleet_asks_an_exhausted_quota_at_most_twice(redis_url: str) -> None:
    flushed(redis_url)
    with FakeGateway(default=quota_exhausted()) as gateway:
        statuses = fleet(redis_url, gateway.chat_url, processes=3, threads=4, calls=3)
        assert statuses == [429] * 36
        assert gateway.count() <= 2, gateway.count()


def test_a_fleet_paces_itself_to_a_shared_rate_limit(redis_url: str) -> None:
    flushed(redis_url)
    with FakeGateway(rate_limit=RateLimit(per_second=40.0, burst=5.0)) as gateway:
        # Callers wait for the key's first answer however long it takes (a
        # worker process may start slowly): the pace is what is tested here.
        statuses = fleet(
            redis_url,
            gateway.chat_url,
            processes=3,
            threads=4,
            calls=5,
            layer={"governor": {"first_contact": 30.0}},
        )
        assert statuses == [200] * 60
        assert gateway.rejected <= 3, gateway.rejected


def test_a_fleet_shares_one_circuit_in_an_outage(redis_url: str) -> None:
    flushed(redis_url)
    fast = {"governor": {"breaker": {"open_for": 0.5, "max_open_for": 1.0}}}
    with FakeGateway(default=unavailable()) as gateway:
        statuses = fleet(redis_url, gateway.chat_url, processes=3, threads=4, calls=3, layer=fast)
        assert statuses == [503] * 36
        # Each process alone would send 12 calls x 4 attempts = 48; together far less.
        assert gateway.count() <= 36, gateway.count()


# --- a Redis that fails ----------------------------------------------------------------


def _client(store: RedisStore) -> Any:
    governor = pe.Governor(pe.load_policy(env=False), store=store)
    return httpx.Client(transport=PolicyTransport(governor=governor), timeout=10)


def test_no_redis_at_all_decides_in_process_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisStore("redis://127.0.0.1:1/0")  # nothing listens there
    with (
        FakeGateway(default=quota_exhausted()) as gateway,
        _client(store) as client,
        caplog.at_level(logging.WARNING, logger="policyengine.governor"),
    ):
        statuses = [
            client.post(gateway.chat_url, json=BODY, headers=KEY).status_code for _ in range(5)
        ]
        assert statuses == [429] * 5
        assert gateway.count() == 1  # the in-process state still remembers
    downs = [r for r in caplog.records if getattr(r, "transition", "") == "store_down"]
    assert len(downs) == 1


def test_redis_killed_and_restarted_mid_run(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(own_redis.url)
    statuses: list[int] = []
    with (
        FakeGateway() as gateway,
        _client(store) as client,
        caplog.at_level(logging.INFO, logger="policyengine.governor"),
    ):
        for _ in range(5):
            statuses.append(client.post(gateway.chat_url, json=BODY, headers=KEY).status_code)
        own_redis.stop()
        for _ in range(5):
            statuses.append(client.post(gateway.chat_url, json=BODY, headers=KEY).status_code)
        own_redis.start()
        time.sleep(1.2)  # past RETRY_AFTER: Redis is asked again
        for _ in range(5):
            statuses.append(client.post(gateway.chat_url, json=BODY, headers=KEY).status_code)
    assert statuses == [200] * 15
    assert store.up
    transitions = [getattr(r, "transition", "") for r in caplog.records]
    assert transitions.count("store_down") == 1
    assert transitions.count("store_up") == 1


def test_a_slow_redis_does_not_hold_calls(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url, timeout=0.05)
    slow = redis.Redis.from_url(own_redis.url)
    replies: list[Any] = []
    blocker = threading.Thread(
        target=lambda: replies.append(slow.execute_command("DEBUG", "SLEEP", "3"))
    )
    with FakeGateway() as gateway, _client(store) as client:
        client.post(gateway.chat_url, json=BODY, headers=KEY)
        blocker.start()
        time.sleep(0.1)
        started = time.monotonic()
        statuses = [
            client.post(gateway.chat_url, json=BODY, headers=KEY).status_code for _ in range(5)
        ]
        spent = time.monotonic() - started
        blocker.join()
    assert replies == [b"OK"]  # the server really slept
    assert statuses == [200] * 5
    # Not a speed claim: the calls did not wait out the 1.5 s the server slept.
    assert spent < 1.5, spent


def test_something_that_is_not_redis_is_survived() -> None:
    with FakeGateway() as not_redis, FakeGateway() as gateway:
        port = not_redis.url.rsplit(":", 1)[1]
        store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.5)
        with _client(store) as client:
            statuses = [
                client.post(gateway.chat_url, json=BODY, headers=KEY).status_code for _ in range(3)
            ]
        assert statuses == [200] * 3
        assert not store.up


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:6379",  # no scheme
        "redis://:hunter2secret@127.0.0.1:notaport/0",
        "redis://:hunter2secret@127.0.0.1:1/0?socket_timeout=soon",
        "http://127.0.0.1:1/0",
    ],
)
def test_a_redis_url_that_does_not_parse_never_fails_a_call(
    url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("POLICYENGINE_REDIS_URL", url)
    with (
        FakeGateway() as gateway,
        caplog.at_level(logging.WARNING, logger="policyengine.governor"),
    ):
        for _ in range(2):  # (a second client: the same store, said once)
            client = httpx.Client(transport=PolicyTransport(engine=pe.Engine()), timeout=5)
            with client:
                assert client.post(gateway.chat_url, json=BODY, headers=KEY).status_code == 200
    said = [r.getMessage() for r in caplog.records if "Redis" in r.getMessage()]
    assert len(said) == 1, said
    assert "in this process" in said[0]
    assert "hunter2secret" not in said[0]


def test_the_store_never_names_the_key_or_the_password(redis_url: str, tmp_path: Path) -> None:
    store = RedisStore("redis://:hunter2secret@127.0.0.1:1/0")
    assert "hunter2secret" not in repr(store)


def test_a_send_redis_admitted_settles_sanely_in_the_fallback(own_redis: RedisServer) -> None:
    # Redis numbers its sends; when it dies between a send and its answer,
    # the answer lands in the in-process fallback, whose limiter must not
    # read Redis's number as its own (it did: 100 sends "left").
    from policyengine._governor import TrafficKey
    from policyengine._governor._ratelimit import Allowance, Reading
    from policyengine._governor._steps import SettleReport, Verdict

    settings = pe.load_policy(env=False).governor
    store = RedisStore(own_redis.url, background=False)
    key = TrafficKey("h", "", "m")
    tickets = []
    for _ in range(120):
        step, _ = store.admit(key, 0.0, settings, False, float("inf"), 0.0)
        if step.verdict is Verdict.GO:
            tickets.append(step.seq)
        report = SettleReport(
            tickets[-1],
            False,
            False,
            False,
            None,
            None,
            None,
            False,
            lambda: None,  # type: ignore[arg-type, return-value]
        )
        store.settle(key, 0.0, settings, report)
    own_redis.stop()
    spent = Reading(Allowance(100.0, 0.0, 30.0, None), None, "t")
    step, _ = store.admit(key, 0.0, settings, False, float("inf"), 0.0)  # down: the fallback
    report = SettleReport(
        tickets[-1],
        False,
        False,
        False,
        None,
        spent,
        None,
        False,
        lambda: None,  # type: ignore[arg-type, return-value]
    )
    store.settle(key, 0.0, settings, report)
    after, _ = store.admit(key, 0.1, settings, False, float("inf"), 0.0)
    assert not store.up
    assert after.verdict is Verdict.HOLD and after.why == "spent"
