"""Every example runs offline (it starts the fake gateway itself) and exits 0."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_the_examples_are_there() -> None:
    expected = {
        "requests_example.py",
        "httpx_sync.py",
        "httpx_async.py",
        "aiohttp_example.py",
        "openai_sdk.py",
        "anthropic_sdk.py",
        "gemini_sdk.py",
        "groq_sdk.py",
        "frameworks.py",
        "driver.py",
    }
    assert expected <= set(SCRIPTS)
    assert (EXAMPLES / "deployment.toml").is_file()


def missing_modules(script: str) -> list[str]:
    """The third-party modules ``script`` imports that are not installed (on
    Python 3.10, google-genai and pydantic-ai, which need 3.11)."""
    text = (EXAMPLES / script).read_text(encoding="utf-8")
    missing = []
    for name in dict.fromkeys(re.findall(r"(?m)^(?:from|import) ([\w.]+)", text)):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in ("policyengine", "__future__"):
            continue
        # "google" is a namespace package: look for the package under it.
        if _find(".".join(name.split(".")[:2]) if top == "google" else top) is None:
            missing.append(name)
    return missing


def _find(name: str) -> object:
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # its parent is not there either
        return None


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_offline(script: str) -> None:
    if missing := missing_modules(script):
        pytest.skip(f"not installed here: {', '.join(missing)}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYENGINE_")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=EXAMPLES.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "->" in done.stdout or "attempt" in done.stdout


def test_deployment_override_loads_with_what_the_examples_use() -> None:
    import policyengine as pe

    policy = pe.load_policy(EXAMPLES / "deployment.toml", env=False)
    assert policy.rule("upstream-unavailable").fallback == ("gpt-4o-mini", "claude-3-5-haiku")
    assert policy.rule("post-read-timeout").match.method == ("POST",)
