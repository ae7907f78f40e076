"""Imports flow one way along the pipeline, and the core imports no client."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import policyengine

PACKAGE = Path(policyengine.__file__).parent

# model -> reading responses -> loading -> matching -> delay -> engine -> the rest.
RANK = {
    # leaves: no imports of ours
    "_compat": 0,
    "_text": 0,
    "_redact": 0,
    "_headers": 0,
    "_transport": 0,
    "_facts": 0,
    "_keypath": 0,
    # values, and the exceptions that carry them
    "_model": 1,
    "_errors": 2,
    # reading responses
    "_errorbody": 2,
    "_clients": 3,
    # loading a policy
    "_converter": 2,
    "_dumping": 2,
    "_layers": 3,
    "_loading": 4,
    # compiling and deciding
    "_matching": 5,
    "_delay": 5,
    "_explain": 6,
    "_engine": 7,
    # the governor: shared state the driver consults (a subpackage, keyed by dotted path)
    "_governor._ratelimit": 6,
    "_governor": 8,
    # running calls
    "_results": 3,
    "_overrides": 4,
    "_testing": 8,
    "_driver": 9,
    "_adapting": 10,
    "_locate": 8,
    "_records": 8,
    "_table": 8,
    "_schema": 8,
    "testing": 10,
    "_lint": 9,
    "_selftest": 9,
    "_show": 9,
    "_simulate": 9,
    # adapters and the command line
    "httpx": 11,
    "requests": 11,
    "urllib3": 11,
    "aiohttp": 11,
    "_cli": 11,
    "openai": 12,
    "__main__": 12,
    "__init__": 13,
}


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of import nodes under ``if TYPE_CHECKING:`` (no import at run time)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip.update(id(inner) for inner in ast.walk(node))
    return skip


def module_name(path: Path) -> str:
    """The RANK key of a module: ``_delay``, ``_governor._ratelimit``, and ``_governor``
    for a subpackage's ``__init__`` (the package's own ``__init__`` stays ``__init__``)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if len(parts) > 1 and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def local_imports(path: Path) -> set[str]:
    """The RANK keys of the modules ``path`` imports relatively (``from .x``, ``from ..x``)."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    package = list(path.relative_to(PACKAGE).parent.parts)
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[: len(package) - (node.level - 1)]
        if node.module:
            parts = [*base, *node.module.split(".")]
            # the longest prefix that is a module of ours: _governor._ratelimit, not .Reading
            while len(parts) > 1 and not _is_module(".".join(parts)):
                parts.pop()
            found.add(".".join(parts))
        else:  # from . import x
            found.update(
                ".".join([*base, a.name])
                for a in node.names
                if _is_module(".".join([*base, a.name]))
            )
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_rank() -> None:
    assert {module_name(p) for p in modules()} == set(RANK)


def test_imports_flow_one_way() -> None:
    wrong = [
        f"{module_name(path)} imports {name}"
        for path in modules()
        for name in sorted(local_imports(path))
        if RANK[name] >= RANK[module_name(path)] and module_name(path) != "__init__"
    ]
    assert wrong == []


def test_a_subpackage_is_ranked_by_its_dotted_path() -> None:
    assert module_name(PACKAGE / "_governor" / "__init__.py") == "_governor"
    assert module_name(PACKAGE / "_governor" / "x.py") == "_governor.x"
    assert module_name(PACKAGE / "__init__.py") == "__init__"


def test_local_imports_resolve_subpackages() -> None:
    ratelimit = PACKAGE / "_governor" / "_ratelimit.py"
    assert {"_delay", "_model"} <= local_imports(ratelimit)
    assert all(name in RANK for name in local_imports(ratelimit))


def test_the_core_imports_no_client_library() -> None:
    code = (
        "import sys, policyengine, policyengine._cli\n"
        "clients = {'httpx', 'requests', 'aiohttp', 'urllib3', 'openai'}\n"
        "print(sorted(clients & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
