"""``policyengine simulate``: replay recorded responses through a policy.

The records are the successive attempts of one request. Attempt ``n`` is
decided with ``elapsed`` = the waits so far plus the recorded durations of
the attempts before it; a ``fallback`` action switches the model the next
attempts use; attempts keep counting across models. The replay stops at the
first ``succeed`` or ``fail``, or when the records run out while the policy
would still try again.

A 2xx event stream is decided on its first event, as the adapters decide
before handing a stream over; an error event after it is decided too and
noted: the adapters would raise it from the stream's iterator
(``StreamInterrupted``) after the events before it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import attrs

from .._engine import Engine
from .._errors import interrupted_message
from .._model import Action, ActionKind, Policy, Response
from .._peek import recorded, watched
from .._text import plural, seconds
from .records import Record

__all__ = ["Run", "Step", "simulate"]


@attrs.frozen
class Step:
    """One replayed attempt."""

    attempt: int
    record: Record
    model: str | None
    elapsed: float  # seconds since the first attempt, when this one was decided
    action: Action
    waited: float  # cumulative wait after this step's delay
    events: int | None = None  # the events of a streamed answer; None: not a stream
    interrupted: int | None = None  # the events before an error event stops the stream
    interruption: Action | None = None  # the action on that error event

    def stream_dict(self) -> dict[str, Any] | None:
        if self.events is None:
            return None
        stop = self.interruption
        return {
            "events": self.events,
            "interrupted": None
            if stop is None
            else {
                "after": self.interrupted,
                "kind": stop.kind.value,
                "classification": stop.classification,
                "rule": stop.rule_id or None,
                "delay": stop.delay if stop.should_retry else 0.0,
            },
        }

    def as_dict(self) -> dict[str, Any]:
        r = self.record
        a = self.action
        return {
            "attempt": self.attempt,
            "where": r.where,
            "status": r.response.status if r.response is not None else None,
            "transport": r.transport,
            "model": self.model,
            "elapsed": self.elapsed,
            "rule": a.rule_id or None,
            "kind": a.kind.value,
            "classification": a.classification,
            "delay": a.delay if a.should_retry else 0.0,
            "waited": self.waited,
            "fallback": a.fallback,
            "stream": self.stream_dict(),
        }


@attrs.frozen
class Run:
    """A whole replay: its steps and how it ended."""

    seed: int
    steps: tuple[Step, ...]
    outcome: str  # succeed, fail, or exhausted (records ran out; the policy would go on)
    unused: int  # records after the last step

    @property
    def waited(self) -> float:
        return self.steps[-1].waited if self.steps else 0.0

    def summary(self) -> str:
        n = len(self.steps)
        attempts = plural(n, "attempt")
        last = self.steps[-1].action
        if self.outcome == "succeed":
            text = f"succeed after {attempts}, {seconds(self.waited)}s waited"
        elif self.outcome == "fail":
            text = (
                f"fail after {attempts}, {seconds(self.waited)}s waited: {last.classification} "
                f"(rule {last.rule_id or '(none)'})"
            )
        else:
            text = (
                f"the recording ends after {attempts} ({seconds(self.waited)}s waited) while the "
                f"policy would {last.kind.value} after {seconds(last.delay)}s"
            )
        stop = self.steps[-1].interruption
        if self.outcome == "succeed" and stop is not None:
            text += f"; then {interrupted_message(stop, self.steps[-1].interrupted or 0)}"
        if self.unused:
            text += f"; {plural(self.unused, 'record')} not replayed"
        return text

    def text(self) -> str:
        header = ("attempt", "status", "rule", "action", "delay", "waited", "note")
        rows: list[tuple[str, ...]] = [header]
        for step in self.steps:
            r, a = step.record, step.action
            what = str(r.response.status) if r.response is not None else (r.transport or "")
            note = ""
            if a.kind is ActionKind.FALLBACK and a.fallback:
                note = f"next model {a.fallback}"
            elif a.kind is ActionKind.FAIL and a.delay > 0:
                note = f"server asked for {seconds(a.delay)}s"
            if step.interruption is not None:
                stop = step.interruption
                note = (
                    f"stream breaks off after {plural(step.interrupted or 0, 'event')}: "
                    f"{stop.classification} ({stop.rule_id or '(none)'}, would {stop.kind.value})"
                )
            rows.append(
                (
                    str(step.attempt),
                    what,
                    a.rule_id or "(none)",
                    a.kind.value,
                    f"{seconds(a.delay)}s" if a.should_retry else "-",
                    f"{seconds(step.waited)}s",
                    note,
                )
            )
        if not any(row[-1] for row in rows[1:]):
            rows = [row[:-1] for row in rows]  # no notes: no note column
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        lines.append(f"outcome: {self.summary()} (seed {self.seed})")
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        last = self.steps[-1].action if self.steps else None
        return {
            "seed": self.seed,
            "steps": [s.as_dict() for s in self.steps],
            "outcome": {
                "kind": self.outcome,
                "attempts": len(self.steps),
                "waited": self.waited,
                "classification": last.classification if last else None,
                "rule": (last.rule_id or None) if last else None,
                "unused_records": self.unused,
                "summary": self.summary(),
            },
        }


def simulate(
    policy: Policy, records: Sequence[Record], *, seed: int = 0, model: str | None = None
) -> Run:
    """Replay ``records`` as the attempts of one request (see the module doc)."""
    # One engine; its clock reads the time the current record was received.
    received: list[float | None] = [None]

    def clock() -> float:
        now = received[0]
        return time.time() if now is None else now

    engine = Engine(policy, rng=random.Random(seed), clock=clock)
    steps: list[Step] = []
    waited = 0.0
    elapsed = 0.0
    outcome = "exhausted"
    for n, record in enumerate(records, start=1):
        received[0] = record.now
        subject = record.subject()
        stream = None
        if isinstance(subject, Response) and watched(
            subject.status, subject.header("content-type"), None
        ):
            stream = recorded(subject.body)
            subject = attrs.evolve(subject, body=stream.head)
        action = engine.evaluate(subject, n, elapsed, model=model, method=record.method)
        if action.should_retry:
            waited += action.delay
        step = Step(n, record, model, elapsed, action, waited)
        if stream is not None and isinstance(subject, Response):
            step = attrs.evolve(step, events=stream.events)
            if stream.interrupted is not None and action.kind is ActionKind.SUCCEED:
                stop = engine.evaluate(
                    attrs.evolve(subject, body=stream.error),
                    n,
                    elapsed,
                    model=model,
                    method=record.method,
                )
                if stop.kind is not ActionKind.SUCCEED:
                    step = attrs.evolve(step, interrupted=stream.interrupted, interruption=stop)
        steps.append(step)
        elapsed += record.duration + (action.delay if action.should_retry else 0.0)
        if not action.should_retry:
            outcome = action.kind.value
            break
        if action.fallback is not None:
            model = action.fallback
    return Run(seed, tuple(steps), outcome, len(records) - len(steps))
