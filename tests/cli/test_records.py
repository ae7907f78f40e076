"""Reading recorded attempts: JSON Lines and HAR."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import policyengine as pe
from policyengine.cli.errors import InputError
from policyengine.cli.records import read_records, record_from_json


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


def test_deeply_nested_json_is_an_input_error() -> None:
    deep = b'{"status": 400, "body": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    with pytest.raises(InputError) as info:
        read_records(b'{"status": 429}\n' + deep, "f")
    assert list(info.value.lines) == ["f: line 2: invalid JSON: nested too deeply"]
    with pytest.raises(InputError) as info:
        read_records(b'{"log": ' * 100_000, "f")
    assert list(info.value.lines) == ["f: line 1: invalid JSON: nested too deeply"]
