"""The documentation does what it says: the README's override example
changes the decisions it claims to change."""

from __future__ import annotations

import re
from pathlib import Path

import policyengine as pe
from policyengine.cli.failures import make_failure

from .conftest import error_body

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced(text: str, language: str) -> list[str]:
    """The bodies of the fenced code blocks of ``language`` in a Markdown text."""
    return re.findall(rf"(?ms)^```{language}\n(.*?)^```\n", text)


def readme_override(tmp_path: Path) -> str:
    (block,) = [b for b in fenced(README, "toml") if b.startswith("# prod.toml: layered")]
    path = tmp_path / "prod.toml"
    path.write_text(block, encoding="utf-8")
    return str(path)


QUICK_START_429 = pe.Response(
    429,
    {"Retry-After": "2"},
    error_body("Rate limit exceeded", "requests", "rate_limit_exceeded"),
)


def test_the_readme_override_raises_rate_limit_retries(tmp_path: Path) -> None:
    default = pe.Engine(pe.load_policy(env=False))
    prod = pe.Engine(pe.load_policy(readme_override(tmp_path), env=False))
    # The quick start's 429 on its fifth attempt: the default gives up...
    assert default.evaluate(QUICK_START_429, attempt=5).kind is pe.ActionKind.FAIL
    # ...the override retries, as it says, up to eight attempts in all...
    again = prod.evaluate(QUICK_START_429, attempt=5)
    assert (again.kind, again.delay, again.rule_id) == (
        pe.ActionKind.RETRY,
        2.0,
        "rate-limit-exceeded",
    )
    assert prod.evaluate(QUICK_START_429, attempt=8).kind is pe.ActionKind.FAIL
    # ...whichever rate-limit rule decides: by status, by code or by type.
    event = b'data: {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}'
    by_type = pe.Response(200, {}, event + b"\n\n")  # an error event after a 200
    for response, rule in ((pe.Response(429), "rate-limit"), (by_type, "rate-limit-type")):
        action = prod.evaluate(response, attempt=7)
        assert (action.kind, action.rule_id) == (pe.ActionKind.RETRY, rule)
        assert prod.policy.rule(rule).backoff.max_delay == 60.0


def test_the_readme_override_falls_back_and_adds_a_rule(tmp_path: Path) -> None:
    prod = pe.Engine(pe.load_policy(readme_override(tmp_path), env=False))
    context = pe.Response(
        400,
        {},
        error_body(
            "This model's maximum context length is 8192 tokens", None, "context_length_exceeded"
        ),
    )
    switched = prod.evaluate(context, model="gpt-4o")
    assert (switched.kind, switched.fallback) == (pe.ActionKind.FALLBACK, "gpt-4.1")
    # gpt-4.1 was the last of its chain: the same model is not tried again.
    assert prod.evaluate(context, attempt=2, model="gpt-4.1").kind is pe.ActionKind.FAIL
    unavailable = prod.evaluate(pe.Response(503), model="gpt-4o")
    assert unavailable.fallback == "gpt-4o-mini"
    read_timeout = make_failure("read_timeout")
    post = prod.evaluate(read_timeout, method="POST")
    assert (post.kind, post.rule_id) == (pe.ActionKind.FAIL, "no-post-retry-after-read-timeout")
    assert prod.evaluate(read_timeout, method="GET").kind is pe.ActionKind.RETRY
