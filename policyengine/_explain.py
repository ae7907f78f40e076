"""Explanations: the texts of an engine decision, rendered only when read.

Deciding records only the inputs of a decision and the few values drawn
while making it (the server's wait hint, the jittered backoff) on a ``Trace``.
When someone reads ``Action.reasons`` (or ``explanation``), the engine
replays the decision with a listener that collects its steps as typed events;
each event says itself. Remediation text and the redacted error are rendered
from the same trace, on first access, and kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from ._delay import MESSAGE, BackoffDelay, Hint
from ._errorbody import RawError, to_error
from ._facts import extract_amounts, extract_model
from ._matching import CompiledRule
from ._model import Facts, ParsedError, Response
from ._redact import redact
from ._text import clip, plural, seconds

__all__ = [
    "UNKNOWN",
    "BackedOff",
    "Event",
    "Exhausted",
    "FellBack",
    "HintHonoured",
    "HintInPast",
    "HintRead",
    "Listener",
    "LongHintFailed",
    "LongHintFellBack",
    "LongHintNoFallback",
    "LongHintClamped",
    "NoFallback",
    "NotRetryable",
    "PastDeadline",
    "RetryBeforeFallback",
    "ServerSaidRetry",
    "Succeeded",
    "Trace",
]

#: A placeholder with no value for this response renders as this.
UNKNOWN = "(unknown)"
#: An error message quoted in the first line of an explanation is cut here.
QUOTED_MESSAGE_CHARS = 120
#: A server's wait hint quoted in an explanation is cut here.
QUOTED_HINT_CHARS = 120


# --- Events: one step of a decision each, saying itself ----------------------------


class Succeeded(NamedTuple):
    def say(self, t: Trace) -> str:
        return "succeed"


class ServerSaidRetry(NamedTuple):
    header: str
    verdict: str

    def say(self, t: Trace) -> str:
        return f"the server's {self.header}: {self.verdict} overrides retryable"


class NotRetryable(NamedTuple):
    rule_fails: bool
    """The rule's action is ``fail`` (else: the error is not retryable)."""

    def say(self, t: Trace) -> str:
        if self.rule_fails:
            return "fail: the rule's action is fail"
        return "fail: the error is not retryable"


class Exhausted(NamedTuple):
    max_attempts: int

    def say(self, t: Trace) -> str:
        gave_up = f"fail: gave up after {plural(t.attempt, 'attempt')}"
        return f"{gave_up} (max_attempts = {self.max_attempts})"


class BackedOff(NamedTuple):
    backoff: BackoffDelay

    def say(self, t: Trace) -> str:
        b = t.compiled.rule.backoff
        return (
            f"delay {seconds(self.backoff.delay)}s from backoff: attempt {t.attempt}, "
            f"{seconds(b.initial)}s x {seconds(b.multiplier)}^{t.attempt - 1} "
            f"capped at {seconds(b.max_delay)}s = {seconds(self.backoff.base)}s, {b.jitter} jitter"
        )


class HintRead(NamedTuple):
    hint: Hint

    def say(self, t: Trace) -> str:
        hint = self.hint
        where = "in the error message" if hint.where == MESSAGE else hint.where
        shown = clip(hint.raw.strip(), QUOTED_HINT_CHARS)  # redacted with every reason
        return f"server hint {where}: {shown!r} = {seconds(hint.seconds)}s"


class HintInPast(NamedTuple):
    hint: Hint

    def say(self, t: Trace) -> str:
        hint = self.hint
        where = "in the error message" if hint.where == MESSAGE else hint.where
        ago = seconds(hint.past or 0.0)
        return f"server hint {where}: {hint.raw.strip()!r} is {ago}s in the past: no wait"


class HintHonoured(NamedTuple):
    delay: float
    above_max: bool
    """Longer than ``hint_max``, honoured because ``on_long_hint = honour``."""

    def say(self, t: Trace) -> str:
        extra = ""
        if self.above_max:
            extra = (
                f" (above hint_max = {seconds(t.compiled.rule.hint_max)}s; on_long_hint = honour)"
            )
        return f"delay {seconds(self.delay)}s as the server asked{extra}"


def _too_long(t: Trace, wait: float) -> str:
    return (
        f"the server asked for {seconds(wait)}s, more than hint_max = "
        f"{seconds(t.compiled.rule.hint_max)}s"
    )


class LongHintClamped(NamedTuple):
    wait: float

    def say(self, t: Trace) -> str:
        limit = seconds(t.compiled.rule.hint_max)
        return f"delay {limit}s: {_too_long(t, self.wait)}; on_long_hint = clamp"


class LongHintFellBack(NamedTuple):
    wait: float

    def say(self, t: Trace) -> str:
        return f"{_too_long(t, self.wait)}; on_long_hint = fallback"


class LongHintNoFallback(NamedTuple):
    wait: float

    def say(self, t: Trace) -> str:
        return (
            f"fail: {_too_long(t, self.wait)}; on_long_hint = fallback but no fallback model left"
        )


class LongHintFailed(NamedTuple):
    wait: float

    def say(self, t: Trace) -> str:
        return f"fail: {_too_long(t, self.wait)} (on_long_hint = fail); the wait is in delay"


class PastDeadline(NamedTuple):
    delay: float

    def say(self, t: Trace) -> str:
        return (
            f"fail: waiting {seconds(self.delay)}s more at {seconds(t.elapsed)}s elapsed "
            f"would pass max_elapsed = {seconds(t.compiled.rule.max_elapsed)}s"
        )


class FellBack(NamedTuple):
    model: str

    def say(self, t: Trace) -> str:
        return f"fallback: next model {self.model!r}"


class RetryBeforeFallback(NamedTuple):
    retries: int

    def say(self, t: Trace) -> str:
        return (
            f"retrying the same model before falling back: attempt {t.model_attempt} on it, "
            f"retries_before_fallback = {self.retries}"
        )


class NoFallback(NamedTuple):
    retryable: bool
    """Still retried on the same model."""

    def say(self, t: Trace) -> str:
        rule = t.compiled.rule
        if not t.can_fall_back and rule.fallback:
            cannot = "this caller cannot switch models"
            return f"{cannot}; retrying the same model" if self.retryable else f"fail: {cannot}"
        if self.retryable:
            left = "left" if rule.fallback else "configured"
            return f"no fallback model {left}; retrying the same model"
        if rule.fallback:
            return "fail: no fallback model left"
        return (
            "fail: the rule falls back but lists no fallback models "
            "(set fallback = [...] in an override)"
        )


Event = (
    Succeeded
    | ServerSaidRetry
    | NotRetryable
    | Exhausted
    | BackedOff
    | HintRead
    | HintInPast
    | HintHonoured
    | LongHintClamped
    | LongHintFellBack
    | LongHintNoFallback
    | LongHintFailed
    | PastDeadline
    | FellBack
    | RetryBeforeFallback
    | NoFallback
)

#: Called with each step of a decision while it is replayed; None while deciding.
Listener = Callable[[Event], object] | None


class Decider(Protocol):
    """What made a trace (the engine): it decides again on one, telling
    ``listener`` each step, and reads the wait its response asks for."""

    def _decide(self, trace: Trace, listener: Listener, /) -> object: ...

    def _hint_for(self, trace: Trace, /) -> Hint | None: ...


# --- The trace -------------------------------------------------------------------

_NOT_READ = Hint(-1.0, "", "")
"""``Trace.hint`` before the hint sources were read (None: read, none usable)."""


class Trace:
    """An engine decision as recorded: its inputs, the values drawn while
    deciding, and the texts of the ``Action`` (an ``ActionDetails``),
    rendered on first access."""

    __slots__ = (
        "_error",
        "_facts",
        "_reasons",
        "_remediation",
        "attempt",
        "backoff",
        "can_fall_back",
        "compiled",
        "decider",
        "delay",
        "delay_source",
        "elapsed",
        "exc_name",
        "fallback",
        "hint",
        "model",
        "model_attempt",
        "raw",
        "response",
        "transport",
    )

    def __init__(
        self,
        decider: Decider,
        compiled: CompiledRule,
        response: Response | None,
        raw: RawError | None,
        transport: str | None,
        exc_name: str | None,
        attempt: int,
        elapsed: float,
        model: str | None,
        can_fall_back: bool = True,
        model_attempt: int | None = None,
    ) -> None:
        self.decider = decider
        self.compiled = compiled
        self.response = response
        self.raw = raw
        self.transport = transport
        self.exc_name = exc_name
        self.attempt = attempt
        self.elapsed = elapsed
        self.model = model
        self.can_fall_back = can_fall_back
        self.model_attempt = attempt if model_attempt is None else model_attempt
        # Drawn while deciding, reused by a replay: the wait hint (read with
        # the clock) and the jittered backoff (drawn from the random source).
        self.hint: Hint | None = _NOT_READ
        self.backoff: BackoffDelay | None = None
        # The result.
        self.delay = 0.0
        self.delay_source = "none"
        self.fallback: str | None = None
        self._error: ParsedError | None = None
        self._facts: Facts | None = None
        self._reasons: tuple[str, ...] | None = None
        self._remediation: str | None = None

    @property
    def hint_read(self) -> bool:
        """Whether the hint sources were read (``hint`` is then the hint or None)."""
        return self.hint is not _NOT_READ

    def server_hint(self) -> Hint | None:
        """The wait the server asked for, as the decision read it, or None
        (none read, or a time already past)."""
        hint = self.hint
        return hint if hint is not _NOT_READ and hint is not None and hint.past is None else None

    # --- ActionDetails ---------------------------------------------------------

    @property
    def error(self) -> ParsedError | None:
        if self._error is None and self.raw is not None:
            self._error = to_error(self.raw)
        return self._error

    # Texts are redacted whole, not only the server's fields in them: a header
    # value quoted, or a secret split between a template and a field, is caught.

    @property
    def facts(self) -> Facts:
        if self._facts is None:
            error = self.error
            limit = requested = model = None
            if error is not None:
                amounts = extract_amounts(error.message)
                limit = int(amounts.limit) if amounts.limit is not None else None
                requested = int(amounts.requested) if amounts.requested is not None else None
                model = extract_model(error.message)
                model = redact(model) if model is not None else None
            # The decision reads the wait only when it waits; the facts say
            # what the server asked for either way.
            hint = self.server_hint() if self.hint_read else self.decider._hint_for(self)
            if hint is not None and hint.past is not None:
                hint = None
            where = None
            if hint is not None:
                where = "the error message" if hint.where == MESSAGE else hint.where
            self._facts = Facts(
                limit=limit,
                requested=requested,
                model=model,
                server_wait=hint.seconds if hint is not None else None,
                server_wait_source=where,
            )
        return self._facts

    @property
    def remediation(self) -> str:
        if self._remediation is None:
            self._remediation = redact(
                "".join(
                    literal + (self._fact(field) if field else "")
                    for literal, field in self.compiled.remediation
                )
            )
        return self._remediation

    @property
    def reasons(self) -> tuple[str, ...]:
        if self._reasons is None:
            events: list[Event] = []
            self.decider._decide(self, events.append)
            self._reasons = tuple(
                redact(line) for line in (self._why(), *(e.say(self) for e in events))
            )
        return self._reasons

    # --- rendering -------------------------------------------------------------

    def _fact(self, name: str) -> str:
        value: object = None
        error = self.error
        rule = self.compiled.rule
        if name == "status":
            value = self.response.status if self.response is not None else None
        elif name in ("code", "type", "param"):
            value = getattr(error, name) if error is not None else None
        elif name == "message":
            value = error.message if error is not None else None
        elif name == "model":
            value = self.model or self.facts.model
        elif name in ("limit", "requested"):
            value = getattr(self.facts, name)
        elif name == "retry_after":
            hint = self.server_hint()
            value = seconds(hint.seconds) if hint is not None else None
        elif name == "delay":
            value = seconds(self.delay)
        elif name == "attempt":
            value = self.attempt
        elif name == "max_attempts":
            value = rule.max_attempts
        elif name == "classification":
            value = rule.classification
        elif name == "rule_id":
            value = rule.id
        elif name == "fallback":
            value = self.fallback
        elif name == "transport":
            value = self.transport
        return UNKNOWN if value is None or value == "" else str(value)

    def _why(self) -> str:
        seen = []
        r, error = self.response, self.error
        if r is not None:
            seen.append(f"status {r.status}")
        if error is not None:
            if error.code is not None:
                seen.append(f"code {error.code!r}")
            nested = error.nested_codes
            if nested:
                seen.append(
                    "nested code" + "s" * (len(nested) > 1) + " " + "/".join(map(repr, nested))
                )
            if error.type is not None:
                seen.append(f"type {error.type!r}")
            if error.message:
                seen.append(f"message {clip(error.message, QUOTED_MESSAGE_CHARS)!r}")
        if self.transport is not None:
            seen.append(f"{self.transport} ({self.exc_name})" if self.exc_name else self.transport)
        codes = self.compiled.codes
        observed = {
            "code": next((c for c in (error.code, *error.nested_codes) if c in codes), error.code)
            if error
            else None,
            "type": error.type if error else None,
            "method": r.method if r else None,
            "transport": self.transport,
        }
        rule = self.compiled.rule
        return f"rule {rule.id!r} matched [{self.compiled.describe(observed)}] on {', '.join(seen)}"
