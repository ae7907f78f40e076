"""Where a value of a merged policy was written: which file, at which key path
of that file (a rule's index in its own file is not its merged index)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._compat import tomllib
from .._loading import default_policy_path, format_path
from .._model import Policy

__all__ = ["DEFAULT_NAME", "Locator", "display_file"]

#: How the bundled default policy file is named in the command line's output.
DEFAULT_NAME = "<default>"

KeyPath = tuple[str | int, ...]


def display_file(file: str) -> str:
    """``file`` as the command line shows it: the bundled default as ``<default>``."""
    try:
        if Path(file).resolve() == default_policy_path().resolve():
            return DEFAULT_NAME
    except (OSError, ValueError):
        pass
    return file


class Locator:
    """Maps key paths of a merged policy to ``(file, key path in that file)``."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._docs: dict[str, dict[str, Any] | None] = {}

    def _doc(self, file: str) -> dict[str, Any] | None:
        if file not in self._docs:
            try:
                self._docs[file] = tomllib.loads(Path(file).read_text("utf-8"))
            except (OSError, ValueError):
                self._docs[file] = None
        return self._docs[file]

    def file(self, path: KeyPath) -> tuple[str, KeyPath]:
        """The file that set ``path`` (or its nearest ancestor that has one),
        and that ancestor's merged path."""
        for n in range(len(path), 0, -1):
            found = self.policy.origins.get(format_path(path[:n]))
            if found is not None:
                return found, path[:n]
        sources = self.policy.sources
        return (sources[-1] if sources else "<policy>"), path

    def where(self, path: KeyPath) -> tuple[str, str]:
        """``(file as shown, key path in that file)`` for a merged key path."""
        file, found = self.file(path)
        local: KeyPath = found
        if len(found) >= 2 and found[0] in ("rules", "tests") and isinstance(found[1], int):
            key, index = str(found[0]), found[1]
            items: tuple[Any, ...] = self.policy.rules if key == "rules" else self.policy.tests
            ident = (
                (items[index].id if key == "rules" else items[index].name)
                if index < len(items)
                else None
            )
            doc = self._doc(file)
            listed = doc.get(key) if doc is not None else None
            if ident is not None and isinstance(listed, list):
                id_key = "id" if key == "rules" else "name"
                for j, item in enumerate(listed):
                    if isinstance(item, dict) and item.get(id_key) == ident:
                        local = (key, j, *found[2:])
                        break
        return display_file(file), format_path(local)

    def rule(self, rule_id: str, *rest: str | int) -> tuple[str, str]:
        """Where rule ``rule_id`` (or its key ``rest``) was written."""
        for i, rule in enumerate(self.policy.rules):
            if rule.id == rule_id:
                return self.where(("rules", i, *rest))
        return self.where(("rules",))
