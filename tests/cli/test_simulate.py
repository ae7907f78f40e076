"""Replaying recorded responses through a policy."""

from __future__ import annotations

from pathlib import Path

import policyengine as pe
from policyengine.cli.records import read_records
from policyengine.cli.simulate import simulate

PLAIN = '[defaults.backoff]\njitter = "none"\n'


def _policy(tmp_path: Path, text: str = PLAIN) -> pe.Policy:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return pe.load_policy(path, env=False)


def test_fallback_chain_and_elapsed(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path, PLAIN + '[[rules]]\nid = "upstream-unavailable"\nfallback = ["big", "small"]\n'
    )
    records = read_records(
        b'{"status": 502, "duration": 1}\n{"status": 503, "duration": 2}\n{"status": 200}\n', "r"
    )
    run = simulate(policy, records, model="big")
    assert [(s.model, s.action.kind.value, s.action.fallback) for s in run.steps] == [
        ("big", "fallback", "small"),
        ("small", "retry", None),
        ("small", "succeed", None),
    ]
    assert [s.elapsed for s in run.steps] == [0.0, 1.5, 4.5]  # durations + waits before each
    assert run.waited == 1.5
    assert run.text().splitlines() == [
        "attempt  status  rule                  action    delay  waited  note",
        "1        502     upstream-unavailable  fallback  0.5s   0.5s    next model small",
        "2        503     upstream-unavailable  retry     1s     1.5s",
        "3        200     success               succeed   -      1.5s",
        "outcome: succeed after 3 attempts, 1.5s waited (seed 0)",
    ]


def test_fail_and_unused_records(tmp_path: Path) -> None:
    records = read_records(
        b'{"status": 429, "headers": {"Retry-After": "3600"}}\n{"status": 200}\n', "r"
    )
    run = simulate(_policy(tmp_path), records)
    assert (run.outcome, run.unused) == ("fail", 1)
    assert run.text().splitlines() == [
        "attempt  status  rule        action  delay  waited  note",
        "1        429     rate-limit  fail    -      0s      server asked for 3600s",
        "outcome: fail after 1 attempt, 0s waited: rate_limit (rule rate-limit); 1 record not "
        "replayed (seed 0)",
    ]
    data = run.as_dict()
    assert data["outcome"] == {
        "kind": "fail",
        "attempts": 1,
        "waited": 0.0,
        "classification": "rate_limit",
        "rule": "rate-limit",
        "unused_records": 1,
        "summary": "fail after 1 attempt, 0s waited: rate_limit (rule rate-limit); 1 record "
        "not replayed",
    }
    assert data["steps"][0]["delay"] == 0.0


def test_recording_ends_while_retrying(tmp_path: Path) -> None:
    run = simulate(_policy(tmp_path), read_records(b'{"transport": "reset"}\n', "r"))
    assert run.outcome == "exhausted"
    assert run.summary() == (
        "the recording ends after 1 attempt (0.5s waited) while the policy would retry after 0.5s"
    )


def test_max_attempts_stops_the_replay(tmp_path: Path) -> None:
    records = read_records(b'{"status": 500}\n' * 6, "r")
    run = simulate(_policy(tmp_path), records)
    assert [s.action.kind.value for s in run.steps] == ["retry", "retry", "retry", "fail"]
    assert (run.outcome, run.unused, run.waited) == ("fail", 2, 0.5 + 1 + 2)


def test_http_date_hints_use_the_recorded_time(tmp_path: Path) -> None:
    records = read_records(
        b'{"status": 503, "headers": {"Date": "Wed, 25 Nov 2026 12:00:00 GMT", '
        b'"Retry-After": "Wed, 25 Nov 2026 12:00:04 GMT"}}\n',
        "r",
    )
    run = simulate(_policy(tmp_path), records)
    assert run.steps[0].action.delay == 4.0


def test_seed_makes_jitter_reproducible(default_policy: pe.Policy) -> None:
    records = read_records(b'{"status": 500}\n{"status": 500}\n{"status": 200}\n', "r")
    first = simulate(default_policy, records, seed=7).as_dict()
    assert simulate(default_policy, records, seed=7).as_dict() == first
    assert simulate(default_policy, records, seed=8).as_dict() != first


def test_method_rules_apply_to_recorded_network_failures(tmp_path: Path) -> None:
    # The README's own override: a POST whose read timed out is not resent.
    policy = _policy(
        tmp_path,
        PLAIN + '[[rules]]\nid = "no-post-retry"\n'
        'match = { transport = "read_timeout", method = "POST" }\n'
        'classification = "timeout"\naction = "fail"\n',
    )
    records = read_records(
        b'{"transport": "read_timeout", "method": "POST"}\n{"status": 200}\n', "r"
    )
    run = simulate(policy, records)
    assert [(s.action.rule_id, s.action.kind.value) for s in run.steps] == [
        ("no-post-retry", "fail")
    ]


def test_streamed_records_are_decided_on_their_first_event(default_policy: pe.Policy) -> None:
    overloaded = (
        'event: error\\ndata: {\\"type\\": \\"error\\", \\"error\\": '
        '{\\"type\\": \\"overloaded_error\\", \\"message\\": \\"Overloaded\\"}}\\n\\n'
    )
    ok = 'data: {\\"choices\\": []}\\n\\n'
    sse = '"headers": {"Content-Type": "text/event-stream"}'
    records = read_records(
        (
            f'{{"status": 200, {sse}, "body": "{overloaded}{ok}"}}\n'
            f'{{"status": 200, {sse}, "body": "{ok}{ok}{overloaded}"}}\n'
        ).encode(),
        "r",
    )
    run = simulate(default_policy, records)
    assert [s.action.rule_id for s in run.steps] == ["overloaded-message", "success"]
    assert (run.steps[0].events, run.steps[0].interruption) == (2, None)
    last = run.steps[1]
    assert (last.events, last.interrupted) == (3, 2)
    assert last.interruption is not None and last.interruption.classification == "overloaded"
    text = run.text()
    assert "stream breaks off after 2 events: overloaded (overloaded-message, would retry)" in text
    assert "outcome: succeed after 2 attempts" in text
    assert "; then stream interrupted after 2 events: overloaded" in text
    assert run.as_dict()["steps"][1]["stream"]["interrupted"]["after"] == 2
    assert run.as_dict()["steps"][0]["stream"] == {"events": 2, "interrupted": None}
