"""Runs through the CLI and a real `actana server` process: run, logs, verify, a killed worker."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.acceptance.conftest import free_port, wait_ready, workspace_with_agent
from tests.conftest import forge_consistent_run_folder

SCRIPT = [
    {
        "tool_calls": [
            {"name": "write_file", "args": {"path": "assets/hello.txt", "content": "hi\n"}}
        ]
    },
    {"tool_calls": [{"name": "bash", "args": {"command": "cat assets/hello.txt"}}]},
    {"text": "Wrote hello.txt."},
]


def _env(ws: str, client) -> dict[str, str]:
    return {"ACTANA_WORKSPACE": ws, "ACTANA_API_KEY": client.headers["Authorization"].split()[1]}


def test_run_logs_and_verify(cli, server, tmp_path):
    client, ws, _agent = workspace_with_agent(cli, server, SCRIPT)
    upload = tmp_path / "notes.txt"
    upload.write_text("input\n")
    env = {"ACTANA_SERVER_URL": server, **_env(ws, client)}
    result = cli.run("run", "hello", "say hi", "--file", str(upload), **env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Wrote hello.txt." in result.stdout
    assert "succeeded" in result.stdout
    assert "output: hello.txt" in result.stdout

    run = client.get("/runs").json()["items"][0]
    assert run["status"] == "succeeded"
    assert [f["name"] for f in run["input_files"]] == ["notes.txt"]
    logs = cli.run("logs", run["id"], **env)
    assert logs.returncode == 0, logs.stderr
    assert "Wrote hello.txt." in logs.stdout

    run_dir = Path(cli.env["ACTANA_DATA_DIR"]) / "runs" / ws / run["id"]
    ok = cli.run("verify", str(run_dir))
    assert ok.returncode == 0, ok.stderr
    assert "chain intact" in ok.stdout
    stream = run_dir / "stream.jsonl"
    lines = stream.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"level":"info"', b'"level":"warn"', 1)
    assert b'"level":"warn"' in lines[3]
    stream.write_bytes(b"".join(lines))
    bad = cli.run("verify", str(stream))
    assert bad.returncode == 1
    assert "line 4" in bad.stderr
    client.close()


def test_run_exit_code_follows_the_status(cli, server):
    client, ws, _agent = workspace_with_agent(
        cli, server, [{"tool_calls": [{"name": "bash", "args": {"command": "true"}}]}], max_rounds=1
    )
    result = cli.run("run", "hello", "loop", ACTANA_SERVER_URL=server, **_env(ws, client))
    assert result.returncode == 1
    assert "max_rounds" in result.stdout
    client.close()


def _marker_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _wait_for_marker(marker: str, timeout: float = 10) -> list[int]:
    """Poll /proc (bounded) until a process with the marker shows up: the step's `running`
    line is written just before its process starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _marker_processes(marker)
        if found:
            return found
        time.sleep(0.02)
    return []


def test_killed_worker_leaves_no_running_run_and_no_sandbox(cli):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    marker = f"actana-test-{os.getpid()}-{port}"
    script = [
        {"tool_calls": [{"name": "bash", "args": {"command": f"exec -a {marker} sleep 600"}}]},
        {"text": "never"},
    ]
    env = {"ACTANA_MAX_EXECUTION_TIME_SEC": "300"}
    first = cli.popen("server", "--port", str(port), **env)
    try:
        wait_ready(first, url)
        client, ws, agent = workspace_with_agent(cli, url, script)
        run = client.post(f"/agents/{agent}/runs", json={"prompt": "sleep"}).json()
        with client.stream("GET", f"/runs/{run['id']}/events") as events:
            for line in events.iter_lines():
                event = json.loads(line)
                if event["type"] == "step" and event["status"] == "running":
                    break
        assert _wait_for_marker(marker), "the sandbox's process should be running"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=30)

    second = cli.popen("server", "--port", str(port), **env)
    try:
        wait_ready(second, url)  # the worker reaps at start, before it claims anything
        after = client.get(f"/runs/{run['id']}").json()
        assert after["status"] == "failed", after
        assert after["error"]["code"] == "sandbox_failed"
        assert _marker_processes(marker) == []
        run_dir = Path(cli.env["ACTANA_DATA_DIR"]) / "runs" / ws / run["id"]
        verified = cli.run("verify", str(run_dir))
        assert verified.returncode == 0, verified.stderr
        sandboxes = Path(cli.env["ACTANA_DATA_DIR"]) / "sandboxes"
        assert [p.name for p in sandboxes.iterdir() if p.name.startswith("run_")] == []
    finally:
        second.terminate()
        second.communicate(timeout=30)
        client.close()


def test_standalone_worker_runs_what_a_worker_less_server_queues(cli):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = cli.popen("server", "--port", str(port), ACTANA_WORKERS="0")
    worker = None
    try:
        wait_ready(api, url)
        client, _ws, agent = workspace_with_agent(cli, url, SCRIPT)
        run = client.post(f"/agents/{agent}/runs", json={"prompt": "hi"}).json()
        assert client.get(f"/runs/{run['id']}").json()["status"] == "queued"
        worker = cli.popen("worker", "--count", "1")
        # The API process follows a run driven by another process, from the shared files.
        with client.stream("GET", f"/runs/{run['id']}/events") as events:
            lines = [json.loads(line) for line in events.iter_lines()]
        assert lines[-1]["type"] == "result", lines[-1]
        final = client.get(f"/runs/{run['id']}").json()
        assert final["status"] == "succeeded"
        assert [f["name"] for f in final["output_files"]] == ["hello.txt"]
        client.close()
    finally:
        outputs = {}
        for name, process in (("worker", worker), ("api", api)):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                outputs[name] = process.communicate(timeout=30)
    assert worker is not None
    assert worker.returncode == 0, outputs["worker"][1]
    assert "worker stopped" in outputs["worker"][0]


def test_verify_run_catches_a_rewritten_chain(cli, server):
    client, ws, agent = workspace_with_agent(cli, server, SCRIPT)
    run = client.post(f"/agents/{agent}/runs", json={"prompt": "hi"}).json()
    with client.stream("GET", f"/runs/{run['id']}/events") as events:
        assert json.loads(list(events.iter_lines())[-1])["type"] == "result"
    client.close()
    assert cli.run("verify", "--run", run["id"]).returncode == 0

    run_dir = Path(cli.env["ACTANA_DATA_DIR"]) / "runs" / ws / run["id"]
    forge_consistent_run_folder(run_dir)

    folder_only = cli.run("verify", str(run_dir))
    assert folder_only.returncode == 0, folder_only.stderr  # what a folder alone cannot tell
    with_record = cli.run("verify", "--run", run["id"])
    assert with_record.returncode == 1
    assert "recorded in the database" in with_record.stderr
