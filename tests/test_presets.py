"""Provider presets: where providers disagree on a status, a named layer
over the default decides as that provider means it, and carries its own
self-tests."""

from __future__ import annotations

import pytest

import policyengine as pe
from policyengine.cli.lint import lint
from policyengine.cli.selftest import run_tests

from .conftest import error_body

PRESETS = ["deepseek", "groq", "openrouter"]


def test_the_bundled_presets() -> None:
    assert pe.preset_names() == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_is_clean_and_its_tests_pass(name: str) -> None:
    policy = pe.load_policy(f"preset:{name}", env=False)
    assert lint(policy) == []
    report = run_tests(policy, only_files={f"<preset:{name}>"})
    assert report.results, "a preset carries tests of its own"
    assert report.failed == 0, [r.name for r in report.results if not r.ok]
    everything = run_tests(policy)  # the default's tests too (some overridden by name)
    assert everything.failed == 0, [r.name for r in everything.results if not r.ok]


def test_an_unknown_preset_is_named() -> None:
    with pytest.raises(pe.PolicyError) as caught:
        pe.load_policy("preset:open-router", env=False)
    assert str(caught.value) == (
        "preset:open-router: no such preset (did you mean 'openrouter'?); "
        "known: deepseek, groq, openrouter"
    )


def _decide(layers: tuple[str, ...], status: int, body: bytes, **kw: object) -> pe.Action:
    return pe.Engine(pe.load_policy(*layers, env=False)).evaluate(
        pe.Response(status, {}, body),
        **kw,  # type: ignore[arg-type]
    )


def test_presets_change_what_providers_disagree_on() -> None:
    none = error_body("There is no available model provider that meets your routing requirements")
    # OpenRouter's 503: the default retries the same model; the preset does not.
    assert _decide((), 503, none, model="m").kind is pe.ActionKind.RETRY
    assert _decide(("preset:openrouter",), 503, none, model="m").kind is pe.ActionKind.FAIL
    # DeepSeek's 503 is an overload to wait out on the same model, even with a chain.
    chain = {"defaults": {"fallback": ["b"]}}
    busy = error_body("Service Unavailable", "server_error")
    assert _decide((chain,), 503, busy, model="a").kind is pe.ActionKind.FALLBACK  # type: ignore[arg-type]
    deepseek = _decide(("preset:deepseek", chain), 503, busy, model="a")  # type: ignore[arg-type]
    assert (deepseek.kind, deepseek.classification) == (pe.ActionKind.RETRY, "overloaded")
    # ...and its 429 switches provider first.
    limited = _decide(("preset:deepseek", chain), 429, error_body("Rate Limit Reached"), model="a")  # type: ignore[arg-type]
    assert (limited.kind, limited.fallback) == (pe.ActionKind.FALLBACK, "b")
    # Groq's 422 gets one more attempt; Mistral's and DeepSeek's do not.
    assert _decide((), 422, error_body("Unprocessable Entity")).kind is pe.ActionKind.FAIL
    assert _decide(("preset:groq",), 422, error_body("x")).kind is pe.ActionKind.RETRY


def test_presets_layer_like_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pe.ENV_VAR, "preset:deepseek")
    assert pe.load_policy().sources[-1].endswith("deepseek.toml")
    assert pe.load_policy("preset:groq", env=False).sources[-1].endswith("groq.toml")
