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
    "_errors": 0,
    "_compat": 0,
    "_text": 0,
    "_model": 0,
    "_response": 1,
    "_loading": 2,
    "_matching": 3,
    "_delay": 4,
    "_engine": 5,
    "_driver": 6,
    "_locate": 6,
    "_records": 6,
    "_table": 6,
    "_schema": 6,
    "testing": 7,
    "_lint": 7,
    "_selftest": 7,
    "_show": 7,
    "_simulate": 7,
    "httpx": 8,
    "requests": 8,
    "urllib3": 8,
    "aiohttp": 8,
    "_cli": 8,
    "openai": 9,
    "__main__": 9,
    "__init__": 10,
}


def local_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
