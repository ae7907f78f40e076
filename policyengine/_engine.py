"""The engine: a response (or a network failure) in, an ``Action`` out.

``Engine.evaluate`` never raises. Everything that can be computed once (the
rule index, compiled templates, the actions for plain successes) is computed
when the engine is built, so evaluating is a few dict lookups, one JSON parse
of an error body, and the delay math.
"""

from __future__ import annotations

import math
import random
import string
import time
from collections.abc import Callable
from typing import Any

import attrs

from ._delay import compute_backoff, read_hints
from ._loading import load_policy
from ._matching import CompiledRule, Index
from ._model import (
    Action,
    ActionKind,
    LongHint,
    ParsedError,
    Policy,
    Response,
    Rule,
)
from ._response import (
    MAX_PARSE_BYTES,
    coerce_response,
    extract_amounts,
    extract_model,
    parse_error,
    redact,
    transport_kind,
)

__all__ = ["Engine"]

_UNKNOWN = "(unknown)"
_Parts = tuple[tuple[str, str | None], ...]


def _seconds(value: float) -> str:
    """Seconds for people: ``2``, ``1.5``, ``0.125``."""
    return format(round(value, 3), "g") if math.isfinite(value) else _UNKNOWN


def _compile_template(text: str) -> _Parts:
    """``[(literal, field or None), ...]``; the loader has checked the fields."""
    parts: list[tuple[str, str | None]] = []
    literal = ""
    # Formatter.parse gives the literal text with {{ and }} already unescaped.
    for text_part, field, _, _ in string.Formatter().parse(text):
        literal += text_part
        if field is not None:
            parts.append((literal, field))
            literal = ""
    if literal or not parts:
        parts.append((literal, None))
    return tuple(parts)


@attrs.define
class _Facts:
    """What a remediation template may mention, computed only when asked for."""

    status: int | None
    error: ParsedError | None
    model: str | None
    rule: Rule
    attempt: int
    delay: float
    hint: float | None
    fallback: str | None
    transport: str | None

    def get(self, name: str) -> str:
        value: object = None
        error = self.error
        if name == "status":
            value = self.status
        elif name in ("code", "type", "param"):
            value = getattr(error, name) if error is not None else None
        elif name == "message":
            value = (error.message or None) if error is not None else None
        elif name == "model":
            value = self.model or (extract_model(error.message) if error is not None else None)
        elif name in ("limit", "requested"):
            if error is not None:
                limit, requested = extract_amounts(error.message)
                value = limit if name == "limit" else requested
        elif name == "retry_after":
            value = _seconds(self.hint) if self.hint is not None else None
        elif name == "delay":
            value = _seconds(self.delay)
        elif name == "attempt":
            value = self.attempt
        elif name == "max_attempts":
            value = self.rule.max_attempts
        elif name == "classification":
            value = self.rule.classification
        elif name == "rule_id":
            value = self.rule.id
        elif name == "fallback":
            value = self.fallback
        elif name == "transport":
            value = self.transport
        return _UNKNOWN if value is None or value == "" else str(value)


def _next_model(chain: tuple[str, ...], model: str | None) -> str | None:
    if not chain:
        return None
    if model in chain:
        i = chain.index(model) + 1
        return chain[i] if i < len(chain) else None
    return chain[0]


def _attempt(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 1
    if not math.isfinite(value):
        return 1 if value != math.inf else 2**31
    return max(1, min(int(value), 2**31))


def _elapsed(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) and number > 0 else 0.0


@attrs.frozen
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

    policy: Policy = attrs.field(factory=load_policy)
    clock: Callable[[], float] = attrs.field(default=time.time, kw_only=True)
    rng: random.Random = attrs.field(factory=random.Random, kw_only=True)
    _index: Index = attrs.field(init=False, repr=False, eq=False)
    _templates: dict[str, _Parts] = attrs.field(init=False, repr=False, eq=False)
    _fast: dict[int, Action] = attrs.field(init=False, repr=False, eq=False)

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.__attrs_init__(  # type: ignore[attr-defined]
            load_policy() if policy is None else policy,
            clock=time.time if clock is None else clock,
            rng=random.Random() if rng is None else rng,
        )

    def __attrs_post_init__(self) -> None:
        index = Index.build(self.policy)
        object.__setattr__(self, "_index", index)
        object.__setattr__(
            self,
            "_templates",
            {c.rule.id: _compile_template(c.rule.remediation) for c in index.rules},
        )
        object.__setattr__(self, "_fast", self._plain_successes(index))

    def _plain_successes(self, index: Index) -> dict[int, Action]:
        """Statuses whose response, carrying no error in its body, always meets
        the same ``succeed`` rule: their action is computed here, once."""
        fast: dict[int, Action] = {}
        for status, candidates in index.by_status.items():
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

        Returns:
            The action. Never raises: input it cannot read gives a ``fail``
            action whose explanation says why.
        """
        try:
            if type(response) is Response or isinstance(response, Response):
                r = response
            else:
                return self._evaluate_other(response, attempt, elapsed, model, method)
            fast = self._fast.get(r.status)
            if fast is not None:
                body = r.body
                if len(body) > MAX_PARSE_BYTES:
                    body = body[:MAX_PARSE_BYTES]
                if b'"error"' not in body:
                    return fast
            return self._evaluate_response(r, attempt, elapsed, model, method)
        except Exception as exc:  # a bug of ours must not become the caller's crash
            return self._broken(exc)

    def _evaluate_other(
        self, obj: Any, attempt: int, elapsed: float, model: str | None, method: str | None
    ) -> Action:
        response = coerce_response(obj)
        if response is not None:
            return self._evaluate_response(response, attempt, elapsed, model, method)
        if isinstance(obj, BaseException):
            return self._evaluate_failure(obj, attempt, elapsed, model, method)
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
    ) -> Action:
        if type(r.status) is not int:
            try:
                status = int(r.status)
            except Exception:
                return self._unreadable(f"the status {r.status!r} is not a number")
            r = attrs.evolve(r, status=status)
        if method and r.method is None:
            r = attrs.evolve(r, method=method.upper())
        error = parse_error(r.body, r.status)
        compiled = self._index.select(r, error)
        if compiled is None:
            return self._unmatched(f"status {r.status}", r.status, error)
        return self._decide(compiled, r, error, None, _attempt(attempt), _elapsed(elapsed), model)

    def _evaluate_failure(
        self,
        exc: BaseException,
        attempt: int,
        elapsed: float,
        model: str | None,
        method: str | None,
    ) -> Action:
        kind = transport_kind(exc)
        if kind is None:
            return self._unreadable(
                f"{type(exc).__name__} is neither a response nor a network failure; "
                "it is not retried"
            )
        if method is None:
            try:
                request = getattr(exc, "request", None)
                found = getattr(request, "method", None)
                method = found if isinstance(found, str) else None
            except Exception:
                method = None
        compiled = self._index.select_transport(kind, method.upper() if method else None)
        if compiled is None:
            return self._unmatched(f"a {kind} failure", None, None, transport=kind)
        return self._decide(
            compiled, None, None, kind, _attempt(attempt), _elapsed(elapsed), model, exc=exc
        )

    # --- deciding --------------------------------------------------------------

    def _decide(
        self,
        compiled: CompiledRule,
        r: Response | None,
        error: ParsedError | None,
        transport: str | None,
        attempt: int,
        elapsed: float,
        model: str | None,
        exc: BaseException | None = None,
    ) -> Action:
        rule = compiled.rule
        if r is not None and rule.action is ActionKind.SUCCEED:
            return self._succeed(compiled, r, error, model)
        reasons = [self._why(compiled, r, error, transport, exc)]
        retryable = rule.retryable
        header = self.policy.hints.should_retry_header
        if r is not None and header and rule.honour_should_retry:
            told = r.headers.get(header.lower())
            verdict = told[0].strip().lower() if told else ""
            if verdict in ("true", "false") and (verdict == "true") is not retryable:
                retryable = verdict == "true"
                reasons.append(f"the server's {header}: {verdict} overrides retryable")

        def done(
            kind: ActionKind,
            delay: float = 0.0,
            fallback: str | None = None,
            hint: float | None = None,
        ) -> Action:
            facts = _Facts(
                r.status if r is not None else None,
                error,
                model,
                rule,
                attempt,
                delay,
                hint,
                fallback,
                transport,
            )
            return Action(
                kind=kind,
                classification=rule.classification,
                retryable=retryable,
                delay=delay,
                remediation=self._render(rule, facts),
                rule_id=rule.id,
                error=error,
                fallback=fallback,
                status=r.status if r is not None else None,
                transport=transport,
                reasons=tuple(reasons),
            )

        wants_fallback = rule.action is ActionKind.FALLBACK
        if rule.action is ActionKind.FAIL or not (retryable or wants_fallback):
            why = (
                "the rule's action is fail"
                if rule.action is ActionKind.FAIL
                else ("the error is not retryable")
            )
            reasons.append(f"fail: {why}")
            return done(ActionKind.FAIL)
        if attempt >= rule.max_attempts:
            reasons.append(
                f"fail: gave up after {attempt} attempt{'s' * (attempt != 1)} "
                f"(max_attempts = {rule.max_attempts})"
            )
            return done(ActionKind.FAIL)

        backoff, base = compute_backoff(
            attempt,
            rule.backoff.initial,
            rule.backoff.multiplier,
            rule.backoff.max_delay,
            rule.backoff.jitter,
            self.rng,
        )
        backoff_reason = (
            f"delay {_seconds(backoff)}s from backoff: attempt {attempt}, "
            f"{_seconds(rule.backoff.initial)}s x {_seconds(rule.backoff.multiplier)}^"
            f"{attempt - 1} capped at {_seconds(rule.backoff.max_delay)}s = {_seconds(base)}s, "
            f"{rule.backoff.jitter} jitter"
        )

        def within_deadline(delay: float, hint: float | None = None) -> Action | None:
            if rule.max_elapsed > 0 and elapsed + delay > rule.max_elapsed:
                reasons.append(
                    f"fail: waiting {_seconds(delay)}s more at {_seconds(elapsed)}s elapsed "
                    f"would pass max_elapsed = {_seconds(rule.max_elapsed)}s"
                )
                return done(ActionKind.FAIL, hint if hint is not None else 0.0, hint=hint)
            return None

        def fall_back(nxt: str) -> Action:
            reasons.append(backoff_reason)
            reasons.append(f"fallback: next model {nxt!r}")
            return within_deadline(backoff) or done(ActionKind.FALLBACK, backoff, nxt)

        if wants_fallback:
            nxt = _next_model(rule.fallback, model)
            if nxt is not None:
                return fall_back(nxt)
            if not retryable:
                reasons.append(
                    "fail: no fallback model left"
                    if rule.fallback
                    else "fail: the rule falls back but lists no fallback models "
                    "(set fallback = [...] in an override)"
                )
                return done(ActionKind.FAIL)
            reasons.append(
                "no fallback model "
                + ("left" if rule.fallback else "configured")
                + "; retrying the same model"
            )

        hint = None
        if r is not None and rule.use_hints and self.policy.hints.sources:
            found = read_hints(r.headers, self.policy.hints.sources, self.clock())
            if found is not None:
                hint, name, raw = found
                reasons.append(f"server hint {name}: {raw.strip()!r} = {_seconds(hint)}s")
        if hint is None:
            reasons.append(backoff_reason)
            return within_deadline(backoff) or done(ActionKind.RETRY, backoff)
        if hint <= rule.hint_max or rule.on_long_hint is LongHint.HONOUR:
            extra = (
                ""
                if hint <= rule.hint_max
                else (f" (above hint_max = {_seconds(rule.hint_max)}s; on_long_hint = honour)")
            )
            reasons.append(f"delay {_seconds(hint)}s as the server asked{extra}")
            return within_deadline(hint, hint) or done(ActionKind.RETRY, hint, hint=hint)
        over = (
            f"the server asked for {_seconds(hint)}s, more than hint_max = "
            f"{_seconds(rule.hint_max)}s"
        )
        if rule.on_long_hint is LongHint.CLAMP:
            reasons.append(f"delay {_seconds(rule.hint_max)}s: {over}; on_long_hint = clamp")
            return within_deadline(rule.hint_max) or done(
                ActionKind.RETRY, rule.hint_max, hint=hint
            )
        if rule.on_long_hint is LongHint.FALLBACK:
            nxt = _next_model(rule.fallback, model)
            if nxt is not None:
                reasons.append(f"{over}; on_long_hint = fallback")
                return fall_back(nxt)
            reasons.append(f"fail: {over}; on_long_hint = fallback but no fallback model left")
            return done(ActionKind.FAIL, hint, hint=hint)
        reasons.append(f"fail: {over} (on_long_hint = fail); the wait is in delay")
        return done(ActionKind.FAIL, hint, hint=hint)

    def _why(
        self,
        compiled: CompiledRule,
        r: Response | None,
        error: ParsedError | None,
        transport: str | None,
        exc: BaseException | None,
    ) -> str:
        seen = []
        if r is not None:
            seen.append(f"status {r.status}")
            if error is not None:
                if error.code is not None:
                    seen.append(f"code {error.code!r}")
                if error.type is not None:
                    seen.append(f"type {error.type!r}")
                if error.message:
                    text = (
                        error.message if len(error.message) <= 120 else (error.message[:119] + "…")
                    )
                    seen.append(f"message {text!r}")
        if transport is not None:
            seen.append(f"{transport} ({type(exc).__name__})" if exc is not None else transport)
        observed = {
            "code": error.code if error else None,
            "type": error.type if error else None,
            "method": r.method if r else None,
            "transport": transport,
        }
        return (
            f"rule {compiled.rule.id!r} matched [{compiled.describe(observed)}] "
            f"on {', '.join(seen)}"
        )

    def _render(self, rule: Rule, facts: _Facts) -> str:
        parts = self._templates.get(rule.id)
        if parts is None:
            parts = _compile_template(rule.remediation)
        return "".join(literal + (facts.get(field) if field else "") for literal, field in parts)

    def _succeed(
        self, compiled: CompiledRule, r: Response, error: ParsedError | None, model: str | None
    ) -> Action:
        rule = compiled.rule
        facts = _Facts(r.status, error, model, rule, 1, 0.0, None, None, None)
        return Action(
            kind=ActionKind.SUCCEED,
            classification=rule.classification,
            retryable=False,
            delay=0.0,
            remediation=self._render(rule, facts),
            rule_id=rule.id,
            error=error,
            status=r.status,
            reasons=(self._why(compiled, r, error, None, None), "succeed"),
        )

    def _unmatched(
        self, what: str, status: int | None, error: ParsedError | None, transport: str | None = None
    ) -> Action:
        return Action(
            kind=ActionKind.FAIL,
            classification="unknown",
            retryable=False,
            delay=0.0,
            remediation="No rule of the policy covers this outcome; add a catch-all rule.",
            rule_id="",
            error=error,
            status=status,
            transport=transport,
            reasons=(f"no enabled rule matched {what}", "fail: nothing to decide by"),
        )

    def _unreadable(self, why: str) -> Action:
        return Action(
            kind=ActionKind.FAIL,
            classification="unknown",
            retryable=False,
            delay=0.0,
            remediation="This outcome could not be read; see the explanation.",
            rule_id="",
            reasons=(why, "fail: nothing to decide by"),
        )

    def _broken(self, exc: Exception) -> Action:
        return self._unreadable(
            f"internal error while deciding ({type(exc).__name__}: {redact(str(exc))}); "
            "please report this as a bug"
        )
