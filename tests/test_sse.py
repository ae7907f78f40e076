"""The server-sent event parser: the cases of the HTML standard's event stream
interpretation, its bounds, and invariants over any bytes in any chunks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyengine._sse import (
    MAX_EVENT_BYTES,
    MAX_LINE_BYTES,
    Event,
    EventParser,
    parse_events,
)


def events(body: bytes) -> list[tuple[str, bytes, str | None]]:
    return [(e.name, e.data, e.id) for e in parse_events(body)]


def fed(chunks: list[bytes]) -> list[Event]:
    parser = EventParser()
    out: list[Event] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out + parser.close()


class TestTheStandardsCases:
    def test_one_data_line(self) -> None:
        assert events(b"data: hello\n\n") == [("message", b"hello", None)]

    def test_data_lines_of_one_event_are_joined_with_lf(self) -> None:
        body = b'data: {"error":\ndata:  {"code": "x"}}\n\n'
        assert events(body) == [("message", b'{"error":\n {"code": "x"}}', None)]

    def test_only_one_space_after_the_colon_is_dropped(self) -> None:
        assert events(b"data:x\n\ndata:  y\n\n") == [
            ("message", b"x", None),
            ("message", b" y", None),
        ]

    def test_comments_are_skipped(self) -> None:
        assert events(b": OPENROUTER PROCESSING\n\n:\ndata: a\n: mid\n\n") == [
            ("message", b"a", None)
        ]

    def test_event_names(self) -> None:
        body = b"event: message_start\ndata: {}\n\nevent: error\ndata: boom\n\n"
        assert events(body) == [("message_start", b"{}", None), ("error", b"boom", None)]

    def test_the_name_does_not_carry_over(self) -> None:
        assert events(b"event: a\ndata: 1\n\ndata: 2\n\n") == [
            ("a", b"1", None),
            ("message", b"2", None),
        ]

    def test_crlf_cr_and_lf_line_ends(self) -> None:
        body = b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"
        assert events(body) == [
            ("message", b"a", None),
            ("message", b"b", None),
            ("message", b"c", None),
        ]

    def test_a_crlf_split_between_chunks_is_one_line_end(self) -> None:
        got = fed([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])
        assert [(e.name, e.data) for e in got] == [("message", b"a"), ("message", b"b")]

    def test_a_bom_at_the_start_is_skipped(self) -> None:
        assert events(b"\xef\xbb\xbfdata: a\n\n") == [("message", b"a", None)]
        assert fed([b"\xef\xbb", b"\xbfdata: a\n\n"])[0].data == b"a"

    def test_a_bom_later_is_content(self) -> None:
        assert events(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [("message", b"a", None)]

    def test_the_last_event_without_a_blank_line_is_dispatched_at_the_end(self) -> None:
        assert events(b'data: {"error": {"code": "x"}}\n') == [
            ("message", b'{"error": {"code": "x"}}', None)
        ]
        assert events(b"data: cut") == [("message", b"cut", None)]

    def test_an_event_without_data_is_not_dispatched(self) -> None:
        assert events(b"event: ping\n\nid: 3\n\n: c\n\n") == []

    def test_an_empty_data_line_makes_an_empty_event(self) -> None:
        assert events(b"data\n\ndata:\n\n") == [("message", b"", None), ("message", b"", None)]

    def test_ids_carry_over_until_changed(self) -> None:
        body = b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: x\x00y\ndata: d\n\n"
        assert [e.id for e in parse_events(body)] == ["1", "1", "", ""]

    def test_other_fields_are_ignored(self) -> None:
        assert events(b"retry: 1000\nfoo: bar\ndata: a\n\n") == [("message", b"a", None)]

    def test_offsets_delimit_each_event(self) -> None:
        body = b": hi\n\nevent: a\ndata: 1\n\ndata: 2\r\n\r\n"
        first, second = parse_events(body)
        assert body[first.start : first.end] == b"event: a\ndata: 1\n\n"
        # The end is past the CR of a CRLF: where a chunk may end before its LF.
        assert body[second.start : second.end] == b"data: 2\r\n\r"

    def test_encode_gives_the_event_back(self) -> None:
        for event in parse_events(b"event: error\ndata: a\ndata: b\n\ndata: c\n\n"):
            again = parse_events(event.encode())
            assert [(e.name, e.data) for e in again] == [(event.name, event.data)]


class TestBounds:
    def test_a_line_keeps_at_most_max_line_bytes(self) -> None:
        body = b"data: " + b"x" * (MAX_LINE_BYTES * 3) + b"\n\ndata: next\n\n"
        first, second = parse_events(body)
        assert len(first.data) == MAX_LINE_BYTES - len(b"data: ")
        assert second.data == b"next"
        assert body[second.start : second.end] == b"data: next\n\n"

    def test_a_long_line_in_small_chunks(self) -> None:
        body = b"data: " + b"y" * (MAX_LINE_BYTES * 2) + b"\n\ndata: next\n\n"
        got = fed([body[i : i + 1000] for i in range(0, len(body), 1000)])
        assert [len(e.data) for e in got] == [MAX_LINE_BYTES - 6, 4]
        assert body[got[1].start : got[1].end] == b"data: next\n\n"

    def test_an_event_keeps_at_most_max_event_bytes(self) -> None:
        line = b"data: " + b"z" * 1000 + b"\n"
        body = line * (MAX_EVENT_BYTES // 500) + b"\n"
        (event,) = parse_events(body)
        assert len(event.data) <= MAX_EVENT_BYTES

    def test_endless_data_lines_keep_memory_bounded(self) -> None:
        parser = EventParser()
        for _ in range(2000):
            assert parser.feed(b"data:\n" * 100) == []
        (event,) = parser.close()
        assert len(event.data) <= MAX_EVENT_BYTES


# --- invariants over any input -----------------------------------------------------

_LINE = st.one_of(
    st.sampled_from(
        [b"data: a", b"data:", b"data", b"event: error", b": c", b"id: 7", b"", b"retry: 5"]
    ),
    st.binary(max_size=30),
)
_END = st.sampled_from([b"\n", b"\r\n", b"\r"])
_STREAM = st.lists(st.tuples(_LINE, _END), max_size=30).map(
    lambda pairs: b"".join(line + end for line, end in pairs)
)


def _cut(body: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({min(p, len(body)) for p in points})
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(_STREAM, st.binary(max_size=300)), points=st.lists(st.integers(0, 300)))
def test_chunking_never_changes_the_events(body: bytes, points: list[int]) -> None:
    assert fed(_cut(body, points)) == parse_events(body)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(_STREAM, st.binary(max_size=300)))
def test_events_lie_in_order_within_the_stream(body: bytes) -> None:
    last = 0
    for event in parse_events(body):
        assert last <= event.start < event.end <= len(body)
        last = event.end
        # Each event's own bytes read alone give that event back.
        (again,) = parse_events(body[event.start : event.end])
        assert (again.name, again.data) == (event.name, event.data)


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        st.tuples(
            st.sampled_from(["message", "error", "delta"]),
            st.lists(
                st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b),
                min_size=1,
                max_size=3,
            ),
        ),
        max_size=8,
    )
)
def test_encoded_events_parse_back(items: list[tuple[str, list[bytes]]]) -> None:
    body = b"".join(Event(name, b"\n".join(lines), None, 0, 0).encode() for name, lines in items)
    assert [(e.name, e.data) for e in parse_events(body)] == [
        (name, b"\n".join(lines)) for name, lines in items
    ]


@pytest.mark.parametrize("size", [1, 7, 64])
def test_a_real_stream_in_chunks_of_any_size(size: int) -> None:
    body = (
        b": OPENROUTER PROCESSING\r\n\r\n"
        b'data: {"choices": [{"delta": {"content": "Hel"}}]}\r\n\r\n'
        b'event: error\r\ndata: {"type": "error",\r\ndata:  "error": {"type": "overloaded_error"}}\r\n\r\n'
    )
    got = fed([body[i : i + size] for i in range(0, len(body), size)])
    assert [(e.name, e.data) for e in got] == [
        ("message", b'{"choices": [{"delta": {"content": "Hel"}}]}'),
        ("error", b'{"type": "error",\n "error": {"type": "overloaded_error"}}'),
    ]
