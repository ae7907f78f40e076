"""Imports flow one way along the pipeline, the command line sits on top of the
core (never the other way round), and the core imports no client."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import policyengine

PACKAGE = Path(policyengine.__file__).parent

# model -> reading responses -> loading -> matching -> delay -> engine -> the rest.
# Modules are named by their path in the package: "_model", "cli.parser".
RANK = {
    # leaves: no imports of ours
    "_compat": 0,
    "_text": 0,
    "_redact": 0,
    "_headers": 0,
    "_transport": 0,
    "_facts": 0,
    "_keypath": 0,
    "_files": 0,
    "_patterns": 0,
    "_json": 0,
    # values, and the exceptions that carry them
    "_model": 1,
    "_errors": 2,
    # reading responses
    "_sse": 0,
    "_errorbody": 2,
    "_clients": 3,
    "_peek": 3,
    # loading a policy
    "_converter": 2,
    "_dumping": 2,
    "_bundled": 1,
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
    "_restart": 9,
    # the governor (shared state per key), below the driver
    "_governor._keys": 2,
    "_governor._signals": 0,
    "_governor._ratelimit": 6,
    "_governor._limiter": 7,
    "_governor._breaker": 2,
    "_governor._budget": 2,
    "_governor._remembered": 3,
    "_governor._sticky": 4,
    "_governor._steps": 8,
    "_governor._store": 9,
    # the shared store (the redis extra), loaded by the governor on demand
    "_governor._redisstore": 10,
    "_governor._governor": 11,
    "_governor.__init__": 12,
    "_driver": 13,
    "_adapting": 14,
    "_streaming": 14,
    "_watch": 14,
    # the fake gateway (policyengine.testing): replies, their dialects, the server
    "_replies": 0,
    "_dialects": 1,
    "_gateway": 2,
    "testing": 14,
    # adapters, each behind its extra
    "_httpxcore": 15,
    "httpx": 16,
    "httpx2": 16,
    "requests": 15,
    "urllib3": 15,
    "aiohttp": 15,
    "openai": 17,
    "anthropic": 17,
    "groq": 17,
    "genai": 17,
    "redis": 16,
    "otel": 16,
    # The command line: on top of the core, which never imports it.
    "cli.errors": 10,
    "cli.output": 11,
    "cli.parser": 10,
    "cli.locate": 10,
    "cli.table": 10,
    "cli.schema": 10,
    "cli.failures": 10,
    "cli.rawhttp": 11,
    "cli.records": 11,
    "cli.matchsets": 10,
    "cli.lint": 12,
    "cli.selftest": 12,
    "cli.show": 12,
    "cli.simulate": 12,
    "cli.commands": 13,
    "cli.__init__": 14,
    "__main__": 15,
    "__init__": 16,
}


def module_name(path: Path) -> str:
    """``policyengine/cli/parser.py`` -> ``cli.parser``."""
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _module(parts: tuple[str, ...]) -> str | None:
    """The module that ``parts`` (a dotted name inside the package) names: a
    file, or a sub-package's ``__init__``; None for anything else (a name
    defined in an ``__init__``, or the package root, which loads first)."""
    if not parts:
        return None
    where = PACKAGE.joinpath(*parts)
    if where.with_suffix(".py").is_file():
        return ".".join(parts)
    if (where / "__init__.py").is_file():
        return ".".join((*parts, "__init__"))
    return None


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of import nodes under ``if TYPE_CHECKING:`` (no import at run time)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip.update(id(inner) for inner in ast.walk(node))
    return skip


def local_imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, at any depth of the file:
    ``from .x import``, ``from . import x``, and inside ``cli/`` ``from ..x
    import`` and ``from .. import x``. Importing a module of a sub-package
    also runs that sub-package's ``__init__``, unless it encloses ``path``
    (then it is loaded already)."""
    package = path.relative_to(PACKAGE).parts[:-1]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or id(node) in skip:
            continue
        if node.level == 0:
            head, _, rest = (node.module or "").partition(".")
            if head != "policyengine" or not rest:
                continue
            base: tuple[str, ...] = ()
            module = rest
        else:
            base = package[: len(package) - (node.level - 1)]
            module = node.module or ""
        # from . import x: x is a module, or a name of an enclosing __init__.
        targets = [(*base, *module.split("."))] if module else [(*base, a.name) for a in node.names]
        for target in targets:
            for n in range(1, len(target)):
                if target[:n] != package[:n]:
                    found.add(f"{'.'.join(target[:n])}.__init__")
            name = _module(target)
            if name is not None:
                found.add(name)
    return found


def test_every_module_has_a_rank() -> None:
    assert {module_name(p) for p in PACKAGE.rglob("*.py")} == set(RANK)


def test_imports_flow_one_way() -> None:
    wrong = [
        f"{module_name(path)} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name in sorted(local_imports(path))
        if RANK[name] >= RANK[module_name(path)] and module_name(path) != "__init__"
    ]
    assert wrong == []


def test_local_imports_reads_the_cli_package() -> None:
    assert local_imports(PACKAGE / "cli" / "lint.py") >= {"_matching", "cli.locate"}
    assert "cli.__init__" in local_imports(PACKAGE / "__main__.py")


def test_local_imports_read_the_governor_package() -> None:
    assert {"_delay", "_model"} <= local_imports(PACKAGE / "_governor" / "_ratelimit.py")
    assert "_governor.__init__" in local_imports(PACKAGE / "_driver.py")


def test_the_core_imports_no_client_library_nor_the_cli() -> None:
    code = (
        "import sys, policyengine\n"
        "cli = sorted(m for m in sys.modules if m.startswith('policyengine.cli'))\n"
        "import policyengine.__main__\n"
        + "".join(
            f"import policyengine.{module_name(p)}\n"
            for p in sorted((PACKAGE / "cli").glob("*.py"))
            if p.stem != "__init__"
        )
        + "clients = {'httpx', 'httpx2', 'requests', 'aiohttp', 'urllib3', 'openai', 'anthropic', 'groq', 'google', 'redis', 'opentelemetry'}\n"
        "print(cli, sorted(clients & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"


def test_the_cli_loads_a_command_s_modules_only_when_it_runs() -> None:
    code = (
        "import json, sys, policyengine.cli\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('policyengine.cli')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.removeprefix("policyengine.cli").lstrip(".") for name in json.loads(out.stdout)}
    assert loaded == {"", "commands", "errors", "locate", "output", "parser"}
