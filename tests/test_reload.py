"""Hot reload: a running driver swaps its policy atomically; calls in flight
finish under the policy they started with; a bad file changes nothing; the
governor's state survives; a watcher follows the files."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest

import policyengine as pe
from policyengine.httpx import AsyncPolicyTransport, PolicyTransport
from policyengine.testing import FakeGateway, quota_exhausted, testing_mode, unavailable

BODY = {"model": "gpt-4o", "messages": []}


def flavour(name: str) -> dict[str, object]:
    """A whole policy whose every 503 is classified ``<name>``, retried 3 times."""
    return {
        "inherit": False,
        "rules": [
            {"id": "ok", "match": {"status": "2xx"}, "action": "succeed", "classification": "ok"},
            {
                "id": f"{name}-503",
                "match": {"status": 503},
                "classification": name,
                "action": "retry",
                "retryable": True,
                "max_attempts": 3,
                "backoff": {"initial": 0.0},
            },
        ],
    }


def test_reload_swaps_the_policy_for_calls_that_start_after_it() -> None:
    a, b = pe.load_policy(flavour("a"), env=False), pe.load_policy(flavour("b"), env=False)
    driver = pe.Driver(pe.Engine(a), governor=None)
    started, go_on = threading.Event(), threading.Event()

    def slow_503(attempt: pe.Attempt) -> pe.Response:
        if attempt.number == 1:
            started.set()
            go_on.wait(10)
        return pe.Response(503)

    outcome: list[pe.Outcome[pe.Response]] = []
    caller = threading.Thread(target=lambda: outcome.append(driver.run(slow_503)))
    caller.start()
    started.wait(10)
    assert driver.reload(b) is b
    go_on.set()
    caller.join(10)
    # The call in flight finished under the policy it started with...
    assert {d.action.classification for d in outcome[0].history} == {"a"}
    # ...and a new one runs under the new one.
    assert driver.run(lambda _: pe.Response(503)).action.classification == "b"


def test_a_bad_policy_changes_nothing(tmp_path: Path) -> None:
    driver = pe.Driver(pe.Engine(pe.load_policy(env=False)))
    before = driver.engine
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\nid = "x"\nmatch = {}\nmax_attempts = 0\n', encoding="utf-8")
    with pytest.raises(pe.PolicyError, match=r"bad.toml: \$\.rules\[0\]\.max_attempts"):
        driver.reload(bad, env=False)
    assert driver.engine is before


def test_the_governor_keeps_its_state_across_a_reload() -> None:
    with FakeGateway(default=quota_exhausted()) as gateway:
        transport = PolicyTransport(engine=pe.Engine(pe.load_policy(env=False)))
        with httpx.Client(transport=transport, timeout=10) as client:
            client.post(gateway.chat_url, json=BODY)
            transport.driver.reload(env=False)
            assert client.post(gateway.chat_url, json=BODY).status_code == 429
            assert gateway.count() == 1  # still sticky: not asked again


def test_no_call_sees_a_half_applied_policy_under_load() -> None:
    a, b = pe.load_policy(flavour("a"), env=False), pe.load_policy(flavour("b"), env=False)
    transport = PolicyTransport(engine=pe.Engine(a))
    histories: list[set[str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    with (
        FakeGateway(default=unavailable()) as gateway,
        httpx.Client(transport=transport, timeout=10) as client,
    ):

        def caller() -> None:
            with testing_mode():
                for _ in range(15):
                    response = client.post(gateway.chat_url, json=BODY)
                    names = {
                        d.action.classification for d in response.extensions["policyengine.history"]
                    }
                    with lock:
                        histories.append(names)

        def swapper() -> None:
            flip = True
            while not stop.is_set():
                transport.driver.reload(b if flip else a)
                flip = not flip
                time.sleep(0.002)

        swapping = threading.Thread(target=swapper)
        swapping.start()
        callers = [
            threading.Thread(target=contextvars.copy_context().run, args=(caller,))
            for _ in range(4)
        ]
        for t in callers:
            t.start()
        for t in callers:
            t.join(60)
        stop.set()
        swapping.join(10)
    assert len(histories) == 60
    assert all(names in ({"a"}, {"b"}) for names in histories), histories
    assert {"a"} in histories and {"b"} in histories  # both policies did serve


async def test_asyncio_calls_keep_their_policy_across_a_reload() -> None:
    a, b = pe.load_policy(flavour("a"), env=False), pe.load_policy(flavour("b"), env=False)
    transport = AsyncPolicyTransport(engine=pe.Engine(a))
    with FakeGateway(default=unavailable()) as gateway, testing_mode():
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:

            async def call() -> set[str]:
                response = await client.post(gateway.chat_url, json=BODY)
                return {
                    d.action.classification for d in response.extensions["policyengine.history"]
                }

            async def swap() -> None:
                for i in range(20):
                    transport.driver.reload(b if i % 2 == 0 else a)
                    await asyncio.sleep(0)

            results = await asyncio.gather(*(call() for _ in range(20)), swap())
    assert all(names in ({"a"}, {"b"}) for names in results[:20])


def test_the_watcher_follows_the_file_and_rejects_a_bad_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "prod.toml"
    path.write_text('[[rules]]\nid = "teapot"\nmatch = { status = 418 }\nclassification = "tea"\n')
    driver = pe.Driver(pe.Engine(pe.load_policy(path, env=False)))
    watcher = pe.PolicyWatcher(driver, path, env=False, interval=0.02)
    assert not watcher.check()  # nothing changed yet
    path.write_text(
        '[[rules]]\nid = "teapot"\nmatch = { status = 418 }\nclassification = "coffee"\n'
    )
    assert watcher.check()
    assert driver.engine.policy.rule("teapot").classification == "coffee"
    in_use = driver.engine
    with caplog.at_level(logging.ERROR, logger="policyengine"):
        path.write_text('[[rules]]\nid = "teapot"\nmatch = {}\nmax_attempts = "many"\n')
        assert not watcher.check()
    assert driver.engine is in_use
    assert "max_attempts" in caplog.text and "stays" in caplog.text
    # And in its own thread.
    with watcher:
        path.write_text(
            '[[rules]]\nid = "teapot"\nmatch = { status = 418 }\nclassification = "tea"\n'
        )
        deadline = time.monotonic() + 10
        while driver.engine.policy.rule("teapot").classification != "tea":
            assert time.monotonic() < deadline, "the watcher did not reload"
            time.sleep(0.02)
