"""The catalogue (23 names), the tools a run is offered, the Toolbox, todo and finish."""

from __future__ import annotations

from pathlib import Path

import pytest

from actana.protocol.payloads import RunLimits, SkillSpec
from actana.runtime.tools.base import Finish, Invocation, Tool, ToolContext, ToolError, schema
from actana.runtime.tools.registry import (
    CATALOGUE_NAMES,
    DEFAULT_TOOLS,
    Toolbox,
    build_tools,
    offered_tools,
)
from tests.unit.runtime.conftest import LIMITS, Tools

EXPECTED = {
    "read_file", "write_file", "edit_file", "multi_edit", "list_dir", "glob", "grep", "tree",
    "file_info", "move_path", "delete_path", "diff_files", "apply_patch", "json_query",
    "read_table", "archive", "bash", "python", "http_request", "web_fetch", "skill", "todo",
    "finish",
}  # fmt: skip


def test_the_catalogue_has_exactly_the_23_tools() -> None:
    assert len(CATALOGUE_NAMES) == 23
    assert set(CATALOGUE_NAMES) == EXPECTED
    assert list(build_tools(LIMITS)) == list(CATALOGUE_NAMES)
    assert DEFAULT_TOOLS == CATALOGUE_NAMES


def test_every_tool_has_a_usable_description_schema_timeout_and_cap() -> None:
    limits = RunLimits(deadline_ms=0, tool_timeout_sec=7, tool_output_bytes=5000)
    for tool in build_tools(limits).values():
        assert len(tool.description) > 60, tool.name
        assert tool.parameters["type"] == "object"
        assert tool.parameters["additionalProperties"] is False
        assert set(tool.parameters["required"]) <= set(tool.parameters["properties"])
        assert 0 < tool.timeout_sec <= 7, tool.name
        assert 0 < tool.output_cap <= max(5000, limits.read_file_bytes), tool.name


def test_skill_is_offered_only_to_a_run_with_skills() -> None:
    catalogue = build_tools(LIMITS)
    offered, unknown = offered_tools(None, catalogue, ToolContext())
    assert [t.name for t in offered] == [n for n in CATALOGUE_NAMES if n != "skill"]
    assert unknown == []
    skill = SkillSpec(name="s", description="d", body="b", content_hash="h")
    with_skills, _ = offered_tools(None, catalogue, ToolContext(skills=[skill]))
    assert "skill" in [t.name for t in with_skills]


def test_an_agent_subset_keeps_its_order_and_reports_unknown_names() -> None:
    offered, unknown = offered_tools(
        ["bash", "read_file", "bash", "teleport"], build_tools(LIMITS), ToolContext()
    )
    assert [t.name for t in offered] == ["bash", "read_file"]
    assert unknown == ["teleport"]


def echo(inv: Invocation) -> dict[str, object]:
    return {"args": inv.args, "seen": inv.context.state.setdefault("calls", 0)}


def test_the_toolbox_takes_dynamic_tools_and_passes_the_run_context(workspace: Path) -> None:
    context = ToolContext(state={"calls": 3})
    mcp = Tool("mcp__srv__echo", "Echo.", {"type": "object"}, 5.0, 100, echo)
    box = Toolbox([], str(workspace), lambda: 60.0, context)
    box.add(mcp)
    assert box.names() == ["mcp__srv__echo"]
    assert box.invoke("mcp__srv__echo", {"anything": [1, None]}) == {
        "args": {"anything": [1, None]},
        "seen": 3,
    }
    with pytest.raises(ValueError, match="two tools are named 'mcp__srv__echo'"):
        box.add(mcp)


# --- todo ------------------------------------------------------------------------------------


def test_todo_keeps_and_updates_the_plan_for_the_run(tools: Tools) -> None:
    first = tools.ok(
        "todo",
        items=[
            {"text": "read input", "status": "in_progress"},
            {"text": "write report", "status": "pending"},
        ],
    )
    assert first["plan"] == "[~] 1. read input\n[ ] 2. write report"
    assert (first["pending"], first["in_progress"], first["done"]) == (1, 1, 0)

    second = tools.ok(
        "todo",
        items=[
            {"id": "1", "text": "read input", "status": "done"},
            {"id": "x", "text": "check", "status": "pending"},
        ],
    )
    assert second["plan"] == "[x] 1. read input\n[ ] 2. write report\n[ ] x. check"
    assert tools.box.context.state["todo"][0]["status"] == "done"

    fresh = tools.ok("todo", items=[{"text": "start over", "status": "pending"}], replace=True)
    assert fresh["plan"] == "[ ] 1. start over"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"text": "x", "status": "started"}], "must be one of 'pending', 'in_progress', 'done'"),
        ([{"status": "done"}], "missing required argument 'items[0].text'"),
        ([], "needs at least 1 items"),
        ([{"text": "", "status": "done"}], "must not be empty"),
    ],
)
def test_todo_bad_arguments(tools: Tools, items: object, message: str) -> None:
    assert message in str(tools.fails("todo", items=items))


def test_todo_refuses_a_plan_too_long_and_keeps_the_old_one(tools: Tools) -> None:
    tools.ok("todo", items=[{"text": "keep me", "status": "pending"}])
    many = [{"text": f"step {n}", "status": "pending"} for n in range(100)]
    assert "at most 100" in str(tools.fails("todo", items=many))
    assert tools.box.context.state["todo"] == [{"id": "1", "text": "keep me", "status": "pending"}]


def test_todo_output_is_capped_with_the_marker(tools: Tools) -> None:
    items = [{"text": f"{n} " + "z" * 400, "status": "pending"} for n in range(20)]
    result = tools.ok("todo", items=items)
    assert result["truncated"] is True
    assert "[... output truncated:" in result["plan"]
    assert result["pending"] == 20


# --- finish ----------------------------------------------------------------------------------


def test_finish_signals_the_end_with_its_message(tools: Tools) -> None:
    with pytest.raises(Finish) as caught:
        tools.box.invoke("finish", {"message": "the answer"})
    assert caught.value.message == "the answer"
    assert not isinstance(caught.value, ToolError)


def test_finish_bad_arguments(tools: Tools) -> None:
    assert "missing required argument 'message'" in str(tools.fails("finish"))
    assert "must not be empty" in str(tools.fails("finish", message=""))
    assert "may have at most 60000 characters" in str(tools.fails("finish", message="x" * 60_001))


def test_closed_schemas_still_refuse_unknown_arguments(workspace: Path) -> None:
    tool = Tool("t", "T.", schema({"a": {"type": "string"}}, ["a"]), 1.0, 10, echo)
    box = Toolbox([tool], str(workspace), lambda: 60.0)
    with pytest.raises(ToolError, match=r"unknown argument 'b' \(allowed: a\)"):
        box.invoke("t", {"a": "x", "b": 1})
