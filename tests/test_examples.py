"""Every example runs offline (it starts the fake gateway itself) and exits 0."""

from __future__ import annotations

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


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_offline(script: str) -> None:
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
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", done.stderr)
    if done.returncode and missing and not missing.group(1).startswith("policyengine"):
        # An SDK not installed here (google-genai and pydantic-ai need Python 3.11).
        pytest.skip(f"not installed here: {missing.group(1)}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "->" in done.stdout or "attempt" in done.stdout


def test_deployment_override_loads_with_what_the_examples_use() -> None:
    import policyengine as pe

    policy = pe.load_policy(EXAMPLES / "deployment.toml", env=False)
    assert policy.rule("upstream-unavailable").fallback == ("gpt-4o-mini", "claude-3-5-haiku")
    assert policy.rule("post-read-timeout").match.method == ("POST",)
