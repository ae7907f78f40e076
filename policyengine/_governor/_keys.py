"""Keys: where traffic goes, as the governor tells callers apart.

A key is the request's host (scheme, host, port), a fingerprint of its
credential and its model, each kept or blanked as the policy's
``[governor] key`` says. The credential itself is never kept: only the first
``FINGERPRINT_CHARS`` hex digits of its SHA-256, enough to tell a handful of
keys apart and useless to anyone who reads a log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .._model import KeyPart

__all__ = [
    "CREDENTIAL_HEADERS",
    "FINGERPRINT_CHARS",
    "Destination",
    "TrafficKey",
    "credential_fingerprint",
    "make_key",
]

#: The request headers that carry an API credential, in order of preference.
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
#: Hex digits of the SHA-256 of a credential kept in a key (48 bits).
FINGERPRINT_CHARS = 12
#: A host or model longer than this is cut (a key is a dict key, not a payload).
MAX_PART_CHARS = 256


class Destination(NamedTuple):
    """Where a call goes, as an adapter sees its request: the host (scheme,
    host and port) and its credential's fingerprint ("" where unknown)."""

    host: str = ""
    credential: str = ""


class TrafficKey(NamedTuple):
    """Where a request goes: host, credential fingerprint, model ("" where unknown
    or left out by the policy)."""

    host: str = ""
    credential: str = ""
    model: str = ""

    def __str__(self) -> str:
        parts = [self.host or "(any host)"]
        if self.credential:
            parts.append(f"key {self.credential}")
        if self.model:
            parts.append(f"model {self.model}")
        return " ".join(parts)


def credential_fingerprint(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """The fingerprint of the first credential header present, or ""."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for name, value in items:
        lowered = str(name).lower()
        if lowered in CREDENTIAL_HEADERS and lowered not in found and value:
            found[lowered] = str(value)
    for name in CREDENTIAL_HEADERS:
        if name in found:
            digest = hashlib.sha256(found[name].strip().encode("utf-8", "replace"))
            return digest.hexdigest()[:FINGERPRINT_CHARS]
    return ""


def make_key(
    parts: tuple[KeyPart, ...], host: str = "", credential: str = "", model: str | None = None
) -> TrafficKey:
    """The key of a request, keeping only the ``parts`` the policy names."""
    return TrafficKey(
        host[:MAX_PART_CHARS].lower() if KeyPart.HOST in parts else "",
        credential if KeyPart.API_KEY in parts else "",
        (model or "")[:MAX_PART_CHARS] if KeyPart.MODEL in parts else "",
    )
