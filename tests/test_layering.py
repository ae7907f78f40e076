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


def local_imports(path: Path) -> set[str]:
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import x
                found.update(a.name for a in node.names if (PACKAGE / f"{a.name}.py").exists())
    return found


def test_every_module_has_a_rank() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(RANK)


def test_imports_flow_one_way() -> None:
    wrong = [
        f"{path.stem} imports {name}"
        for path in sorted(PACKAGE.glob("*.py"))
        for name in sorted(local_imports(path))
        if RANK[name] >= RANK[path.stem] and path.stem != "__init__"
    ]
    assert wrong == []


def test_the_core_imports_no_client_library() -> None:
    code = (
        "import sys, policyengine, policyengine._cli\n"
        "clients = {'httpx', 'requests', 'aiohttp', 'urllib3', 'openai'}\n"
        "print(sorted(clients & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
