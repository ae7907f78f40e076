"""The bundled default policy decides every row and code of the gateway doc
(shared/seeds: "03 - Error Codes") as it recommends, and what real providers
and gateways send beyond it."""

from __future__ import annotations

import json

import pytest

import policyengine as pe

from .conftest import error_body

K = pe.ActionKind

# Status table of the doc: status -> (classification, kind on attempt 1, retryable,
# words of the doc's "Recommended Action" that the remediation must carry).
STATUS_TABLE = [
    (200, "success", K.SUCCEED, False, ""),
    (
        400,
        "bad_request",
        K.FAIL,
        False,
        "Check JSON format and ensure all required parameters are present",
    ),
    (
        401,
        "authentication",
        K.FAIL,
        False,
        "Verify that your API Key is correct and has not expired or been disabled",
    ),
    (
        403,
        "permission_denied",
        K.FAIL,
        False,
        "This key may not be authorized to access the requested model",
    ),
    (
        429,
        "rate_limit",
        K.RETRY,
        True,
        "Reduce request frequency, or contact support to increase your RPM quota",
    ),
    (
        500,
        "server_error",
        K.RETRY,
        True,
        "Retry the request; if the issue persists, submit a support ticket",
    ),
    (
        502,
        "upstream_unavailable",
        K.RETRY,
        True,
        "Wait and retry; consider switching to an alternative model",
    ),
    (
        503,
        "upstream_unavailable",
        K.RETRY,
        True,
        "Wait and retry; consider switching to an alternative model",
    ),
]


@pytest.mark.parametrize(("status", "classification", "kind", "retryable", "advice"), STATUS_TABLE)
def test_status_table(
    engine: pe.Engine,
    status: int,
    classification: str,
    kind: pe.ActionKind,
    retryable: bool,
    advice: str,
) -> None:
    action = engine.evaluate(pe.Response(status, {}, b""))
    assert (action.classification, action.kind, action.retryable) == (
        classification,
        kind,
        retryable,
    )
    assert advice.lower() in action.remediation.lower()


# Common errors of the doc: code -> (classification, kind, retryable, cause, solution).
CODES = [
    (
        "invalid_api_key",
        401,
        "Invalid API key provided: sk-nex-xxx...xxx.",
        "authentication",
        K.FAIL,
        False,
        "The API Key is incorrect or has been deleted",
        "Go to the console to verify the key status and re-copy the full key",
    ),
    (
        "model_not_found",
        404,
        "Model 'gpt-9' not found",
        "not_found",
        K.FAIL,
        False,
        "The model ID is misspelled, or the model is not enabled for your plan",
        "Query the /v1/models endpoint to retrieve the full list of available models",
    ),
    (
        "rate_limit_exceeded",
        429,
        "Rate limit exceeded",
        "rate_limit",
        K.RETRY,
        True,
        "Request frequency has exceeded the RPM (requests per minute) quota",
        "Reduce request frequency and increase the interval between requests",
    ),
    (
        "context_length_exceeded",
        400,
        "This model's maximum context length is 8192 tokens",
        "context_length",
        K.FAIL,
        False,
        "The combined input and output token count exceeds the model's context limit",
        "Reduce the input length or lower the max_tokens parameter",
    ),
]


@pytest.mark.parametrize(
    ("code", "status", "message", "classification", "kind", "retryable", "cause", "solution"), CODES
)
def test_common_error_codes(
    engine: pe.Engine,
    code: str,
    status: int,
    message: str,
    classification: str,
    kind: pe.ActionKind,
    retryable: bool,
    cause: str,
    solution: str,
) -> None:
    action = engine.evaluate(pe.Response(status, {}, error_body(message, "x", code)))
    assert (action.classification, action.kind, action.retryable) == (
        classification,
        kind,
        retryable,
    )
    assert action.rule_id == code.replace("_", "-")
    assert f"Cause: {cause}" in action.remediation
    assert solution in action.remediation


def test_remediation_fills_the_doc_placeholders(engine: pe.Engine) -> None:
    missing = engine.evaluate(
        pe.Response(404, {}, error_body("Model 'gpt-9' not found", None, "model_not_found"))
    )
    assert missing.remediation.startswith("Model 'gpt-9' not found.")
    context = engine.evaluate(
        pe.Response(
            400,
            {},
            error_body(
                "This model's maximum context length is 8192 tokens.",
                None,
                "context_length_exceeded",
            ),
        )
    )
    assert context.remediation.startswith("This model's maximum context length is 8192 tokens.")
    unknown = engine.evaluate(
        pe.Response(400, {}, error_body("x", None, "context_length_exceeded"))
    )
    assert unknown.remediation.startswith("This model's maximum context length is (unknown)")


def test_retry_strategy_is_exponential_for_429_and_5xx(default_policy: pe.Policy) -> None:
    import random

    engine = pe.Engine(
        pe.load_policy({"defaults": {"backoff": {"jitter": "none"}}}, env=False),
        rng=random.Random(0),
    )
    for status, first in ((429, 1.0), (500, 0.5), (502, 0.5), (503, 0.5), (504, 0.5)):
        delays = [engine.evaluate(pe.Response(status), attempt=n).delay for n in (1, 2, 3)]
        assert delays == [first, first * 2, first * 4], status


# Beyond the doc: (status, body, headers) -> (classification, kind, rule)
REAL_WORLD = [
    # An exhausted quota is not a rate limit, whatever the status.
    (
        429,
        error_body(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        {},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-type",  # its type and its code both say so
    ),
    (
        429,
        error_body("You exceeded your current quota", "insufficient_quota", None),
        {},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-type",
    ),
    (
        403,
        error_body("用户额度不足", "new_api_error", "insufficient_user_quota"),
        {},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted",
    ),
    (
        402,
        error_body("Insufficient Balance", "unknown_error", "invalid_request_error"),
        {},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-message",
    ),
    (
        402,
        b'{"error": {"code": 402, "message": "Insufficient credits"}}',
        {},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-message",
    ),
    (
        400,
        b'{"type": "error", "error": {"type": "invalid_request_error", "message": "Your credit '
        b'balance is too low to access the Anthropic API."}}',
        {},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-message",
    ),
    (
        429,
        error_body("quota", "insufficient_quota", "insufficient_quota"),
        {"Retry-After": "1"},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-type",
    ),
    (  # Gemini's prepaid credit: a 402 whose type would otherwise be a rate limit
        402,
        b'{"error": {"code": 402, "message": "Your prepaid credits are depleted.", '
        b'"status": "RESOURCE_EXHAUSTED"}}',
        {},
        "quota_exhausted",
        K.FAIL,
        "payment-required-type",
    ),
    (
        400,
        b'{"type": "error", "error": {"type": "invalid_request_error", "message": "You have '
        b'reached your specified workspace API usage limits."}}',
        {},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-message",
    ),
    (
        401,
        error_body(
            "This token quota is exhausted TokenStatusExhausted[sk-xxx***yyy]", "new_api_error", ""
        ),
        {},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-message",
    ),
    (
        403,
        error_body("daily limit", "new_api_error", "entitlement_daily_limit_exceeded"),
        {},
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted",
    ),
    (  # OpenRouter's daily cap of free models: waiting a minute will not help
        429,
        b'{"error": {"message": "Rate limit exceeded: free-models-per-day. Add 10 credits to '
        b'unlock 1000 free model requests per day", "code": 429}}',
        {},
        "quota_exhausted",
        K.FAIL,
        "free-models-per-day",
    ),
    (
        429,
        error_body("free-models-per-day-high-balance", "rate_limit_error", "429"),
        {},
        "quota_exhausted",
        K.FAIL,
        "free-models-per-day",
    ),
    # A code beats a misleading status.
    (
        503,
        error_body(
            "No available channel for model gpt-4o under group default",
            "new_api_error",
            "model_not_found",
        ),
        {},
        "not_found",
        K.FAIL,
        "model-not-found",
    ),
    (
        400,
        json.dumps(
            {
                "error": {
                    "code": 400,
                    "message": "API key not valid.",
                    "status": "INVALID_ARGUMENT",
                    "details": [{"reason": "API_KEY_INVALID"}],
                }
            }
        ).encode(),
        {},
        "authentication",
        K.FAIL,
        "invalid-api-key",
    ),
    (
        429,
        error_body(
            "Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 30601.",
            "tokens",
            "rate_limit_exceeded",
        ),
        {},
        "bad_request",
        K.FAIL,
        "request-too-large",
    ),
    # Overload and gateway timeouts are transient.
    (
        529,
        b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
        {},
        "overloaded",
        K.RETRY,
        "overloaded-message",
    ),  # two conditions beat one
    (
        200,
        b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}',
        {},
        "overloaded",
        K.RETRY,
        "overloaded-type",
    ),
    (529, b"", {}, "overloaded", K.RETRY, "overloaded"),
    (
        503,
        json.dumps(
            [
                {
                    "error": {
                        "code": 503,
                        "message": "The model is overloaded.",
                        "status": "UNAVAILABLE",
                    }
                }
            ]
        ).encode(),
        {},
        "overloaded",
        K.RETRY,
        "overloaded-message",
    ),
    (
        504,
        b"<html><head><title>504 Gateway Time-out</title></head></html>",
        {},
        "timeout",
        K.RETRY,
        "request-timeout",
    ),
    (
        524,
        b"<!DOCTYPE html><title>example.com | 524: A timeout occurred</title>",
        {},
        "timeout",
        K.RETRY,
        "request-timeout",
    ),
    (
        522,
        b"<!DOCTYPE html><title>522: Connection timed out</title>",
        {},
        "upstream_unavailable",
        K.RETRY,
        "proxy-unavailable",
    ),
    (
        502,
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        {},
        "upstream_unavailable",
        K.RETRY,
        "upstream-unavailable",
    ),
    (
        429,
        b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}',
        {},
        "rate_limit",
        K.RETRY,
        "rate-limit",  # the type is generic: the exact status decides (same classification)
    ),
    (
        429,
        b'{"error": {"code": 429, "message": "Resource has been exhausted", '
        b'"status": "RESOURCE_EXHAUSTED"}}',
        {},
        "rate_limit",
        K.RETRY,
        "rate-limit",
    ),
    (  # ...and where no exact status rule is, the type decides
        200,
        b'data: {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}\n\n',
        {},
        "rate_limit",
        K.RETRY,
        "rate-limit-type",
    ),
    (
        400,
        b'{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too '
        b'long: 208310 tokens > 200000 maximum"}}',
        {},
        "context_length",
        K.FAIL,
        "context-length-message",
    ),
    (
        403,
        b"<html>challenge</html>",
        {"cf-mitigated": "challenge"},
        "permission_denied",
        K.FAIL,
        "bot-challenge",
    ),
    (  # a challenge page is a block, whatever the status: not a rate limit to retry
        429,
        b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>",
        {"cf-mitigated": "challenge"},
        "permission_denied",
        K.FAIL,
        "bot-challenge",
    ),
    (
        503,
        b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>",
        {"cf-mitigated": "challenge"},
        "permission_denied",
        K.FAIL,
        "bot-challenge",
    ),
    (
        400,
        b'{"type": "error", "error": {"type": "invalid_request_error", "message": "input '
        b"length and `max_tokens` exceed context limit: 199000 + 21333 > 200000, decrease "
        b'input length or `max_tokens` and try again"}}',
        {},
        "context_length",
        K.FAIL,
        "context-length-message",
    ),
    (  # Groq's flex tier at capacity: transient
        498,
        error_body("Flex tier capacity exceeded", "capacity_exceeded", "capacity_exceeded"),
        {},
        "overloaded",
        K.RETRY,
        "capacity-exceeded",
    ),
    # Old one-api answered token errors with a 200: not a server error to retry.
    (
        200,
        error_body("无效的令牌", "one_api_error"),
        {},
        "authentication",
        K.FAIL,
        "authentication-message",
    ),
    # An error object inside a 2xx body is an error.
    (
        200,
        b'{"id": "gen-1", "error": {"code": 502, "message": "Provider disconnected"}}',
        {},
        "server_error",
        K.RETRY,
        "error-in-success",
    ),
    (
        200,
        error_body("Invalid API key", "authentication_error", "invalid_api_key"),
        {},
        "authentication",
        K.FAIL,
        "invalid-api-key",
    ),
    (
        200,
        b'event: message_start\ndata: {"type": "message_start"}\n\nevent: error\ndata: '
        b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n',
        {},
        "overloaded",
        K.RETRY,
        "overloaded-message",  # as on a 529: the message says overloaded
    ),  # Anthropic's error event after a 200
    (
        200,
        b'data: {"error": {"code": 503, "message": "The model is overloaded. Please try again '
        b'later.", "status": "UNAVAILABLE"}}\n\n',
        {"content-type": "text/event-stream"},
        "overloaded",
        K.RETRY,
        "overloaded-message",
    ),  # Gemini's 503 in a stream: an overload, not a server error
    (
        404,
        b'{"type": "error", "error": {"type": "not_found_error", "message": "model: claude-9"}}',
        {},
        "not_found",
        K.FAIL,  # no fallback model configured
        "model-not-found-message",
    ),  # Anthropic's unknown model
    (
        404,
        b'{"error": {"code": 404, "message": "models/gemini-9 is not found for API version '
        b'v1beta, or is not supported for generateContent.", "status": "NOT_FOUND"}}',
        {},
        "not_found",
        K.FAIL,
        "model-not-found-message",
    ),  # Gemini's unknown model
    (
        404,
        error_body("Not found the model gpt-9 or Permission denied", "resource_not_found_error"),
        {},
        "not_found",
        K.FAIL,
        "not-found",
    ),  # another 404 stays a plain not found
    (
        429,
        b'{"error": {"code": 429, "message": "You exceeded your current quota, please check '
        b'your plan and billing details.", "status": "RESOURCE_EXHAUSTED", "details": '
        b'[{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": '
        b'"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}, {"@type": '
        b'"type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"}]}}',
        {},
        "quota_exhausted",
        K.FAIL,
        "daily-quota",
    ),  # Gemini's per-day quota: no wait of seconds lifts it
    (
        429,
        b'{"error": {"code": 429, "message": "You exceeded your current quota", "status": '
        b'"RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",'
        b' "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]}]}',
        {},
        "rate_limit",
        K.RETRY,
        "rate-limit",
    ),  # ...and its per-minute one is a rate limit
    (418, b"I'm a teapot", {}, "bad_request", K.FAIL, "client-error"),
    (501, b"", {}, "server_error", K.FAIL, "not-implemented"),
    (599, b"", {}, "server_error", K.RETRY, "server-error-range"),
    (302, b"", {}, "unknown", K.FAIL, "unknown"),
]


@pytest.mark.parametrize(
    ("status", "body", "headers", "classification", "kind", "rule"), REAL_WORLD
)
def test_real_world(
    engine: pe.Engine,
    status: int,
    body: bytes,
    headers: dict[str, str],
    classification: str,
    kind: pe.ActionKind,
    rule: str,
) -> None:
    action = engine.evaluate(pe.Response(status, headers, body))
    assert (action.classification, action.kind, action.rule_id) == (classification, kind, rule)


def test_rate_limit_headers_are_waits_only_when_the_budget_is_spent(engine: pe.Engine) -> None:
    # OpenAI sends x-ratelimit-* on every response: a 500 with a long reset
    # time and budget left is a server error to retry, not a 6 minute wait.
    busy = {"x-ratelimit-remaining-requests": "12", "x-ratelimit-reset-requests": "6m0s"}
    action = engine.evaluate(pe.Response(500, busy, b""))
    assert (action.kind, action.delay_source) == (K.RETRY, "backoff")
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}
    action = engine.evaluate(pe.Response(429, spent, b""))
    assert (action.kind, action.delay, action.delay_source) == (K.RETRY, 1.5, "server")
    tokens = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}
    action = engine.evaluate(pe.Response(429, tokens, b""))
    assert (action.kind, action.delay) == (K.FAIL, 360.0)  # too long: fail, wait attached


@pytest.mark.parametrize(
    ("message", "kind", "delay"),
    [
        (
            "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 28039, "
            "Requested 3906. Please try again in 3.89s.",
            K.RETRY,
            3.89,
        ),
        (
            "Rate limit reached for model llama on tokens per day (TPD): Limit 500000. "
            "Please try again in 9m38.016s.",
            K.FAIL,
            578.016,
        ),  # a daily cap: fail, wait attached
        (
            "Requests have exceeded call rate limit. Please retry after 86400 seconds.",
            K.FAIL,
            86400.0,
        ),
        (
            "Quota exceeded for metric: generate_content_requests. Please retry in 40.77s.",
            K.RETRY,
            40.77,
        ),
    ],
)
def test_waits_said_in_the_message(
    engine: pe.Engine, message: str, kind: pe.ActionKind, delay: float
) -> None:
    action = engine.evaluate(
        pe.Response(429, {}, error_body(message, "tokens", "rate_limit_exceeded"))
    )
    assert (action.kind, action.delay, action.delay_source) == (kind, delay, "server")


def test_quota_ignores_should_retry_true(engine: pe.Engine) -> None:
    body = error_body("quota", "insufficient_quota", "insufficient_quota")
    action = engine.evaluate(pe.Response(429, {"x-should-retry": "true"}, body))
    assert action.kind is K.FAIL


@pytest.mark.parametrize(
    ("exc", "classification", "kind"),
    [
        (TimeoutError(), "timeout", K.RETRY),
        (ConnectionResetError(), "connection", K.RETRY),
        (ConnectionRefusedError(), "connection", K.RETRY),
        (__import__("ssl").SSLCertVerificationError(), "connection", K.FAIL),
    ],
)
def test_network_failures(
    engine: pe.Engine, exc: BaseException, classification: str, kind: pe.ActionKind
) -> None:
    action = engine.evaluate(exc)
    assert (action.classification, action.kind) == (classification, kind)


def test_classification_names(default_policy: pe.Policy) -> None:
    names = {r.classification for r in default_policy.rules}
    assert names == {
        "success",
        "bad_request",
        "authentication",
        "permission_denied",
        "not_found",
        "rate_limit",
        "quota_exhausted",
        "context_length",
        "server_error",
        "upstream_unavailable",
        "overloaded",
        "timeout",
        "connection",
        "unknown",
    }


# Real bodies of providers and gateways the cases above do not cover, each as
# a public issue or doc quotes it: (status, headers, body) -> (classification,
# kind, rule, delay; None = the backoff's, not checked).
FIDELITY = [
    pytest.param(
        503,
        {},
        b'{"error":"Model meta-llama/Llama-2-13b-chat is currently loading","estimated_time":20.0}',
        "upstream_unavailable",
        K.RETRY,
        "upstream-unavailable",
        20.0,
        id="huggingface/transformers#32665: Inference API 503, wait the estimated_time",
    ),
    pytest.param(
        503,
        {},
        b'{"error": "Model allenai/unifiedqa-t5-11b is currently loading", '
        b'"estimated_time": 1809.1820068359375}',
        "upstream_unavailable",
        K.FAIL,
        "upstream-unavailable",
        1809.1820068359375,
        id="huggingface/api-inference-community#137: a half-hour load, fail with the wait",
    ),
    pytest.param(
        429,
        {
            "x-ratelimit-limit-requests": "8",
            "x-ratelimit-remaining-requests": "7",
            "x-ratelimit-remaining-tokens": "1014",
        },
        b'{"error":{"code":"429","message": "Rate limit is exceeded. Try again in 2 seconds."}}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        2.0,
        id="microsoft/copilot-camp#551: Azure OpenAI 429, try again in 2 seconds",
    ),
    pytest.param(
        429,
        {},
        b'{"error": {"message": "Requests to the Embeddings_Create Operation under Azure OpenAI '
        b"API version 2022-12-01 have exceeded call rate limit of your current OpenAI S0 pricing "
        b"tier. Please retry after 9 seconds. Please go here: https://aka.ms/oai/quotaincrease if "
        b'you would like to further increase the default rate limit.", "code": "429"}}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        9.0,
        id="weaviate/weaviate#3095: Azure OpenAI 429 (message as quoted), retry after 9 seconds",
    ),
    pytest.param(
        429,
        {},
        b'{"error": {"message": "No deployments available for selected model, Try again in 60 '
        b"seconds. Passed model=vertex-claude-3-5-sonnet. pre-call-checks=False, "
        b'allowed_model_region=n/a"}}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        60.0,
        id="BerriAI/litellm#5764: LiteLLM proxy 429, no deployments, try again in 60 seconds",
    ),
    pytest.param(
        400,
        {},
        b'{"code": "Client specified an invalid argument", "error": "Incorrect API key provided: '
        b'ba***na. You can obtain an API key from https://console.x.ai."}',
        "authentication",
        K.FAIL,
        "authentication-message",
        None,
        id="i-am-bee/beeai-framework#447: xAI answers a wrong key with a 400",
    ),
    pytest.param(
        404,
        {},
        b'{"error":"model \'llama3\' not found, try pulling it first"}',
        "not_found",
        K.FAIL,
        "model-not-found-text",
        None,
        id="ollama/ollama#3876: Ollama 404, model not found",
    ),
    pytest.param(
        404,
        {},
        b'{"error": {"message": "model \\"ollama\\" not found, try pulling it first", '
        b'"type": "api_error", "param": null, "code": null}}',
        "not_found",
        K.FAIL,
        "model-not-found-text",
        None,
        id="netease-youdao/QAnything#555: Ollama's OpenAI-compatible 404",
    ),
    pytest.param(
        404,
        {},
        b'{"object":"error","message":"The model `Qwen1.5-14B-Chat-GPTQ-Int8` does not exist.",'
        b'"type":"NotFoundError","param":null,"code":404}',
        "not_found",
        K.FAIL,
        "model-not-found-text",
        None,
        id="vllm-project/vllm#3485: vLLM 404, the model does not exist",
    ),
    pytest.param(
        404,
        {},
        b'{"message":"Model not found, inaccessible, and/or not deployed","param":"model",'
        b'"code":"NOT_FOUND","type":"error"}',
        "not_found",
        K.FAIL,
        "model-not-found-text",
        None,
        id="warpdotdev/warp#15107: Fireworks 404, model not found",
    ),
    pytest.param(
        400,
        {},
        b'{"error":{"message":"Invalid model \'perplexity/sonar\'. Permitted models can be found '
        b'in the documentation at https://docs.perplexity.ai/docs/getting-started/models.",'
        b'"type":"invalid_model","code":400}}',
        "not_found",
        K.FAIL,
        "invalid-model-type",
        None,
        id="FerroxLabs/wayland#603: Perplexity 400 invalid_model",
    ),
    pytest.param(
        400,  # (the issue does not give the status; the rule takes any 4xx)
        {},
        b'{"object":"error","message":"Invalid model: ","type":"invalid_model","param":null,'
        b'"code":"1500"}',
        "not_found",
        K.FAIL,
        "invalid-model-type",
        None,
        id="tmc/langchaingo#1233: Mistral invalid_model",
    ),
    pytest.param(
        400,
        {},
        b'{"id":"okkMWqL-2kFHot-a023f60e9b77ff7e","error":{"message":"Unable to access '
        b"non-serverless model mistralai/Mistral-Small-24B-Instruct-2501. Please visit "
        b"https://api.together.ai/models/mistralai/Mistral-Small-24B-Instruct-2501 to create and "
        b'start a new dedicated endpoint for the model.","type":"invalid_request_error",'
        b'"param":null,"code":"model_not_available"}}',
        "not_found",
        K.FAIL,
        "model-not-found",
        None,
        id="HeyPuter/puter#3168: Together 400 model_not_available",
    ),
    pytest.param(
        429,
        {},
        b'{"error": {"message": "Budget has been exceeded! Current cost: 10.51, Max budget: '
        b'10.00", "type": "budget_exceeded", "code": "429"}}',
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-type",
        None,
        id="BerriAI/litellm#36729: LiteLLM 429 budget_exceeded",
    ),
    pytest.param(
        400,
        {},
        b'{"error": {"message": "litellm.BadRequestError: OpenAIException - Budget has been '
        b"exceeded! Current cost: 14.5, Max budget: 100. Received Model "
        b'Group=meta.llama3-8b-instruct-v1:0\nAvailable Model Group Fallbacks=None", '
        b'"type": null, "param": null, "code": "400"}}',
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-message",
        None,
        id="BerriAI/litellm#14144: LiteLLM 400, budget has been exceeded",
    ),
    pytest.param(
        429,
        {},
        b'{"result":null,"success":false,"errors":[{"code":3036,"message":"AiError: you have '
        b"used up your daily free allocation of 10,000 neurons, please upgrade to Cloudflare's "
        b'Workers Paid plan if you would like to continue usage."}],"messages":[]}',
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-message",
        None,
        id="diegosouzapw/OmniRoute#6980: Cloudflare Workers AI 429, daily neurons used up",
    ),
    pytest.param(
        400,
        {},
        b'{"error": {"code": 400, "message": "User location is not supported for the API use.", '
        b'"status": "FAILED_PRECONDITION", "details": [{"@type": '
        b'"type.googleapis.com/google.rpc.DebugInfo", "detail": "[ORIGINAL ERROR] '
        b'generic::failed_precondition: User location is not supported for the API use."}]}}',
        "permission_denied",
        K.FAIL,
        "region-not-supported",
        None,
        id="firebase/flutterfire response-parsing tests: Gemini 400, user location not supported",
    ),
    pytest.param(
        200,
        {"content-type": "text/event-stream"},
        b'data:{"error":"Input validation error: grammar is not supported",'
        b'"error_type":"validation"}\n\n',
        "bad_request",
        K.FAIL,
        "validation-type",
        None,
        id="huggingface/text-generation-inference server.rs: a validation error event after a 200",
    ),
    pytest.param(
        503,
        {},
        b'{"error": {"message": "Slow Down", "type": "rate_limit_error", "param": null, '
        b'"code": "slow_down"}}',
        "rate_limit",
        K.RETRY,
        "rate-limit-reason",
        None,
        id="OpenAI error codes (Microsoft Learn, Dev Proxy): slow_down, a rate limit on a 503",
    ),
    # Judged right as they were (kept so that they stay so).
    pytest.param(
        503,
        {},
        b'{"error": {"message": "That model is currently overloaded with other requests. You can '
        b"retry your request, or contact us through our help center at help.openai.com if the "
        b"error persists. (Please include the request ID c5a7aedfb341afd21e5e96e92e9ffc91 in your "
        b'message.)", "type": "server_error", "param": null, "code": null}}',
        "overloaded",
        K.RETRY,
        "overloaded-message",
        None,
        id="transitive-bullshit/agentic#313: OpenAI 503, that model is currently overloaded",
    ),
    pytest.param(
        503,
        {},
        b'{"error":"Server overloaded, please retry shortly (ref: '
        b'aaa65c70-cfa0-446b-86f1-4ab0e2deb9e4)"}',
        "overloaded",
        K.RETRY,
        "overloaded-message",
        None,
        id="ollama/ollama#15934: Ollama cloud 503, server overloaded",
    ),
    pytest.param(
        401,
        {},
        b'{"error":{"code":"401","message":"Access denied due to invalid subscription key or '
        b"wrong API endpoint. Make sure to provide a valid key for an active subscription and "
        b'use a correct regional API endpoint for your resource."}}',
        "authentication",
        K.FAIL,
        "authentication",
        None,
        id="Azure OpenAI 401 invalid subscription key",
    ),
    pytest.param(
        429,
        {
            "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        },
        b'{"message":"Too many requests, please wait before trying again."}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        None,
        id="BerriAI/litellm#589 and promptfoo/promptfoo#1508: Bedrock ThrottlingException",
    ),
    pytest.param(
        503,
        {},
        b'{"error": {"code": 503, "message": "No capacity available for model gemini-3-pro-high '
        b'on the server", "status": "UNAVAILABLE", "details": [{"@type": '
        b'"type.googleapis.com/google.rpc.ErrorInfo", "reason": "MODEL_CAPACITY_EXHAUSTED", '
        b'"domain": "cloudcode-pa.googleapis.com", "metadata": {"model": "gemini-3-pro-high"}}, '
        b'{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "40s"}]}}',
        "upstream_unavailable",
        K.RETRY,
        "upstream-unavailable",
        40.0,
        id="badrisnarayanan/antigravity-claude-proxy#197: Google 503 no capacity, RetryInfo",
    ),
    # Third pass (Cohere, Bedrock, Vertex, llama.cpp, Cerebras, NVIDIA NIM,
    # OpenAI / Azure Responses API streams, Anthropic, gateways).
    pytest.param(
        400,
        {
            "x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        },
        b'{"message":"Input is too long for requested model."}',
        "context_length",
        K.FAIL,
        "context-length-message",
        None,
        id="aws-samples/assessment-generator#2: Bedrock 400 ValidationException, input is too long",
    ),
    pytest.param(
        429,
        {
            "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        },
        b'{"message":"Too many tokens per day, please wait before trying again."}',
        "quota_exhausted",
        K.FAIL,
        "period-limit-message",
        None,
        id="minorun365/agent-book#29: Bedrock 429 ThrottlingException, too many tokens per day",
    ),
    pytest.param(
        429,
        {
            "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        },
        b'{"message":"Too many tokens, please wait before trying again."}',
        "rate_limit",
        K.RETRY,
        "rate-limit",  # a comma, not Cohere's colon: not a context overflow
        None,
        id="aws-samples/amazon-bedrock-client-for-mac#99: Bedrock 429 too many tokens (per minute)",
    ),
    pytest.param(
        400,
        {},
        b'{"message":"Malformed input request: expected maxLength: 42000, actual: 46735, please '
        b'reformat your input and try again."}',
        "bad_request",
        K.FAIL,
        "bad-request",
        None,
        id="ryanadoty/Amazon-Bedrock-Amazon-RDS-POC#9: Bedrock 400 malformed input request",
    ),
    pytest.param(
        429,
        {},
        b'{"id":"24e32f6d-b372-4853-85f2-11e65134f032","message":"You are using a Trial key, '
        b'which is limited to 1000 API calls / month."}',
        "quota_exhausted",
        K.FAIL,
        "period-limit-message",
        None,
        id="docs.cohere.com/docs/rate-limits (Trial keys: 1,000 calls a month): Cohere 429, monthly",
    ),
    pytest.param(
        429,
        {},
        b'{"message":"You are using a Trial key, which is limited to 40 API calls / minute. You '
        b"can continue to use the Trial key for free or upgrade to a Production key with higher "
        b"rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on "
        b"'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions\"}",
        "rate_limit",
        K.RETRY,
        "rate-limit",
        None,
        id="docs.cohere.com/reference/errors: Cohere 429, Trial key per minute",
    ),
    pytest.param(
        429,
        {},
        b'{"message":"You are past the per minute request limit, please wait and try again '
        b'later."}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        None,
        id="docs.cohere.com/reference/errors: Cohere 429, past the per minute request limit",
    ),
    pytest.param(
        400,
        {},
        b'{"message":"too many tokens: total number of tokens in the prompt cannot exceed 4081 - '
        b"received 4292. Try using a shorter prompt, or enabling prompt truncating. See "
        b'https://docs.cohere.com/reference/generate for more details."}',
        "context_length",
        K.FAIL,
        "context-length-message",
        None,
        id="docs.cohere.com/reference/errors: Cohere 400, too many tokens in the prompt",
    ),
    pytest.param(
        400,
        {},
        b'{"message":"too many tokens: size limit exceeded by 11326 tokens. Try using shorter or '
        b"fewer inputs, or setting prompt_truncation='AUTO'.\"}",
        "context_length",
        K.FAIL,
        "context-length-message",
        None,
        id="docs.cohere.com/reference/errors: Cohere 400, size limit exceeded by tokens",
    ),
    pytest.param(
        400,
        {},
        b'{"message":"too many tokens: max tokens must be less than or equal to 4096, the maximum '
        b'output for this model - received 8192."}',
        "context_length",
        K.FAIL,
        "context-length-message",
        None,
        id="docs.cohere.com/reference/errors: Cohere 400, max tokens above the model's output",
    ),
    pytest.param(
        429,
        {},
        b'[{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/'
        b"online_prediction_requests_per_base_model with base model: anthropic-claude-3-5-sonnet-"
        b"v2. Please submit a quota increase request. https://cloud.google.com/vertex-ai/docs/"
        b'generative-ai/quotas-genai.","status":"RESOURCE_EXHAUSTED"}}]',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        None,
        id="cline/cline#651: Anthropic on Vertex 429, per-minute base-model quota",
    ),
    pytest.param(
        429,
        {},
        b'{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/'
        b"online_prediction_input_tokens_per_minute_per_base_model with base model: anthropic-"
        b"claude-opus-4. Please submit a quota increase request. https://cloud.google.com/"
        b'vertex-ai/docs/generative-ai/quotas-genai.","status":"RESOURCE_EXHAUSTED"}}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        None,
        id="anthropics/claude-code#1440: Anthropic on Vertex 429, input tokens per minute",
    ),
    pytest.param(
        400,
        {},
        b'{"error":{"code":400,"message":"the request exceeds the available context size. try '
        b'increasing the context size or enable context shift","type":"exceed_context_size_error",'
        b'"n_prompt_tokens":14429,"n_ctx":8192}}',
        "context_length",
        K.FAIL,
        "context-length-message",
        None,
        id="oobabooga/textgen#7257: llama.cpp server 400 exceed_context_size_error",
    ),
    pytest.param(
        500,
        {},
        b'{"error":{"code":500,"message":"Context size has been exceeded.","type":"server_error"}}',
        "context_length",
        K.FAIL,
        "context-length-message",
        None,
        id="ggml-org/llama.cpp#19774: llama.cpp server 500, context size exceeded (no retry)",
    ),
    pytest.param(
        500,
        {},
        b'{"error":{"code":500,"message":"the request exceeds the available context size. try '
        b'increasing the context size or enable context shift","type":"exceed_context_size_error",'
        b'"n_prompt_tokens":1407,"n_ctx":256}}',
        "context_length",
        K.FAIL,
        "context-length-message",
        None,
        id="ggml-org/llama.cpp#15780: llama.cpp server exceed_context_size_error on a 500",
    ),
    pytest.param(
        429,
        {},
        b'{"message":"Requests per minute limit exceeded - too many requests sent.",'
        b'"type":"too_many_requests_error","param":"quota","code":"request_quota_exceeded"}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        None,
        id="nminaya/grammar-nazi-bot#959: Cerebras 429 request_quota_exceeded (per minute)",
    ),
    pytest.param(
        429,
        {},
        b'{"status":429,"title":"Too Many Requests"}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        None,
        id="Alishahryar1/free-claude-code#690: NVIDIA NIM 429 problem details",
    ),
    pytest.param(
        200,
        {"content-type": "text/event-stream"},
        b'event: response.failed\ndata: {"type":"response.failed","response":{"status":"failed",'
        b'"error":{"code":"rate_limit_exceeded","message":"Requests to the ... Operation have '
        b'exceeded token rate limit ..."}}}\n\n',
        "rate_limit",
        K.RETRY,
        "rate-limit-exceeded",
        None,
        id="earendil-works/pi#1458: Azure Responses API response.failed after a 200, not a success",
    ),
    pytest.param(
        200,
        {"content-type": "text/event-stream"},
        b'event: error\ndata: {"type":"error","sequence_number":2,"error":{"type":"tokens",'
        b'"code":"rate_limit_exceeded","message":"Request too large for gpt-4.1 in organization '
        b"org-XXXX on tokens per min (TPM): Limit 30000, Requested 35364. The input or output "
        b"tokens must be reduced in order to run successfully. Visit https://platform.openai.com/"
        b'account/rate-limits to learn more.","param":null}}\n\n',
        "bad_request",
        K.FAIL,
        "request-too-large",
        None,
        id="vercel/ai#6534: OpenAI Responses API error event, request too large",
    ),
    pytest.param(
        429,
        {},
        b'{"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request '
        b"tokens has exceeded your daily rate limit (https://docs.anthropic.com/en/api/rate-"
        b"limits); see the response headers for current usage. Please reduce the prompt length "
        b"or the maximum tokens requested, or try again later. You may also contact sales at "
        b"https://www.anthropic.com/contact-sales to discuss your options for a rate limit "
        b'increase."}}',
        "quota_exhausted",
        K.FAIL,
        "period-limit-message",
        None,
        id="SakanaAI/AI-Scientist#115: Anthropic 429, daily rate limit (not lifted in seconds)",
    ),
    pytest.param(
        429,
        {},
        b'{"type":"error","error":{"type":"rate_limit_error","message":"This request would '
        b"exceed your account's rate limit. Please try again later.\"},"
        b'"request_id":"req_011CbcRdccocyfM6EjMahMvQ"}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        None,
        id="anthropics/claude-code#64462: Anthropic 429, account rate limit",
    ),
    pytest.param(
        413,
        {},
        b'{"error":{"type":"request_too_large","message":"Request exceeds the maximum size"}}',
        "bad_request",
        K.FAIL,
        "payload-too-large",
        None,
        id="anthropics/claude-code#14567: Anthropic 413 request_too_large",
    ),
    pytest.param(
        413,
        {},
        b'{"type":"error","error":{"type":"invalid_request_error","message":"Request size '
        b'exceeds model context window"},"request_id":"req_011CSPcw1jaHBKxvgq8Kga6G"}',
        "context_length",
        K.FAIL,
        "context-length-message",
        None,
        id="anthropics/claude-code#6380: Anthropic 413, request size exceeds the context window",
    ),
    pytest.param(
        500,
        {},
        b'{"type":"error","error":{"type":"api_error","message":"Overloaded"},"request_id":null}',
        "overloaded",
        K.RETRY,
        "overloaded-message",
        None,
        id="anthropics/claude-code#8118: Anthropic 500 api_error Overloaded",
    ),
    pytest.param(
        429,
        {},
        b'{"error": {"message": "You exceeded your current quota, please check your plan and '
        b'billing details.", "type": "insufficient_quota", "param": null, "code": null}}',
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-type",
        None,
        id="ayaka14732/ChatGPTAPIFree#16: OpenAI 429 insufficient_quota with a null code",
    ),
    pytest.param(
        429,
        {},
        b'{"error":{"message":"Insufficient balance or no resource package. Please recharge.",'
        b'"type":"AI_APICallError","param":{"error":"Insufficient balance or no resource package. '
        b'Please recharge.","statusCode":429,"name":"AI_APICallError","message":"Insufficient '
        b'balance or no resource package. Please recharge.","url":"https://api.z.ai/api/paas/v4/'
        b'chat/completions","isRetryable":true,"type":"AI_APICallError"}}}',
        "quota_exhausted",
        K.FAIL,
        "quota-exhausted-message",
        None,
        id="vercel/ai#9290: Z.ai 429 through the Vercel AI Gateway, insufficient balance",
    ),
    pytest.param(
        402,
        {},
        b'{"error":{"message":"This request requires more credits, or fewer max_tokens. You '
        b"requested up to 64000 tokens, but can only afford 2666. To increase, visit "
        b'https://openrouter.ai/settings/credits and upgrade to a paid account","code":402,'
        b'"metadata":{"provider_name":null}},"user_id":"user_35tI40u3gKTMEMGS061Ov1xsUTj"}',
        "quota_exhausted",
        K.FAIL,
        "payment-required",
        None,
        id="astrio-labs/forall#76: OpenRouter 402, requires more credits",
    ),
    pytest.param(
        429,
        {},
        b'{"error":{"message":"{\\n  \\"error\\": {\\n    \\"code\\": 429,\\n    \\"message\\": '
        b'\\"Resource has been exhausted (e.g. check quota).\\",\\n    \\"status\\": '
        b'\\"RESOURCE_EXHAUSTED\\"\\n  }\\n}\\n","code":429,"status":"Too Many Requests"}}',
        "rate_limit",
        K.RETRY,
        "rate-limit",
        None,
        id="google-gemini/gemini-cli#1509: Gemini 429 wrapped in a gateway's error object",
    ),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "classification", "kind", "rule", "delay"), FIDELITY
)
def test_real_bodies_of_more_providers(
    engine: pe.Engine,
    status: int,
    headers: dict[str, str],
    body: bytes,
    classification: str,
    kind: pe.ActionKind,
    rule: str,
    delay: float | None,
) -> None:
    action = engine.evaluate(pe.Response(status, headers, body))
    assert (action.classification, action.kind, action.rule_id) == (classification, kind, rule)
    if delay is not None:
        assert (action.delay, action.delay_source) == (delay, "server")


def test_a_model_that_does_not_exist_falls_back() -> None:
    # As model_not_found does: another model of the chain may be served.
    policy = pe.load_policy({"defaults": {"fallback": ["llama3.2"]}}, env=False)
    engine = pe.Engine(policy)
    for status, body in [
        (404, b'{"error":"model \'llama3\' not found, try pulling it first"}'),
        (404, b'{"object":"error","message":"The model `x` does not exist.","code":404}'),
        (400, b'{"error":{"message":"Invalid model \'x\'.","type":"invalid_model","code":400}}'),
    ]:
        action = engine.evaluate(pe.Response(status, {}, body), model="llama3")
        assert (action.kind, action.fallback) == (K.FALLBACK, "llama3.2"), body
        assert "Model 'x' not found" in action.remediation or "llama3" in action.remediation


def test_every_rule_is_reachable(default_policy: pe.Policy) -> None:
    ids = {r.id for r in default_policy.rules}
    covered = {row[-1] for row in REAL_WORLD} | {c[0].replace("_", "-") for c in CODES}
    covered |= {p.values[5] for p in FIDELITY}
    covered |= {
        "success",
        "bad-request",
        "authentication",
        "permission-denied",
        "rate-limit",
        "server-error",
        "upstream-unavailable",
        "timeout",
        "connection",
        "tls",
    }
    uncovered = ids - covered
    # Each remaining rule, fed a response made for it, is the one that decides.
    probes = {
        "payload-too-large": pe.Response(413),
        "request-too-large-type": pe.Response(
            418, {}, b'{"type":"error","error":{"type":"request_too_large","message":"big"}}'
        ),
        # A type alone is generic: it decides where no exact status rule does.
        "authentication-type": pe.Response(418, {}, error_body("no", "authentication_error")),
        "permission-type": pe.Response(418, {}, error_body("no", "permission_error")),
        "not-found": pe.Response(404),
        "not-found-type": pe.Response(418, {}, error_body("no", "not_found_error")),
        "content-filter": pe.Response(400, {}, error_body("no", None, "content_filter")),
        "unprocessable": pe.Response(422),
        "conflict": pe.Response(409),
        "no-channel": pe.Response(503, {}, error_body("当前分组 default 下对于模型 x 无可用渠道")),
        "server-error-type": pe.Response(599, {}, error_body("oops", "api_error")),
        "payment-required": pe.Response(402),
        "content-filter-type": pe.Response(400, {}, error_body("high risk", "content_filter")),
        "rate-limit-reason": pe.Response(
            403, {}, b'{"error": {"code": 403, "errors": [{"reason": "rateLimitExceeded"}]}}'
        ),
        "timeout-type": pe.Response(418, {}, error_body("late", "timeout_error")),
        "engine-overloaded": pe.Response(429, {}, error_body("busy", "engine_overloaded_error")),
    }
    engine = pe.Engine(default_policy)
    for rule_id, response in probes.items():
        assert engine.evaluate(response).rule_id == rule_id
    assert uncovered - set(probes) == set()


# The seed table again, each row with the doc's own error body format
# ({"error": {"message", "type", "code"}}) and the type an OpenAI-style
# gateway sends with it: a generic type never overrides the row's status.
DOC_BODY_TYPES = {
    400: ("Invalid JSON payload", "invalid_request_error", None),
    401: ("Unauthorized", "authentication_error", None),
    403: ("This key may not access gpt-4o", "permission_error", None),
    429: ("Rate limit exceeded", "rate_limit_error", None),
    500: ("The server had an error", "server_error", None),
    502: ("Upstream service unavailable", "server_error", None),
    503: ("Upstream service unavailable", "server_error", None),
}


@pytest.mark.parametrize(
    ("status", "classification", "kind", "retryable", "advice"),
    [row for row in STATUS_TABLE if row[0] != 200],
)
def test_status_table_with_the_doc_body(
    engine: pe.Engine,
    status: int,
    classification: str,
    kind: pe.ActionKind,
    retryable: bool,
    advice: str,
) -> None:
    message, etype, code = DOC_BODY_TYPES[status]
    action = engine.evaluate(pe.Response(status, {}, error_body(message, etype, code)))
    assert (action.classification, action.kind, action.retryable) == (
        classification,
        kind,
        retryable,
    )
    assert advice.lower() in action.remediation.lower()


def test_fallback_rows_fall_back_with_the_doc_body() -> None:
    # 502/503 with "type": "server_error": "consider switching to an alternative model".
    policy = pe.load_policy({"defaults": {"fallback": ["gpt-4o-mini"]}}, env=False)
    engine = pe.Engine(policy)
    for status in (502, 503):
        body = error_body("Upstream service unavailable", "server_error")
        action = engine.evaluate(pe.Response(status, {}, body), model="gpt-4o")
        assert (action.kind, action.fallback) == (K.FALLBACK, "gpt-4o-mini"), status


def test_every_provider_case_cites_its_source() -> None:
    text = pe.default_policy_path().read_text(encoding="utf-8")
    cases = text[text.index("# Provider cases (issue 10)") :]
    entries = cases.split("[[tests]]\n")[1:]
    assert len(entries) >= 40
    for before, entry in zip(cases.split("[[tests]]\n")[:-1], entries, strict=True):
        assert before.rstrip().splitlines()[-1].startswith("# source: "), entry[:60]
