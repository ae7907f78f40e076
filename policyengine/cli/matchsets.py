"""A rule's match as the set of responses and network failures it admits,
for lint: whether one set holds another (``covers``), whether two meet
(``overlaps``), whether one is empty (``contradiction``).

The answers are safe for lint: ``covers`` says True only when it is sure;
``overlaps`` says False only when it is sure (two message substrings overlap
only when one contains the other, two regular expressions only when equal).
"""

from __future__ import annotations

from collections.abc import Iterable

from .._model import Match, StatusRange
from .._transport import TRANSPORT_FAMILIES

__all__ = ["condition_keys", "contradiction", "covers", "domain", "overlaps"]

_ERROR_FIELDS = ("code", "type", "message", "message_regex")


def _responses(m: Match) -> bool:
    """Whether the match sets a condition only a response can meet."""
    return bool(m.status or m.code or m.type or m.message or m.message_regex or m.headers) or (
        m.error is not None
    )


def domain(m: Match) -> str:
    """``failure`` (network failures only), ``response`` or ``both``."""
    if m.transport:
        return "failure"
    return "response" if _responses(m) else "both"


def _needs_error(m: Match) -> bool:
    return m.error is True or any(getattr(m, f) for f in _ERROR_FIELDS)


def contradiction(m: Match) -> str | None:
    """Why a match can never match anything, or None."""
    if m.transport and _responses(m):
        return "it sets transport (a network failure, no response) and response conditions"
    if m.error is False and any(getattr(m, f) for f in _ERROR_FIELDS):
        return "it sets error = false and conditions on the error (code, type or message)"
    return None


def _statuses(ranges: Iterable[StatusRange]) -> set[int]:
    out: set[int] = set()
    for r in ranges:
        out.update(range(max(r.low, 0), min(r.high, 999) + 1))
    return out


def _leaf_kinds(kinds: Iterable[str]) -> set[str]:
    wanted = set(kinds)
    return {k for k, family in TRANSPORT_FAMILIES.items() if k in wanted or family in wanted}


def _header_implies(inner: bool | str | None, outer: bool | str) -> bool:
    """Whether header condition ``inner`` (None: not set) implies ``outer``."""
    if inner is None:
        return False
    if outer is True:
        return inner is not False
    if outer is False:
        return inner is False
    return isinstance(inner, str) and inner.strip().lower() == outer.strip().lower()


def _header_compatible(a: bool | str, b: bool | str) -> bool:
    if a is False or b is False:
        return a is b
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return True


def _headers(m: Match) -> dict[str, bool | str]:
    return {name.lower(): value for name, value in m.headers.items()}


def covers(outer: Match, inner: Match) -> bool:
    """Whether every response or failure that ``inner`` matches also meets ``outer``."""
    d_out, d_in = domain(outer), domain(inner)
    if d_out != "both" and d_out != d_in:
        return False
    if outer.method and not (inner.method and set(inner.method) <= set(outer.method)):
        return False
    if outer.transport and not _leaf_kinds(inner.transport) <= _leaf_kinds(outer.transport):
        return False
    if outer.status and not (inner.status and _statuses(inner.status) <= _statuses(outer.status)):
        return False
    for name in ("code", "type"):
        mine, theirs = getattr(outer, name), getattr(inner, name)
        if mine and not (theirs and set(theirs) <= set(mine)):
            return False
    if outer.message:
        wanted = [s.lower() for s in outer.message]
        if not inner.message or not all(any(w in s.lower() for w in wanted) for s in inner.message):
            return False
    if outer.message_regex is not None and inner.message_regex != outer.message_regex:
        return False
    inner_headers = _headers(inner)
    for name, value in _headers(outer).items():
        if not _header_implies(inner_headers.get(name), value):
            return False
    if outer.error is True and not _needs_error(inner):
        return False
    return not (outer.error is False and inner.error is not False)


def overlaps(a: Match, b: Match) -> bool:
    """Whether some response or failure can meet both ``a`` and ``b`` (two
    message substrings are taken to overlap only when one contains the other,
    two regular expressions only when they are the same)."""
    da, db = domain(a), domain(b)
    if "both" not in (da, db) and da != db:
        return False
    if a.method and b.method and not set(a.method) & set(b.method):
        return False
    if a.transport and b.transport and not _leaf_kinds(a.transport) & _leaf_kinds(b.transport):
        return False
    if a.status and b.status and not _statuses(a.status) & _statuses(b.status):
        return False
    for name in ("code", "type"):
        mine, theirs = getattr(a, name), getattr(b, name)
        if mine and theirs and not set(mine) & set(theirs):
            return False
    if a.message and b.message:
        ma, mb = [s.lower() for s in a.message], [s.lower() for s in b.message]
        if not any(x in y or y in x for x in ma for y in mb):
            return False
    if a.message_regex and b.message_regex and a.message_regex != b.message_regex:
        return False
    hb = _headers(b)
    for name, value in _headers(a).items():
        if name in hb and not _header_compatible(value, hb[name]):
            return False
    if a.error is not None and b.error is not None and a.error is not b.error:
        return False
    if (a.error is False and _needs_error(b)) or (b.error is False and _needs_error(a)):
        return False
    return contradiction(a) is None and contradiction(b) is None


def condition_keys(m: Match) -> frozenset[str]:
    """The keys a match sets conditions on (a header as ``header:name``)."""
    names = {
        name
        for name in ("status", "code", "type", "message", "message_regex", "method", "transport")
        if getattr(m, name)
    }
    names.update(f"header:{h}" for h in _headers(m))
    if m.error is not None:
        names.add("error")
    return frozenset(names)
