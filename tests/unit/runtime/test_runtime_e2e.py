"""`python -m actana.runtime` end to end, in a subprocess, against a stand-in sandbox API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit.runtime.sandbox_api import (
    RUN,
    SESSION,
    SETUP,
    UPLOAD,
    SandboxApi,
    delta,
    serve,
    turn,
)

ALL_TOOLS = ["read_file", "write_file", "edit_file", "list_dir", "glob", "grep", "bash", "python"]
SECRETS = [SETUP, RUN, UPLOAD, SESSION]
PHASES = ["bootstrap", "materialization", "execution", "result_upload"]


def make_config(*, max_rounds: int = 5, deadline_in_ms: int = 60_000) -> dict[str, Any]:
    return {
        "run_id": "run-1",
        "prompt": "the prompt",
        "agent": {"name": "helper", "system_prompt": "sys prompt", "max_rounds": max_rounds},
        "model": {"provider": "scripted", "model": "script-1"},
        "tools": ALL_TOOLS,
        "limits": {"deadline_ms": int(time.time() * 1000) + deadline_in_ms},
        "session_token": SESSION,
    }


@dataclass
class Finished:
    events: list[dict[str, Any]]
    raw: str
    returncode: int
    stdout_inode: int

    def phases(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "log" and "phase" in e]

    def phase(self, name: str) -> dict[str, Any]:
        (line,) = [e for e in self.phases() if e["phase"] == name]
        return line

    def steps(self, call_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "step" and e["id"] == call_id]

    @property
    def terminal(self) -> dict[str, Any]:
        return self.events[-1]


def run_runtime(
    api: SandboxApi, workspace: Path, socket_dir: Path | None, **env_overrides: str
) -> Finished:
    """Run the runtime to completion against `api` (on a unix socket, or TCP when None)."""
    with serve(api, socket_dir / "api.sock" if socket_dir else None) as channel:
        env = {
            "PATH": os.environ["PATH"],
            "ACTANA_CHANNEL": channel,
            "OTP_SETUP": SETUP,
            "OTP_RUN": RUN,
            "OTP_UPLOAD": UPLOAD,
            "WORKSPACE_DIR": str(workspace),
            "ACTANA_RUN_ID": "run-1",
            **env_overrides,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "actana.runtime"],
            env=env,
            cwd=workspace,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        inode = os.fstat(proc.stdout.fileno()).st_ino
        out, err = proc.communicate(timeout=60)
    raw = out.decode("ascii")  # ensure_ascii: anything else would be a stray write
    assert raw.endswith("\n"), raw
    events = [json.loads(line) for line in raw[:-1].split("\n")]
    check_well_formed(events)
    for secret in SECRETS:
        assert secret not in raw
        assert secret not in err.decode(errors="replace")
    return Finished(events, raw, proc.returncode, inode)


def check_well_formed(events: list[dict[str, Any]]) -> None:
    """One terminal line, last; phases in order, once each; steps as running/end pairs."""
    kinds = [e["type"] for e in events]
    assert kinds[-1] in ("result", "error")
    assert sum(k in ("result", "error") for k in kinds) == 1
    phases = [e["phase"] for e in events if e["type"] == "log" and "phase" in e]
    assert phases == [p for p in PHASES if p in phases]
    for line in events:
        if "phase" in line:
            assert isinstance(line["durationMs"], int)
            assert line["durationMs"] >= 0
    steps = [e for e in events if e["type"] == "step"]
    for start, end in zip(steps[::2], steps[1::2], strict=True):
        assert start["status"] == "running"
        assert end["status"] in ("succeeded", "failed")
        assert (start["id"], start["name"]) == (end["id"], end["name"])
        assert isinstance(end["durationMs"], int)


PROBE = (
    "echo greeting=$GREETING; env; cat /proc/self/environ; echo; cat /proc/$PPID/environ; echo;"
    " ls -l /proc/$$/fd"
)


def test_a_full_run(workspace: Path, socket_dir: Path) -> None:
    (workspace / "assets" / "in.txt").write_text("hello\nworld\n")
    (workspace / "assets" / "link").symlink_to("/etc/passwd")
    api = SandboxApi(
        env={"variables": {"GREETING": "hi"}, "setup_script": "echo setup says $GREETING; env"},
        config=make_config(),
        turns=[
            [
                delta("Looking"),
                delta(" around"),
                turn(
                    "Looking around",
                    [
                        ("c1", "read_file", {"path": "assets/in.txt"}),
                        ("c2", "bash", {"command": PROBE}),
                        ("c3", "write_file", {"path": "assets/out/report.md", "content": "# R\n"}),
                        ("c4", "nope", {}),
                        ("c5", "read_file", {"path": "assets/in.txt", "lines": 3}),
                    ],
                ),
            ],
            [turn("All done.")],
        ],
    )
    run = run_runtime(api, workspace, socket_dir)

    assert run.returncode == 0
    assert [p["phase"] for p in run.phases()] == PHASES
    assert all(p["outcome"] == "ok" for p in run.phases())
    assert {"type": "log", "level": "info", "message": "setup says hi"}.items() <= run.events[
        0
    ].items()
    materialized = run.phase("materialization")["message"]
    assert "in.txt" in materialized
    assert "link" not in materialized
    assert [e["text"] for e in run.events if e["type"] == "delta"] == ["Looking", " around"]

    status = {cid: [s["status"] for s in run.steps(cid)] for cid in ("c1", "c2", "c3", "c4", "c5")}
    assert status == {
        "c1": ["running", "succeeded"],
        "c2": ["running", "succeeded"],
        "c3": ["running", "succeeded"],
        "c4": ["running", "failed"],
        "c5": ["running", "failed"],
    }
    assert run.steps("c1")[1]["result"]["content"] == "hello\nworld\n"
    assert "unknown tool 'nope'" in run.steps("c4")[1]["error"]
    assert "unknown argument 'lines'" in run.steps("c5")[1]["error"]
    probe = run.steps("c2")[1]["result"]
    assert probe["exit_code"] == 0
    assert "greeting=hi" in probe["stdout"]
    assert "ACTANA_RUN_ID=run-1" in probe["stdout"]  # the environment itself is passed on
    assert not any(secret in probe["stdout"] + probe["stderr"] for secret in SECRETS)
    # The event pipe is the runtime's only: no tool process holds a descriptor of it.
    assert "pipe:[" in probe["stdout"]
    assert f"pipe:[{run.stdout_inode}]" not in probe["stdout"]

    assert run.terminal == {
        "type": "result",
        "message": "All done.",
        "usage": {"input_tokens": 20, "output_tokens": 10, "model_calls": 2},
        "rounds": 2,
        "ts": run.terminal["ts"],
    }

    sent = [(r.method, r.path, r.headers["authorization"]) for r in api.requests]
    assert sent == [
        ("GET", "/sandbox/v1/env", f"Bearer {SETUP}"),
        ("GET", "/sandbox/v1/config", f"Bearer {RUN}"),
        ("POST", "/sandbox/v1/model", f"Bearer {SESSION}"),
        ("POST", "/sandbox/v1/model", f"Bearer {SESSION}"),
        ("POST", "/sandbox/v1/results", f"Bearer {UPLOAD}"),
    ]
    first, second = api.model_bodies()
    assert first["system"] == "sys prompt"
    assert first["max_tokens"] is None
    assert [(m["role"], m["text"]) for m in first["messages"]] == [("user", "the prompt")]
    assert [t["name"] for t in first["tools"]] == ALL_TOOLS
    assert all(t["parameters"]["additionalProperties"] is False for t in first["tools"])
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "tool", "tool", "tool"]
    tool_messages = second["messages"][2:]
    assert [m["tool_call_id"] for m in tool_messages] == ["c1", "c2", "c3", "c4", "c5"]
    assert [m["is_error"] for m in tool_messages] == [False, False, False, True, True]
    assert json.loads(tool_messages[0]["text"])["total_lines"] == 2

    (upload,) = api.uploads  # ONE request with every file
    assert [(f.field, f.filename, f.data) for f in upload] == [
        ("files", "in.txt", b"hello\nworld\n"),
        ("files", "out/report.md", b"# R\n"),
    ]
    results_request = api.requests[-1]
    assert int(results_request.headers["content-length"]) == len(results_request.body)
    assert results_request.headers["content-type"].startswith("multipart/form-data; boundary=")


def test_max_rounds_ends_the_run(workspace: Path, socket_dir: Path) -> None:
    asks = [[turn(calls=[(f"r{i}", "list_dir", {"path": "."})])] for i in (1, 2, 3)]
    api = SandboxApi(env={}, config=make_config(max_rounds=2), turns=asks)
    run = run_runtime(api, workspace, socket_dir)

    assert run.returncode == 1
    assert run.terminal["type"] == "error"
    assert run.terminal["code"] == "max_rounds"
    assert run.terminal["rounds"] == 2
    assert run.terminal["usage"]["model_calls"] == 2
    assert [s["status"] for s in run.steps("r1")] == ["running", "succeeded"]
    assert run.steps("r2") == []  # the last turn's tools are not run: nobody would see them
    assert run.phase("execution")["outcome"] == "error"
    assert run.phase("result_upload")["message"] == "result upload: no output files"
    assert [r.path for r in api.requests].count("/sandbox/v1/results") == 0


@pytest.mark.parametrize(
    ("gateway_code", "code"), [("upstream_unavailable", "model_error"), ("cancelled", "cancelled")]
)
def test_a_model_error_ends_the_run(
    workspace: Path, socket_dir: Path, gateway_code: str, code: str
) -> None:
    failing = [delta("par"), {"type": "error", "code": gateway_code, "message": "upstream: no"}]
    api = SandboxApi(env={}, config=make_config(), turns=[failing])
    run = run_runtime(api, workspace, socket_dir)

    assert run.returncode == 1
    assert (run.terminal["type"], run.terminal["code"]) == ("error", code)
    assert "upstream: no" in run.terminal["message"]
    assert run.terminal["rounds"] == 0
    assert [e["text"] for e in run.events if e["type"] == "delta"] == ["par"]


def test_a_failing_setup_script_fails_the_sandbox(workspace: Path, socket_dir: Path) -> None:
    api = SandboxApi(
        env={"setup_script": "echo about to fail; exit 3"}, config=make_config(), turns=[]
    )
    run = run_runtime(api, workspace, socket_dir)

    assert (run.terminal["type"], run.terminal["code"]) == ("error", "sandbox_failed")
    assert "exit code 3" in run.terminal["message"]
    assert [p["phase"] for p in run.phases()] == ["bootstrap"]
    assert run.phase("bootstrap")["outcome"] == "error"
    assert any(e.get("message") == "about to fail" for e in run.events)
    assert [r.path for r in api.requests] == ["/sandbox/v1/env"]  # OTP_RUN never spent


def test_a_passed_deadline_ends_the_run_as_timeout(workspace: Path, socket_dir: Path) -> None:
    (workspace / "assets" / "in.txt").write_text("x")
    api = SandboxApi(env={}, config=make_config(deadline_in_ms=-1000), turns=[[turn("late")]])
    run = run_runtime(api, workspace, socket_dir)

    assert (run.terminal["type"], run.terminal["code"]) == ("error", "timeout")
    assert run.phase("result_upload")["outcome"] == "skipped"
    assert [r.path for r in api.requests] == ["/sandbox/v1/env", "/sandbox/v1/config"]


def test_a_refused_token_fails_the_sandbox(workspace: Path, socket_dir: Path) -> None:
    api = SandboxApi(env={}, config=make_config(), turns=[])
    run = run_runtime(api, workspace, socket_dir, OTP_SETUP="otp-not-the-right-one")

    assert (run.terminal["type"], run.terminal["code"]) == ("error", "sandbox_failed")
    assert "401" in run.terminal["message"]


def test_the_channel_may_be_a_loopback_port(workspace: Path) -> None:
    api = SandboxApi(env={}, config=make_config(), turns=[[turn("over tcp")]])
    run = run_runtime(api, workspace, None)

    assert run.terminal["type"] == "result"
    assert run.terminal["message"] == "over tcp"


def test_a_missing_channel_is_reported_as_a_terminal_error(workspace: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "actana.runtime"],
        env={"PATH": os.environ["PATH"], "WORKSPACE_DIR": str(workspace)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    (line,) = proc.stdout.decode().splitlines()
    event = json.loads(line)
    assert (event["type"], event["code"]) == ("error", "sandbox_failed")
    assert "ACTANA_CHANNEL" in event["message"]
