"""Reading a raw HTTP response for ``explain``: the output of ``curl -si``
(or of a raw socket capture), interim responses, chunked and compressed
bodies included.

Nothing here raises anything but ``InputError`` on bad input; every problem
names the input and the line it was found at.
"""

from __future__ import annotations

import contextlib
import gzip
import re
import zlib

from .._model import Response
from .errors import InputError, brief

__all__ = ["parse_raw_http"]


_STATUS_LINE = re.compile(rb"HTTP/[0-9](?:\.[0-9])?[ \t]+([0-9]{3})(?:[ \t].*)?")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _dechunk(body: bytes) -> bytes | None:
    out, pos = bytearray(), 0
    while True:
        end = body.find(b"\n", pos)
        if end < 0:
            return None
        size_text = body[pos:end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return None
        pos = end + 1
        if size == 0:
            return bytes(out)
        if pos + size > len(body):
            return None
        out += body[pos : pos + size]
        pos += size
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1


def _decode_body(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Undo chunked transfer coding and gzip / deflate, as curl without
    ``--compressed`` or a raw socket capture leaves them; keep the bytes as
    they are when that fails."""
    names = {k.lower(): v.lower() for k, v in headers}
    if "chunked" in names.get("transfer-encoding", ""):
        body = _dechunk(body) or body
    coding = names.get("content-encoding", "").strip()
    with contextlib.suppress(OSError, EOFError, zlib.error):
        if coding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if coding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    return body


def _headers(lines: list[bytes], source: str, first: int) -> list[tuple[str, str]]:
    """The header lines of a response, the first of them line ``first`` of the input.

    Raises:
        InputError: A line per header line that is not ``Name: value``.
    """
    headers: list[tuple[str, str]] = []
    problems = []
    for number, raw in enumerate(lines, start=first):
        text = raw.decode("latin-1")  # RFC 9110: header bytes are ISO-8859-1
        if text[:1] in (" ", "\t") and headers:  # obsolete line folding
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if not colon or not name or name != name.strip():
            problems.append(
                f"{source}: line {number}: expected a header 'Name: value', got {brief(text)}"
            )
            continue
        headers.append((name, value.strip()))
    if problems:
        raise InputError(problems)
    return headers


def parse_raw_http(data: bytes, source: str) -> Response:
    """A response from its raw HTTP/1.x or curl-printed HTTP/2 form: a status
    line, header lines, a blank line, the body. Interim responses (``100
    Continue``, a proxy's ``200 Connection established``, redirects printed by
    ``curl -siL``) are skipped: the last response counts.

    Raises:
        InputError: Empty input, no status line where one must be, or
            interim responses alone.
    """
    rest = data.lstrip(b"\r\n\t ")
    line = 1 + data[: len(data) - len(rest)].count(b"\n")
    if not rest:
        raise InputError(
            [
                f"{source}: empty input: expected a raw HTTP response "
                "(curl -si URL | policyengine explain), or give --status or --transport"
            ]
        )
    while True:
        blank = _BLANK_LINE.search(rest)
        head, body = (rest, b"") if blank is None else (rest[: blank.start()], rest[blank.end() :])
        lines = [raw.rstrip(b"\r") for raw in head.split(b"\n")]
        m = _STATUS_LINE.fullmatch(lines[0])
        if m is None:
            raise InputError(
                [
                    f"{source}: line {line}: expected a status line such as "
                    f"'HTTP/1.1 429 Too Many Requests', got {brief(lines[0].decode('latin-1'))}"
                ]
            )
        status = int(m.group(1))
        if status < 100:
            raise InputError(
                [
                    f"{source}: line {line}: expected an HTTP status 100-999, "
                    f"got {m.group(1).decode()!r}"
                ]
            )
        headers = _headers(lines[1:], source, line + 1)
        if _STATUS_LINE.match(body.split(b"\n", 1)[0].rstrip(b"\r")):
            # An interim response: the real one follows.
            line += head.count(b"\n") + (blank.group().count(b"\n") if blank else 0)
            rest = body
            continue
        if 100 <= status < 200 and status != 101:  # (101 Switching Protocols is final)
            raise InputError(
                [
                    f"{source}: line {line}: only an interim response ({status}) and no final "
                    "one after it: the capture ends too soon"
                ]
            )
        return Response(status, headers, _decode_body(headers, body))
