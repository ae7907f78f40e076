"""The engine: a response (or a network failure) in, an ``Action`` out.

``Engine.evaluate`` never raises. Everything that can be computed once (the
rule index, compiled templates, the actions for plain successes) is computed
when the engine is built. Deciding is then a few dict lookups, one JSON parse
of an error body, and the delay math; the decision is recorded as a short
trace, and the texts people read (explanation, remediation, the redacted
error) are rendered from it only when asked for.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from typing import Any

import attrs

from ._delay import CompiledHint, compute_backoff, read_hints
from ._loading import load_policy
from ._matching import CompiledRule, Index
from ._model import (
    Action,
    ActionKind,
    LongHint,
    ParsedError,
    Policy,
    Response,
)
from ._response import (
    MAX_PARSE_BYTES,
    RawError,
    coerce_response,
    compile_headers,
    extract_amounts,
    extract_model,
    parse_raw,
    redact,
    to_error,
    transport_kind,
)
from ._text import TemplatePart, parse_template, seconds

__all__ = ["Engine"]

_UNKNOWN = "(unknown)"
_Parts = tuple[TemplatePart, ...]
_MAX_ATTEMPT = 2**31
_MAX_ELAPSED = 2**62  # seconds: far past any deadline, and a float
_ERROR_KEY = b'"error"'


def _next_model(chain: tuple[str, ...], model: str | None) -> str | None:
    if not chain:
        return None
    if model in chain:
        i = chain.index(model) + 1
        return chain[i] if i < len(chain) else None
    return chain[0]


def _attempt(value: object) -> int:
    if type(value) is int and 1 <= value <= _MAX_ATTEMPT:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 1
    if isinstance(value, int):  # compared as an int: 10**400 has no float
        return max(1, min(value, _MAX_ATTEMPT))
    if math.isnan(value):
        return 1
    return int(max(1, min(value, _MAX_ATTEMPT)))


def _elapsed(value: object) -> float:
    if type(value) is float and 0.0 <= value < math.inf:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    if isinstance(value, int):  # clamped first: float(10**400) overflows
        return float(max(0, min(value, _MAX_ELAPSED)))
    number = float(value)
    if math.isnan(number) or number <= 0:
        return 0.0
    return min(number, _MAX_ELAPSED)  # inf: as long ago as can be, past any deadline


class _Decision:
    """An engine decision as recorded while deciding; renders the texts of an
    ``Action`` (explanation, remediation, redacted error) on first access."""

    __slots__ = (
        "_error",
        "_reasons",
        "_remediation",
        "attempt",
        "backoff",
        "can_fall_back",
        "compiled",
        "delay",
        "delay_source",
        "elapsed",
        "engine",
        "events",
        "exc_name",
        "fallback",
        "hint",
        "model",
        "raw",
        "response",
        "transport",
    )

    def __init__(
        self,
        engine: Engine,
        compiled: CompiledRule,
        response: Response | None,
        raw: RawError | None,
        transport: str | None,
        exc_name: str | None,
        attempt: int,
        elapsed: float,
        model: str | None,
    ) -> None:
        self.engine = engine
        self.compiled = compiled
        self.response = response
        self.raw = raw
        self.transport = transport
        self.exc_name = exc_name
        self.attempt = attempt
        self.elapsed = elapsed
        self.model = model
        self.events: list[tuple[Any, ...]] = []
        self.hint: tuple[float, str, str] | None = None
        self.backoff: tuple[float, float] | None = None
        self.delay = 0.0
        self.delay_source = "none"
        self.can_fall_back = True
        self.fallback: str | None = None
        self._error: ParsedError | None = None
        self._reasons: tuple[str, ...] | None = None
        self._remediation: str | None = None

    # --- ActionDetails ---------------------------------------------------------

    @property
    def error(self) -> ParsedError | None:
        if self._error is None and self.raw is not None:
            self._error = to_error(self.raw)
        return self._error

    @property
    def remediation(self) -> str:
        if self._remediation is None:
            rule = self.compiled.rule
            parts = self.engine._templates.get(rule.id) or parse_template(rule.remediation)
            self._remediation = "".join(
                literal + (self._fact(field) if field else "") for literal, field in parts
            )
        return self._remediation

    @property
    def reasons(self) -> tuple[str, ...]:
        if self._reasons is None:
            self._reasons = (self._why(), *(self._say(e) for e in self.events))
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
            value = self.model or (extract_model(error.message) if error is not None else None)
        elif name in ("limit", "requested"):
            if error is not None:
                limit, requested = extract_amounts(error.message)
                value = limit if name == "limit" else requested
        elif name == "retry_after":
            value = seconds(self.hint[0]) if self.hint is not None else None
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
        return _UNKNOWN if value is None or value == "" else str(value)

    def _why(self) -> str:
        seen = []
        r, error = self.response, self.error
        if r is not None:
            seen.append(f"status {r.status}")
        if error is not None:
            if error.code is not None:
                seen.append(f"code {error.code!r}")
            if error.type is not None:
                seen.append(f"type {error.type!r}")
            if error.message:
                text = error.message
                seen.append(f"message {text if len(text) <= 120 else text[:119] + '…'!r}")
        if self.transport is not None:
            seen.append(f"{self.transport} ({self.exc_name})" if self.exc_name else self.transport)
        observed = {
            "code": error.code if error else None,
            "type": error.type if error else None,
            "method": r.method if r else None,
            "transport": self.transport,
        }
        rule = self.compiled.rule
        return f"rule {rule.id!r} matched [{self.compiled.describe(observed)}] on {', '.join(seen)}"

    def _say(self, event: tuple[Any, ...]) -> str:
        rule = self.compiled.rule
        what = event[0]
        if what == "succeed":
            return "succeed"
        if what == "should_retry":
            return f"the server's {event[1]}: {event[2]} overrides retryable"
        if what == "not_retryable":
            return (
                "fail: the rule's action is fail"
                if event[1]
                else "fail: the error is not retryable"
            )
        if what == "exhausted":
            n = self.attempt
            return f"fail: gave up after {n} attempt{'s' * (n != 1)} (max_attempts = {event[1]})"
        if what == "backoff":
            delay, base = event[1], event[2]
            b = rule.backoff
            return (
                f"delay {seconds(delay)}s from backoff: attempt {self.attempt}, "
                f"{seconds(b.initial)}s x {seconds(b.multiplier)}^{self.attempt - 1} "
                f"capped at {seconds(b.max_delay)}s = {seconds(base)}s, {b.jitter} jitter"
            )
        if what == "hint":
            wait, name, raw = event[1], event[2], event[3]
            where = "in the error message" if name == "the error message" else name
            return f"server hint {where}: {raw.strip()!r} = {seconds(wait)}s"
        if what == "hint_delay":
            extra = (
                f" (above hint_max = {seconds(rule.hint_max)}s; on_long_hint = honour)"
                if event[2]
                else ""
            )
            return f"delay {seconds(event[1])}s as the server asked{extra}"
        if what == "long_hint":
            over = (
                f"the server asked for {seconds(event[1])}s, more than hint_max = "
                f"{seconds(rule.hint_max)}s"
            )
            mode = event[2]
            if mode == "clamp":
                return f"delay {seconds(rule.hint_max)}s: {over}; on_long_hint = clamp"
            if mode == "fallback":
                return f"{over}; on_long_hint = fallback"
            if mode == "fallback_none":
                return f"fail: {over}; on_long_hint = fallback but no fallback model left"
            return f"fail: {over} (on_long_hint = fail); the wait is in delay"
        if what == "deadline":
            return (
                f"fail: waiting {seconds(event[1])}s more at {seconds(self.elapsed)}s elapsed "
                f"would pass max_elapsed = {seconds(rule.max_elapsed)}s"
            )
        if what == "fallback":
            return f"fallback: next model {event[1]!r}"
        if what == "no_fallback":
            if not self.can_fall_back and rule.fallback:
                cannot = "this caller cannot switch models"
                return f"{cannot}; retrying the same model" if event[1] else f"fail: {cannot}"
            if event[1]:  # still retryable
                left = "left" if rule.fallback else "configured"
                return f"no fallback model {left}; retrying the same model"
            if rule.fallback:
                return "fail: no fallback model left"
            return (
                "fail: the rule falls back but lists no fallback models "
                "(set fallback = [...] in an override)"
            )
        return " ".join(str(e) for e in event)  # pragma: no cover - all events above


@attrs.frozen
class _Fixed:
    """The details of an action decided without a rule."""

    reasons: tuple[str, ...]
    remediation: str
    error: ParsedError | None = None
    delay_source: str = "none"


@attrs.frozen(init=False)
class Engine:
    """Decides what to do about responses and network failures, per a policy.

    Immutable and safe to share between threads and asyncio tasks.

    Args:
        policy: The policy; ``None`` loads the bundled default (and any
            ``$POLICYENGINE_POLICY`` overrides) with ``load_policy()``.
        clock: Returns the current Unix time; used to turn HTTP-date and
            timestamp hints into waits. Default ``time.time``.
        rng: The random source for jitter; pass a seeded ``random.Random`` for
            reproducible delays. Default: a fresh ``random.Random()``.
    """

    policy: Policy
    clock: Callable[[], float]
    rng: random.Random
    _index: Index = attrs.field(repr=False, eq=False)
    _templates: dict[str, _Parts] = attrs.field(repr=False, eq=False)
    _fast: dict[int, Action] = attrs.field(repr=False, eq=False)
    _should_retry: str = attrs.field(repr=False, eq=False)
    _hints: tuple[CompiledHint, ...] = attrs.field(repr=False, eq=False)

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        policy = load_policy() if policy is None else policy
        index = Index.build(policy)
        templates: dict[str, _Parts] = {
            c.rule.id: parse_template(c.rule.remediation) for c in index.rules
        }
        self.__attrs_init__(
            policy,
            time.time if clock is None else clock,
            random.Random() if rng is None else rng,
            index,
            templates,
            {},
            policy.hints.should_retry_header.strip().lower(),
            tuple(
                (
                    s.header.strip().lower(),
                    re.compile(s.message) if s.message is not None else None,
                    s.format,
                    compile_headers(s.when),
                )
                for s in policy.hints.sources
            ),
        )
        self._fast.update(self._plain_successes())

    def _plain_successes(self) -> dict[int, Action]:
        """Statuses whose response, carrying no error in its body, always meets
        the same ``succeed`` rule: their action is computed here, once."""
        fast: dict[int, Action] = {}
        for status, candidates in self._index.by_status.items():
            for rule in candidates:
                if rule.error is True:
                    continue  # needs an error in the body: not this path
                if rule.headers or rule.methods or rule.rule.action is not ActionKind.SUCCEED:
                    break
                fast[status] = self._succeed(rule, Response(status), None, None)
                break
        return fast

    # --- evaluate --------------------------------------------------------------

    def evaluate(
        self,
        response: Any,
        attempt: int = 1,
        elapsed: float = 0.0,
        *,
        model: str | None = None,
        method: str | None = None,
        fallback: bool = True,
    ) -> Action:
        """Decide what to do about one response or network failure.

        Args:
            response: A ``Response``; a response object of requests, httpx,
                urllib3, aiohttp (body already read) or ``http.client``; or
                the exception raised instead of a response (a timeout, a
                connection failure, ``urllib.error.HTTPError``, an SDK error
                carrying a ``.response``).
            attempt: Attempts made so far, this one included (1 = the first
                request just came back).
            elapsed: Seconds since the first attempt started.
            model: The model this attempt used; the fallback chain continues
                after it (and ``{model}`` in remediation names it).
            method: The request method, when the response object does not
                carry it (for ``match.method``).
            fallback: False when the caller cannot switch models (its request
                names none): rules decide as if their fallback chain were
                used up, so a retryable error is retried on the same model.

        Returns:
            The action. Never raises: input it cannot read gives a ``fail``
            action whose explanation says why.
        """
        try:
            if type(response) is Response or isinstance(response, Response):
                status = response.status
                fast = self._fast.get(status) if type(status) is int else None
                # A plain success, unless an error object hides in the body.
                if fast is not None and response.body.find(_ERROR_KEY, 0, MAX_PARSE_BYTES) < 0:
                    return fast
                return self._evaluate_response(response, attempt, elapsed, model, method, fallback)
            return self._evaluate_other(response, attempt, elapsed, model, method, fallback)
        except Exception as exc:  # a bug of ours must not become the caller's crash
            return self._broken(exc, model, method)

    def _evaluate_other(
        self,
        obj: Any,
        attempt: int,
        elapsed: float,
        model: str | None,
        method: str | None,
        fallback: bool,
    ) -> Action:
        response = coerce_response(obj)
        if response is not None:
            return self._evaluate_response(response, attempt, elapsed, model, method, fallback)
        if isinstance(obj, BaseException):
            return self._evaluate_failure(obj, attempt, elapsed, model, method, fallback)
        return self._unreadable(
            f"cannot read a {type(obj).__name__}: expected a response with a status "
            "(or a network exception)"
        )

    def _evaluate_response(
        self,
        r: Response,
        attempt: int,
        elapsed: float,
        model: str | None,
        method: str | None,
        fallback: bool = True,
    ) -> Action:
        if type(r.status) is not int:
            try:
                status = int(r.status)
            except Exception:
                return self._unreadable(f"the status {r.status!r} is not a number")
            r = attrs.evolve(r, status=status)
        if method and r.method is None:
            r = attrs.evolve(r, method=method.upper())
        raw = parse_raw(r.body, r.status)
        compiled = self._index.select(r, raw)
        if compiled is None:
            return self._unmatched(f"status {r.status}", r.status, raw)
        decision = _Decision(
            self, compiled, r, raw, None, None, _attempt(attempt), _elapsed(elapsed), model
        )
        decision.can_fall_back = fallback
        return self._decide(decision)

    def _evaluate_failure(
        self,
        exc: BaseException,
        attempt: int,
        elapsed: float,
        model: str | None,
        method: str | None,
        fallback: bool = True,
    ) -> Action:
        kind = transport_kind(exc)
        if kind is None:
            return self._unreadable(
                f"{type(exc).__name__} is neither a response nor a network failure; "
                "it is not retried"
            )
        if method is None:
            try:
                found = getattr(getattr(exc, "request", None), "method", None)
                method = found if isinstance(found, str) else None
            except Exception:  # httpx raises when an exception has no request
                method = None
        compiled = self._index.select_transport(kind, method.upper() if method else None)
        if compiled is None:
            return self._unmatched(f"a {kind} failure", None, None, transport=kind)
        decision = _Decision(
            self,
            compiled,
            None,
            None,
            kind,
            type(exc).__name__,
            _attempt(attempt),
            _elapsed(elapsed),
            model,
        )
        decision.can_fall_back = fallback
        return self._decide(decision)

    # --- deciding --------------------------------------------------------------

    def _decide(self, d: _Decision) -> Action:
        rule = d.compiled.rule
        r = d.response
        if r is not None and rule.action is ActionKind.SUCCEED:
            d.events.append(("succeed",))
            return self._action(d, ActionKind.SUCCEED, False)
        retryable = rule.retryable
        header = self._should_retry
        if r is not None and header and rule.honour_should_retry:
            told = r.headers.get(header)
            if told:
                verdict = told[0].strip().lower()
                if verdict in ("true", "false") and (verdict == "true") is not retryable:
                    retryable = verdict == "true"
                    d.events.append(("should_retry", header, verdict))

        wants_fallback = rule.action is ActionKind.FALLBACK
        if rule.action is ActionKind.FAIL or not (retryable or wants_fallback):
            d.events.append(("not_retryable", rule.action is ActionKind.FAIL))
            return self._action(d, ActionKind.FAIL, retryable)
        if d.attempt >= rule.max_attempts:
            d.events.append(("exhausted", rule.max_attempts))
            return self._action(d, ActionKind.FAIL, retryable)

        if wants_fallback:
            nxt = _next_model(rule.fallback, d.model) if d.can_fall_back else None
            if nxt is not None:
                return self._fall_back(d, nxt, retryable)
            d.events.append(("no_fallback", retryable))
            if not retryable:
                return self._action(d, ActionKind.FAIL, retryable)

        if r is not None and rule.use_hints and self._hints:
            message = d.raw[0] if d.raw is not None else ""
            d.hint = read_hints(r.headers, self._hints, self.clock, message)
        if d.hint is None:
            return self._retry(d, self._backoff(d), retryable, "backoff")
        hint = d.hint[0]
        d.events.append(("hint", *d.hint))
        if hint <= rule.hint_max or rule.on_long_hint is LongHint.HONOUR:
            d.events.append(("hint_delay", hint, hint > rule.hint_max))
            return self._retry(d, hint, retryable, "server")
        mode = rule.on_long_hint
        if mode is LongHint.CLAMP:
            d.events.append(("long_hint", hint, "clamp"))
            return self._retry(d, rule.hint_max, retryable, "clamp")
        if mode is LongHint.FALLBACK:
            nxt = _next_model(rule.fallback, d.model) if d.can_fall_back else None
            if nxt is not None:
                d.events.append(("long_hint", hint, "fallback"))
                return self._fall_back(d, nxt, retryable)
            d.events.append(("long_hint", hint, "fallback_none"))
        else:
            d.events.append(("long_hint", hint, "fail"))
        d.delay, d.delay_source = hint, "server"
        return self._action(d, ActionKind.FAIL, retryable)

    def _past_deadline(self, d: _Decision, delay: float) -> bool:
        limit = d.compiled.rule.max_elapsed
        if limit > 0 and d.elapsed + delay > limit:
            d.events.append(("deadline", delay))
            # A server's wait stays attached so the caller knows when to come back.
            if d.hint is not None:
                d.delay, d.delay_source = d.hint[0], "server"
            return True
        return False

    def _retry(self, d: _Decision, delay: float, retryable: bool, source: str) -> Action:
        if self._past_deadline(d, delay):
            return self._action(d, ActionKind.FAIL, retryable)
        d.delay, d.delay_source = delay, source
        return self._action(d, ActionKind.RETRY, retryable)

    def _backoff(self, d: _Decision) -> float:
        b = d.compiled.rule.backoff
        delay, base = compute_backoff(
            d.attempt, b.initial, b.multiplier, b.max_delay, b.jitter, self.rng
        )
        d.events.append(("backoff", delay, base))
        return delay

    def _fall_back(self, d: _Decision, nxt: str, retryable: bool) -> Action:
        delay = self._backoff(d)
        if self._past_deadline(d, delay):
            return self._action(d, ActionKind.FAIL, retryable)
        d.events.append(("fallback", nxt))
        d.delay, d.delay_source, d.fallback = delay, "backoff", nxt
        return self._action(d, ActionKind.FALLBACK, retryable)

    def _action(self, d: _Decision, kind: ActionKind, retryable: bool) -> Action:
        rule = d.compiled.rule
        return Action(
            kind,
            rule.classification,
            retryable,
            d.delay,
            rule.id,
            d.fallback,
            d.response.status if d.response is not None else None,
            d.transport,
            details=d,
        )

    def _succeed(
        self, compiled: CompiledRule, r: Response, raw: RawError | None, model: str | None
    ) -> Action:
        d = _Decision(self, compiled, r, raw, None, None, 1, 0.0, model)
        d.events.append(("succeed",))
        return self._action(d, ActionKind.SUCCEED, False)

    def _unmatched(
        self,
        what: str,
        status: int | None,
        raw: RawError | None,
        transport: str | None = None,
    ) -> Action:
        details = _Fixed(
            reasons=(f"no enabled rule matched {what}", "fail: nothing to decide by"),
            remediation="No rule of the policy covers this outcome; add a catch-all rule.",
            error=to_error(raw) if raw is not None else None,
        )
        return Action(
            ActionKind.FAIL, "unknown", False, 0.0, "", None, status, transport, details=details
        )

    def _unreadable(self, why: str) -> Action:
        details = _Fixed(
            reasons=(why, "fail: nothing to decide by"),
            remediation="This outcome could not be read; see the explanation.",
        )
        return Action(ActionKind.FAIL, "unknown", False, 0.0, "", details=details)

    def _broken(self, exc: Exception, model: object, method: object) -> Action:
        for name, value in (("model", model), ("method", method)):
            if value is not None and not isinstance(value, str):
                return self._unreadable(
                    f"{name} must be a string or None, not {type(value).__name__}"
                )
        return self._unreadable(
            f"internal error while deciding ({type(exc).__name__}: {redact(str(exc))}); "
            "please report this as a bug"
        )
