"""HeaderView: a client's headers read only as far as they are looked at, with
the values the full index (``index_headers``) holds."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

import policyengine as pe
from policyengine._headers import HeaderView, index_headers

WANTED = frozenset({"retry-after", "retry-after-ms", "x-ratelimit-remaining", "x-should-retry"})

# Names as servers send them, and names no parser would produce.
names = st.one_of(
    st.sampled_from(
        ["Retry-After", "retry-after", "RETRY-AFTER", "retry-after-ms", "X-Should-Retry", "Server"]
    ),
    st.text(st.characters(codec="latin-1"), min_size=1, max_size=20),
    st.sampled_from([" retry-after", "retry-after\t", "retry-after\xa0", "\x85retry-after"]),
)
values = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=20)
pairs = st.lists(st.tuples(names, values), max_size=12)


def httpx_headers(items: list[tuple[str, str]]) -> httpx.Headers | None:
    try:
        return httpx.Headers([(k.encode("latin-1"), v.encode("latin-1")) for k, v in items])
    except Exception:  # a name httpx refuses
        return None


@given(pairs)
def test_httpx_view_reads_what_the_full_index_holds(items: list[tuple[str, str]]) -> None:
    headers = httpx_headers(items)
    if headers is None:
        return
    full = index_headers(headers)
    view = HeaderView(headers, WANTED)
    for name in [*sorted(WANTED), "server", "retry-after"]:
        assert view.get(name) == full.get(name)
    assert dict(view) == full


# The encodings httpx picks, and others a program may set (Headers.encoding).
encodings = st.sampled_from(["ascii", "utf-8", "iso-8859-1", "latin-1", "utf-16-le", "cp500"])


@given(pairs, encodings)
def test_httpx_view_in_any_encoding_reads_what_the_full_index_holds(
    items: list[tuple[str, str]], encoding: str
) -> None:
    headers = httpx_headers(items)
    if headers is None:
        return
    headers.encoding = encoding
    full = index_headers(headers)
    view = HeaderView(headers, WANTED)
    for name in [*sorted(WANTED), "server", "retry-after"]:
        assert view.get(name) == full.get(name)


@pytest.mark.parametrize("encoding", ["ascii", "utf-16-le"])
def test_the_engine_decides_alike_on_headers_an_encoding_set_by_hand_cannot_read(
    encoding: str,
) -> None:
    engine = pe.Engine(pe.load_policy(env=False))
    for items in ([(b"Retry-After", b"7")], [(b"Retry-After", b"7"), (b"Server", b"caf\xe9")]):
        response = httpx.Response(429, headers=items, content=b"{}")
        response.headers.encoding = encoding
        decided = engine.evaluate(response)
        prepared = engine.evaluate(pe.Response(429, index_headers(response.headers), b"{}"))
        assert "internal error" not in decided.explanation
        assert (decided.kind, decided.rule_id, decided.delay_source) == (
            prepared.kind,
            prepared.rule_id,
            prepared.delay_source,
        )


@given(pairs)
def test_requests_view_reads_what_the_full_index_holds(items: list[tuple[str, str]]) -> None:
    headers = CaseInsensitiveDict(items)
    full = index_headers(headers)
    view = HeaderView(headers, WANTED)
    for name in sorted(WANTED):
        # (names with white space around them, which no HTTP parser gives,
        # are the one thing requests' own look-up does not find)
        if not any(k != k.strip() for k in headers):
            assert view.get(name) == full.get(name)
    assert dict(view) == full


def test_a_view_reads_nothing_until_looked_up() -> None:
    class Watched(httpx.Headers):
        reads = 0

        @property
        def raw(self) -> list[tuple[bytes, bytes]]:
            Watched.reads += 1
            return super().raw

    headers = Watched({"Retry-After": "2", "Server": "x"})
    assert headers.encoding == "ascii"  # (httpx reads its headers once for that)
    Watched.reads = 0
    view = HeaderView(headers, WANTED)
    response = pe.Response(429, view, b"")
    assert response.headers is view
    assert Watched.reads == 0
    assert view.get("retry-after") == ("2",)
    assert view.get("x-should-retry") is None
    assert Watched.reads == 1  # the wanted names, at once
    assert view["server"] == ("x",)  # another name: the full index
    assert len(view) == 2 and "server" in view and view == {"retry-after": ("2",), "server": ("x",)}


def test_a_plain_success_reads_no_header() -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"headers read: {name}")

    class Reply:
        status_code = 200
        headers = Untouchable()
        content = b'{"id": "x", "choices": []}'

    action = pe.Engine(pe.load_policy(env=False)).evaluate(Reply())
    assert action.kind is pe.ActionKind.SUCCEED


@pytest.mark.parametrize("make", [httpx_headers, CaseInsensitiveDict, list])
def test_the_engine_decides_alike_on_a_view(make: object) -> None:
    items = [("Retry-After", "7"), ("x-ratelimit-remaining-requests", "0"), ("Server", "s")]
    engine = pe.Engine(pe.load_policy(env=False))
    prepared = engine.evaluate(pe.Response(429, items, b""))
    viewed = engine.evaluate(pe.Response(429, HeaderView(make(items), engine._wanted), b""))  # type: ignore[operator]
    assert (viewed.kind, viewed.delay, viewed.reasons) == (
        prepared.kind,
        prepared.delay,
        prepared.reasons,
    )
