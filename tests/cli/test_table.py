"""``policyengine table``: the default policy reproduces the seed doc's rows."""

from __future__ import annotations

from pathlib import Path

import policyengine as pe
from policyengine.cli.table import render_html, render_markdown, table_data

#: The "HTTP Status Codes" table of the gateway's "Error Codes" page.
SEED_ROWS = [
    "| 200 | Success | -- |",
    "| 400 | Bad Request | Check JSON format and ensure all required parameters are present |",
    "| 401 | Authentication Failed | Verify that your API Key is correct and has not expired "
    "or been disabled |",
    "| 403 | Forbidden | This key may not be authorized to access the requested model |",
    "| 429 | Rate Limit Exceeded | Reduce request frequency, or contact support to increase "
    "your RPM quota |",
    "| 500 | Internal Server Error | Retry the request; if the issue persists, submit a "
    "support ticket |",
    "| 502/503 | Upstream Service Unavailable | Wait and retry; consider switching to an "
    "alternative model |",
]

#: Its "Common Errors and Solutions".
SEED_CODES = [
    """\
### invalid_api_key

Invalid API key provided

Cause: The API Key is incorrect or has been deleted.

Solution: Go to the console to verify the key status and re-copy the full key.
""",
    """\
### model_not_found

Model 'xxx' not found

Cause: The model ID is misspelled, or the model is not enabled for your plan.

Solution: Check the model ID for correctness (model IDs are case-sensitive). Query the \
/v1/models endpoint to retrieve the full list of available models.
""",
    """\
### rate_limit_exceeded

Rate limit exceeded

Cause: Request frequency has exceeded the RPM (requests per minute) quota.

Solution: Reduce request frequency and increase the interval between requests. Contact \
support if you need a higher quota.
""",
    """\
### context_length_exceeded

This model's maximum context length is xxx tokens

Cause: The combined input and output token count exceeds the model's context limit.

Solution: Reduce the input length or lower the max_tokens parameter.
""",
]


def test_default_reproduces_the_seed_status_rows_in_order(default_policy: pe.Policy) -> None:
    lines = render_markdown(default_policy).splitlines()
    header = lines.index("| Status Code | Meaning | Recommended Action |")
    assert lines[header + 1] == "| --- | --- | --- |"
    positions = [lines.index(row) for row in SEED_ROWS]
    assert positions == sorted(positions)
    assert positions[0] == header + 2  # 200 comes first


def test_default_reproduces_the_seed_error_codes_in_order(default_policy: pe.Policy) -> None:
    text = render_markdown(default_policy)
    positions = [text.index(block) for block in SEED_CODES]
    assert positions == sorted(positions)
    assert text.index("## Common Errors and Solutions") < positions[0]


def test_retry_strategy_section(default_policy: pe.Policy) -> None:
    text = render_markdown(default_policy)
    assert "| 429 | retry | 5 | 1s, x2 per retry, at most 30s, equal jitter |" in text
    assert (
        "| model_not_found | switch to the next fallback model (else fail) | 4 | 0.5s, x2 per "
        "retry, at most 8s, equal jitter |" in text
    )


def test_json_rows(default_policy: pe.Policy) -> None:
    data = table_data(default_policy)
    codes = {c["code"]: c for c in data["codes"]}
    assert codes["invalid_api_key"] == {
        "rule": "invalid-api-key",
        "code": "invalid_api_key",
        "aliases": ["API_KEY_INVALID", "invalid_key"],
        "message": "Invalid API key provided",
        "cause": "The API Key is incorrect or has been deleted.",
        "solution": "Go to the console to verify the key status and re-copy the full key.",
    }
    statuses = [row["status"] for row in data["statuses"]]
    assert statuses[:3] == ["200", "400", "401"]


def test_escaping(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        "inherit = false\n"
        '[[rules]]\nid = "pipe"\ndescription = "418 Tea | <Pot>"\nmatch = { status = 418 }\n'
        'remediation = "Teapot: pour a <cup> | two."\n'
        '[[rules]]\nid = "code"\nmatch = { code = "a&b" }\n'
        'remediation = "Odd {{braces}}. Cause: Because. Solution: Stop."\n',
        encoding="utf-8",
    )
    policy = pe.load_policy(path, env=False)
    md = render_markdown(policy)
    assert "| 418 | Tea \\| <Pot> | Pour a <cup> \\| two |" in md
    assert "### a&b\n\nOdd {braces}\n\nCause: Because.\n\nSolution: Stop.\n" in md
    page = render_html(policy)
    assert (
        "<tr><td>418</td><td>Tea | &lt;Pot&gt;</td><td>Pour a &lt;cup&gt; | two</td></tr>" in page
    )
    assert '<h3 id="a&amp;b">a&amp;b</h3>' in page
    assert "Retry Strategy" not in md
