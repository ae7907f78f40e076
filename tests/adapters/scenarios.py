"""The scenarios every adapter must pass, with its real client library, against
the real fake gateway. Each ``test_<lib>.py`` subclasses ``Scenarios``,
declares the dialect its client speaks (``dialect``: the OpenAI, Anthropic or
Gemini wire format, whose replies the scenarios script) and implements
``send`` / ``stream`` with its client; nothing here mocks a client."""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any, ClassVar

import attrs
import pytest

import policyengine as pe
from policyengine import _peek
from policyengine._sse import parse_events
from policyengine.testing import OPENAI, Dialect, FakeGateway, RateLimit, TestingMode

from .conftest import BACKUP, GatedServer, RawServer

#: Client timeouts in these tests (seconds): short, so a slow reply times out
#: fast, and long enough that a prompt one never does on a loaded machine (at
#: 0.3 s a stream dropped at once was once read as a timeout under load).
TIMEOUT = 0.6
#: A reply slower than TIMEOUT (the gateway drops it when the test ends).
SLOW = 3.0
SECRET = "sk-live-9f8e7d6c5b4a39281706"


@attrs.frozen
class Sent:
    """How a call through an adapter ended, as its client's user sees it."""

    status: int | None
    body: Any
    error: BaseException | None


@attrs.frozen
class Streamed:
    """How a streamed call ended, as its client's user sees it."""

    status: int | None
    body: bytes | None  # the bytes the caller read; None: the client hands out no bytes (an SDK)
    events: int  # the events the caller was handed, "[DONE]" aside
    error: BaseException | None
    text: str = ""  # the streamed chat completion's text the caller was handed


def events_in(body: bytes) -> int:
    """The events a caller reading ``body`` gets, ``[DONE]`` aside."""
    return sum(1 for e in parse_events(body) if e.data != b"[DONE]")


def _text_of(data: Any) -> str:
    """The text an event of a streamed answer adds, in any dialect: OpenAI's
    ``choices[].delta.content``, Anthropic's ``content_block_delta``,
    Gemini's ``candidates[].content.parts[].text``."""
    if not isinstance(data, dict):
        return ""
    text = "".join(c.get("delta", {}).get("content") or "" for c in data.get("choices", []))
    if data.get("type") == "content_block_delta":
        text += data.get("delta", {}).get("text") or ""
    for candidate in data.get("candidates", []):
        text += "".join(p.get("text", "") for p in candidate.get("content", {}).get("parts", []))
    return text


def text_in(body: bytes) -> str:
    """The text of the streamed answer's events in ``body``."""
    text = ""
    for event in parse_events(body):
        try:
            data = json.loads(event.data)
        except ValueError:
            continue
        text += _text_of(data)
    return text


def read_stream(status: int | None, chunks: list[bytes], error: BaseException | None) -> Streamed:
    """A ``Streamed`` from the bytes a caller read."""
    body = b"".join(chunks)
    return Streamed(status, body, events_in(body), error, text_in(body))


def streamed_bytes(
    model: str, content: str = "Hello from the fake gateway.", dialect: Dialect = OPENAI
) -> bytes:
    """The bytes ``dialect.streamed(content)`` sends for ``model``."""
    return "".join(dialect.events(content)).replace("{{model}}", model).encode()


#: The text of the default ``streamed()`` reply a caller is handed.
STREAMED_TEXT = "Hello from the fake gateway."

#: The rule each dialect's reply is decided by, where the scenarios name it.
RULES: dict[str, dict[str, str]] = {
    "openai": {"rate_limit": "rate-limit-exceeded", "invalid_api_key": "invalid-api-key"},
    "anthropic": {"rate_limit": "rate-limit", "invalid_api_key": "authentication"},
    "gemini": {"rate_limit": "rate-limit", "invalid_api_key": "invalid-api-key"},
}


def _copy(scenario: Any) -> Any:
    """A scenario as a function of its own, to mark for one subclass only."""

    def copied(self: Any, *args: Any, **kwargs: Any) -> Any:
        return scenario(self, *args, **kwargs)

    copied.__name__ = scenario.__name__
    copied.__doc__ = scenario.__doc__
    copied.__signature__ = inspect.signature(scenario)  # type: ignore[attr-defined]
    return copied


def parse(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


class Scenarios:
    """Adapter tests; a subclass implements ``send`` (and ``stream``)."""

    #: The wire format the client speaks: the replies the scenarios script.
    dialect: ClassVar[Dialect] = OPENAI
    #: Scenarios the engine decides wrongly for this dialect today: name ->
    #: the reason (an issue of the policy's, not the adapter's), marked
    #: xfail(strict=True) so that the fix shows.
    known_wrong: ClassVar[dict[str, str]] = {}

    #: Whether the adapter can switch the model of the next request.
    fallback = True
    #: Whether the client can send a GET to the chat URL.
    get = True
    #: Whether the adapter decides on a body that fails while it is read
    #: (requests' max_retries reads it after urllib3's Retry has returned).
    body_failures = True

    def send(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Sent:
        raise NotImplementedError

    def stream(
        self,
        gateway: FakeGateway,
        driver: pe.Driver,
        *,
        model: str = "primary",
        headers: dict[str, str] | None = None,
    ) -> Streamed:
        """A streamed POST of a chat completion, read to its end (or to the
        exception its reading raised)."""
        raise NotImplementedError

    #: Whether the adapter peeks at and watches streamed answers (urllib3's
    #: Retry cannot: it sees no body of a 2xx).
    streams = True
    #: Whether the adapter decides before a long body has come whole (urllib3
    #: reads a body whole before its Retry is asked, unless preload_content=False).
    bounded_bodies = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, reason in cls.known_wrong.items():
            scenario = getattr(Scenarios, name)
            marked = pytest.mark.xfail(strict=True, reason=reason)(_copy(scenario))
            setattr(cls, name, marked)
        if not cls.streams:
            for name in [n for n in dir(cls) if n.startswith("test_stream_")]:
                setattr(cls, name, None)
        if not cls.get:
            # The client cannot send a GET to the chat URL: the scenario does
            # not apply, so it is not collected (rather than skipped).
            cls.test_get_read_timeout_is_still_retried = None  # type: ignore[assignment]
            cls.test_fallback_without_a_model_to_switch_gives_up = None  # type: ignore[assignment]

    # --- helpers -----------------------------------------------------------------

    def streamed_bytes(self, model: str) -> bytes:
        """The bytes the dialect's default ``streamed()`` sends for ``model``."""
        return streamed_bytes(model, dialect=self.dialect)

    @property
    def streamed_events(self) -> int:
        """The events of the dialect's default ``streamed()`` a caller is handed."""
        return events_in(self.streamed_bytes("m"))

    def run(
        self, gateway: FakeGateway, engine: pe.Engine, **kwargs: Any
    ) -> tuple[Sent, list[pe.Decision]]:
        decisions: list[pe.Decision] = []
        sent = self.send(gateway, pe.Driver(engine, hooks=(decisions.append,)), **kwargs)
        return sent, decisions

    # --- the scenarios ---------------------------------------------------------------

    @pytest.mark.parametrize(
        "malformed",
        [
            b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\n{}",  # a bad status line
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"  # a bad chunk size
            b"Content-Type: application/json\r\n\r\nzz\r\n{}\r\n",
        ],
        ids=["bad status line", "bad chunk size"],
    )
    def test_a_malformed_response_is_retried_as_a_network_failure(
        self, malformed: bytes, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        # Every client reads these bytes as a broken connection, aiohttp too
        # (it raises a ClientResponseError with a status 400 of its own).
        if b"chunked" in malformed and not self.body_failures:
            pytest.skip("the body is read after the adapter has decided")
        ok = self.dialect.ok()  # the answer after the broken one, in the client's dialect
        body = (ok.body or "").replace("{{model}}", "primary") or json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "primary",
                "choices": [],
                "created": 0,
            }
        )
        good = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
        ).encode()
        with RawServer([malformed, good]) as server:
            sent, decisions = self.run(server, default_engine)  # type: ignore[arg-type]
        assert sent.status == 200, sent
        assert server.count == 2
        first = decisions[0].action
        assert (first.kind, first.status) == (pe.ActionKind.RETRY, None)
        assert first.transport in ("protocol", "incomplete", "connection", "reset")

    @pytest.mark.parametrize("bound", ["bytes", "seconds"])
    @pytest.mark.parametrize("framing", ["content-length", "chunked"])
    def test_a_body_still_coming_is_decided_on_what_came(
        self,
        bound: str,
        framing: str,
        testing: TestingMode,
        default_engine: pe.Engine,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """An error body longer than an adapter reads to decide
        (BODY_MAX_BYTES), or still coming after BODY_MAX_SECONDS, is decided
        on what came, before the rest has come; the caller still gets it all."""
        if not self.bounded_bodies:
            pytest.skip("the client reads a body whole before the adapter is asked")
        if bound == "seconds":
            monkeypatch.setattr(_peek, "BODY_MAX_SECONDS", 0.0)
        size = _peek.BODY_MAX_BYTES + 100 if bound == "bytes" else 10
        error = {"error": {"code": "context_length_exceeded", "message": "x" * size}}
        body = json.dumps(error).encode()
        first, rest = body[:-20], body[-20:]
        if framing == "chunked":
            framed = b"Transfer-Encoding: chunked\r\n\r\n"
            first = framed + b"%x\r\n%s\r\n" % (len(first), first)
            rest = b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest)
        else:
            first = b"Content-Length: %d\r\n\r\n%s" % (len(body), first)
        head = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        head += b"Connection: close\r\n"
        decisions: list[pe.Decision] = []

        def decided(decision: pe.Decision) -> None:
            decisions.append(decision)
            server.gate.set()  # the rest of the body comes once the policy has decided

        with GatedServer(head + first, rest) as server:
            sent = self.send(server, pe.Driver(default_engine, hooks=(decided,)))  # type: ignore[arg-type]
        assert [(d.action.status, d.action.rule_id) for d in decisions] == [
            (400, "context-length-exceeded")
        ]
        assert sent.status in (400, None), sent
        if isinstance(sent.body, dict):  # (an SDK error's body is the error object)
            assert sent.body in (error, error["error"])

    def test_a_success_longer_than_what_is_read_to_decide_reaches_the_caller_whole(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        """A JSON success past BODY_MAX_BYTES is decided on its start and
        handed over whole: what was read replayed, then the rest."""
        content = "word " * (3 * _peek.BODY_MAX_BYTES // 5)
        gateway.script(self.dialect.ok(content))
        sent, decisions = self.run(gateway, default_engine)
        assert (sent.status, sent.error) == (200, None), sent
        assert [d.action.kind for d in decisions] == [pe.ActionKind.SUCCEED]
        assert gateway.count() == 1
        if isinstance(sent.body, dict) and len(sent.body) > 1:  # (an SDK's: the model only)
            assert content in json.dumps(sent.body)
        else:  # the SDK parsed the whole answer
            assert sent.body == {"model": sent.body.get("model")} and sent.body["model"]

    def test_429_retry_after_then_200_waits_what_the_server_asked(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.rate_limited(retry_after=3))
        sent, decisions = self.run(gateway, default_engine)
        assert sent.status == 200, sent
        assert gateway.count() == 2
        assert testing.waits == [3.0]
        assert [d.action.kind for d in decisions] == [pe.ActionKind.RETRY, pe.ActionKind.SUCCEED]
        assert decisions[0].action.rule_id == RULES[self.dialect.name]["rate_limit"]

    def test_503_twice_then_200(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.unavailable(), self.dialect.unavailable())
        sent, decisions = self.run(gateway, default_engine)
        assert sent.status == 200
        assert gateway.count() == 3
        assert len(testing.waits) == 2
        assert testing.waits == [d.action.delay for d in decisions[:2]]
        assert all(w > 0 for w in testing.waits)

    def test_503_forever_gives_up_after_max_attempts(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(*[self.dialect.unavailable()] * 20)
        sent, decisions = self.run(gateway, default_engine)
        limit = default_engine.policy.rule(decisions[0].action.rule_id).max_attempts
        assert 1 < limit < 20
        assert gateway.count() == limit
        assert sent.status == self.dialect.unavailable().status
        assert len(testing.waits) == limit - 1
        assert decisions[-1].action.kind is pe.ActionKind.FAIL
        assert "max_attempts" in decisions[-1].action.explanation

    def test_fallback_switches_the_model_of_the_next_request(
        self, gateway: FakeGateway, testing: TestingMode, deployment_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.unavailable(), model="primary")
        sent, decisions = self.run(gateway, deployment_engine, model="primary")
        if not self.fallback:
            # This layer cannot rewrite the body: the engine decides as if the
            # chain were used up, and a retryable 503 is retried on the same model.
            assert gateway.models() == ["primary", "primary"]
            assert sent.status == 200
            assert decisions[0].action.kind is pe.ActionKind.RETRY
            assert "cannot switch models" in decisions[0].action.explanation
            return
        assert gateway.models() == ["primary", BACKUP]
        assert sent.status == 200
        assert sent.body["model"] == BACKUP
        assert decisions[0].action.kind is pe.ActionKind.FALLBACK
        assert [d.attempt.model for d in decisions] == ["primary", BACKUP]

    def test_model_not_found_falls_back(
        self, gateway: FakeGateway, testing: TestingMode, deployment_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.model_not_found(), model="typo-model")
        sent, _ = self.run(gateway, deployment_engine, model="typo-model")
        if not self.fallback:
            assert gateway.count() == 1
            assert sent.status == 404
            return
        assert gateway.models() == ["typo-model", BACKUP]
        assert sent.status == 200

    def test_fallback_without_a_model_to_switch_gives_up(
        self, gateway: FakeGateway, testing: TestingMode, deployment_engine: pe.Engine
    ) -> None:
        # A GET names no model in a body (nor does a request whose model is in
        # its URL): the fallback cannot be made, and resending the same
        # request would retry what the policy calls non-retryable.
        gateway.script(self.dialect.model_not_found(), self.dialect.model_not_found())
        sent, decisions = self.run(gateway, deployment_engine, method="GET")
        assert gateway.count() == 1
        assert sent.status == 404
        assert [d.action.kind for d in decisions] == [pe.ActionKind.FAIL]
        assert "fail: this caller cannot switch models" in decisions[0].action.explanation
        assert testing.waits == []

    def test_model_not_found_without_fallbacks_is_not_retried(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.model_not_found())
        sent, decisions = self.run(gateway, default_engine, model="typo-model")
        assert gateway.count() == 1
        assert sent.status == 404
        assert decisions[0].action.classification == "not_found"
        assert "typo-model" in decisions[0].action.remediation

    def test_502_html_page_is_retried(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.bad_gateway_html())
        sent, decisions = self.run(gateway, default_engine)
        assert sent.status == 200
        assert gateway.count() == 2
        assert decisions[0].action.status == 502
        assert decisions[0].action.error is not None
        assert decisions[0].action.error.message == "502 Bad Gateway"

    def test_invalid_api_key_is_not_retried(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.invalid_api_key())
        sent, decisions = self.run(gateway, default_engine)
        assert gateway.count() == 1
        assert sent.status == self.dialect.invalid_api_key().status
        assert testing.waits == []
        assert decisions[0].action.rule_id == RULES[self.dialect.name]["invalid_api_key"]

    def test_context_length_exceeded_is_not_retried(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.context_length_exceeded(limit=4096))
        sent, decisions = self.run(gateway, default_engine)
        assert gateway.count() == 1
        assert sent.status == 400
        assert "4096" in decisions[0].action.remediation

    def test_slow_reply_times_out_is_classified_and_retried(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.slow(SLOW))
        sent, decisions = self.run(gateway, default_engine)
        assert sent.status == 200
        assert gateway.count() == 2
        assert decisions[0].action.transport == "read_timeout"
        assert decisions[0].action.kind is pe.ActionKind.RETRY

    def test_reset_mid_response_is_classified_and_retried(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.reset())
        sent, decisions = self.run(gateway, default_engine)
        assert sent.status == 200
        assert gateway.count() == 2
        assert decisions[0].action.classification == "connection"
        assert decisions[0].action.transport in {"reset", "incomplete", "protocol"}

    def test_post_read_timeout_is_not_retried_when_the_policy_says_so(
        self, gateway: FakeGateway, testing: TestingMode, deployment_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.slow(SLOW), self.dialect.slow(SLOW))
        sent, decisions = self.run(gateway, deployment_engine)
        assert gateway.count() == 1
        assert sent.error is not None
        assert sent.status is None
        assert decisions[0].action.rule_id == "post-read-timeout"
        assert decisions[0].action.kind is pe.ActionKind.FAIL

    def test_get_read_timeout_is_still_retried(
        self, gateway: FakeGateway, testing: TestingMode, deployment_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.slow(SLOW))
        sent, decisions = self.run(gateway, deployment_engine, method="GET")
        assert gateway.count() == 2
        assert sent.status == 200
        assert decisions[0].action.rule_id == "timeout"

    def test_idempotency_key_is_reused_on_every_attempt(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.unavailable(), self.dialect.rate_limited(retry_after=1))
        sent, _ = self.run(gateway, default_engine, headers={"Idempotency-Key": "order-42"})
        assert sent.status == 200
        assert [r.header("Idempotency-Key") for r in gateway.received] == ["order-42"] * 3

    def test_overriding_limits_attempts_for_one_call(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.unavailable(), self.dialect.unavailable())
        with pe.overriding(max_attempts=1):
            sent, decisions = self.run(gateway, default_engine)
        assert gateway.count() == 1
        assert sent.status == self.dialect.unavailable().status
        assert "per-call max_attempts = 1" in decisions[0].action.explanation
        gateway.clear()
        gateway.script(self.dialect.unavailable())
        sent, _ = self.run(gateway, default_engine)  # outside the block: the policy again
        assert (sent.status, gateway.count()) == (200, 2)

    def test_api_keys_never_reach_the_log(
        self,
        gateway: FakeGateway,
        testing: TestingMode,
        default_engine: pe.Engine,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        gateway.script(self.dialect.invalid_api_key(echo_key=True))
        with caplog.at_level(logging.DEBUG, logger="policyengine"):
            sent, _ = self.run(
                gateway, default_engine, headers={"Authorization": f"Bearer {SECRET}"}
            )
        assert sent.status == self.dialect.invalid_api_key().status
        assert SECRET in repr(gateway.received[0].headers)  # sent, in the dialect's header
        records = [r for r in caplog.records if r.name == "policyengine"]
        assert records, "the give-up was not logged"
        assert records[-1].levelno == logging.WARNING
        assert records[-1].rule_id == RULES[self.dialect.name]["invalid_api_key"]  # type: ignore[attr-defined]
        assert SECRET not in caplog.text
        assert SECRET[8:] not in caplog.text
        assert SECRET not in repr([r.__dict__ for r in records])

    # --- the governor: one driver (so one governor) for several calls ---------------

    #: Whether the adapter sees a call before its first attempt (urllib3's Retry does not).
    gates_first_attempt = True

    @staticmethod
    def refused_status(sent: Sent) -> int | None:
        """The status a refused call shows: its response's, or the one of the
        exception the client raises for it (aiohttp)."""
        if sent.status is not None:
            return sent.status
        return getattr(sent.error, "status", None)

    def test_governor_asks_an_exhausted_quota_once(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(*[self.dialect.quota_exhausted()] * 3)
        driver = pe.Driver(default_engine)
        sent = [self.send(gateway, driver) for _ in range(3)]
        if not self.gates_first_attempt:
            assert gateway.count() == 3  # it learns, but cannot hold a first attempt back
            return
        assert gateway.count() == 1
        assert [self.refused_status(s) for s in sent] == [self.dialect.quota_exhausted().status] * 3

    def test_governor_refuses_calls_while_the_circuit_is_open(
        self, gateway: FakeGateway, testing: TestingMode
    ) -> None:
        policy = pe.load_policy(
            {"governor": {"breaker": {"failures": 2, "open_for": 5.0, "max_open_for": 5.0}}},
            env=False,
        )
        gateway.script(*[self.dialect.unavailable()] * 4)
        driver = pe.Driver(pe.Engine(policy))
        with pe.overriding(max_attempts=1, max_elapsed=1.0):  # the probe (in 5s) is past it
            sent = [self.send(gateway, driver) for _ in range(4)]
        if not self.gates_first_attempt:
            assert gateway.count() == 4
            return
        assert gateway.count() == 2
        # Two sent (the dialect's status), two refused (503, made up by the governor).
        failed = self.dialect.unavailable().status
        assert [self.refused_status(s) for s in sent] == [failed, failed, 503, 503]

    def test_governor_paces_calls_to_a_rate_limit(self, default_engine: pe.Engine) -> None:
        # Real time (no testing mode): the server's bucket refills in real time.
        with FakeGateway(rate_limit=RateLimit(per_second=20.0, burst=2.0)) as gateway:
            driver = pe.Driver(default_engine)
            sent = [self.send(gateway, driver) for _ in range(8)]
        assert [s.status for s in sent] == [200] * 8
        if self.gates_first_attempt:  # (urllib3 cannot hold a first attempt back)
            assert gateway.rejected == 0

    # --- streamed answers (server-sent events) -----------------------------------------

    def run_stream(
        self, gateway: FakeGateway, engine: pe.Engine, **kwargs: Any
    ) -> tuple[Streamed, list[pe.Decision]]:
        decisions: list[pe.Decision] = []
        sent = self.stream(gateway, pe.Driver(engine, hooks=(decisions.append,)), **kwargs)
        return sent, decisions

    def test_stream_clean_is_handed_over_byte_for_byte(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.streamed(gap=0.01))
        sent, decisions = self.run_stream(gateway, default_engine)
        assert sent.error is None, sent.error
        assert (sent.status, gateway.count()) == (200, 1)
        if sent.body is not None:
            assert sent.body == self.streamed_bytes("primary")
        assert (sent.events, sent.text) == (self.streamed_events, STREAMED_TEXT)
        assert [d.action.kind for d in decisions] == [pe.ActionKind.SUCCEED]

    def test_stream_error_event_first_is_retried_and_never_seen(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.streamed(error_after=0), self.dialect.streamed())
        sent, decisions = self.run_stream(
            gateway, default_engine, headers={"Idempotency-Key": "stream-7"}
        )
        assert sent.error is None, sent.error
        assert gateway.count() == 2
        if sent.body is not None:
            assert sent.body == self.streamed_bytes("primary")
        assert (sent.events, sent.text) == (self.streamed_events, STREAMED_TEXT)
        first = decisions[0].action
        assert (first.kind, first.classification, first.status) == (
            pe.ActionKind.RETRY,
            "overloaded",
            200,
        )
        assert testing.waits == [first.delay]
        assert [r.header("Idempotency-Key") for r in gateway.received] == ["stream-7"] * 2

    def test_stream_error_event_first_falls_back_to_the_next_model(
        self, gateway: FakeGateway, testing: TestingMode
    ) -> None:
        # The rules an overloaded event is matched by, in every dialect.
        rules = ("overloaded-type", "overloaded-message", "server-error-type")
        policy = pe.load_policy(
            {"rules": [{"id": r, "action": "fallback", "fallback": [BACKUP]} for r in rules]},
            env=False,
        )
        gateway.script(
            self.dialect.streamed(error_after=0), self.dialect.streamed(), model="primary"
        )
        gateway.script(self.dialect.streamed(), model=BACKUP)
        sent, decisions = self.run_stream(gateway, pe.Engine(policy))
        assert sent.error is None, sent.error
        if not self.fallback:
            assert gateway.models() == ["primary", "primary"]
            return
        assert gateway.models() == ["primary", BACKUP]
        assert decisions[0].action.kind is pe.ActionKind.FALLBACK
        if sent.body is not None:
            assert sent.body == self.streamed_bytes(BACKUP)

    def test_stream_error_event_first_that_is_not_retried_raises_at_once(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(
            self.dialect.streamed(error_after=0, error=self.dialect.error_event()),
            self.dialect.streamed(),
        )
        sent, decisions = self.run_stream(gateway, default_engine)
        assert gateway.count() == 1
        assert isinstance(sent.error, pe.StreamInterrupted), sent.error
        assert sent.error.events == 0 and sent.events == 0
        assert sent.error.action.kind is pe.ActionKind.FAIL
        assert sent.error.action.classification == "quota_exhausted"
        assert sent.error.action is decisions[-1].action  # the driver's own, not decided again
        if sent.body is not None:
            assert b"insufficient_quota" not in sent.body

    def test_stream_error_event_after_n_events_raises_after_exactly_n(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.streamed(error_after=3, gap=0.01))
        sent, decisions = self.run_stream(gateway, default_engine)
        assert gateway.count() == 1
        error = sent.error
        assert isinstance(error, pe.StreamInterrupted), error
        assert (error.events, sent.events) == (3, 3)
        assert sent.text == text_in("".join(self.dialect.events()[:3]).encode())
        assert sent.text.startswith("Hello")
        assert error.action.classification == "overloaded"
        assert error.action.kind is pe.ActionKind.RETRY
        assert "stream interrupted after 3 events: overloaded" in str(error)
        if sent.body is not None:
            assert sent.body == self.streamed_bytes("primary")[: len(sent.body)]
            assert b"overloaded_error" not in sent.body
        # The driver's decision on the first event, then the watch's on the error.
        assert [d.action.kind for d in decisions] == [pe.ActionKind.SUCCEED, pe.ActionKind.RETRY]

    def test_stream_drop_after_n_events_raises_after_exactly_n(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.streamed(drop_after=2))
        sent, _ = self.run_stream(gateway, default_engine)
        assert gateway.count() == 1
        error = sent.error
        assert isinstance(error, pe.StreamInterrupted), error
        assert (error.events, sent.events) == (2, 2)
        assert error.action.classification == "connection"
        assert error.action.transport in {"incomplete", "protocol", "reset"}
        assert error.__cause__ is not None
        assert pe.transport_kind(error.__cause__) is not None  # the client's own exception

    def test_stream_stalled_after_n_events_raises_after_exactly_n(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        # The second event comes after the client's read timeout.
        gateway.script(self.dialect.streamed(gap=SLOW))
        sent, _ = self.run_stream(gateway, default_engine)
        error = sent.error
        assert isinstance(error, pe.StreamInterrupted), error
        assert (error.events, sent.events) == (1, 1)
        assert error.action.classification == "timeout"
        assert error.__cause__ is not None
        # One request: the adapter handed the stream over at its first event,
        # without waiting for more (the stall would have timed out the attempt).
        assert gateway.count() == 1

    def test_stream_drop_before_the_first_event_is_retried(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        gateway.script(self.dialect.streamed(drop_after=0), self.dialect.streamed())
        sent, decisions = self.run_stream(gateway, default_engine)
        assert sent.error is None, sent.error
        assert gateway.count() == 2
        assert decisions[0].action.classification == "connection"
        assert (sent.events, sent.text) == (self.streamed_events, STREAMED_TEXT)

    def test_stream_with_an_error_first_settles_with_the_governor(
        self, gateway: FakeGateway, testing: TestingMode, default_engine: pe.Engine
    ) -> None:
        # An exhausted quota in a stream's first event is sticky like a 429.
        quota = self.dialect.streamed(error_after=0, error=self.dialect.error_event())
        gateway.script(quota, quota)
        driver = pe.Driver(default_engine)
        first = self.stream(gateway, driver)
        second = self.stream(gateway, driver)
        assert isinstance(first.error, pe.StreamInterrupted)
        if not self.gates_first_attempt:
            assert gateway.count() == 2
            return
        assert gateway.count() == 1
        # The stream replayed instead of asking again raises like the original did.
        error = second.error
        if isinstance(error, pe.StreamInterrupted):
            assert (error.events, second.events) == (0, 0)
            assert error.action.classification == "quota_exhausted"
            assert "governor" in error.action.explanation
        else:  # aiohttp raises what raise_for_status would, with the status replayed
            assert self.refused_status(second) == 200
            assert "quota" in str(error)
