"""Loading policy files: layering, overrides, errors with key paths, round-trip."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policyengine as pe
from policyengine import _layers
from policyengine._dumping import policy_to_dict

MINIMAL = """
inherit = false
[[rules]]
id = "all"
classification = "anything"
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems(*layers: object, **kwargs: bool) -> list[str]:
    with pytest.raises(pe.PolicyError) as caught:
        pe.load_policy(*layers, **kwargs)  # type: ignore[arg-type]
    return str(caught.value).splitlines()


class TestLayering:
    def test_default_alone(self, default_policy: pe.Policy) -> None:
        assert default_policy.rule("rate-limit").classification == "rate_limit"
        assert default_policy.sources == (str(pe.default_policy_path()),)

    def test_a_lone_file_overrides_the_default(self, tmp_path: Path) -> None:
        prod = write(tmp_path, "prod.toml", '[[rules]]\nid = "rate-limit"\nmax_attempts = 2\n')
        policy = pe.load_policy(prod)
        rule = policy.rule("rate-limit")
        assert rule.max_attempts == 2
        assert rule.classification == "rate_limit"  # untouched keys stay
        assert rule.backoff.max_delay == 30.0
        assert policy.origins["$.rules[4].max_attempts"] == prod
        assert policy.rule("invalid-api-key") == pe.load_policy().rule("invalid-api-key")

    def test_inherit_false_is_a_whole_policy(self, tmp_path: Path) -> None:
        policy = pe.load_policy(write(tmp_path, "base.toml", MINIMAL))
        assert [r.id for r in policy.rules] == ["all"]

    def test_layers_apply_in_order(self, tmp_path: Path) -> None:
        base = write(tmp_path, "base.toml", MINIMAL + "max_attempts = 5\n")
        prod = write(tmp_path, "prod.toml", "[defaults]\nmax_attempts = 2\n")
        assert pe.load_policy(base, prod).rule("all").max_attempts == 5  # its own key
        assert pe.load_policy(base, prod).defaults.max_attempts == 2
        assert pe.load_policy(prod, base).defaults.max_attempts == 3  # prod is dropped

    def test_defaults_merge_key_by_key_and_reach_rules(self, tmp_path: Path) -> None:
        prod = write(tmp_path, "prod.toml", "[defaults.backoff]\njitter = 'none'\n")
        policy = pe.load_policy(prod)
        assert policy.defaults.backoff.jitter is pe.Jitter.NONE
        assert policy.defaults.backoff.initial == 0.5
        # A rule that sets its own backoff table keeps its keys, inherits the rest.
        assert policy.rule("rate-limit").backoff == pe.Backoff(1.0, 2.0, 30.0, pe.Jitter.NONE)

    def test_disable_a_rule(self) -> None:
        policy = pe.load_policy({"rules": [{"id": "quota-exhausted", "enabled": False}]})
        assert not policy.rule("quota-exhausted").enabled
        engine = pe.Engine(policy)
        body = b'{"error": {"message": "quota", "type": "x", "code": "insufficient_quota"}}'
        assert engine.evaluate(pe.Response(429, {}, body)).rule_id == "rate-limit"

    def test_match_is_replaced_whole(self) -> None:
        policy = pe.load_policy({"rules": [{"id": "request-too-large", "match": {"status": 413}}]})
        assert policy.rule("request-too-large").match == pe.Match(
            status=(pe.load_policy().rule("payload-too-large").match.status)
        )

    def test_new_rules_of_an_override_win_ties(self) -> None:
        new = {"id": "my-429", "match": {"status": 429}, "classification": "mine"}
        policy = pe.load_policy({"rules": [new]})
        assert policy.rules[0].id == "my-429"
        assert pe.Engine(policy).evaluate(pe.Response(429)).classification == "mine"

    def test_env_var_adds_override_files(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        a = write(tmp_path, "a.toml", '[[rules]]\nid = "rate-limit"\nmax_attempts = 2\n')
        b = write(tmp_path, "b.toml", '[[rules]]\nid = "rate-limit"\nmax_attempts = 3\n')
        monkeypatch.setenv(pe.ENV_VAR, f"{a}{os.pathsep}{b}")
        assert pe.load_policy().rule("rate-limit").max_attempts == 3
        assert pe.load_policy(env=False).rule("rate-limit").max_attempts == 5
        assert pe.Engine().policy.rule("rate-limit").max_attempts == 3

    def test_dict_layers(self) -> None:
        policy = pe.load_policy({"defaults": {"max_attempts": 9}}, default=True)
        assert policy.rule("server-error").max_attempts == 9
        assert policy.rule("rate-limit").max_attempts == 5  # set by the rule itself

    def test_dict_layers_are_never_changed_by_the_layers_above(self) -> None:
        base = {
            "inherit": False,
            "defaults": {"backoff": {"initial": 1.0}},
            "rules": [{"id": "x", "match": {"status": 500}, "backoff": {"initial": 1.0}}],
        }
        before = copy.deepcopy(base)
        over = {
            "defaults": {"backoff": {"initial": 5.0}},
            "rules": [{"id": "x", "backoff": {"initial": 7.0}}],
        }
        merged = pe.load_policy(base, over, env=False)
        assert (merged.defaults.backoff.initial, merged.rule("x").backoff.initial) == (5.0, 7.0)
        assert base == before
        again = pe.load_policy(base, env=False)  # the same base, reused
        assert (again.defaults.backoff.initial, again.rule("x").backoff.initial) == (1.0, 1.0)


class TestErrors:
    def test_every_problem_with_file_and_key_path(self, tmp_path: Path) -> None:
        bad = write(
            tmp_path,
            "bad.toml",
            """
[defaults]
max_atempts = 3
backoff = { initial = "ten", jitter = "ful" }

[[rules]]
id = "a"
match = { status = "6xx0", message_regex = "(" }
remediation = "Hi {nope}"
max_attempts = 0

[[rules]]
id = "a"

[[rules]]
match = { status = 429 }

[[rules]]
id = "b"
match = { transport = "tiemout", method = "PO ST" }
backoff = { multiplier = 0.5 }
action = "retri"
retryable = "yes"
""",
        )
        placeholders = ", ".join(sorted(pe.PLACEHOLDERS))
        assert problems(bad) == [
            f"{bad}: $.defaults.backoff.initial: expected a number >= 0, got 'ten'",
            f"{bad}: $.defaults.backoff.jitter: expected one of 'none', 'full', 'equal', "
            "'decorrelated', got 'ful' (did you mean 'full'?)",
            f"{bad}: $.defaults.max_atempts: unknown key (did you mean 'max_attempts'?); known "
            "keys: action, retryable, backoff, max_attempts, max_elapsed, hint_max, "
            "on_long_hint, use_hints, honour_should_retry, fallback, retries_before_fallback, "
            "remediation, classification",
            f"{bad}: $.rules[0].match.message_regex: invalid regular expression '(': missing ), "
            "unterminated subpattern at position 0",
            f"{bad}: $.rules[0].match.status: expected a status (429), a class ('5xx') or a "
            "range ('500-599'), got '6xx0'",
            f"{bad}: $.rules[0].max_attempts: expected a whole number >= 1, got 0",
            f"{bad}: $.rules[0].remediation: unknown placeholder {{nope}}; known: {placeholders}",
            f"{bad}: $.rules[1].id: duplicate id 'a' (first at $.rules[0])",
            f"{bad}: $.rules[2].id: required key is missing",
            f"{bad}: $.rules[3].action: expected one of 'succeed', 'retry', 'fallback', 'fail', "
            "got 'retri' (did you mean 'retry'?)",
            f"{bad}: $.rules[3].backoff.multiplier: expected a number >= 1, got 0.5",
            f"{bad}: $.rules[3].match.method: expected an HTTP method name such as 'POST', "
            "got 'PO ST'",
            f"{bad}: $.rules[3].match.transport: unknown transport kind 'tiemout' (did you mean "
            "'timeout'?); known: connect_timeout, connection, dns, incomplete, pool_timeout, "
            "protocol, read_timeout, refused, reset, timeout, tls, write_timeout",
            f"{bad}: $.rules[3].retryable: expected true or false, got 'yes'",
        ]

    def test_syntax_error_has_line_and_column(self, tmp_path: Path) -> None:
        bad = write(tmp_path, "syntax.toml", "x = [1,\n  2\ny = 3\n")
        assert problems(bad) == [f"{bad}: line 3, column 1: invalid TOML: Unclosed array"]

    def test_missing_and_unreadable_files(self, tmp_path: Path) -> None:
        missing = str(tmp_path / "nope.toml")
        assert problems(missing) == [f"{missing}: cannot read: No such file or directory"]
        assert problems(str(tmp_path)) == [f"{tmp_path}: cannot read: it is a directory"]
        binary = tmp_path / "bin.toml"
        binary.write_bytes(b"x = '\xff'")
        assert problems(str(binary)) == [f"{binary}: not UTF-8 text (byte 0xff at offset 5)"]

    @pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
    def test_a_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        fifo = tmp_path / "policy.toml"
        os.mkfifo(fifo)  # nobody writes: opening it for reading would block
        assert problems(str(fifo)) == [
            f"{fifo}: cannot read: it is a named pipe (FIFO), not a regular file"
        ]

    @pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
    def test_a_device_is_refused_unread(self) -> None:
        assert problems("/dev/zero") == [
            "/dev/zero: cannot read: it is a character device, not a regular file"
        ]

    def test_a_path_with_a_nul_is_a_policy_error(self, tmp_path: Path) -> None:
        bad = f"{tmp_path}/a\0b.toml"
        assert problems(bad) == [f"{bad}: cannot read: not a valid path (it holds a NUL character)"]

    def test_a_file_over_the_size_cap_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_layers, "MAX_POLICY_BYTES", 64)
        fits = write(tmp_path, "fits.toml", "# " + "x" * 61 + "\n")
        big = write(tmp_path, "big.toml", "# " + "x" * 62 + "\n")
        assert pe.load_policy(fits, default=False, env=False).rules == ()
        assert problems(big, default=False) == [f"{big}: cannot read: larger than 64 bytes"]

    def test_the_size_cap_holds_while_reading(self, tmp_path: Path) -> None:
        path = tmp_path / "grows.toml"
        path.write_bytes(b"x" * 100)
        assert _layers.read_regular(path, 100) == b"x" * 100
        with pytest.raises(_layers.Unreadable, match="larger than 99 bytes"):
            _layers.read_regular(path, 99)

    def test_problems_of_every_file_in_layer_order(self, tmp_path: Path) -> None:
        a = write(tmp_path, "a.toml", "[defaults]\nmax_attempts = -1\n")
        b = write(tmp_path, "b.toml", "x = \n")
        c = str(tmp_path / "c.toml")
        assert [line.split(":")[0] for line in problems(a, b, c)] == [a, b, c]

    def test_override_problem_names_the_override_file(self, tmp_path: Path) -> None:
        prod = write(
            tmp_path,
            "prod.toml",
            '[[rules]]\nid = "x"\nmatch = {}\n\n[[rules]]\nid = "rate-limit"\nhint_max = -5\n',
        )
        assert problems(prod) == [f"{prod}: $.rules[1].hint_max: expected a number >= 0, got -5"]

    def test_unknown_top_level_key(self, tmp_path: Path) -> None:
        bad = write(tmp_path, "typo.toml", "[rule]\nid = 'x'\n")
        assert problems(bad) == [
            f"{bad}: $.rule: unknown key (did you mean 'rules'?); known keys: inherit, "
            "description, defaults, classifications, hints, governor, rules, tests"
        ]

    def test_hint_conditions(self, tmp_path: Path) -> None:
        bad = write(tmp_path, "when.toml", '[[hints.sources]]\nheader = "a"\nwhen = { b = 0 }\n')
        assert problems(bad) == [
            f"{bad}: $.hints.sources[0].when: header 'b': expected true (present), false "
            "(absent) or a value, got 0"
        ]

    def test_hint_source_reads_a_header_or_the_message(self, tmp_path: Path) -> None:
        bad = write(
            tmp_path,
            "src.toml",
            '[[hints.sources]]\nformat = "seconds"\n\n'
            '[[hints.sources]]\nheader = "a"\nmessage = "b"\n\n'
            '[[hints.sources]]\nmessage = "("\n',
        )
        both = (
            "give exactly one of header (a response header), message (a regex searched "
            "in the error message) or body (a field of the error object)"
        )
        assert problems(bad) == [
            f"{bad}: $.hints.sources[2].message: invalid regular expression '(': missing ), "
            "unterminated subpattern at position 0",
        ]
        fixed = write(tmp_path, "src2.toml", Path(bad).read_text().replace('"("', '"x"'))
        assert problems(fixed) == [
            f"{fixed}: $.hints.sources[0]: {both}",
            f"{fixed}: $.hints.sources[1]: {both}",
        ]

    def test_wrong_shapes(self, tmp_path: Path) -> None:
        bad = write(
            tmp_path,
            "shapes.toml",
            'inherit = 1\nrules = "x"\n[hints]\nsources = [{ header = "a", format = "dur" }]\n',
        )
        assert problems(bad) == [
            f"{bad}: $.inherit: expected true or false, got 1",
            f"{bad}: $.hints.sources[0].format: expected one of 'retry-after', 'seconds', "
            "'milliseconds', 'duration', 'epoch-seconds', 'epoch-milliseconds', 'rfc3339', "
            "got 'dur' (did you mean 'duration'?)",
            f"{bad}: $.rules: expected an array of tables, got a string",
        ]

    def test_a_table_given_as_something_else(self, tmp_path: Path) -> None:
        bad = write(
            tmp_path,
            "tables.toml",
            '[defaults]\nbackoff = ""\n[governor]\nlimiter = [1]\n[[rules]]\nid = "x"\nmatch = 5\n',
        )
        assert problems(bad) == [
            f"{bad}: $.defaults.backoff: expected a table, got a string",
            f"{bad}: $.governor.limiter: expected a table, got an array",
            f"{bad}: $.rules[0].match: expected a table",
        ]

    def test_tests_entries_are_checked(self, tmp_path: Path) -> None:
        bad = write(
            tmp_path,
            "t.toml",
            """
[[tests]]
name = "both"
response = { status = 200, transport = "timeout" }
expect = { kind = "succeed" }

[[tests]]
name = "range"
response = { status = 429 }
expect = { delay = [5, 1], kind = "wait" }
""",
        )
        assert problems(bad) == [
            f"{bad}: $.tests[0].response: give exactly one of status (a response) or transport "
            "(a failure)",
            f"{bad}: $.tests[1].expect.delay: expected low <= high, got [5, 1]",
            f"{bad}: $.tests[1].expect.kind: expected one of 'succeed', 'retry', 'fallback', "
            "'fail', got 'wait'",
        ]

    def test_nothing_is_half_applied(self, tmp_path: Path) -> None:
        engine = pe.Engine(pe.load_policy())
        good = write(tmp_path, "good.toml", '[[rules]]\nid = "rate-limit"\nmax_attempts = 2\n')
        bad = write(tmp_path, "bad.toml", "[defaults]\nmax_attempts = 0\n")
        with pytest.raises(pe.PolicyError):
            pe.load_policy(good, bad)
        assert engine.policy.rule("rate-limit").max_attempts == 5

    def test_policy_error_pickles(self) -> None:
        import pickle

        error = pe.PolicyError([pe.Problem("f.toml", "$.x", "bad")])
        again = pickle.loads(pickle.dumps(error))
        assert again.problems == error.problems
        assert str(again) == "f.toml: $.x: bad"


class TestRoundTrip:
    def test_default_policy(self, tmp_path: Path, default_policy: pe.Policy) -> None:
        path = write(tmp_path, "dumped.toml", pe.dump_policy(default_policy))
        assert pe.load_policy(path, default=False) == default_policy

    def test_dump_is_compact(self, default_policy: pe.Policy) -> None:
        data = policy_to_dict(default_policy)
        success = next(r for r in data["rules"] if r["id"] == "success")
        assert "backoff" not in success and "max_attempts" not in success

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def test_random_policies(self, data: st.DataObject) -> None:
        policy = data.draw(policies())
        text = pe.dump_policy(policy)
        loaded = pe.load_policy({"inherit": False, **_toml(text)}, default=False, env=False)
        assert loaded == policy


def _toml(text: str) -> dict[str, object]:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads(text)


names = st.text("abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=12)
seconds = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def policies(draw: st.DrawFn) -> pe.Policy:
    backoffs = st.builds(
        pe.Backoff,
        initial=seconds,
        multiplier=st.floats(1, 100, allow_nan=False),
        max_delay=seconds,
        jitter=st.sampled_from(list(pe.Jitter)),
    )
    statuses = st.lists(
        st.integers(100, 599).map(lambda s: pe._model.StatusRange(s, s))
        | st.integers(1, 5).map(lambda c: pe._model.StatusRange(c * 100, c * 100 + 99)),
        max_size=3,
    ).map(tuple)
    matches = st.builds(
        pe.Match,
        status=statuses,
        code=st.lists(names, max_size=3).map(tuple),
        type=st.lists(names, max_size=2).map(tuple),
        message=st.lists(names, max_size=2).map(tuple),
        message_regex=st.none() | st.sampled_from(["over.*load", "^x$", "quota"]),
        headers=st.dictionaries(names, st.booleans() | names, max_size=2),
        method=st.lists(st.sampled_from(["GET", "POST"]), max_size=2, unique=True).map(tuple),
        transport=st.lists(st.sampled_from(["timeout", "reset", "dns"]), max_size=2).map(tuple),
        error=st.none() | st.booleans(),
    )
    templates = st.sampled_from(["", "Wait {retry_after}s", "{message} ({code})", "{{literal}}"])
    # An action and a retryable that do not contradict each other (retry is
    # retryable, succeed is not); fail and fallback may be either.
    pairs = [("retry", True), ("succeed", False)]
    pairs += [(a, r) for a in ("fail", "fallback") for r in (True, False)]

    def outcome() -> dict[str, object]:
        action, retryable = draw(st.sampled_from(pairs))
        return {
            "action": pe.ActionKind(action),
            "retryable": retryable,
            "backoff": draw(backoffs),
            "max_attempts": draw(st.integers(1, 50)),
            "max_elapsed": draw(seconds),
            "hint_max": draw(seconds),
            "on_long_hint": draw(st.sampled_from(list(pe.LongHint))),
            "use_hints": draw(st.booleans()),
            "honour_should_retry": draw(st.booleans()),
            "fallback": tuple(draw(st.lists(names, max_size=3))),
            "retries_before_fallback": draw(st.integers(0, 5)),
            "remediation": draw(templates),
        }

    defaults = pe.Defaults(classification=draw(names), **outcome())  # type: ignore[arg-type]
    classifications = {
        name: pe.Classification(description=draw(st.text(max_size=10)), **outcome())  # type: ignore[arg-type]
        for name in draw(st.lists(names, max_size=3, unique=True))
    }
    ids = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    known = [defaults.classification, *classifications]
    rules = tuple(
        pe.Rule(
            id=rule_id,  # type: ignore[arg-type]
            match=draw(matches),
            enabled=draw(st.booleans()),
            classification=draw(st.sampled_from(known) | names),
            description=draw(st.text(max_size=20)),
            **outcome(),  # type: ignore[arg-type]
        )
        for rule_id in ids
    )
    hints = pe.Hints(
        sources=tuple(
            draw(
                st.lists(
                    st.builds(
                        pe.HintSource,
                        header=names,
                        format=st.sampled_from(list(pe.HintFormat)),
                        when=st.dictionaries(names, st.booleans() | names, max_size=2),
                    )
                    | st.builds(
                        pe.HintSource,
                        message=st.sampled_from([r"in (\d+)s", "wait"]),
                        format=st.sampled_from(list(pe.HintFormat)),
                    ),
                    max_size=3,
                )
            )
        ),
        should_retry_header=draw(st.sampled_from(["", "x-should-retry"])),
    )
    return pe.Policy(
        defaults=defaults,
        classifications=classifications,
        rules=rules,
        hints=hints,
        description=draw(st.text(max_size=20)),
    )


class TestMoreFileProblems:
    def test_nested_too_deeply(self, tmp_path: Path) -> None:
        deep = write(tmp_path, "deep.toml", "a = " + "[" * 100_000)
        assert problems(deep) == [f"{deep}: invalid TOML: nested too deeply"]

    def test_a_dict_layer_nested_too_deeply_is_a_problem(self) -> None:
        deep: dict[str, object] = {}
        inner = deep
        for _ in range(5000):
            inner["a"] = inner = {}
        assert problems({"defaults": {"backoff": deep}, "description": 1}, env=False) == [
            "<layer 1>: $.description: expected a string, got 1",
            "<layer 1>: $.defaults: nested more than 64 levels deep",
        ]

    def test_error_at_the_end_has_a_position(self, tmp_path: Path) -> None:
        cut = write(tmp_path, "cut.toml", "x = 1\na = [")
        assert problems(cut) == [f"{cut}: line 2, column 6: invalid TOML: Invalid value"]

    def test_inherit_false_drops_earlier_sources(self, tmp_path: Path) -> None:
        whole = write(tmp_path, "whole.toml", MINIMAL)
        extra = write(tmp_path, "extra.toml", "[defaults]\nmax_attempts = 2\n")
        assert pe.load_policy(whole, extra).sources == (whole, extra)


def test_policies_are_read_only_all_the_way_down(default_policy: pe.Policy) -> None:
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        default_policy.rules[0].max_attempts = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        default_policy.origins["$.x"] = "me"  # type: ignore[index]
    with pytest.raises(TypeError):
        default_policy.rule("bot-challenge").match.headers["x"] = True  # type: ignore[index]
    with pytest.raises(TypeError):
        pe.Match(headers={"a": True}).headers["b"] = False  # type: ignore[index]


class TestOverridesCatchMistakes:
    def test_an_unknown_rule_id_without_a_match_is_an_error(self, tmp_path: Path) -> None:
        typo = write(
            tmp_path, "typo.toml", '[[rules]]\nid = "rate-limit-exceded"\nmax_attempts = 8\n'
        )
        assert problems(typo) == [
            f"{typo}: $.rules[0].id: no rule 'rate-limit-exceded' in the layers beneath to "
            "change (did you mean 'rate-limit-exceeded'?); to add a new rule, give it a match "
            "(match = {} for a catch-all)"
        ]
        # With a match it is a new rule; a whole policy's first layer needs none.
        new = write(tmp_path, "new.toml", '[[rules]]\nid = "mine"\nmatch = {}\n')
        assert pe.load_policy(new, env=False).rules[0].id == "mine"
        assert (
            pe.load_policy(write(tmp_path, "whole.toml", MINIMAL), env=False).rules[0].id == "all"
        )

    def test_a_misspelled_id_is_named_beside_the_missing_one(self, tmp_path: Path) -> None:
        idd = write(tmp_path, "idd.toml", '[[rules]]\nidd = "mine"\nmatch = { status = 418 }\n')
        rule_keys = ", ".join(f.name for f in attrs.fields(pe.Rule))
        assert problems(idd) == [
            f"{idd}: $.rules[0].id: required key is missing",
            f"{idd}: $.rules[0].idd: unknown key (did you mean 'id'?); known keys: {rule_keys}",
        ]
        test = write(tmp_path, "t.toml", '[[tests]]\nnmae = "x"\nresponse = { status = 200 }\n')
        found = problems(test)
        assert found[:2] == [
            f"{test}: $.tests[0].expect: required key is missing",
            f"{test}: $.tests[0].name: required key is missing",
        ]
        assert found[2].startswith(f"{test}: $.tests[0].nmae: unknown key (did you mean 'name'?)")

    @pytest.mark.parametrize(
        ("item", "first"),
        [
            ('id = "rate-limt"', "$.rules[1].id: no rule 'rate-limt' in the layers beneath"),
            ('id = "mine"\nmatch = {}', "$.rules[1].id: duplicate id 'mine' (first at $.rules[0])"),
            ("id = 5", "$.rules[1].id: expected a non-empty string, got 5"),
            ("", "$.rules[1].id: required key is missing"),
        ],
        ids=["unknown id", "duplicate id", "bad id", "no id"],
    )
    def test_a_rule_left_out_still_has_its_other_problems_named(
        self, tmp_path: Path, item: str, first: str
    ) -> None:
        # A rule the merge leaves out (no id to merge it by, or nothing to
        # change) is checked all the same: every problem of the file is named.
        text = (
            '[[rules]]\nid = "mine"\nmatch = {}\n\n[[rules]]\n'
            f'{item}\nmax_attempts = "ten"\nbackoff = {{ initial = -1 }}\nbogus = 1\n'
        )
        bad = write(tmp_path, "bad.toml", text)
        found = problems(bad)
        assert len(found) == 4, found
        assert [p for p in found if p.startswith(f"{bad}: {first}")], found
        assert set(found) >= {
            f"{bad}: $.rules[1].backoff.initial: expected a number >= 0, got -1",
            f"{bad}: $.rules[1].bogus: unknown key; known keys: "
            + ", ".join(f.name for f in attrs.fields(pe.Rule)),
            f"{bad}: $.rules[1].max_attempts: expected a whole number >= 1, got 'ten'",
        }

    def test_a_test_left_out_still_has_its_other_problems_named(self, tmp_path: Path) -> None:
        text = (
            '[[tests]]\nname = "t"\nresponse = { status = 200 }\nexpect = { kind = "succeed" }\n\n'
            '[[tests]]\nname = "t"\nresponse = { status = "x" }\nexpect = { kind = "nope" }\n'
        )
        bad = write(tmp_path, "bad.toml", text)
        found = problems(bad)
        assert f"{bad}: $.tests[1].name: duplicate name 't' (first at $.tests[0])" in found
        assert any(p.startswith(f"{bad}: $.tests[1].expect.kind: ") for p in found), found
        assert any(p.startswith(f"{bad}: $.tests[1].response.status: ") for p in found), found

    def test_every_template_error_of_a_string(self, tmp_path: Path) -> None:
        bad = write(
            tmp_path,
            "t.toml",
            '[[rules]]\nid = "r"\nmatch = {}\nremediation = "{retry_afer}s {modle} {delay:.2f} } {"\n',
        )
        known = "known: " + ", ".join(sorted(pe.PLACEHOLDERS))
        braces = "(write {{ and }} for literal braces)"
        assert problems(bad) == [
            f"{bad}: $.rules[0].remediation: unknown placeholder {{retry_afer}} (did you mean "
            f"'retry_after'?); {known}",
            f"{bad}: $.rules[0].remediation: unknown placeholder {{modle}} (did you mean "
            f"'model'?); {known}",
            f"{bad}: $.rules[0].remediation: bad template: placeholder {{delay}} takes no "
            f"conversion or format spec {braces}",
            f"{bad}: $.rules[0].remediation: bad template: single '}}' at position 34 {braces}",
            f"{bad}: $.rules[0].remediation: bad template: '{{' at position 36 is never closed "
            f"{braces}",
        ]

    def test_a_contradictory_action_and_retryable(self, tmp_path: Path) -> None:
        bad = write(
            tmp_path,
            "c.toml",
            "[classifications.rate_limit]\nretryable = false\n"
            '[[rules]]\nid = "ok"\nmatch = { status = 418 }\naction = "succeed"\nretryable = true\n',
        )
        assert problems(bad) == [
            f"{bad}: $.classifications.rate_limit.retryable: action = 'retry' with retryable = "
            "false never retries: drop retryable (it follows the action), or say action = 'fail'",
            f"{bad}: $.rules[0].retryable: action = 'succeed' with retryable = true: a success "
            "is no error to retry; drop retryable",
        ]


@settings(max_examples=300, deadline=None)
@given(
    st.text("{}ab_:!xyz ", max_size=16)
    | st.sampled_from(sorted(pe.PLACEHOLDERS)).map("{{{}}}".format)
)
def test_template_problems_agree_with_the_parser(text: str) -> None:
    """A template passes the loader's check exactly when it parses and every
    placeholder is known; the check never raises."""
    from policyengine._converter import template_problems
    from policyengine._text import parse_template

    try:
        fields = [p.field for p in parse_template(text) if p.field is not None]
        parses = all(f in pe.PLACEHOLDERS for f in fields)
    except ValueError:
        parses = False
    assert (template_problems(text) == []) is parses


def test_a_body_hint_source_is_a_path(tmp_path: Path) -> None:
    bad = write(tmp_path, "b.toml", '[[hints.sources]]\nbody = "details[]..retryDelay"\n')
    assert problems(bad) == [
        f"{bad}: $.hints.sources[0].body: expected a path to a field of the error object: names "
        "joined by dots, [] after a name for any item of an array there "
        "(details[].retryDelay), got 'details[]..retryDelay'"
    ]


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        ({"hints": {"sources": ""}}, "$.hints.sources: expected an array of tables, got ''"),
        ({"hints": {"sources": {}}}, "$.hints.sources: expected an array of tables, got {}"),
        ({"governor": {"key": ""}}, "$.governor.key: expected an array, got ''"),
        ({"governor": {"key": "host"}}, "$.governor.key: expected an array, got 'host'"),
    ],
)
def test_an_array_written_as_something_else_is_a_problem(
    layer: dict[str, object], expected: str
) -> None:
    # A string iterates as its characters, or, empty, as no items: every
    # hint source dropped without a word.
    with pytest.raises(pe.PolicyError) as caught:
        pe.load_policy(layer, env=False)
    assert [str(p) for p in caught.value.problems] == [f"<layer 1>: {expected}"]


def test_each_hint_source_is_told_at_its_index() -> None:
    layer = {"hints": {"sources": [{"header": "x"}, {"header": 5}, {"header": "y", "format": "z"}]}}
    with pytest.raises(pe.PolicyError) as caught:
        pe.load_policy(layer, env=False)
    paths = [p.path for p in caught.value.problems]
    assert paths == ["$.hints.sources[1].header", "$.hints.sources[2].format"]
