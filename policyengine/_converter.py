"""The converter: the one private cattrs converter that structures a merged
policy document into the frozen values of ``_model``, with a hook per named
scalar type so that every bad value gets a message of ours, and the walk that
turns cattrs' grouped exceptions into ``(key path, message)`` problems."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from ._keypath import KeyPath, kind_of, show_value, suggest
from ._model import (
    PLACEHOLDERS,
    ActionKind,
    Amount,
    Attempts,
    BodyPath,
    Count,
    HintFormat,
    HintSource,
    Jitter,
    KeyPart,
    LongHint,
    Method,
    Multiplier,
    Name,
    Pattern,
    Seconds,
    StatusRange,
    Template,
    TransportKind,
)
from ._patterns import check_pattern
from ._text import parse_template
from ._transport import TRANSPORT_FAMILIES

__all__ = ["converter", "fast_converter", "parse_status", "problems_of", "template_fields"]

T = TypeVar("T")


class _Invalid(ValueError):
    """A value of the wrong shape; the message is shown as it is."""


_STATUS_TEXT = re.compile(r"([1-9])xx|([0-9]{3})(?:\s*-\s*([0-9]{3}))?", re.IGNORECASE)


def parse_status(value: object) -> StatusRange:
    """One status spec: ``429``, ``"429"``, ``"5xx"`` or ``"500-599"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 999:
            return StatusRange(value, value)
    elif isinstance(value, str):
        m = _STATUS_TEXT.fullmatch(value.strip())
        if m and m.group(1):
            low = int(m.group(1)) * 100
            return StatusRange(low, low + 99)
        if m:
            low = int(m.group(2))
            high = int(m.group(3)) if m.group(3) else low
            if low <= high:
                return StatusRange(low, high)
            raise _Invalid(f"a status range must go up, got {value!r}")
    raise _Invalid(
        f"expected a status (429), a class ('5xx') or a range ('500-599'), got {show_value(value)}"
    )


def _statuses(value: object, _: object) -> tuple[StatusRange, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(parse_status(v) for v in items)


def _number(value: object, minimum: float, what: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number >= minimum:
            return number
    raise _Invalid(f"expected {what}, got {show_value(value)}")


def _whole(value: object, minimum: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise _Invalid(f"expected a whole number >= {minimum}, got {show_value(value)}")


def _string(value: object, _: object = None) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid(f"expected a string, got {kind_of(value)} ({show_value(value)})")


def _name(value: object, _: object = None) -> Name:
    if isinstance(value, str) and value.strip() and value == value.strip():
        return Name(value)
    raise _Invalid(
        f"expected a non-empty string without surrounding spaces, got {show_value(value)}"
    )


def _bool(value: object, _: object = None) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid(f"expected true or false, got {show_value(value)}")


def _int(value: object, _: object = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Invalid(f"expected a whole number, got {show_value(value)}")


def _float(value: object, _: object = None) -> float:
    return _number(value, -math.inf, "a number")


def _pattern(value: object, _: object = None) -> Pattern:
    text = _string(value)
    try:
        re.compile(text)
    except re.error as e:
        raise _Invalid(f"invalid regular expression {text!r}: {e}") from None
    except (RecursionError, OverflowError):
        raise _Invalid(f"invalid regular expression {text!r}: nested too deeply") from None
    unsafe = check_pattern(text)
    if unsafe is not None:
        raise _Invalid(f"unsafe regular expression: {unsafe}")
    return Pattern(text)


def template_fields(text: str) -> list[str]:
    """The placeholder names in a remediation template.

    Raises:
        ValueError: The template is malformed or uses a conversion or format spec.
    """
    return [part.field for part in parse_template(text) if part.field is not None]


def template_problems(text: str) -> list[str]:
    """Every problem of a remediation template, in order: unbalanced braces,
    conversions and format specs, empty and unknown placeholders."""
    problems: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            i += 2
        elif char == "}":
            problems.append(f"single '}}' at position {i}")
            i += 1
        elif char == "{":
            end = text.find("}", i)
            if end < 0:
                problems.append(f"'{{' at position {i} is never closed")
                break
            field = text[i + 1 : end]
            name = re.split(r"[!:{]", field, maxsplit=1)[0]
            if not name:
                problems.append(f"empty placeholder {{{field}}} at position {i}")
            elif name != field:
                problems.append(f"placeholder {{{name}}} takes no conversion or format spec")
            elif name not in PLACEHOLDERS:
                hint = suggest(name, sorted(PLACEHOLDERS))
                problems.append(f"unknown placeholder {{{name}}}{hint}")
            i = end + 1
        else:
            i += 1
    return problems


def _template(value: object, _: object = None) -> Template:
    text = _string(value)
    problems = template_problems(text)
    if problems:
        known = f"known: {', '.join(sorted(PLACEHOLDERS))}"
        raise _Invalid(
            *(
                f"{p}; {known}"
                if p.startswith("unknown placeholder")
                else f"bad template: {p} (write {{{{ and }}}} for literal braces)"
                for p in problems
            )
        )
    return Template(text)


_BODY_PATH = re.compile(r"[A-Za-z0-9_@$-]{1,64}(?:\[\])?(?:\.[A-Za-z0-9_@$-]{1,64}(?:\[\])?){0,7}")


def _body_path(value: object, _: object = None) -> BodyPath:
    text = _string(value)
    if text == "" or _BODY_PATH.fullmatch(text):
        return BodyPath(text)
    raise _Invalid(
        "expected a path to a field of the error object: names joined by dots, [] after a "
        f"name for any item of an array there (details[].retryDelay), got {show_value(value)}"
    )


def _method(value: object, _: object = None) -> Method:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z]+", value):
        return Method(value.upper())
    raise _Invalid(f"expected an HTTP method name such as 'POST', got {show_value(value)}")


def _transport(value: object, _: object = None) -> TransportKind:
    if isinstance(value, str) and value in TRANSPORT_FAMILIES:
        return TransportKind(value)
    known = ", ".join(sorted(TRANSPORT_FAMILIES))
    hint = suggest(str(value), list(TRANSPORT_FAMILIES))
    raise _Invalid(f"unknown transport kind {show_value(value)}{hint}; known: {known}")


def _one_or_many(hook: Callable[[object, object], T]) -> Callable[[object, object], tuple[T, ...]]:
    def structure(value: object, _: object) -> tuple[T, ...]:
        items = value if isinstance(value, list) else [value]
        return tuple(hook(item, None) for item in items)

    return structure


def _array(hook: Callable[[object, object], T]) -> Callable[[object, object], tuple[T, ...]]:
    """An array only: a string would iterate as its characters (or, empty, as no items)."""

    def structure(value: object, _: object) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected an array, got {show_value(value)}")
        return tuple(hook(item, None) for item in value)

    return structure


def _tables(c: cattrs.Converter, cls: type[T]) -> Callable[[object, object], tuple[T, ...]]:
    """An array of tables (``[[hints.sources]]``): anything but an array is a
    problem (a string would iterate as no items, dropping them all unsaid);
    each table a problem of its own at its index, as cattrs tells them."""

    def structure(value: object, _: object) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected an array of tables, got {show_value(value)}")
        out: list[T] = []
        errors: list[Exception] = []
        for i, item in enumerate(value):
            try:
                out.append(c.structure(item, cls))
            except Exception as exc:
                if not c.detailed_validation:
                    raise
                note = IterableValidationNote(f"Structuring {cls.__name__} @ index {i}", i, cls)
                setattr(exc, "__notes__", [*getattr(exc, "__notes__", []), note])  # noqa: B010
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {cls.__name__}s", errors, cls)
        return tuple(out)

    return structure


def _strings(value: object, _: object = None) -> tuple[str, ...]:
    """A string, a number (error codes may be numbers) or an array of these."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, str) and item:
            out.append(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(str(item))
        else:
            raise _Invalid(f"expected a string or an array of strings, got {show_value(value)}")
    return tuple(out)


def _table(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise _Invalid(f"expected a table, got {kind_of(value)} ({show_value(value)})")


def _match_headers(value: object, _: object = None) -> dict[str, bool | str]:
    out: dict[str, bool | str] = {}
    for name, expected in _table(value).items():
        if not isinstance(expected, (bool, str)):
            raise _Invalid(
                f"header {name!r}: expected true (present), false (absent) or a value, "
                f"got {show_value(expected)}"
            )
        out[name.lower()] = expected
    return out


def _test_headers(value: object, _: object = None) -> dict[str, str]:
    out = {}
    for name, item in _table(value).items():
        out[name] = _string(item)
    return out


def _delay_range(value: object, _: object = None) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low = high = _number(value, 0.0, "a number >= 0")
    elif isinstance(value, list) and len(value) == 2:
        low = _number(value[0], 0.0, "a number >= 0")
        high = _number(value[1], 0.0, "a number >= 0")
    else:
        raise _Invalid(f"expected a number or [low, high], got {show_value(value)}")
    if low > high:
        raise _Invalid(f"expected low <= high, got {show_value(value)}")
    return (low, high)


E = TypeVar("E", bound=enum.Enum)


def _enum_hook(enum_type: type[E]) -> Callable[[object, object], E]:
    choices = [m.value for m in enum_type]

    def structure(value: object, _: object) -> E:
        try:
            return enum_type(value)
        except (ValueError, TypeError):
            pass
        hint = suggest(str(value), choices)
        allowed = ", ".join(repr(c) for c in choices)
        raise _Invalid(f"expected one of {allowed}, got {show_value(value)}{hint}")

    return structure


def _is(alias: object) -> Callable[[Any], bool]:
    return lambda t: bool(t == alias)


def _make_converter(detailed: bool) -> cattrs.Converter:
    c = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed)
    c.register_structure_hook(Seconds, lambda v, _: Seconds(_number(v, 0.0, "a number >= 0")))
    c.register_structure_hook(Amount, lambda v, _: Amount(_number(v, 0.0, "a number >= 0")))
    c.register_structure_hook(Multiplier, lambda v, _: Multiplier(_number(v, 1.0, "a number >= 1")))
    c.register_structure_hook(Attempts, lambda v, _: Attempts(_whole(v, 1)))
    c.register_structure_hook(Count, lambda v, _: Count(_whole(v, 0)))
    c.register_structure_hook(Name, _name)
    c.register_structure_hook(Pattern, _pattern)
    c.register_structure_hook(Template, _template)
    c.register_structure_hook(Method, _method)
    c.register_structure_hook(BodyPath, _body_path)
    c.register_structure_hook(TransportKind, _transport)
    c.register_structure_hook(str, _string)
    c.register_structure_hook(bool, _bool)
    c.register_structure_hook(int, _int)
    c.register_structure_hook(float, _float)
    generic: list[tuple[object, Callable[[object, object], object]]] = [
        (tuple[StatusRange, ...], _statuses),
        (tuple[Method, ...], _one_or_many(_method)),
        (tuple[TransportKind, ...], _one_or_many(_transport)),
        (tuple[KeyPart, ...], _array(_enum_hook(KeyPart))),
        (tuple[HintSource, ...], _tables(c, HintSource)),
        (tuple[str, ...], _strings),
        (Mapping[str, bool | str], _match_headers),
        (Mapping[str, str], _test_headers),
        (tuple[float, float], _delay_range),
    ]
    for alias, hook in generic:
        c.register_structure_hook_func(_is(alias), hook)
    enums: tuple[type[enum.Enum], ...] = (ActionKind, Jitter, LongHint, HintFormat, KeyPart)
    for enum_type in enums:
        c.register_structure_hook(enum_type, _enum_hook(enum_type))
    return c


converter = _make_converter(detailed=True)
"""The private converter (never cattrs' global one): its errors name every
problem of a value, with its key path (``problems_of``)."""

fast_converter = _make_converter(detailed=False)
"""The same hooks without cattrs' detailed validation: it stops at the first
problem, and its generated code is a third the size (a quarter of a first
load is generating it). Valid documents, the common case, are structured
with it; on any error, ``converter`` structures the value again to tell
every problem."""


def problems_of(
    exc: BaseException, path: KeyPath, cls: type | None
) -> Iterable[tuple[KeyPath, str]]:
    """Every leaf problem in a cattrs detailed-validation error, with its path."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:
            part: str | int = note.index if isinstance(note, IterableValidationNote) else note.name
            yield from problems_of(inner, (*path, part), note.type)
        for inner in without:
            yield from problems_of(inner, path, getattr(exc, "cl", None))
    elif isinstance(exc, ForbiddenExtraKeysError):
        known = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields):
            hint = suggest(key, known)
            yield (*path, key), f"unknown key{hint}; known keys: {', '.join(known)}"
    elif isinstance(exc, KeyError):
        yield path, "required key is missing"
    elif isinstance(exc, _Invalid):
        for message in exc.args:
            yield path, str(message)
    elif isinstance(exc, AttributeError) and exc.name in ("items", "keys"):
        # (a table's keys are read first: cattrs checks for unknown ones)
        yield path, f"expected a table, got {kind_of(exc.obj)}"
    elif isinstance(exc, TypeError) and "not iterable" in str(exc):
        table = cls is not None and attrs.has(cls)  # ('x' in 5: a table's keys looked for)
        yield path, "expected a table" if table else "expected an array"
    else:
        yield path, f"invalid value ({exc})"
