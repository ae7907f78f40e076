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

from ._bundled import default_policy_path, presets_dir, read_copy
from ._converter import converter, fast_converter, problems_of
from ._errors import PolicyError, Problem
from ._files import Unreadable, read_regular
from ._keypath import KeyPath, format_path, kind_of, show_value, suggest
from ._layers import (
    MAX_POLICY_BYTES,
    PRESET_PREFIX,
    TOP_KEYS,
    Layer,
    LeftOut,
    Merge,
    env_files,
    parse_toml,
    read_file,
)
from ._model import (
    ActionKind,
    Classification,
    Defaults,
    DeferredMapping,
    Expect,
    Governor,
    Handling,
    Hints,
    Name,
    Policy,
    PolicyTest,
    Rule,
    TestResponse,
)

__all__ = [
    "PRESET_PREFIX",
    "Partial",
    "ReadLayer",
    "load_layers",
    "load_partial",
    "load_policy",
    "policy_from_dicts",
    "preset_names",
    "preset_path",
]


class ReadLayer(NamedTuple):
    """A policy file's bytes, read already (stdin), and the name to give it."""

    name: str
    raw: bytes


def preset_names() -> list[str]:
    """The names of the bundled provider presets (``load_policy("preset:NAME")``)."""
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


#: Parsed bundled files (the default, the presets) by path, size and mtime: they
#: are read-only documents (merging copies what it takes), so loading again in
#: the same process skips even reading them.
_BUNDLED: dict[tuple[str, int, int], dict[str, Any]] = {}


def _read(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """A layer's file read and parsed; a bundled file from its pre-parsed
    copy when that was made from the same bytes (``_bundled``)."""
    if path.parent not in (default_policy_path().parent, presets_dir()):
        return read_file(path)
    try:
        stat = path.stat()
    except OSError:
        return read_file(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    found = _BUNDLED.get(key)
    if found is None:
        try:
            raw = read_regular(path, MAX_POLICY_BYTES)
        except Unreadable:
            return read_file(path)  # (which says why)
        found = read_copy(path, raw)
        if found is None:
            data, problems = parse_toml(str(path), raw)
            if data is None or problems:
                return data, problems
            found = data
        _BUNDLED[key] = found
    return found, []


def preset_path(name: str) -> Path | None:
    """The file of the bundled preset ``name``, or None if there is none."""
    return presets_dir() / f"{name}.toml" if name in preset_names() else None


T = TypeVar("T")
H = TypeVar("H", bound=Handling)

_HANDLING_FIELDS = tuple(f.name for f in attrs.fields(Handling))
_BACKOFF_FIELDS = ("initial", "multiplier", "max_delay", "jitter")


@attrs.define
class _Build:
    merge: Merge
    problems: list[Problem] = attrs.Factory(list)
    inherited: dict[KeyPath, KeyPath] = attrs.Factory(dict)
    broken: set[str] = attrs.Factory(set)
    """The ids of the rules that did not load (a disabled stand-in keeps their place)."""

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
            return fast_converter.structure(value, cls)
        except Exception:  # told apart below, every problem with its key path
            pass
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

    def handling(
        self, raw: dict[str, Any], base: Handling, cls: type[H], path: KeyPath
    ) -> H | None:
        """``raw`` structured as ``cls``, each outcome key it does not set
        taken from ``base`` (``backoff`` key by key); ``retryable`` follows an
        ``action`` given here (but ``fallback``) unless given here too."""
        data = dict(raw)
        if isinstance(data.get("backoff"), dict):
            data["backoff"] = {**converter.unstructure(base.backoff), **data["backoff"]}
        value = self.structure(data, cls, path)
        if value is None:
            return None
        inherited = {f: getattr(base, f) for f in _HANDLING_FIELDS if f not in raw}
        if "action" in raw and value.action is not ActionKind.FALLBACK:
            inherited.pop("retryable", None)  # it follows the action given here
        if inherited:
            value = attrs.evolve(value, **inherited)
        self.contradiction(value, raw, path)
        return value

    def contradiction(self, value: Handling, raw: dict[str, Any], path: KeyPath) -> None:
        """A problem for an ``action`` and ``retryable`` that say opposite
        things, reported where one of them is written."""
        if "retryable" not in raw and "action" not in raw:
            return  # inherited whole: reported where they were written
        at = (*path, "retryable" if "retryable" in raw else "action")
        if value.action is ActionKind.RETRY and not value.retryable:
            self.problem(
                at,
                "action = 'retry' with retryable = false never retries: drop retryable "
                "(it follows the action), or say action = 'fail'",
            )
        elif value.action is ActionKind.SUCCEED and value.retryable:
            self.problem(
                at,
                "action = 'succeed' with retryable = true: a success is no error to retry; "
                "drop retryable",
            )

    def classifications(self, defaults: Defaults) -> dict[str, Classification]:
        out: dict[str, Classification] = {}
        for name, raw in self.table("classifications").items():
            path = ("classifications", name)
            if self.structure(name, Name, path) is None:
                continue
            if not isinstance(raw, dict):
                self.problem(path, f"expected a table, got {kind_of(raw)}")
                continue
            found = self.handling(raw, defaults, Classification, path)
            if found is not None:
                out[name] = found
        return out

    def rule(
        self,
        index: int,
        raw: dict[str, Any],
        defaults: Defaults,
        classifications: Mapping[str, Classification],
    ) -> Rule | None:
        name = raw.get("classification", defaults.classification)
        base = classifications.get(name, defaults) if isinstance(name, str) else defaults
        rule = self.handling(raw, base, Rule, ("rules", index))
        if rule is not None and "classification" not in raw:
            rule = attrs.evolve(rule, classification=defaults.classification)
        if rule is not None:
            self.note_inherited(index, raw, rule.classification)
        return rule

    def note_inherited(self, index: int, raw: dict[str, Any], name: str) -> None:
        """Remember where each outcome key rule ``index`` did not set came from."""
        backoff = raw.get("backoff")
        own_backoff: dict[str, Any] = backoff if isinstance(backoff, dict) else {}
        tails: list[KeyPath] = [(f,) for f in _HANDLING_FIELDS if f != "backoff" and f not in raw]
        tails += [("backoff", k) for k in _BACKOFF_FIELDS if k not in own_backoff]
        if "action" in raw and raw["action"] != "fallback":
            tails = [t for t in tails if t != ("retryable",)]
        for tail in tails:
            source = self.set_at(name, tail)
            if source is not None:
                key: KeyPath = ("rules", index, *tail)
                self.inherited[key] = source

    def set_at(self, name: str, tail: KeyPath) -> KeyPath | None:
        """The merged key path that set what a rule of classification ``name``
        inherits at ``tail``, or None (a built-in default)."""
        origin = self.merge.origin
        tables = self.merge.doc.get("classifications")
        levels = (
            (("classifications", name), tables.get(name) if isinstance(tables, dict) else None),
            (("defaults",), self.merge.doc.get("defaults")),
        )
        for level, table in levels:
            if (*level, *tail) in origin:
                return (*level, *tail)
            action = table.get("action") if isinstance(table, dict) else None
            if tail == ("retryable",) and action is not None and action != "fallback":
                return (*level, "action")  # retryable follows the action set here
        return None

    def policy(self) -> Policy:
        doc = self.merge.doc
        defaults = self.handling(self.table("defaults"), Defaults(), Defaults, ("defaults",))
        defaults = defaults or Defaults()
        classifications = self.classifications(defaults)
        hints = self.structure(self.table("hints"), Hints, ("hints",)) or Hints()
        governor = self.structure(self.table("governor"), Governor, ("governor",)) or Governor()
        breaker = governor.breaker
        if breaker.open_for > breaker.max_open_for:
            self.problem(
                ("governor", "breaker", "open_for"),
                f"open_for = {breaker.open_for:g} is longer than max_open_for = "
                f"{breaker.max_open_for:g}: the first wait cannot be the longest",
            )
        rules = [
            self.rule(i, raw, defaults, classifications)
            for i, raw in enumerate(self.items("rules"))
        ]
        tests = [
            self.structure(raw, PolicyTest, ("tests", i))
            for i, raw in enumerate(self.items("tests"))
        ]
        # What did not load keeps its place (so key paths stay right for
        # lint after a partial load): a disabled rule, a test of nothing.
        for i, rule in enumerate(rules):
            if rule is None:
                ident = self.items("rules")[i].get("id")
                name = ident if isinstance(ident, str) and ident.strip() else f"rules[{i}]"
                self.broken.add(name)
                rules[i] = Rule(id=Name(name), enabled=False)
        for i, test in enumerate(tests):
            if test is not None and (test.response.status is None) == (
                test.response.transport is None
            ):
                self.problem(
                    ("tests", i, "response"),
                    "give exactly one of status (a response) or transport (a failure)",
                )
        for i, test in enumerate(tests):
            if test is None:
                named = self.items("tests")[i].get("name")
                name = named if isinstance(named, str) and named.strip() else f"tests[{i}]"
                tests[i] = PolicyTest(Name(name), TestResponse(status=0), Expect())
        for i, source in enumerate(hints.sources):
            given = (bool(source.header.strip()), source.message is not None, bool(source.body))
            if sum(given) != 1:
                self.problem(
                    ("hints", "sources", i),
                    "give exactly one of header (a response header), message (a regex "
                    "searched in the error message) or body (a field of the error object)",
                )
        description = doc.get("description", "")
        if not isinstance(description, str):
            self.problem(("description",), f"expected a string, got {show_value(description)}")
            description = ""
        files = {path: origin.file for path, origin in self.merge.origin.items()}
        taken = dict(self.inherited)

        def origins() -> dict[str, str]:
            found = {format_path(path): file for path, file in files.items()}
            found.update((format_path(path), files[at]) for path, at in taken.items())
            return found

        def inherited() -> dict[str, str]:
            return {format_path(path): format_path(at) for path, at in taken.items()}

        return Policy(
            defaults=defaults,
            classifications=classifications,
            rules=tuple(r for r in rules if r is not None),
            hints=hints,
            tests=tuple(t for t in tests if t is not None),
            description=description,
            governor=governor,
            sources=tuple(self.merge.sources),
            origins=DeferredMapping(origins),
            inherited=DeferredMapping(inherited),
        )


#: The array items a layer merges by key, and the class of each.
_KEYED: dict[str, tuple[str, type]] = {"rules": ("id", Rule), "tests": ("name", PolicyTest)}


def _left_out(left: LeftOut) -> list[Problem]:
    """The problems of a rule (test) the merge left out, besides the one it
    was left out for (its id or name, told by the merge): nothing else looks
    at its keys, so a misspelled ``idd`` is named beside "id: required key is
    missing", and a bad value beside "duplicate id"."""
    id_key, cls = _KEYED[str(left.path[0])]
    item = {**left.item, id_key: "left-out"}  # (its id's problem is told already)
    try:
        converter.structure(item, cls)
    except Exception as exc:
        return [
            Problem(left.file, format_path(where), message)
            for where, message in problems_of(exc, left.path, cls)
        ]
    return []


class Partial(NamedTuple):
    """A policy loaded as far as it could be (``load_partial``): what loaded,
    every problem, and the ids of the rules that did not load (each stands
    in the policy as a disabled rule, so key paths stay right)."""

    policy: Policy
    problems: list[Problem]
    broken: frozenset[str]


def _build(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Partial:
    merge = Merge()
    for name, data in layers:
        merge.add(name, data)
    for left in merge.left_out:
        merge.problems += _left_out(left)
    build = _Build(merge)
    policy = build.policy()
    return Partial(policy, merge.problems + build.problems, frozenset(build.broken))


def policy_from_dicts(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> Policy:
    """Merge and structure already-read layers ``(name, data)``, in order.

    Raises:
        PolicyError: Listing every problem of every layer.
    """
    policy, problems, _ = _build(layers)
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
        layers: Files (``str`` / ``PathLike``) or mappings, lowest first; a
            layer ``"preset:NAME"`` is a bundled provider preset (``preset_names()``).
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
    policy, problems, _ = load_partial(*layers, env=env, default=default)
    if problems:
        raise PolicyError(problems)
    return policy


def load_partial(*layers: Layer | ReadLayer, env: bool = True, default: bool = True) -> Partial:
    """``load_policy`` that never raises ``PolicyError``: the policy as far as
    it loads (a layer that cannot be read is left out; a rule that does not
    structure stands as a disabled rule), with every problem, sorted, for
    tools that report them beside what they find in the rest (``check``)."""
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
        name = os.fspath(layer)
        if name.startswith(PRESET_PREFIX):
            found_path = preset_path(name[len(PRESET_PREFIX) :])
            if found_path is None:
                known = preset_names()
                hint = suggest(name[len(PRESET_PREFIX) :], known)
                names.append(name)
                problems.append(
                    Problem(name, "", f"no such preset{hint}; known: {', '.join(known)}")
                )
                continue
            name = str(found_path)
        names.append(name)
        data, found = _read(Path(names[-1]))
        problems += found
        if data is not None:
            read.append((names[-1], data))
    policy, found, broken = _build(read)
    return Partial(policy, _sorted(problems + found, names), broken)
