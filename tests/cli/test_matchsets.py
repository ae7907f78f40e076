"""Matches as sets of responses: covers and overlaps, both ways round."""

from __future__ import annotations

import pytest

from policyengine._converter import parse_status
from policyengine._model import Match
from policyengine.cli.matchsets import covers, overlaps


def _m(**kwargs: object) -> Match:
    if "status" in kwargs:
        value = kwargs["status"]
        items = value if isinstance(value, list) else [value]
        kwargs["status"] = tuple(parse_status(v) for v in items)
    for key in ("code", "type", "message", "method", "transport"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = (kwargs[key],)
    return Match(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        (_m(), _m(status=429), True),
        (_m(), _m(transport="timeout"), True),
        (_m(status="4xx"), _m(status=429, code="x"), True),
        (_m(status=429), _m(status="4xx"), False),
        (_m(transport="timeout"), _m(transport="read_timeout"), True),
        (_m(transport="read_timeout"), _m(transport="timeout"), False),
        (_m(transport="connection"), _m(transport="tls"), True),
        (_m(status=429), _m(transport="timeout"), False),
        (_m(code=("a", "b")), _m(code="a"), True),
        (_m(code="a"), _m(code=("a", "b")), False),
        (_m(message="quota"), _m(message="insufficient quota"), True),
        (_m(message="insufficient quota"), _m(message="quota"), False),
        (_m(headers={"x": True}), _m(headers={"x": "1"}), True),
        (_m(headers={"x": "1"}), _m(headers={"x": True}), False),
        (_m(error=True), _m(code="x"), True),
        (_m(error=False), _m(status=200), False),
        (_m(method="POST"), _m(method="GET"), False),
        (_m(message_regex="a+"), _m(message_regex="a+"), True),
    ],
)
def test_covers(outer: Match, inner: Match, expected: bool) -> None:
    assert covers(outer, inner) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (_m(status="5xx"), _m(status=503), True),
        (_m(status="4xx"), _m(status=503), False),
        (_m(code="x"), _m(type="y"), True),
        (_m(code="x"), _m(code="y"), False),
        (_m(transport="timeout"), _m(status=500), False),
        (_m(transport="timeout"), _m(transport="read_timeout"), True),
        (_m(transport="tls"), _m(transport="timeout"), False),
        (_m(error=True), _m(error=False), False),
        (_m(error=False), _m(code="x"), False),
        (_m(headers={"x": True}), _m(headers={"x": False}), False),
        (_m(headers={"x": "a"}), _m(headers={"x": "A "}), True),
        (_m(message="over"), _m(message="overloaded"), True),
        (_m(message="quota"), _m(message="billing"), False),
        (_m(method="GET"), _m(method="POST"), False),
        (_m(message_regex="a"), _m(message_regex="b"), False),
    ],
)
def test_overlaps(a: Match, b: Match, expected: bool) -> None:
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected
