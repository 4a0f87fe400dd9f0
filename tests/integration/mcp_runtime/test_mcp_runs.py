"""Runs whose agent has stdio MCP servers, on both sandbox flavors, with the real reference
server `mcp-server-time` (PyPI; nobody here wrote it): the model calls its tool natively, a bash
script calls it through the `mcp` shim, a server that cannot start costs one warn line and
nothing else, and no server process outlives the run."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime
from typing import Any

import pytest

from tests.integration.runs.conftest import assert_no_process_left, assert_well_formed, step_pairs

SCRIPT = [
    {"tool_calls": [{"name": "mcp__time__get_current_time", "args": {"timezone": "UTC"}}]},
    {
        "tool_calls": [
            {
                "name": "bash",
                "args": {"command": "mcp call time.get_current_time timezone=Europe/Paris"},
            }
        ]
    },
    {
        "tool_calls": [
            {"name": "mcp__time__get_current_time", "args": {"timezone": "Mars/Olympus_Mons"}}
        ]
    },
    {"text": "it is time"},
]


def _check_time(text: str, zone: str) -> None:
    answer = json.loads(text)
    assert answer["timezone"] == zone
    when = datetime.fromisoformat(answer["datetime"])
    assert abs((when - datetime.now(when.tzinfo)).total_seconds()) < 600


def run_with_time_server(runner: Any, command: str, *args: str) -> tuple[list[dict[str, Any]], str]:
    marker = f"mcp-test-{uuid.uuid4().hex}"
    time_id = runner.mcp_server("time", command, *args, ACTANA_TEST_MARKER=marker)
    broken_id = runner.mcp_server("broken", "/nonexistent/mcp-server", "--stdio")
    agent = runner.agent(SCRIPT, mcp_server_ids=[time_id, broken_id])
    final = runner.wait(runner.start(agent)["id"])
    lines = runner.stored(final)
    assert final["status"] == "succeeded", (final, lines)
    assert final["message"] == "it is time"
    assert_well_formed(lines)

    # The server that cannot start: one warn line naming it and why; nothing else about it.
    warns = [line for line in lines if line["type"] == "log" and "broken" in line["message"]]
    assert len(warns) == 1, warns
    assert warns[0]["level"] == "warn"
    assert "left out" in warns[0]["message"]
    assert "/nonexistent/mcp-server" in warns[0]["message"]

    steps = step_pairs(lines)
    model_call, bash_call, bad_call = [
        pair for step_id, pair in steps.items() if not step_id.startswith("shim-")
    ]
    # The model's own call: running, then succeeded with the time in UTC.
    assert [s["status"] for s in model_call] == ["running", "succeeded"]
    assert model_call[0]["name"] == "mcp__time__get_current_time"
    assert model_call[0]["args"] == {"timezone": "UTC"}
    _check_time(model_call[1]["result"]["text"], "UTC")

    # The script's call through the shim: the bash step has the answer on stdout, and the call
    # itself is a step of its own.
    assert bash_call[-1]["status"] == "succeeded"
    assert bash_call[-1]["result"]["exit_code"] == 0, bash_call[-1]
    _check_time(bash_call[-1]["result"]["stdout"], "Europe/Paris")
    shim = steps["shim-1"]
    assert [s["status"] for s in shim] == ["running", "succeeded"]
    assert shim[0]["name"] == "mcp__time__get_current_time"
    assert shim[0]["args"] == {"timezone": "Europe/Paris"}

    # A call the server refuses (isError): a failed step with the server's reason; the run goes on.
    assert [s["status"] for s in bad_call] == ["running", "failed"]
    assert "Mars/Olympus_Mons" in bad_call[1]["error"]
    return lines, marker


def test_native_run_with_a_stdio_mcp_server(native_runner):
    # The native sandbox runs this interpreter, whose environment has mcp-server-time.
    _lines, marker = run_with_time_server(native_runner, sys.executable, "-m", "mcp_server_time")
    # The server (started with the marker in its environment) is gone with the run.
    assert_no_process_left(marker, within=5.0)


@pytest.mark.docker
def test_container_run_with_a_stdio_mcp_server(container_runner):
    # The image carries the mcp SDK and mcp-server-time's console script (shebang rewritten).
    run_with_time_server(container_runner, "mcp-server-time")
