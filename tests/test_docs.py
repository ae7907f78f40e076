"""The documentation does what it says.

Every ```python block of README.md and docs/policy.md runs (in a namespace
with a FakeGateway's `url`, `msgs`, the override files the text names, and
the helpers its sketches call), every ```toml block loads as an override of
the default, every ```console transcript whose commands are `policyengine`
gives the output shown (a line `...` stands for any lines), as does the
set-up's main job, and the reference's tables of defaults, classifications
and rules are the code's. The README's override example changes the
decisions it claims to change; every public name and every module is
documented; the counts the prose gives are the bundled policy's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import policyengine as pe
from policyengine._model import Defaults, Handling
from policyengine.cli.failures import make_failure
from policyengine.testing import FakeGateway, streamed, testing_mode

from .conftest import error_body

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
REFERENCE = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
DOCS = {"README.md": README, "docs/policy.md": REFERENCE}

#: Marks the next fenced block as a fragment that is not run (a few, each
#: saying why next to it).
NOT_RUN = "<!-- not run -->"


class Block:
    def __init__(self, doc: str, line: int, language: str, text: str, run: bool) -> None:
        self.doc, self.line, self.language, self.text, self.run = doc, line, language, text, run

    def __repr__(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(language: str) -> list[Block]:
    found = []
    for doc, text in DOCS.items():
        for m in re.finditer(rf"(?ms)^```{language}\n(.*?)^```\n", text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[: m.start()].rstrip().splitlines()[-1:] or [""]
            found.append(Block(doc, line, language, m.group(1), NOT_RUN not in before[0]))
    return found


def fenced(text: str, language: str) -> list[str]:
    """The bodies of the fenced code blocks of ``language`` in a Markdown text."""
    return re.findall(rf"(?ms)^```{language}\n(.*?)^```\n", text)


# --- python blocks -------------------------------------------------------------------


def readme_override(tmp_path: Path) -> str:
    (block,) = [b for b in fenced(README, "toml") if b.startswith("# prod.toml: layered")]
    path = tmp_path / "prod.toml"
    path.write_text(block, encoding="utf-8")
    return str(path)


@pytest.fixture
def namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """What the python blocks use without defining it."""
    readme_override(tmp_path)
    (tmp_path / "base.toml").write_text("[defaults]\nmax_attempts = 3\n", encoding="utf-8")
    deployment = (ROOT / "examples" / "deployment.toml").read_text(encoding="utf-8")
    (tmp_path / "deployment.toml").write_text(deployment, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with FakeGateway() as gateway, testing_mode(seed=1):
        # The SDKs' sketches name no server: each SDK's own variable points it
        # at the gateway, which answers in the dialect of the path.
        for name in ("OPENAI", "ANTHROPIC", "GROQ", "GOOGLE_GEMINI"):
            monkeypatch.setenv(f"{name}_BASE_URL", gateway.url)
        monkeypatch.setenv("OPENAI_BASE_URL", gateway.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")

        def http_post(url: str, body: dict[str, Any]) -> pe.Response:
            request = urllib.request.Request(
                url, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    return pe.Response(reply.status, reply.getheaders(), reply.read())
            except urllib.error.HTTPError as e:
                return pe.Response(e.code, e.headers.items(), e.read())

        def my_code_calling(url: str) -> None:
            import requests

            from policyengine.requests import PolicyAdapter

            session = requests.Session()
            session.mount("http://", PolicyAdapter(engine=pe.Engine(pe.load_policy(env=False))))
            session.post(url, json={"model": "gpt-4o", "messages": []}, timeout=10)

        from policyengine.openai import client

        stream_by_default = streamed()
        yield {
            "_gateway": gateway,
            "_streamed": stream_by_default,
            "llm": client(engine=pe.Engine(), api_key="sk-test", base_url=gateway.base_url),
            "show": lambda chunk: None,
            "screen": types.SimpleNamespace(clear=lambda: None),
            "url": gateway.chat_url,
            "base_url": gateway.base_url,
            "key": "sk-test",
            "msgs": [{"role": "user", "content": "hi"}],
            "body": {"model": "gpt-4o", "messages": []},
            "response": pe.Response(200, {}, b'{"id": "chatcmpl-1"}'),
            "http_post": http_post,
            "my_code_calling": my_code_calling,
            "counter": None,
            "pe": pe,  # every block's "import policyengine as pe"
            "__name__": "docs",
        }


def _run_python(text: str, namespace: dict[str, Any]) -> None:
    if re.search(r"(?m)^async with|\bawait ", text):  # top-level await: run it in a loop
        text = "async def _block():\n" + textwrap.indent(text, "    ") + "\nasyncio.run(_block())\n"
        namespace["asyncio"] = asyncio
    exec(compile(text, "<doc>", "exec"), namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            value()  # a block showing a test: the test passes


@pytest.mark.parametrize("block", blocks("python"), ids=repr)
def test_python_blocks_run(block: Block, namespace: dict[str, Any]) -> None:
    if not block.run:
        pytest.skip("marked <!-- not run -->")
    if "stream=True" in block.text:  # a streaming sketch: the gateway streams
        namespace["_gateway"].default = namespace["_streamed"]
    try:
        _run_python(block.text, namespace)
    except ModuleNotFoundError as e:  # an SDK not installed here (google-genai needs 3.11)
        if (e.name or "policyengine").split(".")[0] in ("policyengine", "tests"):
            raise
        pytest.skip(f"not installed here: {e.name}")


def test_few_blocks_are_not_run() -> None:
    skipped = [b for lang in ("python", "toml", "console") for b in blocks(lang) if not b.run]
    assert len(skipped) <= 2, skipped


# --- toml blocks ------------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks("toml"), ids=repr)
def test_toml_blocks_load_as_overrides(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "block.toml"
    path.write_text(block.text, encoding="utf-8")
    policy = pe.load_policy(path, env=False)
    assert policy.sources[-1] == str(path)


# --- console transcripts ----------------------------------------------------------------


def _transcript(text: str) -> list[tuple[str, list[str]]]:
    """``(command, expected output lines)`` of each ``$ `` line of a transcript."""
    steps: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        command = lines[i][2:]
        while command.endswith("\\"):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        steps.append((command, output))
    return steps


def _matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``expected`` where a line ``...`` stands for any lines."""
    pattern = "".join(
        "(?:.*\\n)*?" if line == "..." else re.escape(line) + "\\n" for line in expected
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


@pytest.mark.parametrize("block", blocks("console"), ids=repr)
def test_console_transcripts(block: Block, tmp_path: Path) -> None:
    if not block.run:
        pytest.skip("marked <!-- not run -->")
    prod = next(b for b in fenced(README, "toml") if b.startswith("# prod.toml\n"))
    (tmp_path / "prod.toml").write_text(prod, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != pe.ENV_VAR}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for command, expected in _transcript(block.text):
        if command.startswith("cat ") and "|" not in command:
            name = shlex.split(command)[1]
            (tmp_path / name).write_text("\n".join(expected) + "\n", encoding="utf-8")
            continue
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        actual = (done.stdout + done.stderr).splitlines()
        assert _matches(expected, actual), f"$ {command}\n" + "\n".join(actual)


# --- generated and checked reference tables ---------------------------------------------


GENERATED = re.compile(r"(?s)(<!-- generated: bundled policy -->\n)(.*?)(<!-- end generated -->)")


def bundled_reference(policy: pe.Policy) -> str:
    """The reference's tables of the bundled classifications and rules."""
    from policyengine._dumping import _outcome
    from policyengine._matching import CompiledRule

    out = [
        "| classification | action | retryable | max_attempts | backoff | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in policy.classifications.items():
        b = c.backoff
        out.append(
            f"| `{name}` | `{c.action.value}` | `{str(c.retryable).lower()}` | {c.max_attempts} "
            f"| {b.initial:g}s x{b.multiplier:g}, at most {b.max_delay:g}s | {c.description} |"
        )
    out += ["", "| rule | matches | classification | its own keys |", "|---|---|---|---|"]
    for i, rule in enumerate(policy.rules):
        own = _outcome(rule, policy.handling_of(rule.classification))
        own.pop("remediation", None)
        keys = ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in own.items()) or "-"
        matches = CompiledRule.compile(rule, i).describe().replace("|", "\\|")
        out.append(f"| `{rule.id}` | {matches} | `{rule.classification}` | {keys} |")
    return "\n".join(out) + "\n"


def test_the_bundled_tables_are_generated_from_the_policy() -> None:
    found = GENERATED.search(REFERENCE)
    assert found is not None
    assert found.group(2) == bundled_reference(pe.load_policy(env=False)), (
        "docs/policy.md is stale: run python -m tests.test_docs"
    )


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "value"):
        return json.dumps(value.value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return repr(value)


def test_the_defaults_table_is_the_codes() -> None:
    section = REFERENCE[REFERENCE.index("| key | type | built-in default | bundled policy |") :]
    rows = section.split("\n\n")[0].splitlines()[2:]
    built_in, bundled = Defaults(), pe.load_policy(env=False).defaults
    keys = [f.name for f in attrs.fields(Defaults) if f.name != "backoff"]
    keys += [f"backoff.{f.name}" for f in attrs.fields(pe.Backoff)]
    assert sorted(r.split(" | ")[0].strip("| `") for r in rows) == sorted(keys)
    for row in rows:
        key, _, shown_built_in, shown_bundled = (c.strip("| ") for c in row.split(" | ")[:4])
        key = key.strip("`")
        if key == "retryable":
            assert shown_built_in == shown_bundled == "follows `action`"
            assert Handling().retryable is False and bundled.retryable is False
            continue
        expected = []
        for policy in (built_in, bundled):
            value: Any = policy
            for part in key.split("."):
                value = getattr(value, part)
            expected.append(f"`{_shown(value)}`")
        assert [shown_built_in, shown_bundled] == expected, key


# --- the README's override --------------------------------------------------------------


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


# --- what the prose counts and measures -------------------------------------------------


NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]


def test_the_counts_in_the_prose_are_the_bundled_policys() -> None:
    default = pe.default_policy_path()
    text = default.read_text(encoding="utf-8")
    # A self-test citing its source: a "# source:" comment just before it.
    cited = len(re.findall(r"(?m)^# source:.*\n(?:#.*\n)*\[\[tests\]\]$", text))
    assert f"carries a self-test for each of these, {cited} of them" in README
    sources = len(pe.load_policy(env=False).hints.sources)
    assert f"(the default policy lists {NUMBERS[sources]})" in REFERENCE
    size = re.search(r"bundled default is about (\d+) KB", REFERENCE)
    assert size is not None
    assert abs(int(size.group(1)) * 1000 - default.stat().st_size) <= 5000


def test_the_set_up_is_two_commands_and_the_main_job_prints_what_is_shown() -> None:
    setup = README[README.index("## Set-up") : README.index("## Quick start")]
    install, tests = fenced(setup, "sh")
    (shown,) = fenced(setup, "text")
    steps = install.strip().split(" && ")
    assert steps[:2] == ["python3 -m venv .venv", ".venv/bin/pip install -q -e '.[test]'"]
    main_job = " && ".join(steps[2:]).replace(".venv/bin/policyengine", "policyengine", 1)
    env = {k: v for k, v in os.environ.items() if k != pe.ENV_VAR}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", "-c", main_job], env=env, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, shown)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert tests.strip() == ci[-1]  # the test command is CI's last


def test_every_public_name_is_documented() -> None:
    both = README + REFERENCE
    assert [n for n in pe.__all__ if not re.search(rf"\bpe\.{n}\b", both)] == []


def test_the_module_map_names_every_module() -> None:
    package = ROOT / "policyengine"
    modules = [p.stem for p in package.glob("*.py") if not p.stem.startswith("__")]
    modules += [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()]
    modules.remove("cli/")  # a bullet of its own, module by module
    layout = README[README.index("| stage | modules |") : README.index("- The command line is")]
    assert [m for m in modules if f"`{m}`" not in layout] == []
    cli = README[README.index("- The command line is") : README.index("- The documentation is")]
    commands = [p.stem for p in (package / "cli").glob("*.py") if not p.stem.startswith("__")]
    assert [m for m in commands if f"`{m}" not in cli] == []


if __name__ == "__main__":  # python -m tests.test_docs: write the generated tables
    path = ROOT / "docs" / "policy.md"
    table = bundled_reference(pe.load_policy(env=False))
    path.write_text(GENERATED.sub(lambda m: m.group(1) + table + m.group(3), REFERENCE), "utf-8")
