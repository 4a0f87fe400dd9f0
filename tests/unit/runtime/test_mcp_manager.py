"""`start_mcp` with real stdio servers (the reference `mcp-server-time`, and shells that
misbehave): tools offered, calls made, the shim served, failures reported once, and every
server's process group gone at the end."""

from __future__ import annotations

import importlib.abc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actana.protocol.payloads import AgentSpec, ConfigPayload, McpServerSpec, ModelSpec, RunLimits
from actana.runtime.channel import Channel
from actana.runtime.emit import Deadline, Emitter
from actana.runtime.mcp import manager
from actana.runtime.mcp.manager import McpTools, start_mcp
from actana.runtime.tools.base import Invocation, ToolError

TIME = McpServerSpec("time", "stdio", sys.executable, ["-m", "mcp_server_time"])


class Events:
    """An Emitter writing into a pipe, and the events read back."""

    def __init__(self) -> None:
        self._read, write = os.pipe()
        self.emitter = Emitter(write)
        os.set_blocking(self._read, False)
        self._buffer = b""

    def lines(self) -> list[dict]:
        try:
            while chunk := os.read(self._read, 65536):
                self._buffer += chunk
        except BlockingIOError:
            pass
        return [json.loads(line) for line in self._buffer.splitlines()]


def config(*servers: McpServerSpec) -> ConfigPayload:
    return ConfigPayload(
        run_id="run",
        prompt="p",
        agent=AgentSpec("a", "s"),
        model=ModelSpec("scripted", "m"),
        tools=[],
        limits=RunLimits(deadline_ms=int(time.time() * 1000) + 120_000, tool_timeout_sec=20),
        session_token="never-used",
        mcp_servers=list(servers),
    )


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def start(events: Events, tmp_path: Path) -> Iterator:
    started: list[McpTools] = []

    def start(*servers: McpServerSpec) -> McpTools:
        cfg = config(*servers)
        tools = start_mcp(
            cfg,
            Channel("http://127.0.0.1:9"),
            events.emitter,
            Deadline(cfg.limits.deadline_ms),
            str(tmp_path),
        )
        started.append(tools)
        return tools

    yield start
    for tools in started:
        tools.close()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_no_servers_costs_nothing(start, events):
    mcp = start()
    assert (mcp.tools, mcp.env) == ([], {})
    assert events.lines() == []


def test_tools_are_offered_called_and_shimmed(start, events, tmp_path):
    mcp = start(TIME)
    names = sorted(tool.name for tool in mcp.tools)
    assert names == ["mcp__time__convert_time", "mcp__time__get_current_time"]
    tool = next(t for t in mcp.tools if t.name == "mcp__time__get_current_time")
    assert tool.parameters["required"] == ["timezone"]
    assert "of the MCP server 'time'" in tool.description
    result = tool.function(Invocation(str(tmp_path), {"timezone": "Asia/Tokyo"}, 10, 65536))
    assert json.loads(result["text"])["timezone"] == "Asia/Tokyo"
    with pytest.raises(ToolError, match="Invalid timezone"):
        tool.function(Invocation(str(tmp_path), {"timezone": "Nowhere/Land"}, 10, 65536))

    shell = subprocess.run(
        ["sh", "-c", "mcp call time.get_current_time timezone=UTC && mcp list time"],
        env={**os.environ, **mcp.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    assert '"timezone": "UTC"' in shell.stdout
    assert "time.convert_time source_timezone=… time=… target_timezone=…" in shell.stdout
    steps = [line for line in events.lines() if line["type"] == "step"]
    assert [(s["id"], s["status"]) for s in steps] == [
        ("shim-1", "running"),
        ("shim-1", "succeeded"),
    ]


def test_a_shim_call_of_an_unknown_tool_is_refused_without_a_step(start, events):
    mcp = start(TIME)
    shell = subprocess.run(
        ["mcp", "call", "time.sundial"], env={**os.environ, **mcp.env}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert shell.returncode == 2
    assert "has no tool 'sundial'; it has: get_current_time, convert_time" in shell.stderr
    assert [line for line in events.lines() if line["type"] == "step"] == []


def test_a_failing_server_is_one_warn_line_with_its_stderr(start, events):
    crash = McpServerSpec("crash", "stdio", "sh", ["-c", "echo 'boom: no config' >&2; exit 3"])
    mcp = start(crash, TIME)
    assert {t.name.split("__")[1] for t in mcp.tools} == {"time"}
    warns = [line for line in events.lines() if line["type"] == "log"]
    assert len(warns) == 1
    assert warns[0]["level"] == "warn"
    assert "MCP server 'crash' left out" in warns[0]["message"]
    assert "boom: no config" in warns[0]["message"]


def test_a_server_that_never_answers_is_cut_at_the_startup_timeout(
    start, events, monkeypatch, tmp_path
):
    monkeypatch.setattr(manager, "STARTUP_TIMEOUT_SEC", 1.5)
    pidfile = tmp_path / "mute.pid"
    script = f"echo $$ > {pidfile}; echo waiting >&2; exec sleep 300"
    began = time.monotonic()
    mcp = start(McpServerSpec("mute", "stdio", "sh", ["-c", script]))
    assert time.monotonic() - began < 10
    assert mcp.tools == []
    (warn,) = [line for line in events.lines() if line["type"] == "log"]
    assert "MCP server 'mute' left out: not ready within 1.5 s" in warn["message"]
    assert "waiting" in warn["message"]
    assert not alive(int(pidfile.read_text())), "the server outlived its startup timeout"


def test_closing_kills_the_servers_whole_process_group(start, tmp_path):
    pidfile = tmp_path / "background.pid"
    spec = McpServerSpec(
        "time",
        "stdio",
        "sh",
        ["-c", f'sleep 300 & echo $! > {pidfile}; exec "$0" -m mcp_server_time', sys.executable],
    )
    mcp = start(spec)
    assert mcp.tools
    background = int(pidfile.read_text())
    assert alive(background)
    mcp.close()
    deadline = time.monotonic() + 5
    while alive(background) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(background), "a process the server left in its group survived close()"


def test_a_command_that_cannot_be_run_is_one_warn_line_naming_it(start, events):
    missing = McpServerSpec("ghost", "stdio", "/no/such/mcp-server", [])
    mcp = start(missing, TIME)
    assert {t.name.split("__")[1] for t in mcp.tools} == {"time"}
    (warn,) = [line for line in events.lines() if line["type"] == "log"]
    assert "MCP server 'ghost' left out" in warn["message"]
    assert "/no/such/mcp-server" in warn["message"]


def test_a_server_closed_before_its_session_began_is_killed_too(tmp_path):
    # The process is spawned first and the session attached later (stdio_process): a server
    # closed in between must not be left running with nobody holding its pid.
    from actana.runtime.mcp.stdio import StdioServer
    from actana.runtime.mcp.stdio_process import LoopThread, spawn

    pidfile = tmp_path / "early.pid"
    spec = McpServerSpec("early", "stdio", "sh", ["-c", f"echo $$ > {pidfile}; exec sleep 300"])
    loop = LoopThread()
    try:
        spawned = loop.submit(spawn(spec, dict(os.environ), str(tmp_path)))
        pid = spawned.result(10).pid
        server = StdioServer(spec, loop, spawned)
        server.close()  # never started: no task, so the group is killed from the spawn's pid
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(pid), "a spawned server outlived close() before its session"
    finally:
        loop.stop()


def test_closing_lets_a_server_exit_on_its_own_first(start, tmp_path):
    # The MCP stdio shutdown: stdin closed, a grace to exit, only then the kill. The wrapping
    # shell writes the server's exit status once the server has exited; a kill takes the shell
    # down with it (same process group), so no file, or another status, means no grace.
    status = tmp_path / "status"
    spec = McpServerSpec(
        "time",
        "stdio",
        "sh",
        ["-c", f'"$0" -m mcp_server_time; echo "exit $?" > {status}', sys.executable],
    )
    mcp = start(spec, McpServerSpec("other", "stdio", sys.executable, ["-m", "mcp_server_time"]))
    assert len(mcp.tools) == 4
    mcp.close()
    assert status.read_text() == "exit 0\n"


def test_an_sdk_that_fails_to_import_costs_a_warn_line_and_kills_the_spawned_servers(
    start, events, monkeypatch
):
    # The SDK is found but breaks on import (a damaged install): a finder that takes a while,
    # as the real import does, then raises. The process is spawned by then (it boots while the
    # SDK loads) and must not be left running. The shell stays in front of its sleep, so its
    # command line (the marker as $0) names it while it lives.
    marker = f"orphan-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.delitem(sys.modules, "actana.runtime.mcp.stdio", raising=False)
    monkeypatch.setattr(sys, "meta_path", [BrokenSdk(), *sys.meta_path])
    mcp = start(McpServerSpec("orphan", "stdio", "sh", ["-c", "sleep 300; :", marker]))
    assert mcp.tools == []
    (warn,) = [line for line in events.lines() if line["type"] == "log"]
    assert "MCP server 'orphan' left out: the mcp SDK cannot be loaded" in warn["message"]
    assert marked(marker) == [], "a server spawned before the SDK failed to load kept running"


class BrokenSdk(importlib.abc.MetaPathFinder):
    """Fails the import of the SDK-backed module after half a second (the real one's time)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "actana.runtime.mcp.stdio":
            time.sleep(0.5)
            raise ImportError("mcp is damaged")


def marked(marker: str) -> list[int]:
    """Live processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if alive(pid)]
