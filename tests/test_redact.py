"""The catalogue of secret shapes: each shape masked, the rest kept, and
invariants over adversarial strings built from each pattern's own characters."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import policyengine as pe
from policyengine._redact import MASK, SHAPES, Shape

# One real-looking value per shape (made up), and the part that must go.
SECRET_OF = {
    "private key block": (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END",
        "MIIEvQIBADANBg",
    ),
    "URL userinfo password": ("postgres://app:S3cretPass@db:5432/x", "S3cretPass"),
    "secret-named pair": ("session_id=Zk3pQ9vXw2", "Zk3pQ9vXw2"),
    "key in an invalid-key message": ("Incorrect API key provided: gw-9Qm7rT2v.", "9Qm7rT2v"),
    "authorization credentials": ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l"),
    "JSON web token": ("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.sig_Zk3p", "eyJzdWIiOiIxIn0"),
    "API key with a known prefix": ("xai-Zk3pQ9vXw2LmN8rT", "Zk3pQ9vXw2LmN8rT"),
    "API key with a newer provider prefix": ("fw_3ZZk3pQ9vXw2LmN8rTz1Yb", "Zk3pQ9vXw2LmN8rT"),
    "Google API key": ("AIzaSyB-Zk3pQ9vXw2LmN8rTz1YbAbCdEfGh", "Zk3pQ9vXw2LmN8rT"),
    "Google OAuth token": ("1//0gZk3pQ9vXw2LmN8rT", "0gZk3pQ9vXw2LmN8rT"),
    "cloud access key id (AWS)": ("ASIAZK3PQ9VXW2LMN8RT", "ZK3PQ9VXW2LMN8RT"),
    "cloud secret key (AWS, 40 characters)": (
        "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7d",
        "aB3dE5fG7hJ9kL1mN3pQ5",
    ),
    "chat bot token (Telegram)": ("987654321:AAZk3pQ9vXw2LmN8rTz1YbAbCdEfGhIjKlM", "Zk3pQ9vXw2"),
    "chat bot token (Discord)": (
        "NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I",
        "Ovy4MCQywSkoMRRclStW4xAYK7I",
    ),
    "subscription key (32 or 64 hex digits)": (
        "ABCDEF0123456789abcdef0123456789",
        "0123456789abcdef",
    ),
    "long token after key / token / secret": ("secret Zk3pQ9vXw2LmN8rTz1Yb", "Zk3pQ9vXw2LmN8rT"),
}


def test_every_shape_has_a_test_value() -> None:
    assert sorted(SECRET_OF) == sorted(s.name for s in SHAPES)


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_each_shape_masks_its_secret_and_keeps_the_words_around(shape: Shape) -> None:
    value, secret = SECRET_OF[shape.name]
    text = f"error: {value} (see the docs)"
    masked = pe.redact(text)
    assert secret not in masked
    assert MASK in masked
    assert masked.startswith("error: ") and masked.endswith(" (see the docs)")
    assert re.compile(shape.pattern).search(value), "the shape's own pattern finds it"
    assert pe.redact(shape.example) != shape.example


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_each_pattern_keeps_its_first_group(shape: Shape) -> None:
    pattern = re.compile(shape.pattern)
    assert pattern.groups >= 1 and shape.pattern.startswith("(")
    assert not shape.pattern.startswith("(?")


@pytest.mark.parametrize(
    "text",
    [
        "rate limit exceeded for model gpt-4o; retry in 2s",
        "max_tokens: 4096 is more than the model allows",
        "request id req_0123456789abcdef0123456789abcdef",
        "commit 0123456789abcdef0123456789abcdef01234567 on main",
        "Please pass a valid API key.",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "the token limit is 8192",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert pe.redact(text) == text


# Adversarial strings: the characters each pattern is made of, its keywords,
# and the separators around them, in any order.
_PIECES = sorted(
    {
        *"eyJAIzaKIxob-_.:=/+@'\"` \n\\{}*",
        "sk-",
        "gsk_",
        "eyJ",
        "AKIA",
        "AIza",
        "ya29.",
        "1//",
        "Bearer ",
        "api_key",
        "apiKey",
        "password",
        "token",
        "secret",
        "key ",
        "provided:",
        "https://",
        "-----BEGIN PRIVATE KEY-----",
        "0123456789abcdef",
        "Zk3pQ9vXw2LmN8rT",
        "123456789:AA",
    }
)
_ADVERSARIAL = st.lists(st.sampled_from(_PIECES), max_size=120).map("".join)


@settings(max_examples=300)
@given(_ADVERSARIAL)
@example("apiKey:Bearer AIza")  # a scheme is never taken for the value the second time
def test_redacting_twice_changes_nothing(text: str) -> None:
    once = pe.redact(text)
    assert pe.redact(once) == once


@settings(max_examples=int(os.environ.get("REDACT_EXAMPLES", "300")))
@given(_ADVERSARIAL, st.sampled_from(sorted(SECRET_OF)), _ADVERSARIAL)
def test_a_secret_between_adversarial_strings_is_masked(before: str, name: str, after: str) -> None:
    value, secret = SECRET_OF[name]
    masked = pe.redact(f"{before} {value} {after}")
    # The surroundings may hold the same characters; they never add to them.
    assert masked.count(secret) <= before.count(secret) + after.count(secret)


@settings(max_examples=200)
@given(_ADVERSARIAL)
@example('-----BEGIN PRIVATE KEY-----"')  # a lone quote is no quoted value to keep
def test_masking_never_grows_text_by_more_than_the_masks(text: str) -> None:
    masked = pe.redact(text)
    assert len(masked) <= len(text) + 2 * masked.count(MASK)


@pytest.mark.parametrize(
    "text",
    [
        "Unknown parameter: fw_mode",
        "tool tvly-search failed",
        "cluster csk-prod-cluster is busy",
        "model jina-embeddings-v3 not found",
        "field lsv2_enabled is read-only",
    ],
)
def test_a_newer_provider_prefix_starting_an_ordinary_name_is_no_key(text: str) -> None:
    assert pe.redact(text) == text
