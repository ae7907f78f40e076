"""Lint: each check fires on a policy made to trip it, with its exact text,
and stays quiet on the default policy."""

from __future__ import annotations

from pathlib import Path

import policyengine as pe
from policyengine.cli.lint import Finding, lint


def _lint(tmp_path: Path, text: str, *, inherit: bool = False) -> tuple[str, list[str]]:
    path = tmp_path / "p.toml"
    head = "" if inherit else 'inherit = false\n[[rules]]\nid = "catch-all"\n\n'
    path.write_text(head + text, encoding="utf-8")
    return str(path), [str(f) for f in lint(pe.load_policy(path, env=False))]


def test_default_policy_is_clean(default_policy: pe.Policy) -> None:
    assert lint(default_policy) == []


def test_never_matches(tmp_path: Path) -> None:
    p, found = _lint(
        tmp_path,
        '[[rules]]\nid = "a"\nmatch = { transport = "timeout", status = 500 }\n'
        '[[rules]]\nid = "b"\nmatch = { error = false, code = "x" }\n',
    )
    assert found == [
        f"{p}: $.rules[1].match: error: rule 'a' can never match: it sets transport (a network "
        "failure, no response) and response conditions [never-matches]",
        f"{p}: $.rules[2].match: error: rule 'b' can never match: it sets error = false and "
        "conditions on the error (code, type or message) [never-matches]",
    ]


def test_shadowed_by_an_earlier_rule(tmp_path: Path) -> None:
    p, found = _lint(
        tmp_path,
        '[[rules]]\nid = "five"\nmatch = { status = "5xx" }\n'
        '[[rules]]\nid = "range"\nmatch = { status = "500-549" }\n',
    )
    assert found == [
        f"{p}: $.rules[2].match: error: rule 'range' can never match: everything it matches goes "
        f"to rule 'five' ({p}: $.rules[1]), which is as specific and comes first [shadowed]"
    ]


def test_shadowed_by_a_more_specific_rule(tmp_path: Path) -> None:
    statuses = ", ".join(str(s) for s in range(500, 600))
    p, found = _lint(
        tmp_path,
        '[[rules]]\nid = "class"\nmatch = { status = "5xx" }\n'
        f'[[rules]]\nid = "every"\nmatch = {{ status = [{statuses}] }}\n',
    )
    assert found == [
        f"{p}: $.rules[1].match: error: rule 'class' can never match: everything it matches goes "
        f"to rule 'every' ({p}: $.rules[2]), which is more specific [shadowed]"
    ]


def test_an_override_taking_over_a_default_rule_is_a_warning(tmp_path: Path) -> None:
    p, found = _lint(tmp_path, '[[rules]]\nid = "mine"\nmatch = { status = 429 }\n', inherit=True)
    assert found == [
        f"{p}: $.rules[0].match: warning: rule 'mine' takes everything rule 'rate-limit' "
        "(<default>: $.rules[4]) matches, which is as specific and comes first: 'rate-limit' "
        "can never match; to change that rule, override it by id (or set enabled = false on it) "
        "[shadowed]"
    ]


def test_a_carve_out_before_a_wider_rule_is_fine(tmp_path: Path) -> None:
    _, found = _lint(
        tmp_path,
        '[[rules]]\nid = "narrow"\nmatch = { status = "520-523" }\naction = "retry"\n'
        "retryable = true\n"
        '[[rules]]\nid = "wide"\nmatch = { status = "5xx" }\n',
    )
    assert found == []


def test_overlap_with_conflicting_outcomes(tmp_path: Path) -> None:
    p, found = _lint(
        tmp_path,
        '[[rules]]\nid = "a"\nmatch = { code = ["x", "y"] }\naction = "retry"\n'
        'retryable = true\nclassification = "one"\n'
        '[[rules]]\nid = "b"\nmatch = { code = ["y", "z"] }\nclassification = "two"\n'
        '[[rules]]\nid = "c"\nmatch = { code = ["z", "w"] }\nclassification = "two"\n',
    )
    assert found == [
        f"{p}: $.rules[2].match: warning: rule 'b' (fail, two) overlaps rule 'a' ({p}: "
        "$.rules[1]; retry, one, retryable) and only their order decides: 'a' wins; make one "
        "more specific, or the two disjoint [overlap]"
    ]


def test_no_overlap_warning_for_disjoint_or_differently_keyed_rules(tmp_path: Path) -> None:
    _, found = _lint(
        tmp_path,
        '[[rules]]\nid = "a"\nmatch = { code = "x" }\nclassification = "one"\n'
        '[[rules]]\nid = "b"\nmatch = { type = "y" }\nclassification = "two"\n'
        '[[rules]]\nid = "c"\nmatch = { status = 429, headers = { "x-a" = true } }\n'
        'classification = "three"\n'
        '[[rules]]\nid = "d"\nmatch = { status = 429, headers = { "x-a" = false } }\n'
        'classification = "four"\n'
        '[[rules]]\nid = "e"\nmatch = { message = "quota" }\nclassification = "five"\n'
        '[[rules]]\nid = "f"\nmatch = { message = "overloaded" }\nclassification = "six"\n',
    )
    assert found == []


def test_status_range(tmp_path: Path) -> None:
    p, found = _lint(
        tmp_path,
        '[[rules]]\nid = "beyond"\nmatch = { status = "600-650" }\n'
        '[[rules]]\nid = "partly"\nmatch = { status = [99, 200] }\nclassification = "x"\n',
    )
    assert found == [
        f"{p}: $.rules[1].match.status: error: status 600-650 is outside 100-599: no HTTP "
        "response has it [status-range]",
        f"{p}: $.rules[2].match.status: warning: status 99 reaches outside 100-599, where no "
        "HTTP response is [status-range]",
    ]


def test_uncapped_delay(tmp_path: Path) -> None:
    p, found = _lint(
        tmp_path,
        '[hints]\nsources = [{ header = "retry-after", format = "retry-after" }]\n'
        '[[rules]]\nid = "patient"\nmatch = { status = 503 }\naction = "retry"\n'
        'retryable = true\non_long_hint = "honour"\nmax_elapsed = 0\n'
        '[[rules]]\nid = "bounded"\nmatch = { status = 502 }\naction = "retry"\n'
        'retryable = true\non_long_hint = "honour"\nmax_elapsed = 300\n',
    )
    assert found == [
        f"{p}: $.rules[1].on_long_hint: warning: rule 'patient' waits as long as a server asks "
        "(on_long_hint = 'honour') and max_elapsed = 0 sets no limit: a Retry-After of a day "
        "stalls the caller a day; set max_elapsed, or on_long_hint = 'clamp' [uncapped-delay]"
    ]


def test_unfilled_placeholders(tmp_path: Path) -> None:
    p, found = _lint(
        tmp_path,
        '[defaults]\nremediation = "failed: {transport}"\n'
        '[[rules]]\nid = "net"\nmatch = { transport = "dns" }\n'
        'remediation = "{status} {code} {transport} {model}"\n'
        '[[rules]]\nid = "ok"\nmatch = { status = "2xx", error = false }\naction = "succeed"\n'
        'remediation = "{message} {retry_after}"\n'
        '[[rules]]\nid = "late"\nmatch = { status = 503 }\naction = "retry"\nretryable = true\n'
        'use_hints = false\nremediation = "wait {retry_after}, then {fallback}"\n',
    )
    assert found == [
        f"{p}: $.rules[1].remediation: warning: rule 'net': {{status}} in the remediation can "
        "never be filled (the rule matches only network failures, which have no response); it "
        "would always read '(unknown)' [unfilled-placeholder]",
        f"{p}: $.rules[1].remediation: warning: rule 'net': {{code}} in the remediation can "
        "never be filled (the rule matches only network failures, which have no response); it "
        "would always read '(unknown)' [unfilled-placeholder]",
        f"{p}: $.rules[2].remediation: warning: rule 'ok': {{message}} in the remediation can "
        "never be filled (the rule matches only responses without an error (error = false)); "
        "it would always read '(unknown)' [unfilled-placeholder]",
        f"{p}: $.rules[2].remediation: warning: rule 'ok': {{retry_after}} in the remediation "
        "can never be filled (the rule never retries, so no server wait hint is read); it would "
        "always read '(unknown)' [unfilled-placeholder]",
        f"{p}: $.rules[3].remediation: warning: rule 'late': {{retry_after}} in the remediation "
        "can never be filled (the rule has use_hints = false); it would always read '(unknown)' "
        "[unfilled-placeholder]",
        f"{p}: $.rules[3].remediation: warning: rule 'late': {{fallback}} in the remediation "
        "can never be filled (the rule lists no fallback models); it would always read "
        "'(unknown)' [unfilled-placeholder]",
    ]


def test_inherited_remediation_is_named_as_such(tmp_path: Path) -> None:
    p, found = _lint(
        tmp_path,
        '[defaults]\nremediation = "code {code}"\n'
        '[[rules]]\nid = "net"\nmatch = { transport = "reset" }\n',
    )
    assert found == [
        f"{p}: $.rules[1]: warning: rule 'net': {{code}} in the remediation (inherited from "
        "[defaults]) can never be filled (the rule matches only network failures, which have "
        "no response); it would always read '(unknown)' [unfilled-placeholder]"
    ]


def test_unknown_test_rule(tmp_path: Path) -> None:
    p, found = _lint(
        tmp_path,
        '[[rules]]\nid = "off"\nenabled = false\nmatch = { status = 500 }\n'
        '[[tests]]\nname = "t1"\nresponse = { status = 500 }\nexpect = { rule = "off" }\n'
        '[[tests]]\nname = "t2"\nresponse = { status = 500 }\nexpect = { rule = "nope" }\n',
    )
    assert found == [
        f"{p}: $.tests[0].expect.rule: error: test 't1' expects rule 'off', which is disabled "
        "[unknown-test-rule]",
        f"{p}: $.tests[1].expect.rule: error: test 't2' expects rule 'nope', which does not "
        "exist [unknown-test-rule]",
    ]


def test_finding_text_and_dict() -> None:
    f = Finding("warning", "overlap", "p.toml", "$.rules[0]", "text")
    assert str(f) == "p.toml: $.rules[0]: warning: text [overlap]"
    assert (
        str(Finding("error", "invalid", "p.toml", "", "broken"))
        == "p.toml: error: broken [invalid]"
    )
    assert f.as_dict() == {
        "severity": "warning",
        "check": "overlap",
        "file": "p.toml",
        "path": "$.rules[0]",
        "message": "text",
    }


def test_partly_shadowed_generic_rule_of_an_override(tmp_path: Path) -> None:
    base = tmp_path / "base.toml"
    base.write_text(
        'inherit = false\n[[rules]]\nid = "bad-gateway"\nmatch = { status = [502, 503] }\n'
        'classification = "upstream"\naction = "fallback"\n'
        '[[rules]]\nid = "same"\nmatch = { status = 500 }\nclassification = "mine"\n',
        encoding="utf-8",
    )
    over = tmp_path / "over.toml"
    over.write_text(
        '[[rules]]\nid = "by-type"\nmatch = { type = "server_error" }\nclassification = "mine"\n',
        encoding="utf-8",
    )
    found = [str(f) for f in lint(pe.load_policy(base, over, env=False))]
    assert found == [
        f"{over}: $.rules[0].match: warning: rule 'by-type' matches an error type alone, less "
        "specific than an exact status: on status 502/503 a rule of a lower layer decides "
        "differently, first ('bad-gateway'); to decide those too, name the statuses in its "
        "match (status = [...]), or override those rules by id [partly-shadowed]"
    ]
    # Naming the statuses makes the type specific: it decides them, and lint is quiet.
    over.write_text(
        '[[rules]]\nid = "by-type"\nmatch = { type = "server_error", status = "5xx" }\n'
        'classification = "mine"\n',
        encoding="utf-8",
    )
    policy = pe.load_policy(base, over, env=False)
    assert lint(policy) == []
    body = b'{"error": {"type": "server_error", "message": "x"}}'
    assert pe.Engine(policy).evaluate(pe.Response(502, {}, body)).rule_id == "by-type"
