"""requests: an ``HTTPAdapter`` that retries, waits and falls back as the policy says.

    import requests
    import policyengine as pe
    from policyengine.requests import PolicyAdapter

    session = requests.Session()
    session.mount("https://", PolicyAdapter(engine=pe.Engine()))
    response = session.post(url, json={"model": "gpt-4o", "messages": [...]})

``PolicyAdapter`` is a ``requests.adapters.HTTPAdapter`` (it takes the same
pool arguments), so a session keeps its auth, cookies, proxies and hooks.
What the session gets back is what it would get without it: the final
response (a success, or the error response the policy gave up on; call
``raise_for_status()`` as usual), or the final exception
(``requests.ReadTimeout``...), which carries a note saying why the policy
gave up.

On a fallback, the JSON body's ``"model"`` is replaced in the next request;
every other header, including an ``Idempotency-Key`` you set, is sent again
unchanged. A request whose body names no model (a GET, a model in the URL)
cannot fall back: the policy gives up with the response instead of resending
it. To tighten the policy for some calls, wrap them in
``policyengine.overriding(max_attempts=1)``.

For retries and waits below requests (no model fallback), urllib3's way:
``HTTPAdapter(max_retries=policyengine.urllib3.PolicyRetry())``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.exceptions import UnrewindableBodyError
from requests.utils import rewind_body
from urllib3 import HTTPHeaderDict

from ._adapting import body_model, destination, driver_for, refusal, swap_model, wants_body
from ._driver import Driver
from ._engine import Engine
from ._governor import Deny, Governor
from ._model import Response
from ._results import Attempt, Outcome

__all__ = ["PolicyAdapter"]


class PolicyAdapter(HTTPAdapter):
    """A transport adapter for ``requests`` sessions driven by a policy.

    Args:
        engine: The engine (its policy) to decide with; default ``Engine()``.
        driver: A ``Driver`` to use instead (for hooks or a logger of your own).
        governor: The ``Governor`` to share with other clients; default one
            of this adapter's own, from the policy's ``[governor]``.
        **kwargs: ``HTTPAdapter`` arguments (``pool_connections``,
            ``pool_maxsize``, ``pool_block``); not ``max_retries``.

    Raises:
        TypeError: ``max_retries`` was given (the policy does the retrying),
            or ``driver`` with ``engine`` or ``governor``.
    """

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        driver: Driver | None = None,
        governor: Governor | None = None,
        **kwargs: Any,
    ) -> None:
        if "max_retries" in kwargs:
            raise TypeError(
                "PolicyAdapter does the retrying as the policy says: drop max_retries "
                "(to limit attempts for some calls, use policyengine.overriding(max_attempts=...))"
            )
        self.driver = driver_for(engine, driver, governor)
        super().__init__(**kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request``, retrying and falling back per the policy.

        Returns:
            The final response (a success, or the one the policy gave up on).

        Raises:
            requests.RequestException: The final network failure (a note says why).
        """
        request, rewind = _replayable(request)
        model = body_model(request.body)
        method = request.method or "GET"

        def attempt(a: Attempt) -> requests.Response:
            if rewind and a.number > 1:
                rewind_body(request)  # the last attempt read the file to its end
            sent = _retarget(request, a.model, model)
            response = HTTPAdapter.send(
                self,
                sent,
                stream=stream,
                timeout=timeout,
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
            if wants_body(response.status_code, response.headers.get("content-type")):
                _ = response.content  # read (and kept) so the policy can look at the error
            return response

        def view(response: requests.Response) -> Response:
            read = wants_body(response.status_code, response.headers.get("content-type"))
            body = (response.content or b"") if read else b""
            return Response(response.status_code, list(response.headers.items()), body, method)

        outcome: Outcome[requests.Response] = self.driver.run(
            attempt,
            model=model,
            method=method,
            view=view,
            discard=_close,
            fallback=model is not None,
            destination=destination(request.url or "", request.headers.items()),
            refused=lambda deny: self._refused(deny, request),
        )
        return outcome.as_client()

    def _refused(self, deny: Deny, request: requests.PreparedRequest) -> requests.Response:
        """The governor refused to send: a response built as requests builds one."""
        made = refusal(deny)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(made.body),
            headers=HTTPHeaderDict([(n, v) for n, values in made.headers.items() for v in values]),
            status=made.status,
            preload_content=False,
            decode_content=False,
        )
        response = self.build_response(request, raw)
        _ = response.content  # read now: nothing waits on a socket
        return response


def _replayable(request: requests.PreparedRequest) -> tuple[requests.PreparedRequest, bool]:
    """``request`` with a body every attempt can send whole, and whether it
    is a file to rewind before each retry. A file that can tell its position
    is rewound (as requests does on a redirect); any other stream (a
    generator...) is read into bytes once, as httpx does."""
    body = request.body
    if body is None or isinstance(body, (bytes, str)):
        return request, False
    try:  # a file requests knows the start of (as for a redirect): rewound each time
        rewind_body(request)
    except UnrewindableBodyError:
        pass
    else:
        return request, True
    chunks = body if not isinstance(body, (bytearray, memoryview)) else [bytes(body)]
    data = b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in chunks)
    copy = request.copy()
    copy.body = data
    copy.headers.pop("Transfer-Encoding", None)
    copy.headers["Content-Length"] = str(len(data))
    return copy, False


def _retarget(
    request: requests.PreparedRequest, model: str | None, original: str | None
) -> requests.PreparedRequest:
    """The request to send for ``model``: the original, or a copy whose JSON
    body names the fallback model."""
    if model is None or original is None or model == original:
        return request
    body = request.body
    raw = body.encode("utf-8") if isinstance(body, str) else body
    assert isinstance(raw, bytes)  # body_model found a JSON object in it
    copy = request.copy()
    copy.body = swap_model(raw, model)
    copy.headers["Content-Length"] = str(len(copy.body))
    return copy


def _close(response: requests.Response) -> None:
    response.close()
