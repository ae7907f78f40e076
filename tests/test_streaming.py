"""The stream watch and peek, without a client: what is handed out, when it
raises, and what it decides with."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import policyengine as pe
from policyengine._peek import PEEK_MAX_BYTES, Peek, recorded, watched
from policyengine._sse import EventParser, parse_events
from policyengine._streaming import Watch

OK = b'data: {"choices": [{"delta": {"content": "x"}}]}\n\n'
OVERLOADED = (
    b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
    b'"message": "Overloaded"}}\n\n'
)
ENGINE = pe.Engine(pe.load_policy(env=False))


class Judge:
    """Decides with the default policy, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[object] = []

    def __call__(self, subject: object) -> pe.Action:
        self.asked.append(subject)
        return ENGINE.evaluate(subject)


def watch(judge: Judge | None = None) -> Watch:
    return Watch(judge or Judge(), 200, [("content-type", "text/event-stream")], "POST")


def read(w: Watch, chunks: list[bytes]) -> tuple[bytes, BaseException | None]:
    """What a caller reading ``chunks`` through ``w`` is handed, and what it raised."""
    out = b""
    try:
        for chunk in chunks:
            w.raise_pending()
            out += w.passing(chunk)
        w.raise_pending()
        w.ended()
    except pe.StreamInterrupted as exc:
        return out, exc
    return out, None


def test_a_clean_stream_is_handed_out_whole() -> None:
    w = watch()
    out, error = read(w, [OK, OK[:10], OK[10:] + b": c\n\n"])
    assert (out, error, w.events) == (OK * 2 + b": c\n\n", None, 2)


def test_an_error_event_stops_it_after_exactly_the_events_before() -> None:
    judge = Judge()
    w = watch(judge)
    out, error = read(w, [OK, OK + b"id: 9\n" + OK + OVERLOADED + OK])
    assert out == OK * 2 + b"id: 9\n" + OK
    assert isinstance(error, pe.StreamInterrupted)
    assert (error.events, error.last_event_id) == (3, "9")
    assert error.action.classification == "overloaded"
    (asked,) = judge.asked
    assert isinstance(asked, pe.Response) and asked.status == 200


def test_an_error_event_split_over_chunks_hands_out_none_of_what_follows() -> None:
    w = watch()
    out, error = read(w, [OK + OVERLOADED[:20], OVERLOADED[20:], OK])
    assert out == OK + OVERLOADED[:20]  # no SSE reader dispatches the unfinished event
    assert isinstance(error, pe.StreamInterrupted) and error.events == 1


def test_an_error_in_a_last_event_without_its_blank_line() -> None:
    w = watch()
    _, error = read(w, [OK, b'data: {"error": {"message": "m", "code": "c"}}'])
    assert isinstance(error, pe.StreamInterrupted) and error.events == 1


def test_mentioning_error_in_content_is_no_error() -> None:
    w = watch()
    chunk = b'data: {"choices": [{"delta": {"content": "\\"error\\": 1"}}]}\n\n'
    assert read(w, [chunk]) == (chunk, None)


def test_the_driver_s_action_on_the_first_event_is_not_decided_again() -> None:
    judge = Judge()
    w = watch(judge)
    w.settled = ENGINE.evaluate(pe.Response(200, {}, OVERLOADED), attempt=5)
    _, error = read(w, [OVERLOADED])
    assert isinstance(error, pe.StreamInterrupted)
    assert error.action is w.settled and judge.asked == []


def test_an_error_the_policy_calls_a_success_is_one_more_event() -> None:
    policy = pe.load_policy(
        {"rules": [{"id": "overloaded-message", "action": "succeed", "retryable": False}]},
        env=False,
    )
    w = Watch(pe.Engine(policy).evaluate, 200, [], "POST")
    assert read(w, [OVERLOADED, OK]) == (OVERLOADED + OK, None)
    assert w.events == 2


def test_a_network_failure_is_interrupted_with_its_cause() -> None:
    w = watch()
    w.passing(OK)
    drop = ConnectionResetError("reset")
    error = w.broke(drop)
    assert isinstance(error, pe.StreamInterrupted)
    assert (error.events, error.__cause__, error.action.transport) == (1, drop, "reset")
    bug = ValueError("not the network")
    assert watch().broke(bug) is bug


def test_the_message_says_what_to_do_and_pickles() -> None:
    import pickle

    _, error = read(watch(), [OK, OVERLOADED])
    assert isinstance(error, pe.StreamInterrupted)
    assert str(error).startswith("stream interrupted after 1 event: overloaded (status 200")
    assert "the policy would retry" in str(error)
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.events) == (str(error), 1)


@settings(max_examples=200, deadline=None)
@given(
    before=st.integers(0, 5),
    after=st.integers(0, 3),
    cuts=st.lists(st.integers(1, 400), max_size=8),
)
def test_any_chunking_hands_out_exactly_the_events_before_the_error(
    before: int, after: int, cuts: list[int]
) -> None:
    body = OK * before + OVERLOADED + OK * after
    points = sorted({min(c, len(body)) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    out, error = read(watch(), [c for c in chunks if c])
    assert isinstance(error, pe.StreamInterrupted)
    # A reader of what was handed out dispatches exactly those events (an
    # unfinished error event is not dispatched before the stream ends).
    assert error.events == before == len(EventParser().feed(out))
    # What was handed out is the stream up to the error event, and at most the
    # part of it that came in chunks before the one that completed it.
    assert body.startswith(out)
    assert len(OK * before) <= len(out) < len(OK * before + OVERLOADED)
    if len(chunks) == 1:  # the error event came whole: cut where it starts
        assert out == OK * before


def test_peek_stops_at_the_first_event_and_decides_on_it_alone() -> None:
    peek = Peek()
    assert not peek.add(b": comment\n\n")
    assert peek.add(OK + OVERLOADED)
    assert peek.body() == b": comment\n\n" + OK
    assert ENGINE.evaluate(pe.Response(200, {}, peek.body())).kind is pe.ActionKind.SUCCEED


def test_peek_is_bounded_in_bytes() -> None:
    peek = Peek()
    assert not peek.add(b"data: " + b"x" * (PEEK_MAX_BYTES - 100))
    assert peek.add(b"x" * 200)
    assert peek.first is None


def test_peek_is_bounded_in_time_between_reads() -> None:
    now = [0.0]
    peek = Peek(clock=lambda: now[0])
    assert not peek.add(b": thinking\n\n")
    now[0] = 31.0
    assert peek.add(b": still thinking\n\n")


def test_a_stream_that_ends_within_the_peek_is_decided_whole() -> None:
    peek = Peek()
    body = b'{"error": {"message": "quota", "code": "insufficient_quota"}}'
    assert not peek.add(body)
    peek.end()
    assert peek.body() == body
    assert ENGINE.evaluate(pe.Response(200, {}, peek.body())).classification == "quota_exhausted"


@pytest.mark.parametrize(
    ("status", "content_type", "encoding", "expected"),
    [
        (200, "text/event-stream", None, True),
        (200, "text/event-stream; charset=utf-8", "identity", True),
        (200, "text/event-stream", "gzip", False),
        (429, "text/event-stream", None, False),
        (200, "application/json", None, False),
        (200, None, None, False),
    ],
)
def test_which_answers_are_watched(
    status: int, content_type: str | None, encoding: str | None, expected: bool
) -> None:
    assert watched(status, content_type, encoding) is expected


def test_a_recorded_stream_reads_as_a_live_one() -> None:
    body = b": hi\n\n" + OK + OK + b"id: 4\n" + OVERLOADED + OK
    got = recorded(body)
    assert got.head == b": hi\n\n" + OK
    assert (got.events, got.interrupted) == (4, 2)
    assert [(e.name, e.id) for e in parse_events(got.error)] == [("error", None)]
    assert recorded(OVERLOADED + OK) == (OVERLOADED, 2, None, b"")  # decided with the head
    assert recorded(OK * 3) == (OK, 3, None, b"")
    big = b"data: " + b"x" * PEEK_MAX_BYTES + b"\n\n" + OVERLOADED
    assert recorded(big).head == big[:PEEK_MAX_BYTES]
    assert recorded(big).interrupted == 1


def test_a_key_echoed_in_an_error_event_never_leaves() -> None:
    secret = "sk-live-9f8e7d6c5b4a39281706"
    echoed = (
        b'data: {"error": {"message": "Incorrect API key provided: ' + secret.encode() + b'", '
        b'"type": "invalid_request_error", "code": "invalid_api_key"}}\n\n'
    )
    _, error = read(watch(), [OK, echoed])
    assert isinstance(error, pe.StreamInterrupted)
    assert error.action.classification == "authentication"
    assert secret not in str(error)
    assert secret not in error.action.explanation + error.action.remediation
