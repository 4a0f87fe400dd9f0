"""bash and python: results as data, caps with markers, and timeouts that leave nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actana.runtime.tools import shell
from actana.runtime.tools.base import Invocation, ToolError
from tests.unit.runtime.conftest import LIMITS, Tools

pytestmark = pytest.mark.usefixtures("subreaper")


def test_bash_runs_in_the_workspace(tools: Tools, workspace: Path) -> None:
    result = tools.ok("bash", command="pwd; echo oops >&2")
    assert result == {
        "exit_code": 0,
        "stdout": f"{workspace}\n",
        "stderr": "oops\n",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "timed_out": False,
    }


def test_a_failing_command_is_a_result_with_its_exit_code(tools: Tools) -> None:
    result = tools.ok("bash", command="echo partial; exit 7")
    assert (result["exit_code"], result["stdout"], result["timed_out"]) == (7, "partial\n", False)


def test_stdin_is_empty_rather_than_inherited(tools: Tools) -> None:
    assert tools.ok("bash", command="cat; echo end")["stdout"] == "end\n"


def test_big_output_is_cut_with_a_marker(tools: Tools) -> None:
    result = tools.ok("bash", command="head -c 100000 /dev/zero | tr '\\0' a; echo err >&2")
    assert result["stdout_truncated"] is True
    assert result["stdout"].startswith("a" * LIMITS.tool_output_bytes)
    assert result["stdout"].endswith(
        f"[... output truncated: 100000 bytes in total, the first {LIMITS.tool_output_bytes} shown]"
    )
    assert (result["stderr"], result["stderr_truncated"]) == ("err\n", False)


def test_output_that_is_not_utf8_is_replaced_not_refused(tools: Tools) -> None:
    result = tools.ok("bash", command="printf 'ok \\377\\376 done'")
    assert result["stdout"] == "ok \ufffd\ufffd done"


def test_a_timeout_kills_the_whole_process_group(workspace: Path) -> None:
    # `echo $$` prints the shell's pid, which is also the id of the group the tool created.
    inv = Invocation(
        root=str(workspace),
        args={"command": "echo $$; sleep 600 & sleep 600"},
        timeout_sec=0.5,
        output_cap=4096,
    )
    with pytest.raises(ToolError) as caught:
        shell.bash(inv)
    assert "timed out after 0.5 s" in str(caught.value)
    details = caught.value.details
    assert details is not None
    assert details["timed_out"] is True
    pgid = int(details["stdout"].split()[0])
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # nothing of the group is left, not even a zombie


def test_background_children_do_not_outlive_the_command(tools: Tools) -> None:
    result = tools.ok("bash", command="sleep 600 >/dev/null 2>&1 & echo $$")
    with pytest.raises(ProcessLookupError):
        os.killpg(int(result["stdout"]), 0)


def test_the_requested_timeout_is_honoured(tools: Tools) -> None:
    error = tools.fails("bash", command="sleep 30", timeout_sec=1)
    assert "timed out after 1 s" in str(error)


def test_timeouts_are_cut_to_the_time_left_in_the_run(workspace: Path) -> None:
    from actana.runtime.tools.registry import Toolbox, build_tools

    box = Toolbox(build_tools(LIMITS).values(), str(workspace), lambda: 0.3)
    with pytest.raises(ToolError) as caught:
        box.invoke("bash", {"command": "sleep 30", "timeout_sec": 20})
    assert "timed out after 0.3 s" in str(caught.value)


def test_python_runs_code(tools: Tools, workspace: Path) -> None:
    code = "import os, sys\nprint(os.getcwd())\nsys.exit(3)"
    result = tools.ok("python", code=code)
    assert (result["exit_code"], result["stdout"]) == (3, f"{workspace}\n")


def test_python_reports_exceptions_as_stderr(tools: Tools) -> None:
    result = tools.ok("python", code="raise ValueError('bad input')")
    assert result["exit_code"] == 1
    assert "ValueError: bad input" in result["stderr"]


def test_python_code_too_long_for_argv_is_refused_with_advice(tools: Tools) -> None:
    error = tools.fails("python", code="x = 1\n" * 20_000)
    assert "write_file" in str(error)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({}, "missing required argument 'command'"),
        ({"command": ""}, "argument 'command' must not be empty"),
        ({"command": "ls", "timeout_sec": 0}, "argument 'timeout_sec' must be >= 1"),
        ({"command": "ls", "timeout_sec": "5"}, "argument 'timeout_sec' must be integer"),
        ({"command": "ls", "cwd": "/"}, "unknown argument 'cwd'"),
    ],
)
def test_bad_bash_arguments(tools: Tools, args: dict[str, object], problem: str) -> None:
    assert problem in str(tools.fails("bash", **args))
