"""The ``policyengine`` commands, one function each (check, explain, show,
table, test, simulate, schema), and ``main()``.

Exit codes: 0 = ok; 1 = problems found (a policy or an input that is
unusable, lint errors, failing self-tests); 2 = the command line itself is
wrong. A user's mistake is reported as ``file: where: what`` lines on stderr,
never as a traceback. ``main()`` is the one place that maps errors to exit codes.

A command imports what only it needs (lint, recordings, the schema builder...)
when it runs, so that ``policyengine --help`` loads none of it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from .._errors import PolicyError, Problem, interrupted_message
from .._files import Unreadable, read_regular
from .._layers import MAX_POLICY_BYTES
from .._model import Action, ActionKind, Policy, Response
from .._text import plural, seconds
from .errors import InputError, OutputError, UsageError
from .locate import Locator, display_file
from .output import err, flush, out, out_json, silence, write
from .parser import PROG, build_parser

if TYPE_CHECKING:
    from .._loading import ReadLayer
    from .._peek import Recorded

__all__ = ["COMMANDS", "action_dict", "main"]


# --- Shared steps ------------------------------------------------------------------


def _layers(args: argparse.Namespace) -> list[str]:
    return [*args.policy, *getattr(args, "files", [])]


#: A recording, body file or stdin larger than this (256 MiB) is refused.
MAX_INPUT_BYTES = 256 * 1024 * 1024


def _read_layers(args: argparse.Namespace) -> list[str | ReadLayer]:
    from .._loading import ReadLayer

    # "-" is a policy read from stdin (at most MAX_POLICY_BYTES), named <stdin>.
    return [
        ReadLayer("<stdin>", _policy_stdin()) if layer == "-" else layer for layer in _layers(args)
    ]


def _load(args: argparse.Namespace) -> Policy:
    from .._loading import load_layers

    return load_layers(_read_layers(args), env=not args.no_env)


def _policy_stdin() -> bytes:
    data = _stdin(MAX_POLICY_BYTES)
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError([Problem("<stdin>", "", f"larger than {MAX_POLICY_BYTES:,} bytes")])
    return data


def _read_file(path: str) -> bytes:
    if path == "-":
        data = _stdin(MAX_INPUT_BYTES)
        if len(data) > MAX_INPUT_BYTES:
            raise InputError([f"<stdin>: larger than {MAX_INPUT_BYTES:,} bytes"])
        return data
    try:
        return read_regular(path, MAX_INPUT_BYTES)
    except Unreadable as e:
        raise InputError([f"{path}: {e}"]) from None


def _stdin(limit: int = MAX_INPUT_BYTES) -> bytes:
    """Standard input, at most ``limit + 1`` bytes (more: the input is too large)."""
    stream = sys.stdin
    if stream is None:
        return b""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        data: bytes = buffer.read(limit + 1)
        return data
    return stream.read(limit + 1).encode("utf-8", "surrogateescape")


def _clock(record_now: float | None) -> Callable[[], float]:
    if record_now is None:
        return time.time
    return lambda: record_now


def _where(locator: Locator, rule_id: str) -> dict[str, str] | None:
    if not rule_id:
        return None
    at = locator.rule(rule_id)
    return {"file": at.file, "path": at.path}


def action_dict(action: Action, locator: Locator) -> dict[str, Any]:
    """An action as the stable JSON of ``explain --format json``."""
    error = action.error
    return {
        "kind": action.kind.value,
        "delay": action.delay,
        "classification": action.classification,
        "retryable": action.retryable,
        "rule": action.rule_id or None,
        "rule_source": _where(locator, action.rule_id),
        "fallback": action.fallback,
        "status": action.status,
        "transport": action.transport,
        "error": (
            None
            if error is None
            else {
                "message": error.message,
                "type": error.type,
                "code": error.code,
                "param": error.param,
            }
        ),
        "remediation": action.remediation,
        "explanation": list(action.reasons),
    }


# --- explain -----------------------------------------------------------------------


class _Given(NamedTuple):
    """What ``explain`` decides: a response or a network failure, the Unix
    time it was received (None: unknown, now), and the request method."""

    subject: Response | BaseException
    received: float | None
    method: str | None


def _explain_subject(args: argparse.Namespace) -> _Given:
    """What the flags, or stdin, give ``explain`` to decide."""
    if args.transport is not None:
        from .failures import make_failure

        if args.header or args.body is not None or args.body_file is not None:
            raise UsageError(
                "--header, --body and --body-file describe a response, not --transport"
            )
        return _Given(make_failure(args.transport), None, args.method)
    if args.status is not None:
        from .records import response_date

        body = _read_file(args.body_file) if args.body_file is not None else b""
        if args.body is not None:
            body = args.body.encode("utf-8", "surrogateescape")
        response = Response(args.status, args.header, body, args.method)
        return _Given(response, response_date(response), args.method)
    if args.header or args.body is not None or args.body_file is not None:
        raise UsageError("--header, --body and --body-file need --status")
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(
            "give --status or --transport, or pipe a raw HTTP response in "
            "(curl -si URL | policyengine explain)"
        )
    from .rawhttp import parse_raw_http
    from .records import read_records, response_date

    data = _read_file("-")
    if data.lstrip()[:1] == b"{":
        records = read_records(data, "<stdin>")
        if len(records) > 1:
            raise InputError(
                [
                    f"<stdin>: expected one response, got {len(records)} "
                    "(policyengine simulate replays a sequence)"
                ]
            )
        record = records[0]
        return _Given(record.subject(), record.now, args.method or record.method)
    response = parse_raw_http(data, "<stdin>")
    return _Given(response, response_date(response), args.method)


def _streamed(subject: Response | BaseException) -> Recorded | None:
    """A 2xx event stream read as the adapters read one, or None."""
    if not isinstance(subject, Response):
        return None
    from .._peek import recorded, watched

    if not watched(subject.status, subject.header("content-type"), None):
        return None  # (a recording's body is decoded already, whatever its Content-Encoding)
    return recorded(subject.body)


def explain(args: argparse.Namespace) -> int:
    """``explain``: decide one response and print the action with its reasons; 0.

    A 2xx event stream is decided on its first event, as the adapters decide
    before handing a stream over; an error event after it is decided too, as
    the stream's iterator would (``StreamInterrupted``)."""
    policy = _load(args)
    given = _explain_subject(args)
    from .._engine import Engine

    engine = Engine(policy, clock=_clock(given.received), rng=random.Random(args.seed))
    subject = given.subject
    stream = _streamed(subject)
    later = None
    if stream is not None and isinstance(subject, Response):
        subject = attrs.evolve(subject, body=stream.head)
        if stream.interrupted is not None:
            later = attrs.evolve(subject, body=stream.error)
    action = engine.evaluate(
        subject, args.attempt, args.elapsed, model=args.model, method=given.method
    )
    if later is not None and action.kind is ActionKind.SUCCEED:
        interruption: Action | None = engine.evaluate(
            later, args.attempt, args.elapsed, model=args.model, method=given.method
        )
    else:
        interruption = None
    if interruption is not None and interruption.kind is ActionKind.SUCCEED:
        interruption = None  # the policy calls that error event a success
    locator = Locator(policy)
    if args.format == "json":
        result = action_dict(action, locator)
        if stream is not None:
            result["stream"] = {
                "events": stream.events,
                "interrupted": None
                if interruption is None or stream.interrupted is None
                else {"after": stream.interrupted, "action": action_dict(interruption, locator)},
            }
        out_json(result)
        return 0
    rows = [
        ("action", action.kind.value),
        ("delay", f"{seconds(action.delay)}s"),
        ("classification", action.classification),
        ("retryable", "true" if action.retryable else "false"),
    ]
    if action.rule_id:
        rows.append(("rule", f"{action.rule_id} ({locator.rule(action.rule_id)})"))
    else:
        rows.append(("rule", "(none)"))
    if action.fallback is not None:
        rows.append(("fallback", action.fallback))
    error = action.error
    if error is not None:
        parts = [
            f"{name} {value!r}" for name in ("code", "type") if (value := getattr(error, name))
        ]
        text = ", ".join(parts)
        if error.message:
            text = f"{text}: {error.message}" if text else error.message
        rows.append(("error", text))
    if action.remediation:
        rows.append(("remediation", action.remediation))
    if stream is not None:
        rows.append(
            (
                "stream",
                f"decided on its first event ({stream.events} in all), "
                "as the adapters do before handing a stream over",
            )
        )
        if interruption is not None and stream.interrupted is not None:
            rows.append(("interrupted", interrupted_message(interruption, stream.interrupted)))
    for key, value in rows:
        out(f"{key + ':':<16}{value}")
    out("explanation:")
    for reason in action.reasons:
        out(f"  {reason}")
    return 0


# --- the other commands --------------------------------------------------------------


def check(args: argparse.Namespace) -> int:
    """``check``: load and lint the layers, listing load problems and lint
    findings together; 1 on an error (or a warning, with --strict).
    ``$POLICYENGINE_POLICY`` counts only with ``--env``: a file is checked as written."""
    from .._loading import load_partial
    from .lint import Finding, lint

    try:
        layers = _read_layers(args)
    except PolicyError as e:  # stdin over MAX_POLICY_BYTES: nothing to lint
        problems, findings = list(e.problems), []
    else:
        policy, problems, broken = load_partial(*layers, env=args.env and not args.no_env)
        # The rest is linted as loaded: what did not load is already reported.
        findings = lint(policy, broken=broken)
    findings[:0] = [
        Finding("error", "invalid", display_file(p.file), p.path, p.message) for p in problems
    ]
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    failed = errors > 0 or (args.strict and warnings > 0)
    if args.format == "json":
        out_json(
            {
                "ok": not failed,
                "errors": errors,
                "warnings": warnings,
                "findings": [f.as_dict() for f in findings],
            }
        )
        return 1 if failed else 0
    for f in findings:
        out(str(f))
    if findings:
        out(f"{plural(errors, 'error')}, {plural(warnings, 'warning')}")
    else:
        tests = plural(len(policy.tests), "test")
        out(f"ok: {len(policy.rules)} rules, {tests}, no problems found")
    return 1 if failed else 0


def show(args: argparse.Namespace) -> int:
    """``show``: print the merged policy, each override marked with its file; 0."""
    from .show import show_json, show_toml

    policy = _load(args)
    if args.format == "json":
        out_json(show_json(policy))
    else:
        write(show_toml(policy))
    return 0


def table(args: argparse.Namespace) -> int:
    """``table``: print the policy as error-code documentation; 0."""
    from .table import render_html, render_markdown, table_data

    policy = _load(args)
    if args.format == "json":
        out_json(table_data(policy))
    elif args.format == "html":
        write(render_html(policy))
    else:
        write(render_markdown(policy))
    return 0


def test(args: argparse.Namespace) -> int:
    """``test``: run the ``[[tests]]``; 1 if one fails (or none exist, with --fail-on-empty)."""
    from .selftest import run_tests

    policy = _load(args)
    locator = Locator(policy)
    only = None
    if args.own:
        only = {display_file(f) for f in _layers(args)}
    report = run_tests(policy, seed=args.seed, locator=locator, only_files=only)
    empty = not report.results
    failed = report.failed > 0 or (empty and args.fail_on_empty)
    if args.format == "json":
        data = report.as_dict()
        data["ok"] = not failed
        out_json(data)
        return 1 if failed else 0
    for result in report.results:
        out(result.line())
        for failing in (c for c in result.checks if not c.ok):
            out(f"    {failing.line()}")
    if report.unexercised:
        out(f"rules no test exercises ({len(report.unexercised)}):")
        for rule_id in report.unexercised:
            out(f"  {rule_id} ({locator.rule(rule_id)})")
    if empty:
        out("no tests: add [[tests]] entries to a policy file")
    else:
        out(f"{report.passed} passed, {report.failed} failed")
    return 1 if failed else 0


def simulate(args: argparse.Namespace) -> int:
    """``simulate``: replay a recording through the policy, print the schedule; 0."""
    from .records import read_records
    from .simulate import simulate as replay

    policy = _load(args)
    source = "<stdin>" if args.recording == "-" else args.recording
    records = read_records(_read_file(args.recording), source, url=args.url)
    if args.url is not None and all(r.url is None for r in records):
        # Only a HAR entry records its URL: JSON Lines would be replayed unfiltered.
        raise UsageError(f"--url filters the entries of a HAR file; {source} is JSON Lines")
    run = replay(policy, records, seed=args.seed, model=args.model)
    if args.format == "json":
        out_json(run.as_dict())
    else:
        write(run.text())
    return 0


def schema(args: argparse.Namespace) -> int:
    """``schema``: print the policy JSON Schema (``--path``: where its file is); 0."""
    from .schema import SCHEMA_PATH, schema_text

    if args.path:
        out(str(SCHEMA_PATH))
    else:
        write(schema_text())
    return 0


#: The function of each command of ``build_parser()``, by name.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": check,
    "explain": explain,
    "show": show,
    "table": table,
    "test": test,
    "simulate": simulate,
    "schema": schema,
}


# --- main ----------------------------------------------------------------------------


def _problem_line(problem: Problem) -> str:
    return str(Problem(display_file(problem.file), problem.path, problem.message))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 problems, 2 usage)."""
    try:
        code = _main(argv)
        flush()
    except OutputError as e:
        err(f"{PROG}: error: cannot write the output: {e}")
        return 1
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help / --version exit 0, a usage error 2
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except BrokenPipeError:
        # --help / --version into a reader that left: argparse on Python 3.10
        # lets this escape (3.11 ignores it). What it prints goes to stdout only.
        silence(sys.stdout)
        return 0
    try:
        return COMMANDS[args.command](args)
    except UsageError as e:
        args.parser.print_usage(sys.stderr)
        err(f"{args.parser.prog}: error: {e}")
        return 2
    except PolicyError as e:
        for problem in e.problems:
            err(_problem_line(problem))
        return 1
    except InputError as e:
        for line in e.lines:
            err(line)
        return 1
    except KeyboardInterrupt:
        return 130
