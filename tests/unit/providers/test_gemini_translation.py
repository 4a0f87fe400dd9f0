"""The `gemini` provider's translation, both ways, without HTTP: the neutral conversation becomes
Gemini `contents` and config that the SDK takes and the strict fake accepts, streamed chunks
become a neutral turn, and failures become errors that help and hold no key."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import httpx2
import pytest
from google.genai import errors, types

from actana.protocol.payloads import Message, ModelRequest, RunLimits, ToolCall, ToolSchema
from actana.providers.base import EndpointSpec, ModelCallError, ProviderCall
from actana.providers.gemini_genai import (
    API_VERSION,
    DEFAULT_BASE_URL,
    _options,
    api_error,
    call_error,
)
from actana.providers.gemini_schema import gemini_schema
from actana.providers.gemini_translate import (
    SKIP_SIGNATURE,
    TurnBuilder,
    function_declarations,
    to_config,
    to_contents,
)
from actana.runtime.tools.registry import build_tools
from tests.fakes.gemini_api import Invalid, bad_key_error, check_request

KEY = "AIzaSy-unit-test-key-0123456789"
SKIP = base64.b64encode(SKIP_SIGNATURE).decode()
BASH = ToolSchema(
    name="bash",
    description="Run a shell command",
    parameters={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string", "minLength": 1, "default": "ls"}},
        "required": ["command"],
        "additionalProperties": False,
    },
)
NOW = ToolSchema(name="now", description="The time", parameters={"type": "object"})

CONVERSATION = [
    Message(role="user", text="list the files, then read a.txt"),
    Message(
        role="assistant",
        text="Let me look.",
        tool_calls=[
            ToolCall(id="call_0_0", name="bash", args={"command": "ls"}),
            ToolCall(id="call_0_1", name="read_file", args={"path": "a.txt"}),
        ],
    ),
    Message(role="tool", text='{"stdout": "a.txt\\n"}', tool_call_id="call_0_0"),
    Message(role="tool", text="no such file", tool_call_id="call_0_1", is_error=True),
    Message(role="assistant", tool_calls=[ToolCall(id="fc-7", name="bash", args={})]),
    Message(role="tool", text="plain words", tool_call_id="fc-7"),
]


def call(model: str = "gemini-x", base_url: str | None = "http://127.0.0.1:9") -> ProviderCall:
    request = ModelRequest(system="be brief", messages=CONVERSATION[:1], tools=[BASH])
    return ProviderCall(
        EndpointSpec("gemini", model, base_url, None), request, turn_index=2, timeout_sec=30
    )


def body_for(request: ModelRequest) -> dict[str, Any]:
    """The request body as the fake sees it (camelCase; the SDK's own dump order aside)."""
    body: dict[str, Any] = {"contents": to_contents(request.messages)}
    for content in body["contents"]:
        for part in content["parts"]:
            if "thoughtSignature" in part:
                part["thoughtSignature"] = base64.b64encode(part["thoughtSignature"]).decode()
    config = to_config(request)
    if "system_instruction" in config:
        body["systemInstruction"] = {"parts": [{"text": config["system_instruction"]}]}
    if "tools" in config:
        body["tools"] = [{"functionDeclarations": config["tools"][0]["function_declarations"]}]
    return body


# --- Requests ----------------------------------------------------------------------------------


def test_contents_group_tool_results_and_keep_only_upstream_ids():
    assert to_contents(CONVERSATION) == [
        {"role": "user", "parts": [{"text": "list the files, then read a.txt"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Let me look."},
                {
                    "functionCall": {"name": "bash", "args": {"command": "ls"}},
                    "thoughtSignature": SKIP_SIGNATURE,
                },
                {"functionCall": {"name": "read_file", "args": {"path": "a.txt"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "bash",
                        "response": {"output": {"stdout": "a.txt\n"}},
                    }
                },
                {"functionResponse": {"name": "read_file", "response": {"error": "no such file"}}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "bash", "args": {}, "id": "fc-7"},
                    "thoughtSignature": SKIP_SIGNATURE,
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "bash",
                        "response": {"output": "plain words"},
                        "id": "fc-7",
                    }
                }
            ],
        },
    ]


def test_the_contents_pass_the_sdk_and_the_strict_fake_even_for_gemini_3():
    request = ModelRequest(system="be brief", messages=CONVERSATION, tools=[BASH, NOW])
    for content in to_contents(request.messages):
        types.Content.model_validate(content)
    types.GenerateContentConfig.model_validate(to_config(request))
    check_request(body_for(request), "gemini-3-x")  # signatures are required there


def test_a_tool_result_for_a_call_never_made_is_refused():
    stray = [Message(role="user", text="hi"), Message(role="tool", text="{}", tool_call_id="nope")]
    with pytest.raises(ModelCallError, match="which no earlier model turn made"):
        to_contents(stray)


def test_config_has_system_tools_tokens_and_no_automatic_calling():
    request = ModelRequest(system="be brief", messages=[], tools=[BASH, NOW], max_tokens=256)
    assert to_config(request) == {
        "automatic_function_calling": {"disable": True},
        "system_instruction": "be brief",
        "tools": [
            {
                "function_declarations": [
                    {
                        "name": "bash",
                        "description": "Run a shell command",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"command": {"type": "STRING", "minLength": 1}},
                            "required": ["command"],
                        },
                    },
                    {"name": "now", "description": "The time"},  # no properties: no parameters
                ]
            }
        ],
        "max_output_tokens": 256,
    }
    bare = to_config(ModelRequest(system="", messages=[]))
    assert bare == {"automatic_function_calling": {"disable": True}}


def test_schema_keywords_gemini_refuses_are_stripped_or_rewritten():
    schema = {
        "type": "object",
        "additionalProperties": False,
        "$defs": {"x": {}},
        "properties": {
            "mode": {"const": "fast"},
            "level": {"type": "integer", "enum": [1, 2], "format": "int64", "default": 1},
            "when": {"type": ["string", "null"], "format": "date-time", "examples": ["now"]},
            "uri": {"type": "string", "format": "uri", "pattern": "^h"},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "either": {"oneOf": [{"type": "string"}, {"type": "number", "exclusiveMinimum": 0}]},
        },
        "required": ["mode", "ghost"],
    }
    assert gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "mode": {"enum": ["fast"]},
            "level": {"type": "INTEGER", "format": "int64"},
            "when": {"nullable": True, "type": "STRING", "format": "date-time"},
            "uri": {"type": "STRING", "pattern": "^h"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
        },
        "required": ["mode"],
    }


def test_every_core_tool_is_a_declaration_the_fake_accepts():
    tools = build_tools(RunLimits(deadline_ms=0)).values()
    request = ModelRequest(
        system="s",
        messages=[Message(role="user", text="hi")],
        tools=[ToolSchema(t.name, t.description, t.parameters) for t in tools],
    )
    assert len(function_declarations(request)) == len(request.tools) > 5
    types.GenerateContentConfig.model_validate(to_config(request))
    check_request(body_for(request), "gemini-x")


def test_the_fake_refuses_what_gemini_refuses():
    request = ModelRequest(system="s", messages=[Message(role="user", text="hi")], tools=[BASH])
    body = body_for(request)
    body["tools"][0]["functionDeclarations"][0]["parameters"] = BASH.parameters
    with pytest.raises(Invalid, match='Unknown name "\\$schema"'):
        check_request(body, "gemini-x")
    unanswered = body_for(ModelRequest(system="", messages=CONVERSATION[:2]))
    unanswered["contents"].append({"role": "user", "parts": [{"text": "and?"}]})
    with pytest.raises(Invalid, match="function call turn comes immediately after"):
        check_request(unanswered, "gemini-x")
    unsigned = body_for(ModelRequest(system="", messages=CONVERSATION))
    del unsigned["contents"][3]["parts"][0]["thoughtSignature"]
    check_request(unsigned, "gemini-x")
    with pytest.raises(Invalid, match="missing a thought_signature"):
        check_request(unsigned, "gemini-3-x")


def test_http_options_pin_the_version_and_turn_the_sdk_retries_off():
    options = _options(call())
    assert options.base_url == "http://127.0.0.1:9"
    assert options.api_version == API_VERSION == "v1beta"
    assert options.timeout == 30_000
    assert options.retry_options is not None
    assert options.retry_options.attempts == 1
    assert _options(call(base_url=None)).base_url == DEFAULT_BASE_URL


# --- Responses ---------------------------------------------------------------------------------


def chunk(
    parts: list[dict[str, Any]], finish: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate]}
    if usage:
        out["usageMetadata"] = usage
    return out


def test_chunks_fold_into_a_turn_with_text_calls_and_usage():
    builder = TurnBuilder(turn_index=4)
    assert builder.add(chunk([{"text": "thinking...", "thought": True}])) == ""
    assert builder.add(chunk([{"text": "Let me "}], usage={"promptTokenCount": 10})) == "Let me "
    last = chunk(
        [
            {"text": "check."},
            {
                "functionCall": {"name": "bash", "args": {"command": "ls"}},
                "thoughtSignature": "c2ln",
            },
            {"functionCall": {"name": "bash", "args": {"command": "pwd"}, "id": "up-1"}},
        ],
        finish="STOP",
        usage={"promptTokenCount": 10, "candidatesTokenCount": 7, "thoughtsTokenCount": 3},
    )
    assert builder.add(last) == "check."
    turn = builder.finish()
    assert turn.text == "Let me check."
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [
        ("call_4_0", "bash", {"command": "ls"}),
        ("up-1", "bash", {"command": "pwd"}),
    ]
    assert turn.stop_reason == "tool_use"
    assert (turn.usage.input_tokens, turn.usage.output_tokens, turn.usage.model_calls) == (
        10,
        10,
        1,
    )


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("STOP", "end_turn"), ("MAX_TOKENS", "max_tokens"), ("SAFETY", "refusal"),
     ("LANGUAGE", "language")],
)  # fmt: skip
def test_finish_reasons_become_stop_reasons(finish, stop):
    builder = TurnBuilder(0)
    builder.add(chunk([{"text": "some text"}], finish=finish))
    assert builder.finish().stop_reason == stop


@pytest.mark.parametrize(
    ("chunks", "message", "retryable"),
    [
        ([{"promptFeedback": {"blockReason": "SAFETY"}}], "blocked the prompt", False),
        ([chunk([{"text": ""}], finish="SAFETY")], "finishReason SAFETY", False),
        ([chunk([{"text": ""}], finish="MALFORMED_FUNCTION_CALL")], "MALFORMED", True),
        ([chunk([{"text": "cut"}])], "ended before its last chunk", True),
    ],
)
def test_turns_without_an_answer_are_errors(chunks, message, retryable):
    builder = TurnBuilder(0)
    for c in chunks:
        builder.add(c)
    with pytest.raises(ModelCallError, match=message) as caught:
        builder.finish()
    assert caught.value.retryable is retryable


def test_an_empty_stop_is_an_empty_final_answer():
    builder = TurnBuilder(0)
    builder.add(chunk([{"text": ""}], finish="STOP"))
    turn = builder.finish()
    assert (turn.text, turn.tool_calls, turn.stop_reason) == (None, [], "end_turn")


# --- Errors ------------------------------------------------------------------------------------


def google_error(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "status": status, "message": message}
    if details:
        error["details"] = list(details)
    return {"error": error}


def test_a_bad_key_says_so_and_is_not_retried():
    error = api_error(400, {"error": bad_key_error()}, api_key=KEY)
    assert "API key" in error.message
    assert "api_key" in error.message
    assert not error.retryable
    assert error.status == 400
    for code, status in [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")]:
        other = api_error(code, google_error(code, status, "no"), api_key=KEY)
        assert "API key" in other.message
        assert not other.retryable


def test_an_unknown_model_and_a_long_conversation_say_so():
    missing = api_error(404, google_error(404, "NOT_FOUND", "models/gx is not found"), model="gx")
    assert "does not know the model 'gx'" in missing.message
    assert not missing.retryable
    long = google_error(
        400,
        "INVALID_ARGUMENT",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    )
    assert api_error(400, long).message.startswith(
        "the conversation is too long for the model's context"
    )
    other = api_error(400, google_error(400, "INVALID_ARGUMENT", "bad thing"))
    assert other.message == "Gemini refused the request (HTTP 400 INVALID_ARGUMENT: bad thing)"


def test_rate_limits_and_server_errors_are_retryable_with_googles_delay():
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "33s"}
    limited = api_error(429, google_error(429, "RESOURCE_EXHAUSTED", "quota", retry_info))
    assert "rate-limited" in limited.message
    assert (limited.retryable, limited.retry_after) == (True, 33.0)
    header = api_error(429, google_error(429, "RESOURCE_EXHAUSTED", "quota", retry_info),
                       httpx.Headers({"Retry-After": "2"}))  # fmt: skip
    assert header.retry_after == 2.0
    for code in (500, 503, 504, 408):
        assert api_error(code, google_error(code, "UNAVAILABLE", "later")).retryable


def test_no_error_message_holds_the_key():
    echoed = google_error(400, "INVALID_ARGUMENT", f"key {KEY} is odd")
    assert KEY not in api_error(400, echoed, api_key=KEY).message
    assert KEY not in call_error(RuntimeError(f"boom {KEY}"), call(), KEY).message


def test_sdk_and_transport_failures_are_mapped():
    sdk = errors.ClientError(429, google_error(429, "RESOURCE_EXHAUSTED", "slow down"))
    assert call_error(sdk, call(), KEY).retryable
    unwrapped = errors.ServerError(502, {"message": "<html>Bad Gateway</html>", "status": "Bad"})
    mapped = call_error(unwrapped, call(), KEY)
    assert mapped.retryable
    assert "Bad Gateway" in mapped.message
    refused = call_error(httpx.ConnectError("refused"), call(), KEY)
    assert refused.retryable
    assert "127.0.0.1:9" in refused.message
    assert call_error(httpx.ReadTimeout("slow"), call(), KEY).retryable
    # The SDK talks through httpx2, httpx's fork, when it is installed (it is here).
    assert call_error(httpx2.ConnectError("refused"), call(), KEY).retryable
    assert "did not answer in time" in call_error(httpx2.ReadTimeout("slow"), call(), KEY).message
    budget = call_error(TimeoutError(), call(), KEY)
    assert not budget.retryable
    assert "30 s left" in budget.message
    garbage = call_error(errors.UnknownApiResponseError("not json"), call(), KEY)
    assert "base_url" in garbage.message


@pytest.mark.parametrize(
    ("kept", "sent"),
    [
        (base64.b64encode(b"the-model-signed-this").decode(), b"the-model-signed-this"),
        (None, SKIP_SIGNATURE),
        ("%%% not base64 %%%", SKIP_SIGNATURE),  # mangled on its way through the sandbox
        ("QUJD" * 20_000, SKIP_SIGNATURE),  # oversized
    ],
)
def test_a_kept_thought_signature_goes_back_and_a_bad_one_is_replaced(kept, sent):
    calls = [
        ToolCall(id="call_0_0", name="bash", args={}, signature=kept),
        ToolCall(id="call_0_1", name="bash", args={}),
    ]
    messages = [
        Message(role="user", text="go"),
        Message(role="assistant", tool_calls=calls),
        Message(role="tool", text="{}", tool_call_id="call_0_0"),
        Message(role="tool", text="{}", tool_call_id="call_0_1"),
    ]
    model_turn = to_contents(messages)[1]
    first, second = model_turn["parts"]
    assert first["thoughtSignature"] == sent
    assert "thoughtSignature" not in second
