"""Loading: layers -> a validated ``Policy``. The merged document is
structured once with the private converter; every problem of every layer is
collected and raised together as one ``PolicyError``; nothing is half-applied.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import attrs

from ._converter import converter, problems_of
from ._errors import PolicyError, Problem
from ._keypath import KeyPath, format_path, kind_of, show_value
from ._layers import (
    TOP_KEYS,
    Layer,
    Merge,
    default_policy_path,
    env_files,
    parse_toml,
    read_file,
)
from ._model import Defaults, Governor, Handling, Hints, Policy, PolicyTest, Rule

__all__ = ["ReadLayer", "load_layers", "load_policy", "policy_from_dicts"]

T = TypeVar("T")

_HANDLING_FIELDS = tuple(f.name for f in attrs.fields(Handling))


class ReadLayer(NamedTuple):
    """A policy file's bytes, read already (stdin), and the name to give it."""

    name: str
    raw: bytes


@attrs.define
class _Build:
    merge: Merge
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
            return converter.structure(value, cls)
        except Exception as exc:
            for where, message in problems_of(exc, path, cls):
                self.problem(where, message)
            return None

    def table(self, key: str) -> dict[str, Any]:
        value = self.merge.doc.get(key, {})
        if isinstance(value, dict):
            return value
        self.problem((key,), f"expected a table, got {kind_of(value)}")
        return {}

    def items(self, key: str) -> list[dict[str, Any]]:
        value = self.merge.doc.get(key, [])
        return value if isinstance(value, list) else []

    def rule(self, index: int, raw: dict[str, Any], defaults: Defaults) -> Rule | None:
        data = dict(raw)
        if isinstance(data.get("backoff"), dict):
            data["backoff"] = {**converter.unstructure(defaults.backoff), **data["backoff"]}
        rule = self.structure(data, Rule, ("rules", index))
        if rule is None:
            return None
        inherited = {f: getattr(defaults, f) for f in _HANDLING_FIELDS if f not in raw}
        if inherited:
            rule = attrs.evolve(rule, **inherited)
        return rule

    def policy(self) -> Policy:
        doc = self.merge.doc
        defaults = self.structure(self.table("defaults"), Defaults, ("defaults",)) or Defaults()
        hints = self.structure(self.table("hints"), Hints, ("hints",)) or Hints()
        governor = self.structure(self.table("governor"), Governor, ("governor",)) or Governor()
        breaker = governor.breaker
        if breaker.open_for > breaker.max_open_for:
            self.problem(
                ("governor", "breaker", "open_for"),
                f"open_for = {breaker.open_for:g} is longer than max_open_for = "
                f"{breaker.max_open_for:g}: the first wait cannot be the longest",
            )
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
            self.problem(("description",), f"expected a string, got {show_value(description)}")
            description = ""
        return Policy(
            defaults=defaults,
            rules=tuple(r for r in rules if r is not None),
            hints=hints,
            tests=tuple(t for t in tests if t is not None),
            description=description,
            governor=governor,
            sources=tuple(self.merge.sources),
            origins={format_path(k): v.file for k, v in self.merge.origin.items()},
        )


def policy_from_dicts(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Policy:
    """Merge and structure already-read layers ``(name, data)``, in order.

    Raises:
        PolicyError: Listing every problem of every layer.
    """
    merge = Merge()
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
    if parts and parts[0][1] in TOP_KEYS:
        parts[0] = (0, TOP_KEYS.index(str(parts[0][1])))
    return tuple(parts)


def _sorted(problems: list[Problem], files: Iterable[str] = ()) -> list[Problem]:
    """Problems grouped by file, files in layer order, then by where they are."""
    names = [*files, *(p.file for p in problems)]
    order = {name: i for i, name in enumerate(dict.fromkeys(names))}
    return sorted(problems, key=lambda p: (order[p.file], _path_key(p.path)))


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
    return load_layers(layers, env=env, default=default)


def load_layers(
    layers: Iterable[Layer | ReadLayer], *, env: bool = True, default: bool = True
) -> Policy:
    """``load_policy``, where a layer may also be a ``ReadLayer``: bytes read
    already, named as problems should name them (the command line's ``-``)."""
    read: list[tuple[str, Mapping[str, Any]]] = []
    problems: list[Problem] = []
    paths: list[Layer | ReadLayer] = [default_policy_path()] if default else []
    paths += list(layers)
    if env:
        paths += env_files()
    names = []
    for i, layer in enumerate(paths):
        if isinstance(layer, ReadLayer):
            names.append(layer.name)
            data, found = parse_toml(layer.name, layer.raw)
            problems += found
            if data is not None:
                read.append((layer.name, data))
            continue
        if isinstance(layer, Mapping):
            names.append(f"<layer {i}>")
            read.append((names[-1], layer))
            continue
        names.append(os.fspath(layer))
        data, found = read_file(Path(names[-1]))
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
