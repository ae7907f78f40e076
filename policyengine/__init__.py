"""policyengine: retry, backoff and fallback decisions for HTTP and LLM API
errors, as data.

    >>> import policyengine as pe
    >>> engine = pe.Engine()
    >>> action = engine.evaluate(pe.Response(429, {"Retry-After": "2"}, b""))
    >>> action.kind, action.delay
    (<ActionKind.RETRY: 'retry'>, 2.0)

Every name is imported from its module when first used (PEP 562), so that
``import policyengine`` costs next to nothing, and the engine never pulls in
asyncio, ``backoff`` or the driver: a program that only decides pays only for
deciding.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._adapting import ModelInBody, ModelInPath
    from ._bundled import default_policy_path
    from ._delay import parse_retry_after
    from ._driver import Driver
    from ._dumping import dump_policy
    from ._engine import Engine
    from ._errors import GaveUp, PolicyError, Problem, StreamInterrupted
    from ._governor import Governor, TrafficKey
    from ._layers import ENV_VAR
    from ._loading import load_policy, preset_names
    from ._model import (
        PLACEHOLDERS,
        Action,
        ActionDetails,
        ActionKind,
        Backoff,
        Classification,
        Defaults,
        Facts,
        HintFormat,
        Hints,
        HintSource,
        Jitter,
        LongHint,
        Match,
        ParsedError,
        Policy,
        PolicyTest,
        Response,
        Rule,
        StaticDetails,
    )
    from ._overrides import Override, overriding
    from ._redact import redact
    from ._restart import arestarting, restarting
    from ._results import Attempt, Decision, Outcome
    from ._transport import transport_kind
    from ._watch import PolicyWatcher

__all__ = [
    "Action",
    "ActionDetails",
    "ActionKind",
    "Attempt",
    "Backoff",
    "Classification",
    "Decision",
    "Defaults",
    "Driver",
    "ENV_VAR",
    "Engine",
    "Facts",
    "GaveUp",
    "Governor",
    "HintFormat",
    "HintSource",
    "Hints",
    "Jitter",
    "LongHint",
    "Match",
    "ModelInBody",
    "ModelInPath",
    "Outcome",
    "Override",
    "PLACEHOLDERS",
    "ParsedError",
    "Policy",
    "PolicyError",
    "PolicyTest",
    "PolicyWatcher",
    "Problem",
    "Response",
    "Rule",
    "StaticDetails",
    "StreamInterrupted",
    "TrafficKey",
    "arestarting",
    "default_policy_path",
    "dump_policy",
    "load_policy",
    "overriding",
    "parse_retry_after",
    "preset_names",
    "redact",
    "restarting",
    "transport_kind",
]


#: Where each public name lives: the module imported when it is first used.
_WHERE = {
    "Action": "_model",
    "ActionDetails": "_model",
    "ActionKind": "_model",
    "Attempt": "_results",
    "Backoff": "_model",
    "Classification": "_model",
    "Decision": "_results",
    "Defaults": "_model",
    "Driver": "_driver",
    "ENV_VAR": "_layers",
    "Engine": "_engine",
    "Facts": "_model",
    "GaveUp": "_errors",
    "Governor": "_governor",
    "HintFormat": "_model",
    "HintSource": "_model",
    "Hints": "_model",
    "Jitter": "_model",
    "LongHint": "_model",
    "Match": "_model",
    "ModelInBody": "_adapting",
    "ModelInPath": "_adapting",
    "Outcome": "_results",
    "Override": "_overrides",
    "PLACEHOLDERS": "_model",
    "ParsedError": "_model",
    "Policy": "_model",
    "PolicyError": "_errors",
    "PolicyTest": "_model",
    "PolicyWatcher": "_watch",
    "Problem": "_errors",
    "Response": "_model",
    "Rule": "_model",
    "StaticDetails": "_model",
    "StreamInterrupted": "_errors",
    "TrafficKey": "_governor",
    "arestarting": "_restart",
    "default_policy_path": "_bundled",
    "dump_policy": "_dumping",
    "load_policy": "_loading",
    "overriding": "_overrides",
    "parse_retry_after": "_delay",
    "preset_names": "_loading",
    "redact": "_redact",
    "restarting": "_restart",
    "transport_kind": "_transport",
}


def __getattr__(name: str) -> _typing.Any:
    where = _WHERE.get(name)
    if where is not None:
        value = getattr(_importlib.import_module(f"{__name__}.{where}"), name)
        globals()[name] = value  # found: the next look-up is a plain one
        return value
    # __version__ comes from the installed package's metadata, read on first
    # use: importlib.metadata costs more to import than the rest of us.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("policyengine")
        except PackageNotFoundError:  # pragma: no cover - a source tree not installed
            return "0+unknown"
    raise AttributeError(f"module 'policyengine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
