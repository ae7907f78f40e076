"""A 2xx of JSON sent a line at a time (Ollama's ``application/x-ndjson``,
JSON Lines) is a stream: each adapter hands it over as it comes, as it does
``text/event-stream``, instead of reading it to decide (which held every
token back until the stream ended or ``BODY_MAX_SECONDS`` passed)."""

from __future__ import annotations

import asyncio
import json

import pytest

import policyengine as pe
from policyengine._adapting import wants_body

from .conftest import GatedServer
from .scenarios import TIMEOUT

LINES = [
    {"model": "llama3", "message": {"role": "assistant", "content": "Hel"}, "done": False},
    {"model": "llama3", "message": {"role": "assistant", "content": "lo"}, "done": True},
]


@pytest.mark.parametrize(
    ("status", "content_type", "read"),
    [
        (200, "application/json", True),
        (200, "application/json; charset=utf-8", True),
        (200, "application/problem+json", True),
        (200, "application/x-ndjson", False),
        (200, "application/jsonl", False),
        (200, "application/json-seq", False),
        (200, "application/jsonlines", False),
        (200, "application/stream+json", False),
        (200, "text/event-stream", False),
        (200, "text/plain", False),
        (200, None, False),
        (400, "application/x-ndjson", True),  # an error is always read to decide
        (429, None, True),
    ],
)
def test_which_bodies_an_adapter_reads_to_decide(
    status: int, content_type: str | None, read: bool
) -> None:
    assert wants_body(status, content_type) is read


def _server(content_type: bytes) -> GatedServer:
    """A 200 whose first line comes at once and whose second comes only once
    the policy has decided (``gate``)."""
    first, second = (json.dumps(line).encode() + b"\n" for line in LINES)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\n"
    head += b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    head += b"%x\r\n%s\r\n" % (len(first), first)
    rest = b"%x\r\n%s\r\n0\r\n\r\n" % (len(second), second)
    return GatedServer(head, rest)


def _driver(server: GatedServer, decisions: list[pe.Decision]) -> pe.Driver:
    def decided(decision: pe.Decision) -> None:
        decisions.append(decision)
        server.gate.set()  # had the adapter read on, it would time out first

    return pe.Driver(pe.Engine(pe.load_policy(env=False)), hooks=(decided,))


def _check(lines: bytes, decisions: list[pe.Decision]) -> None:
    assert [json.loads(line) for line in lines.splitlines()] == LINES
    assert [d.action.kind for d in decisions] == [pe.ActionKind.SUCCEED]


CONTENT_TYPES = [b"application/x-ndjson", b"application/jsonl"]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_httpx_hands_a_json_lines_stream_over_as_it_comes(content_type: bytes) -> None:
    httpx = pytest.importorskip("httpx")
    from policyengine.httpx import PolicyTransport

    decisions: list[pe.Decision] = []
    with _server(content_type) as server:
        transport = PolicyTransport(driver=_driver(server, decisions))
        with (
            httpx.Client(transport=transport, timeout=TIMEOUT) as client,
            client.stream("POST", server.chat_url, json={"model": "llama3"}) as r,
        ):
            lines = b"".join(r.iter_bytes())
    _check(lines, decisions)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_httpx_async_hands_a_json_lines_stream_over_as_it_comes(content_type: bytes) -> None:
    httpx = pytest.importorskip("httpx")
    from policyengine.httpx import AsyncPolicyTransport

    decisions: list[pe.Decision] = []

    async def go(server: GatedServer) -> bytes:
        transport = AsyncPolicyTransport(driver=_driver(server, decisions))
        async with (
            httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client,
            client.stream("POST", server.chat_url, json={"model": "llama3"}) as r,
        ):
            return b"".join([chunk async for chunk in r.aiter_bytes()])

    with _server(content_type) as server:
        lines = asyncio.run(go(server))
    _check(lines, decisions)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_requests_hands_a_json_lines_stream_over_as_it_comes(content_type: bytes) -> None:
    requests = pytest.importorskip("requests")
    from policyengine.requests import PolicyAdapter

    decisions: list[pe.Decision] = []
    with _server(content_type) as server, requests.Session() as session:
        session.mount("http://", PolicyAdapter(driver=_driver(server, decisions)))
        with session.post(
            server.chat_url, json={"model": "llama3"}, stream=True, timeout=TIMEOUT
        ) as r:
            lines = b"".join(r.iter_content(None))
    _check(lines, decisions)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_aiohttp_hands_a_json_lines_stream_over_as_it_comes(content_type: bytes) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    from policyengine.aiohttp import PolicyMiddleware

    decisions: list[pe.Decision] = []

    async def go(server: GatedServer) -> bytes:
        middlewares = (PolicyMiddleware(driver=_driver(server, decisions)),)
        timeout = aiohttp.ClientTimeout(sock_read=TIMEOUT)
        async with (
            aiohttp.ClientSession(middlewares=middlewares, timeout=timeout) as session,
            session.post(server.chat_url, json={"model": "llama3"}) as r,
        ):
            return await r.read()

    with _server(content_type) as server:
        lines = asyncio.run(go(server))
    _check(lines, decisions)
