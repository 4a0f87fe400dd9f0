"""The new tools in full runs of `python -m actana.runtime` against the stand-in sandbox API:
`finish` ends the loop, a failed tool is fed back to the model and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.runtime.sandbox_api import SandboxApi, turn
from tests.unit.runtime.test_runtime_e2e import make_config, run_runtime

TOOLS = ["write_file", "multi_edit", "apply_patch", "json_query", "todo", "finish", "bash"]


def config(max_rounds: int = 5) -> dict[str, Any]:
    return {**make_config(max_rounds=max_rounds), "tools": TOOLS}


def test_finish_ends_the_run_with_its_message(workspace: Path, socket_dir: Path) -> None:
    calls = [
        ("c1", "write_file", {"path": "assets/report.md", "content": "# Report\n"}),
        ("c2", "finish", {"message": "Done: see assets/report.md"}),
        ("c3", "bash", {"command": "touch assets/never"}),
    ]
    api = SandboxApi(env={}, config=config(), turns=[[turn("writing", calls)], [turn("unused")]])
    run = run_runtime(api, workspace, socket_dir)

    assert run.returncode == 0
    assert run.terminal["type"] == "result"
    assert run.terminal["message"] == "Done: see assets/report.md"
    assert run.terminal["rounds"] == 1
    assert [s["status"] for s in run.steps("c1")] == ["running", "succeeded"]
    assert [s["status"] for s in run.steps("c2")] == ["running", "succeeded"]
    assert run.steps("c2")[1]["result"] == {"finished": True}
    assert run.steps("c3") == []  # after finish nothing else runs
    assert len(api.model_bodies()) == 1
    assert not (workspace / "assets/never").exists()
    (upload,) = api.uploads
    assert [f.filename for f in upload] == ["report.md"]


def test_a_failed_tool_is_fed_back_and_the_run_goes_on(workspace: Path, socket_dir: Path) -> None:
    (workspace / "assets/data.json").write_text('{"items": [{"id": 7}]}')
    first = [
        ("f1", "apply_patch", {"patch": "--- /dev/null\n+++ ../escape.txt\n@@ -0,0 +1 @@\n+x\n"}),
        ("f2", "json_query", {"path": "assets/data.json", "query": ".items[3]"}),
        ("f3", "todo", {"items": [{"text": "retry", "status": "started"}]}),
    ]
    second = [("s1", "json_query", {"path": "assets/data.json", "query": ".items[].id"})]
    api = SandboxApi(
        env={},
        config=config(),
        turns=[[turn("trying", first)], [turn("again", second)], [turn("The id is 7.")]],
    )
    run = run_runtime(api, workspace, socket_dir)

    assert run.terminal["type"] == "result"
    assert run.terminal["message"] == "The id is 7."
    for call_id in ("f1", "f2", "f3"):
        assert [s["status"] for s in run.steps(call_id)] == ["running", "failed"]
    assert "must be relative to the workspace" in run.steps("f1")[1]["error"]
    assert "out of range" in run.steps("f2")[1]["error"]
    assert "must be one of 'pending', 'in_progress', 'done'" in run.steps("f3")[1]["error"]
    assert not (workspace.parent / "escape.txt").exists()

    _, after_failures, after_success = api.model_bodies()
    fed_back = after_failures["messages"][2:]
    assert [m["is_error"] for m in fed_back] == [True, True, True]
    assert "out of range: the array has 1 items" in fed_back[1]["text"]
    answer = json.loads(after_success["messages"][-1]["text"])
    assert json.loads(answer["result"]) == [7]


def test_finish_in_the_last_round_still_answers(workspace: Path, socket_dir: Path) -> None:
    api = SandboxApi(
        env={},
        config=config(max_rounds=1),
        turns=[[turn(None, [("c1", "finish", {"message": "in time"})])]],
    )
    run = run_runtime(api, workspace, socket_dir)
    assert (run.terminal["type"], run.terminal["message"]) == ("result", "in time")


def test_a_refused_finish_in_the_last_round_is_max_rounds(
    workspace: Path, socket_dir: Path
) -> None:
    api = SandboxApi(
        env={},
        config=config(max_rounds=1),
        turns=[[turn(None, [("c1", "finish", {"message": ""})])]],
    )
    run = run_runtime(api, workspace, socket_dir)
    assert (run.terminal["type"], run.terminal["code"]) == ("error", "max_rounds")
    assert [s["status"] for s in run.steps("c1")] == ["running", "failed"]
