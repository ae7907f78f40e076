"""policyengine: retry, backoff and fallback decisions for HTTP and LLM API
errors, as data.

    >>> import policyengine as pe
    >>> engine = pe.Engine()
    >>> action = engine.evaluate(pe.Response(429, {"Retry-After": "2"}, b""))
    >>> action.kind, action.delay
    (<ActionKind.RETRY: 'retry'>, 2.0)
"""

from ._adapting import ModelInBody, ModelInPath
from ._delay import parse_retry_after
from ._driver import Driver
from ._dumping import dump_policy
from ._engine import Engine
from ._errors import GaveUp, PolicyError, Problem, StreamInterrupted
from ._governor import Governor, TrafficKey
from ._layers import ENV_VAR, default_policy_path
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


def __getattr__(name: str) -> str:
    # __version__ comes from the installed package's metadata, read on first
    # use: importlib.metadata costs more to import than the rest of us.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("policyengine")
        except PackageNotFoundError:  # pragma: no cover - a source tree not installed
            return "0+unknown"
    raise AttributeError(f"module 'policyengine' has no attribute {name!r}")
