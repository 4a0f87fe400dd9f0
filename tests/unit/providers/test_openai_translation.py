"""The openai / openai_compatible providers' translation, both ways, as pure functions: the
neutral request to Chat Completions, streamed chunks to one turn, and SDK errors to messages."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from actana.protocol.payloads import Message, ModelRequest, ToolCall, ToolSchema
from actana.providers.openai_chat import map_error, retry_after, scrub
from actana.providers.openai_stream import INVALID_ARGUMENTS, TurnAssembler, parse_arguments
from actana.providers.openai_translate import (
    TOOL_ERROR_PREFIX,
    request_params,
    to_openai_messages,
    to_openai_tools,
)
from tests.fakes.openai_api import Invalid, validate

BASH = ToolSchema(
    "bash",
    "Run a bash command.",
    {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
)
CONVERSATION = ModelRequest(
    system="be careful",
    messages=[
        Message(role="user", text="list the files"),
        Message(
            role="assistant",
            text="Looking.",
            tool_calls=[
                ToolCall(id="call_a", name="bash", args={"command": "ls"}),
                ToolCall(id="call_b", name="bash", args={"command": "ls /nope"}),
            ],
        ),
        Message(role="tool", text='{"stdout": "a.txt\\n"}', tool_call_id="call_a"),
        Message(role="tool", text="no such directory", tool_call_id="call_b", is_error=True),
        Message(role="assistant", tool_calls=[ToolCall(id="call_c", name="bash", args={})]),
        Message(role="tool", text="{}", tool_call_id="call_c"),
    ],
    tools=[BASH],
)


def test_messages_both_kinds_of_tool_result_and_ids_kept():
    messages = to_openai_messages(CONVERSATION)
    assert messages == [
        {"role": "system", "content": "be careful"},
        {"role": "user", "content": "list the files"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "ls"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "ls /nope"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": '{"stdout": "a.txt\\n"}'},
        {
            "role": "tool",
            "tool_call_id": "call_b",
            "content": TOOL_ERROR_PREFIX + "no such directory",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_c",
                    "type": "function",
                    "function": {"name": "bash", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_c", "content": "{}"},
    ]
    assert "failed" in TOOL_ERROR_PREFIX


def test_no_system_message_for_an_empty_system_prompt_and_text_only_assistant():
    request = ModelRequest(
        system="",
        messages=[
            Message(role="user", text="hi"),
            Message(role="assistant", text="hello"),
            Message(role="user", text=None),
        ],
    )
    assert to_openai_messages(request) == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": ""},
    ]


def test_tools_are_function_tools():
    assert to_openai_tools([BASH]) == [
        {
            "type": "function",
            "function": {
                "name": "bash",
                "description": "Run a bash command.",
                "parameters": BASH.parameters,
            },
        }
    ]


def test_params_per_flavor():
    request = ModelRequest(system="s", messages=[Message("user", "x")], tools=[BASH], max_tokens=99)
    openai_params = request_params("openai", "gpt-x", request)
    assert openai_params["model"] == "gpt-x"
    assert openai_params["stream"] is True
    assert openai_params["stream_options"] == {"include_usage": True}
    assert openai_params["max_completion_tokens"] == 99
    assert "max_tokens" not in openai_params
    compatible = request_params("openai_compatible", "llama", request, stream_options=False)
    assert compatible["max_tokens"] == 99
    assert "max_completion_tokens" not in compatible
    assert "stream_options" not in compatible


def test_params_leave_out_what_is_not_set():
    params = request_params(
        "openai", "gpt-x", ModelRequest(system="", messages=[Message("user", "x")])
    )
    assert set(params) == {"model", "messages", "stream", "stream_options"}


@pytest.mark.parametrize("flavor", ["openai", "openai_compatible"])
def test_what_we_send_passes_the_fakes_validation(flavor):
    params = request_params(flavor, "gpt-x", CONVERSATION)
    validate(params, strict_max_tokens=flavor == "openai")


def test_the_fake_refuses_a_tool_message_that_answers_nothing():
    bad = ModelRequest(
        system="", messages=[Message("user", "x"), Message("tool", "{}", tool_call_id="x")]
    )
    with pytest.raises(Invalid, match="preceeding message with 'tool_calls'"):
        validate(request_params("openai", "gpt-x", bad))


def test_the_fake_refuses_an_unanswered_tool_call():
    bad = ModelRequest(
        system="",
        messages=[
            Message("user", "x"),
            Message("assistant", tool_calls=[ToolCall("call_1", "bash", {})]),
            Message("user", "y"),
        ],
    )
    with pytest.raises(Invalid, match="did not have response messages: call_1"):
        validate(request_params("openai", "gpt-x", bad))


@pytest.mark.parametrize(
    ("raw", "args"),
    [
        ("", {}),
        ("  ", {}),
        ('{"command": "ls"}', {"command": "ls"}),
        ('{"command": "ls"', {INVALID_ARGUMENTS: '{"command": "ls"'}),
        ("[1, 2]", {INVALID_ARGUMENTS: "[1, 2]"}),
        ('"ls"', {INVALID_ARGUMENTS: '"ls"'}),
    ],
)
def test_arguments(raw, args):
    assert parse_arguments(raw) == args


# --- chunks -> turn ----------------------------------------------------------------------------


def _chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> ChatCompletionChunk:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-x",
            "choices": choices,
            "usage": usage,
        }
    )


def _call(
    index: int, *, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    piece: dict[str, Any] = {"index": index, "function": {}}
    if id:
        piece.update(id=id, type="function")
    if name is not None:
        piece["function"]["name"] = name
    if args is not None:
        piece["function"]["arguments"] = args
    return piece


def test_text_stream_with_usage():
    assembler = TurnAssembler()
    pieces = [
        assembler.feed(_chunk({"role": "assistant", "content": ""})),
        assembler.feed(_chunk({"content": "Hel"})),
        assembler.feed(_chunk({"content": "lo."})),
        assembler.feed(_chunk({}, "stop")),
        assembler.feed(
            _chunk(None, usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})
        ),
    ]
    assert pieces == ["", "Hel", "lo.", "", ""]
    turn = assembler.turn(prompt_chars=1000)
    assert turn.text == "Hello."
    assert turn.tool_calls == []
    assert turn.stop_reason == "end_turn"
    assert (turn.usage.input_tokens, turn.usage.output_tokens, turn.usage.model_calls) == (12, 3, 1)


def test_two_tool_calls_assembled_by_index_with_split_arguments():
    assembler = TurnAssembler()
    for chunk in [
        _chunk({"role": "assistant", "content": None}),
        _chunk({"tool_calls": [_call(0, id="call_x", name="bash", args="")]}),
        _chunk({"tool_calls": [_call(0, args='{"comm')]}),
        _chunk({"tool_calls": [_call(1, id="call_y", name="read_file", args='{"pa')]}),
        _chunk({"tool_calls": [_call(0, args='and": "echo hi"}')]}),
        _chunk({"tool_calls": [_call(1, args='th": "a.txt"}')]}),
        _chunk({}, "tool_calls"),
    ]:
        assert assembler.feed(chunk) == ""
    turn = assembler.turn(prompt_chars=40)
    assert turn.text is None
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [
        ("call_x", "bash", {"command": "echo hi"}),
        ("call_y", "read_file", {"path": "a.txt"}),
    ]
    assert turn.stop_reason == "tool_use"
    # No usage came: it is estimated, never zero, so that token budgets keep counting.
    assert turn.usage.input_tokens == 11
    assert turn.usage.output_tokens > 0
    assert turn.usage.model_calls == 1


def test_a_call_without_id_gets_one_and_stop_after_calls_is_tool_use():
    assembler = TurnAssembler(turn_index=3)
    assembler.feed(_chunk({"tool_calls": [_call(0, name="bash", args='{"command": "ls"}')]}))
    assembler.feed(_chunk({}, "stop"))
    turn = assembler.turn(0)
    assert turn.tool_calls[0].id == "call_3_0"
    assert turn.stop_reason == "tool_use"


def test_broken_arguments_reach_the_runtime_for_the_tool_to_refuse():
    assembler = TurnAssembler()
    assembler.feed(_chunk({"tool_calls": [_call(0, id="c1", name="bash", args='{"command": "ls')]}))
    assembler.feed(_chunk({}, "length"))
    turn = assembler.turn(0)
    assert turn.tool_calls[0].args == {INVALID_ARGUMENTS: '{"command": "ls'}
    assert turn.stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "content_filter"),
        (None, "end_turn"),
    ],
)
def test_finish_reasons(finish, reason):
    assembler = TurnAssembler()
    assembler.feed(_chunk({"content": "x"}, finish))
    assert assembler.turn(0).stop_reason == reason


def test_an_answer_is_complete_with_a_finish_reason_or_for_lenient_servers_with_content():
    empty = TurnAssembler()
    assert not empty.complete(strict=True)
    assert not empty.complete(strict=False)
    cut = TurnAssembler()
    cut.feed(_chunk({"content": "half an ans"}))
    assert not cut.complete(strict=True)
    assert cut.complete(strict=False)
    cut.feed(_chunk({}, "stop"))
    assert cut.complete(strict=True)


def test_a_refusal_is_text():
    assembler = TurnAssembler()
    assert (
        assembler.feed(_chunk({"refusal": "I can't help with that."})) == "I can't help with that."
    )
    assert assembler.turn(0).text == "I can't help with that."


# --- errors ------------------------------------------------------------------------------------

KEY = "sk-proj-canary0123456789abcdef"
BASE = "http://user:pw@models.internal:8080/v1"


def _status(status: int, body: Any, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")
    content = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
    response = httpx2.Response(status, headers=headers or {}, content=content, request=request)
    error = body.get("error", body) if isinstance(body, dict) else body
    message = f"Error code: {status}" + (
        f" - {error['message']}" if isinstance(error, dict) else ""
    )
    cls = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        429: openai.RateLimitError,
    }.get(status, openai.InternalServerError)
    return cls(message, response=response, body=error)


def _err(
    message: str, code: str | None = None, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def test_a_refused_key_says_so_without_any_of_the_key():
    exc = _status(
        401, _err(f"Incorrect API key provided: sk-pro{'*' * 20}cdef.", "invalid_api_key")
    )
    error = map_error(exc, "openai", "gpt-x", "https://api.openai.com/v1", KEY)
    assert "API key" in error.message
    assert "401" in error.message
    assert "cdef" not in error.message
    assert "***" not in error.message
    assert not error.retryable
    assert error.status == 401


def test_unknown_model_and_the_base_url_hint_for_compatible_servers():
    exc = _status(404, _err("The model `gpt-y` does not exist", "model_not_found"))
    official = map_error(exc, "openai", "gpt-y", "https://api.openai.com/v1", KEY)
    assert "does not know model 'gpt-y'" in official.message
    assert "base_url" not in official.message
    compatible = map_error(exc, "openai_compatible", "gpt-y", BASE, KEY)
    assert "base_url" in compatible.message
    assert "http://models.internal:8080" in compatible.message
    assert "pw" not in compatible.message
    assert not compatible.retryable


def test_context_too_long():
    exc = _status(
        400,
        _err("This model's maximum context length is 128000 tokens.", "context_length_exceeded"),
    )
    error = map_error(exc, "openai", "gpt-x", "https://api.openai.com/v1", KEY)
    assert error.message.startswith("the conversation is too long for the model's context")
    assert not error.retryable


def test_rate_limit_is_retryable_with_the_upstream_hint():
    exc = _status(
        429,
        _err("Rate limit reached", "rate_limit_exceeded", "requests"),
        {"retry-after-ms": "250"},
    )
    error = map_error(exc, "openai", "gpt-x", "https://api.openai.com/v1", KEY)
    assert "rate limited" in error.message
    assert error.retryable
    assert error.retry_after == 0.25
    assert error.status == 429


def test_no_quota_is_not_retried():
    exc = _status(
        429, _err("You exceeded your current quota", "insufficient_quota", "insufficient_quota")
    )
    error = map_error(exc, "openai", "gpt-x", "https://api.openai.com/v1", KEY)
    assert "quota" in error.message
    assert not error.retryable


def test_server_errors_are_retryable_even_with_an_html_body():
    exc = _status(502, "<html><body>502 Bad Gateway</body></html>", {"retry-after": "2"})
    error = map_error(exc, "openai_compatible", "m", BASE, None)
    assert error.retryable
    assert error.retry_after == 2.0
    assert error.status == 502
    assert "502" in error.message


def test_connection_failures_and_timeouts_are_retryable():
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    refused = map_error(
        openai.APIConnectionError(request=request), "openai_compatible", "m", BASE, None
    )
    assert refused.retryable
    assert "could not reach the model server at http://models.internal:8080" in refused.message
    timeout = map_error(openai.APITimeoutError(request=request), "openai", "m", BASE, None)
    assert timeout.retryable
    assert "in time" in timeout.message


def test_an_upstream_message_that_quotes_the_key_is_scrubbed():
    exc = _status(403, _err(f"key {KEY} is not allowed; also {KEY[:8]}****{KEY[-4:]}"))
    error = map_error(exc, "openai", "gpt-x", "https://api.openai.com/v1", KEY)
    assert KEY not in error.message
    assert KEY[-4:] not in error.message
    assert "[redacted]" in error.message


def test_scrub_caps_length():
    assert len(scrub("x" * 1000, None)) <= 300


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
def test_retry_after(headers, seconds):
    assert retry_after(httpx2.Headers(headers)) == seconds
