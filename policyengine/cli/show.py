"""``policyengine show``: the effective merged policy as TOML, each value that
an override layer set marked with a ``# from FILE`` comment."""

from __future__ import annotations

import json
import re
from typing import Any

import tomli_w

from .._compat import tomllib
from .._dumping import policy_to_dict
from .._model import Policy
from .locate import KeyPath, Locator, display_file, nearest

__all__ = ["show_json", "show_toml"]

_KEY = re.compile(r'([A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*") = ')


def _header_path(line: str) -> tuple[KeyPath, bool]:
    """The key path of a ``[table]`` or ``[[array]]`` header, and whether it
    is an array of tables."""
    node: Any = tomllib.loads(line)
    path: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        key, node = next(iter(node.items()))
        path.append(key)
        if isinstance(node, list):
            node = node[-1] if node else {}
    return tuple(path), line.startswith("[[")


def show_toml(policy: Policy) -> str:
    """The merged policy as TOML that loads back (with ``default=False``) to an
    equal policy; a value an override layer set ends with ``# from FILE``."""
    base = policy.sources[0] if policy.sources else None
    locator = Locator(policy)

    def origin(path: KeyPath) -> str | None:
        found = locator.origin(path)
        return None if found is None else found.file

    text = tomli_w.dumps(policy_to_dict(policy))
    out = []
    layers = [display_file(f) for f in policy.sources]
    out.append(f"# Effective policy, merged from: {', '.join(layers) or '(no files)'}.")
    if len(layers) > 1:
        out.append(f"# A value marked '# from FILE' was set by that file over {layers[0]}.")
    table: KeyPath = ()
    table_origin = base
    counters: dict[KeyPath, int] = {}
    seen: dict[KeyPath, str | None] = {}
    for line in text.splitlines():
        mark = None
        if line.startswith("["):
            names, is_array = _header_path(line)
            # Map the header's names onto indexed merged paths: an array of
            # tables counts its items; a sub-table belongs to the last item.
            path: list[str | int] = []
            for n, name in enumerate(names):
                path.append(name)
                prefix = tuple(names[: n + 1])
                if n == len(names) - 1 and is_array:
                    counters[prefix] = counters.get(prefix, -1) + 1
                    path.append(counters[prefix])
                elif prefix in counters and n < len(names) - 1:
                    path.append(counters[prefix])
            table = tuple(path)
            parent = nearest(table[:-1], seen.__contains__)
            parent_origin = base if parent is None else seen[parent]
            found = origin(table)
            table_origin = found if found is not None else parent_origin
            seen[table] = table_origin
            if found is not None and found != parent_origin:
                mark = found
        else:
            m = _KEY.match(line)
            if m is not None:
                key = m.group(1)
                name = json.loads(key) if key.startswith('"') else key
                found = origin((*table, name))
                # An override names the rule (test) it changes: not a change.
                identity = len(table) == 2 and (table[0], name) in (
                    ("rules", "id"),
                    ("tests", "name"),
                )
                if found is not None and found != table_origin and not identity:
                    mark = found
        out.append(f"{line}  # from {display_file(mark)}" if mark else line)
    return "\n".join(out) + "\n"


def show_json(policy: Policy) -> dict[str, Any]:
    """The merged policy for ``show --format json``: ``sources`` (files, lowest
    first), ``policy`` (as ``policy_to_dict``) and ``origins`` (merged key path
    -> the file that set it)."""
    return {
        "sources": [display_file(f) for f in policy.sources],
        "policy": policy_to_dict(policy),
        "origins": {path: display_file(file) for path, file in sorted(policy.origins.items())},
    }
