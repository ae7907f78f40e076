"""Where a request names its model, and how a fallback moves it."""

from __future__ import annotations

import json
import re

import pytest

import policyengine as pe

GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"


def test_model_in_body_finds_and_moves_the_json_field() -> None:
    where = pe.ModelInBody()
    body = json.dumps({"model": "gpt-4o", "messages": []}).encode()
    assert where.find("https://h/v1/chat/completions", body) == "gpt-4o"
    url, moved = where.moved("https://h/v1/chat/completions", body, "gpt-4o-mini")
    assert url == "https://h/v1/chat/completions"
    assert json.loads(moved) == {"model": "gpt-4o-mini", "messages": []}


def test_model_in_body_with_another_field() -> None:
    where = pe.ModelInBody(field="deployment")
    body = b'{"deployment": "east", "model": "ignored"}'
    assert where.find("https://h/", body) == "east"
    assert json.loads(where.moved("https://h/", body, "west").body)["deployment"] == "west"


@pytest.mark.parametrize("body", [b"", b"[]", b'{"model": 3}', b"not json", b'{"model": ""}'])
def test_model_in_body_finds_nothing_in_what_names_no_model(body: bytes) -> None:
    assert pe.ModelInBody().find("https://h/", body) is None


def test_model_in_path_finds_geminis_model_and_leaves_the_body() -> None:
    where = pe.ModelInPath()
    body = b'{"contents": []}'
    assert where.find(GEMINI, body) == "gemini-2.5-flash"
    assert where.find(GEMINI + "?alt=sse", b"") == "gemini-2.5-flash"
    url, moved = where.moved(
        GEMINI.replace(":generate", ":streamGenerate") + "?alt=sse", body, "gemini-2.5-pro"
    )
    assert url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro"
        ":streamGenerateContent?alt=sse"
    )
    assert moved is body


def test_model_in_path_encodes_the_new_model_and_decodes_the_old() -> None:
    where = pe.ModelInPath()
    assert where.find("https://h/v1/models/a%20b:generateContent", b"") == "a b"
    url = where.moved("https://h/v1/models/a%20b:generateContent", b"", "c/d e").url
    assert url == "https://h/v1/models/c%2Fd%20e:generateContent"


@pytest.mark.parametrize(
    "url", ["https://h/v1/chat/completions", "https://h/v1/tunedModels/x:generateContent", "::"]
)
def test_model_in_path_finds_nothing_where_no_segment_matches(url: str) -> None:
    assert pe.ModelInPath().find(url, b'{"model": "in-the-body"}') is None


def test_model_in_path_takes_a_pattern_of_your_own() -> None:
    where = pe.ModelInPath(r"/deployments/(?P<model>[^/]+)/chat")
    url = "https://x.openai.azure.com/openai/deployments/gpt4/chat/completions?api-version=1"
    assert where.find(url, b"") == "gpt4"
    assert where.moved(url, b"", "gpt4-mini").url == url.replace("/gpt4/", "/gpt4-mini/")
    compiled = re.compile(r"/deployments/(?P<model>[^/]+)/chat")
    assert pe.ModelInPath(compiled).pattern is compiled


def test_model_in_path_says_what_a_pattern_lacks() -> None:
    with pytest.raises(ValueError, match=r"no group named model: write \(\?P<model>"):
        pe.ModelInPath(r"/models/([^/:]+)")
