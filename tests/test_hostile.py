"""Hostile input: bounded work on every field and header, whatever its size.

For every place a server can put text, payloads shaped against each pattern
that reads server text are evaluated and every text of the action is read.
What each pattern is given to scan is recorded: it stays under its named
bound, and it does not grow when the payload grows from 16 KiB to 64 KiB.
Output sizes are bounded too. Nothing here is timed (benchmarks/hostile.py
measures the wall times); the matrix runs in a child process with a generous
timeout only so that a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from typing import Any

import policyengine as pe
from policyengine import _delay, _errorbody, _facts, _redact
from policyengine._delay import MAX_HINT_VALUES, Hint
from policyengine._errorbody import MAX_FIELD_CHARS, MAX_MESSAGE_CHARS, MAX_PARSE_BYTES
from policyengine._explain import QUOTED_HINT_CHARS, HintRead
from policyengine._patterns import MAX_SEARCHED_CHARS

#: Shapes aimed at the patterns that read server text.
SHAPES = [
    "eyJ-",
    "eyJabcde.",
    "sk-",
    "sk-a.",
    "Bearer ",
    "api_key=",
    '"apiKey":"',
    "key: ",
    "token provided: ",
    "AIza",
    "https://u:",
    "0123456789abcdef",
    "AKIA",
    "model ",
    "1",
    "limit ",
    "<",
    "<a",
    "try again in 1",
    "1s",
    " ",
    "a",
    "-----BEGIN PRIVATE KEY-----",
]
PLACES = [
    "message",
    "code",
    "type",
    "param",
    "nested object",
    "error string",
    "plain text",
    "HTML",
    "event stream",
    "cut-off JSON",
    "Retry-After",
    "other header",
    "context-length message",
    "model message",
]
#: The bound on the text each kind of pattern may scan (characters).
BODY_PATTERNS = ("_errorbody._WS", "_errorbody._TAG", "_errorbody._SALVAGE")
BOUND = {
    "body": MAX_PARSE_BYTES,
    "user": MAX_SEARCHED_CHARS,
    # A text out: a remediation or reason quoting at most a message and a few fields.
    "text": 2 * MAX_MESSAGE_CHARS + 4 * MAX_FIELD_CHARS + 1024,
}

_CHILD = r"""
import json, random, re, sys
import policyengine as pe
from policyengine import _delay, _errorbody, _facts, _redact
from tests.test_hostile import PLACES, SHAPES, place, read_all

scanned = {}

class Spy:
    def __init__(self, name, pattern):
        self.name, self.pattern = name, pattern
        self.groups, self.groupindex = pattern.groups, pattern.groupindex
    def _note(self, text, pos=0, endpos=sys.maxsize):
        n = max(0, min(len(text), endpos) - pos)
        scanned[self.name] = max(scanned.get(self.name, 0), n)
    def search(self, text, pos=0, endpos=sys.maxsize):
        self._note(text, pos, endpos); return self.pattern.search(text, pos, endpos)
    def match(self, text, pos=0, endpos=sys.maxsize):
        self._note(text, pos, endpos); return self.pattern.match(text, pos, endpos)
    def fullmatch(self, text, pos=0, endpos=sys.maxsize):
        self._note(text, pos, endpos); return self.pattern.fullmatch(text, pos, endpos)
    def finditer(self, text, pos=0, endpos=sys.maxsize):
        self._note(text, pos, endpos); return self.pattern.finditer(text, pos, endpos)
    def sub(self, repl, text, count=0):
        self._note(text); return self.pattern.sub(repl, text, count)

for module in (_errorbody, _facts, _delay, _redact):
    for attr, value in list(vars(module).items()):
        name = f"{module.__name__.rsplit('.', 1)[1]}.{attr}"
        if isinstance(value, re.Pattern):
            setattr(module, attr, Spy(name, value))
        elif isinstance(value, tuple) and value and all(isinstance(v, re.Pattern) for v in value):
            setattr(module, attr, tuple(Spy(f"{name}[{i}]", v) for i, v in enumerate(value)))

engine = pe.Engine(pe.load_policy(env=False), rng=random.Random(1), clock=lambda: 0.0)
object.__setattr__(engine, "_hints", tuple(
    h._replace(pattern=Spy(f"user.hints[{i}]", h.pattern)) if h.pattern is not None else h
    for i, h in enumerate(engine._hints)
))
size = int(sys.argv[1])
out = {"scanned": {}, "outputs": {}}
for where in PLACES:
    for shape in SHAPES:
        scanned.clear()
        action = engine.evaluate(place(where, shape, size))
        sizes = read_all(action)
        key = f"{where} | {shape}"
        out["scanned"][key] = dict(scanned)
        out["outputs"][key] = sizes
print(json.dumps(out))
"""


def _error_body(field: str, text: str) -> str:
    error: dict[str, Any] = {"message": "m", "type": "t", "code": "c", "param": "p"}
    error[field] = text
    return json.dumps({"error": error})


def place(where: str, shape: str, size: int) -> pe.Response:
    """A 429 carrying ``shape`` repeated to about ``size`` bytes at ``where``."""
    text = (shape * (size // len(shape) + 1))[: size - 200]
    if where in ("message", "code", "type", "param"):
        return pe.Response(429, {}, _error_body(where, text))
    if where == "nested object":
        return pe.Response(429, {}, json.dumps({"error": {"message": {"d": [text]}, "code": "c"}}))
    if where == "error string":
        return pe.Response(429, {}, json.dumps({"error": text}))
    if where == "plain text":
        return pe.Response(429, {"content-type": "text/plain"}, text)
    if where == "HTML":
        return pe.Response(503, {}, f"<html><title>{text}</title></html>")
    if where == "event stream":
        line = json.dumps({"error": {"message": text, "type": "overloaded_error"}})
        return pe.Response(200, {}, f"event: error\ndata: {line}\n\n")
    if where == "cut-off JSON":
        return pe.Response(429, {}, '{"error": {"code": "rate_limit_exceeded", "message": "' + text)
    if where == "context-length message":  # its remediation reads the limit and the amount
        body = json.dumps({"error": {"message": text, "code": "context_length_exceeded"}})
        return pe.Response(400, {}, body)
    if where == "model message":  # its remediation reads the model from the message
        return pe.Response(
            404, {}, json.dumps({"error": {"message": text, "code": "model_not_found"}})
        )
    if where == "Retry-After":
        return pe.Response(429, {"retry-after": text}, _error_body("message", "m"))
    return pe.Response(429, {"x-ratelimit-reset-requests": text}, _error_body("message", "m"))


def read_all(action: pe.Action) -> dict[str, int]:
    """Every text of ``action`` read, and its length."""
    error = action.error
    sizes = {
        "remediation": len(action.remediation),
        "explanation": len(action.explanation),
        "reason": max(map(len, action.reasons)),
    }
    if error is not None:
        sizes["message"] = len(error.message)
        sizes["field"] = max(len(x or "") for x in (error.code, error.type, error.param))
    return sizes


@cache
def run_matrix(size: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(size)],
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only: the matrix takes seconds
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _kind(pattern: str) -> str:
    if pattern.startswith("user."):
        return "user"
    if pattern.startswith(BODY_PATTERNS):
        return "body"
    return "text"


def test_every_pattern_scans_at_most_its_bound() -> None:
    matrix = run_matrix(64 * 1024)
    seen = set()
    for case, scanned in matrix["scanned"].items():
        for pattern, length in scanned.items():
            seen.add(pattern)
            assert length <= BOUND[_kind(pattern)], (case, pattern, length)
    # The spies saw the patterns that matter: redaction, facts, bodies, hints.
    assert {"_redact._SECRET", "_errorbody._TAG", "_facts._MODEL[0]", "_facts._LIMIT[0]"} <= seen
    assert any(name.startswith("user.hints") for name in seen)


def test_what_patterns_scan_does_not_grow_with_the_payload() -> None:
    # Eight times the payload (both past MAX_PARSE_BYTES): every field and header
    # is cut before a pattern runs, so no pattern sees more.
    small, large = run_matrix(128 * 1024), run_matrix(1024 * 1024)
    assert large["scanned"] == small["scanned"]
    assert large["outputs"] == small["outputs"]


def test_outputs_are_bounded() -> None:
    for case, sizes in run_matrix(64 * 1024)["outputs"].items():
        assert sizes.get("message", 0) <= MAX_MESSAGE_CHARS, case
        assert sizes.get("field", 0) <= MAX_FIELD_CHARS, case
        assert sizes["reason"] <= BOUND["text"], case
        assert sizes["remediation"] <= BOUND["text"], case


def test_a_hint_quoted_from_a_header_is_cut() -> None:
    # The hint parsers take short values only; the quote is cut all the same.
    said = HintRead(Hint(2.0, "retry-after", "x" * 50_000)).say(None)  # type: ignore[arg-type]
    assert len(said) < QUOTED_HINT_CHARS + 60


def test_the_spied_modules_hold_the_patterns_the_child_spies() -> None:
    # If a pattern moves out of these modules, the matrix above stops seeing it.
    for module in (_errorbody, _facts, _delay, _redact):
        assert any(isinstance(v, (re.Pattern, tuple)) for v in vars(module).values())


def test_a_header_sent_fifty_thousand_times_is_read_sixteen_times() -> None:
    engine = pe.Engine(pe.load_policy(env=False))
    values = [("retry-after", "1")] * 50_000
    values[MAX_HINT_VALUES - 1] = ("retry-after", "3")
    values[MAX_HINT_VALUES] = ("retry-after", "9")  # past the values read
    response = pe.Response(429, values, b"")
    assert len(response.headers["retry-after"]) == 50_000
    action = engine.evaluate(response)
    assert (action.delay, action.delay_source) == (3.0, "server")
