"""What importing costs: ``import policyengine`` loads names as they are used,
deciding never loads asyncio or the driver's dependencies, and each command
of the command line loads only what it needs. Each case runs in a fresh
interpreter, so that what this test process already imported does not count."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Modules a program that only decides must never load.
DRIVER_DEPENDENCIES = ("asyncio", "backoff", "policyengine._driver", "policyengine._governor")


def loaded_after(code: str) -> set[str]:
    """The modules loaded by a fresh interpreter after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_import_loads_no_asyncio() -> None:
    loaded = loaded_after("import policyengine")
    assert "asyncio" not in loaded
    assert not {m for m in loaded if m.startswith("policyengine.")}


def test_a_decision_loads_no_asyncio_nor_the_driver() -> None:
    loaded = loaded_after(
        "import policyengine as pe\n"
        "engine = pe.Engine()\n"
        "action = engine.evaluate(pe.Response(429, {'Retry-After': '2'}, b'{}'))\n"
        "assert action.kind is pe.ActionKind.RETRY and action.delay == 2.0\n"
        "assert action.explanation and action.reasons\n"
        "assert engine.evaluate(pe.Response(200)).kind is pe.ActionKind.SUCCEED\n"
        "assert engine.evaluate(TimeoutError()).kind is pe.ActionKind.RETRY\n"
    )
    assert loaded.isdisjoint(DRIVER_DEPENDENCIES), loaded & set(DRIVER_DEPENDENCIES)


def test_the_governor_alone_loads_no_asyncio() -> None:
    loaded = loaded_after("import policyengine as pe\npe.Governor(pe.load_policy(env=False))")
    assert "asyncio" not in loaded


def test_the_driver_loads_when_used() -> None:
    loaded = loaded_after("import policyengine as pe\npe.Driver")
    assert {"policyengine._driver", "backoff"} <= loaded


@pytest.mark.parametrize(
    ("argv", "unloaded"),
    [
        (["--help"], ("policyengine._engine", "policyengine._loading", "importlib.metadata")),
        (["schema", "--path"], ("policyengine._engine", "policyengine._loading", "cattrs")),
        (["check"], ("policyengine._engine", "asyncio")),
        (["explain", "--status", "429"], ("asyncio", "policyengine._driver", "backoff")),
    ],
)
def test_each_command_loads_what_it_needs(argv: list[str], unloaded: tuple[str, ...]) -> None:
    loaded = loaded_after(
        "import contextlib, io\n"
        "from policyengine.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = main({argv!r})\n"
        "assert code == 0, code\n"
    )
    assert loaded.isdisjoint(unloaded), loaded & set(unloaded)
