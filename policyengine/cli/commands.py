"""The ``policyengine`` command line: check, explain, show, table, test,
simulate, schema.

Exit codes: 0 = ok; 1 = problems found (a policy or an input that is
unusable, lint errors, failing self-tests); 2 = the command line itself is
wrong. A user's mistake is reported as ``file: where: what`` lines on stderr,
never as a traceback. ``main()`` is the one place that maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from .._engine import Engine
from .._errors import PolicyError, Problem
from .._loading import load_policy
from .._model import Action, Policy, Response
from .._response import TRANSPORT_FAMILIES
from .locate import Locator, display_file
from .records import InputError, make_failure, parse_raw_http, read_records, response_date

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass  # type: ignore[import-not-found, unused-ignore]

__all__ = ["UsageError", "build_parser", "main"]

PROG = "policyengine"


class UsageError(Exception):
    """The command line is wrong (exit 2); the message says how to fix it."""


# --- Output helpers ----------------------------------------------------------------


class OutputError(Exception):
    """Standard output cannot be written: it is closed, or the disk is full (exit 1)."""


def _text(text: str, stream: TextIO) -> str:
    """``text`` as ``stream`` can take it: an undecodable file name or argument
    reaches Python as lone surrogates, shown escaped (``bad\\udcff.toml``, as
    stderr shows them) so that JSON and TOML output stays valid UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        with contextlib.suppress(LookupError):
            text = text.encode(encoding, "backslashreplace").decode(encoding)
    return text


def _silence(stream: TextIO) -> None:
    """Point ``stream`` at /dev/null, so that what is still buffered (and
    Python's flush at exit) goes nowhere instead of failing again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


def _stdout(act: Callable[[TextIO], object]) -> None:
    stream = sys.stdout
    if stream is None:
        raise OutputError("standard output is closed")
    try:
        act(stream)
    except BrokenPipeError:
        # The reader left (`policyengine check | head -1`): the rest of the output
        # goes nowhere, and the command still ends with its own exit code.
        _silence(stream)
    except OSError as e:
        _silence(stream)
        raise OutputError(e.strerror or str(e)) from None


def _write(text: str) -> None:
    """Write to stdout (see ``_stdout``)."""
    _stdout(lambda stream: stream.write(_text(text, stream)))


def _out(text: str = "") -> None:
    _write(text + "\n")


def _err(text: str) -> None:
    """A line on stderr; nothing if stderr is closed or unwritable."""
    stream = sys.stderr
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.write(_text(text + "\n", stream))


def _json(data: object) -> None:
    _out(json.dumps(data, indent=2, ensure_ascii=False))


def seconds(value: float) -> str:
    """Seconds for people: ``2s``, ``1.5s``, ``0.125s``."""
    return f"{round(value, 3):g}s" if math.isfinite(value) else "inf"


# --- Argument types ----------------------------------------------------------------


def _status(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 100 <= value <= 999:
        raise argparse.ArgumentTypeError(f"expected an HTTP status 100-999, got {text!r}")
    return value


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or name != name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name, value.strip()


def _attempt(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _elapsed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _method(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z]+", text):
        raise argparse.ArgumentTypeError(f"expected an HTTP method such as 'POST', got {text!r}")
    return text


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


# --- The parser --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``policyengine`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check, explain, document, test and replay policyengine policies.",
        epilog="Exit codes: 0 ok, 1 problems found, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    layers = argparse.ArgumentParser(add_help=False)
    layers.add_argument(
        "--policy",
        metavar="FILE",
        action="append",
        default=[],
        help="an override file layered over the bundled default; repeat for more, "
        "lowest first (the FILE arguments of a command come after these)",
    )
    layers.add_argument(
        "--no-env",
        action="store_true",
        help="ignore the override files named by $POLICYENGINE_POLICY",
    )
    seeded = argparse.ArgumentParser(add_help=False)
    seeded.add_argument(
        "--seed", type=_seed, default=0, help="seed of the jitter's random source (default 0)"
    )

    def command(
        name: str, run: Callable[[argparse.Namespace], int], help: str, *parents: Any
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=list(parents))
        p.set_defaults(run=run, parser=p)
        return p

    def formats(p: argparse.ArgumentParser, *choices: str) -> None:
        p.add_argument(
            "--format",
            choices=choices,
            default=choices[0],
            help=f"output format (default {choices[0]})",
        )

    p = command(
        "check",
        _check,
        "Validate a layered policy and lint it: unreachable and overlapping rules, "
        "uncapped waits, unfillable placeholders, odd statuses.",
        layers,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="policy files, layered in order")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    formats(p, "text", "json")

    p = command(
        "explain",
        _explain,
        "Decide one response (given by flags, or a raw HTTP response on stdin such as "
        "the output of curl -si) and explain the decision.",
        layers,
        seeded,
    )
    given = p.add_mutually_exclusive_group()
    given.add_argument("--status", type=_status, help="the HTTP status")
    given.add_argument(
        "--transport",
        choices=sorted(TRANSPORT_FAMILIES),
        metavar="KIND",
        help="a network failure instead of a response: " + ", ".join(sorted(TRANSPORT_FAMILIES)),
    )
    p.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a response header (repeat for more)",
    )
    body = p.add_mutually_exclusive_group()
    body.add_argument("--body", help="the response body")
    body.add_argument("--body-file", metavar="FILE", help="read the response body from FILE")
    p.add_argument(
        "--attempt", type=_attempt, default=1, help="attempts made so far, this one included"
    )
    p.add_argument(
        "--elapsed", type=_elapsed, default=0.0, help="seconds since the first attempt started"
    )
    p.add_argument("--model", help="the model the attempt used (for fallback chains)")
    p.add_argument("--method", type=_method, help="the request method, e.g. POST")
    formats(p, "text", "json")

    p = command(
        "show",
        _show,
        "Print the effective merged policy as TOML, marking the file that set each "
        "value a layer overrode.",
        layers,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="policy files, layered in order")
    formats(p, "toml", "json")

    p = command(
        "table",
        _table,
        "Render a policy as error-code documentation: status codes, error codes, retry strategy.",
        layers,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="policy files, layered in order")
    formats(p, "markdown", "html", "json")

    p = command(
        "test",
        _test,
        "Run the [[tests]] of a layered policy; list the rules no test exercises.",
        layers,
        seeded,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="policy files, layered in order")
    p.add_argument("--fail-on-empty", action="store_true", help="exit 1 if there is no test")
    p.add_argument(
        "--own",
        action="store_true",
        help="run only the tests of the given files, not those of the bundled default",
    )
    formats(p, "text", "json")

    p = command(
        "simulate",
        _simulate,
        "Replay recorded responses (JSON Lines, or a HAR file from a browser's devtools) "
        "through the policy and print the retry schedule.",
        layers,
        seeded,
    )
    p.add_argument("recording", metavar="RECORDING", help="a .jsonl or .har file; - for stdin")
    p.add_argument("--model", help="the model of the first attempt")
    p.add_argument("--url", help="replay only HAR entries whose URL contains this")
    formats(p, "text", "json")

    p = command("schema", _schema, "Print the JSON Schema of the policy file format.")
    p.add_argument(
        "--path",
        action="store_true",
        help="print the path of the installed schema file instead (for a #:schema line)",
    )
    return parser


# --- Shared steps ------------------------------------------------------------------


def _layers(args: argparse.Namespace) -> list[str]:
    return [*args.policy, *getattr(args, "files", [])]


def _load(args: argparse.Namespace) -> Policy:
    return load_policy(*_layers(args), env=not args.no_env)


def _read_file(path: str) -> bytes:
    if path == "-":
        return _stdin()
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise InputError([f"{path}: cannot read: it is a directory"]) from None
    except OSError as e:
        raise InputError([f"{path}: cannot read: {e.strerror or e}"]) from None


def _stdin() -> bytes:
    stream = sys.stdin
    if stream is None:
        return b""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        data: bytes = buffer.read()
        return data
    return stream.read().encode("utf-8", "surrogateescape")


def _clock(record_now: float | None) -> Callable[[], float]:
    if record_now is None:
        return time.time
    return lambda: record_now


def _where(locator: Locator, rule_id: str) -> dict[str, str] | None:
    if not rule_id:
        return None
    file, path = locator.rule(rule_id)
    return {"file": file, "path": path}


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


def _explain_subject(
    args: argparse.Namespace,
) -> tuple[Response | BaseException, float | None, str | None]:
    """What to decide, the time it was received (if known), and the request method."""
    if args.transport is not None:
        if args.header or args.body is not None or args.body_file is not None:
            raise UsageError(
                "--header, --body and --body-file describe a response, not --transport"
            )
        return make_failure(args.transport), None, args.method
    if args.status is not None:
        body = _read_file(args.body_file) if args.body_file is not None else b""
        if args.body is not None:
            body = args.body.encode("utf-8", "surrogateescape")
        response = Response(args.status, args.header, body, args.method)
        return response, response_date(response), args.method
    if args.header or args.body is not None or args.body_file is not None:
        raise UsageError("--header, --body and --body-file need --status")
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(
            "give --status or --transport, or pipe a raw HTTP response in "
            "(curl -si URL | policyengine explain)"
        )
    data = _stdin()
    if data.lstrip()[:1] == b"{":
        records = read_records(data, "<stdin>")
        if len(records) > 1:
            raise InputError(
                [
                    f"<stdin>: expected one response, got {len(records)} "
                    "(policyengine simulate replays a sequence)"
                ]
            )
        return records[0].subject(), records[0].now, args.method or records[0].method
    response = parse_raw_http(data, "<stdin>")
    return response, response_date(response), args.method


def _explain(args: argparse.Namespace) -> int:
    policy = _load(args)
    subject, now, method = _explain_subject(args)
    engine = Engine(policy, clock=_clock(now), rng=random.Random(args.seed))
    action = engine.evaluate(subject, args.attempt, args.elapsed, model=args.model, method=method)
    locator = Locator(policy)
    if args.format == "json":
        _json(action_dict(action, locator))
        return 0
    rows = [
        ("action", action.kind.value),
        ("delay", seconds(action.delay)),
        ("classification", action.classification),
        ("retryable", "true" if action.retryable else "false"),
    ]
    if action.rule_id:
        file, path = locator.rule(action.rule_id)
        rows.append(("rule", f"{action.rule_id} ({file}: {path})"))
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
    for key, value in rows:
        _out(f"{key + ':':<16}{value}")
    _out("explanation:")
    for reason in action.reasons:
        _out(f"  {reason}")
    return 0


# --- the other commands --------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from .lint import Finding, lint

    findings: list[Finding]
    policy: Policy | None = None
    try:
        policy = _load(args)
    except PolicyError as e:
        findings = [
            Finding("error", "invalid", display_file(p.file), p.path, p.message) for p in e.problems
        ]
    else:
        findings = lint(policy)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    failed = errors > 0 or (args.strict and warnings > 0)
    if args.format == "json":
        _json(
            {
                "ok": not failed,
                "errors": errors,
                "warnings": warnings,
                "findings": [f.as_dict() for f in findings],
            }
        )
        return 1 if failed else 0
    for f in findings:
        _out(str(f))
    if findings:
        _out(f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")
    elif policy is not None:
        tests = len(policy.tests)
        _out(f"ok: {len(policy.rules)} rules, {tests} test{'s' * (tests != 1)}, no problems found")
    return 1 if failed else 0


def _show(args: argparse.Namespace) -> int:
    from .show import show_json, show_toml

    policy = _load(args)
    if args.format == "json":
        _json(show_json(policy))
    else:
        _write(show_toml(policy))
    return 0


def _table(args: argparse.Namespace) -> int:
    from .table import render_html, render_markdown, table_data

    policy = _load(args)
    if args.format == "json":
        _json(table_data(policy))
    elif args.format == "html":
        _write(render_html(policy))
    else:
        _write(render_markdown(policy))
    return 0


def _test(args: argparse.Namespace) -> int:
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
        _json(data)
        return 1 if failed else 0
    for result in report.results:
        _out(result.line())
        for check in result.checks:
            if not check.ok:
                _out(f"    {check.line()}")
    if report.unexercised:
        _out(f"rules no test exercises ({len(report.unexercised)}):")
        for rule_id in report.unexercised:
            file, path = locator.rule(rule_id)
            _out(f"  {rule_id} ({file}: {path})")
    if empty:
        _out("no tests: add [[tests]] entries to a policy file")
    else:
        _out(f"{report.passed} passed, {report.failed} failed")
    return 1 if failed else 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulate import simulate

    policy = _load(args)
    source = "<stdin>" if args.recording == "-" else args.recording
    records = read_records(_read_file(args.recording), source, url=args.url)
    if args.url is not None and all(r.url is None for r in records):
        # Only a HAR entry records its URL: JSON Lines would be replayed unfiltered.
        raise UsageError(f"--url filters the entries of a HAR file; {source} is JSON Lines")
    run = simulate(policy, records, seed=args.seed, model=args.model)
    if args.format == "json":
        _json(run.as_dict())
    else:
        _write(run.text())
    return 0


def _schema(args: argparse.Namespace) -> int:
    from .schema import SCHEMA_PATH, schema_text

    if args.path:
        _out(str(SCHEMA_PATH))
    else:
        _write(schema_text())
    return 0


# --- main ----------------------------------------------------------------------------


def _problem_line(problem: Problem) -> str:
    return str(Problem(display_file(problem.file), problem.path, problem.message))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 problems, 2 usage)."""
    try:
        code = _main(argv)
        _stdout(lambda stream: stream.flush())
    except OutputError as e:
        _err(f"{PROG}: error: cannot write the output: {e}")
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
        _silence(sys.stdout)
        return 0
    try:
        return int(args.run(args))
    except UsageError as e:
        args.parser.print_usage(sys.stderr)
        _err(f"{args.parser.prog}: error: {e}")
        return 2
    except PolicyError as e:
        for problem in e.problems:
            _err(_problem_line(problem))
        return 1
    except InputError as e:
        for line in e.lines:
            _err(line)
        return 1
    except KeyboardInterrupt:
        return 130
