"""Redaction: the catalogue of secret shapes, masked in every text that leaves
the library (action texts, the parsed error, exceptions and their notes, log
messages and log record attributes, the governor's log, CLI output).

``SHAPES`` is the catalogue, in the order its shapes are applied (the most
specific first); docs/policy.md ("Secrets") lists it for people.
A secret is replaced by ``***``; what says which kind of secret it was (a key
prefix such as ``sk-``, an auth scheme, a ``name=`` before a value) is kept.

Every shape runs in time linear in the text: a shape that scans a run of
characters starts only where such a run starts (a lookbehind on the run's own
characters), or scans a bounded number of characters, or cannot fail after a
long scan; so no run is scanned from many starts. ``tests/test_redact.py``
checks each shape against hostile strings, and that redacting twice changes
nothing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["MASK", "SHAPES", "Shape", "redact"]

#: What a secret is replaced with.
MASK = "***"


class Shape(NamedTuple):
    """One kind of secret: its name, an example (a made-up value), and the
    regular expression finding it. The pattern's first group is what is kept
    (the key prefix, the ``name=``); the rest of its match is masked."""

    name: str
    example: str
    pattern: str


# Characters of a token (API keys, JWTs, base64): a shape scanning such a run
# starts only where the run starts.
_TOKEN = r"A-Za-z0-9_-"
_SCHEME = r"(?i:Bearer|Basic|Token)\s{1,16}"
# Names whose value is a secret: the name ends with one of these words.
_SECRET_WORDS = (
    r"(?i:key|token|secret|passw(?:or)?d|pwd|credentials?|signature|sig|auth(?:orization)?"
    r"|cookie|session[_-]?id)"
)
_KEY_PREFIXES = (
    # provider API keys: OpenAI / Anthropic / OpenRouter / DeepSeek (sk-), Stripe
    # (sk_, rk_), Groq, xAI, Perplexity, NVIDIA; model hubs: Hugging Face,
    # Replicate; source hosts: GitHub, GitLab; package registries: npm, PyPI;
    # chat platforms: Slack bot, user and app tokens.
    r"(?i:sk|rk|gsk|xai|pplx|nvapi|hf|api_org|r8|ghp|gho|ghu|ghs|ghr|github_pat|glpat"
    r"|npm|pypi|dckr_pat|xox[abposre]|xapp)[-_]"
)
# More model APIs: Together, Fireworks, Cerebras, LangSmith, Tavily, Jina,
# each with its own separator ("jina-embeddings-v3" is a model). Their
# prefixes also begin ordinary names ("fw_mode", "tvly-search"): a key is
# taken only with a body of MIN_PREFIXED_KEY_CHARS or more (theirs have 24+).
_NEWER_KEY_PREFIXES = r"(?i:(?:tgp|fw|lsv2|jina)_|(?:csk|tvly)-)"
#: The least body after a newer provider's key prefix that is taken for a key.
MIN_PREFIXED_KEY_CHARS = 16

SHAPES: tuple[Shape, ...] = (
    Shape(
        "private key block",
        "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow...\\n-----END RSA PRIVATE KEY-----",
        r"(-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----)(?:[^-]|-(?!----END))+",
    ),
    Shape(
        "JSON web token",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
        r"((?<!["
        + _TOKEN
        + r"])eyJ)["
        + _TOKEN
        + r"]{5,}\.["
        + _TOKEN
        + r"]{5,}\.["
        + _TOKEN
        + r"]*",
    ),
    Shape(
        "cloud access key id (AWS)",
        "AKIAIOSFODNN7EXAMPLE",
        r"((?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA))"
        r"[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    Shape(
        "cloud secret key (AWS, 40 characters)",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        r"()(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[a-z])(?=[A-Za-z0-9/+]{0,39}[A-Z])"
        r"(?=[A-Za-z0-9/+]{0,39}[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
    ),
    Shape(
        "Google API key",
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
        r"((?<![" + _TOKEN + r"])AIza)[" + _TOKEN + r"]{20,}",
    ),
    Shape(
        "Google OAuth token",
        "ya29.a0Af1234567890, 1//0gAbCdEf1234567890",
        r"((?<![." + _TOKEN + r"])(?:ya29\.|1//))[." + _TOKEN + r"]{10,}",
    ),
    Shape(
        "chat bot token (Telegram)",
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        r"((?<![0-9])[0-9]{8,10}:)AA[" + _TOKEN + r"]{30,40}(?![" + _TOKEN + r"])",
    ),
    Shape(
        "chat bot token (Discord)",
        "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0",
        r"()(?<![." + _TOKEN + r"])[MNO][" + _TOKEN + r"]{23,27}\.[" + _TOKEN + r"]{6}"
        r"\.[" + _TOKEN + r"]{27,40}(?![" + _TOKEN + r"])",
    ),
    Shape(
        "API key with a known prefix",
        "sk-proj-abc123, gsk_abc123, hf_abc123, ghp_abc123, glpat-abc123, xoxb-123-abc",
        r"((?<![A-Za-z0-9._*-])"
        + _KEY_PREFIXES
        + r")[A-Za-z0-9_*-](?:[A-Za-z0-9._*-]*[A-Za-z0-9_*])?",
    ),
    Shape(
        "API key with a newer provider prefix",
        "fw_3ZZk3pQ9vXw2LmN8rTz1Yb, tvly-Zk3pQ9vXw2LmN8rTz1Yb (tgp_, csk-, lsv2_, jina_ too)",
        r"((?<![A-Za-z0-9._*-])"
        + _NEWER_KEY_PREFIXES
        + r")[A-Za-z0-9_*-][A-Za-z0-9._*-]{"
        + str(MIN_PREFIXED_KEY_CHARS - 2)
        + r",}[A-Za-z0-9_*]",
    ),
    Shape(
        "subscription key (32 or 64 hex digits)",
        "0123456789abcdef0123456789abcdef",
        r"()(?<![" + _TOKEN + r"])(?:[0-9A-Fa-f]{64}|[0-9A-Fa-f]{32})(?![" + _TOKEN + r"])",
    ),
    Shape(
        "URL userinfo password",
        "https://user:hunter2@example.com/",
        # Found from its "://", so that a shape taking the scheme before it
        # (Bearer postgres://...) cannot hide the password.
        r"(://[^/\s:@]{0,256}:)[^/\s@]{1,256}(?=@)",
    ),
    Shape(
        "key in an invalid-key message",
        "Incorrect API key provided: gw-abc123.",
        r"(\b(?i:(?:api[ _-]?key|token)\s{1,16}provided:)\s{0,16}[\"'`]?)(?!"
        + _KEY_PREFIXES
        + r")[^\s\"'`,;]*[^\s\"'`,;.]",
    ),
    Shape(
        "authorization credentials",
        "Bearer abc123def456",
        # The credential starts with a letter or digit: "token -----BEGIN ..."
        # is the word token before something else.
        r"(\b" + _SCHEME + r")[A-Za-z0-9][A-Za-z0-9._~+/=-]{7,}",
    ),
    Shape(
        "long token after key / token / secret",
        "your key Zk3pQ9vXw2LmN8rT is invalid",
        r"(\b" + r"(?i:api[ _-]?key|key|token|secret|password|credential)s?[^\S\n]{1,3}"
        r"(?:(?i:is|was)[^\S\n]{1,3})?[\"'`]?)(?=[A-Za-z0-9._~+/=-]{16})[A-Za-z0-9._~+/=-]{16,}",
    ),
    Shape(
        "secret-named pair",
        'api_key=abc123; "apiKey": "abc123"; client_secret=abc123; X-Api-Key: abc123',
        r"((?<![A-Za-z0-9_.-])[A-Za-z0-9_.-]{0,48}?"
        + _SECRET_WORDS
        # JSON inside a JSON string escapes its quotes: \"apiKey\":\"...\"
        + r"(?:\\?[\"'])?\s{0,16}[=:]\s{0,16}(?:"
        + _SCHEME
        + r")?)"
        # (a scheme is never the value: masked once, "key: Bearer ***" stays)
        r"(?!(?i:Bearer|Basic|Token)\s)"
        r"(?:\\?\"(?:[^\"\\]|\\.)+|'[^'\n]+|[^\s\"',;&)<>]{4,})",
    ),
)

_ENTROPY_SHAPE = [s.name for s in SHAPES].index("long token after key / token / secret")
# Each shape is a pass of its own, in catalogue order (the most specific
# first): a shape scanning a long run (Bearer <token>) cannot swallow the
# start of a more specific secret after it (Bearer 123456789:AA<bot token>)
# and leave its rest unmatched. The passes run only when the alternation of
# them all finds something, so text without secrets is scanned once.
_PASSES = tuple(re.compile(shape.pattern) for shape in SHAPES)
_SECRET = re.compile("|".join(shape.pattern for shape in SHAPES))

#: A token after "key" / "token" / "secret" is a secret when its characters
#: carry at least this many bits each (Shannon entropy): ``Zk3pQ9vXw2LmN8rT``
#: does (4 bits), ``unknown_parameter`` (3.1) and ``aaaaaaaaaaaaaaaa`` do not.
MIN_ENTROPY_BITS = 3.5


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _masker(entropy: bool) -> Callable[[re.Match[str]], str]:
    def mask(m: re.Match[str]) -> str:
        kept = m.group(1) or ""
        rest = m.group(0)[len(kept) :]
        if entropy:
            # A token already masked inside (key sk-***) or a plain word stays.
            if MASK in rest or _entropy(rest) < MIN_ENTROPY_BITS:
                return m.group(0)
        elif rest[:1] in ("'", '"') and len(rest) > 1:  # a quoted value keeps its opening quote
            return kept + rest[0] + MASK
        return kept + MASK

    return mask


_MASKS = tuple(_masker(i == _ENTROPY_SHAPE) for i in range(len(SHAPES)))


def redact(text: str) -> str:
    """``text`` with every secret of the catalogue (``SHAPES``) masked.

    Linear in the length of ``text``; redacting twice changes nothing.

    >>> redact("Invalid API key provided: sk-nex-abc123.")
    'Invalid API key provided: sk-***.'
    """
    if _SECRET.search(text) is None:
        return text
    for pattern, mask in zip(_PASSES, _MASKS, strict=True):
        text = pattern.sub(mask, text)
    return text
