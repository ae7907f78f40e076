"""The command line, through ``main(argv)`` and as a subprocess: every
command, every exit code, the exact text of every error."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import policyengine as pe
from policyengine.cli import build_parser, commands, main

Run = Callable[..., tuple[int, str, str]]

MAIN_JOB = [
    "explain",
    "--status",
    "429",
    "--header",
    "Retry-After: 2",
    "--body",
    '{"error": {"message": "Rate limit exceeded", "type": "requests", '
    '"code": "rate_limit_exceeded"}}',
]
MAIN_JOB_OUTPUT = """\
action:         retry
delay:          2s
classification: rate_limit
retryable:      true
rule:           rate-limit-exceeded (<default>: $.rules[9])
error:          code 'rate_limit_exceeded', type 'requests': Rate limit exceeded
remediation:    Rate limit exceeded. Cause: Request frequency has exceeded the RPM \
(requests per minute) quota. Solution: Reduce request frequency and increase the interval \
between requests. Contact support if you need a higher quota.
explanation:
  rule 'rate-limit-exceeded' matched [code 'rate_limit_exceeded'/'rate_limit_error'] on \
status 429, code 'rate_limit_exceeded', type 'requests', message 'Rate limit exceeded'
  server hint retry-after: '2' = 2s
  delay 2s as the server asked
"""


class _Stdin(io.TextIOWrapper):
    def __init__(self, data: bytes, tty: bool = False) -> None:
        super().__init__(io.BytesIO(data))
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """``cli(*argv, stdin=b"...")`` -> (exit code, stdout, stderr)."""

    def run(*argv: str, stdin: bytes = b"", tty: bool = False) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", _Stdin(stdin, tty))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _subprocess(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != pe.ENV_VAR}
    return subprocess.run(
        [sys.executable, "-m", "policyengine", *argv],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


# --- the parser and main ---------------------------------------------------------------


def test_parser_is_built_apart() -> None:
    parser = build_parser()
    args = parser.parse_args(["explain", "--status", "429", "--header", "A: b"])
    assert (args.command, args.status, args.header) == ("explain", 429, [("A", "b")])


def test_no_command_is_a_usage_error(cli: Run) -> None:
    code, out, err = cli()
    assert code == 2
    assert out == ""
    assert err.endswith("policyengine: error: the following arguments are required: COMMAND\n")


def test_unknown_command_is_a_usage_error(cli: Run) -> None:
    code, _, err = cli("frobnicate")
    assert code == 2
    assert "policyengine: error: argument COMMAND: invalid choice: 'frobnicate'" in err


def test_version_and_help(cli: Run) -> None:
    assert cli("--version")[:2] == (0, f"policyengine {pe.__version__}\n")
    code, out, _ = cli("--help")
    assert code == 0
    for command in ("check", "explain", "show", "table", "test", "simulate", "schema"):
        assert command in out


# --- explain -------------------------------------------------------------------------------


def test_explain_main_job(cli: Run) -> None:
    assert cli(*MAIN_JOB) == (0, MAIN_JOB_OUTPUT, "")


def test_explain_json(cli: Run) -> None:
    code, out, err = cli(*MAIN_JOB, "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "kind": "retry",
        "delay": 2.0,
        "classification": "rate_limit",
        "retryable": True,
        "rule": "rate-limit-exceeded",
        "rule_source": {"file": "<default>", "path": "$.rules[9]"},
        "fallback": None,
        "status": 429,
        "transport": None,
        "error": {
            "message": "Rate limit exceeded",
            "type": "requests",
            "code": "rate_limit_exceeded",
            "param": None,
        },
        "remediation": pe.load_policy(env=False).rule("rate-limit-exceeded").remediation,
        "explanation": [
            "rule 'rate-limit-exceeded' matched [code 'rate_limit_exceeded'/'rate_limit_error'] "
            "on status 429, code 'rate_limit_exceeded', type 'requests', "
            "message 'Rate limit exceeded'",
            "server hint retry-after: '2' = 2s",
            "delay 2s as the server asked",
        ],
    }


def test_explain_raw_response_from_stdin(cli: Run) -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/2 401 \r\ncontent-type: application/json\r\n\r\n"
        b'{"error": {"message": "Invalid API key provided: sk-nex-abcdef123456.", '
        b'"type": "authentication_error", "code": "invalid_api_key"}}'
    )
    code, out, err = cli("explain", "--format", "json", stdin=raw)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["kind"], data["rule"], data["status"]) == ("fail", "invalid-api-key", 401)
    assert data["error"]["message"] == "Invalid API key provided: sk-***."


def test_explain_json_record_from_stdin(cli: Run) -> None:
    record = b'{"status": 503, "headers": {"Retry-After": "7"}}'
    code, out, _ = cli("explain", "--format", "json", stdin=record)
    assert code == 0
    assert (json.loads(out)["kind"], json.loads(out)["delay"]) == ("retry", 7.0)


def test_explain_transport(cli: Run) -> None:
    code, out, _ = cli("explain", "--transport", "read_timeout", "--attempt", "4")
    assert code == 0
    assert out.splitlines()[:5] == [
        "action:         fail",
        "delay:          0s",
        "classification: timeout",
        "retryable:      true",
        "rule:           timeout (<default>: $.rules[41])",
    ]
    assert "  fail: gave up after 4 attempts (max_attempts = 4)" in out.splitlines()


def test_explain_http_date_is_measured_from_the_date_header(cli: Run) -> None:
    code, out, _ = cli(
        "explain",
        "--status",
        "503",
        "--header",
        "Date: Wed, 25 Nov 2026 12:00:00 GMT",
        "--header",
        "Retry-After: Wed, 25 Nov 2026 12:00:05 GMT",
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out)["delay"] == 5.0


def test_explain_body_file_and_fallback_override(cli: Run, tmp_path: Path) -> None:
    body = _write(tmp_path, "body.json", '{"error": {"message": "upstream down"}}')
    policy = _write(
        tmp_path,
        "prod.toml",
        '[[rules]]\nid = "upstream-unavailable"\nfallback = ["gpt-4o", "gpt-4o-mini"]\n',
    )
    code, out, _ = cli(
        "explain",
        "--policy",
        policy,
        "--status",
        "502",
        "--body-file",
        body,
        "--model",
        "gpt-4o",
        "--format",
        "json",
    )
    assert code == 0
    data = json.loads(out)
    assert (data["kind"], data["fallback"]) == ("fallback", "gpt-4o-mini")
    assert data["error"]["message"] == "upstream down"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--status", "abc"], "argument --status: expected an HTTP status 100-999, got 'abc'"),
        (["--status", "42"], "argument --status: expected an HTTP status 100-999, got '42'"),
        (
            ["--status", "429", "--header", "nocolon"],
            "argument --header: expected 'Name: value', got 'nocolon'",
        ),
        (
            ["--status", "429", "--header", " X: y"],
            "argument --header: expected 'Name: value', got ' X: y'",
        ),
        (
            ["--status", "429", "--transport", "timeout"],
            "argument --transport: not allowed with argument --status",
        ),
        (
            ["--status", "429", "--body", "x", "--body-file", "f"],
            "argument --body-file: not allowed with argument --body",
        ),
        (
            ["--status", "429", "--attempt", "0"],
            "argument --attempt: expected a whole number >= 1, got '0'",
        ),
        (
            ["--status", "429", "--elapsed", "-1"],
            "argument --elapsed: expected seconds >= 0, got '-1'",
        ),
        (
            ["--status", "429", "--elapsed", "nan"],
            "argument --elapsed: expected seconds >= 0, got 'nan'",
        ),
        (["--status", "429", "--seed", "x"], "argument --seed: expected a whole number, got 'x'"),
        (
            ["--status", "429", "--method", "PO ST"],
            "argument --method: expected an HTTP method such as 'POST', got 'PO ST'",
        ),
        (
            ["--transport", "read_timeout", "--method", ""],
            "argument --method: expected an HTTP method such as 'POST', got ''",
        ),
        (["--header", "A: b"], "--header, --body and --body-file need --status"),
        (
            ["--transport", "dns", "--body", "x"],
            "--header, --body and --body-file describe a response, not --transport",
        ),
    ],
)
def test_explain_usage_errors(cli: Run, argv: list[str], message: str) -> None:
    code, out, err = cli("explain", *argv)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == f"policyengine explain: error: {message}"


def test_explain_unknown_transport_is_a_usage_error(cli: Run) -> None:
    code, _, err = cli("explain", "--transport", "smoke")
    assert code == 2
    assert "argument --transport: invalid choice: 'smoke'" in err


def test_explain_from_a_terminal_needs_a_response(cli: Run) -> None:
    code, _, err = cli("explain", tty=True)
    assert code == 2
    assert err.splitlines()[-1] == (
        "policyengine explain: error: give --status or --transport, or pipe a raw HTTP "
        "response in (curl -si URL | policyengine explain)"
    )


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (
            b"",
            "<stdin>: empty input: expected a raw HTTP response (curl -si URL | policyengine "
            "explain), or give --status or --transport",
        ),
        (
            b"\n\n\x00\x01\xff garbage",
            "<stdin>: line 3: expected a status line such as 'HTTP/1.1 429 Too Many Requests', "
            "got '\\x00\\x01ÿ garbage'",
        ),
        (
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After 2\r\n\r\n",
            "<stdin>: line 2: expected a header 'Name: value', got 'Retry-After 2'",
        ),
        (
            b'{"status": 429}\n{"status": 200}\n',
            "<stdin>: expected one response, got 2 (policyengine simulate replays a sequence)",
        ),
        (b'{"status": "429"}', "<stdin>: $.status: expected a whole number 100-999, got '429'"),
        (
            b"{not json",
            "<stdin>: line 1, column 2: invalid JSON: Expecting property name "
            "enclosed in double quotes",
        ),
    ],
)
def test_explain_bad_stdin(cli: Run, stdin: bytes, message: str) -> None:
    assert cli("explain", stdin=stdin) == (1, "", message + "\n")


def test_explain_missing_body_file(cli: Run, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert cli("explain", "--status", "400", "--body-file", str(missing)) == (
        1,
        "",
        f"{missing}: cannot read: No such file or directory\n",
    )
    assert cli("explain", "--status", "400", "--body-file", str(tmp_path)) == (
        1,
        "",
        f"{tmp_path}: cannot read: it is a directory\n",
    )


def test_policy_from_stdin(cli: Run) -> None:
    override = b'[[rules]]\nid = "rate-limit-exceeded"\nretryable = "no"\n'
    code, out, err = cli("explain", "--status", "429", "--policy", "-", stdin=override)
    assert (code, out) == (1, "")
    assert err == "<stdin>: $.rules[0].retryable: expected true or false, got 'no'\n"
    code, out, _ = cli("check", "-", stdin=b'[[rules]]\nid = "rate-limit-exceeded"\n')
    assert code == 0


def test_policy_from_stdin_is_size_capped(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "MAX_POLICY_BYTES", 10)
    code, out, err = cli("check", "-", stdin=b"# " + b"x" * 20)
    assert (code, out, err) == (
        1,
        "<stdin>: error: larger than 10 bytes [invalid]\n1 error, 0 warnings\n",
        "",
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_fifo_recording_is_refused_without_blocking(cli: Run, tmp_path: Path) -> None:
    fifo = tmp_path / "calls.jsonl"
    os.mkfifo(fifo)
    assert cli("simulate", str(fifo)) == (
        1,
        "",
        f"{fifo}: cannot read: it is a named pipe (FIFO), not a regular file\n",
    )


def test_policy_errors_name_file_and_key_path(cli: Run, tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "bad.toml",
        '[[rules]]\nid = "rate-limit"\nmax_attempts = "ten"\naction = "retri"\n',
    )
    broken = _write(tmp_path, "broken.toml", "[[rules]\n")
    missing = str(tmp_path / "missing.toml")
    code, out, err = cli(
        "explain", "--status", "429", "--policy", bad, "--policy", broken, "--policy", missing
    )
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{bad}: $.rules[0].action: expected one of 'succeed', 'retry', 'fallback', 'fail', "
        "got 'retri' (did you mean 'retry'?)",
        f"{bad}: $.rules[0].max_attempts: expected a whole number >= 1, got 'ten'",
        f"{broken}: line 1, column 8: invalid TOML: Expected ']]' at the end of an array "
        "declaration",
        f"{missing}: cannot read: No such file or directory",
    ]


def test_env_policy_is_layered_unless_no_env(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _write(tmp_path, "env.toml", '[[rules]]\nid = "rate-limit"\naction = "fail"\n')
    monkeypatch.setenv(pe.ENV_VAR, env)
    assert json.loads(cli("explain", "--status", "429", "--format", "json")[1])["kind"] == "fail"
    out = cli("explain", "--status", "429", "--format", "json", "--no-env")[1]
    assert json.loads(out)["kind"] == "retry"


# --- check ---------------------------------------------------------------------------------


def test_check_default_is_clean(cli: Run) -> None:
    policy = pe.load_policy(env=False)
    assert cli("check") == (
        0,
        f"ok: {len(policy.rules)} rules, {len(policy.tests)} tests, no problems found\n",
        "",
    )


def test_check_reports_load_problems_as_findings(cli: Run, tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "bad.toml",
        '[defaults]\nmax_attempts = 0\n[[rules]]\nid = "a"\nmatch = { stauts = 429 }\n',
    )
    code, out, err = cli("check", bad)
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"{bad}: $.defaults.max_attempts: error: expected a whole number >= 1, got 0 [invalid]",
        f"{bad}: $.rules[0].match.stauts: error: unknown key (did you mean 'status'?); known keys: "
        "status, code, type, message, message_regex, headers, method, transport, error [invalid]",
        "2 errors, 0 warnings",
    ]


def test_check_lists_load_problems_and_lint_findings_together(cli: Run, tmp_path: Path) -> None:
    mixed = _write(
        tmp_path,
        "mixed.toml",
        '[[rules]]\nid = "rate-limit-exceded"\nmax_attempts = 8\n'
        '[[rules]]\nid = "odd"\nmatch = { status = 700 }\nclassification = "odd"\n'
        '[[tests]]\nname = "t"\nresponse = { status = 700 }\nexpect = { rule = "gone" }\n',
    )
    code, out, _ = cli("check", mixed)
    assert code == 1
    assert out.splitlines() == [
        f"{mixed}: $.rules[0].id: error: no rule 'rate-limit-exceded' in the layers beneath to "
        "change (did you mean 'rate-limit-exceeded'?); to add a new rule, give it a match "
        "(match = {} for a catch-all) [invalid]",
        f"{mixed}: $.rules[1].match.status: error: status 700 is outside 100-599: no HTTP "
        "response has it [status-range]",
        f"{mixed}: $.tests[0].expect.rule: error: test 't' expects rule 'gone', which does not "
        "exist [unknown-test-rule]",
        "3 errors, 0 warnings",
    ]


def test_check_ignores_the_environment_unless_asked(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = _write(tmp_path, "env.toml", "[defaults]\nmax_attempts = 0\n")
    monkeypatch.setenv("POLICYENGINE_POLICY", broken)
    code, out, _ = cli("check")
    assert (code, out.startswith("ok: ")) == (0, True)
    code, out, _ = cli("check", "--env")
    assert code == 1
    assert out.splitlines()[0] == (
        f"{broken}: $.defaults.max_attempts: error: expected a whole number >= 1, got 0 [invalid]"
    )


def test_check_warnings_pass_unless_strict(cli: Run, tmp_path: Path) -> None:
    warn = _write(
        tmp_path,
        "warn.toml",
        '[[rules]]\nid = "odd"\nmatch = { status = "550-650" }\nclassification = "odd"\n',
    )
    code, out, _ = cli("check", warn)
    assert code == 0
    assert out.splitlines()[-1] == "0 errors, 2 warnings"
    assert cli("check", "--strict", warn)[0] == 1
    code, out, _ = cli("check", "--format", "json", warn)
    data = json.loads(out)
    assert (code, data["ok"], data["errors"], data["warnings"]) == (0, True, 0, 2)
    assert {f["check"] for f in data["findings"]} == {"status-range", "overlap"}
    assert set(data["findings"][0]) == {"severity", "check", "file", "path", "message"}


def test_check_json_on_invalid_policy(cli: Run, tmp_path: Path) -> None:
    broken = _write(tmp_path, "broken.toml", "x = \n")
    code, out, _ = cli("check", "--format", "json", broken)
    assert code == 1
    assert json.loads(out) == {
        "ok": False,
        "errors": 1,
        "warnings": 0,
        "findings": [
            {
                "severity": "error",
                "check": "invalid",
                "file": broken,
                "path": "line 1, column 5",
                "message": "invalid TOML: Invalid value",
            }
        ],
    }


# --- show ----------------------------------------------------------------------------------


OVERRIDE = """\
[defaults]
max_attempts = 6

[[rules]]
id = "rate-limit"
max_attempts = 8

[[rules]]
id = "teapot"
description = "418 I'm a teapot"
match = { status = 418 }
classification = "teapot"
remediation = "Short and stout."
"""


def test_show_marks_overrides_and_round_trips(cli: Run, tmp_path: Path) -> None:
    over = _write(tmp_path, "over.toml", OVERRIDE)
    code, out, err = cli("show", over)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == [
        f"# Effective policy, merged from: <default>, {over}.",
        "# A value marked '# from FILE' was set by that file over <default>.",
    ]
    assert f"max_attempts = 6  # from {over}" in lines
    assert f"max_attempts = 8  # from {over}" in lines
    assert f"[[rules]]  # from {over}" in lines
    assert sum("# from" in line for line in lines[2:]) == 3
    shown = tmp_path / "shown.toml"
    shown.write_text(out, encoding="utf-8")
    assert pe.load_policy(shown, default=False, env=False) == pe.load_policy(over, env=False)


def test_show_default_has_no_marks_and_json(cli: Run) -> None:
    code, out, _ = cli("show")
    assert code == 0
    assert "# from" not in out
    assert out.startswith("# Effective policy, merged from: <default>.\ninherit = false\n")
    data = json.loads(cli("show", "--format", "json")[1])
    assert data["sources"] == ["<default>"]
    assert data["policy"]["inherit"] is False
    assert data["origins"]["$.rules[0].id"] == "<default>"


# --- table ---------------------------------------------------------------------------------


def test_table_formats(cli: Run) -> None:
    code, md, _ = cli("table")
    assert code == 0
    assert (
        "| 429 | Rate Limit Exceeded | Reduce request frequency, or contact support to increase your RPM quota |"
        in md
    )
    code, page, _ = cli("table", "--format", "html")
    assert code == 0
    assert "<tr><td>502/503</td><td>Upstream Service Unavailable</td>" in page
    data = json.loads(cli("table", "--format", "json")[1])
    assert data["statuses"][0] == {
        "rule": "success",
        "status": "200",
        "meaning": "Success",
        "action": "--",
    }


# --- test ----------------------------------------------------------------------------------


def test_test_default_passes(cli: Run) -> None:
    code, out, err = cli("test")
    n = len(pe.load_policy(env=False).tests)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == f"{n} passed, 0 failed"
    assert "PASS  429 with Retry-After: wait as the server asks  (<default>: $.tests[5])" in out
    assert "rules no test exercises (" in out


FAILING = """\
[[tests]]
name = "429 is fatal here"
response = { status = 429 }
expect = { kind = "fail", rule = "rate-limit", delay = [5, 10] }

[[tests]]
name = "teapot"
response = { status = 418 }
expect = { classification = "bad_request" }
"""


def test_test_failures_show_expected_and_actual(cli: Run, tmp_path: Path) -> None:
    mine = _write(tmp_path, "mine.toml", FAILING)
    code, out, _ = cli("test", "--own", mine)
    assert code == 1
    lines = out.splitlines()
    assert lines[:4] == [
        f"FAIL  429 is fatal here  ({mine}: $.tests[0])",
        "    kind: expected 'fail', got 'retry'",
        "    delay: expected 5s-10s, got 0.922s",
        f"PASS  teapot  ({mine}: $.tests[1])",
    ]
    assert lines[-1] == "1 passed, 1 failed"
    data = json.loads(cli("test", "--own", mine, "--format", "json")[1])
    assert (data["ok"], data["passed"], data["failed"]) == (False, 1, 1)
    assert data["results"][0]["checks"][0] == {
        "key": "kind",
        "expected": "fail",
        "actual": "retry",
        "ok": False,
    }


def test_test_empty(cli: Run, tmp_path: Path) -> None:
    alone = _write(tmp_path, "alone.toml", 'inherit = false\n[[rules]]\nid = "all"\n')
    assert cli("test", alone) == (
        0,
        "rules no test exercises (1):\n"
        f"  all ({alone}: $.rules[0])\n"
        "no tests: add [[tests]] entries to a policy file\n",
        "",
    )
    assert cli("test", "--fail-on-empty", alone)[0] == 1
    data = json.loads(cli("test", "--fail-on-empty", "--format", "json", alone)[1])
    assert data == {
        "passed": 0,
        "failed": 0,
        "results": [],
        "unexercised_rules": ["all"],
        "ok": False,
    }


# --- simulate ------------------------------------------------------------------------------


def test_simulate_text(cli: Run, tmp_path: Path) -> None:
    recording = _write(
        tmp_path,
        "run.jsonl",
        '{"status": 429, "headers": {"Retry-After": "2"}}\n'
        "\n"
        '{"transport": "read_timeout"}\n'
        '{"status": 200}\n',
    )
    plain = _write(tmp_path, "plain.toml", '[defaults.backoff]\njitter = "none"\n')
    assert cli("simulate", "--policy", plain, recording) == (
        0,
        "attempt  status        rule        action   delay  waited\n"
        "1        429           rate-limit  retry    2s     2s\n"
        "2        read_timeout  timeout     retry    1s     3s\n"
        "3        200           success     succeed  -      3s\n"
        "outcome: succeed after 3 attempts, 3s waited (seed 0)\n",
        "",
    )


def test_simulate_errors(cli: Run, tmp_path: Path) -> None:
    bad = _write(
        tmp_path, "bad.jsonl", '{"status": 429}\n{"status": 42, "transport": "x"}\n{oops\n'
    )
    assert cli("simulate", bad) == (
        1,
        "",
        f"{bad}: line 2: $.status: expected a whole number 100-999, got 42\n"
        f"{bad}: line 2: $.transport: unknown transport kind 'x'; known: connect_timeout, "
        "connection, dns, incomplete, pool_timeout, protocol, read_timeout, refused, reset, "
        "timeout, tls, write_timeout\n"
        f"{bad}: line 2: $: give exactly one of status (a response) or transport (a failure)\n"
        f"{bad}: line 3, column 2: invalid JSON: Expecting property name enclosed in double quotes\n",
    )
    empty = _write(tmp_path, "empty.jsonl", "\n\n")
    assert cli("simulate", empty) == (1, "", f"{empty}: empty input: no responses to replay\n")
    binary = tmp_path / "binary.har"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert cli("simulate", str(binary)) == (
        1,
        "",
        f"{binary}: not UTF-8 text (byte 0x89 at offset 0)\n",
    )
    har = _write(tmp_path, "not.har", '{"log": {"pages": []}}')
    assert cli("simulate", har) == (
        1,
        "",
        f"{har}: $.log.entries: expected an array (is this a HAR file?)\n",
    )
    missing = str(tmp_path / "missing.jsonl")
    assert cli("simulate", missing) == (
        1,
        "",
        f"{missing}: cannot read: No such file or directory\n",
    )


def test_simulate_stdin(cli: Run) -> None:
    code, out, _ = cli("simulate", "-", "--format", "json", stdin=b'{"status": 401}\n')
    assert code == 0
    assert json.loads(out)["outcome"]["kind"] == "fail"


def test_simulate_needs_a_recording(cli: Run) -> None:
    code, _, err = cli("simulate")
    assert code == 2
    assert err.splitlines()[-1] == (
        "policyengine simulate: error: the following arguments are required: RECORDING"
    )


# --- schema --------------------------------------------------------------------------------


def test_schema_command(cli: Run) -> None:
    code, out, _ = cli("schema")
    assert code == 0
    assert json.loads(out)["title"] == "policyengine policy"
    code, out, _ = cli("schema", "--path")
    assert code == 0
    assert Path(out.strip()).is_file()
    assert Path(out.strip()).read_text(encoding="utf-8") == cli("schema")[1]


# --- as a subprocess -----------------------------------------------------------------------


def test_subprocess_main_job() -> None:
    done = _subprocess(*MAIN_JOB)
    assert (done.returncode, done.stdout.decode(), done.stderr) == (0, MAIN_JOB_OUTPUT, b"")


def test_subprocess_curl_output_on_stdin() -> None:
    raw = (
        b"HTTP/2 503 \r\nserver: cloudflare\r\ncontent-type: text/html\r\n\r\n"
        b"<html><head><title>503 Service Unavailable</title></head></html>"
    )
    done = _subprocess("explain", "--format", "json", stdin=raw)
    assert done.returncode == 0
    data = json.loads(done.stdout)
    assert (data["rule"], data["error"]["message"]) == (
        "upstream-unavailable",
        "503 Service Unavailable",
    )


def test_subprocess_exit_codes() -> None:
    usage = _subprocess("explain", "--status", "x")
    assert usage.returncode == 2
    assert usage.stderr.decode().splitlines()[-1] == (
        "policyengine explain: error: argument --status: expected an HTTP status 100-999, got 'x'"
    )
    empty = _subprocess("explain")
    assert empty.returncode == 1
    assert b"Traceback" not in empty.stderr
    assert empty.stderr.decode().startswith("<stdin>: empty input")
    assert _subprocess("check").returncode == 0
    assert _subprocess("test", "--fail-on-empty").returncode == 0


def test_subprocess_bad_policy_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe garbage")
    done = _subprocess("show", str(bad))
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr.decode() == f"{bad}: not UTF-8 text (byte 0xff at offset 0)\n"


def test_console_script() -> None:
    script = Path(sys.executable).with_name("policyengine")
    if not script.exists():  # pragma: no cover - installed without scripts
        pytest.skip("the policyengine script is not installed beside this Python")
    done = subprocess.run([str(script), "--version"], capture_output=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, f"policyengine {pe.__version__}\n".encode())


# --- writing the output --------------------------------------------------------------------

RISKY = '[[rules]]\nid = "beyond"\nmatch = { status = 700 }\n'


def _into_closed_pipe(*argv: str, unbuffered: bool) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout a pipe whose reader has left (``policyengine ... | head``)."""
    env = {k: v for k, v in os.environ.items() if k not in (pe.ENV_VAR, "PYTHONUNBUFFERED")}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "policyengine", *argv],
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=subprocess.PIPE,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("unbuffered", [False, True])
def test_a_reader_that_leaves_changes_no_exit_code(tmp_path: Path, unbuffered: bool) -> None:
    risky = _write(tmp_path, "risky.toml", RISKY)
    for argv, code in [
        (["check", risky], 1),
        (["show"], 0),
        (["--help"], 0),
        (["explain", "--status", "500"], 0),
    ]:
        done = _into_closed_pipe(*argv, unbuffered=unbuffered)
        assert (done.returncode, done.stderr) == (code, b""), argv


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_reported() -> None:
    env = {k: v for k, v in os.environ.items() if k != pe.ENV_VAR}
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "policyengine", "show"],
            stdout=full,
            stderr=subprocess.PIPE,
            env=env,
            timeout=60,
            check=False,
        )
    assert (done.returncode, done.stderr.decode()) == (
        1,
        "policyengine: error: cannot write the output: No space left on device\n",
    )


def test_closed_stdout_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["explain", "--status", "500"]) == 1
    assert capsys.readouterr().err == (
        "policyengine: error: cannot write the output: standard output is closed\n"
    )


def test_closed_stderr_keeps_problems_out_of_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["show", str(tmp_path / "missing.toml")]) == 1
    assert capsys.readouterr().out == ""


def _stdout(monkeypatch: pytest.MonkeyPatch, errors: str) -> io.BytesIO:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors=errors, write_through=True)
    monkeypatch.setattr(sys, "stdout", stream)
    return raw


def test_undecodable_file_names_are_escaped_on_a_strict_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file name that is not UTF-8 reaches Python as surrogates; a UTF-8
    # locale's stdout refuses them.
    missing = str(tmp_path / "bad\udcff.toml")
    raw = _stdout(monkeypatch, "strict")
    assert main(["check", missing]) == 1
    shown = str(tmp_path / "bad\\udcff.toml")
    assert raw.getvalue().decode("utf-8") == (
        f"{shown}: error: cannot read: No such file or directory [invalid]\n1 error, 0 warnings\n"
    )


@pytest.mark.parametrize("errors", ["strict", "surrogateescape"])
def test_json_output_is_utf8_whatever_the_file_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errors: str
) -> None:
    missing = str(tmp_path / "bad\udcff.toml")
    raw = _stdout(monkeypatch, errors)
    assert main(["check", missing, "--format", "json"]) == 1
    finding = json.loads(raw.getvalue().decode("utf-8"))["findings"][0]
    assert finding["file"] == missing


def test_explain_a_recorded_failure_with_its_method(cli: Run, tmp_path: Path) -> None:
    post = _write(
        tmp_path,
        "post.toml",
        '[[rules]]\nid = "no-post-retry"\n'
        'match = { transport = "read_timeout", method = "POST" }\nclassification = "timeout"\n',
    )
    record = b'{"transport": "read_timeout", "method": "POST"}'
    code, out, _ = cli("explain", "--policy", post, "--format", "json", stdin=record)
    assert (code, json.loads(out)["rule"]) == (0, "no-post-retry")


def test_a_deeply_nested_policy_is_a_problem_of_its_file(cli: Run, tmp_path: Path) -> None:
    deep = _write(tmp_path, "deep.toml", "a = " + "[" * 100_000 + "\n")
    assert cli("check", deep) == (
        1,
        f"{deep}: error: invalid TOML: nested too deeply [invalid]\n1 error, 0 warnings\n",
        "",
    )
    assert cli("show", "--policy", deep) == (1, "", f"{deep}: invalid TOML: nested too deeply\n")


def test_simulate_url_filters_har_only(cli: Run, tmp_path: Path) -> None:
    run = _write(tmp_path, "run.jsonl", '{"status": 429}\n{"status": 200}\n')
    code, out, err = cli("simulate", "--url", "/v1/chat", run)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        f"policyengine simulate: error: --url filters the entries of a HAR file; {run} "
        "is JSON Lines"
    )


STREAM_OK = b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'
STREAM_OVERLOADED = (
    b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
    b'"message": "Overloaded"}}\n\n'
)
SSE = ("--status", "200", "--header", "Content-Type: text/event-stream")


def test_explain_a_recorded_stream_decides_on_its_first_event(cli: Run, tmp_path: Path) -> None:
    stream = tmp_path / "stream.txt"
    stream.write_bytes(STREAM_OVERLOADED + STREAM_OK)
    code, out, _ = cli("explain", *SSE, "--body-file", str(stream), "--format", "json")
    data = json.loads(out)
    assert (code, data["kind"], data["rule"]) == (0, "retry", "overloaded-message")
    assert data["stream"] == {"events": 2, "interrupted": None}


def test_explain_a_recorded_stream_that_breaks_off_later(cli: Run, tmp_path: Path) -> None:
    stream = tmp_path / "stream.txt"
    stream.write_bytes(b": hi\r\n\r\n" + STREAM_OK * 3 + STREAM_OVERLOADED)
    code, out, _ = cli("explain", *SSE, "--body-file", str(stream))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "action:         succeed"
    assert "stream:         decided on its first event (4 in all), as the adapters do" in out
    assert (
        "interrupted:    stream interrupted after 3 events: overloaded (status 200, "
        "rule 'overloaded-message'); the policy would retry." in out
    )
    code, out, _ = cli("explain", *SSE, "--body-file", str(stream), "--format", "json")
    interrupted = json.loads(out)["stream"]["interrupted"]
    assert (interrupted["after"], interrupted["action"]["rule"]) == (3, "overloaded-message")


def test_explain_a_body_without_the_stream_type_reads_it_whole(cli: Run, tmp_path: Path) -> None:
    # Without Content-Type: text/event-stream it is a body like any other:
    # any error event in it is the error (as Engine.evaluate reads it).
    stream = tmp_path / "stream.txt"
    stream.write_bytes(STREAM_OK + STREAM_OVERLOADED)
    code, out, _ = cli("explain", "--status", "200", "--body-file", str(stream), "--format", "json")
    assert (code, json.loads(out)["rule"]) == (0, "overloaded-message")
    assert "stream" not in json.loads(out)


def test_explain_a_raw_streamed_response_from_stdin(cli: Run) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in [STREAM_OK, STREAM_OVERLOADED])
        + b"0\r\n\r\n"
    )
    code, out, _ = cli("explain", "--format", "json", stdin=raw)
    data = json.loads(out)
    assert (code, data["kind"], data["stream"]["interrupted"]["after"]) == (0, "succeed", 1)
