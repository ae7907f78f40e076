"""Bundled policy documents (the default, the presets) parsed ahead of time.

Parsing the bundled ``default.toml`` is a quarter of a first load (tomllib is
pure Python). Beside each bundled file, ``parsed/NAME.json`` holds the same
document as JSON, with the size and CRC-32 of the TOML bytes it was made
from. A load reads the TOML bytes anyway (cheap), and uses the JSON only if
both still match; otherwise (an edited checkout, a missing or broken copy) it
parses the TOML as for any other file. The copy can therefore be stale
without changing a single decision; a test keeps them current, and
``python -m policyengine._bundled`` rewrites them.
"""

from __future__ import annotations

import json
import math
import sys
import zlib
from pathlib import Path
from typing import Any

from ._files import Unreadable, read_regular

__all__ = [
    "FORMAT",
    "MAX_COPY_BYTES",
    "bundled_files",
    "copy_path",
    "default_policy_path",
    "make_copy",
    "presets_dir",
    "read_copy",
    "write_copies",
]

#: The version of the copies' layout; a copy of another version is not used.
FORMAT = 1

#: A copy larger than this (8 MiB: a copy of the largest policy file there
#: can be, ``MAX_POLICY_BYTES``, with room to spare) is not read.
MAX_COPY_BYTES = 8 * 1024 * 1024


def default_policy_path() -> Path:
    """The bundled ``default.toml``: inside the installed package, or, in a
    source checkout, ``policies/default.toml`` beside the package."""
    here = Path(__file__).parent
    packaged = here / "policies" / "default.toml"
    if packaged.is_file():
        return packaged
    return here.resolve().parent / "policies" / "default.toml"


def presets_dir() -> Path:
    """The folder of the bundled provider presets."""
    return default_policy_path().parent / "presets"


def bundled_files() -> list[Path]:
    """The bundled policy files: the default, then the presets by name."""
    return [default_policy_path(), *sorted(presets_dir().glob("*.toml"))]


def copy_path(toml: Path) -> Path:
    """Where the pre-parsed copy of the bundled file ``toml`` lives."""
    return toml.parent / "parsed" / f"{toml.stem}.json"


def _stamp(raw: bytes) -> dict[str, int]:
    return {"format": FORMAT, "size": len(raw), "crc32": zlib.crc32(raw)}


def read_copy(toml: Path, raw: bytes) -> dict[str, Any] | None:
    """The document of ``toml`` (whose bytes are ``raw``) from its copy, or
    None when there is no usable copy made from exactly these bytes. Only a
    regular file of at most ``MAX_COPY_BYTES`` is read (a named pipe or a
    device there is not waited on)."""
    try:
        found = json.loads(read_regular(copy_path(toml), MAX_COPY_BYTES))
    except (Unreadable, ValueError, RecursionError):
        return None
    if not isinstance(found, dict) or found.get("toml") != _stamp(raw):
        return None
    document = found.get("document")
    return document if isinstance(document, dict) else None


def _json_safe(value: object) -> bool:
    """Whether ``value`` survives a JSON round trip as it is (TOML dates do not)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_safe(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool))


def make_copy(raw: bytes, document: dict[str, Any]) -> str | None:
    """The copy's text for a TOML file of bytes ``raw`` parsed to
    ``document``, or None if the document does not survive JSON."""
    if not _json_safe(document):
        return None
    body = {"toml": _stamp(raw), "document": document}
    return json.dumps(body, ensure_ascii=False, indent=1) + "\n"


def write_copies(tomls: list[Path]) -> list[Path]:
    """Write the copy of each of ``tomls``; the paths written (or removed)."""
    from ._compat import tomllib

    changed = []
    for toml in tomls:
        raw = toml.read_bytes()
        text = make_copy(raw, tomllib.loads(raw.decode("utf-8")))
        target = copy_path(toml)
        if text is None:
            if target.exists():
                target.unlink()
                changed.append(target)
            continue
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(exist_ok=True)
            target.write_text(text, encoding="utf-8")
            changed.append(target)
    return changed


def main() -> int:
    for path in write_copies(bundled_files()):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
