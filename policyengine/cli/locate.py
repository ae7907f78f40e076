"""Where a value of a merged policy was written: which file, at which key path
of that file (a rule's index in its own file is not its merged index).

``nearest()`` is the one walk up a key path to its nearest ancestor that
something is known of; ``Locator.origin()`` walks ``Policy.origins`` with it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .._bundled import default_policy_path
from .._compat import tomllib
from .._files import Unreadable, read_regular
from .._keypath import format_path
from .._layers import MAX_POLICY_BYTES
from .._model import Policy

__all__ = ["DEFAULT_NAME", "KeyPath", "Location", "Locator", "Origin", "display_file", "nearest"]

#: How the bundled default policy file is named in the command line's output.
DEFAULT_NAME = "<default>"

KeyPath = tuple[str | int, ...]


class Origin(NamedTuple):
    """The file that set a merged key path: ``path`` is the key path it set
    (the one asked about, or its nearest ancestor that has an origin)."""

    file: str
    path: KeyPath


class Location(NamedTuple):
    """Where a value was written, as the command line shows it: the file
    (the bundled default as ``<default>``) and the key path in that file."""

    file: str
    path: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}"


def display_file(file: str) -> str:
    """``file`` as the command line shows it: the bundled default as
    ``<default>``, a bundled preset as ``<preset:NAME>`` (named by its
    file, or as a layer: ``preset:NAME``)."""
    if file.startswith("preset:"):
        return f"<{file}>"
    try:
        path = Path(file).resolve()
        default = default_policy_path().resolve()
        if path == default:
            return DEFAULT_NAME
        if path.parent == default.parent / "presets" and path.suffix == ".toml":
            return f"<preset:{path.stem}>"
    except (OSError, ValueError):
        pass
    return file


def nearest(path: KeyPath, known: Callable[[KeyPath], bool]) -> KeyPath | None:
    """The longest of ``path`` and its ancestors that is ``known`` (the root
    ``()`` is not asked), or None."""
    for n in range(len(path), 0, -1):
        if known(path[:n]):
            return path[:n]
    return None


class Locator:
    """Maps key paths of a merged policy to the file that set them, and to
    the key path in that file."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._docs: dict[str, dict[str, Any] | None] = {}

    def _doc(self, file: str) -> dict[str, Any] | None:
        if file not in self._docs:
            try:
                raw = read_regular(file, MAX_POLICY_BYTES)
                self._docs[file] = tomllib.loads(raw.decode("utf-8"))
            except (Unreadable, ValueError):
                self._docs[file] = None
        return self._docs[file]

    def origin(self, path: KeyPath) -> Origin | None:
        """The file that set ``path`` or its nearest ancestor, or None if no
        layer's origin is recorded for any of them."""
        origins = self.policy.origins
        found = nearest(path, lambda p: format_path(p) in origins)
        return None if found is None else Origin(origins[format_path(found)], found)

    def source(self, path: KeyPath) -> Origin:
        """Like ``origin()``, but never None: a path no origin covers is
        credited to the top layer (with ``path`` itself)."""
        found = self.origin(path)
        if found is not None:
            return found
        sources = self.policy.sources
        return Origin(sources[-1] if sources else "<policy>", path)

    def _local(self, origin: Origin) -> KeyPath:
        """``origin.path`` in its own file: a rule (test) is found there by its
        ``id`` (``name``), since its merged index need not be its index there."""
        found = origin.path
        if not (len(found) >= 2 and found[0] in ("rules", "tests") and isinstance(found[1], int)):
            return found
        key, index = str(found[0]), found[1]
        items: tuple[Any, ...] = self.policy.rules if key == "rules" else self.policy.tests
        if index >= len(items):
            return found
        id_key = "id" if key == "rules" else "name"
        ident = getattr(items[index], id_key)
        doc = self._doc(origin.file)
        listed = doc.get(key) if doc is not None else None
        if isinstance(listed, list):
            for j, item in enumerate(listed):
                if isinstance(item, dict) and item.get(id_key) == ident:
                    return (key, j, *found[2:])
        return found

    def where(self, path: KeyPath) -> Location:
        """Where the value at merged key path ``path`` (or its nearest ancestor
        that has an origin) was written; a rule's inherited value where its
        classification or ``[defaults]`` sets it."""
        inherited = self.policy.inherited.get(format_path(path))
        if inherited is not None:  # a table's merged path is its path in its file
            return Location(display_file(self.source(path).file), inherited)
        origin = self.source(path)
        return Location(display_file(origin.file), format_path(self._local(origin)))

    def rule(self, rule_id: str, *rest: str | int) -> Location:
        """Where rule ``rule_id`` (or its key ``rest``) was written."""
        for i, rule in enumerate(self.policy.rules):
            if rule.id == rule_id:
                return self.where(("rules", i, *rest))
        return self.where(("rules",))
