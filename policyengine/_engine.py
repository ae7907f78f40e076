"""The engine: a response (or a network failure) in, an ``Action`` out.

``Engine.evaluate`` never raises. Everything that can be computed once (the
rule index with parsed templates, the compiled hint sources, the actions for
plain successes) is computed when the engine is built. Deciding is then a few
dict lookups, one JSON parse of an error body, and the delay math; the
decision records its inputs on a ``Trace`` (``_explain``), and the texts
people read are rendered from it only when asked for, by replaying
``_decide`` with a listener.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
from attrs.exceptions import FrozenInstanceError

from ._clients import coerce_response, read_body, read_status
from ._delay import CompiledHint, Hint, compute_backoff, read_hints
from ._errorbody import MAX_PARSE_BYTES, RawError, parse_raw, to_error
from ._explain import (
    BackedOff,
    Exhausted,
    FellBack,
    HintHonoured,
    HintInPast,
    HintRead,
    Listener,
    LongHintClamped,
    LongHintFailed,
    LongHintFellBack,
    LongHintNoFallback,
    NoFallback,
    NotRetryable,
    PastDeadline,
    RetryBeforeFallback,
    ServerSaidRetry,
    Succeeded,
    Trace,
)
from ._matching import CompiledRule, Index
from ._model import Action, ActionKind, LongHint, Policy, Response, StaticDetails
from ._redact import redact
from ._transport import transport_kind

__all__ = ["Engine"]

_MAX_ATTEMPT = 2**31
_MAX_ELAPSED = 2**62  # seconds: far past any deadline, and a float
_ERROR_KEY = b'"error"'


# Enum members as module constants: a member looked up on its class costs
# about 60 ns, and the decision compares a handful per call.
_SUCCEED, _RETRY, _FALLBACK, _FAIL = (
    ActionKind.SUCCEED,
    ActionKind.RETRY,
    ActionKind.FALLBACK,
    ActionKind.FAIL,
)
_HONOUR, _CLAMP, _LONG_FALLBACK = LongHint.HONOUR, LongHint.CLAMP, LongHint.FALLBACK


class PlainSuccess(NamedTuple):
    """The action for a status's responses with no error in the body, and the
    rules on headers or the method that, holding, come before it."""

    action: Action
    guards: tuple[CompiledRule, ...]
    needs: tuple[str, ...] | None = None
    """Headers one of which must be present for any guard to hold (one name
    each guard requires); None: the guards are checked whatever is present."""
    need: str = ""
    """The one name of ``needs`` when it has one: a single look-up."""


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


class Engine:
    """Decides what to do about responses and network failures, per a policy.

    Immutable (every attribute is set when it is built) and safe to share
    between threads and asyncio tasks.

    Args:
        policy: The policy; ``None`` loads the bundled default (and any
            ``$POLICYENGINE_POLICY`` overrides) with ``load_policy()``.
        clock: Returns the current Unix time; used to turn HTTP-date and
            timestamp hints into waits. Default ``time.time``.
        rng: The random source for jitter; pass a seeded ``random.Random`` for
            reproducible delays. Default: a fresh ``random.Random()``.
    """

    __slots__ = (
        "__weakref__",
        "_fast",
        "_hints",
        "_index",
        "_max_elapsed",
        "_plain",
        "_should_retry",
        "_wanted",
        "clock",
        "policy",
        "rng",
    )

    policy: Policy
    clock: Callable[[], float]
    rng: random.Random
    _index: Index
    _max_elapsed: dict[str, float]
    _should_retry: str
    _hints: tuple[CompiledHint, ...]
    _fast: dict[int, PlainSuccess]
    _plain: dict[int, Action]
    _wanted: frozenset[str]

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        put = object.__setattr__
        if policy is None:
            # Loading (cattrs, the TOML layers) is imported only by those who load.
            from ._loading import load_policy

            policy = load_policy()
        put(self, "policy", policy)
        put(self, "clock", time.time if clock is None else clock)
        put(self, "rng", random.Random() if rng is None else rng)
        put(self, "_index", Index.build(self.policy))
        put(self, "_should_retry", self.policy.hints.should_retry_header.strip().lower())
        put(self, "_hints", tuple(CompiledHint.of(s) for s in self.policy.hints.sources))
        put(self, "_fast", self._plain_successes())
        # The statuses whose plain success no rule can come before: the action alone.
        put(self, "_plain", {s: f.action for s, f in self._fast.items() if not f.guards})
        put(self, "_wanted", self._header_names())
        put(self, "_max_elapsed", {r.id: r.max_elapsed for r in self.policy.rules})

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError

    def __repr__(self) -> str:
        sources = ", ".join(self.policy.sources) or "a dict"
        return f"Engine(policy=<{len(self.policy.rules)} rules from {sources}>)"

    def max_elapsed(self, rule_id: str) -> float:
        """The ``max_elapsed`` of a rule (0: no limit); ``[defaults]``'s for
        an unknown id or "" (a call not yet answered)."""
        return self._max_elapsed.get(rule_id, self.policy.defaults.max_elapsed)

    def _header_names(self) -> frozenset[str]:
        """Every header name the policy can look at (rule conditions, hint
        sources and their conditions, the should-retry header): all that is
        read of a client's headers, unless someone asks for more."""
        names = {c.name for rule in self._index.rules for c in rule.headers}
        for hint in self._hints:
            names.update(c.name for c in hint.conditions)
            if hint.header:
                names.add(hint.header)
        if self._should_retry:
            names.add(self._should_retry)
        return frozenset(names)

    def _plain_successes(self) -> dict[int, PlainSuccess]:
        """Statuses whose response, carrying no error in its body, meets the
        same ``succeed`` rule unless one of a few rules on headers or the
        method comes first: their action, decided once, and those rules."""
        fast: dict[int, PlainSuccess] = {}
        for status, candidates in self._index.by_status.items():
            guards: list[CompiledRule] = []
            for rule in candidates:
                if rule.error is True:
                    continue  # needs an error in the body: not this path
                if rule.headers or rule.methods:
                    guards.append(rule)  # if it holds, the full path decides
                    continue
                if rule.rule.action is _SUCCEED:
                    trace = Trace(self, rule, Response(status), None, None, None, 1, 0.0, None)
                    required = [
                        next((c.name for c in g.headers if c.expected is not False), "")
                        for g in guards
                    ]
                    needs = None if "" in required else tuple(dict.fromkeys(required))
                    fast[status] = PlainSuccess(
                        self._decide(trace, None),
                        tuple(guards),
                        needs,
                        needs[0] if needs is not None and len(needs) == 1 else "",
                    )
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
        model_attempt: int | None = None,
    ) -> Action:
        """Decide what to do about one response or network failure.

        Args:
            response: A ``Response``; a client's response object (see
                ``ClientResponse``: requests, httpx, urllib3, aiohttp with its
                body already read, ``http.client``); or the exception raised
                instead of a response (a timeout, a connection failure,
                ``urllib.error.HTTPError``, an SDK error carrying a ``.response``).
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
            model_attempt: Attempts made on this ``model`` so far, this one
                included (default: ``attempt``), for ``retries_before_fallback``.

        Returns:
            The action. Never raises: input it cannot read gives a ``fail``
            action whose explanation says why.
        """
        try:
            if type(response) is not Response and not isinstance(response, Response):
                if not isinstance(response, BaseException):
                    # A client's plain success: its status and body, nothing more.
                    plain = self._plain.get(read_status(response))  # type: ignore[arg-type]
                    if (
                        plain is not None
                        and read_body(response).find(_ERROR_KEY, 0, MAX_PARSE_BYTES) < 0
                    ):
                        return plain
                # A client's response (its headers read only as far as the
                # policy looks), else a network failure.
                coerced = coerce_response(response, self._wanted)
                if coerced is None:
                    return self._evaluate_other(
                        response, attempt, elapsed, model, method, fallback, model_attempt
                    )
                response = coerced
            status = response.status
            fast = self._fast.get(status) if type(status) is int else None
            # A plain success, unless an error object hides in the body: no
            # header is read (unless a rule on headers comes first).
            if fast is not None and response.body.find(_ERROR_KEY, 0, MAX_PARSE_BYTES) < 0:
                if not fast.guards:
                    return fast.action
                action, _, needs, need = fast
                if need:  # every guard requires this one header: is it sent?
                    if not response.headers.get(need):
                        return action
                elif needs is not None:  # each guard requires a header: is one sent?
                    get = response.headers.get
                    for name in needs:
                        if get(name):
                            break
                    else:
                        return action
                if not self._guarded(fast, response, method):
                    return action
            return self._evaluate_response(
                response, attempt, elapsed, model, method, fallback, model_attempt
            )
        except Exception as exc:  # a bug of ours must not become the caller's crash
            return self._broken(exc, model, method)

    @staticmethod
    def _guarded(fast: PlainSuccess, r: Response, method: str | None) -> bool:
        """Whether a rule on headers or the method that comes before a plain
        success holds for ``r`` (then the full path decides)."""
        guards = fast.guards
        if method and r.method is None:
            r = attrs.evolve(r, method=method.upper())
        return any(rule.holds(r, None, "") for rule in guards)

    def _evaluate_other(
        self,
        obj: Any,
        attempt: int,
        elapsed: float,
        model: str | None,
        method: str | None,
        fallback: bool,
        model_attempt: int | None = None,
    ) -> Action:
        if isinstance(obj, BaseException):
            return self._evaluate_failure(
                obj, attempt, elapsed, model, method, fallback, model_attempt
            )
        return _unreadable(
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
        fallback: bool,
        model_attempt: int | None = None,
    ) -> Action:
        if type(r.status) is not int:
            try:
                status = int(r.status)
            except Exception:
                return _unreadable(f"the status {r.status!r} is not a number")
            r = attrs.evolve(r, status=status)
        if method and r.method is None:
            r = attrs.evolve(r, method=method.upper())
        raw = parse_raw(r.body, r.status)
        compiled = self._index.select(r, raw)
        if compiled is None:
            return _unmatched(f"status {r.status}", r.status, raw)
        trace = Trace(
            self,
            compiled,
            r,
            raw,
            None,
            None,
            _attempt(attempt),
            _elapsed(elapsed),
            model,
            fallback,
            None if model_attempt is None else _attempt(model_attempt),
        )
        return self._decide(trace, None)

    def _evaluate_failure(
        self,
        exc: BaseException,
        attempt: int,
        elapsed: float,
        model: str | None,
        method: str | None,
        fallback: bool,
        model_attempt: int | None = None,
    ) -> Action:
        kind = transport_kind(exc)
        if kind is None:
            return _unreadable(
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
            return _unmatched(f"a {kind} failure", None, None, transport=kind)
        trace = Trace(
            self,
            compiled,
            None,
            None,
            kind,
            type(exc).__name__,
            _attempt(attempt),
            _elapsed(elapsed),
            model,
            fallback,
            None if model_attempt is None else _attempt(model_attempt),
        )
        return self._decide(trace, None)

    # --- deciding --------------------------------------------------------------
    # One decision procedure, run once to decide (``say`` None) and again on
    # the recorded trace when someone reads the reasons (``say`` collects the
    # steps). A replay takes the same path: the hint and the backoff drawn the
    # first time are kept on the trace.

    def _decide(self, d: Trace, say: Listener) -> Action:
        rule = d.compiled.rule
        r = d.response
        if r is not None and rule.action is _SUCCEED:
            if say is not None:
                say(Succeeded())
            return _action(d, _SUCCEED, False)
        retryable = rule.retryable
        header = self._should_retry
        if r is not None and header and rule.honour_should_retry:
            told = r.headers.get(header)
            if told:
                verdict = told[0].strip().lower()
                if verdict in ("true", "false") and (verdict == "true") is not retryable:
                    retryable = verdict == "true"
                    if say is not None:
                        say(ServerSaidRetry(header, verdict))

        wants_fallback = rule.action is _FALLBACK
        if rule.action is _FAIL or not (retryable or wants_fallback):
            if say is not None:
                say(NotRetryable(rule.action is _FAIL))
            return _action(d, _FAIL, retryable)
        if d.attempt >= rule.max_attempts:
            if say is not None:
                say(Exhausted(rule.max_attempts))
            return _action(d, _FAIL, retryable)

        if wants_fallback:
            before = rule.retries_before_fallback
            if before and retryable and d.model_attempt <= before:
                if say is not None:  # LiteLLM's "retries before fallback"
                    say(RetryBeforeFallback(before))
            else:
                nxt = _next_model(rule.fallback, d.model) if d.can_fall_back else None
                if nxt is not None:
                    return self._fall_back(d, nxt, retryable, say)
                if say is not None:
                    say(NoFallback(retryable))
                if not retryable:
                    return _action(d, _FAIL, retryable)

        if not d.hint_read:
            d.hint = self._hint_for(d) if rule.use_hints else None
        hint = d.hint
        if hint is None or hint.past is not None:
            if hint is not None and say is not None:
                say(HintInPast(hint))
            return self._retry(d, self._backoff(d, say), retryable, "backoff", say)
        return self._wait_as_asked(d, hint, retryable, say)

    def _hint_for(self, d: Trace) -> Hint | None:
        """The wait ``d``'s response asks for, by the hint sources (None: none)."""
        r = d.response
        if r is None or not self._hints:
            return None
        raw = d.raw
        message, body = (raw.message, raw.source) if raw is not None else ("", None)
        return read_hints(r.headers, self._hints, self.clock, message, body)

    def _wait_as_asked(self, d: Trace, hint: Hint, retryable: bool, say: Listener) -> Action:
        """Retry after the server's wait, or, when it is longer than
        ``hint_max``, what ``on_long_hint`` says."""
        rule = d.compiled.rule
        wait = hint.seconds
        if say is not None:
            say(HintRead(hint))
        if wait <= rule.hint_max or rule.on_long_hint is _HONOUR:
            if say is not None:
                say(HintHonoured(wait, wait > rule.hint_max))
            return self._retry(d, wait, retryable, "server", say)
        mode = rule.on_long_hint
        if mode is _CLAMP:
            if say is not None:
                say(LongHintClamped(wait))
            return self._retry(d, rule.hint_max, retryable, "clamp", say)
        if mode is _LONG_FALLBACK:
            nxt = _next_model(rule.fallback, d.model) if d.can_fall_back else None
            if nxt is not None:
                if say is not None:
                    say(LongHintFellBack(wait))
                return self._fall_back(d, nxt, retryable, say)
            if say is not None:
                say(LongHintNoFallback(wait))
        elif say is not None:
            say(LongHintFailed(wait))
        d.delay, d.delay_source = wait, "server"
        return _action(d, _FAIL, retryable)

    def _past_deadline(self, d: Trace, delay: float, say: Listener) -> bool:
        limit = d.compiled.rule.max_elapsed
        if limit > 0 and d.elapsed + delay > limit:
            if say is not None:
                say(PastDeadline(delay))
            # A server's wait stays attached so the caller knows when to come back.
            hint = d.server_hint()
            if hint is not None:
                d.delay, d.delay_source = hint.seconds, "server"
            return True
        return False

    def _retry(self, d: Trace, delay: float, retryable: bool, source: str, say: Listener) -> Action:
        if self._past_deadline(d, delay, say):
            return _action(d, _FAIL, retryable)
        d.delay, d.delay_source = delay, source
        return _action(d, _RETRY, retryable)

    def _backoff(self, d: Trace, say: Listener) -> float:
        if d.backoff is None:
            b = d.compiled.rule.backoff
            d.backoff = compute_backoff(
                d.attempt, b.initial, b.multiplier, b.max_delay, b.jitter, self.rng
            )
        if say is not None:
            say(BackedOff(d.backoff))
        return d.backoff.delay

    def _fall_back(self, d: Trace, nxt: str, retryable: bool, say: Listener) -> Action:
        delay = self._backoff(d, say)
        if self._past_deadline(d, delay, say):
            return _action(d, _FAIL, retryable)
        if say is not None:
            say(FellBack(nxt))
        d.delay, d.delay_source, d.fallback = delay, "backoff", nxt
        return _action(d, _FALLBACK, retryable)

    def _broken(self, exc: Exception, model: object, method: object) -> Action:
        for name, value in (("model", model), ("method", method)):
            if value is not None and not isinstance(value, str):
                return _unreadable(f"{name} must be a string or None, not {type(value).__name__}")
        return _unreadable(
            f"internal error while deciding ({type(exc).__name__}: {redact(str(exc))}); "
            "please report this as a bug"
        )


# A decision's ``Action`` is set field by field through its slots, as
# attrs' ``__init__`` does (Action has no validators or converters) but
# without looking up the frozen class's ``__setattr__`` for each field: 0.45 us
# instead of 0.75 us. ``_ACTION_FIELDS`` fails the import if a field is added
# and not set here (tests/test_engine.py compares both ways of building).
_ACTION_FIELDS = (
    "kind",
    "classification",
    "retryable",
    "delay",
    "rule_id",
    "fallback",
    "status",
    "transport",
    "details",
)
if tuple(a.name for a in attrs.fields(Action)) != _ACTION_FIELDS:  # pragma: no cover
    raise ImportError("Action's fields changed: set each of them in _engine._action")
_new_action = object.__new__
(
    _set_kind,
    _set_classification,
    _set_retryable,
    _set_delay,
    _set_rule_id,
    _set_fallback,
    _set_status,
    _set_transport,
    _set_details,
) = (getattr(Action, name).__set__ for name in _ACTION_FIELDS)


def _action(d: Trace, kind: ActionKind, retryable: bool) -> Action:
    rule = d.compiled.rule
    r = d.response
    action = _new_action(Action)
    _set_kind(action, kind)
    _set_classification(action, rule.classification)
    _set_retryable(action, retryable)
    _set_delay(action, d.delay)
    _set_rule_id(action, rule.id)
    _set_fallback(action, d.fallback)
    _set_status(action, r.status if r is not None else None)
    _set_transport(action, d.transport)
    _set_details(action, d)
    return action


def _unmatched(
    what: str, status: int | None, raw: RawError | None, transport: str | None = None
) -> Action:
    details = StaticDetails(
        reasons=(f"no enabled rule matched {what}", "fail: nothing to decide by"),
        remediation="No rule of the policy covers this outcome; add a catch-all rule.",
        error=to_error(raw) if raw is not None else None,
    )
    return Action(_FAIL, "unknown", False, 0.0, "", None, status, transport, details=details)


def _unreadable(why: str) -> Action:
    details = StaticDetails(
        reasons=(why, "fail: nothing to decide by"),
        remediation="This outcome could not be read; see the explanation.",
    )
    return Action(_FAIL, "unknown", False, 0.0, "", details=details)
