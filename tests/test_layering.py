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
    # values
    "_errors": 1,
    "_model": 1,
    # reading responses
    "_errorbody": 2,
    "_clients": 3,
    # loading a policy
    "_keypath": 0,
    "_converter": 2,
    "_layers": 2,
    "_loading": 3,
    "_dumping": 2,
    # compiling and deciding
    "_matching": 5,
    "_delay": 5,
    "_explain": 6,
    "_engine": 7,
    # running calls
    "_driver": 8,
    "_locate": 8,
    "_records": 8,
    "_table": 8,
    "_schema": 8,
    "testing": 9,
    "_lint": 9,
    "_selftest": 9,
    "_show": 9,
    "_simulate": 9,
    # adapters and the command line
    "httpx": 10,
    "requests": 10,
    "urllib3": 10,
    "aiohttp": 10,
    "_cli": 10,
    "openai": 11,
    "__main__": 11,
    "__init__": 12,
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
