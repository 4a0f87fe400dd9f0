"""Names of MCP tools as the model sees them: provider-safe, short enough, deterministic."""

from __future__ import annotations

from actana.runtime.mcp.naming import MAX_TOOL_NAME, is_valid_tool_name, model_tool_name


def test_a_plain_name_is_kept_as_it_is():
    assert model_tool_name("time", "get_current_time") == "mcp__time__get_current_time"


def test_characters_a_provider_refuses_are_replaced_and_a_hash_added():
    name = model_tool_name("files", "read.file v2")
    assert is_valid_tool_name(name)
    assert name.startswith("mcp__files__read_file_v2_")
    assert len(name) == len("mcp__files__read_file_v2_") + 8


def test_tools_that_sanitise_alike_still_get_different_names():
    assert model_tool_name("s", "a.b") != model_tool_name("s", "a b")
    assert model_tool_name("s", "a.b") != model_tool_name("s", "a_b")


def test_a_long_name_is_cut_to_64_characters_deterministically():
    long_tool = "x" * 200
    name = model_tool_name("server", long_tool)
    assert len(name) == MAX_TOOL_NAME
    assert is_valid_tool_name(name)
    assert name == model_tool_name("server", long_tool)
    assert name != model_tool_name("server", "x" * 199)


def test_non_ascii_and_empty_looking_names_become_valid():
    for tool in ("天気", "ünïcode", "-", "a/b/c", "\x00"):
        assert is_valid_tool_name(model_tool_name("srv", tool)), tool
