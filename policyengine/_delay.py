"""Delays: backoff math and server wait hints. Pure functions, no I/O.

Every function here returns a finite number >= 0 (or None for an unusable
hint) for any input, including NaN, infinities, negative numbers, garbage
text and far-off dates. A wait of any length is a wait (``hint_max`` and
``on_long_hint`` decide what to do with a long one); it is only clamped to
``MAX_WAIT_SECONDS`` so that it stays a finite number.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import NamedTuple

from ._headers import HeaderConditions, compile_headers, headers_hold
from ._model import HintFormat, HintSource, Jitter
from ._patterns import search

__all__ = [
    "MAX_HINT_VALUES",
    "MAX_WAIT_SECONDS",
    "MESSAGE",
    "BackoffDelay",
    "CompiledHint",
    "Hint",
    "compute_backoff",
    "parse_duration",
    "parse_hint",
    "parse_retry_after",
    "body_values",
    "read_hints",
]

#: A wait hint longer than this (ten years) is clamped to it: still a wait, and
#: far longer than any ``hint_max``, but a finite number to add and compare.
MAX_WAIT_SECONDS = 10 * 365 * 24 * 3600.0
#: Of a header sent many times, only this many values are read for a wait.
MAX_HINT_VALUES = 16


class BackoffDelay(NamedTuple):
    """A computed backoff: the jittered ``delay`` and the ``base`` it was drawn from."""

    delay: float
    base: float


def compute_backoff(
    attempt: int,
    initial: float,
    multiplier: float,
    max_delay: float,
    jitter: Jitter,
    rng: random.Random,
) -> BackoffDelay:
    """The wait before retrying after attempt number ``attempt`` (1-based).

    Returns ``(delay, base)``: ``base = min(max_delay, initial * multiplier**(attempt-1))``
    computed without overflow, and ``delay``, the jittered value in ``[0, max_delay]``.
    """
    cap = max(0.0, max_delay) if math.isfinite(max_delay) else 0.0
    start = max(0.0, initial) if math.isfinite(initial) else 0.0
    growth = multiplier if math.isfinite(multiplier) and multiplier >= 1.0 else 1.0
    n = max(0, attempt - 1)
    if start == 0.0 or cap == 0.0:
        base = 0.0
    elif growth == 1.0 or n == 0:
        base = min(cap, start)
    else:
        # In logarithms, so that neither growth**n nor the product can overflow.
        growth_log = n * math.log(growth)
        if math.log(start) + growth_log >= math.log(cap):
            base = cap
        elif growth_log < 700.0:  # growth**n is finite: multiply exactly
            base = min(cap, start * growth**n)
        else:  # a vanishing start times a huge growth
            base = min(cap, math.exp(math.log(start) + growth_log))
    if jitter is Jitter.NONE or base == 0.0:
        delay = base
    elif jitter is Jitter.FULL:
        delay = rng.uniform(0.0, base)
    elif jitter is Jitter.EQUAL:
        delay = base / 2.0 + rng.uniform(0.0, base / 2.0)
    else:  # decorrelated, stateless: between initial and three times the base
        delay = rng.uniform(min(start, cap), min(cap, base * 3.0))
    return BackoffDelay(min(cap, max(0.0, delay)), base)


def _finite(seconds: float) -> float | None:
    if 0.0 <= seconds <= MAX_WAIT_SECONDS:  # (NaN fails both comparisons)
        return seconds
    if seconds > MAX_WAIT_SECONDS and math.isfinite(seconds):
        return MAX_WAIT_SECONDS  # a wait of any length is a wait
    return None


# Up to 20 decimals: a JSON float as Python writes it back (Hugging Face's
# "estimated_time": 300.8891906738281) is a number, not garbage. However many
# digits, a wait is a wait (clamped by the readers); the whole value is bounded.
_NUMBER = re.compile(r"[0-9]{1,80}(?:\.[0-9]{1,20})?")

#: Characters of a number read as a wait (``_number``): a bound on work.
MAX_NUMBER_CHARS = 100


def _number(value: str) -> float | None:
    value = value.strip()
    if len(value) > MAX_NUMBER_CHARS or not _NUMBER.fullmatch(value):
        return None
    return float(value)


def parse_retry_after(value: str | bytes | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when unusable.

    Accepts delta-seconds (``"120"``; a decimal such as ``"1.5"`` too) and the
    three HTTP-date forms of RFC 9110: IMF-fixdate
    (``Sun, 06 Nov 1994 08:49:37 GMT``), RFC 850 (``Sunday, 06-Nov-94 08:49:37 GMT``)
    and asctime (``Sun Nov  6 08:49:37 1994``). A date is measured from ``now``
    (Unix time; default ``time.time()``). Negative, NaN, garbage and past
    values give None; a wait of any length is a wait, clamped to
    ``MAX_WAIT_SECONDS``. Never raises.

    >>> parse_retry_after("2")
    2.0
    >>> parse_retry_after("soon") is None
    True
    """
    found = _retry_after(value, now)
    return found if found is not None and found >= 0.0 else None


# The readers below give seconds to wait (>= 0), None for garbage, or, for an
# absolute time that is not ahead of now, minus how long ago it was: negative
# (never -0.0: a time exactly now is the smallest negative number), so that
# read_hints can say "in the past" without a tuple per value on the hot path.


def _retry_after(value: str | bytes | None, now: float | None) -> float | None:
    try:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1")
        if not isinstance(value, str) or len(value) > 100:
            return None
        if value.isdigit() and value.isascii():  # the common case: "2"
            return _finite(float(value))
        seconds = _number(value)
        if seconds is not None:
            return _finite(seconds)
        from email.utils import parsedate_tz  # only for dates: costly to import

        parts = parsedate_tz(value.strip())
        if parts is None:
            return None
        year = parts[0]
        if year < 100:  # RFC 850 two-digit year (RFC 9110 §5.6.7: within 50 years)
            year += 2000 if year < 70 else 1900
        offset = parts[9] or 0
        when = datetime(year, *parts[1:6], tzinfo=timezone.utc).timestamp() - offset
        return _until(when, now)
    except Exception:
        return None


#: How ``_until`` reads a time exactly now: past, by the least amount there is.
_JUST_PAST = -5e-324


def _until(when: float, now: float | None) -> float | None:
    """The wait until the absolute time ``when``; a time not ahead of ``now``
    is minus how long ago it was (see above)."""
    current = time.time() if now is None else now
    delta = when - current
    if not math.isfinite(delta):
        return None
    if delta > 0:
        return min(delta, MAX_WAIT_SECONDS)
    return max(-MAX_WAIT_SECONDS, min(delta, _JUST_PAST))


_DURATION_PART = re.compile(r"([0-9]{1,15}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})(ns|us|µs|μs|ms|s|m|h)")
_UNIT = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(value: str) -> float | None:
    """Seconds in a Go-style duration (``6m0s``, ``1h2m3.5s``, ``250ms``, ``1.5s``),
    or in a bare number of seconds. None when unusable."""
    text = value.strip()
    if not text or len(text) > 64:
        return None
    seconds = _number(text)
    if seconds is not None:
        return _finite(seconds)
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text):
        return None
    return _finite(total)


def parse_hint(value: str, fmt: HintFormat, now: float | None = None) -> float | None:
    """Seconds to wait according to one header value in format ``fmt``; None when
    unusable (garbage, negative, NaN, in the past). A wait of any length is a
    wait, clamped to ``MAX_WAIT_SECONDS``. Never raises."""
    found = _read(value, fmt, now)
    return found if found is not None and found >= 0.0 else None


def _read(value: str, fmt: HintFormat, now: float | None) -> float | None:
    return _READERS[fmt](value, now)


# One reader per format, chosen when a hint source is compiled: each takes a
# value and the current time (None unless the format is absolute), and never
# raises.


def _read_retry_after(value: str, now: float | None) -> float | None:
    return _retry_after(value, now)


def _read_duration(value: str, now: float | None) -> float | None:
    try:
        return parse_duration(value)
    except Exception:
        return None


def _read_rfc3339(value: str, now: float | None) -> float | None:
    try:
        text = value.strip()
        if not 10 <= len(text) <= 40:
            return None
        if text[-1] in "zZ":
            text = text[:-1] + "+00:00"
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        return _until(stamp.timestamp(), now)
    except Exception:
        return None


def _read_seconds(value: str, now: float | None) -> float | None:
    try:
        number = _number(value)
        return None if number is None else _finite(number)
    except Exception:
        return None


def _read_milliseconds(value: str, now: float | None) -> float | None:
    try:
        number = _number(value)
        return None if number is None else _finite(number / 1000.0)
    except Exception:
        return None


def _read_epoch_seconds(value: str, now: float | None) -> float | None:
    try:
        number = _number(value)
        return None if number is None else _until(number, now)
    except Exception:
        return None


def _read_epoch_milliseconds(value: str, now: float | None) -> float | None:
    try:
        number = _number(value)
        return None if number is None else _until(number / 1000.0, now)
    except Exception:
        return None


Reader = Callable[[str, "float | None"], "float | None"]

_READERS: dict[HintFormat, Reader] = {
    HintFormat.RETRY_AFTER: _read_retry_after,
    HintFormat.DURATION: _read_duration,
    HintFormat.RFC3339: _read_rfc3339,
    HintFormat.SECONDS: _read_seconds,
    HintFormat.MILLISECONDS: _read_milliseconds,
    HintFormat.EPOCH_SECONDS: _read_epoch_seconds,
    HintFormat.EPOCH_MILLISECONDS: _read_epoch_milliseconds,
}


class CompiledHint(NamedTuple):
    """A hint source of the policy, compiled when the engine is built."""

    header: str
    """The lower-cased header name, or "" for a source that reads the message
    or the body."""
    pattern: re.Pattern[str] | None
    """The regular expression searched in the error message, or None."""
    format: HintFormat
    conditions: HeaderConditions
    """Other headers that must hold for this source to count."""
    path: tuple[tuple[str, bool], ...] = ()
    """For a field of the error object: each name, and whether an array's
    items are looked in there (``[]``); () for other sources."""
    where: str = ""
    """How an explanation names a body field: ``body details[].retryDelay``."""
    read: Reader = _read_seconds
    """The reader of ``format``, chosen once."""
    absolute: bool = False
    """``format`` names a time (so reading needs the clock)."""

    @classmethod
    def of(cls, source: HintSource) -> CompiledHint:
        """Compile a policy's ``HintSource``."""
        path = tuple(
            (part.removesuffix("[]"), part.endswith("[]"))
            for part in source.body.split(".")
            if source.body
        )
        return cls(
            source.header.strip().lower(),
            re.compile(source.message) if source.message is not None else None,
            source.format,
            compile_headers(source.when),
            path,
            f"body {source.body}" if source.body else "",
            _READERS[source.format],
            source.format in _ABSOLUTE,
        )


def body_values(
    obj: Mapping[str, object] | None, path: tuple[tuple[str, bool], ...]
) -> tuple[str, ...]:
    """The values at ``path`` in an error object, as text (numbers as
    written), at most ``MAX_BODY_VALUES``; () when there are none."""
    found: list[object] = [obj]
    for name, each in path:
        step: list[object] = []
        for node in found:
            value = node.get(name) if isinstance(node, dict) else None
            if each and isinstance(value, list):
                step.extend(value[:MAX_BODY_VALUES])
            elif value is not None and not each:
                step.append(value)
        found = step[:MAX_BODY_VALUES]
    out = []
    for value in found:
        if isinstance(value, str):
            out.append(value[:64])
        elif isinstance(value, int) and not isinstance(value, bool):
            out.append(str(min(value, _BODY_NUMBER_CAP)))
        elif isinstance(value, float) and not math.isnan(value):
            # As written, or without an exponent (1e+20, 5e-05): a number the
            # readers take; beyond the cap a wait longer than any they keep.
            capped = min(value, float(_BODY_NUMBER_CAP))
            text = repr(capped)
            out.append(format(capped, "f") if "e" in text else text)
    return tuple(out)


#: Numbers in a body wait field are cut to this (10**15, beyond every wait
#: the readers keep, in seconds, milliseconds or as a Unix time) before they
#: are written as text, so that 1e300 or 10**400 is a very long wait, not garbage.
_BODY_NUMBER_CAP = 10**15


#: Values of one body path looked at (items of the arrays on the way too).
MAX_BODY_VALUES = 16


class Hint(NamedTuple):
    """A server's wait hint, as read."""

    seconds: float
    where: str
    """The header it came from, or ``MESSAGE`` for the error message."""
    raw: str
    """The value as the server wrote it."""
    past: float | None = None
    """For a time already past (no wait): how many seconds ago it was."""


#: ``Hint.where`` of a wait read from the error message.
MESSAGE = "the error message"


def read_hints(
    headers: Mapping[str, tuple[str, ...]],
    sources: Sequence[CompiledHint],
    clock: Callable[[], float],
    message: str = "",
    body: Mapping[str, object] | None = None,
) -> Hint | None:
    """The first usable wait hint, or None.

    Args:
        headers: Lower-cased header name -> its values.
        sources: Compiled sources in priority order; a source counts only
            when its conditions hold.
        clock: The current Unix time, asked only for absolute formats.
        message: The error message, for sources that read it.
        body: The error object of the body, for sources that read a field of it.

    A header sent more than once counts with its longest usable value (of the
    first ``MAX_HINT_VALUES``), so a duplicate can never shorten the wait. When
    no source gives a wait but one states a time already past, that one comes
    back with ``past`` set (it is no wait: the backoff applies, and the
    explanation says why).
    """
    stale: Hint | None = None
    for header, pattern, _, conditions, path, where, read, absolute in sources:
        if pattern is not None:
            found = search(pattern, message) if message else None
            values: tuple[str, ...] | None = (
                (found.group(1) if pattern.groups else found.group(0),) if found else None
            )
            header = MESSAGE
        elif path:
            values = body_values(body, path) if body is not None else None
            header = where
        else:
            values = headers.get(header)
        if not values or (conditions and not headers_hold(headers, conditions)):
            continue
        now = clock() if absolute else None
        best: Hint | None = None
        for raw in values[:MAX_HINT_VALUES]:
            seconds = read(raw, now)
            if seconds is None:
                continue
            if seconds < 0.0:  # a time already past: no wait, but worth saying
                stale = stale or Hint(0.0, header, raw, -seconds if seconds < -1e-9 else 0.0)
            elif best is None or seconds > best.seconds:
                best = Hint(seconds, header, raw)
        if best is not None:
            return best
    return stale


_ABSOLUTE = frozenset(
    {
        HintFormat.RETRY_AFTER,
        HintFormat.EPOCH_SECONDS,
        HintFormat.EPOCH_MILLISECONDS,
        HintFormat.RFC3339,
    }
)
