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

K = pe.ActionKind

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


# --- streams as providers really send them -------------------------------------------

_CHUNK = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{"content":"The"},"finish_reason":null}]}\n\n'
)
_MESSAGE_START = (
    b'event: message_start\ndata: {"type": "message_start", "message": {"id": "msg_1", '
    b'"type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5", '
    b'"stop_reason": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}\n\n'
    b'event: ping\ndata: {"type": "ping"}\n\n'
)
_OPENROUTER_ERROR = (
    b'data: {"id":"cmpl-abc123","object":"chat.completion.chunk","created":1234567890,'
    b'"model":"gpt-3.5-turbo","provider":"openai","error":{"code":"server_error",'
    b'"message":"Provider disconnected unexpectedly"},"choices":[{"index":0,"delta":'
    b'{"content":""},"finish_reason":"error"}]}\n\n'
)

# (stream, what is decided on its first event, after how many events a later
# error event stops it (None: it is not stopped), and what that event is)
REAL_STREAMS = [
    pytest.param(
        _CHUNK * 3 + b'data: {"error": {"message": "The server had an error while processing '
        b'your request. Sorry about that!", "type": "server_error"}}\n\n',
        (K.SUCCEED, "success"),
        3,
        (K.RETRY, "server_error"),
        id="coder/coder aibridge fixture stream_error.txtar: OpenAI server_error mid-stream",
    ),
    pytest.param(
        b'data: {"error": {"message": "The server had an error while processing your request. '
        b'Sorry about that!", "type": "server_error"}}\n\ndata: [DONE]\n\n',
        (K.RETRY, "server_error"),
        None,
        None,
        id="the same OpenAI server_error as the first event: retried before the hand-over",
    ),
    pytest.param(
        b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n" + _CHUNK + b"data: [DONE]\n\n",
        (K.SUCCEED, "success"),
        None,
        None,
        id="OpenRouter, 'Streaming': keep-alive comments, then a token, is a success",
    ),
    pytest.param(
        _CHUNK + _OPENROUTER_ERROR,
        (K.SUCCEED, "success"),
        1,
        (K.RETRY, "server_error"),
        id="OpenRouter, 'Streaming': the unified mid-stream error (finish_reason error)",
    ),
    pytest.param(
        b": OPENROUTER PROCESSING\n\n" + _OPENROUTER_ERROR,
        (K.RETRY, "server_error"),
        None,
        None,
        id="OpenRouter's unified error as the first event, after a comment",
    ),
    pytest.param(
        _MESSAGE_START + OVERLOADED,
        (K.SUCCEED, "success"),
        2,
        (K.RETRY, "overloaded"),
        id="Anthropic, 'Streaming Messages': event error, overloaded_error, after message_start",
    ),
    pytest.param(
        b'event: error\ndata: {"type": "error", "error": {"type": "api_error", '
        b'"message": "Internal server error"}}\n\n',
        (K.RETRY, "server_error"),
        None,
        None,
        id="Anthropic, 'Errors': api_error as an error event",
    ),
    pytest.param(
        b'data: {"error": {"code": 503, "message": "The model is overloaded. Please try again '
        b'later.", "status": "UNAVAILABLE"}}\n\n',
        (K.RETRY, "overloaded"),
        None,
        None,
        id="Gemini API troubleshooting: 503 UNAVAILABLE as a streamGenerateContent?alt=sse event",
    ),
    pytest.param(
        _CHUNK + b'data: {"choices":[{"content_filter_results":{"hate":{"filtered":true,'
        b'"severity":"medium"}},"delta":{},"finish_reason":"content_filter","index":0}],'
        b'"created":1,"id":"chatcmpl-1","model":"gpt-4o","object":"chat.completion.chunk"}\n\n'
        b"data: [DONE]\n\n",
        (K.SUCCEED, "success"),
        None,
        None,
        id="Azure OpenAI content filtering: finish_reason content_filter ends a stream, no error",
    ),
    pytest.param(
        b'data:{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be '
        b'<= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`","error_type":'
        b'"validation"}\n\n',
        (K.FAIL, "bad_request"),
        None,
        None,
        id="huggingface/text-generation-inference router server.rs: a validation error event",
    ),
    pytest.param(
        b'data:{"error":"Model is overloaded","error_type":"overloaded"}\n\n',
        (K.RETRY, "overloaded"),
        None,
        None,
        id="huggingface/text-generation-inference: an overloaded error event",
    ),
]


@pytest.mark.parametrize(("body", "first", "stopped_after", "later"), REAL_STREAMS)
def test_real_streams(
    body: bytes,
    first: tuple[pe.ActionKind, str],
    stopped_after: int | None,
    later: tuple[pe.ActionKind, str] | None,
) -> None:
    headers = {"content-type": "text/event-stream"}
    got = recorded(body)
    action = ENGINE.evaluate(pe.Response(200, headers, got.head))
    assert (action.kind, action.classification) == first
    assert got.interrupted == stopped_after
    if later is not None:
        action = ENGINE.evaluate(pe.Response(200, headers, got.error))
        assert (action.kind, action.classification) == later
    # Read live, in chunks, the watch stops it at the same event.
    _, error = read(watch(), [body[i : i + 7] for i in range(0, len(body), 7)])
    if stopped_after is None or first[0] is not K.SUCCEED:
        return
    assert isinstance(error, pe.StreamInterrupted) and error.events == stopped_after
