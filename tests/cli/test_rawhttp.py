"""Reading a raw HTTP response (curl -si): interim responses, folding,
chunked and compressed bodies, and the exact text of every problem."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyengine.cli.errors import InputError
from policyengine.cli.rawhttp import parse_raw_http


def test_raw_http_lf_only_folding_and_repeats() -> None:
    r = parse_raw_http(
        b"HTTP/1.1 429 Too Many Requests\nRetry-After: 2\nX-Long: a\n  b\n"
        b"Set-Cookie: 1\nSet-Cookie: 2\n\nbody",
        "x",
    )
    assert (r.status, r.body) == (429, b"body")
    assert r.headers["x-long"] == ("a b",)
    assert r.headers["set-cookie"] == ("1", "2")


def test_raw_http_skips_interim_and_redirect_responses() -> None:
    raw = (
        b"HTTP/1.1 200 Connection established\r\n\r\n"
        b"HTTP/1.1 301 Moved\r\nLocation: /v1\r\n\r\n"
        b"HTTP/2 500\r\ncontent-type: text/plain\r\n\r\noops"
    )
    r = parse_raw_http(raw, "x")
    assert (r.status, r.body, r.header("location")) == (500, b"oops", None)


def test_raw_http_dechunks_and_gunzips() -> None:
    payload = gzip.compress(b'{"error": {"message": "hi"}}')
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    r = parse_raw_http(
        b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n" + chunked,
        "x",
    )
    assert r.body == b'{"error": {"message": "hi"}}'


def test_raw_http_keeps_undecodable_bodies() -> None:
    r = parse_raw_http(b"HTTP/1.1 500 X\r\nContent-Encoding: gzip\r\n\r\nnot gzip", "x")
    assert r.body == b"not gzip"
    r = parse_raw_http(b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "x")
    assert r.body == b"zz\r\n"


def test_raw_http_headers_only() -> None:
    r = parse_raw_http(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5", "x")
    assert (r.status, r.header("retry-after"), r.body) == (503, "5", b"")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_raw_http_never_raises_anything_else(data: bytes) -> None:
    try:
        parse_raw_http(data, "x")
    except InputError as e:
        assert e.lines
        assert all(line.startswith("x: ") for line in e.lines)


def test_raw_http_status_is_100_to_999() -> None:
    with pytest.raises(InputError) as info:
        parse_raw_http(b"HTTP/1.1 099 Odd\r\n\r\n", "x")
    assert list(info.value.lines) == ["x: line 1: expected an HTTP status 100-999, got '099'"]


def test_raw_http_of_interim_responses_alone_says_the_final_one_is_missing() -> None:
    with pytest.raises(InputError) as info:
        parse_raw_http(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n", "x")
    assert list(info.value.lines) == [
        "x: line 3: only an interim response (103) and no final one after it: "
        "the capture ends too soon"
    ]
    # 101 Switching Protocols is the final answer of its exchange.
    assert (
        parse_raw_http(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket", "x").status == 101
    )
