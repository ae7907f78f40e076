"""Headers: a client's headers indexed by lower-cased name (repeats kept),
read lazily from a client's own header object (``HeaderView``), and the
header conditions a policy states (``match.headers``, ``hints.sources[].when``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "HeaderCondition",
    "HeaderConditions",
    "HeaderView",
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
    headers: Mapping[str, str] | Mapping[str, tuple[str, ...]] | Sequence[tuple[str, str]] | None,
) -> Mapping[str, tuple[str, ...]]:
    """Lower-cased name -> its values in order. A value that is a tuple or list
    stands for several values of the name, so indexing an index changes
    nothing. Never raises on odd input: non-text names and values are decoded
    or ``str()``-ed, malformed items skipped. Linear in the number of headers,
    however many share a name."""
    if isinstance(headers, HeaderView):
        return headers  # an index already, built as it is read
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


Index = dict[str, tuple[str, ...]]


#: The visible ASCII bytes (printable, not the space): a header name made of
#: nothing else needs no more than lower-casing to compare (``_RawNames.of``).
_VISIBLE_ASCII = bytes(range(0x21, 0x7F))

#: The encodings httpx picks for a header object (the first that reads every
#: name and value): in these, ASCII bytes read as ASCII.
_PICKED_ENCODINGS = frozenset({"ascii", "utf-8", "iso-8859-1"})


class _RawNames(NamedTuple):
    """An httpx-style header object (``raw`` byte pairs in its ``encoding``:
    httpx, httpx2) with its names lower-cased, in order: as bytes when every
    name is printable ASCII (the names servers send; compared without
    decoding), else decoded."""

    names: list[str] | list[bytes]
    pairs: list[tuple[bytes, bytes]]
    encoding: str

    @classmethod
    def of(cls, headers: Any) -> _RawNames | None:
        """None when a name needs more than lower-casing to compare
        (``index_headers`` strips names: the full index is then the one), or
        when the encoding may not read every name and value (the full index
        then has none)."""
        pairs = headers.raw
        encoding = headers.encoding
        joined = b"\n".join([name for name, _ in pairs])
        if not pairs:
            return cls([], pairs, encoding)
        if encoding != "iso-8859-1":  # (which reads any byte)
            # An encoding set by hand (Headers.encoding) need not read them
            # all, and httpx decodes them all at once, or none.
            if encoding not in _PICKED_ENCODINGS:
                return None
            every = b"\n".join([joined, *[value for _, value in pairs]])
            if not (every.isascii() if encoding == "ascii" else _is_utf8(every)):
                return None
        # Lower-cased together, at C speed. A name whose ends str.strip()
        # would remove (a control, a space, a Unicode space: none is
        # printable but the ASCII space) goes to the full index.
        if joined.translate(None, _VISIBLE_ASCII) == b"\n" * (len(pairs) - 1):
            # Visible ASCII alone (the separators are all that is left):
            # decoded alike in every encoding httpx picks, lower-cased alike
            # as bytes, and nothing for strip() to take.
            return cls(joined.lower().split(b"\n"), pairs, encoding)
        text = joined.decode(encoding)
        if not (
            text.replace("\n", "").isprintable()
            and text[:1] != " "
            and text[-1:] != " "
            and " \n" not in text
            and "\n " not in text
        ):
            return None
        names = text.lower().split("\n")
        if len(names) != len(pairs):  # a name holding a line break
            return None
        return cls(names, pairs, encoding)

    def values(self, name: str) -> tuple[str, ...] | None:
        names: list[Any] = self.names
        key: str | bytes = name
        if names and type(names[0]) is bytes:
            if not name.isascii():
                return None  # no ASCII name is this one
            key = name.encode("ascii")
        if key not in names:
            return None
        if names.count(key) == 1:
            return (self.pairs[names.index(key)][1].decode(self.encoding),)
        return tuple(
            self.pairs[i][1].decode(self.encoding) for i, n in enumerate(names) if n == key
        )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_UNREAD: Any = object()


def _one(headers: Any, name: str) -> tuple[str, ...] | None:
    """The values of ``name`` in a case-insensitive mapping of one value a
    name (requests joins repeats with ", ", as its full index has them)."""
    try:
        value = headers.get(name)
    except Exception:
        return None
    return None if value is None else (_header_text(value),)


class HeaderView(Mapping[str, tuple[str, ...]]):
    """A client's header object seen as an index (lower-cased name -> its
    values), read only as far as it is looked at.

    The engine reads a handful of names (those its policy's rules, hint
    sources and conditions name: ``wanted``); looking one of those up reads
    that one alone: in the client's own case-insensitive mapping (requests),
    or in its names lower-cased once (httpx). Any other look-up, iteration
    or comparison, or a client object of another kind, builds the full index
    (``index_headers``) once. Either way the values are those the full index
    holds. Safe to share: a race reads a value twice, alike.
    """

    __slots__ = ("_all", "_picked", "_raw", "_source", "_wanted")

    def __init__(self, source: object, wanted: frozenset[str] = frozenset()) -> None:
        self._source = source
        self._wanted = wanted
        self._all: Index | None = None
        self._picked: dict[str, tuple[str, ...] | None] | None = None
        """The wanted names read so far (None: not sent); None before the first."""
        self._raw: _RawNames | None = None

    def _full(self) -> Index:
        found = self._all
        if found is None:
            found = self._all = dict(index_headers(self._source))  # type: ignore[arg-type]
        return found

    def get(self, name: str, default: Any = None) -> Any:
        """The values of ``name`` (lower-cased), or ``default``."""
        if self._all is None and name in self._wanted:
            picked = self._picked
            if picked is None:
                picked = self._start()
            if picked is not None:
                found = picked.get(name, _UNREAD)
                if found is _UNREAD:
                    raw = self._raw
                    found = raw.values(name) if raw is not None else _one(self._source, name)
                    picked[name] = found
                return default if found is None else found
        return self._full().get(name, default)

    def _start(self) -> dict[str, tuple[str, ...] | None] | None:
        """How the wanted names are read: a dict to keep them in, or None:
        from the full index."""
        source = self._source
        try:
            kind = type(source)  # (its properties would run if asked of it)
            if hasattr(kind, "raw") and hasattr(kind, "multi_items"):  # httpx, httpx2
                self._raw = _RawNames.of(source)
                if self._raw is None:
                    return None
            elif not hasattr(kind, "lower_items"):  # requests: a case-insensitive dict
                return None
        except Exception:  # odd input: the full index copes with anything
            return None
        self._picked = {}
        return self._picked

    def __getitem__(self, name: str) -> tuple[str, ...]:
        found: tuple[str, ...] | None = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._full())

    def __len__(self) -> int:
        return len(self._full())

    def __repr__(self) -> str:
        return repr(self._full())


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
