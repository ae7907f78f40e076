"""Reading recorded responses: raw HTTP, JSON Lines, HAR; stand-in failures."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import policyengine as pe
from policyengine._response import TRANSPORT_FAMILIES
from policyengine.cli.errors import InputError
from policyengine.cli.records import (
    make_failure,
    parse_raw_http,
    read_records,
    record_from_json,
)


@pytest.mark.parametrize("kind", sorted(TRANSPORT_FAMILIES))
def test_make_failure_gives_each_kind(kind: str) -> None:
    assert pe.transport_kind(make_failure(kind)) == kind


def test_make_failure_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown transport kind 'smoke'"):
        make_failure("smoke")


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


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_read_records_never_raises_anything_else(data: bytes) -> None:
    try:
        read_records(data, "x")
    except InputError as e:
        assert e.lines


def test_record_from_json_shapes() -> None:
    record = record_from_json(
        {
            "status": 429,
            "headers": [["Retry-After", "1"], ["Retry-After", "3"]],
            "body": {"error": {"code": "x"}},
            "method": "post",
            "duration": 1.5,
            "extra": "ignored",
        },
        "f",
        "line 1",
    )
    assert record.response is not None
    assert record.response.headers["retry-after"] == ("1", "3")
    assert json.loads(record.response.body) == {"error": {"code": "x"}}
    assert (record.response.method, record.duration) == ("POST", 1.5)
    failure = record_from_json({"transport": "dns"}, "f", "line 2")
    assert (failure.transport, pe.transport_kind(failure.subject())) == ("dns", "dns")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("obj", "lines"),
    [
        ([], ["f: line 1: $: expected an object, got []"]),
        (
            {"status": 200, "headers": {"A": 1}, "method": "P OST", "duration": -1},
            [
                "f: line 1: $.headers['A']: expected a string, got 1",
                "f: line 1: $.method: expected an HTTP method such as 'POST', got 'P OST'",
                "f: line 1: $.duration: expected seconds >= 0, got -1",
            ],
        ),
        (
            {"status": True, "headers": [["a"]]},
            [
                "f: line 1: $.status: expected a whole number 100-999, got True",
                "f: line 1: $.headers[0]: expected [name, value], got ['a']",
            ],
        ),
        (
            {"status": 200, "headers": "x"},
            [
                "f: line 1: $.headers: expected a table of name: value or a list of "
                "[name, value], got 'x'"
            ],
        ),
    ],
)
def test_record_from_json_problems(obj: object, lines: list[str]) -> None:
    with pytest.raises(InputError) as info:
        record_from_json(obj, "f", "line 1")
    assert list(info.value.lines) == lines


def _har(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"log": {"version": "1.2", "entries": list(entries)}}).encode()


def _entry(
    status: int, url: str = "https://api.example/v1/chat/completions", **response: Any
) -> dict[str, Any]:
    return {
        "startedDateTime": "2026-11-25T12:00:00.000Z",
        "time": 250,
        "request": {"method": "POST", "url": url},
        "response": {"status": status, "headers": [], "content": {"text": ""}, **response},
    }


def test_har_entries() -> None:
    body = base64.b64encode(b'{"error": {"code": "rate_limit_exceeded"}}').decode()
    data = _har(
        _entry(0, _error="net::ERR_CONNECTION_REFUSED"),
        _entry(
            429,
            headers=[{"name": "Retry-After", "value": "3"}],
            content={"text": body, "encoding": "base64"},
        ),
        _entry(200, url="https://cdn.example/logo.png"),
        _entry(200),
    )
    records = read_records(data, "f.har", url="/v1/chat")
    assert [r.where for r in records] == [
        "$.log.entries[0]",
        "$.log.entries[1]",
        "$.log.entries[3]",
    ]
    assert records[0].transport == "refused"
    second = records[1].response
    assert second is not None
    assert (second.status, second.method, second.header("retry-after")) == (429, "POST", "3")
    assert second.body == b'{"error": {"code": "rate_limit_exceeded"}}'
    assert records[1].duration == 0.25
    assert records[1].now == 1795608000.25  # started + time: what HTTP dates are measured from
    assert len(read_records(data, "f.har")) == 4


def test_har_problems() -> None:
    data = _har(
        {"response": "x"},
        _entry("429"),  # type: ignore[arg-type]
        _entry(500, headers=[{"name": "a"}]),
        _entry(500, content={"text": "!!", "encoding": "base64"}),
        "nope",  # type: ignore[arg-type]
    )
    with pytest.raises(InputError) as info:
        read_records(data, "f.har")
    assert list(info.value.lines) == [
        "f.har: $.log.entries[0].response: expected an object, got 'x'",
        "f.har: $.log.entries[1].response.status: expected a whole number, got '429'",
        "f.har: $.log.entries[2].response.headers[0]: expected {name, value}, got {'name': 'a'}",
        "f.har: $.log.entries[3].response.content.text: expected base64 (encoding = base64)",
        "f.har: $.log.entries[4]: expected an object, got 'nope'",
    ]
    with pytest.raises(InputError) as info:
        read_records(_har(_entry(200)), "f.har", url="/nowhere")
    assert list(info.value.lines) == [
        "f.har: $.log.entries: no entries whose URL contains '/nowhere' to replay"
    ]


def test_one_pretty_printed_record() -> None:
    records = read_records(b'{\n  "status": 503\n}\n', "f")
    assert len(records) == 1
    assert records[0].response is not None
    assert records[0].response.status == 503


def test_a_network_failure_keeps_its_request_method() -> None:
    failure = record_from_json({"transport": "read_timeout", "method": "post"}, "f", "line 1")
    assert (failure.transport, failure.method) == ("read_timeout", "POST")
    response = record_from_json({"status": 200, "method": "get"}, "f", "line 2")
    assert response.method == "GET"
    har = read_records(_har(_entry(0, _error="net::ERR_TIMED_OUT")), "f.har")
    assert (har[0].transport, har[0].method) == ("timeout", "POST")


def test_raw_http_status_is_100_to_999() -> None:
    with pytest.raises(InputError) as info:
        parse_raw_http(b"HTTP/1.1 099 Odd\r\n\r\n", "x")
    assert list(info.value.lines) == ["x: line 1: expected an HTTP status 100-999, got '099'"]


def test_deeply_nested_json_is_an_input_error() -> None:
    deep = b'{"status": 400, "body": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    with pytest.raises(InputError) as info:
        read_records(b'{"status": 429}\n' + deep, "f")
    assert list(info.value.lines) == ["f: line 2: invalid JSON: nested too deeply"]
    with pytest.raises(InputError) as info:
        read_records(b'{"log": ' * 100_000, "f")
    assert list(info.value.lines) == ["f: line 1: invalid JSON: nested too deeply"]
