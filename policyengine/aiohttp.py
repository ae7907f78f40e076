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

from ._adapting import body_model, driver_for, swap_model, wants_body
from ._driver import Driver
from ._engine import Engine
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

    Raises:
        TypeError: Both ``engine`` and ``driver`` were given.
    """

    def __init__(self, *, engine: Engine | None = None, driver: Driver | None = None) -> None:
        self.driver = driver_for(engine, driver)

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
        )
        return outcome.as_client()


def _release(response: aiohttp.ClientResponse) -> None:
    response.release()
