"""The `mcp` shim's command line: what it asks the runtime for, and what it refuses."""

from __future__ import annotations

import pytest

from actana.runtime.mcp.shim import UsageError, main, parse_command, parse_value


def test_values_are_json_when_they_parse_and_strings_otherwise():
    assert parse_value("42") == 42
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value('{"a": 1}') == {"a": 1}
    assert parse_value('"007"') == "007"
    assert parse_value("Europe/Paris") == "Europe/Paris"
    assert parse_value("") == ""
    assert parse_value("007x") == "007x"


def test_call_with_key_value_pairs():
    request = parse_command(["call", "time.get_current_time", "timezone=UTC", "n=3", "s=a=b"])
    assert request == {
        "op": "call",
        "server": "time",
        "tool": "get_current_time",
        "arguments": {"timezone": "UTC", "n": 3, "s": "a=b"},
    }


def test_the_tool_name_may_hold_dots_the_server_name_cannot():
    request = parse_command(["call", "docs.search.v2"])
    assert (request["server"], request["tool"]) == ("docs", "search.v2")


def test_call_with_a_json_object():
    request = parse_command(["call", "t.x", "--json", '{"a": [1], "b": null}', "c=1"])
    assert request["arguments"] == {"a": [1], "b": None, "c": 1}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["call"], "needs SERVER.TOOL"),
        (["call", "notool"], "is not SERVER.TOOL"),
        (["call", ".tool"], "is not SERVER.TOOL"),
        (["call", "srv."], "is not SERVER.TOOL"),
        (["call", "s.t", "novalue"], "is not KEY=VALUE"),
        (["call", "s.t", "=v"], "is not KEY=VALUE"),
        (["call", "s.t", "--json"], "needs a JSON object"),
        (["call", "s.t", "--json", "[1]"], "must be a JSON object"),
        (["call", "s.t", "--json", "{nope"], "not valid JSON"),
        (["list", "a", "b"], "at most one SERVER"),
        (["frobnicate"], "unknown command"),
    ],
)
def test_bad_command_lines_say_what_to_fix(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_command(argv)


def test_list_with_and_without_a_server():
    assert parse_command(["list"]) == {"op": "list", "server": None}
    assert parse_command(["list", "time"]) == {"op": "list", "server": "time"}


def test_without_the_socket_variable_the_shim_says_there_are_no_servers(monkeypatch, capsys):
    monkeypatch.delenv("ACTANA_MCP_SOCKET", raising=False)
    assert main(["list"]) == 2
    assert "this run has no MCP servers" in capsys.readouterr().err


def test_bad_usage_exits_2_with_the_usage(capsys):
    assert main(["call", "x"]) == 2
    err = capsys.readouterr().err
    assert "is not SERVER.TOOL" in err
    assert "mcp call SERVER.TOOL" in err
