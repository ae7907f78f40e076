"""Fixtures for the adapter tests: a fake gateway on 127.0.0.1 and testing mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import policyengine as pe
from policyengine.testing import FakeGateway, TestingMode, testing_mode

#: What the fallback tests fall back to.
BACKUP = "backup-model"

#: A deployment layer: fallback chains, and no retry of a POST that timed out
#: while reading (the server may have acted on it).
DEPLOYMENT = {
    "rules": [
        {"id": "upstream-unavailable", "fallback": [BACKUP]},
        # Anthropic's 529 and Gemini's 503 say "overloaded": the same chain.
        {"id": "overloaded-message", "action": "fallback", "fallback": [BACKUP]},
        {"id": "model-not-found", "fallback": [BACKUP]},
        {
            "id": "post-read-timeout",
            "match": {"transport": "read_timeout", "method": "POST"},
            "classification": "timeout",
            "remediation": "A POST timed out while reading; it is not retried.",
        },
    ]
}


@pytest.fixture(autouse=True)
def _loopback_without_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy set in the environment must not see the fake gateway's traffic."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway() as running:
        yield running


@pytest.fixture
def testing() -> Iterator[TestingMode]:
    with testing_mode(seed=7) as mode:
        yield mode


@pytest.fixture(scope="session")
def default_engine() -> pe.Engine:
    return pe.Engine(pe.load_policy(env=False))


@pytest.fixture(scope="session")
def deployment_engine() -> pe.Engine:
    return pe.Engine(pe.load_policy(DEPLOYMENT, env=False))
