"""A scripted agent run end to end over real HTTP, in a real native sandbox."""

from __future__ import annotations

import hashlib

from actana.protocol.events import PHASES
from actana.runs.chain import verify_run_dir

SCRIPT = [
    {"tool_calls": [{"name": "read_file", "args": {"path": "assets/in.txt"}}]},
    {
        "tool_calls": [
            {
                "name": "write_file",
                "args": {"path": "assets/out.txt", "content": "made in a sandbox\n"},
            },
            {"name": "bash", "args": {"command": "wc -c < assets/in.txt; echo shell-ok"}},
        ]
    },
    {"tool_calls": [{"name": "python", "args": {"code": "print(sum(range(10)))"}}]},
    {
        "tool_calls": [
            {
                "name": "edit_file",
                "args": {"path": "assets/out.txt", "old": "made", "new": "written"},
            }
        ]
    },
    {"text": "All done: out.txt is ready."},
]


def test_scripted_run_end_to_end(runner):
    agent = runner.agent(SCRIPT, system_prompt="be careful")
    run = runner.start(agent, "please work", files={"in.txt": b"hello input\n"})
    assert run["status"] == "queued"
    assert run["input_files"] == [
        {"name": "in.txt", "size": 12, "sha256": hashlib.sha256(b"hello input\n").hexdigest()}
    ]
    final = runner.wait(run["id"])
    assert final["status"] == "succeeded", final
    assert final["message"] == "All done: out.txt is ready."
    assert final["rounds"] == 5
    assert final["usage"]["model_calls"] == 5
    assert final["usage"]["input_tokens"] > 0
    assert final["sandbox_backend"] == "native"
    assert final["isolation"]

    lines = runner.stored(final)
    assert [line["seq"] for line in lines] == list(range(len(lines)))
    assert all(line["run"] == run["id"] and line["v"] == 1 for line in lines)
    phases = [line["phase"] for line in lines if line["type"] == "log" and line.get("phase")]
    assert sorted(phases) == sorted(PHASES)
    assert len(phases) == 9
    assert phases == list(PHASES)  # and in their order
    terminal = [line for line in lines if line["type"] in ("result", "error")]
    assert terminal == [lines[-1]]
    assert lines[-1]["type"] == "result"

    steps = {}
    for line in lines:
        if line["type"] == "step":
            steps.setdefault(line["id"], []).append(line)
    assert len(steps) == 5
    for pair in steps.values():
        assert [s["status"] for s in pair] == ["running", "succeeded"], pair
    by_name = {pair[0]["name"]: pair[-1] for pair in steps.values()}
    assert by_name["read_file"]["result"]["content"] == "hello input\n"
    assert "shell-ok" in by_name["bash"]["result"]["stdout"]
    assert by_name["python"]["result"]["stdout"].strip() == "45"

    report = verify_run_dir(runner.run_dir(final))
    assert report.ok, report.reason

    t = runner.tenant
    steps_json = t.client.get(t.path(f"/runs/{run['id']}/steps.json")).json()
    assert [s["id"] for s in steps_json] == list(steps)
    assert all(s["status"] == "succeeded" for s in steps_json)
    result_json = t.client.get(t.path(f"/runs/{run['id']}/result.json")).json()
    assert result_json["status"] == "succeeded"
    assert result_json["lines"] == len(lines)
    with runner.context.database.session() as session:
        from actana.db.models import Run

        assert session.get(Run, run["id"]).chain == result_json["chain"]
    # Outputs are what is in assets/ at the end: the input file too (DESIGN.md, Files).
    assert {f["name"] for f in result_json["files"]} == {"in.txt", "out.txt"}

    files = t.client.get(t.path(f"/runs/{run['id']}/files")).json()
    assert sorted(f["name"] for f in files) == ["in.txt", "out.txt"]
    download = t.client.get(t.path(f"/runs/{run['id']}/files/out.txt"))
    assert download.status_code == 200
    assert download.content == b"written in a sandbox\n"
    assert download.headers["content-disposition"].startswith("attachment;")
    stream = t.client.get(t.path(f"/runs/{run['id']}/stream.jsonl"))
    assert (
        stream.text.splitlines()
        == (runner.run_dir(final) / "stream.jsonl").read_text().splitlines()
    )


def test_listing_and_filters(runner):
    agent = runner.agent([{"text": "hi"}])
    first = runner.start(agent)
    runner.wait(first["id"])
    t = runner.tenant
    page = t.client.get(t.path("/runs"), params={"status": "succeeded", "agent_id": agent}).json()
    assert page["total"] == 1
    assert page["items"][0]["id"] == first["id"]
    assert t.client.get(t.path("/runs"), params={"status": "running"}).json()["total"] == 0
    bad = t.client.get(t.path("/runs"), params={"status": "nope"})
    assert bad.status_code == 422
