"""A failure a key remembers for its other callers: the sticky failure they
are told at once, the failure that opened the circuit.

It keeps what the engine said (texts rendered, secrets already redacted) and
the answer to replay, bounded and redacted, as plain data: another process reads it back
from the shared store (``to_json`` / ``from_json``, which tolerate garbage).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs

from .._errorbody import MAX_PARSE_BYTES
from .._model import (
    Action,
    ActionKind,
    AmendedDetails,
    Facts,
    ParsedError,
    Response,
    StaticDetails,
)
from .._redact import redact

__all__ = ["MAX_REPLAY_BYTES", "Remembered"]

#: A replayed answer keeps at most this much of its body.
MAX_REPLAY_BYTES = MAX_PARSE_BYTES
#: ... and at most this many headers.
MAX_REPLAY_HEADERS = 64


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@attrs.frozen
class Remembered:
    """A failure, as the callers who did not see it are told it."""

    classification: str
    rule_id: str
    retryable: bool
    delay: float
    status: int | None
    transport: str | None
    remediation: str
    reasons: tuple[str, ...]
    error: ParsedError | None = None
    response: Response | None = None
    facts: Facts = attrs.field(factory=Facts)

    @classmethod
    def of(cls, action: Action, response: Response | None) -> Remembered:
        """Remember ``action`` (and the answer it was about, bounded)."""
        kept = None
        if response is not None:
            # Replayed to other callers and perhaps kept in a shared store: a
            # key the server echoed is masked here too.
            headers = [(n, redact(v)) for n, values in response.headers.items() for v in values]
            body = response.body[:MAX_REPLAY_BYTES].decode("utf-8", "replace")
            kept = Response(
                response.status,
                headers[:MAX_REPLAY_HEADERS],
                redact(body).encode("utf-8"),
                response.method,
            )
        return cls(
            action.classification,
            action.rule_id,
            action.retryable,
            action.delay,
            action.status,
            action.transport,
            action.remediation,
            action.reasons,
            action.error,
            kept,
            action.facts,
        )

    def action(self, why: str, note: str = "") -> Action:
        """The failure as an action for another call: a give-up, ``why`` added
        to its reasons (and ``note`` to its remediation)."""
        base = StaticDetails(self.error, self.remediation, self.reasons, "none", self.facts)
        return Action(
            ActionKind.FAIL,
            self.classification,
            self.retryable,
            self.delay,
            self.rule_id,
            None,
            self.status,
            self.transport,
            details=AmendedDetails(base, after=(why,), note=note),
        )

    # --- for a shared store -----------------------------------------------------------

    def to_json(self) -> str:
        data: dict[str, Any] = attrs.asdict(self, recurse=False)
        data["reasons"] = list(self.reasons)
        data["error"] = attrs.asdict(self.error) if self.error is not None else None
        data["facts"] = attrs.asdict(self.facts)
        if self.response is not None:
            r = self.response
            data["response"] = {
                "status": r.status,
                "headers": [[n, v] for n, values in r.headers.items() for v in values],
                "body": base64.b64encode(r.body).decode("ascii"),
            }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes | None) -> Remembered | None:
        """Read one back; None for anything that is not one (a store's garbage)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            error = data.get("error")
            response = data.get("response")
            facts = data.get("facts")
            return cls(
                str(data["classification"]),
                str(data["rule_id"]),
                bool(data["retryable"]),
                float(data["delay"]),
                int(data["status"]) if data.get("status") is not None else None,
                str(data["transport"]) if data.get("transport") is not None else None,
                str(data["remediation"]),
                tuple(str(r) for r in data["reasons"]),
                ParsedError(**{k: _tuple(v) for k, v in error.items()})
                if isinstance(error, dict)
                else None,
                Response(
                    int(response["status"]),
                    [(str(n), str(v)) for n, v in response["headers"]][:MAX_REPLAY_HEADERS],
                    base64.b64decode(response["body"])[:MAX_REPLAY_BYTES],
                )
                if isinstance(response, dict)
                else None,
                Facts(**facts) if isinstance(facts, dict) else Facts(),
            )
        except Exception:
            return None
