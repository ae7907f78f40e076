"""Reading error bodies of every shape, secrets, network failure kinds."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error

import pytest

import policyengine as pe
from policyengine._errorbody import MAX_FIELD_CHARS, MAX_MESSAGE_CHARS, parse_error
from policyengine._facts import extract_amounts, extract_model
from policyengine._transport import transport_kind

from .conftest import error_body

pytestmark = pytest.mark.usefixtures("json_parser")


class TestBodyShapes:
    def test_seed_doc_shape(self) -> None:
        body = error_body(
            "Invalid API key provided: sk-nex-xxx...xxx.", "authentication_error", "invalid_api_key"
        )
        err = parse_error(body, 401)
        assert err == pe.ParsedError(
            message="Invalid API key provided: sk-***.",
            type="authentication_error",
            code="invalid_api_key",
        )

    def test_openai_with_param_and_null_code(self) -> None:
        body = error_body("bad", "invalid_request_error", None, param="messages")
        assert parse_error(body, 400) == pe.ParsedError(
            "bad", "invalid_request_error", None, "messages"
        )

    def test_numeric_code(self) -> None:
        body = b'{"error": {"code": 1302, "message": "busy"}}'
        assert parse_error(body, 429) == pe.ParsedError("busy", None, "1302")

    def test_anthropic_shape(self) -> None:
        body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
        assert parse_error(body, 529) == pe.ParsedError("Overloaded", "overloaded_error")

    def test_google_shape_reason_becomes_code(self) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": 400,
                    "message": "API key not valid. Please pass a valid API key.",
                    "status": "INVALID_ARGUMENT",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                        }
                    ],
                }
            }
        ).encode()
        assert parse_error(body, 400) == pe.ParsedError(
            "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", "API_KEY_INVALID"
        )

    def test_google_shape_without_reason(self) -> None:
        body = b'{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}'
        assert parse_error(body, 429) == pe.ParsedError("quota", "RESOURCE_EXHAUSTED", "429")

    def test_google_list_shape(self) -> None:
        body = b'[{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}]'
        assert parse_error(body, 503) == pe.ParsedError(
            "The model is overloaded.", "UNAVAILABLE", "503"
        )

    def test_unwrapped_shape(self) -> None:
        body = b'{"object": "error", "message": "Invalid model", "type": "invalid_model", "code": "1500"}'
        assert parse_error(body, 400) == pe.ParsedError("Invalid model", "invalid_model", "1500")

    def test_error_as_a_string(self) -> None:
        assert parse_error(b'{"error": "upstream timed out"}', 504) == pe.ParsedError(
            "upstream timed out"
        )

    def test_error_as_a_string_with_its_kind(self) -> None:
        # text-generation-inference (router/src/server.rs, ErrorResponse):
        # {"error": ..., "error_type": ...}, as a body and as an event.
        body = b'{"error":"Input validation error: grammar is not supported","error_type":"validation"}'
        assert parse_error(body, 422) == pe.ParsedError(
            "Input validation error: grammar is not supported", "validation"
        )
        assert parse_error(b"data:" + body + b"\n\n", 200) == parse_error(body, 422)

    def test_fastapi_detail(self) -> None:
        assert parse_error(b'{"detail": "Not Found"}', 404) == pe.ParsedError("Not Found")

    def test_message_that_is_an_object(self) -> None:
        err = parse_error(b'{"object": "error", "message": {"detail": [{"msg": "x"}]}}', 422)
        assert err is not None and '"msg": "x"' in err.message

    def test_html_page_gives_its_title(self) -> None:
        body = (
            b"<!DOCTYPE html><html><head><title>example.com | 524: A timeout occurred"
            b"</title></head><body><h1>Timeout</h1></body></html>"
        )
        assert parse_error(body, 524) == pe.ParsedError("example.com | 524: A timeout occurred")

    def test_nginx_page_without_title_gives_h1(self) -> None:
        body = b"<html>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body></html>"
        assert parse_error(body, 502) == pe.ParsedError("502 Bad Gateway")

    def test_plain_text(self) -> None:
        assert parse_error(
            b"upstream connect error or disconnect/reset before headers", 503
        ) == pe.ParsedError("upstream connect error or disconnect/reset before headers")

    def test_empty_body_is_no_error(self) -> None:
        assert parse_error(b"", 500) is None
        assert parse_error(b"  \r\n", 500) is None

    def test_success_without_error_object(self) -> None:
        assert parse_error(b'{"id": "x", "choices": []}', 200) is None
        assert parse_error(b"plain text", 200) is None
        assert parse_error(b'{"message": "hi", "type": "x"}', 200) is None

    def test_error_object_in_a_success(self) -> None:
        body = b'{"id": "gen-1", "error": {"code": 502, "message": "Provider disconnected"}}'
        assert parse_error(body, 200) == pe.ParsedError("Provider disconnected", None, "502")

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (  # Anthropic: an error event after the 200
                b'event: message_start\ndata: {"type": "message_start"}\n\n'
                b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
                b'"message": "Overloaded"}}\n\n',
                pe.ParsedError("Overloaded", "overloaded_error"),
            ),
            (  # OpenAI and compatibles: a data chunk with an error object
                b'data: {"choices": []}\r\n\r\ndata: {"error": {"message": "boom", '
                b'"type": "server_error"}}\r\n\r\n',
                pe.ParsedError("boom", "server_error"),
            ),
            (  # OpenRouter: comments first
                b': OPENROUTER PROCESSING\n\ndata: {"id": "x", "error": {"code": 502, '
                b'"message": "Provider disconnected"}}\n\n',
                pe.ParsedError("Provider disconnected", None, "502"),
            ),
            (  # an error object split over several data lines (one event)
                b'data: {"error":\ndata:  {"message": "split", "code": "insufficient_quota"}}\n\n',
                pe.ParsedError("split", None, "insufficient_quota"),
            ),
            (  # an event named error whose data is plain text
                b"data: {}\n\nevent: error\ndata: upstream went away\n\n",
                pe.ParsedError("upstream went away"),
            ),
            (  # an event named error, unwrapped JSON, a stream that starts with an id
                b'id: 1\nevent: error\ndata: {"message": "m", "code": "c"}\n\n',
                pe.ParsedError("m", None, "c"),
            ),
            (  # an answer that merely mentions "error"
                b'data: {"choices": [{"delta": {"content": "\\"error\\": 1"}}]}\n\n'
                b"data: [DONE]\n\n",
                None,
            ),
        ],
    )
    def test_error_event_in_a_success_stream(
        self, body: bytes, expected: pe.ParsedError | None
    ) -> None:
        assert parse_error(body, 200) == expected

    def test_error_event_in_a_failed_stream_keeps_its_code(self) -> None:
        body = b'data: {"error": {"message": "quota", "code": "insufficient_quota"}}\n\n'
        assert parse_error(body, 429) == pe.ParsedError("quota", None, "insufficient_quota")

    def test_null_error_in_a_success_is_no_error(self) -> None:
        assert parse_error(b'{"id": "x", "error": null}', 200) is None

    def test_bom_and_utf16(self) -> None:
        body = b"\xef\xbb\xbf" + error_body("bom", "t", "c")
        assert parse_error(body, 400) == pe.ParsedError("bom", "t", "c")

    def test_non_utf8_body_keeps_its_code(self) -> None:
        err = parse_error(b'{"error": {"message": "\xff\xfe broken", "code": "c"}}', 500)
        assert err == pe.ParsedError("\ufffd\ufffd broken", None, "c")

    def test_truncated_json(self) -> None:
        err = parse_error(b'{"error": {"message": "cut', 500)
        assert err == pe.ParsedError('{"error": {"message": "cut')

    def test_truncated_json_keeps_code_and_type(self) -> None:
        # Cut by the read limit or a dropped connection: still a quota error.
        body = b'{"error": {"message": "You exceeded your \\"quota\\"", "type": "insufficient_quota", "code": "insufficient_quota", "param": nu'
        assert parse_error(body, 429) == pe.ParsedError(
            'You exceeded your "quota"', "insufficient_quota", "insufficient_quota"
        )
        anthropic = b'{"type":"error","error":{"type":"overloaded_error","message":"Overl'
        # The message was cut inside its last word, which is dropped (it may be a secret).
        assert parse_error(anthropic, 529) == pe.ParsedError("…", "overloaded_error")
        cut = b'{"error":{"code":"x","message":"Bad key sk-proj-abcdef0123456789'
        assert parse_error(cut, 401) == pe.ParsedError("Bad key …", None, "x")
        google = b'{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "det'
        assert parse_error(google, 429) == pe.ParsedError("quota", "RESOURCE_EXHAUSTED", "429")

    def test_huge_quota_error_is_still_a_quota_error(self, engine: pe.Engine) -> None:
        body = (
            b'{"error": {"code": "insufficient_quota", "type": "insufficient_quota", '
            b'"message": "' + b"x" * 100_000 + b'"}}'
        )
        action = engine.evaluate(pe.Response(429, {}, body))
        assert (action.classification, action.kind) == ("quota_exhausted", pe.ActionKind.FAIL)

    def test_deep_json(self) -> None:
        body = b"[" * 100_000 + b"]" * 100_000
        assert parse_error(body, 500) is not None

    def test_huge_body_is_bounded(self) -> None:
        body = b'{"error": {"message": "' + b"x" * 30_000_000 + b'"}}'
        err = parse_error(body, 500)
        assert err is not None and len(err.message) <= MAX_MESSAGE_CHARS

    @pytest.mark.parametrize(
        "body",
        [
            b"<html>" + b"<" * 65_000,
            b"<html>" + b"<title" * 12_000,
            b"<html>" + b"<a " * 20_000,
            b"<title>" + b"a" * 70_000,
            b"error sk-" + b"." * 70_000,
            b"model '" * 10_000,
            b'{"error": ' * 30_000,
        ],
    )
    def test_hostile_pages_are_read_within_bounds(self, body: bytes) -> None:
        # Kept linear by construction (str.find, [^<>]); a quadratic regex here
        # once took 0.3 s on the first of these. This checks shape, not time.
        err = parse_error(body, 500)
        assert err is not None
        assert len(err.message) <= MAX_MESSAGE_CHARS

    def test_long_message_is_clipped(self) -> None:
        err = parse_error(error_body("yes " * 2_500), 400)
        assert err is not None and len(err.message) == MAX_MESSAGE_CHARS - 3
        assert err.message.endswith("yes …")
        # The cut drops the word it falls in: a single word of 10,000 goes whole.
        err = parse_error(error_body("y" * 10_000), 400)
        assert err is not None and err.message == "…"

    def test_a_key_at_the_cut_leaves_nothing_of_itself(self) -> None:
        for at in range(MAX_MESSAGE_CHARS - 60, MAX_MESSAGE_CHARS + 2):
            text = "x" * (at - 1) + " 0123456789abcdef0123456789abcdef and more"
            err = parse_error(error_body(text), 401)
            assert err is not None and "0123" not in err.message, at
            assert len(err.message) <= MAX_MESSAGE_CHARS

    def test_codes_types_and_params_are_bounded(self) -> None:
        long = "eyJ-" * 4_000  # 16 KiB each, the body under MAX_PARSE_BYTES
        body = json.dumps({"error": {"message": "m", "code": long, "type": long, "param": long}})
        err = parse_error(body.encode(), 400)
        assert err is not None
        for value in (err.code, err.type, err.param):
            assert value is not None and len(value) <= MAX_FIELD_CHARS


class TestRedaction:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "Incorrect API key provided: sk-VKMIs***wjh3. You can find",
                "Incorrect API key provided: sk-***. You can find",
            ),
            ("key sk-proj-abc_DEF-123456 is bad", "key sk-*** is bad"),
            (
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
                "Authorization: Bearer ***",
            ),
            ("url ?key=AIzaSyA1234567890abcdefghijklmnop", "url ?key=***"),
            ("google AIzaSyA1234567890abcdefghijklmnop", "google AIza***"),
            ("groq gsk_abcdefABCDEF123456", "groq gsk_***"),
            ("api_key=abcdef123456&x=1", "api_key=***&x=1"),
            ("token: 'abcdefgh12345'", "token: '***'"),
            ("anthropic sk-ant-api03-abc", "anthropic sk-***"),
            # A gateway's own key format, in OpenAI's message: masked by position.
            (
                "Incorrect API key provided: nex-AbCdEf012345. You can find",
                "Incorrect API key provided: ***. You can find",
            ),
            ("Invalid API key provided: 'hunter2hunter2'", "Invalid API key provided: '***'"),
            (
                "API key not valid. Please pass a valid API key.",
                "API key not valid. Please pass a valid API key.",
            ),
            ("replicate r8_AbCdEf0123456789xyz", "replicate r8_***"),
            ("perplexity pplx-AbCdEf0123456789", "perplexity pplx-***"),
            ("nvidia nvapi-AbCdEf0123456789", "nvidia nvapi-***"),
            ("nothing secret here", "nothing secret here"),
        ],
    )
    def test_masks(self, text: str, expected: str) -> None:
        assert pe.redact(text) == expected


class TestFacts:
    def test_model_from_messages(self) -> None:
        assert extract_model("Model 'gpt-5x' not found") == "gpt-5x"
        assert extract_model("The model `gpt-4` does not exist") == "gpt-4"
        assert (
            extract_model("No available channel for model gpt-4o under group default") == "gpt-4o"
        )
        assert extract_model("nothing") is None

    def test_amounts(self) -> None:
        assert extract_amounts(
            "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens"
        ) == ("8192", "9000")
        assert extract_amounts("prompt is too long: 208310 tokens > 200000 maximum") == (
            "200000",
            "208310",
        )
        assert extract_amounts(
            "The input token count (1234) exceeds the maximum number of tokens allowed (1000)."
        ) == ("1000", "1234")
        assert extract_amounts("nothing") == (None, None)


class TestTransportKinds:
    @pytest.mark.parametrize(
        ("exc", "kind"),
        [
            (TimeoutError(), "timeout"),
            (socket.timeout(), "timeout"),
            (ConnectionRefusedError(), "refused"),
            (ConnectionResetError(), "reset"),
            (BrokenPipeError(), "reset"),
            (ConnectionError(), "connection"),
            (socket.gaierror(-2, "Name or service not known"), "dns"),
            (ssl.SSLCertVerificationError(), "tls"),
            (http.client.IncompleteRead(b"ab", 10), "incomplete"),
            (http.client.RemoteDisconnected(), "reset"),
            (urllib.error.URLError(ConnectionRefusedError()), "refused"),
            (urllib.error.URLError(socket.gaierror()), "dns"),
            (urllib.error.URLError("unknown"), "connection"),
            (OSError(101, "Network is unreachable"), "connection"),
        ],
    )
    def test_stdlib(self, exc: BaseException, kind: str) -> None:
        assert transport_kind(exc) == kind

    @pytest.mark.parametrize(
        "exc", [ValueError(), KeyError("x"), FileNotFoundError(), OSError(2, "x"), RuntimeError()]
    )
    def test_not_network(self, exc: BaseException) -> None:
        assert transport_kind(exc) is None

    def test_cause_refines_a_generic_kind(self) -> None:
        try:
            try:
                raise ConnectionRefusedError(111, "refused")
            except OSError as inner:
                raise ConnectionError("wrapped") from inner
        except ConnectionError as outer:
            assert transport_kind(outer) == "refused"

    def test_cycles_are_safe(self) -> None:
        a, b = ConnectionError("a"), ConnectionError("b")
        a.__cause__, b.__cause__ = b, a
        assert transport_kind(a) == "connection"

    def test_hostile_exception(self) -> None:
        class Hostile(ConnectionError):
            def __getattribute__(self, name: str) -> object:
                if name in ("reason", "os_error", "args"):
                    raise RuntimeError("no")
                return super().__getattribute__(name)

        assert transport_kind(Hostile()) == "connection"

    def test_client_libraries(self) -> None:
        import aiohttp
        import httpx
        import requests
        import urllib3

        assert transport_kind(httpx.ConnectTimeout("x")) == "connect_timeout"
        assert transport_kind(httpx.ReadTimeout("x")) == "read_timeout"
        assert transport_kind(httpx.ConnectError("x")) == "connection"
        assert transport_kind(httpx.RemoteProtocolError("x")) == "protocol"
        assert transport_kind(requests.ConnectTimeout()) == "connect_timeout"
        assert transport_kind(requests.ReadTimeout()) == "read_timeout"
        assert transport_kind(requests.exceptions.ChunkedEncodingError()) == "incomplete"
        assert transport_kind(urllib3.exceptions.ReadTimeoutError(None, "/", "x")) == "read_timeout"
        assert transport_kind(aiohttp.ServerDisconnectedError()) == "reset"
        assert transport_kind(aiohttp.ClientPayloadError("x")) == "incomplete"
        assert transport_kind(aiohttp.ServerTimeoutError("x")) == "read_timeout"

    def test_httpx2_forks_by_name(self) -> None:
        # openai 3.x may ship on the httpx2 fork; its exceptions keep httpx's names.
        fork = type("ReadTimeout", (Exception,), {"__module__": "httpx2._exceptions"})
        assert transport_kind(fork("x")) == "read_timeout"


class TestNestedCodes:
    """Codes nested in an error object: read, bounded, matched by match.code."""

    @pytest.mark.parametrize(
        ("body", "code", "nested"),
        [
            (  # Anthropic: error.details.error_code
                {
                    "type": "error",
                    "error": {
                        "type": "rate_limit_error",
                        "message": "m",
                        "details": {"error_code": "enforced_spend_limit_reached"},
                    },
                },
                None,
                ("enforced_spend_limit_reached",),
            ),
            (  # Google legacy: errors[].reason
                {
                    "error": {
                        "code": 403,
                        "message": "m",
                        "errors": [{"reason": "rateLimitExceeded"}],
                        "status": "PERMISSION_DENIED",
                    }
                },
                "403",
                ("rateLimitExceeded",),
            ),
            (  # Google: the first ErrorInfo reason is the code; QuotaFailure ids nested
                {
                    "error": {
                        "code": 429,
                        "status": "RESOURCE_EXHAUSTED",
                        "details": [
                            {"reason": "RATE_LIMIT_EXCEEDED"},
                            {"violations": [{"quotaId": "PerDay"}, {"quotaId": "PerMinute"}]},
                        ],
                    }
                },
                "RATE_LIMIT_EXCEEDED",
                ("PerDay", "PerMinute"),
            ),
            (  # Azure: innererror.code
                {
                    "error": {
                        "code": "content_filter",
                        "message": "m",
                        "innererror": {"code": "ResponsibleAIPolicyViolation"},
                    }
                },
                "content_filter",
                ("ResponsibleAIPolicyViolation",),
            ),
        ],
    )
    def test_read(self, body: dict[str, object], code: str | None, nested: tuple[str, ...]) -> None:
        error = (
            pe.Engine(pe.load_policy(env=False))
            .evaluate(pe.Response(400, {}, json.dumps(body).encode()))
            .error
        )
        assert error is not None
        assert (error.code, error.nested_codes) == (code, nested)

    def test_bounded(self) -> None:
        from policyengine._errorbody import MAX_NESTED_ITEMS, parse_raw

        many = {"error": {"message": "m", "errors": [{"reason": f"r{i}"} for i in range(1000)]}}
        raw = parse_raw(json.dumps(many).encode(), 400)
        assert raw is not None and len(raw.more_codes) == MAX_NESTED_ITEMS

    def test_matched_by_match_code(self) -> None:
        policy = pe.load_policy(
            {
                "rules": [
                    {
                        "id": "spend",
                        "match": {"code": "enforced_spend_limit_reached"},
                        "classification": "quota_exhausted",
                    }
                ]
            },
            env=False,
        )
        body = {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "m",
                "details": {"error_code": "enforced_spend_limit_reached"},
            },
        }
        action = pe.Engine(policy).evaluate(pe.Response(429, {}, json.dumps(body).encode()))
        assert (action.rule_id, action.kind) == ("spend", pe.ActionKind.FAIL)
        assert "nested code 'enforced_spend_limit_reached'" in action.explanation
        assert "[code 'enforced_spend_limit_reached']" in action.explanation
