"""Redaction: secrets a server echoes back are masked before any text leaves
the library (action texts, exceptions, log records, CLI output)."""

from __future__ import annotations

import re

__all__ = ["redact"]

_KEY_PREFIXES = r"(?:sk|gsk|xai|hf|ghp|gho|ghs|github_pat|glpat|r8|pplx|nvapi)[-_]"
_SECRET = re.compile(
    r"""
    (?P<bearer>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=-]{8,}
    | (?P<prefix>\b"""
    + _KEY_PREFIXES
    + r""")
      [A-Za-z0-9_*-](?:[A-Za-z0-9._*-]*[A-Za-z0-9_*])?
    # OpenAI's "Incorrect API key provided: <key>." whatever the key looks like
    # (a gateway's own format); a known prefix is kept by the branch above.
    | (?P<provided>\b(?:api[ _-]?key|token)\s+provided:\s*["'`]?)(?!"""
    + _KEY_PREFIXES
    + r""")
      [^\s"'`,;]*[^\s"'`,;.]
    | (?P<google>\bAIza)[0-9A-Za-z_-]{20,}
    | (?P<jwt>\beyJ)[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*
    | (?P<kv>\b(?:api[_-]?key|apikey|access[_-]?token|token|secret|password|key)
         \s*[=:]\s*["']?)[^\s"',;&)]{6,}
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _mask(m: re.Match[str]) -> str:
    return (
        m.group("bearer")
        or m.group("prefix")
        or m.group("google")
        or m.group("jwt")
        or m.group("kv")
        or m.group("provided")
        or ""
    ) + "***"


def redact(text: str) -> str:
    """``text`` with API keys, bearer tokens and ``key=value`` secrets masked.

    >>> redact("Invalid API key provided: sk-nex-abc123.")
    'Invalid API key provided: sk-***.'
    """
    return _SECRET.sub(_mask, text)
