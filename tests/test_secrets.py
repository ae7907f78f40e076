"""No secret a server echoes leaves the library.

Each catalogued format (made-up values of the real shapes) is echoed in every
position a server can put it: the error's message, code, type and param, a
nested object, a plain-text and an HTML body, an event stream, a header value.
None of it may reach any output: the action's error, explanation and
remediation, ``GaveUp`` (str, repr, traceback with notes), log records at
DEBUG (message and attributes, the governor's too), the CLI's output.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import traceback
from collections.abc import Iterator

import httpx
import pytest

import policyengine as pe
from policyengine.cli import main
from policyengine.httpx import PolicyTransport
from policyengine.testing import FakeGateway, Reply, testing_mode

# (what the server says, the part that must never come out)
SECRETS: dict[str, tuple[str, str]] = {
    "OpenAI key": ("sk-proj-Zk3pQ9vXw2LmN8rTz1Yb", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "Anthropic key": ("sk-ant-api03-Qm7rT2vXw9LkN4pZa8Yc-Ab", "Qm7rT2vXw9LkN4pZa8Yc"),
    "AWS access key id": ("AKIAZK3PQ9VXW2LMN8RT", "ZK3PQ9VXW2LMN8RT"),
    "AWS secret key": ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzK3pQ9vX2L", "K7MDENG/bPxRfiCY"),
    "Google API key": ("AIzaSyZk3pQ9vXw2LmN8rTz1YbAbCdEfGhIjKlM", "SyZk3pQ9vXw2LmN8rT"),
    "Google OAuth token": ("ya29.a0AfZk3pQ9vXw2LmN8rTz1Yb", "a0AfZk3pQ9vXw2LmN8"),
    "Slack bot token": (
        "xoxb-123456789012-1234567890123-Zk3pQ9vXw2LmN8rTz1Yb",
        "1234567890123-Zk3p",
    ),
    "Discord bot token": (
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.Zk3pQ9vXw2LmN8rTz1YbAbCdEfGhIj",
        "GaBcDe.Zk3pQ9vX",
    ),
    "Telegram bot token": (
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0",
        "HdqTcvCH1vGWJxfSeof",
    ),
    "GitHub token": ("ghp_Zk3pQ9vXw2LmN8rTz1YbAbCdEfGhIjKlMn", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "GitHub fine-grained token": ("github_pat_11ABCDEFG0Zk3pQ9vXw2LmN8_rTz1Yb", "ABCDEFG0Zk3p"),
    "GitLab token": ("glpat-Zk3pQ9vXw2LmN8rTz1Yb", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "Hugging Face token": ("hf_Zk3pQ9vXw2LmN8rTz1YbAbCdEfGhIj", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "Replicate token": ("r8_Zk3pQ9vXw2LmN8rTz1Yb", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "Groq key": ("gsk_Zk3pQ9vXw2LmN8rTz1Yb", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "subscription key": ("9f8e7d6c5b4a39281706f5e4d3c2b1a0", "9f8e7d6c5b4a3928"),
    "Together key (hex)": (
        "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0",
        "5b4a39281706f5e4d3c2",
    ),
    "Together key": ("tgp_v1_Zk3pQ9vXw2LmN8rTz1YbAbCdEfGhIj", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "Fireworks key": ("fw_3ZZk3pQ9vXw2LmN8rTz1Yb", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "Cerebras key": ("csk-zk3pq9vxw2lmn8rtz1ybabcdefghij", "zk3pq9vxw2lmn8rtz1yb"),
    "LangSmith key": ("lsv2_pt_Zk3pQ9vXw2LmN8rTz1Yb_0123abcd", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "Tavily key": ("tvly-Zk3pQ9vXw2LmN8rTz1Yb", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "Jina key": ("jina_Zk3pQ9vXw2LmN8rTz1Yb", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "JWT": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.Zk3pQ9vXw2LmN8rTz1Yb",
        "eyJzdWIiOiJhbGljZSJ9",
    ),
    "bearer token": ("Authorization: Bearer Zk3pQ9vXw2LmN8rT", "Zk3pQ9vXw2LmN8rT"),
    "URL password": ("https://alice:Hunter2Secret@proxy.example.com:8080/", "Hunter2Secret"),
    "client_secret pair": ("client_secret=Zk3pQ9vXw2LmN8rT&grant=1", "Zk3pQ9vXw2LmN8rT"),
    "JSON api_key": ('{"api_key": "Zk3pQ9vXw2LmN8rT"}', "Zk3pQ9vXw2LmN8rT"),
    "JSON apiKey": ('{"apiKey":"Zk3pQ9vXw2LmN8rT"}', "Zk3pQ9vXw2LmN8rT"),
    "JSON password": ('{"password": "correct horse battery"}', "horse battery"),
    "header line": ("X-Api-Key: Zk3pQ9vXw2LmN8rT", "Zk3pQ9vXw2LmN8rT"),
    "key after a word": ("the key Zk3pQ9vXw2LmN8rTz1Yb is revoked", "Zk3pQ9vXw2LmN8rTz1Yb"),
    "invalid-key message": ("Incorrect API key provided: gw-Zk3pQ9vXw2.", "Zk3pQ9vXw2"),
}

POSITIONS = (
    "message",
    "code",
    "type",
    "param",
    "nested object",
    "error string",
    "plain text",
    "HTML",
    "event stream",
    "header",
)

NOW = 4_000_000_000.0  # 2096-10-02: a Retry-After date within a year of it is a wait
RETRY_AFTER_DATE = "Wed, 03 Oct 2096 07:06:40 GMT"

# Every placeholder a remediation may use, so that every field is rendered.
POLICY = {
    "inherit": False,
    "hints": {"sources": [{"header": "retry-after", "format": "retry-after"}]},
    "rules": [
        {
            "id": "echo",
            "classification": "echoed",
            "retryable": True,
            "action": "retry",
            "max_attempts": 2,
            "remediation": (
                "{message} | {code} | {type} | {param} | {model} | {retry_after} | {limit}"
            ),
            "backoff": {"initial": 0.01, "max_delay": 0.01},
        }
    ],
}


def response(position: str, text: str) -> pe.Response:
    """A 429 carrying ``text`` where ``position`` says."""
    error: dict[str, object] = {"message": "m", "type": "t", "code": "c", "param": "p"}
    headers = {"retry-after": RETRY_AFTER_DATE}
    if position in ("message", "code", "type", "param"):
        error[position] = f"said {text} here"
        body = json.dumps({"error": error})
    elif position == "nested object":
        body = json.dumps({"error": {"message": {"detail": [{"echo": text}]}, "code": "c"}})
    elif position == "error string":
        body = json.dumps({"error": f"said {text} here"})
    elif position == "plain text":
        body = f"said {text} here"
    elif position == "HTML":
        body = f"<html><head><title>said {text} here</title></head><body></body></html>"
    elif position == "event stream":
        event = json.dumps({"type": "error", "error": {"type": "t", "message": f"said {text}"}})
        return pe.Response(200, headers, f"event: error\ndata: {event}\n\n")
    else:
        headers = {"retry-after": f"{RETRY_AFTER_DATE} {text}", "x-echo": text}
        body = json.dumps({"error": error})
    return pe.Response(429, headers, body)


def outputs(action: pe.Action) -> Iterator[str]:
    yield repr(action)
    yield repr(action.error)
    yield repr(action.facts)
    yield action.explanation
    yield action.remediation
    yield from action.reasons


def engine() -> pe.Engine:
    return pe.Engine(pe.load_policy(POLICY, env=False, default=False), clock=lambda: NOW)


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="policyengine")
    return caplog


def records_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every log record: its message and every attribute, as text."""
    return "\n".join(
        f"{record.getMessage()} {' '.join(map(str, vars(record).values()))}"
        for record in caplog.records
    )


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("name", sorted(SECRETS))
def test_no_output_of_an_action_shows_a_secret(name: str, position: str) -> None:
    said, secret = SECRETS[name]
    action = engine().evaluate(response(position, said), model="gpt-4o")
    assert action.rule_id == "echo"
    for text in outputs(action):
        assert secret not in text, (name, position, text)


@pytest.mark.parametrize("position", POSITIONS)
def test_the_echo_reaches_the_outputs_unredacted_parts_and_all(position: str) -> None:
    # The test above can fail: a harmless word in the same place comes out.
    action = engine().evaluate(response(position, "PLAINWORD"), model="gpt-4o")
    if position == "header":
        assert "PLAINWORD" in action.explanation  # quoted as the server's wait hint
    else:
        assert "PLAINWORD" in action.remediation + repr(action.error)


@pytest.mark.parametrize("position", POSITIONS)
def test_gave_up_and_the_logs_show_no_secret(
    position: str, debug_log: pytest.LogCaptureFixture
) -> None:
    text = " ; ".join(said for said, _ in SECRETS.values())
    driver = pe.Driver(engine(), governor=pe.Governor(engine().policy))
    with testing_mode(), pytest.raises(pe.GaveUp) as caught:
        driver.call(lambda attempt: response(position, text), model="gpt-4o")
    error = caught.value
    shown = [
        str(error),
        repr(error),
        "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        *outputs(error.action),
        records_text(debug_log),
    ]
    assert debug_log.records, "nothing was logged"
    for name, (_, secret) in SECRETS.items():
        for out in shown:
            assert secret not in out, (name, position, out)


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_a_model_named_in_a_message_shows_no_secret(name: str) -> None:
    said, secret = SECRETS[name]
    body = json.dumps({"error": {"message": f"The model `{said}` does not exist", "code": "c"}})
    facts = pe.Engine(pe.load_policy(env=False)).evaluate(pe.Response(404, {}, body)).facts
    assert secret not in repr(facts), (name, facts)


def test_log_attributes_are_redacted(debug_log: pytest.LogCaptureFixture) -> None:
    # The model a caller names is logged as an attribute; it can carry a key.
    said, secret = SECRETS["OpenAI key"]
    with testing_mode():
        pe.Driver(engine()).run(lambda attempt: response("message", "x"), model=f"m {said}")
    assert debug_log.records
    for record in debug_log.records:
        assert record.model is not None and "sk-***" in record.model
        assert secret not in records_text(debug_log)


def test_through_a_real_client(debug_log: pytest.LogCaptureFixture) -> None:
    text = " ; ".join(said for said, _ in SECRETS.values())
    reply = Reply(
        429,
        [("Retry-After", f"{RETRY_AFTER_DATE} {text}")],
        json.dumps({"error": {"message": text, "code": text, "type": text, "param": text}}),
    )
    with FakeGateway() as gateway, testing_mode():
        gateway.script(reply, reply)
        with httpx.Client(transport=PolicyTransport(engine=engine())) as client:
            got = client.post(gateway.chat_url, json={"model": "gpt-4o", "messages": []})
        action = got.extensions["policyengine.action"]
    assert got.status_code == 429 and action.kind is pe.ActionKind.FAIL
    shown = [*outputs(action), records_text(debug_log)]
    for name, (_, secret) in SECRETS.items():
        for out in shown:
            assert secret not in out, (name, out)


class _Stdin(io.TextIOWrapper):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cli_explain_shows_no_secret(
    fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = " ; ".join(said for said, _ in SECRETS.values())
    body = json.dumps({"error": {"message": text, "code": text, "type": text, "param": text}})
    raw = (
        f"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2 {text}\r\n"
        f"Content-Type: application/json\r\n\r\n{body}"
    ).encode()
    monkeypatch.setattr(sys, "stdin", _Stdin(raw))
    code = main(["explain", "--format", fmt, "--no-env"])
    out, err = capsys.readouterr()
    assert code == 0 and out
    for name, (_, secret) in SECRETS.items():
        assert secret not in out + err, (name, out)
