"""policyengine.testing: the fake gateway speaks the seed API's error format and
replays scripts; testing mode is importable into test modules."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from typing import Any

import pytest

import policyengine as pe
from policyengine import testing as pt


def post(
    gateway: pt.FakeGateway, body: Any, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture
def gateway() -> Any:
    with pt.FakeGateway() as running:
        yield running


def test_default_reply_is_a_chat_completion_for_the_requested_model(
    gateway: pt.FakeGateway,
) -> None:
    status, _, body = post(gateway, {"model": "gpt-x", "messages": []})
    assert status == 200
    data = json.loads(body)
    assert data["model"] == "gpt-x"
    assert data["choices"][0]["message"]["role"] == "assistant"
    assert gateway.count() == 1
    assert gateway.received[0].json() == {"model": "gpt-x", "messages": []}


@pytest.mark.parametrize(
    ("reply", "status", "code", "type_"),
    [
        (pt.rate_limited(), 429, "rate_limit_exceeded", "rate_limit_error"),
        (pt.unavailable(), 503, "service_unavailable", "upstream_error"),
        (pt.invalid_api_key(), 401, "invalid_api_key", "authentication_error"),
        (pt.context_length_exceeded(), 400, "context_length_exceeded", "invalid_request_error"),
        (pt.model_not_found(), 404, "model_not_found", "invalid_request_error"),
        (pt.server_error(), 500, None, "server_error"),
    ],
)
def test_errors_use_the_seed_error_body(
    gateway: pt.FakeGateway, reply: pt.Reply, status: int, code: str | None, type_: str
) -> None:
    gateway.script(reply)
    got, headers, body = post(gateway, {"model": "m1"}, {"Authorization": "Bearer sk-abc123456"})
    assert got == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert set(error) >= {"message", "type", "code"}
    assert (error["code"], error["type"]) == (code, type_)


def test_placeholders_are_filled(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.model_not_found(), pt.invalid_api_key(echo_key=True))
    _, _, body = post(gateway, {"model": "gpt-typo"})
    assert json.loads(body)["error"]["message"] == "Model 'gpt-typo' not found"
    _, _, body = post(gateway, {"model": "m"}, {"Authorization": "Bearer sk-live-xyz"})
    assert json.loads(body)["error"]["message"] == "Invalid API key provided: sk-live-xyz."


def test_rate_limited_hints(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.rate_limited(retry_after=2, retry_after_ms=1500))
    _, headers, _ = post(gateway, {})
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "1500"


def test_bad_gateway_is_an_html_page(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.bad_gateway_html())
    status, headers, body = post(gateway, {})
    assert status == 502
    assert headers["content-type"] == "text/html"
    assert b"<title>502 Bad Gateway</title>" in body


def test_scripts_per_model_then_any_model_then_default(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.unavailable(), model="a")
    gateway.script(pt.server_error())
    assert post(gateway, {"model": "b"})[0] == 500  # any-model script
    assert post(gateway, {"model": "a"})[0] == 503  # its own script first
    assert post(gateway, {"model": "a"})[0] == 200  # nothing left: default
    assert gateway.models() == ["b", "a", "a"]
    assert gateway.count(model="a") == 2
    assert gateway.pending() == 0


def test_slow_reply_makes_a_client_time_out(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.slow(2.0))
    with pytest.raises(TimeoutError):
        post(gateway, {}, timeout=0.2)
    assert gateway.count() == 1


def test_reset_breaks_the_body_off(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.reset())
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        post(gateway, {"model": "m"})
    assert gateway.count() == 1


def test_chunked_request_bodies_are_read(gateway: pt.FakeGateway) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("POST", "/v1/x", body=iter([b'{"model": ', b'"chunky"}']), encode_chunked=True)
    assert conn.getresponse().status == 200
    conn.close()
    assert gateway.models() == ["chunky"]


def test_stop_drops_replies_still_waiting(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.slow(30.0))
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    while gateway.count() == 0:
        time.sleep(0.01)
    started = time.monotonic()
    gateway.stop()
    # Far less than the 30 s the reply waits: stop() does not wait for it.
    assert time.monotonic() - started < 20
    sock.close()


def test_loopback_only_and_helpful_errors() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        pt.FakeGateway(host="0.0.0.0")
    gateway = pt.FakeGateway()
    with pytest.raises(RuntimeError, match="start the gateway first"):
        _ = gateway.url
    with gateway, pytest.raises(RuntimeError, match="already running"):
        gateway.start()


def test_testing_helpers_are_exported_and_not_collected() -> None:
    assert pt.testing_mode.__test__ is False  # type: ignore[attr-defined]
    assert pt.TestingMode.__test__ is False
    with pt.testing_mode(seed=2) as mode:
        assert pt.is_testing()
        with pytest.raises(pe.GaveUp):
            pe.Driver().call(lambda a: pe.Response(500), override={"max_attempts": 2})
        assert len(mode.waits) == 1
    assert not pt.is_testing()
    assert sorted(pt.__all__) == pt.__all__


def test_testing_mode_blocks_in_concurrent_tasks_are_isolated() -> None:
    # Two tasks' blocks overlap and end in the order they began: each task
    # records its own waits, and testing mode is off once both are done.
    async def one(started: asyncio.Event, go_on: asyncio.Event, status: int) -> list[float]:
        with pt.testing_mode(seed=1) as mode:
            started.set()
            await go_on.wait()
            pe.Driver().run(lambda a: pe.Response(status), override={"max_attempts": 2})
            return mode.waits

    async def main() -> tuple[list[float], list[float]]:
        a_in, b_in, a_go, b_go = (asyncio.Event() for _ in range(4))
        a = asyncio.create_task(one(a_in, a_go, 500))
        await a_in.wait()
        b = asyncio.create_task(one(b_in, b_go, 401))  # 401: never retried
        await b_in.wait()
        a_go.set()
        waits_a = await a
        b_go.set()
        return waits_a, await b

    waits_a, waits_b = asyncio.run(main())
    assert len(waits_a) == 1
    assert waits_b == []
    assert not pt.is_testing()


def test_testing_mode_block_does_not_reach_other_threads() -> None:
    seen: list[bool] = []
    with pt.testing_mode():
        worker = threading.Thread(target=lambda: seen.append(pt.is_testing()))
        worker.start()
        worker.join()
        assert pt.is_testing()
    assert seen == [False]


def test_set_testing_is_for_the_whole_process() -> None:
    seen: list[bool] = []
    try:
        pt.set_testing(True)
        worker = threading.Thread(target=lambda: seen.append(pt.is_testing()))
        worker.start()
        worker.join()
    finally:
        pt.set_testing(False)
    assert seen == [True]
    assert not pt.is_testing()


def test_set_testing_as_a_context_manager_puts_back_what_it_replaced() -> None:
    assert not pt.is_testing()
    with pt.set_testing(True, seed=3) as outer:
        assert outer is not None and outer.seed == 3 and pt.is_testing()
        with pt.set_testing(True, seed=4) as inner:
            assert inner is not None
            assert pe._testing.current_testing() is inner
        assert pe._testing.current_testing() is outer
    assert not pt.is_testing()


def test_only_the_mode_set_testing_returns_is_a_context_manager() -> None:
    with pt.testing_mode() as mode, pytest.raises(TypeError, match="set_testing"):
        mode.__enter__()


def test_testing_mode_keeps_no_engine_alive() -> None:
    import gc
    import weakref

    with pt.testing_mode(seed=1) as mode:
        engine = pe.Engine()
        seeded = mode.engine_for(engine)
        assert mode.engine_for(engine) is seeded  # one seeded twin per engine
        gone = weakref.ref(engine)
        del engine, seeded
        gc.collect()
        assert gone() is None
        assert len(mode._engines) == 0


def _raw_stream(gateway: pt.FakeGateway, model: str = "m") -> bytes:
    """The raw bytes of a streamed reply (chunk framing included), to its end."""
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        body = json.dumps({"model": model}).encode()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_a_streamed_reply_sends_an_http_chunk_per_event(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.streamed("Hi there"))
    status, headers, body = post(gateway, {"model": "gpt-s"})
    assert (status, headers["content-type"], headers["transfer-encoding"]) == (
        200,
        "text/event-stream",
        "chunked",
    )
    events = [e for e in body.decode().split("\n\n") if e]
    assert [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[:-1]] == [
        "Hi",
        " there",
        None,
    ]
    assert json.loads(events[0][6:])["model"] == "gpt-s"
    assert events[-1] == "data: [DONE]"
    raw = _raw_stream(gateway.script(pt.streamed("a b")))
    assert raw.count(b"\r\ndata: ") == 4  # one chunk each: two words, the finish, [DONE]
    assert raw.endswith(b"\r\n0\r\n\r\n")


def test_a_stream_can_error_after_n_events(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.streamed("a b c", error_after=2, error=pt.error_event("no", "t", "c")))
    _, _, body = post(gateway, {})
    events = [e for e in body.decode().split("\n\n") if e]
    assert len(events) == 3
    assert json.loads(events[2][6:]) == {"error": {"message": "no", "type": "t", "code": "c"}}
    gateway.script(pt.streamed(error_after=0))
    _, _, body = post(gateway, {})
    assert body.decode() == pt.overloaded_event()


def test_a_stream_can_drop_after_n_events(gateway: pt.FakeGateway) -> None:
    raw = _raw_stream(gateway.script(pt.streamed("a b c", drop_after=2)))
    assert raw.count(b"\r\ndata: ") == 2
    assert not raw.endswith(b"0\r\n\r\n")  # the chunked body never ends
    gateway.script(pt.streamed(drop_after=1))
    with pytest.raises(http.client.IncompleteRead):
        post(gateway, {})


def test_a_stream_waits_between_events(gateway: pt.FakeGateway) -> None:
    # Ordering only (no timed assertion): the second event is not sent until
    # the gap is over, so a reader sees the first one alone.
    host, port = gateway.url.removeprefix("http://").split(":")
    gateway.script(pt.streamed("a b", gap=5.0))
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        first = b""
        while b"\n\n" not in first.partition(b"\r\n\r\n")[2]:
            first += sock.recv(65536)
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(65536)
    assert first.count(b"data: ") == 1


def test_sse_formats_one_event() -> None:
    assert pt.sse({"a": 1}) == 'data: {"a": 1}\n\n'
    assert pt.sse("x\ny", event="error", id="3") == "event: error\nid: 3\ndata: x\ndata: y\n\n"


# --- dialects: Anthropic's Messages API and Gemini's generateContent ------------------


def send(
    gateway: pt.FakeGateway, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5.0)
    try:
        conn.request("POST", path, json.dumps(body), headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("/v1/chat/completions", pt.OPENAI),
        ("/openai/v1/chat/completions", pt.OPENAI),
        ("/v1/messages", pt.ANTHROPIC),
        ("/v1/messages?beta=true", pt.ANTHROPIC),
        (GEMINI_PATH, pt.GEMINI),
        ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", pt.GEMINI),
        ("/v1/models/gpt-4o", pt.OPENAI),
    ],
)
def test_the_path_picks_the_dialect(path: str, dialect: pt.Dialect) -> None:
    assert pt.dialect_of(path) is dialect


def test_unscripted_requests_get_a_success_in_their_own_dialect(
    gateway: pt.FakeGateway,
) -> None:
    status, _, body = send(gateway, "/v1/messages", {"model": "claude-x", "max_tokens": 5})
    message = json.loads(body)
    assert (status, message["type"], message["model"]) == (200, "message", "claude-x")
    assert message["content"] == [{"type": "text", "text": "Hello from the fake gateway."}]
    status, _, body = send(gateway, GEMINI_PATH, {"contents": []})
    answer = json.loads(body)
    assert status == 200
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "Hello from the fake gateway."}]
    assert answer["modelVersion"] == "gemini-2.5-flash"
    assert json.loads(send(gateway, "/v1/chat/completions", {"model": "m"})[2])["object"] == (
        "chat.completion"
    )


def test_the_model_of_a_gemini_request_is_read_from_its_path(gateway: pt.FakeGateway) -> None:
    gateway.script(pt.GEMINI.unavailable(), model="gemini-2.5-flash")
    assert send(gateway, GEMINI_PATH, {"contents": []})[0] == 503
    assert send(gateway, GEMINI_PATH, {"contents": []})[0] == 200
    assert gateway.models() == ["gemini-2.5-flash", "gemini-2.5-flash"]
    assert gateway.received[0].dialect is pt.GEMINI
    assert gateway.gemini_url("a b").endswith("/v1beta/models/a%20b:generateContent")
    assert gateway.gemini_url("m", stream=True).endswith(":streamGenerateContent?alt=sse")
    assert gateway.messages_url == gateway.url + "/v1/messages"


def test_rate_limit_and_outage_answer_in_the_request_s_dialect() -> None:
    with pt.FakeGateway(rate_limit=pt.RateLimit(per_second=0.001, burst=1)) as gateway:
        assert send(gateway, "/v1/messages", {"model": "c"})[0] == 200
        status, headers, body = send(gateway, "/v1/messages", {"model": "c"})
        assert status == 429
        assert json.loads(body)["error"]["type"] == "rate_limit_error"
        assert "retry-after" in headers
        status, _, body = send(gateway, GEMINI_PATH, {})
        assert (status, json.loads(body)["error"]["status"]) == (429, "RESOURCE_EXHAUSTED")
    with pt.FakeGateway() as gateway:
        gateway.fail_for(60)
        status, _, body = send(gateway, "/v1/messages", {"model": "c"})
        assert (status, json.loads(body)["error"]["type"]) == (529, "overloaded_error")
        status, _, body = send(gateway, GEMINI_PATH, {})
        assert (status, json.loads(body)["error"]["status"]) == (503, "UNAVAILABLE")


def test_anthropic_replies_have_anthropic_s_shapes(gateway: pt.FakeGateway) -> None:
    a = pt.ANTHROPIC
    gateway.script(a.invalid_api_key(), a.overloaded(), a.rate_limited(retry_after=2))
    status, _, body = send(gateway, "/v1/messages", {"model": "c"}, {"x-api-key": "sk-ant-k"})
    assert status == 401
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key: sk-ant-k"},
        "request_id": "req_fake",
    }
    assert send(gateway, "/v1/messages", {"model": "c"})[0] == 529
    status, headers, _ = send(gateway, "/v1/messages", {"model": "c"})
    assert (status, headers["retry-after"]) == (429, "2")
    events = [e.name for e in pe_events(a.events("a b"))]
    assert events == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert a.streamed(error_after=1).events[-1] == pt.overloaded_event()


def test_gemini_replies_have_google_s_shapes(gateway: pt.FakeGateway) -> None:
    g = pt.GEMINI
    gateway.script(g.resource_exhausted(retry_after=3), g.invalid_api_key())
    status, headers, body = send(gateway, GEMINI_PATH, {})
    error = json.loads(body)["error"]
    assert (status, error["code"], error["status"]) == (429, 429, "RESOURCE_EXHAUSTED")
    assert "retry-after" not in headers  # Google says it in the body
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"} in error[
        "details"
    ]
    status, _, body = send(gateway, GEMINI_PATH + "?key=AIza-k", {})
    error = json.loads(body)["error"]
    assert (status, error["details"][0]["reason"]) == (400, "API_KEY_INVALID")
    assert "AIza-k" in error["message"]
    data = [json.loads(e.data) for e in pe_events(g.events("a b"))]
    assert [d["candidates"][0]["content"]["parts"][0]["text"] for d in data] == ["a", " b"]
    assert [d["candidates"][0].get("finishReason") for d in data] == [None, "STOP"]


def test_the_openai_dialect_is_the_module_s_functions() -> None:
    o = pt.OPENAI
    assert o.ok("x") == pt.ok("x")
    assert o.rate_limited(2) == pt.rate_limited(2)
    assert o.unavailable() == pt.unavailable()
    assert o.quota_exhausted() == pt.quota_exhausted()
    assert o.events("x") == pt.chat_events("x")
    assert o.streamed() == pt.streamed()
    assert o.slow(1.0) == pt.slow(1.0)


def pe_events(events: tuple[str, ...]) -> list[Any]:
    from policyengine._sse import parse_events

    return list(parse_events("".join(events).encode()))
