"""Layers: read each layer (a TOML file or a dict) and merge them in order,
rules by ``id`` and tables key by key, remembering which file set each key."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, Union

import attrs

from ._compat import tomllib
from ._errors import Problem
from ._keypath import KeyPath, format_path, kind_of, show_value, suggest

__all__ = [
    "ENV_VAR",
    "MAX_DEPTH",
    "TOP_KEYS",
    "Layer",
    "Merge",
    "Origin",
    "default_policy_path",
    "env_files",
    "read_file",
]

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


def default_policy_path() -> Path:
    """The bundled ``default.toml``: inside the installed package, or, in a
    source checkout, ``policies/default.toml`` beside the package."""
    packaged = resources.files("policyengine").joinpath("policies/default.toml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "policies" / "default.toml"


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_AT_END = " (at end of document)"


def read_file(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
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


class Origin(NamedTuple):
    """Where a key of the merged document was set: a file, and the key's path there."""

    file: str
    path: KeyPath


@attrs.define
class Merge:
    """The merged document so far, and where each of its keys came from."""

    doc: dict[str, Any] = attrs.Factory(dict)
    origin: dict[KeyPath, Origin] = attrs.Factory(dict)
    problems: list[Problem] = attrs.Factory(list)
    sources: list[str] = attrs.Factory(list)

    def note(self, merged: KeyPath, file: str, local: KeyPath, value: object) -> None:
        self.origin[merged] = Origin(file, local)
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
                Problem(file, "$.inherit", f"expected true or false, got {show_value(inherit)}")
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
        old_origin = {k: v for k, v in self.origin.items() if k[:1] == (key,)}
        self.forget((key,))
        for k, v in old_origin.items():
            if len(k) > 1 and isinstance(k[1], int):
                moved: KeyPath = (key, k[1] + shift, *k[2:])
                self.origin[moved] = v
            else:
                self.origin[k] = v
        self.doc[key][:0] = [item for _, item in added]
        for new_index, (local_index, item) in enumerate(added):
            self.note((key, new_index), file, (key, local_index), item)


def env_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """The override files named by ``POLICYENGINE_POLICY``, in order."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return [part for part in value.split(os.pathsep) if part.strip()]
