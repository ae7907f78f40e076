"""Merging layers and indexing headers: the same results as the obvious
quadratic versions, in work linear in the input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import policyengine as pe
from policyengine._headers import index_headers
from policyengine._keypath import KeyPath
from policyengine._layers import Origin, Origins, env_files
from policyengine._watch import PolicyWatcher

_PARTS = st.sampled_from(["rules", "backoff", "match", 0, 1, 2])
_PATHS = st.lists(_PARTS, min_size=1, max_size=4).map(tuple)
_OPS = st.lists(
    st.tuples(st.sampled_from(["set", "setdefault", "forget", "pop_under"]), _PATHS), max_size=60
)


@given(_OPS)
def test_origins_behave_as_a_dict_scanned_by_prefix(ops: list[tuple[str, KeyPath]]) -> None:
    tree = Origins()
    plain: dict[KeyPath, Origin] = {}
    for i, (op, path) in enumerate(ops):
        origin = Origin(f"f{i}", path)
        if op == "set":
            tree.set(path, origin)
            plain[path] = origin
        elif op == "setdefault":
            tree.setdefault(path, origin)
            plain.setdefault(path, origin)
        else:
            n = len(path)
            under = {k: v for k, v in plain.items() if k[:n] == path and len(k) > n}
            if op == "forget":
                tree.forget(path)
                plain.pop(path, None)
            else:
                assert dict(tree.pop_under(path)) == under
            for k in under:
                del plain[k]
        assert dict(tree.items()) == plain
        for k in plain:
            assert tree.get(k) == plain[k]


def test_overriding_thousands_of_rules_by_id_keeps_every_origin() -> None:
    count = 4000
    base = {"rules": [{"id": f"r{i}", "match": {"code": f"c{i}"}} for i in range(count)]}
    over = {"rules": [{"id": f"r{i}", "backoff": {"initial": 2}} for i in range(count)]}
    policy = pe.load_policy(base, over, env=False, default=False)
    assert len(policy.rules) == count
    assert all(r.backoff.initial == 2 for r in policy.rules)
    assert policy.origins["$.rules[3999].backoff.initial"] == "<layer 1>"
    assert policy.origins["$.rules[3999].match"] == "<layer 0>"


def test_new_rules_of_an_override_shift_the_origins_beneath() -> None:
    base = {"rules": [{"id": "a", "match": {"code": "x"}}]}
    over = {"rules": [{"id": "b", "match": {"code": "y"}}, {"id": "a", "retryable": True}]}
    policy = pe.load_policy(base, over, env=False, default=False)
    assert [r.id for r in policy.rules] == ["b", "a"]
    assert policy.origins["$.rules[0].match"] == "<layer 1>"
    assert policy.origins["$.rules[1].match"] == "<layer 0>"
    assert policy.origins["$.rules[1].retryable"] == "<layer 1>"


def test_many_repeats_of_one_header_keep_every_value_in_order() -> None:
    headers = [("Retry-After", str(i)) for i in range(50_000)] + [("X-Other", "y")]
    index = index_headers(headers)
    assert index["retry-after"] == tuple(str(i) for i in range(50_000))
    assert index["x-other"] == ("y",)


@given(st.lists(st.tuples(st.sampled_from(["A", "a", "B", " b "]), st.text(max_size=3))))
def test_header_index_matches_the_tuple_rebuilding_version(items: list[tuple[str, str]]) -> None:
    expected: dict[str, tuple[str, ...]] = {}
    for name, value in items:
        key = name.strip().lower()
        expected[key] = (*expected.get(key, ()), value)
    assert index_headers(items) == expected
    assert index_headers(index_headers(items)) == expected


def test_the_environment_names_files_and_presets_in_order() -> None:
    value = os.pathsep.join(["a.toml", "preset:openrouter", "", " ", "b.toml", "preset:groq"])
    assert env_files({pe.ENV_VAR: value}) == [
        "a.toml",
        "preset:openrouter",
        "b.toml",
        "preset:groq",
    ]
    assert env_files({}) == []


def test_a_watcher_looks_at_files_not_at_presets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = tmp_path / "prod.toml"
    override.write_text("[defaults]\nmax_attempts = 3\n", encoding="utf-8")
    monkeypatch.setenv(pe.ENV_VAR, os.pathsep.join(["preset:openrouter", str(override)]))
    watcher = PolicyWatcher(pe.Driver(), env=True)
    assert list(watcher._watched()) == [str(override)]
