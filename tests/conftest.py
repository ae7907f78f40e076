from __future__ import annotations

import json
import random
from typing import Any

import pytest

import policyengine as pe

#: A fixed "now" for HTTP-date hints: 2026-11-25T12:00:00Z.
NOW = 1795608000.0


def error_body(message: str = "", type: str | None = None, code: Any = None, **extra: Any) -> bytes:
    """The seed doc's error body: {"error": {"message", "type", "code"}}."""
    err: dict[str, Any] = {"message": message, "type": type, "code": code, **extra}
    return json.dumps({"error": err}).encode()


@pytest.fixture(autouse=True)
def _no_env_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no deployment override unless they set one."""
    monkeypatch.delenv(pe.ENV_VAR, raising=False)


@pytest.fixture(scope="session")
def default_policy() -> pe.Policy:
    return pe.load_policy(env=False)


@pytest.fixture
def engine(default_policy: pe.Policy) -> pe.Engine:
    return pe.Engine(default_policy, clock=lambda: NOW, rng=random.Random(1234))


@pytest.fixture(scope="module", params=["stdlib", "msgspec"])
def json_parser(request: pytest.FixtureRequest) -> Any:
    """The tests of a module that uses this run once with each JSON parser:
    the stdlib's alone, and msgspec (the ``fast`` extra) in front of it."""
    from policyengine import _json

    saved = _json._fast
    if request.param == "stdlib":
        _json._fast = None
    else:
        pytest.importorskip("msgspec")
        _json._fast = _json._UNSET
        assert _json.fast_decoder() is not None
    yield request.param
    _json._fast = saved
