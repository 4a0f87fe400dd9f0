"""OpenAI Chat Completions requests for the `openai` and `openai_compatible` providers: the
neutral conversation and tools as Chat Completions messages and functions, and the keyword
arguments of one streamed `chat.completions.create`.

A failed tool result has no flag in Chat Completions: its content starts with
`TOOL_ERROR_PREFIX` instead. `openai` sends `max_completion_tokens` (the reasoning models refuse
`max_tokens`), `openai_compatible` the older `max_tokens` that every such server knows.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from actana.protocol.payloads import Message, ModelRequest, ToolSchema

Flavor = Literal["openai", "openai_compatible"]

TOOL_ERROR_PREFIX = "ERROR: the tool call failed.\n"
"""Starts the content of a `tool` message whose call failed (Chat Completions has no error flag)."""


def to_openai_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """The conversation as Chat Completions messages, the system prompt first."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.extend(_message(m) for m in request.messages)
    return messages


def _message(message: Message) -> dict[str, Any]:
    if message.role == "user":
        return {"role": "user", "content": message.text or ""}
    if message.role == "tool":
        text = message.text or ""
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": TOOL_ERROR_PREFIX + text if message.is_error else text,
        }
    out: dict[str, Any] = {"role": "assistant"}
    if message.tool_calls:
        out["content"] = message.text or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.args)},
            }
            for call in message.tool_calls
        ]
    else:
        out["content"] = message.text or ""
    return out


def to_openai_tools(tools: list[ToolSchema]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
            },
        }
        for tool in tools
    ]


def request_params(
    flavor: Flavor, model: str, request: ModelRequest, *, stream_options: bool = True
) -> dict[str, Any]:
    """The keyword arguments of `chat.completions.create` for one streamed turn."""
    params: dict[str, Any] = {
        "model": model,
        "messages": to_openai_messages(request),
        "stream": True,
    }
    if stream_options:
        params["stream_options"] = {"include_usage": True}
    if request.tools:  # the API refuses an empty list
        params["tools"] = to_openai_tools(request.tools)
    if request.max_tokens is not None:
        name = "max_completion_tokens" if flavor == "openai" else "max_tokens"
        params[name] = request.max_tokens
    return params
