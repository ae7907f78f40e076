"""urllib3: a ``Retry`` that retries, waits and gives up as the policy says.

    import urllib3
    import policyengine as pe
    from policyengine.urllib3 import PolicyRetry

    http = urllib3.PoolManager(retries=PolicyRetry(engine=pe.Engine()))
    response = http.request("POST", url, json={"model": "gpt-4o", "messages": [...]})

It plugs in wherever urllib3 takes ``retries=`` (``PoolManager``,
``HTTPConnectionPool``, ``urlopen``) and into requests as
``HTTPAdapter(max_retries=PolicyRetry())``. urllib3 still runs its loop; each
decision comes from the engine through the ``Driver`` (logging, hooks,
testing mode, ``overriding()``), and each wait is the engine's delay.

What you get back is what urllib3 gives: the final response when the policy
gives up on a response (or ``MaxRetryError`` whose ``reason`` is a
``PolicyGaveUp`` with the action, if you set ``raise_on_status=True``); on a
network failure, a read error (``ReadTimeoutError``, ``ProtocolError``) is
raised as it is and any other error inside ``MaxRetryError``, as urllib3 does,
each with a note saying why the policy gave up.

Limits of this layer, which sees neither the request body nor when the
first attempt started:

- It cannot switch models: it decides as if the fallback chain were used up
  (``evaluate(fallback=False)``), so a retryable error is retried on the same
  model and any other gives up (for model fallback use
  ``policyengine.requests.PolicyAdapter`` or the ``Driver``).
- It sees only the status of a 2xx response, so an error object inside a 2xx
  body is not seen here (the other adapters retry it).
- ``elapsed`` counts from the first failed attempt.
- To decide, it reads the body of an error response, whole. With
  ``preload_content=False`` (requests does this) the body of the response it
  gives up on is then in ``response.data`` only; requests users should mount
  ``policyengine.requests.PolicyAdapter`` instead. A body that trickles or
  never ends is bounded only by the client's read timeout (one read at a
  time), as urllib3 itself reads a body whole before asking a ``Retry``
  (``preload_content=True``); the other adapters decide on at most
  ``BODY_MAX_BYTES`` and ``BODY_MAX_SECONDS`` of a body.
- A success is handed over before its body is read when
  ``preload_content=False``: a body that breaks off later (requests reads it
  after urllib3 returns) is beyond any ``Retry``.
- Streams (``text/event-stream``) likewise: ``is_retry`` is given the status
  of a 2xx and nothing else, so an error event first in a 200 stream is
  handed over after one request (not retried), and an error event or a drop
  mid-stream reaches the reader as the body, or as urllib3's own
  ``ProtocolError``, with no decision attached (no ``StreamInterrupted``).
  ``policyengine.requests.PolicyAdapter`` and ``policyengine.httpx`` decide
  on a stream's first event and watch the rest.
- Redirects stay urllib3's business (counted by ``redirect``, default 10).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import attrs
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import RequestHistory, Retry

from ._adapting import driver_for
from ._driver import MAX_HELD, CallClock, Driver
from ._engine import Engine
from ._errors import add_note, give_up_note
from ._governor import Deny, Go, Governor, Hold, Ticket, TrafficKey
from ._model import Action, ActionKind, Response
from ._overrides import Override
from ._results import Attempt, Decision
from ._testing import current_testing

__all__ = ["PolicyGaveUp", "PolicyRetry"]

#: Follow at most this many redirects (urllib3 counts them; the policy does not).
DEFAULT_REDIRECTS = 10


class PolicyGaveUp(ResponseError):
    """The ``reason`` of the ``MaxRetryError`` raised when the policy gives up
    on a response and ``raise_on_status`` is set.

    Attributes:
        action: The final action (``remediation``, ``explanation``).
        history: One ``Decision`` per attempt.
    """

    def __init__(self, action: Action, history: tuple[Decision, ...]) -> None:
        self.action = action
        self.history = history
        super().__init__(give_up_note(action, len(history)))


@attrs.frozen
class _State:
    """What one request's chain of ``PolicyRetry`` objects carries along."""

    clock: CallClock | None = None
    """Started at the first decision of the request (urllib3 tells no earlier)."""
    host: str = ""
    """``scheme://host:port`` of the request, for the governor's key."""
    decisions: tuple[Decision, ...] = ()
    pending: Action | None = None


class PolicyRetry(Retry):
    """A ``urllib3.util.Retry`` whose every decision comes from the policy.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: A ``Governor`` to share with other clients; default one
            made from the engine's policy.
        override: Tighter limits for every request made with this object.
        redirect: How many redirects to follow (urllib3's count).
        raise_on_status: True: raise ``MaxRetryError`` (``reason`` a
            ``PolicyGaveUp``) instead of returning a response the policy gave
            up on.
        **kwargs: Other ``Retry`` arguments, kept for urllib3's sake; the
            counters (``total``, ``connect``, ``read``, ``status``) and
            ``allowed_methods`` are the policy's business and stay unused.

    Raises:
        TypeError: ``driver`` with ``engine`` or ``governor`` (a driver has its own).
    """

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        driver: Driver | None = None,
        governor: Governor | None = None,
        override: Override | None = None,
        redirect: bool | int | None = DEFAULT_REDIRECTS,
        raise_on_status: bool = False,
        _state: _State | None = None,
        **kwargs: Any,
    ) -> None:
        self.driver = driver_for(engine, driver, governor)
        kwargs.setdefault("total", None)
        kwargs.setdefault("allowed_methods", None)
        super().__init__(redirect=redirect, raise_on_status=raise_on_status, **kwargs)
        self.override = override
        self._state = _state if _state is not None else _State()
        self._ticket: Ticket | None = None

    def new(self, **kw: Any) -> PolicyRetry:
        """A copy with ``kw`` changed (urllib3 makes one per attempt)."""
        kw.setdefault("driver", self.driver)
        kw.setdefault("override", self.override)
        kw.setdefault("_state", self._state)
        new = super().new(**kw)
        assert isinstance(new, PolicyRetry)
        return new

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """The decisions made so far for this request."""
        return self._state.decisions

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        """Whether urllib3 should hand this response to ``increment``: every
        one the policy does not call a success from its status alone, except
        redirects (the body decides the rest, in ``increment``)."""
        if status_code in BaseHTTPResponse.REDIRECT_STATUSES:
            return False
        verb = method.upper()
        plain = self.driver.engine.evaluate(Response(status_code, method=verb))
        if plain.kind is not ActionKind.SUCCEED:
            return True
        # A success: decided (logged, and told to the hooks) here, as urllib3
        # hands it to no other method of ours.
        attempt = self._attempt()
        action = self.driver.decide(
            Response(status_code, method=verb), attempt, method=verb, override=self.override
        )
        self.driver.notify(Decision(attempt, action, None))
        return False

    def _attempt(self) -> Attempt:
        state = self._state
        elapsed = state.clock.elapsed() if state.clock is not None else 0.0
        return Attempt(len(state.decisions) + 1, None, elapsed)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> PolicyRetry:
        """Decide about one response or network failure.

        Returns:
            The ``PolicyRetry`` for the next attempt, when the policy retries.

        Raises:
            MaxRetryError: The policy gave up (urllib3 returns the response
                instead unless ``raise_on_status``), or a network failure
                other than a read error.
            urllib3.exceptions.ReadTimeoutError: The policy gave up on a read
                timeout (likewise ``ProtocolError``).
        """
        if error is None and response is not None and response.get_redirect_location():
            new = super().increment(method, url, response, error, _pool, _stacktrace)
            assert isinstance(new, PolicyRetry)
            return new
        state = self._state
        clock = state.clock or CallClock.start(self.driver.clock, current_testing())
        attempt = self._attempt()
        verb = method.upper() if method else None
        outcome: object = error
        status = None
        if error is None and response is not None:
            status = response.status
            try:
                body = response.data or b""
            except Exception as exc:  # the body broke off: a network failure
                error = exc
                outcome = exc
            else:
                outcome = Response(status, list(response.headers.items()), body, verb)
        action = self.driver.decide(
            outcome, attempt, method=verb, override=self.override, fallback=False
        )
        action = self._settle(_pool, outcome, action, clock)
        decision = Decision(attempt, action, outcome, action.delay if action.should_retry else 0.0)
        self.driver.notify(decision)
        history = (*self.history, RequestHistory(method, url, error, status, None))
        decisions = (*state.decisions, decision)
        if action.should_retry:
            return self.new(
                history=history,
                _state=_State(clock, self._state.host, decisions, action),
            )
        if error is not None:
            add_note(error, give_up_note(action, len(decisions)))
            # As urllib3 does when it will not retry: a read error as it is
            # (a body that broke off is one), anything else inside MaxRetryError.
            if response is not None or self._is_read_error(error):
                raise error.with_traceback(_stacktrace) if _stacktrace else error
            raise MaxRetryError(_pool, url, error) from error  # type: ignore[arg-type]
        raise MaxRetryError(_pool, url, PolicyGaveUp(action, decisions))  # type: ignore[arg-type]

    def get_backoff_time(self) -> float:
        """The wait the policy asked for before the next attempt."""
        pending = self._state.pending
        return pending.delay if pending is not None and pending.should_retry else 0.0

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """Wait what the policy asked for (recorded, not slept, in testing
        mode), then what the governor asks for before the retry goes.

        Raises:
            MaxRetryError: The governor refused the retry (``reason`` a
                ``PolicyGaveUp``): an open circuit whose probe is past the
                deadline, a sticky failure.
        """
        pending = self._state.pending
        clock = self._state.clock
        if pending is None or clock is None:
            return
        seconds = clock.wait(pending.delay)
        if seconds > 0:
            time.sleep(seconds)
        self._admit(clock)

    def _key(self) -> TrafficKey | None:
        governor = self.driver.governor
        if governor is None or not governor.enabled or not self._state.host:
            return None
        return governor.key(self._state.host)

    def _admit(self, clock: CallClock) -> None:
        """Hold the retry as the governor says (urllib3 gives a ``Retry`` no
        say before a first attempt: the governor only learns from those)."""
        governor, key = self.driver.governor, self._key()
        if governor is None or key is None:
            return
        rule = self._state.pending.rule_id if self._state.pending is not None else ""
        limit = self.driver.engine.max_elapsed(rule) or MAX_HELD
        while True:
            now = clock.now()
            admission = governor.admit(
                key,
                now,
                retry=True,
                deadline_at=now + limit - clock.elapsed(),
                jitter=self.driver.engine.rng.random(),
            )
            if isinstance(admission, Deny):
                decisions = (
                    *self._state.decisions,
                    Decision(self._attempt(), admission.action, None),
                )
                raise MaxRetryError(None, "", PolicyGaveUp(admission.action, decisions))  # type: ignore[arg-type]
            if isinstance(admission, Hold) and admission.signal is not None:
                admission.signal.wait(admission.wait)
                continue
            pause = clock.hold(admission.wait)
            if pause > 0:
                time.sleep(pause)
            if isinstance(admission, Go):
                self._ticket = admission.ticket
                return

    def _settle(
        self, pool: ConnectionPool | None, outcome: object, action: Action, clock: CallClock
    ) -> Action:
        """Teach the governor what came back (and let it ration the retry)."""
        governor = self.driver.governor
        if governor is None or not governor.enabled or pool is None:
            return action
        host = f"{pool.scheme}://{pool.host}:{pool.port}"
        if not self._state.host:
            self._state = attrs.evolve(self._state, host=host)
        if action.status is None and action.transport is None:
            return action
        ticket = self._ticket or Ticket(governor.key(host), None, False, False)
        self._ticket = None
        response = outcome if isinstance(outcome, Response) else None
        return governor.settle(ticket, clock.now(), response, action)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(decisions={len(self._state.decisions)}, "
            f"redirect={self.redirect}, raise_on_status={self.raise_on_status})"
        )
