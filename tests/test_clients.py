"""``evaluate()`` reads real client objects with no adapter code: responses of
requests, httpx, urllib3, aiohttp and the stdlib, and the exceptions they raise,
against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import policyengine as pe

from .conftest import error_body

RATE_LIMIT = error_body("Rate limit exceeded", "requests", "rate_limit_exceeded")
BAD_KEY = error_body(
    "Invalid API key provided: sk-nex-secret123.", "authentication_error", "invalid_api_key"
)


ENDLESS = b'{"error": {"code": "rate_limit_exceeded", "message": "slow'


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/429"):
            self.send_response(429)
            self.send_header("Retry-After", "3")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(RATE_LIMIT)))
            self.end_headers()
            self.wfile.write(RATE_LIMIT)
        elif self.path == "/401":
            self.send_response(401)
            self.send_header("Content-Length", str(len(BAD_KEY)))
            self.end_headers()
            self.wfile.write(BAD_KEY)
        elif self.path == "/slow":
            threading.Event().wait(2.0)
        elif self.path == "/endless-429":  # a body that never ends (for 10 s)
            self.send_response(429)
            self.send_header("Retry-After", "3")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(ENDLESS)
            stop = threading.Event()
            for _ in range(200):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                stop.wait(0.05)
        else:
            body = b'{"id": "ok"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_429(action: pe.Action, method: str | None = "POST") -> None:
    assert action.kind is pe.ActionKind.RETRY
    assert action.rule_id == "rate-limit-exceeded"
    assert action.delay == 3.0
    assert action.error is not None and action.error.code == "rate_limit_exceeded"


def check_401(action: pe.Action) -> None:
    assert action.kind is pe.ActionKind.FAIL
    assert action.classification == "authentication"
    assert "secret123" not in action.explanation + action.remediation


def test_requests(engine: pe.Engine, base_url: str) -> None:
    import requests

    check_429(engine.evaluate(requests.post(f"{base_url}/429", json={}, timeout=5)))
    check_401(engine.evaluate(requests.get(f"{base_url}/401", timeout=5)))
    assert engine.evaluate(requests.get(f"{base_url}/", timeout=5)).kind is pe.ActionKind.SUCCEED


def test_requests_http_error_carries_the_response(engine: pe.Engine, base_url: str) -> None:
    import requests

    try:
        requests.get(f"{base_url}/429", timeout=5).raise_for_status()
    except requests.HTTPError as exc:
        check_429(engine.evaluate(exc))
    else:  # pragma: no cover
        pytest.fail("no HTTPError")


def test_requests_failures(engine: pe.Engine, base_url: str, closed_port: int) -> None:
    import requests

    with pytest.raises(requests.ConnectionError) as refused:
        requests.get(f"http://127.0.0.1:{closed_port}/", timeout=5)
    action = engine.evaluate(refused.value)
    assert (action.kind, action.transport, action.classification) == (
        pe.ActionKind.RETRY,
        "refused",
        "connection",
    )
    with pytest.raises(requests.ReadTimeout) as slow:
        requests.get(f"{base_url}/slow", timeout=0.2)
    action = engine.evaluate(slow.value)
    assert (action.transport, action.classification) == ("read_timeout", "timeout")


def test_httpx(engine: pe.Engine, base_url: str, closed_port: int) -> None:
    import httpx

    with httpx.Client(timeout=5) as client:
        check_429(engine.evaluate(client.post(f"{base_url}/429", json={})))
        check_401(engine.evaluate(client.get(f"{base_url}/401")))
        with pytest.raises(httpx.ConnectError) as refused:
            client.get(f"http://127.0.0.1:{closed_port}/")
        assert engine.evaluate(refused.value).transport == "refused"
        with pytest.raises(httpx.ReadTimeout) as slow:
            client.get(f"{base_url}/slow", timeout=0.2)
        assert engine.evaluate(slow.value).transport == "read_timeout"


def test_openai_sdk_errors(engine: pe.Engine, base_url: str, closed_port: int) -> None:
    import openai

    client = openai.OpenAI(api_key="sk-test-secret", base_url=f"{base_url}/429/", max_retries=0)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    check_429(engine.evaluate(limited.value))
    down = openai.OpenAI(
        api_key="sk-test-secret", base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=0
    )
    with pytest.raises(openai.APIConnectionError) as refused:
        down.models.list()
    action = engine.evaluate(refused.value)
    assert (action.classification, action.transport) == ("connection", "refused")


def test_httpx_unread_stream_is_read_as_no_body(engine: pe.Engine, base_url: str) -> None:
    import httpx

    with httpx.Client(timeout=5) as client, client.stream("GET", f"{base_url}/429") as resp:
        action = engine.evaluate(resp)
        # Status and headers decide without the body; nothing was consumed.
        assert (action.kind, action.rule_id, action.delay) == (
            pe.ActionKind.RETRY,
            "rate-limit",
            3.0,
        )
        assert resp.read() == RATE_LIMIT


def test_requests_unread_stream_is_read_as_no_body(engine: pe.Engine, base_url: str) -> None:
    import requests

    # stream=True leaves the body unread: reading it to decide would stall
    # on a body that never ends, and take it from the caller.
    with requests.get(f"{base_url}/endless-429", stream=True, timeout=5) as resp:
        action = engine.evaluate(resp)
        assert (action.kind, action.rule_id, action.delay) == (
            pe.ActionKind.RETRY,
            "rate-limit",
            3.0,
        )
        assert resp.raw.read(len(ENDLESS)) == ENDLESS


def test_urllib3_unread_body_is_read_as_no_body(engine: pe.Engine, base_url: str) -> None:
    import urllib3

    with urllib3.PoolManager() as pool:
        resp = pool.request(
            "GET", f"{base_url}/endless-429", retries=False, preload_content=False, timeout=5
        )
        action = engine.evaluate(resp)
        assert (action.kind, action.rule_id, action.delay) == (
            pe.ActionKind.RETRY,
            "rate-limit",
            3.0,
        )
        assert resp.read(len(ENDLESS)) == ENDLESS
        resp.release_conn()


def test_urllib3(engine: pe.Engine, base_url: str, closed_port: int) -> None:
    import urllib3

    with urllib3.PoolManager() as pool:
        check_429(engine.evaluate(pool.request("POST", f"{base_url}/429", retries=False)))
        with pytest.raises(urllib3.exceptions.NewConnectionError) as refused:
            pool.request("GET", f"http://127.0.0.1:{closed_port}/", retries=False)
        assert engine.evaluate(refused.value).transport == "refused"


def test_http_client_peeks_without_consuming(engine: pe.Engine, base_url: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/429")
    resp = conn.getresponse()
    check_429(engine.evaluate(resp))
    assert resp.read() == RATE_LIMIT  # the caller still gets the whole body
    conn.close()


def test_urllib_http_error(engine: pe.Engine, base_url: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{base_url}/401", timeout=5)
    check_401(engine.evaluate(caught.value))
    assert caught.value.read() == BAD_KEY
    caught.value.close()


async def test_aiohttp(engine: pe.Engine, base_url: str, closed_port: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base_url}/429", json={}) as resp:
            await resp.read()
            check_429(engine.evaluate(resp))
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.get(f"http://127.0.0.1:{closed_port}/")
        assert engine.evaluate(refused.value).transport in ("refused", "connection")
        with pytest.raises(asyncio.TimeoutError) as slow:  # TimeoutError from 3.11 on
            await session.get(f"{base_url}/slow", timeout=aiohttp.ClientTimeout(total=0.2))
        assert engine.evaluate(slow.value).classification == "timeout"
