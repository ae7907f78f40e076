"""Fixtures for the adapter tests: a fake gateway on 127.0.0.1 and testing mode."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence

import pytest

import policyengine as pe
from policyengine.testing import FakeGateway, TestingMode, testing_mode

#: What the fallback tests fall back to.
BACKUP = "backup-model"

#: A deployment layer: fallback chains, and no retry of a POST that timed out
#: while reading (the server may have acted on it).
DEPLOYMENT = {
    "rules": [
        {"id": "upstream-unavailable", "fallback": [BACKUP]},
        # Anthropic's 529 and Gemini's 503 say "overloaded": the same chain.
        {"id": "overloaded-message", "action": "fallback", "fallback": [BACKUP]},
        {"id": "model-not-found", "fallback": [BACKUP]},
        {"id": "model-not-found-message", "fallback": [BACKUP]},  # Anthropic's, Gemini's
        {
            "id": "post-read-timeout",
            "match": {"transport": "read_timeout", "method": "POST"},
            "classification": "timeout",
            "action": "fail",
            "remediation": "A POST timed out while reading; it is not retried.",
        },
    ]
}


@pytest.fixture(autouse=True)
def _loopback_without_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy set in the environment must not see the fake gateway's traffic."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway() as running:
        yield running


@pytest.fixture
def testing() -> Iterator[TestingMode]:
    with testing_mode(seed=7) as mode:
        yield mode


@pytest.fixture(scope="session")
def default_engine() -> pe.Engine:
    return pe.Engine(pe.load_policy(env=False))


@pytest.fixture(scope="session")
def deployment_engine() -> pe.Engine:
    return pe.Engine(pe.load_policy(DEPLOYMENT, env=False))


class RawServer:
    """A server on 127.0.0.1 that answers the n-th connection with the n-th
    of ``replies`` (raw bytes, malformed ones included), the last one again
    after that, then closes it. ``chat_url`` / ``base_url`` as the gateway's."""

    def __init__(self, replies: Sequence[bytes]) -> None:
        self.replies = list(replies)
        self.count = 0
        self._socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _serve(self) -> None:
        self._socket.settimeout(0.05)  # to see the stop flag: accept() ignores close()
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.replies[min(self.count, len(self.replies) - 1)]
            self.count += 1
            threading.Thread(target=self._answer, args=(conn, reply), daemon=True).start()

    def _answer(self, conn: socket.socket, reply: bytes) -> None:
        with conn:
            try:
                conn.settimeout(5.0)
                if self._received(conn):
                    self._reply(conn, reply)
            except OSError:
                pass

    @staticmethod
    def _received(conn: socket.socket) -> bool:
        """Read a request whole (its head, and a body of its Content-Length);
        False when the client went away first."""
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or b"0")
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True

    def _reply(self, conn: socket.socket, reply: bytes) -> None:
        conn.sendall(reply)
        conn.shutdown(socket.SHUT_WR)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._socket.close()


class GatedServer(RawServer):
    """A ``RawServer`` that answers every connection with ``head`` (the status
    line, headers and the first part of the body), then waits until ``gate``
    is set (at most 10 s) before it sends ``rest`` and closes: a body still
    coming when the adapter has read all it reads to decide."""

    def __init__(self, head: bytes, rest: bytes) -> None:
        super().__init__([head])
        self.rest = rest
        self.gate = threading.Event()

    def _reply(self, conn: socket.socket, reply: bytes) -> None:
        conn.sendall(reply)
        self.gate.wait(10.0)
        conn.sendall(self.rest)
        conn.shutdown(socket.SHUT_WR)
