"""policyengine: retry, backoff and fallback decisions for HTTP and LLM API
errors, as data.

    >>> import policyengine as pe
    >>> engine = pe.Engine()
    >>> action = engine.evaluate(pe.Response(429, {"Retry-After": "2"}, b""))
    >>> action.kind, action.delay
    (<ActionKind.RETRY: 'retry'>, 2.0)
"""

from ._delay import parse_retry_after
from ._driver import Attempt, Decision, Driver, GaveUp, Outcome, Override, overriding
from ._dumping import dump_policy
from ._engine import Engine
from ._errors import PolicyError, Problem
from ._layers import ENV_VAR, default_policy_path
from ._loading import load_policy
from ._model import (
    PLACEHOLDERS,
    Action,
    ActionDetails,
    ActionKind,
    Backoff,
    Defaults,
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
from ._redact import redact
from ._transport import transport_kind

__all__ = [
    "Action",
    "ActionDetails",
    "ActionKind",
    "Attempt",
    "Backoff",
    "Decision",
    "Defaults",
    "Driver",
    "ENV_VAR",
    "Engine",
    "GaveUp",
    "HintFormat",
    "HintSource",
    "Hints",
    "Jitter",
    "LongHint",
    "Match",
    "Outcome",
    "Override",
    "PLACEHOLDERS",
    "ParsedError",
    "Policy",
    "PolicyError",
    "PolicyTest",
    "Problem",
    "Response",
    "Rule",
    "StaticDetails",
    "default_policy_path",
    "dump_policy",
    "load_policy",
    "overriding",
    "parse_retry_after",
    "redact",
    "transport_kind",
]

__version__ = "0.1.0"
