"""Loading: read each layer to a dict, merge the layers in order, structure once.

Layers are merged as dicts (rules by ``id``, tables key by key), remembering
which file set each key, and only then structured into ``Policy`` with one
private cattrs converter. Every problem of every layer is collected and raised
together as one ``PolicyError``; nothing is half-applied.
"""

from __future__ import annotations

import difflib
import enum
import functools
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, Union

import attrs
import cattrs
import tomli_w
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from ._compat import tomllib
from ._errors import PolicyError, Problem
from ._model import (
    PLACEHOLDERS,
    ActionKind,
    Attempts,
    Defaults,
    HintFormat,
    Hints,
    Jitter,
    LongHint,
    Match,
    Method,
    Multiplier,
    Name,
    Outcome,
    Pattern,
    Policy,
    PolicyTest,
    Rule,
    Seconds,
    StatusRange,
    Template,
    TransportKind,
)
from ._text import parse_template
from ._transport import TRANSPORT_FAMILIES

__all__ = [
    "ENV_VAR",
    "default_policy_path",
    "dump_policy",
    "load_policy",
    "parse_status",
    "policy_from_dicts",
    "policy_to_dict",
    "template_fields",
]

#: Extra override files, separated by ``os.pathsep``, layered last.
ENV_VAR = "POLICYENGINE_POLICY"

Layer = Union[str, "os.PathLike[str]", Mapping[str, Any]]
KeyPath = tuple[str | int, ...]
T = TypeVar("T")

_TOP_KEYS = ("inherit", "description", "defaults", "hints", "rules", "tests")
_OUTCOME_FIELDS = tuple(f.name for f in attrs.fields(Outcome))


def default_policy_path() -> Path:
    """The bundled ``default.toml``: inside the installed package, or, in a
    source checkout, ``policies/default.toml`` beside the package."""
    packaged = resources.files("policyengine").joinpath("policies/default.toml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "policies" / "default.toml"


# --- Key paths -------------------------------------------------------------------


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@functools.lru_cache(maxsize=4096)
def _path_part(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return f".{part}" if _BARE_KEY.fullmatch(part) else f"[{part!r}]"


def format_path(path: KeyPath) -> str:
    """``("rules", 2, "backoff")`` -> ``$.rules[2].backoff``."""
    return "$" + "".join(_path_part(part) for part in path)


class _Invalid(ValueError):
    """A value of the wrong shape; the message is shown as it is."""


def _suggest(value: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss or a unique prefix, else ""."""
    text, options = str(value), list(choices)
    close = difflib.get_close_matches(text, options, n=1)
    if not close and text:
        close = [c for c in options if c.startswith(text)][:2]
        close = close if len(close) == 1 else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


# --- The converter ---------------------------------------------------------------

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
        f"expected a status (429), a class ('5xx') or a range ('500-599'), got {_show(value)}"
    )


def _statuses(value: object, _: object) -> tuple[StatusRange, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(parse_status(v) for v in items)


def _number(value: object, minimum: float, what: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number >= minimum:
            return number
    raise _Invalid(f"expected {what}, got {_show(value)}")


def _whole(value: object, minimum: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise _Invalid(f"expected a whole number >= {minimum}, got {_show(value)}")


def _string(value: object, _: object = None) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid(f"expected a string, got {_kind(value)} ({_show(value)})")


def _name(value: object, _: object = None) -> Name:
    if isinstance(value, str) and value.strip() and value == value.strip():
        return Name(value)
    raise _Invalid(f"expected a non-empty string without surrounding spaces, got {_show(value)}")


def _bool(value: object, _: object = None) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid(f"expected true or false, got {_show(value)}")


def _int(value: object, _: object = None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Invalid(f"expected a whole number, got {_show(value)}")


def _float(value: object, _: object = None) -> float:
    return _number(value, -math.inf, "a number")


def _pattern(value: object, _: object = None) -> Pattern:
    text = _string(value)
    try:
        re.compile(text)
    except re.error as e:
        raise _Invalid(f"invalid regular expression {text!r}: {e}") from None
    return Pattern(text)


def template_fields(text: str) -> list[str]:
    """The placeholder names in a remediation template.

    Raises:
        ValueError: The template is malformed or uses a conversion or format spec.
    """
    return [part.field for part in parse_template(text) if part.field is not None]


def _template(value: object, _: object = None) -> Template:
    text = _string(value)
    try:
        names = template_fields(text)
    except ValueError as e:
        raise _Invalid(f"bad template: {e} (write {{{{ and }}}} for literal braces)") from None
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise _Invalid(
            f"unknown placeholder {{{unknown[0]}}}; known: {', '.join(sorted(PLACEHOLDERS))}"
        )
    return Template(text)


def _method(value: object, _: object = None) -> Method:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z]+", value):
        return Method(value.upper())
    raise _Invalid(f"expected an HTTP method name such as 'POST', got {_show(value)}")


def _transport(value: object, _: object = None) -> TransportKind:
    if isinstance(value, str) and value in TRANSPORT_FAMILIES:
        return TransportKind(value)
    known = ", ".join(sorted(TRANSPORT_FAMILIES))
    hint = _suggest(str(value), list(TRANSPORT_FAMILIES))
    raise _Invalid(f"unknown transport kind {_show(value)}{hint}; known: {known}")


def _one_or_many(hook: Callable[[object, object], T]) -> Callable[[object, object], tuple[T, ...]]:
    def structure(value: object, _: object) -> tuple[T, ...]:
        items = value if isinstance(value, list) else [value]
        return tuple(hook(item, None) for item in items)

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
            raise _Invalid(f"expected a string or an array of strings, got {_show(value)}")
    return tuple(out)


def _table(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise _Invalid(f"expected a table, got {_kind(value)} ({_show(value)})")


def _match_headers(value: object, _: object = None) -> dict[str, bool | str]:
    out: dict[str, bool | str] = {}
    for name, expected in _table(value).items():
        if not isinstance(expected, (bool, str)):
            raise _Invalid(
                f"header {name!r}: expected true (present), false (absent) or a value, "
                f"got {_show(expected)}"
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
        raise _Invalid(f"expected a number or [low, high], got {_show(value)}")
    if low > high:
        raise _Invalid(f"expected low <= high, got {_show(value)}")
    return (low, high)


E = TypeVar("E", bound=enum.Enum)


def _enum_hook(enum_type: type[E]) -> Callable[[object, object], E]:
    choices = [m.value for m in enum_type]

    def structure(value: object, _: object) -> E:
        try:
            return enum_type(value)
        except (ValueError, TypeError):
            pass
        hint = _suggest(str(value), choices)
        allowed = ", ".join(repr(c) for c in choices)
        raise _Invalid(f"expected one of {allowed}, got {_show(value)}{hint}")

    return structure


def _is(alias: object) -> Callable[[Any], bool]:
    return lambda t: bool(t == alias)


def _make_converter() -> cattrs.Converter:
    c = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    c.register_structure_hook(Seconds, lambda v, _: Seconds(_number(v, 0.0, "a number >= 0")))
    c.register_structure_hook(Multiplier, lambda v, _: Multiplier(_number(v, 1.0, "a number >= 1")))
    c.register_structure_hook(Attempts, lambda v, _: Attempts(_whole(v, 1)))
    c.register_structure_hook(Name, _name)
    c.register_structure_hook(Pattern, _pattern)
    c.register_structure_hook(Template, _template)
    c.register_structure_hook(Method, _method)
    c.register_structure_hook(TransportKind, _transport)
    c.register_structure_hook(str, _string)
    c.register_structure_hook(bool, _bool)
    c.register_structure_hook(int, _int)
    c.register_structure_hook(float, _float)
    generic: list[tuple[object, Callable[[object, object], object]]] = [
        (tuple[StatusRange, ...], _statuses),
        (tuple[Method, ...], _one_or_many(_method)),
        (tuple[TransportKind, ...], _one_or_many(_transport)),
        (tuple[str, ...], _strings),
        (Mapping[str, bool | str], _match_headers),
        (Mapping[str, str], _test_headers),
        (tuple[float, float], _delay_range),
    ]
    for alias, hook in generic:
        c.register_structure_hook_func(_is(alias), hook)
    enums: tuple[type[enum.Enum], ...] = (ActionKind, Jitter, LongHint, HintFormat)
    for enum_type in enums:
        c.register_structure_hook(enum_type, _enum_hook(enum_type))
    return c


_converter = _make_converter()


def _walk(exc: BaseException, path: KeyPath, cls: type | None) -> Iterable[tuple[KeyPath, str]]:
    """Every leaf problem in a cattrs detailed-validation error, with its path."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:
            part: str | int = note.index if isinstance(note, IterableValidationNote) else note.name
            yield from _walk(inner, (*path, part), note.type)
        for inner in without:
            yield from _walk(inner, path, getattr(exc, "cl", None))
    elif isinstance(exc, ForbiddenExtraKeysError):
        known = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields):
            hint = _suggest(key, known)
            yield (*path, key), f"unknown key{hint}; known keys: {', '.join(known)}"
    elif isinstance(exc, KeyError):
        yield path, "required key is missing"
    elif isinstance(exc, _Invalid):
        yield path, str(exc)
    elif isinstance(exc, AttributeError) and "items" in str(exc):
        yield path, "expected a table"
    elif isinstance(exc, TypeError) and "not iterable" in str(exc):
        yield path, "expected an array"
    else:
        yield path, f"invalid value ({exc})"


# --- Reading layers --------------------------------------------------------------

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_AT_END = " (at end of document)"


def _read_file(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        return None, [Problem(name, "", "cannot read: it is a directory")]
    except OSError as e:
        return None, [Problem(name, "", f"cannot read: {e.strerror or e}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, [
            Problem(name, "", f"not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start})")
        ]
    try:
        return tomllib.loads(text), []
    except RecursionError:  # tomllib recurses once per level of nesting
        return None, [Problem(name, "", "invalid TOML: nested too deeply")]
    except tomllib.TOMLDecodeError as e:
        message = str(e.args[0] if e.args else e)
        where = ""
        if m := _TOML_POSITION.search(message):
            where, message = f"line {m.group(1)}, column {m.group(2)}", message[: m.start()]
        elif message.endswith(_AT_END):
            # The position of the end: the last line, one past its last character.
            lines = text.split("\n")
            where = f"line {len(lines)}, column {len(lines[-1]) + 1}"
            message = message[: -len(_AT_END)]
        elif getattr(e, "lineno", None):  # pragma: no cover - Python >= 3.14 attributes
            where = f"line {e.lineno}, column {e.colno}"
        return None, [Problem(name, where, f"invalid TOML: {message}")]


#: A layer nested deeper than this is refused (a policy needs about five).
MAX_DEPTH = 64


class _TooDeep(Exception):
    pass


def _copy(value: object, depth: int = 0) -> Any:
    """A copy of a layer's tables and arrays, so that merging the layers above
    never changes a caller's dict (which may be reused for another load)."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, Mapping):
        return {k: _copy(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v, depth + 1) for v in value]
    return value


@attrs.define
class _Merge:
    """The merged document so far, and where each of its keys came from."""

    doc: dict[str, Any] = attrs.Factory(dict)
    origin: dict[KeyPath, tuple[str, KeyPath]] = attrs.Factory(dict)
    problems: list[Problem] = attrs.Factory(list)
    sources: list[str] = attrs.Factory(list)

    def note(self, merged: KeyPath, file: str, local: KeyPath, value: object) -> None:
        self.origin[merged] = (file, local)
        if isinstance(value, dict):
            for k, v in value.items():
                self.note((*merged, k), file, (*local, k), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.note((*merged, i), file, (*local, i), v)

    def forget(self, prefix: KeyPath) -> None:
        n = len(prefix)
        for key in [k for k in self.origin if k[:n] == prefix]:
            del self.origin[key]

    def add(self, file: str, data: Mapping[str, Any]) -> None:
        inherit = data.get("inherit", True)
        if not isinstance(inherit, bool):
            self.problems.append(
                Problem(file, "$.inherit", f"expected true or false, got {_show(inherit)}")
            )
        elif not inherit:  # a whole policy: what came before is gone
            self.doc, self.origin, self.sources = {}, {}, []
        self.sources.append(file)
        for key, value in data.items():
            if key == "inherit":
                continue
            try:
                value = _copy(value)
            except _TooDeep:
                self.problems.append(
                    Problem(file, format_path((key,)), f"nested more than {MAX_DEPTH} levels deep")
                )
                continue
            if key not in _TOP_KEYS:
                hint = _suggest(key, _TOP_KEYS)
                self.problems.append(
                    Problem(
                        file,
                        format_path((key,)),
                        f"unknown key{hint}; known keys: {', '.join(_TOP_KEYS)}",
                    )
                )
            elif key == "rules":
                self._merge_list(file, key, value, "id")
            elif key == "tests":
                self._merge_list(file, key, value, "name")
            elif key in ("defaults", "hints") and isinstance(value, dict):
                self._merge_table(file, (key,), value)
            else:
                self.forget((key,))
                self.doc[key] = value
                self.note((key,), file, (key,), value)

    def _merge_table(self, file: str, path: KeyPath, value: dict[str, Any]) -> None:
        target: dict[str, Any] = self.doc
        for part in path[:-1]:
            target = target[str(part)]
        current = target.get(str(path[-1]))
        if not isinstance(current, dict):
            current = target[str(path[-1])] = {}
            self.forget(path)
        self.origin.setdefault(path, (file, path))
        for k, v in value.items():
            # Tables merge key by key, except a rule's match and array values,
            # which are replaced whole.
            if isinstance(v, dict) and k != "match" and isinstance(current.get(k), dict):
                self._merge_table(file, (*path, k), v)
                continue
            self.forget((*path, k))
            current[k] = v
            self.note((*path, k), file, (*path, k), v)

    def _merge_list(self, file: str, key: str, value: object, id_key: str) -> None:
        if not isinstance(value, list):
            self.problems.append(
                Problem(
                    file, format_path((key,)), f"expected an array of tables, got {_kind(value)}"
                )
            )
            return
        merged: list[Any] = self.doc.setdefault(key, [])
        positions = {item.get(id_key): i for i, item in enumerate(merged)}
        seen: dict[str, int] = {}
        added: list[tuple[int, dict[str, Any]]] = []
        for local_index, item in enumerate(value):
            local = (key, local_index)
            if not isinstance(item, dict):
                self.problems.append(
                    Problem(file, format_path(local), f"expected a table, got {_kind(item)}")
                )
                continue
            ident = item.get(id_key)
            if not isinstance(ident, str) or not ident.strip():
                what = (
                    "required key is missing"
                    if ident is None
                    else (f"expected a non-empty string, got {_show(ident)}")
                )
                self.problems.append(Problem(file, format_path((*local, id_key)), what))
                continue
            if ident in seen:
                self.problems.append(
                    Problem(
                        file,
                        format_path((*local, id_key)),
                        f"duplicate {id_key} {ident!r} "
                        f"(first at {format_path((key, seen[ident]))})",
                    )
                )
                continue
            seen[ident] = local_index
            if ident in positions:  # an override of an item a lower layer defined
                index = positions[ident]
                for k, v in item.items():
                    path = (key, index, k)
                    base = merged[index].get(k)
                    if isinstance(v, dict) and k != "match" and isinstance(base, dict):
                        for kk, vv in v.items():
                            self.forget((*path, kk))
                            base[kk] = vv
                            self.note((*path, kk), file, (*local, k, kk), vv)
                        continue
                    self.forget(path)
                    merged[index][k] = v
                    self.note(path, file, (*local, k), v)
            else:
                added.append((local_index, dict(item)))
        if added:
            # New items go before those of the layers beneath, so that at equal
            # specificity an override's rule wins ("ties go by order").
            shift = len(added)
            old_origin = {k: v for k, v in self.origin.items() if k[:1] == (key,)}
            self.forget((key,))
            for k, v in old_origin.items():
                if len(k) > 1 and isinstance(k[1], int):
                    moved: KeyPath = (key, k[1] + shift, *k[2:])
                    self.origin[moved] = v
                else:
                    self.origin[k] = v
            merged[:0] = [item for _, item in added]
            for new_index, (local_index, item) in enumerate(added):
                self.note((key, new_index), file, (key, local_index), item)
        self.origin.setdefault((key,), (file, (key,)))


# --- Structuring -----------------------------------------------------------------


@attrs.define
class _Build:
    merge: _Merge
    problems: list[Problem] = attrs.Factory(list)

    def problem(self, path: KeyPath, message: str) -> None:
        for n in range(len(path), -1, -1):
            found = self.merge.origin.get(path[:n])
            if found is not None:
                file, local = found
                self.problems.append(Problem(file, format_path((*local, *path[n:])), message))
                return
        file = self.merge.sources[-1] if self.merge.sources else "<policy>"
        self.problems.append(Problem(file, format_path(path), message))

    def structure(self, value: object, cls: type[T], path: KeyPath) -> T | None:
        try:
            return _converter.structure(value, cls)
        except Exception as exc:
            for where, message in _walk(exc, path, cls):
                self.problem(where, message)
            return None

    def table(self, key: str) -> dict[str, Any]:
        value = self.merge.doc.get(key, {})
        if isinstance(value, dict):
            return value
        self.problem((key,), f"expected a table, got {_kind(value)}")
        return {}

    def items(self, key: str) -> list[dict[str, Any]]:
        value = self.merge.doc.get(key, [])
        return value if isinstance(value, list) else []

    def rule(self, index: int, raw: dict[str, Any], defaults: Defaults) -> Rule | None:
        data = dict(raw)
        if isinstance(data.get("backoff"), dict):
            data["backoff"] = {**_converter.unstructure(defaults.backoff), **data["backoff"]}
        rule = self.structure(data, Rule, ("rules", index))
        if rule is None:
            return None
        inherited = {f: getattr(defaults, f) for f in _OUTCOME_FIELDS if f not in raw}
        if inherited:
            rule = attrs.evolve(rule, **inherited)
        return rule

    def policy(self) -> Policy:
        doc = self.merge.doc
        defaults = self.structure(self.table("defaults"), Defaults, ("defaults",)) or Defaults()
        hints = self.structure(self.table("hints"), Hints, ("hints",)) or Hints()
        rules = [self.rule(i, raw, defaults) for i, raw in enumerate(self.items("rules"))]
        tests = [
            self.structure(raw, PolicyTest, ("tests", i))
            for i, raw in enumerate(self.items("tests"))
        ]
        for i, test in enumerate(tests):
            if test is not None and (test.response.status is None) == (
                test.response.transport is None
            ):
                self.problem(
                    ("tests", i, "response"),
                    "give exactly one of status (a response) or transport (a failure)",
                )
        for i, source in enumerate(hints.sources):
            if bool(source.header.strip()) == (source.message is not None):
                self.problem(
                    ("hints", "sources", i),
                    "give exactly one of header (a response header) or message (a regex "
                    "searched in the error message)",
                )
        description = doc.get("description", "")
        if not isinstance(description, str):
            self.problem(("description",), f"expected a string, got {_show(description)}")
            description = ""
        return Policy(
            defaults=defaults,
            rules=tuple(r for r in rules if r is not None),
            hints=hints,
            tests=tuple(t for t in tests if t is not None),
            description=description,
            sources=tuple(self.merge.sources),
            origins={format_path(k): v[0] for k, v in self.merge.origin.items()},
        )


def policy_from_dicts(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Policy:
    """Merge and structure already-read layers ``(name, data)``, in order.

    Raises:
        PolicyError: Listing every problem of every layer.
    """
    merge = _Merge()
    for name, data in layers:
        merge.add(name, data)
    build = _Build(merge)
    policy = build.policy()
    problems = merge.problems + build.problems
    if problems:
        raise PolicyError(_sorted(problems))
    return policy


_PATH_PART = re.compile(r"\[(\d+)\]|\.([^.\[]+)|\[('.*?')\]")


def _path_key(path: str) -> tuple[tuple[int, int | str], ...]:
    """Top-level keys in the documented order, then ``$.rules[2]`` before
    ``$.rules[10]``, keys by name; syntax errors (no key path) first."""
    parts = [
        (0, int(m.group(1))) if m.group(1) else (1, m.group(2) or m.group(3))
        for m in _PATH_PART.finditer(path)
    ]
    if parts and parts[0][1] in _TOP_KEYS:
        parts[0] = (0, _TOP_KEYS.index(str(parts[0][1])))
    return tuple(parts)


def _sorted(problems: list[Problem], files: Iterable[str] = ()) -> list[Problem]:
    """Problems grouped by file, files in layer order, then by where they are."""
    names = [*files, *(p.file for p in problems)]
    order = {name: i for i, name in enumerate(dict.fromkeys(names))}
    return sorted(problems, key=lambda p: (order[p.file], _path_key(p.path)))


def env_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """The override files named by ``POLICYENGINE_POLICY``, in order."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return [part for part in value.split(os.pathsep) if part.strip()]


def load_policy(*layers: Layer, env: bool = True, default: bool = True) -> Policy:
    """Load a policy: the bundled default, then each layer over it, in order.

    A layer is a path to a TOML file or a mapping of the same shape. Each layer
    overrides the ones before it: rules merge by ``id`` (set a few keys of a
    rule, ``enabled = false`` to switch one off, or add new ones), tables
    merge key by key, arrays and a rule's ``match`` are replaced whole. A
    layer with ``inherit = false`` starts afresh: it is a whole policy and the
    layers before it (the default included) are dropped.

    Args:
        layers: Files (``str`` / ``PathLike``) or mappings, lowest first.
        env: Also layer the files named in ``$POLICYENGINE_POLICY``
            (``os.pathsep``-separated), after ``layers``.
        default: Start from the bundled default policy.

    Returns:
        The merged, validated policy.

    Raises:
        PolicyError: Every problem of every layer, as ``file: key path: message``.
    """
    read: list[tuple[str, Mapping[str, Any]]] = []
    problems: list[Problem] = []
    paths: list[Layer] = [default_policy_path()] if default else []
    paths += list(layers)
    if env:
        paths += env_files()
    names = []
    for i, layer in enumerate(paths):
        if isinstance(layer, Mapping):
            names.append(f"<layer {i}>")
            read.append((names[-1], layer))
            continue
        names.append(os.fspath(layer))
        data, found = _read_file(Path(names[-1]))
        problems += found
        if data is not None:
            read.append((names[-1], data))
    try:
        policy = policy_from_dicts(read)
    except PolicyError as e:
        problems += e.problems
    if problems:
        raise PolicyError(_sorted(problems, names))
    return policy


# --- Writing ---------------------------------------------------------------------


def _unstructure(value: object) -> Any:
    if isinstance(value, StatusRange):
        return value.low if value.exact else str(value)
    if isinstance(value, (ActionKind, Jitter, LongHint, HintFormat)):
        return value.value
    if attrs.has(type(value)):
        out = {}
        for field in attrs.fields(type(value)):  # type: ignore[arg-type]
            if not field.init or field.eq is False:
                continue
            item = getattr(value, field.name)
            if item is None:
                continue  # TOML has no null: an omitted key is None
            out[field.name] = _unstructure(item)
        return out
    if isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], StatusRange):
        return _unstructure(value[0])
    if isinstance(value, (tuple, list)):
        return [_unstructure(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _unstructure(v) for k, v in value.items()}
    return value


def _compact(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in defaults or defaults[k] != v}


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The policy as a TOML-ready dict that loads back to an equal policy
    (``inherit = false``; rule keys equal to the defaults are left out)."""
    defaults = _unstructure(policy.defaults)
    empty_rule = _unstructure(Rule(id=Name("x")))
    rules = []
    for rule in policy.rules:
        # The rule's own keys first, then its outcome, as people write them.
        data = _unstructure(rule)
        data = {k: data.pop(k) for k in ("id", "description", "enabled", "match")} | data
        data["match"] = _compact(data["match"], _unstructure(Match()))
        if not data["match"]:
            del data["match"]
        if data.get("backoff") == defaults["backoff"]:
            del data["backoff"]
        data = {
            k: v
            for k, v in data.items()
            if k in ("id", "match", "backoff") or k not in defaults or defaults[k] != v
        }
        if data.get("enabled") is True:
            del data["enabled"]
        if data.get("description") == empty_rule["description"]:
            del data["description"]
        rules.append(data)
    out: dict[str, Any] = {"inherit": False}
    if policy.description:
        out["description"] = policy.description
    out["defaults"] = defaults
    out["hints"] = hints = _unstructure(policy.hints)
    for source in hints["sources"]:
        for key in ("when", "header"):
            if not source[key]:
                del source[key]
    out["rules"] = rules
    if policy.tests:
        out["tests"] = [_unstructure(t) for t in policy.tests]
    return out


def dump_policy(policy: Policy) -> str:
    """The policy as TOML text; ``load_policy`` of it gives an equal policy."""
    return tomli_w.dumps(policy_to_dict(policy))
