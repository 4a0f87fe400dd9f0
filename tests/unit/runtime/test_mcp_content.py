"""MCP tool results turned into the tool result the model gets."""

from __future__ import annotations

import base64

import pytest

from actana.runtime.mcp.catalog import parse_tools
from actana.runtime.mcp.content import tool_result
from actana.runtime.tools.base import ToolError


def test_text_blocks_are_joined():
    payload = {
        "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        "is_error": False,
        "structured": None,
    }
    assert tool_result(payload, 1000) == {"text": "one\ntwo"}


def test_images_and_resources_are_summarised_never_dumped():
    blob = base64.b64encode(b"\x89PNG" + b"x" * 1000).decode()
    payload = {
        "content": [
            {"type": "text", "text": "see attached"},
            {"type": "image", "data": blob, "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "hello"}},
            {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": blob}},
            {"type": "resource_link", "uri": "https://x.example/doc", "name": "doc"},
            {"type": "something-new", "payload": "?"},
        ],
        "is_error": False,
    }
    result = tool_result(payload, 100_000)
    assert result["text"] == "see attached"
    assert result["attachments"] == [
        {"type": "image", "mime_type": "image/png", "bytes": 1004},
        {"type": "resource", "uri": "file:///a.txt", "chars": 5},
        {"type": "resource", "uri": "file:///b.bin", "bytes": 1004},
        {"type": "resource_link", "uri": "https://x.example/doc", "name": "doc"},
        {"type": "something-new"},
    ]
    assert blob not in str(result)


def test_long_text_is_cut_with_a_marker():
    payload = {"content": [{"type": "text", "text": "é" * 1000}], "is_error": False}
    result = tool_result(payload, 101)
    assert result["truncated"] is True
    assert result["text"].startswith("é" * 50)
    assert "output truncated: 2000 bytes in total, the first 100 shown" in result["text"]


def test_structured_content_is_kept_when_it_fits():
    payload = {"content": [], "is_error": False, "structured": {"temp": 21}}
    assert tool_result(payload, 1000) == {"text": "", "structured": {"temp": 21}}
    big = {"content": [], "structured": {"k": "v" * 2000}}
    assert "structured_omitted" in tool_result(big, 1000)


def test_is_error_becomes_a_tool_error_with_the_servers_text():
    payload = {"content": [{"type": "text", "text": "Invalid timezone: Mars"}], "is_error": True}
    with pytest.raises(ToolError, match="Invalid timezone: Mars"):
        tool_result(payload, 1000)
    with pytest.raises(ToolError, match="without saying why"):
        tool_result({"content": [], "is_error": True}, 1000)


@pytest.mark.parametrize(
    "payload", [None, [], "text", {"content": "nope"}, {"content": [1, None, {"type": 5}]}]
)
def test_malformed_results_never_crash(payload):
    if not isinstance(payload, dict):
        with pytest.raises(ToolError):
            tool_result(payload, 1000)
    else:
        assert tool_result(payload, 1000)["text"] == ""


def test_tool_lists_are_checked_and_bad_entries_dropped_with_a_reason():
    tools, dropped = parse_tools(
        [
            {"name": "ok", "description": "d", "inputSchema": {"type": "object"}},
            {"name": "noschema"},
            {"name": "", "input_schema": {}},
            {"name": "arr", "input_schema": {"type": "array"}},
            {"name": "ok", "input_schema": {}},
            "junk",
        ]
    )
    assert [t.name for t in tools] == ["ok", "noschema"]
    assert tools[0].input_schema == {"type": "object", "properties": {}}
    assert len(dropped) == 4
