"""Layers: read each layer (a TOML file or a dict) and merge them in order,
rules by ``id`` and tables key by key, remembering which file set each key."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Union

import attrs

from ._errors import Problem
from ._files import Unreadable, read_regular
from ._keypath import KeyPath, format_path, kind_of, show_value, suggest

__all__ = [
    "ENV_VAR",
    "MAX_DEPTH",
    "MAX_POLICY_BYTES",
    "PRESET_PREFIX",
    "TOP_KEYS",
    "Layer",
    "LeftOut",
    "Merge",
    "Origin",
    "Origins",
    "env_files",
    "parse_toml",
    "read_file",
]

#: A layer named ``preset:NAME`` is the bundled provider preset NAME.
PRESET_PREFIX = "preset:"

#: Extra override files, separated by ``os.pathsep``, layered last.
ENV_VAR = "POLICYENGINE_POLICY"

Layer = Union[str, "os.PathLike[str]", Mapping[str, Any]]
"""A layer: a path to a TOML file, or a mapping of the same shape."""

#: The keys of a policy document, in the order problems are reported.
TOP_KEYS = (
    "inherit",
    "description",
    "defaults",
    "classifications",
    "hints",
    "governor",
    "rules",
    "tests",
)


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_AT_END = " (at end of document)"


#: A policy file larger than this (4 MiB) is refused unread; the bundled
#: default is about 63 KB, a policy of 4,000 rules about 400 KB.
MAX_POLICY_BYTES = 4 * 1024 * 1024


def read_file(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """A policy file read and parsed: its data, or the problems found."""
    name = str(path)
    try:
        raw = read_regular(path, MAX_POLICY_BYTES)
    except Unreadable as e:
        return None, [Problem(name, "", str(e))]
    return parse_toml(name, raw)


def parse_toml(name: str, raw: bytes) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The TOML document ``raw`` (from ``name``): its data, or its problems."""
    from ._compat import tomllib  # (5 ms of imports, not paid by a pre-parsed bundled file)

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


class Origin(NamedTuple):
    """Where a key of the merged document was set: a file, and the key's path there."""

    file: str
    path: KeyPath


class Origins:
    """Key path -> ``Origin``, with a tree of the paths under each path, so
    that forgetting a subtree costs the size of that subtree, not of the
    whole document: overriding thousands of rules by id stays linear."""

    __slots__ = ("_children", "_origin")

    def __init__(self) -> None:
        self._origin: dict[KeyPath, Origin] = {}
        # Every path set, and each of its ancestors, under its parent.
        self._children: dict[KeyPath, set[KeyPath]] = {}

    def get(self, path: KeyPath) -> Origin | None:
        return self._origin.get(path)

    def __contains__(self, path: object) -> bool:
        return path in self._origin

    def __getitem__(self, path: KeyPath) -> Origin:
        return self._origin[path]

    def items(self) -> Iterable[tuple[KeyPath, Origin]]:
        return self._origin.items()

    def set(self, path: KeyPath, origin: Origin) -> None:
        self._origin[path] = origin
        while path:
            siblings = self._children.setdefault(path[:-1], set())
            if path in siblings:
                return
            siblings.add(path)
            path = path[:-1]

    def set_child(self, path: KeyPath, origin: Origin) -> None:
        """``set``, for a path whose parent is set already (no walk up)."""
        self._origin[path] = origin
        parent = path[:-1]
        siblings = self._children.get(parent)
        if siblings is None:
            self._children[parent] = {path}
        else:
            siblings.add(path)

    def setdefault(self, path: KeyPath, origin: Origin) -> None:
        if path not in self._origin:
            self.set(path, origin)

    def forget(self, prefix: KeyPath) -> None:
        """Forget ``prefix`` and every path under it."""
        self._origin.pop(prefix, None)
        if prefix and prefix[:-1] in self._children:
            self._children[prefix[:-1]].discard(prefix)
        self.pop_under(prefix)

    def pop_under(self, prefix: KeyPath) -> list[tuple[KeyPath, Origin]]:
        """Forget every path under ``prefix`` (not ``prefix`` itself); those
        that had an origin, with it."""
        found: list[tuple[KeyPath, Origin]] = []
        stack = [prefix]
        while stack:
            for child in self._children.pop(stack.pop(), ()):
                origin = self._origin.pop(child, None)
                if origin is not None:
                    found.append((child, origin))
                stack.append(child)
        return found


class LeftOut(NamedTuple):
    """An item of ``rules`` or ``tests`` the merge left out, with a problem."""

    file: str
    path: KeyPath
    item: dict[str, Any]


@attrs.define
class Merge:
    """The merged document so far, and where each of its keys came from."""

    doc: dict[str, Any] = attrs.Factory(dict)
    origin: Origins = attrs.Factory(Origins)
    problems: list[Problem] = attrs.Factory(list)
    sources: list[str] = attrs.Factory(list)
    left_out: list[LeftOut] = attrs.Factory(list)
    """The rules and tests not merged (no usable id or name, a duplicate, an
    unknown id with no match): their other keys are checked all the same."""

    def note(self, merged: KeyPath, file: str, local: KeyPath, value: object) -> None:
        """Remember that ``file`` set ``merged`` (at ``local`` there) and everything under it."""
        self.origin.set(merged, Origin(file, local))
        self._note_under(merged, file, local, value)

    def _note_under(self, merged: KeyPath, file: str, local: KeyPath, value: object) -> None:
        if isinstance(value, dict):
            items: Iterable[tuple[str | int, object]] = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            return
        set_child = self.origin.set_child
        for k, v in items:
            path = (*merged, k)
            at = (*local, k)
            set_child(path, Origin(file, at))
            if isinstance(v, (dict, list)):
                self._note_under(path, file, at, v)

    def forget(self, prefix: KeyPath) -> None:
        self.origin.forget(prefix)

    def add(self, file: str, data: Mapping[str, Any]) -> None:
        inherit = data.get("inherit", True)
        if not isinstance(inherit, bool):
            self.problems.append(
                Problem(file, "$.inherit", f"expected true or false, got {show_value(inherit)}")
            )
        elif not inherit:  # a whole policy: what came before is gone
            self.doc, self.origin, self.sources = {}, Origins(), []
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
            if key not in TOP_KEYS:
                hint = suggest(key, TOP_KEYS)
                self.problems.append(
                    Problem(
                        file,
                        format_path((key,)),
                        f"unknown key{hint}; known keys: {', '.join(TOP_KEYS)}",
                    )
                )
            elif key == "rules":
                self._merge_list(file, key, value, "id")
            elif key == "tests":
                self._merge_list(file, key, value, "name")
            elif key in ("defaults", "classifications", "hints", "governor") and isinstance(
                value, dict
            ):
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
        self.origin.setdefault(path, Origin(file, path))
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
                    file, format_path((key,)), f"expected an array of tables, got {kind_of(value)}"
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
                    Problem(file, format_path(local), f"expected a table, got {kind_of(item)}")
                )
                continue
            ident = item.get(id_key)
            if not isinstance(ident, str) or not ident.strip():
                what = (
                    "required key is missing"
                    if ident is None
                    else (f"expected a non-empty string, got {show_value(ident)}")
                )
                self.problems.append(Problem(file, format_path((*local, id_key)), what))
                self.left_out.append(LeftOut(file, local, item))
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
                self.left_out.append(LeftOut(file, local, item))
                continue
            seen[ident] = local_index
            if ident in positions:  # an override of an item a lower layer defined
                self._override_item(file, (key, positions[ident]), (key, local_index), item)
            elif key == "rules" and "match" not in item and len(self.sources) > 1:
                # Over other layers a rule without a match changes a rule by id:
                # a misspelled id would otherwise add a new catch-all rule.
                hint = suggest(ident, [str(p) for p in positions])
                self.problems.append(
                    Problem(
                        file,
                        format_path((*local, id_key)),
                        f"no rule {ident!r} in the layers beneath to change{hint}; to add a "
                        "new rule, give it a match (match = {} for a catch-all)",
                    )
                )
                self.left_out.append(LeftOut(file, local, item))
            else:
                added.append((local_index, dict(item)))
        if added:
            self._insert_new(file, key, added)
        self.origin.setdefault((key,), Origin(file, (key,)))

    def _override_item(
        self, file: str, merged_at: KeyPath, local_at: KeyPath, item: dict[str, Any]
    ) -> None:
        """Set the keys ``item`` gives on the merged item at ``merged_at``
        (a nested table such as ``backoff`` key by key; ``match`` whole)."""
        target = self.doc[str(merged_at[0])][int(merged_at[1])]
        for k, v in item.items():
            path = (*merged_at, k)
            base = target.get(k)
            if isinstance(v, dict) and k != "match" and isinstance(base, dict):
                for kk, vv in v.items():
                    self.forget((*path, kk))
                    base[kk] = vv
                    self.note((*path, kk), file, (*local_at, k, kk), vv)
                continue
            self.forget(path)
            target[k] = v
            self.note(path, file, (*local_at, k), v)

    def _insert_new(self, file: str, key: str, added: list[tuple[int, dict[str, Any]]]) -> None:
        """Put new items before those of the layers beneath, so that at equal
        specificity an override's rule wins ("ties go by order")."""
        shift = len(added)
        for k, v in self.origin.pop_under((key,)):
            if len(k) > 1 and isinstance(k[1], int):
                moved: KeyPath = (key, k[1] + shift, *k[2:])
                self.origin.set(moved, v)
            else:
                self.origin.set(k, v)
        self.doc[key][:0] = [item for _, item in added]
        for new_index, (local_index, item) in enumerate(added):
            self.note((key, new_index), file, (key, local_index), item)


def env_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """The override layers named by ``POLICYENGINE_POLICY``, in order: files,
    or bundled presets (``preset:NAME``, kept whole where ``os.pathsep`` is
    ``:``)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    out: list[str] = []
    for part in value.split(os.pathsep):
        if out and out[-1] == PRESET_PREFIX[:-1] and os.pathsep == ":":
            out[-1] = PRESET_PREFIX + part  # split on ":" cut preset:NAME in two
        elif part.strip():
            out.append(part)
    return out
