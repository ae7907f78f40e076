"""The ``policyengine`` command line's arguments: ``build_parser()`` and the
types that check an argument's value (an HTTP status, a header, seconds...).

Each sub-command's parser has ``command`` (its name) and ``parser`` (itself,
for the usage line of an error found later) among its defaults; what each
command does is in ``commands``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys

from .._transport import TRANSPORT_FAMILIES

__all__ = ["PROG", "build_parser"]

PROG = "policyengine"


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


class _Version(argparse.Action):
    """``--version``, reading the package metadata only when asked for
    (``importlib.metadata`` costs more to import than the parser)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from .. import __version__

        sys.stdout.write(f"{PROG} {__version__}\n")  # where argparse's own action writes
        parser.exit()


# --- The parser --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``policyengine`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check, explain, document, test and replay policyengine policies.",
        epilog="Exit codes: 0 ok, 1 problems found, 2 usage error.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
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

    def command(name: str, help: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=list(parents))
        p.set_defaults(parser=p)  # for the usage line of an error the command finds
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
        "Validate a layered policy and lint it: unreachable and overlapping rules, "
        "uncapped waits, unfillable placeholders, odd statuses.",
        layers,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="policy files, layered in order")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument(
        "--env",
        action="store_true",
        help="also layer the files named by $POLICYENGINE_POLICY (check ignores them "
        "unless asked, so that a file is checked as written)",
    )
    formats(p, "text", "json")

    p = command(
        "explain",
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
        "Print the effective merged policy as TOML, marking the file that set each "
        "value a layer overrode.",
        layers,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="policy files, layered in order")
    formats(p, "toml", "json")

    p = command(
        "table",
        "Render a policy as error-code documentation: status codes, error codes, retry strategy.",
        layers,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="policy files, layered in order")
    formats(p, "markdown", "html", "json")

    p = command(
        "test",
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
        "Replay recorded responses (JSON Lines, or a HAR file from a browser's devtools) "
        "through the policy and print the retry schedule.",
        layers,
        seeded,
    )
    p.add_argument("recording", metavar="RECORDING", help="a .jsonl or .har file; - for stdin")
    p.add_argument("--model", help="the model of the first attempt")
    p.add_argument("--url", help="replay only HAR entries whose URL contains this")
    formats(p, "text", "json")

    p = command("schema", "Print the JSON Schema of the policy file format.")
    p.add_argument(
        "--path",
        action="store_true",
        help="print the path of the installed schema file instead (for a #:schema line)",
    )
    return parser
