"""The `anthropic` provider's translation, both ways, without HTTP: the neutral conversation
becomes Messages API parameters the strict fake accepts, a Messages response becomes a neutral
turn, and HTTP failures become errors that help."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from actana.protocol.payloads import Message, ModelRequest, ToolCall, ToolSchema
from actana.providers.anthropic_messages import (
    DEFAULT_MAX_TOKENS,
    _retry_after,
    _scrub,
    status_error,
    to_messages,
    to_params,
    to_turn,
)
from tests.fakes.anthropic_api import Invalid, validate

BASH = ToolSchema(
    name="bash",
    description="Run a shell command",
    parameters={"type": "object", "properties": {"command": {"type": "string"}}},
)
READ = ToolSchema(name="read_file", description="Read a file", parameters={"type": "object"})

CONVERSATION = [
    Message(role="user", text="list the files, then read a.txt"),
    Message(
        role="assistant",
        text="Let me look.",
        tool_calls=[
            ToolCall(id="toolu_01", name="bash", args={"command": "ls"}),
            ToolCall(id="toolu_02", name="read_file", args={"path": "a.txt"}),
        ],
    ),
    Message(role="tool", text='{"stdout": "a.txt\\n"}', tool_call_id="toolu_01"),
    Message(role="tool", text="no such file", tool_call_id="toolu_02", is_error=True),
    Message(role="assistant", tool_calls=[ToolCall(id="toolu_03", name="bash", args={})]),
    Message(role="tool", text="{}", tool_call_id="toolu_03"),
]


def test_messages_keep_ids_and_merge_consecutive_tool_results():
    assert to_messages(CONVERSATION) == [
        {"role": "user", "content": [{"type": "text", "text": "list the files, then read a.txt"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_01", "name": "bash", "input": {"command": "ls"}},
                {
                    "type": "tool_use",
                    "id": "toolu_02",
                    "name": "read_file",
                    "input": {"path": "a.txt"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": '{"stdout": "a.txt\\n"}',
                    "is_error": False,
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_02",
                    "content": "no such file",
                    "is_error": True,
                },
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_03", "name": "bash", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_03",
                    "content": "{}",
                    "is_error": False,
                }
            ],
        },
    ]


def test_empty_turns_are_dropped_and_roles_still_alternate():
    messages = to_messages(
        [
            Message(role="user", text="first"),
            Message(role="assistant"),  # said nothing
            Message(role="user", text="second"),
        ]
    )
    assert messages == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
        }
    ]


def test_params_carry_system_tools_and_max_tokens():
    request = ModelRequest(system="be brief", messages=CONVERSATION, tools=[BASH, READ])
    params = to_params("claude-x", request)
    assert params["model"] == "claude-x"
    assert params["system"] == "be brief"
    assert params["max_tokens"] == DEFAULT_MAX_TOKENS
    assert params["tools"] == [
        {
            "name": "bash",
            "description": "Run a shell command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
        {"name": "read_file", "description": "Read a file", "input_schema": {"type": "object"}},
    ]
    validate({**params, "stream": True})  # what the strict fake (and the service) accepts


def test_params_omit_an_empty_system_and_no_tools_and_keep_a_given_max_tokens():
    request = ModelRequest(system="", messages=[Message(role="user", text="hi")], max_tokens=64)
    params = to_params("claude-x", request)
    assert params == {
        "model": "claude-x",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    validate(params)


def test_the_fake_refuses_what_the_service_refuses():
    good = to_params("claude-x", ModelRequest(system="", messages=CONVERSATION, tools=[BASH]))
    unanswered = {**good, "messages": good["messages"][:2]}
    unanswered["messages"] = [*unanswered["messages"], {"role": "user", "content": "go on"}]
    with pytest.raises(Invalid, match="without `tool_result`"):
        validate(unanswered)
    wrong_id = to_messages([*CONVERSATION[:3]])
    wrong_id[2]["content"][0]["tool_use_id"] = "toolu_99"
    with pytest.raises(Invalid, match="unexpected `tool_use_id`"):
        validate({**good, "messages": wrong_id})
    with pytest.raises(Invalid, match="alternate"):
        validate({**good, "messages": [good["messages"][0], good["messages"][0]]})
    with pytest.raises(Invalid, match="must define tools"):
        validate({key: value for key, value in good.items() if key != "tools"})
    with pytest.raises(Invalid, match="max_tokens"):
        validate({key: value for key, value in good.items() if key != "max_tokens"})
    with pytest.raises(Invalid, match="Extra inputs"):
        validate({**good, "api_key": "nope"})


def test_a_response_becomes_a_turn():
    turn = to_turn(
        {
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                {"type": "text", "text": "Two "},
                {"type": "text", "text": "things."},
                {"type": "tool_use", "id": "toolu_a", "name": "bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "toolu_b", "name": "read_file", "input": {}},
            ],
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 5,
                "cache_read_input_tokens": None,
                "output_tokens": 7,
            },
        }
    )
    assert turn.text == "Two things."
    assert turn.tool_calls == [
        ToolCall(id="toolu_a", name="bash", args={"command": "ls"}),
        ToolCall(id="toolu_b", name="read_file", args={}),
    ]
    assert turn.stop_reason == "tool_use"
    assert asdict(turn.usage) == {"input_tokens": 15, "output_tokens": 7, "model_calls": 1}


@pytest.mark.parametrize(
    ("upstream", "neutral"),
    [
        ("end_turn", "end_turn"),
        ("stop_sequence", "end_turn"),
        ("tool_use", "tool_use"),
        ("max_tokens", "max_tokens"),
        ("model_context_window_exceeded", "max_tokens"),
        ("refusal", "refusal"),
        ("something_new", "something_new"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(upstream, neutral):
    turn = to_turn({"content": [], "stop_reason": upstream, "usage": {}})
    assert turn.stop_reason == neutral
    assert turn.text is None
    assert turn.tool_calls == []


def test_a_turn_goes_back_as_the_same_assistant_blocks():
    response = {
        "content": [
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "toolu_x", "name": "bash", "input": {"command": "pwd"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    turn = to_turn(response)
    again = to_messages([Message(role="assistant", text=turn.text, tool_calls=turn.tool_calls)])
    assert again == [{"role": "assistant", "content": response["content"]}]


@pytest.mark.parametrize(
    ("status", "detail", "words", "retryable"),
    [
        (401, "invalid x-api-key", "refused the API key", False),
        (403, "not allowed", "check the model endpoint's api_key", False),
        (404, "model: claude-x", "does not know the model 'claude-x'", False),
        (400, "prompt is too long: 210000 tokens > 200000 maximum", "too long", False),
        (413, "Request exceeds the maximum allowed number of bytes", "too long", False),
        (400, "messages.0: bad", "refused the request", False),
        (429, "slow down", "rate limited", True),
        (500, "Internal server error", "provider failed", True),
        (503, "unavailable", "provider failed", True),
        (529, "Overloaded", "overloaded", True),
    ],
)
def test_status_errors_help(status, detail, words, retryable):
    error = status_error(status, detail, "claude-x", retry_after=2.0)
    assert words in error.message
    assert f"HTTP {status}" in error.message
    assert error.retryable is retryable
    assert error.status == status
    assert error.retry_after == (2.0 if retryable else None)


def test_key_material_is_cut_out_of_upstream_text():
    key = "sk-ant-api03-" + "Z" * 40
    assert key not in _scrub(f"bad key {key} given", key)
    assert "sk-ant-other" not in _scrub("also sk-ant-other-key-123", key)
    assert len(_scrub("x" * 1000, key)) == 300


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0.5", 0.5), (None, None), ("", None), ("soon", None), ("-3", 0.0)],
)
def test_retry_after(header, seconds):
    assert _retry_after(header) == seconds


def test_retry_after_as_a_date():
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
