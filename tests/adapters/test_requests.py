"""policyengine.requests with a real requests session against the fake gateway."""

from __future__ import annotations

import io

import pytest

requests = pytest.importorskip("requests")

import policyengine as pe  # noqa: E402
from policyengine.requests import PolicyAdapter  # noqa: E402
from policyengine.testing import (  # noqa: E402
    FakeGateway,
    TestingMode,
    rate_limited,
    slow,
    unavailable,
)

from .scenarios import TIMEOUT, Scenarios, Sent, Streamed, parse, read_stream  # noqa: E402


class TestRequests(Scenarios):
    def send(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Sent:
        with requests.Session() as session:
            session.mount("http://", PolicyAdapter(driver=driver))
            payload = {"model": model, "messages": []} if method == "POST" else None
            try:
                r = session.request(
                    method, gateway.chat_url, json=payload, headers=headers, timeout=TIMEOUT
                )
            except requests.RequestException as exc:
                return Sent(None, None, exc)
            return Sent(r.status_code, parse(r.content), None)

    def stream(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        headers: dict[str, str] | None = None,
    ) -> Streamed:
        chunks: list[bytes] = []
        status = None
        with requests.Session() as session:
            session.mount("http://", PolicyAdapter(driver=driver))
            payload = {"model": model, "messages": []}
            try:
                r = session.post(
                    gateway.chat_url, json=payload, headers=headers, timeout=TIMEOUT, stream=True
                )
                status = r.status_code
                chunks.extend(r.iter_content(None))
            except (requests.RequestException, pe.StreamInterrupted) as exc:
                return read_stream(status, chunks, exc)
        return read_stream(status, chunks, None)


def test_final_timeout_is_requests_own_exception_with_a_note(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(*[slow(3.0)] * 3)
    with requests.Session() as session:
        session.mount("http://", PolicyAdapter(engine=default_engine))
        with pe.overriding(max_attempts=2), pytest.raises(requests.ReadTimeout) as caught:
            session.post(gateway.chat_url, json={"model": "m"}, timeout=0.2)
    assert gateway.count() == 2
    assert any("gave up after 2 attempts" in n for n in getattr(caught.value, "__notes__", []))


def test_max_retries_is_refused_with_what_to_do_instead() -> None:
    with pytest.raises(TypeError, match="overriding"):
        PolicyAdapter(max_retries=3)


def test_session_features_keep_working(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(rate_limited(retry_after=1))
    with requests.Session() as session:
        session.headers["X-Team"] = "search"
        session.mount("http://", PolicyAdapter(engine=default_engine, pool_maxsize=2))
        r = session.post(gateway.chat_url, json={"model": "m"})
    assert r.status_code == 200
    assert r.json()["model"] == "m"
    assert [q.header("X-Team") for q in gateway.received] == ["search", "search"]
    assert testing.waits == [1.0]


def test_real_wait_is_at_least_what_the_server_asked(
    gateway: FakeGateway, default_engine: pe.Engine
) -> None:
    gateway.script(rate_limited(retry_after=None, retry_after_ms=150))
    with requests.Session() as session:
        session.mount("http://", PolicyAdapter(engine=default_engine))
        r = session.post(gateway.chat_url, json={"model": "m"})
    assert r.status_code == 200
    first, second = gateway.received
    assert second.at - first.at >= 0.15


def test_a_streamed_body_is_sent_whole_on_every_attempt(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(unavailable(), unavailable())
    with requests.Session() as session:
        session.mount("http://", PolicyAdapter(engine=default_engine))
        r = session.post(gateway.chat_url, data=iter([b'{"model": ', b'"m"}']), timeout=5)
    assert r.status_code == 200
    assert [q.body for q in gateway.received] == [b'{"model": "m"}'] * 3


def test_a_file_body_is_rewound_for_every_attempt(
    gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
) -> None:
    gateway.script(unavailable())
    with requests.Session() as session:
        session.mount("http://", PolicyAdapter(engine=default_engine))
        r = session.post(gateway.chat_url, data=io.BytesIO(b'{"model": "m"}'), timeout=5)
    assert r.status_code == 200
    assert [q.body for q in gateway.received] == [b'{"model": "m"}'] * 2
