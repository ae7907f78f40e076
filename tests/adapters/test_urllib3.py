"""policyengine.urllib3 with real urllib3 pools (and requests' HTTPAdapter)
against the fake gateway."""

from __future__ import annotations

import logging

import pytest

urllib3 = pytest.importorskip("urllib3")

import policyengine as pe  # noqa: E402
from policyengine.testing import (  # noqa: E402
    FakeGateway,
    TestingMode,
    invalid_api_key,
    model_not_found,
    rate_limited,
    reset,
    slow,
    unavailable,
)
from policyengine.urllib3 import PolicyGaveUp, PolicyRetry  # noqa: E402

from .scenarios import TIMEOUT, Scenarios, Sent, parse  # noqa: E402


class TestPoolManager(Scenarios):
    fallback = False  # urllib3's Retry cannot change the request body
    gates_first_attempt = False  # urllib3 asks a Retry only after an attempt
    streams = False  # nor does it see the body of a 2xx (see test_streams_pass_unwatched)
    bounded_bodies = False  # urllib3 reads a body whole before its Retry is asked

    def send(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Sent:
        with urllib3.PoolManager(retries=PolicyRetry(driver=driver)) as http:
            payload = {"model": model, "messages": []} if method == "POST" else None
            try:
                r = http.request(
                    method, gateway.chat_url, json=payload, headers=headers, timeout=TIMEOUT
                )
            except urllib3.exceptions.HTTPError as exc:
                return Sent(None, None, exc)
            return Sent(r.status, parse(r.data), None)


class TestRequestsHTTPAdapterMaxRetries(Scenarios):
    """requests' own HTTPAdapter, with PolicyRetry as max_retries."""

    fallback = False
    body_failures = False
    gates_first_attempt = False
    streams = False
    bounded_bodies = False  # PolicyRetry reads the body whole (urllib3 keeps it in .data)

    def send(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Sent:
        requests = pytest.importorskip("requests")
        with requests.Session() as session:
            adapter = requests.adapters.HTTPAdapter(max_retries=PolicyRetry(driver=driver))
            session.mount("http://", adapter)
            payload = {"model": model, "messages": []} if method == "POST" else None
            try:
                r = session.request(
                    method, gateway.chat_url, json=payload, headers=headers, timeout=TIMEOUT
                )
                # The body of a response the policy gave up on was read to decide:
                # urllib3 keeps it in .data (see the module's docs).
                return Sent(r.status_code, parse(r.content or r.raw.data), None)
            except requests.RequestException as exc:
                return Sent(None, None, exc)

    def test_reset_mid_response_is_classified_and_retried(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        # requests reads a success's body after urllib3 has returned it, so a
        # body that breaks off then is beyond any Retry (the module says so;
        # PolicyAdapter retries it).
        requests = pytest.importorskip("requests")
        gateway.script(reset())
        sent, decisions = self.run(gateway, default_engine)
        assert isinstance(sent.error, requests.exceptions.ChunkedEncodingError)
        assert gateway.count() == 1
        assert [d.action.kind for d in decisions] == [pe.ActionKind.SUCCEED]


def test_raise_on_status_gives_max_retry_error_with_the_action(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(invalid_api_key())
    retry = PolicyRetry(engine=default_engine, raise_on_status=True)
    with (
        urllib3.PoolManager(retries=retry) as http,
        pytest.raises(urllib3.exceptions.MaxRetryError) as caught,
    ):
        http.request("POST", gateway.chat_url, json={"model": "m"})
    reason = caught.value.reason
    assert isinstance(reason, PolicyGaveUp)
    assert reason.action.rule_id == "invalid-api-key"
    assert gateway.count() == 1


def test_final_response_keeps_its_history(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(rate_limited(retry_after=2), unavailable())
    with urllib3.PoolManager(retries=PolicyRetry(engine=default_engine)) as http:
        r = http.request("POST", gateway.chat_url, json={"model": "m"})
    assert r.status == 200
    assert isinstance(r.retries, PolicyRetry)
    assert [d.action.status for d in r.retries.decisions] == [429, 503]
    assert [h.status for h in r.retries.history] == [429, 503]
    assert testing.waits[0] == 2.0
    assert gateway.count() == 3


def test_connect_failure_is_max_retry_error(
    testing: TestingMode, default_engine: pe.Engine
) -> None:
    # A port nothing listens on (bound, then closed): connection refused.
    with FakeGateway() as gone:
        url = gone.chat_url
    with (
        urllib3.PoolManager(retries=PolicyRetry(engine=default_engine)) as http,
        pytest.raises(urllib3.exceptions.MaxRetryError) as caught,
    ):
        http.request("GET", url, timeout=TIMEOUT)
    assert isinstance(caught.value.reason, urllib3.exceptions.NewConnectionError)
    limit = default_engine.policy.rule("connection").max_attempts
    assert len(testing.waits) == limit - 1


def test_real_wait_is_at_least_what_the_server_asked(
    gateway: FakeGateway, default_engine: pe.Engine
) -> None:
    gateway.script(rate_limited(retry_after=None, retry_after_ms=150))
    with urllib3.PoolManager(retries=PolicyRetry(engine=default_engine)) as http:
        r = http.request("POST", gateway.chat_url, json={"model": "m"})
    assert r.status == 200
    first, second = gateway.received
    assert second.at - first.at >= 0.15


def test_read_timeout_is_raised_as_it_is(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(*[slow(3.0)] * 2)
    retry = PolicyRetry(engine=default_engine, override=pe.Override(max_attempts=2))
    with (
        urllib3.PoolManager(retries=retry) as http,
        pytest.raises(urllib3.exceptions.ReadTimeoutError) as caught,
    ):
        http.request("POST", gateway.chat_url, json={"model": "m"}, timeout=0.2)
    assert gateway.count() == 2
    assert any("gave up after 2 attempts" in n for n in getattr(caught.value, "__notes__", []))


def test_fallback_give_up_is_logged_as_a_give_up(
    gateway: FakeGateway,
    testing: TestingMode,
    deployment_engine: pe.Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway.script(model_not_found())
    with (
        caplog.at_level(logging.INFO, logger="policyengine"),
        urllib3.PoolManager(retries=PolicyRetry(engine=deployment_engine)) as http,
    ):
        r = http.request("POST", gateway.chat_url, json={"model": "m"})
    assert r.status == 404
    records = [rec for rec in caplog.records if rec.name == "policyengine"]
    assert [rec.levelno for rec in records] == [logging.WARNING]
    assert records[0].action == "fail"  # type: ignore[attr-defined]
    assert "this caller cannot switch models" in records[0].getMessage()


def test_streams_pass_unwatched(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    # What PolicyRetry cannot do, as documented: it sees only the status of a
    # 2xx, so a stream's error event first is handed over after one request,
    # and a drop mid-stream is urllib3's own error, with no decision attached.
    from policyengine.testing import error_event, streamed

    gateway.script(streamed(error_after=0, error=error_event()), streamed(drop_after=2))
    with urllib3.PoolManager(retries=PolicyRetry(engine=default_engine)) as http:
        r = http.request("POST", gateway.chat_url, json={"model": "m"}, preload_content=False)
        assert r.status == 200
        assert b"insufficient_quota" in b"".join(r.stream())
        r = http.request("POST", gateway.chat_url, json={"model": "m"}, preload_content=False)
        with pytest.raises(urllib3.exceptions.ProtocolError):
            b"".join(r.stream())
    assert gateway.count() == 2


def test_a_governor_is_shared_with_governor_as_on_every_adapter(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    governor = pe.Governor(default_engine.policy)
    retry = PolicyRetry(engine=default_engine, governor=governor)
    assert retry.driver.governor is governor
    assert retry.new().driver.governor is governor  # urllib3's copy per attempt
    gateway.script(invalid_api_key())
    with urllib3.PoolManager(retries=retry) as http:
        assert http.request("POST", gateway.chat_url, json={"model": "m"}).status == 401
    assert len(governor.store.keys()) == 1  # it learned from the answer
    with pytest.raises(TypeError, match="not both"):
        PolicyRetry(driver=pe.Driver(default_engine), governor=governor)
