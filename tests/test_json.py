"""JSON of error bodies: the C scanner called directly, and msgspec in front of
it (the ``fast`` extra), give what ``json.loads`` gives, value for value, and
fail where it fails."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyengine import _json
from policyengine._errorbody import parse_raw

pytestmark = pytest.mark.usefixtures("json_parser")


def stdlib(data: bytes) -> tuple[str, Any]:
    """What ``json.loads`` makes of ``data`` read as UTF-8 with replacement."""
    try:
        return "value", json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError) as e:
        return "error", type(e)


def ours(data: bytes) -> tuple[str, Any]:
    try:
        return "value", _json.decode(data)
    except (ValueError, RecursionError) as e:
        return "error", type(e)


def same(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    # repr tells NaN from NaN-less, -0.0 from 0.0, ints from floats, key order.
    if a[0] == "error" or b[0] == "error":
        return a[0] == b[0] and issubclass(a[1], ValueError) == issubclass(b[1], ValueError)
    return repr(a[1]) == repr(b[1])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.integers(max_value=-(2**63) + 2, min_value=-(2**70))
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)

# Pieces of JSON and of what is not quite JSON: tokens, escapes (lone
# surrogates too), NaN and Infinity, huge numbers, bytes that are not UTF-8,
# controls, white space the stdlib does not skip.
pieces = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b'"',
        b'"a"',
        b'"error"',
        b" ",
        b"\t",
        b"\n",
        b"\r",
        b"\x0c",
        b"\x00",
        b"\x01",
        b"0",
        b"-",
        b"1",
        b"9",
        b".",
        b"e",
        b"E",
        b"+",
        b"-0",
        b"1e400",
        b"-1e400",
        b"1e-400",
        b"123456789012345678901234567890",
        b"18446744073709551616",
        b"9" * 4301,
        b"0.1",
        b"01",
        b"true",
        b"false",
        b"null",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"nan",
        b'"\\ud800"',
        b'"\\udc00"',
        b'"\\ud83d\\ude00"',
        b'"\\u00e9"',
        b'"\\n"',
        b'"\\x"',
        b"\\",
        b"\xff",
        b"\xc3\xa9",
        b"\xed\xa0\x80",
        b"\xef\xbb\xbf",
        b"\xe2\x82",
        b'"\xc3\xa9"',
        b'{"a": 1, "a": 2}',
        b"[" * 150,
        b"]" * 150,
    ]
)
jsonish = st.lists(pieces, max_size=30).map(b"".join)


@settings(max_examples=300)
@given(json_values, st.sampled_from(["", " ", "\n\t"]))
def test_documents_decode_as_the_stdlib_does(value: Any, space: str) -> None:
    data = (space + json.dumps(value, ensure_ascii=False) + space).encode("utf-8", "surrogatepass")
    assert same(ours(data), stdlib(data))


@settings(max_examples=500)
@given(jsonish)
def test_anything_decodes_as_the_stdlib_does(data: bytes) -> None:
    assert same(ours(data), stdlib(data))


@pytest.mark.parametrize(
    "data",
    [
        b'{"code": 123456789012345678901234567890}',
        b"[NaN, Infinity, -Infinity]",
        b'["\\ud800"]',
        b'{"a": 1, "b": 2, "a": 3}',
        b'{"message": "caf\xe9"}',  # latin-1, not UTF-8
        b"[1e400]",
        b"[" + b"9" * 4301 + b"]",
        b"[" * 99 + b"]" * 99,
        b"[" * 5000 + b"]" * 5000,
        b"[1] x",
        b" \n[1]\r\n",
        b"",
        b"   ",
    ],
)
def test_edges(data: bytes) -> None:
    assert same(ours(data), stdlib(data))


def test_an_error_object_reads_alike(json_parser: str) -> None:
    body = b'{"error": {"message": "slow down", "type": "requests", "code": 429, "details": [{"reason": "R"}]}}'
    raw = parse_raw(body, 429)
    assert raw is not None
    assert (raw.message, raw.type, raw.code, raw.more_codes) == (
        "slow down",
        "requests",
        "429",
        ("R",),
    )


def test_the_fast_parser_is_used_when_installed(json_parser: str) -> None:
    fast = _json._fast
    assert (fast is None) == (json_parser == "stdlib")
    if fast is not None:
        assert fast(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    assert math.isnan(_json.decode(b"[NaN]")[0])  # refused by msgspec, read by the stdlib
