"""Patterns a policy supplies are safe by construction: refused at load when
matching could take more than quadratic time, searched in bounded text."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import policyengine as pe
from policyengine import _delay, _errorbody, _facts, _patterns, _redact
from policyengine._patterns import MAX_PATTERN_CHARS, MAX_SEARCHED_CHARS, check_pattern

SAFE = [
    r"(?i)(?:try again|retry) in ((?:[0-9]{1,9}(?:\.[0-9]{1,9})?(?:h|ms|m|s))+)",
    r"(?i)retry after ([0-9]{1,9}) seconds?",
    r"rate.*limit",
    r"(?i)quota|billing|insufficient",
    r"^\s*error:\s*(\w+)",
    r"(\d{1,3}\.){3}\d{1,3}",
    r"[^a]*a.*b",
    r"a[^b]*b.*c",
    r"(?:\w+\s)+x",
    r"(a|ab)*c",
    r"(?<=x)y",
    r"(?=x{0,40}y)x",
    r"(?s).*",
    r"(?i)model '([^']{1,128})' not found",
]
EXPONENTIAL = [r"(a+)+$", r"(\w+\s?)+$", r"(a|aa)+", r"(.*,)*x", "(?i)(?:sx|\u017fx)+", r"(x*)*y"]
POLYNOMIAL = [r".*a.*b", r"\d+\d+", r"a.*b.*c", r"x{2,}x{2,}", r"\s*[:=]?\s*x"]


@pytest.mark.parametrize("pattern", SAFE)
def test_safe_patterns_are_accepted(pattern: str) -> None:
    assert check_pattern(pattern) is None


@pytest.mark.parametrize("pattern", EXPONENTIAL)
def test_nested_ambiguous_repeats_are_refused(pattern: str) -> None:
    why = check_pattern(pattern)
    assert why is not None and "exponential time" in why and "(a+)+ -> a+" in why


@pytest.mark.parametrize("pattern", POLYNOMIAL)
def test_repeats_trading_characters_are_refused(pattern: str) -> None:
    why = check_pattern(pattern)
    assert why is not None and "cubic time" in why and ".*a.*b -> [^a]*a.*b" in why


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        (r"(a)\1", "backreferences"),
        (r"(?P<x>a)(?P=x)", "backreferences"),
        (r"(a)?(?(1)b|c)", "conditional groups"),
        (r"(?=.*foo)bar", "lookahead with an unbounded repeat"),
        ("a" * (MAX_PATTERN_CHARS + 1), "split it into several rules"),
    ],
)
def test_other_refusals_say_why(pattern: str, words: str) -> None:
    why = check_pattern(pattern)
    assert why is not None and words in why


def test_the_rewrites_the_hints_suggest_are_accepted() -> None:
    for rewritten in (r"[\w\s]+", r"a+", r"[^a]*a.*b", r"(?=.{0,100}x)"):
        assert check_pattern(rewritten) is None


def test_the_default_policy_patterns_are_accepted() -> None:
    policy = pe.load_policy(env=False)
    patterns = [s.message for s in policy.hints.sources if s.message]
    patterns += [r.match.message_regex for r in policy.rules if r.match.message_regex]
    assert patterns
    for pattern in patterns:
        assert check_pattern(pattern) is None, pattern


def test_the_letters_ignorecase_folds_to_are_known() -> None:
    # The check compares characters by kind beyond ASCII, except these.
    letters = re.compile("[a-zA-Z]", re.IGNORECASE)
    folding = {c for c in range(128, sys.maxunicode + 1) if letters.fullmatch(chr(c))}
    assert folding == set(_patterns._FOLDS)


def _library_patterns() -> list[str]:
    found = [shape.pattern for shape in _redact.SHAPES]
    for module in (_errorbody, _facts, _delay):
        for value in vars(module).values():
            items = value if isinstance(value, tuple) else (value,)
            found += [p.pattern for p in items if isinstance(p, re.Pattern)]
    return found


@pytest.mark.parametrize("pattern", _library_patterns())
def test_every_pattern_the_library_runs_on_server_text_passes_the_same_check(
    pattern: str,
) -> None:
    assert check_pattern(pattern) is None


def test_a_catastrophic_rule_is_a_policy_error_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        textwrap.dedent(
            """\
            [[rules]]
            id = "slow"
            match = { message_regex = '(a+)+$' }
            classification = "x"

            [hints]
            sources = [{ message = '.*in (\\d+)s.*', format = "seconds" }]
            """
        )
    )
    with pytest.raises(pe.PolicyError) as caught:
        pe.load_policy(path, env=False)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(
        f"{path}: $.hints.sources[0].message: unsafe regular expression: '.*in (\\\\d+)s.*' "
        "has repeats one after the other"
    )
    assert lines[1].startswith(
        f"{path}: $.rules[0].match.message_regex: unsafe regular expression: '(a+)+$' has "
        "nested repeats"
    )


def test_check_reports_a_catastrophic_pattern(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[rules]]\nid = "slow"\nmatch = { message_regex = "(x*)*y" }\n')
    done = subprocess.run(
        [sys.executable, "-m", "policyengine", "check", "--no-env", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"{path}: $.rules[0].match.message_regex: error: unsafe regular expression" in (
        done.stdout
    )


def test_user_patterns_search_at_most_the_cap() -> None:
    seen: list[int] = []

    class Spy:
        groups = 0

        def search(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> None:
            seen.append(min(len(text), endpos) - pos)

    _patterns.search(Spy(), "x" * (10 * MAX_SEARCHED_CHARS))  # type: ignore[arg-type]
    assert seen == [MAX_SEARCHED_CHARS]


@given(st.text(alphabet="ab.*+?()|[]^$\\{}0123456789,", max_size=24))
def test_the_check_never_raises(pattern: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set"
            re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return
    result = check_pattern(pattern)
    assert result is None or isinstance(result, str)
