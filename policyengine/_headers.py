"""Headers: a client's headers indexed by lower-cased name (repeats kept), and
the header conditions a policy states (``match.headers``, ``hints.sources[].when``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = [
    "HeaderCondition",
    "HeaderConditions",
    "compile_headers",
    "headers_hold",
    "index_headers",
]


def _header_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        # Headers are ISO-8859-1 on the wire (RFC 9110); latin-1 never fails.
        return bytes(value).decode("latin-1")
    return str(value)


def index_headers(
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None,
) -> dict[str, tuple[str, ...]]:
    """Lower-cased name -> its values in order. A value that is a tuple or list
    stands for several values of the name, so indexing an index changes
    nothing. Never raises on odd input: non-text names and values are decoded
    or ``str()``-ed, malformed items skipped. Linear in the number of headers,
    however many share a name."""
    if not headers:
        return {}
    items: object = headers
    try:
        multi = getattr(headers, "multi_items", None)  # httpx.Headers keeps repeats there
        if callable(multi):
            items = multi()
        elif callable(getattr(headers, "items", None)):  # mappings, email.message.Message
            items = headers.items()  # type: ignore[union-attr]
    except Exception:
        return {}
    # Values gathered in lists, made tuples once: appending to a tuple per
    # repeat would copy it each time (quadratic in the repeats of a name).
    gathered: dict[str, list[str]] = {}
    try:
        for item in items:  # type: ignore[attr-defined, unused-ignore]
            try:
                name, value = item
            except (TypeError, ValueError):
                continue
            values = gathered.setdefault(_header_text(name).strip().lower(), [])
            if isinstance(value, (tuple, list)):  # several values (an index already)
                values.extend(_header_text(v) for v in value)
            else:
                values.append(_header_text(value))
    except Exception:  # a hostile iterable: keep what was read
        pass
    return {name: tuple(values) for name, values in gathered.items()}


class HeaderCondition(NamedTuple):
    """One header condition, normalised: the lower-cased name, and ``True``
    (present), ``False`` (absent) or the lower-cased value it must equal."""

    name: str
    expected: bool | str


HeaderConditions = tuple[HeaderCondition, ...]


def compile_headers(conditions: Mapping[str, bool | str]) -> HeaderConditions:
    """Header conditions of a policy (``match.headers``, ``hints.sources[].when``)
    normalised once: names and values lower-cased, values stripped."""
    return tuple(
        HeaderCondition(
            name.strip().lower(), value.strip().lower() if isinstance(value, str) else value
        )
        for name, value in conditions.items()
    )


def headers_hold(headers: Mapping[str, tuple[str, ...]], conditions: HeaderConditions) -> bool:
    """Whether indexed ``headers`` meet every condition: ``True`` present,
    ``False`` absent, a value equal to one of the header's (ignoring case and
    surrounding space)."""
    for name, expected in conditions:
        values = headers.get(name)
        if expected is True:
            if not values:
                return False
        elif expected is False:
            if values:
                return False
        elif not values or all(v.strip().lower() != expected for v in values):
            return False
    return True
