"""``policyengine table``: a policy as human error-code documentation, in the
layout of a gateway's "Error Codes" page: a status code table (Status Code |
Meaning | Recommended Action), the error codes with cause and solution, and
the retry strategy.

The texts come from the rules: ``description`` gives the meaning (a leading
status such as ``"429 "`` becomes the Status Code column), ``remediation``
the recommended action (a leading label such as ``"Rate limit exceeded: "``
and the server's message, which only a live response has, are left out;
``Cause:`` and ``Solution:`` split it for an error code). A placeholder with
no value in a document reads ``xxx``, as such pages write it.
"""

from __future__ import annotations

import html
import re
from typing import Any, NamedTuple

import attrs

from .._model import ActionKind, Policy, Rule
from .._text import parse_template

__all__ = ["render_html", "render_markdown", "table_data"]

_LEADING_STATUS = re.compile(r"^([0-9]{3}(?:/[0-9]{3})*)\s+(.*)$", re.DOTALL)
_LABEL = re.compile(r"^([A-Za-z][A-Za-z ]{0,40}):\s+(?=\S)")
_SERVER_SAID = re.compile(r"\s*Server said:\s*\{message\}\.?")
_MESSAGE_TAIL = re.compile(r"(?::\s*\{message\}\.?$|\s*\(\{message\}\))")


@attrs.frozen
class StatusRow:
    rule: str
    status: str
    meaning: str
    action: str


@attrs.frozen
class CodeEntry:
    rule: str
    code: str
    aliases: tuple[str, ...]
    message: str
    cause: str
    solution: str


@attrs.frozen
class RetryRow:
    rule: str
    applies_to: str
    action: str
    max_attempts: int
    backoff: str


def _fill(text: str, status: str | None = None) -> str:
    """A template with its placeholders as a document writes them: ``{status}``
    as the row's status, anything else as ``xxx``; ``{{`` / ``}}`` as braces."""
    try:
        parts = parse_template(text)
    except ValueError:  # pragma: no cover - the loader checked the template
        return text
    out = []
    for part in parts:
        out.append(part.literal)
        if part.field is not None:
            out.append(status if part.field == "status" and status is not None else "xxx")
    return "".join(out)


def _clean(remediation: str) -> str:
    text = _SERVER_SAID.sub("", remediation)
    return _MESSAGE_TAIL.sub("", text).strip()


def _sentence_case(text: str) -> str:
    text = text.strip()
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]
    return text[:1].upper() + text[1:]


def _status_only(rule: Rule) -> bool:
    m = rule.match
    return (
        bool(m.status)
        and not (
            m.code or m.type or m.message or m.message_regex or m.transport or m.headers or m.method
        )
        and m.error is not True
    )


def _statuses(rule: Rule) -> set[int]:
    out: set[int] = set()
    for r in rule.match.status:
        out.update(range(r.low, r.high + 1))
    return out


def _status_row(rule: Rule) -> StatusRow:
    spec = "/".join(str(r) for r in rule.match.status)
    exact = all(r.exact for r in rule.match.status)
    status, meaning = spec, rule.description.strip() or rule.classification
    m = _LEADING_STATUS.match(rule.description.strip())
    if m:
        named = {int(s) for s in m.group(1).split("/")}
        covered = _statuses(rule)
        if (exact and named == covered) or (not exact and named <= covered):
            status, meaning = m.group(1), m.group(2).strip()
    action = _clean(rule.remediation)
    if action:
        label = _LABEL.match(action)
        if label and len(label.group(1).split()) <= 4:
            action = action[label.end() :]
        action = _sentence_case(_fill(action, status))
    return StatusRow(rule.id, status, meaning, action or "--")


def _code_entry(rule: Rule) -> CodeEntry:
    text = _fill(_clean(rule.remediation))
    cause = solution = ""
    head, sep, rest = text.partition(" Cause: ")
    if sep:
        cause, _, solution = rest.partition(" Solution: ")
        message = head
    else:
        head, sep, rest = text.partition(". ")
        message, solution = head, rest
        description = rule.description.strip()
        code_prefix = f"{rule.match.code[0]}: "
        if description.startswith(code_prefix):
            description = description[len(code_prefix) :]
        cause = _sentence_case(description) + "." if description else ""
    message = message.strip()
    if message.endswith("."):
        message = message[:-1]
    return CodeEntry(
        rule.id,
        rule.match.code[0],
        rule.match.code[1:],
        message,
        cause.strip(),
        solution.strip(),
    )


def _backoff(rule: Rule) -> str:
    b = rule.backoff
    text = f"{b.initial:g}s"
    if float(b.multiplier) != 1.0:
        text += f", x{b.multiplier:g} per retry"
    return text + f", at most {b.max_delay:g}s, {b.jitter.value} jitter"


class _Sections(NamedTuple):
    """The three parts of the documentation, in the order they are shown."""

    statuses: list[StatusRow]
    codes: list[CodeEntry]
    retry: list[RetryRow]


def _sections(policy: Policy) -> _Sections:
    enabled = [r for r in policy.rules if r.enabled]
    rows = [_status_row(r) for r in enabled if _status_only(r)]
    # Exact statuses first, in order; then classes and ranges.
    rows.sort(
        key=lambda row: (
            not re.fullmatch(r"[0-9]{3}(?:/[0-9]{3})*", row.status),
            row.status.replace("x", "0"),
        )
    )
    code_rules = [
        r for r in enabled if r.match.code and not (r.match.message or r.match.message_regex)
    ]
    codes = [_code_entry(r) for r in code_rules]
    retry = []
    by_id: dict[str, Rule] = {r.id: r for r in enabled}
    labels = [(row.rule, row.status) for row in rows] + [(c.rule, c.code) for c in codes]
    for rule_id, label in labels:
        rule = by_id[rule_id]
        if rule.action not in (ActionKind.RETRY, ActionKind.FALLBACK) or rule.max_attempts <= 1:
            continue
        if not rule.retryable and rule.action is ActionKind.RETRY:
            continue
        action = "retry"
        if rule.action is ActionKind.FALLBACK:
            otherwise = "retry" if rule.retryable else "fail"
            action = f"switch to the next fallback model (else {otherwise})"
        retry.append(RetryRow(rule_id, label, action, rule.max_attempts, _backoff(rule)))
    return _Sections(rows, codes, retry)


def _hint_note(policy: Policy) -> str:
    headers = [s.header or "the error message" for s in policy.hints.sources]
    if not headers:
        return ""
    return (
        "A server's wait hint (" + ", ".join(headers) + ") replaces the backoff when present, "
        f"up to {policy.defaults.hint_max:g}s unless a rule says otherwise."
    )


def table_data(policy: Policy) -> dict[str, Any]:
    """The documentation as data (``table --format json``)."""
    doc = _sections(policy)
    return {
        "description": policy.description,
        "statuses": [attrs.asdict(r) for r in doc.statuses],
        "codes": [{**attrs.asdict(c), "aliases": list(c.aliases)} for c in doc.codes],
        "retry": [attrs.asdict(r) for r in doc.retry],
        "hints": _hint_note(policy),
    }


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(policy: Policy) -> str:
    """The documentation as Markdown."""
    doc = _sections(policy)
    out = ["# Error Codes", ""]
    if policy.description:
        out += [policy.description, ""]
    out += [
        "## HTTP Status Codes",
        "",
        "| Status Code | Meaning | Recommended Action |",
        "| --- | --- | --- |",
    ]
    out += [f"| {_cell(r.status)} | {_cell(r.meaning)} | {_cell(r.action)} |" for r in doc.statuses]
    out += ["", "## Common Errors and Solutions", ""]
    for c in doc.codes:
        out += [f"### {c.code}", "", c.message, ""]
        if c.cause:
            out += [f"Cause: {c.cause}", ""]
        if c.solution:
            out += [f"Solution: {c.solution}", ""]
        if c.aliases:
            out += ["Also sent as: " + ", ".join(f"`{a}`" for a in c.aliases) + ".", ""]
    if doc.retry:
        out += [
            "## Retry Strategy",
            "",
            "| Status / Error Code | Action | Attempts in all | Backoff |",
            "| --- | --- | --- | --- |",
        ]
        out += [
            f"| {_cell(r.applies_to)} | {_cell(r.action)} | {r.max_attempts} | {_cell(r.backoff)} |"
            for r in doc.retry
        ]
        note = _hint_note(policy)
        out += ["", note, ""] if note else [""]
    return "\n".join(out).rstrip("\n") + "\n"


def render_html(policy: Policy) -> str:
    """The documentation as an HTML fragment."""
    doc = _sections(policy)
    e = html.escape
    out = ["<h1>Error Codes</h1>"]
    if policy.description:
        out.append(f"<p>{e(policy.description)}</p>")
    out += [
        "<h2>HTTP Status Codes</h2>",
        "<table>",
        "<thead><tr><th>Status Code</th><th>Meaning</th><th>Recommended Action</th></tr></thead>",
        "<tbody>",
    ]
    out += [
        f"<tr><td>{e(r.status)}</td><td>{e(r.meaning)}</td><td>{e(r.action)}</td></tr>"
        for r in doc.statuses
    ]
    out += ["</tbody>", "</table>", "<h2>Common Errors and Solutions</h2>"]
    for c in doc.codes:
        out += [f'<h3 id="{e(c.code)}">{e(c.code)}</h3>', f"<p>{e(c.message)}</p>"]
        if c.cause:
            out.append(f"<p>Cause: {e(c.cause)}</p>")
        if c.solution:
            out.append(f"<p>Solution: {e(c.solution)}</p>")
        if c.aliases:
            names = ", ".join(f"<code>{e(a)}</code>" for a in c.aliases)
            out.append(f"<p>Also sent as: {names}.</p>")
    if doc.retry:
        out += [
            "<h2>Retry Strategy</h2>",
            "<table>",
            "<thead><tr><th>Status / Error Code</th><th>Action</th><th>Attempts in all</th>"
            "<th>Backoff</th></tr></thead>",
            "<tbody>",
        ]
        out += [
            f"<tr><td>{e(r.applies_to)}</td><td>{e(r.action)}</td><td>{r.max_attempts}</td>"
            f"<td>{e(r.backoff)}</td></tr>"
            for r in doc.retry
        ]
        out += ["</tbody>", "</table>"]
        note = _hint_note(policy)
        if note:
            out.append(f"<p>{e(note)}</p>")
    return "\n".join(out) + "\n"
