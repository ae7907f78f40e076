"""The values: a policy and its rules, a response, a parsed error, an action.

Everything here is a frozen, slotted attrs class. Validation of a policy
*file* happens in ``_converter`` and ``_loading`` (so every problem can be
reported with its key path); the classes here only describe shapes and
defaults. One job (the shapes), in one module so that the whole format can be
read in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, NewType, Protocol

import attrs

from ._headers import index_headers

__all__ = [
    "AmendedDetails",
    "Sticky",
    "RetryBudget",
    "Limiter",
    "KeyPart",
    "Governor",
    "Breaker",
    "Classification",
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX_DELAY",
    "DEFAULT_BACKOFF_MULTIPLIER",
    "DEFAULT_HINT_MAX",
    "DeferredMapping",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_ELAPSED",
    "PLACEHOLDERS",
    "Action",
    "ActionDetails",
    "ActionKind",
    "Backoff",
    "Defaults",
    "Expect",
    "Facts",
    "HintFormat",
    "HintSource",
    "Hints",
    "Jitter",
    "LongHint",
    "Match",
    "Handling",
    "ParsedError",
    "Policy",
    "PolicyTest",
    "Response",
    "Rule",
    "StaticDetails",
    "StatusRange",
    "TestResponse",
    "follows_action",
]

# Named scalar types. They are plain floats / ints / strs at run time; the
# loader registers one structure hook per name so that a bad value is reported
# with its key path and a message of ours ("expected a number >= 0").
Seconds = NewType("Seconds", float)
"""A finite number of seconds, >= 0."""
Amount = NewType("Amount", float)
"""A finite number >= 0 (not of seconds: a ratio, a count of tokens)."""
Multiplier = NewType("Multiplier", float)
"""A finite number >= 1."""
Attempts = NewType("Attempts", int)
"""A whole number >= 1."""
Count = NewType("Count", int)
"""A whole number >= 0."""
Name = NewType("Name", str)
"""A non-empty string without surrounding white space."""
Pattern = NewType("Pattern", str)
"""A Python regular expression, compiled (and so checked) at load."""
Template = NewType("Template", str)
"""Text with ``{placeholder}`` fields from ``PLACEHOLDERS``."""
BodyPath = NewType("BodyPath", str)
"""A path to a field of an error object: ``details[].retryDelay``; "" = none."""
Method = NewType("Method", str)
"""An HTTP method name, upper case."""
TransportKind = NewType("TransportKind", str)
"""A kind or family of network failure (``timeout``, ``read_timeout``, ...)."""

#: Backoff starts here: the first retry waits about this long (seconds).
DEFAULT_BACKOFF_INITIAL = 0.5
#: Each further retry waits this many times longer.
DEFAULT_BACKOFF_MULTIPLIER = 2.0
#: No computed backoff is longer than this (seconds).
DEFAULT_BACKOFF_MAX_DELAY = 8.0
#: Attempts in all, the first included: 3 means at most 2 retries. 1 = never retry.
DEFAULT_MAX_ATTEMPTS = 3
#: Give up rather than wait past this many seconds since the first attempt. 0 = no limit.
DEFAULT_MAX_ELAPSED = 60.0
#: A server wait hint longer than this is "long": the rule's on_long_hint decides.
DEFAULT_HINT_MAX = 60.0

#: The fields a remediation template may use. One that has no value for a
#: given response renders as "(unknown)"; an unknown name is a load error.
PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "status",  # HTTP status, e.g. 429
        "code",  # the error code from the body, e.g. rate_limit_exceeded
        "type",  # the error type from the body, e.g. invalid_request_error
        "message",  # the error message from the body (secrets redacted)
        "param",  # the offending parameter, if the body names one
        "model",  # the model: as passed to evaluate(), else taken from the message
        "limit",  # a limit stated in the message (e.g. the context length in tokens)
        "requested",  # an amount the message says was requested (e.g. tokens)
        "retry_after",  # the server's wait hint in seconds
        "delay",  # the delay this action asks for, in seconds
        "attempt",  # attempts made so far
        "max_attempts",  # the rule's attempt budget
        "classification",  # the rule's classification
        "rule_id",  # the rule's id
        "fallback",  # the model to switch to
        "transport",  # the kind of network failure, e.g. read_timeout
    }
)


def _read_only(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy, so that a frozen value holding a mapping stays frozen."""
    if isinstance(mapping, DeferredMapping):
        return mapping  # read-only already, and made only when read
    return MappingProxyType(dict(mapping or {}))


class DeferredMapping(Mapping[str, str]):
    """A read-only mapping of text made by ``make`` when it is first read: a
    policy's ``origins`` formats a key path for every key of every file (some
    1,600 for the bundled policy, 2 ms of a first load), which only the
    command line and explanations of where a value came from ever read."""

    __slots__ = ("_made", "_make")

    def __init__(self, make: Callable[[], dict[str, str]]) -> None:
        self._make: Callable[[], dict[str, str]] | None = make
        self._made: Mapping[str, str] | None = None

    def _mapping(self) -> Mapping[str, str]:
        made = self._made
        if made is None:  # (two threads may both make it: alike)
            make = self._make
            made = self._made  # made meanwhile, before _make was dropped
            if made is None:
                made = MappingProxyType(make() if make is not None else {})
                self._made = made
                self._make = None
        return made

    def __getitem__(self, key: str) -> str:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __repr__(self) -> str:
        return repr(dict(self._mapping()))


class _TextEnum(str, enum.Enum):
    """An enum of strings that prints as its value (``str(ActionKind.RETRY) == "retry"``)."""

    def __str__(self) -> str:
        return str(self.value)


class ActionKind(_TextEnum):
    """What the caller should do next."""

    SUCCEED = "succeed"
    RETRY = "retry"
    FALLBACK = "fallback"
    FAIL = "fail"


class Jitter(_TextEnum):
    """How randomness is mixed into a computed backoff ``d``.

    - ``none``: exactly ``d``.
    - ``full``: uniform in ``[0, d]``.
    - ``equal``: uniform in ``[d/2, d]``.
    - ``decorrelated``: uniform in ``[initial, 3*d]``, capped at ``max_delay``.
    """

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


class LongHint(_TextEnum):
    """What to do when a server asks to wait longer than ``hint_max``.

    - ``fail``: give up, with the server's wait in ``Action.delay``.
    - ``honour``: wait as asked (still bounded by ``max_elapsed``).
    - ``clamp``: wait ``hint_max`` only.
    - ``fallback``: switch to the next fallback model now; fail if there is none.
    """

    FAIL = "fail"
    HONOUR = "honour"
    CLAMP = "clamp"
    FALLBACK = "fallback"


class HintFormat(_TextEnum):
    """How the value of a wait-hint header is read.

    - ``retry-after``: RFC 9110 ``Retry-After``: delta-seconds or an HTTP-date.
    - ``seconds`` / ``milliseconds``: a number of seconds / milliseconds to wait.
    - ``duration``: a Go duration such as ``6m0s``, ``1.5s``, ``250ms``.
    - ``epoch-seconds`` / ``epoch-milliseconds``: an absolute Unix time to wait until.
    - ``rfc3339``: an absolute timestamp such as ``2026-11-25T13:00:00Z``.
    """

    RETRY_AFTER = "retry-after"
    SECONDS = "seconds"
    MILLISECONDS = "milliseconds"
    DURATION = "duration"
    EPOCH_SECONDS = "epoch-seconds"
    EPOCH_MILLISECONDS = "epoch-milliseconds"
    RFC3339 = "rfc3339"


@attrs.frozen(order=True)
class StatusRange:
    """An inclusive range of HTTP statuses; ``StatusRange(429, 429)`` is one status."""

    low: int
    high: int

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and self.low <= status <= self.high

    @property
    def exact(self) -> bool:
        return self.low == self.high

    def __str__(self) -> str:
        if self.exact:
            return str(self.low)
        if self.low % 100 == 0 and self.high == self.low + 99:
            return f"{self.low // 100}xx"
        return f"{self.low}-{self.high}"


@attrs.frozen
class Backoff:
    """Exponential backoff: attempt ``n`` waits ``initial * multiplier**(n-1)``,
    capped at ``max_delay``, then jittered.

    ``initial = 0`` retries at once; ``multiplier = 1`` waits the same every time.
    """

    initial: Seconds = Seconds(DEFAULT_BACKOFF_INITIAL)
    multiplier: Multiplier = Multiplier(DEFAULT_BACKOFF_MULTIPLIER)
    max_delay: Seconds = Seconds(DEFAULT_BACKOFF_MAX_DELAY)
    jitter: Jitter = Jitter.EQUAL


@attrs.frozen
class Match:
    """The conditions of a rule; all given ones must hold. An empty match matches
    everything (a catch-all).

    Attributes:
        status: HTTP statuses, as exact codes and ranges (``429``, ``"5xx"``,
            ``"500-599"``, or a list of these).
        code: Error codes from the body (any of them).
        type: Error types from the body (any of them).
        message: Case-insensitive substrings of the error message (any of them).
        message_regex: A regular expression searched in the error message.
        headers: Header name -> ``true`` (present), ``false`` (absent) or a
            value (equal, ignoring case and surrounding space).
        method: Request methods (any of them), upper case.
        transport: Network failure kinds: ``timeout`` or ``connection`` (any
            kind of either) or a precise kind such as ``read_timeout``.
        error: ``true``: the body carries an error object; ``false``: it does not.
    """

    status: tuple[StatusRange, ...] = ()
    code: tuple[str, ...] = ()
    type: tuple[str, ...] = ()
    message: tuple[str, ...] = ()
    message_regex: Pattern | None = None
    headers: Mapping[str, bool | str] = attrs.field(factory=dict, converter=_read_only)
    method: tuple[Method, ...] = ()
    transport: tuple[TransportKind, ...] = ()
    error: bool | None = None


def follows_action(handling: Handling) -> bool:
    """The ``retryable`` an action implies when none is given: ``retry``
    retries (true); ``fail`` and ``succeed`` do not (false). ``fallback``
    implies neither (whether to retry once the chain is used up): it keeps
    what it inherits, false when nothing is inherited."""
    return handling.action is ActionKind.RETRY


@attrs.frozen
class Handling:
    """What to do with a response: the outcome keys that ``[defaults]``, a
    ``[classifications.<name>]`` table and a rule may each set.

    A rule takes each key it does not set from its classification's table,
    then from ``[defaults]``, then from the built-in default. ``retryable``
    follows an ``action`` given with it (``retry``: true; ``fail``,
    ``succeed``: false) unless given too; ``fallback`` keeps the inherited
    one. See the policy reference (docs/policy.md) for what each key means.
    """

    action: ActionKind = ActionKind.FAIL
    retryable: bool = attrs.field(default=attrs.Factory(follows_action, takes_self=True))
    backoff: Backoff = Backoff()
    max_attempts: Attempts = Attempts(DEFAULT_MAX_ATTEMPTS)
    max_elapsed: Seconds = Seconds(DEFAULT_MAX_ELAPSED)
    hint_max: Seconds = Seconds(DEFAULT_HINT_MAX)
    on_long_hint: LongHint = LongHint.FAIL
    use_hints: bool = True
    honour_should_retry: bool = True
    fallback: tuple[str, ...] = ()
    retries_before_fallback: Count = Count(0)
    remediation: Template = Template("")


@attrs.frozen
class Defaults(Handling):
    """``[defaults]``: the outcome of every rule and classification, for each
    key it does not set itself; ``classification`` names a rule's
    classification when the rule does not."""

    classification: Name = Name("unknown")


@attrs.frozen
class Classification(Handling):
    """``[classifications.<name>]``: what to do with every response a rule of
    this classification matches (rules say what a response *is*; a
    classification says what to *do* with it). Its keys are those of
    ``[defaults]`` but ``classification``, and each one it does not set comes
    from ``[defaults]``."""

    description: str = ""


@attrs.frozen(kw_only=True)
class Rule(Handling):
    """A match and the classification it gives. Omitted outcome keys come
    from the classification's table, then from ``[defaults]``, when the
    policy loads, so a loaded rule is complete."""

    id: Name
    classification: Name = Name("unknown")
    match: Match = Match()
    enabled: bool = True
    description: str = ""


@attrs.frozen
class HintSource:
    """Where a server says how long to wait: a response header, the error
    message, or a field of the error object in the body (give exactly one of
    ``header``, ``message`` and ``body``).

    Attributes:
        header: The header's name (any case).
        message: A regular expression searched in the error message; its
            first group (else the whole match) is the value, as in "Please try
            again in 3.89s".
        body: A path to a field of the error object (the one holding
            ``message``): names joined by dots, ``[]`` after a name for any
            item of an array there, as in ``details[].retryDelay`` (Google's
            ``RetryInfo``) or ``retry_after``.
        format: How the value is read.
        when: Other headers that must hold for this one to count, as in
            ``match.headers``: name -> ``true`` (present), ``false`` (absent) or
            a value. A rate-limit reset time is a wait only when the budget is
            spent: ``when = { "x-ratelimit-remaining-requests" = "0" }``.
    """

    header: str = ""
    message: Pattern | None = None
    body: BodyPath = BodyPath("")
    format: HintFormat = HintFormat.SECONDS
    when: Mapping[str, bool | str] = attrs.field(factory=dict, converter=_read_only)


@attrs.frozen
class Hints:
    """Where server wait hints come from.

    Attributes:
        sources: Headers to read, in priority order: the first one present with
            a usable value wins.
        should_retry_header: A header whose ``true`` / ``false`` overrides
            whether the error is retryable (rules may opt out with
            ``honour_should_retry = false``). Empty: ignore it.
    """

    sources: tuple[HintSource, ...] = ()
    should_retry_header: str = "x-should-retry"


#: A new key: the other callers wait at most this long for its first answer.
DEFAULT_FIRST_CONTACT = 1.0
#: Retries may add this fraction of a key's first attempts.
DEFAULT_RETRY_RATIO = 0.2
#: Retries always allowed before the ratio applies (and the most saved up).
DEFAULT_RETRY_BURST = 10.0
#: Consecutive transient failures (across callers) that open a key's circuit.
DEFAULT_BREAKER_FAILURES = 5
#: An opened circuit waits this long before its first probe (seconds).
DEFAULT_OPEN_FOR = 1.0
#: Each failed probe doubles the wait, up to this (seconds).
DEFAULT_MAX_OPEN_FOR = 30.0
#: A sticky failure is replayed this long when the server names no reset (seconds).
DEFAULT_STICKY_COOLDOWN = 60.0


class KeyPart(_TextEnum):
    """What identifies where traffic goes, for the governor's shared state.

    - ``host``: scheme, host and port of the request URL.
    - ``api_key``: a fingerprint of the credential (``Authorization``,
      ``x-api-key``, ``api-key``, ``x-goog-api-key``); never the key itself.
    - ``model``: the model the request names.
    """

    HOST = "host"
    API_KEY = "api_key"
    MODEL = "model"


@attrs.frozen
class Limiter:
    """``[governor.limiter]``: pace sends by the budget servers report.

    Every response's rate-limit headers (``x-ratelimit-*``,
    ``anthropic-ratelimit-*``, IETF ``RateLimit``) tell how many requests
    are left until when; sends are spread evenly over that, so callers do not
    find the empty bucket by collecting 429s. A 429 without such headers
    lowers a learned send rate instead (multiplicative decrease).
    """

    enabled: bool = True


@attrs.frozen
class RetryBudget:
    """``[governor.retry_budget]``: retries of transient failures may add at
    most ``ratio`` of a key's traffic, after ``burst`` retries saved up.

    A retry that will wait for an open circuit's probe costs nothing: it is
    sent only once the upstream answers again. A spent budget fails a
    retryable error at once, saying why.
    """

    enabled: bool = True
    ratio: Amount = Amount(DEFAULT_RETRY_RATIO)
    burst: Amount = Amount(DEFAULT_RETRY_BURST)


@attrs.frozen
class Breaker:
    """``[governor.breaker]``: after ``failures`` consecutive transient
    failures of a key (across callers) its circuit opens: calls wait for one
    probe instead of each hitting the failing upstream. The first probe goes
    after ``open_for`` seconds, each failed probe doubles that up to
    ``max_open_for``; a probe's success closes the circuit."""

    enabled: bool = True
    failures: Attempts = Attempts(DEFAULT_BREAKER_FAILURES)
    open_for: Seconds = Seconds(DEFAULT_OPEN_FOR)
    max_open_for: Seconds = Seconds(DEFAULT_MAX_OPEN_FOR)


@attrs.frozen
class Sticky:
    """``[governor.sticky]``: once a key sees a failure of one of these
    classifications (an exhausted quota, a bad key), other calls for the key
    fail at once with the same action, until the reset the server named, else
    for ``cooldown`` seconds."""

    enabled: bool = True
    classifications: tuple[str, ...] = ("quota_exhausted", "authentication", "permission_denied")
    cooldown: Seconds = Seconds(DEFAULT_STICKY_COOLDOWN)


@attrs.frozen
class Governor:
    """``[governor]``: state shared by every call through one client, driver
    or adapter, per key (where the traffic goes).

    Attributes:
        enabled: Off unless a policy turns it on (the bundled one does).
        key: What makes a key: any of ``host``, ``api_key``, ``model``.
        transient: The classifications that count as the upstream failing
            (for the breaker and the retry budget).
        first_contact: A key no answer was seen for yet gets one request;
            the others wait for its answer at most this long (seconds).
        redis_url: Share the state with every process pointed at this Redis
            (``policyengine[redis]``); "" (and no ``POLICYENGINE_REDIS_URL``
            in the environment): in this process only.
    """

    enabled: bool = False
    key: tuple[KeyPart, ...] = (KeyPart.HOST, KeyPart.API_KEY, KeyPart.MODEL)
    transient: tuple[str, ...] = (
        "server_error",
        "upstream_unavailable",
        "overloaded",
        "timeout",
        "connection",
    )
    first_contact: Seconds = Seconds(DEFAULT_FIRST_CONTACT)
    redis_url: str = ""
    limiter: Limiter = Limiter()
    retry_budget: RetryBudget = RetryBudget()
    breaker: Breaker = Breaker()
    sticky: Sticky = Sticky()


@attrs.frozen
class TestResponse:
    """The response (or network failure) a policy self-test feeds the engine."""

    __test__ = False  # not a pytest test class

    status: int | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_read_only)
    body: str = ""
    transport: TransportKind | None = None
    method: Method | None = None


@attrs.frozen
class Expect:
    """What a policy self-test expects; omitted keys are not checked."""

    classification: str | None = None
    kind: ActionKind | None = None
    retryable: bool | None = None
    rule: str | None = None
    delay: tuple[float, float] | None = None
    fallback: str | None = None


@attrs.frozen
class PolicyTest:
    """A ``[[tests]]`` entry: a response, the context, and the expected action."""

    __test__ = False  # not a pytest test class

    name: Name
    response: TestResponse
    expect: Expect
    attempt: Attempts = Attempts(1)
    elapsed: Seconds = Seconds(0.0)
    model: str | None = None


@attrs.frozen
class Policy:
    """A complete, validated policy: defaults, classifications, ordered rules,
    wait-hint sources.

    Build one with ``load_policy()``. ``origins`` maps each key path of the
    merged policy to the file that set it (not part of equality).
    """

    defaults: Defaults = Defaults()
    classifications: Mapping[str, Classification] = attrs.field(factory=dict, converter=_read_only)
    """Classification name -> what to do with it, every key resolved."""
    rules: tuple[Rule, ...] = ()
    hints: Hints = Hints()
    tests: tuple[PolicyTest, ...] = ()
    description: str = ""
    governor: Governor = Governor()
    sources: tuple[str, ...] = attrs.field(default=(), eq=False)
    """The files this policy was merged from, in order."""
    origins: Mapping[str, str] = attrs.field(
        factory=dict, converter=_read_only, eq=False, repr=False
    )
    """Merged key path -> the file that set it; a rule's value taken from its
    classification or ``[defaults]`` counts as set by the file that set that."""
    inherited: Mapping[str, str] = attrs.field(
        factory=dict, converter=_read_only, eq=False, repr=False
    )
    """A rule's merged key path -> the key path it took its value from
    (``$.rules[4].max_attempts`` -> ``$.classifications.rate_limit.max_attempts``)."""

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id.

        Raises:
            KeyError: No rule has that id.
        """
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def handling_of(self, classification: str) -> Handling:
        """What a rule of ``classification`` inherits: its table, else ``[defaults]``."""
        found = self.classifications.get(classification)
        return self.defaults if found is None else found


# --- Run time values ---------------------------------------------------------


def _body_bytes(body: object) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"body must be bytes or str, not {type(body).__name__}")


@attrs.frozen
class Response:
    """A response as the engine sees it: a status, headers and a body.

    Args:
        status: The HTTP status code.
        headers: A mapping or a sequence of ``(name, value)`` pairs; names in
            any case, repeated names allowed. Stored lower-cased, each name with
            the tuple of its values in order.
        body: The body as bytes or text (text is encoded as UTF-8).
        method: The request method, if known (for ``match.method``).
    """

    status: int
    headers: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=index_headers)
    body: bytes = attrs.field(default=b"", converter=_body_bytes)
    method: str | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


@attrs.frozen
class ParsedError:
    """The error a response body carries, whatever shape it came in.

    Secrets echoed by the server (API keys, bearer tokens) are already
    redacted from every field.
    """

    message: str = ""
    type: str | None = None
    code: str | None = None
    param: str | None = None
    nested_codes: tuple[str, ...] = ()
    """The codes nested below ``code`` (Google's ``details[].reason`` and
    ``errors[].reason``, Anthropic's ``details.error_code``, Azure's
    ``innererror.code``); ``match.code`` matches these too."""


@attrs.frozen
class Facts:
    """What was read from a response, as typed values (``Action.facts``).

    Attributes:
        limit: A limit the error message states, such as a context length in
            tokens ("maximum context length is 8192 tokens").
        requested: An amount the message says was requested ("you requested
            9000 tokens").
        model: The model the message names ("Model 'x' not found").
        server_wait: Seconds the server asked to wait (a ``Retry-After``, a
            reset header, a field of the body, the message), clamped to ten
            years; None when it asked for none (or named a time already past).
        server_wait_source: Where that wait was read: a header name (``retry-after``),
            ``body <path>``, or ``the error message``.
    """

    limit: int | None = None
    requested: int | None = None
    model: str | None = None
    server_wait: float | None = None
    server_wait_source: str | None = None


_NO_FACTS = Facts()


class ActionDetails(Protocol):
    """What an ``Action`` tells people, computed when first asked for."""

    @property
    def facts(self) -> Facts: ...

    @property
    def error(self) -> ParsedError | None: ...

    @property
    def remediation(self) -> str: ...

    @property
    def reasons(self) -> tuple[str, ...]: ...

    @property
    def delay_source(self) -> str: ...


@attrs.frozen
class StaticDetails:
    """``ActionDetails`` given up front (for actions built by hand)."""

    error: ParsedError | None = None
    remediation: str = ""
    reasons: tuple[str, ...] = ()
    delay_source: str = "none"
    facts: Facts = _NO_FACTS


_NO_DETAILS = StaticDetails()


@attrs.frozen
class AmendedDetails:
    """``ActionDetails`` of an action changed after the engine decided (by an
    override, by the governor): the engine's, with reasons added (before or
    after), a note added to the remediation, and, for a give-up, no delay
    source. Still rendered only when read."""

    base: ActionDetails
    after: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    note: str = ""
    source: str | None = None
    """The delay source instead of the base's, or None to keep it."""

    @property
    def error(self) -> ParsedError | None:
        return self.base.error

    @property
    def facts(self) -> Facts:
        return self.base.facts

    @property
    def remediation(self) -> str:
        text = self.base.remediation
        return f"{text} {self.note}" if text and self.note else (text or self.note)

    @property
    def reasons(self) -> tuple[str, ...]:
        return (*self.before, *self.base.reasons, *self.after)

    @property
    def delay_source(self) -> str:
        return self.base.delay_source if self.source is None else self.source


@attrs.frozen
class Action:
    """What to do about one response or network failure.

    Attributes:
        kind: succeed, retry, fallback or fail.
        classification: What kind of outcome this is (``rate_limit``, ...).
        retryable: The error itself is transient, whatever the attempt count.
        delay: Seconds to wait before the next attempt; finite and >= 0. On a
            ``fail`` it is 0, or the server's wait when that was too long.
        rule_id: The id of the rule that decided ("" if none did).
        fallback: The model to use for the next attempt, or None.
        status: The HTTP status, or None for a network failure.
        transport: The network failure kind (``read_timeout``...), or None.
        details: Where ``error``, ``remediation`` and ``reasons`` come from.
            The engine records its decision and renders these texts only when
            they are read, so deciding stays cheap. Not part of equality.

    Properties ``error`` (the parsed error, secrets redacted, or None),
    ``remediation`` (what to tell a person), ``reasons`` (the explanation, a
    step per item), ``explanation`` (the reasons as lines) and
    ``delay_source`` (``server``, ``clamp``, ``backoff`` or ``none``),
    ``facts`` (typed values read from the response: ``Facts``).
    """

    kind: ActionKind
    classification: str
    retryable: bool
    delay: float
    rule_id: str
    fallback: str | None = None
    status: int | None = None
    transport: str | None = None
    details: ActionDetails = attrs.field(default=_NO_DETAILS, eq=False, repr=False, kw_only=True)

    @property
    def error(self) -> ParsedError | None:
        """The error the body carried (message / type / code / param), or None."""
        return self.details.error

    @property
    def facts(self) -> Facts:
        """What was read from the response as typed values: a limit and the
        amount requested, the model named, the server's wait and where it
        came from. Read when first asked for."""
        return self.details.facts

    @property
    def remediation(self) -> str:
        """What to tell a person, with secrets redacted."""
        return self.details.remediation

    @property
    def reasons(self) -> tuple[str, ...]:
        """The explanation, one step per item."""
        return self.details.reasons

    @property
    def delay_source(self) -> str:
        """Where ``delay`` came from: ``server`` (a wait hint, used as it is),
        ``clamp`` (a hint cut to ``hint_max``), ``backoff``, or ``none``."""
        return self.details.delay_source

    @property
    def explanation(self) -> str:
        """Why: which rule matched and why, where the delay came from, why it gave up."""
        return "\n".join(self.details.reasons)

    @property
    def should_retry(self) -> bool:
        """True for ``retry`` and ``fallback``: make another attempt after ``delay``."""
        return self.kind is ActionKind.RETRY or self.kind is ActionKind.FALLBACK
