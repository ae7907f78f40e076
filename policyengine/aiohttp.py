"""aiohttp: a client middleware that retries, waits and falls back as the policy says.

    import aiohttp
    import policyengine as pe
    from policyengine.aiohttp import PolicyMiddleware

    async with aiohttp.ClientSession(middlewares=(PolicyMiddleware(engine=pe.Engine()),)) as s:
        async with s.post(url, json={"model": "gpt-4o", "messages": [...]}) as response:
            data = await response.json()

Client middlewares need aiohttp >= 3.12. What the session gets back is what
it would get without the middleware: the final response (a success, or the
error response the policy gave up on, its body already read; call
``raise_for_status()`` as usual), or the final exception
(``aiohttp.SocketTimeoutError``...), which carries a note saying why the
policy gave up.

On a fallback, the JSON body's ``"model"`` is replaced in the next request;
every other header, including an ``Idempotency-Key`` you set, is sent again
unchanged. A request whose body names no model (a GET, a model in the URL)
cannot fall back: the policy gives up with the response instead of resending
it. To tighten the policy for some calls, wrap them in
``policyengine.overriding(max_attempts=1)``.

aiohttp's ``ClientTimeout(total=...)`` covers the whole call, retries and
waits included; use ``sock_read`` / ``sock_connect`` for a per-attempt limit.
"""

from __future__ import annotations

import aiohttp
from aiohttp.client_middlewares import ClientHandlerType
from aiohttp.payload import AsyncIterablePayload, BytesPayload
from multidict import CIMultiDict, CIMultiDictProxy

from ._adapting import body_model, destination, driver_for, refusal, swap_model, wants_body
from ._driver import Driver
from ._engine import Engine
from ._errors import add_note, give_up_note
from ._governor import Deny, Governor
from ._model import Response
from ._results import Attempt, Outcome

__all__ = ["PolicyMiddleware"]


class PolicyMiddleware:
    """An aiohttp client middleware driven by a policy.

    Pass it in ``ClientSession(middlewares=(...,))``, or per request with
    ``session.post(..., middlewares=(...,))``.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients; default one
            of this adapter's own, from the policy's ``[governor]``.

    When the governor refuses to send a call's first attempt (a sticky
    failure, an open circuit), there is no response to hand back: the
    middleware raises ``aiohttp.ClientResponseError`` with the status the
    refusal stands for (the replayed one, or 503 / 429), as
    ``raise_for_status()`` would, with a note saying why.

    Raises:
        TypeError: ``driver`` with ``engine`` or ``governor``.
    """

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        driver: Driver | None = None,
        governor: Governor | None = None,
    ) -> None:
        self.driver = driver_for(engine, driver, governor)

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Send ``request`` through ``handler``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            aiohttp.ClientError: The final network failure (a note says why).
            asyncio.TimeoutError: The session's total timeout ran out.
        """
        payload = request.body
        body: bytes | None = None
        if isinstance(payload, (BytesPayload, AsyncIterablePayload)):
            # An async iterable is read once (aiohttp caches its chunks), so
            # that a retry sends it whole rather than what is left of it.
            body = await payload.as_bytes()
        model = body_model(body)
        current = model
        method = request.method
        bodies: dict[int, bytes] = {}  # id(response) -> the body read for the policy

        async def attempt(a: Attempt) -> aiohttp.ClientResponse:
            nonlocal current
            if body is not None and model is not None and a.model not in (None, current):
                assert a.model is not None
                await request.update_body(swap_model(body, a.model))
                current = a.model
            response = await handler(request)
            if wants_body(response.status, response.headers.get("Content-Type")):
                try:
                    bodies[id(response)] = await response.read()
                except BaseException:
                    response.release()
                    raise
            return response

        def view(response: aiohttp.ClientResponse) -> Response:
            return Response(
                response.status,
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
                bodies.get(id(response), b""),
                method,
            )

        outcome: Outcome[aiohttp.ClientResponse] = await self.driver.arun(
            attempt,
            model=model,
            method=method,
            view=view,
            discard=_release,
            fallback=model is not None,
            destination=destination(str(request.url), request.headers.items()),
            refused=lambda deny: _refused(deny, request),
        )
        return outcome.as_client()


def _refused(deny: Deny, request: aiohttp.ClientRequest) -> aiohttp.ClientResponse:
    """The governor refused to send: raise what ``raise_for_status`` would."""
    made = refusal(deny)
    error = aiohttp.ClientResponseError(
        request.request_info,
        (),
        status=made.status,
        message=deny.action.remediation,
        headers=CIMultiDictProxy(
            CIMultiDict((n, v) for n, values in made.headers.items() for v in values)
        ),
    )
    add_note(error, give_up_note(deny.action, 1))
    raise error


def _release(response: aiohttp.ClientResponse) -> None:
    response.release()
