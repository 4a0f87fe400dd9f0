"""The run's MCP servers, from config to tools: the one entry point of the runtime is `start_mcp`.

During the `materialization` phase every attached server is started at once (stdio servers
inside the sandbox, http servers through the bridge), each given until a common startup timeout
to start, initialize and list its tools. A server that misses it, or fails, costs one `warn`
line naming it and the reason, and its tools are left out: the run goes on without them.

The others' tools become ordinary `Tool`s named `mcp__<server>__<tool>` (see `naming`) with the
server's own input schema, and a private unix socket is opened for the `mcp` shim, so that a
script run by `bash` can call them too (see `shim_server`). `McpTools.close()` stops it all.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actana.protocol.payloads import ConfigPayload, McpServerSpec
from actana.runtime.channel import Channel
from actana.runtime.emit import Deadline, Emitter, describe
from actana.runtime.mcp.bridge import BridgedServer
from actana.runtime.mcp.catalog import McpServer, ToolInfo
from actana.runtime.mcp.content import tool_result
from actana.runtime.mcp.naming import model_tool_name
from actana.runtime.tools.base import Invocation, Tool

STARTUP_TIMEOUT_SEC = 30.0


@dataclass(frozen=True)
class McpTool:
    """One offered MCP tool and where it really lives."""

    model_name: str
    server: McpServer
    info: ToolInfo

    def call(self, arguments: dict[str, Any], timeout: float, output_cap: int) -> dict[str, Any]:
        """Call the tool; return its result for the model (see `content.tool_result`).

        Raises:
            ToolError: the call failed, or the server reported an error.
        """
        return tool_result(self.server.call(self.info.name, arguments, timeout), output_cap)


@dataclass
class McpTools:
    """What `start_mcp` hands the runtime.

    Attributes:
        tools: the tools to give the model (one per usable MCP tool).
        env: environment variables for child processes (the shim's socket, PATH with the shim).
        by_server: the same tools by server name and real tool name (for the shim).
    """

    tools: list[Tool] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    by_server: dict[str, dict[str, McpTool]] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _stoppers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop the shim's socket and every server (stdio process groups are killed)."""
        while self._stoppers:  # every server told first: their exits overlap
            with contextlib.suppress(Exception):
                self._stoppers.pop()()
        while self._closers:
            with contextlib.suppress(Exception):  # closing the rest matters more
                self._closers.pop()()


def _describe_tool(server: str, info: ToolInfo) -> str:
    origin = f"(tool {info.name!r} of the MCP server {server!r})"
    return f"{info.description.strip()} {origin}" if info.description.strip() else origin


def _as_tool(entry: McpTool, timeout: float, output_cap: int) -> Tool:
    def function(invocation: Invocation) -> dict[str, Any]:
        return entry.call(invocation.args, invocation.timeout_sec, invocation.output_cap)

    return Tool(
        entry.model_name,
        _describe_tool(entry.server.name, entry.info),
        entry.info.input_schema,
        timeout,
        output_cap,
        function,
    )


def _servers(
    config: ConfigPayload, channel: Channel, workspace: str, emitter: Emitter
) -> tuple[list[McpServer], Callable[[], None] | None]:
    """The server objects (not started); the warn line for each that cannot even be tried."""
    servers: list[McpServer] = []
    stdio_specs: list[McpServerSpec] = []
    for spec in config.mcp_servers:
        if spec.transport == "http":
            servers.append(BridgedServer(spec.name, channel, config.session_token))
        elif spec.transport == "stdio" and spec.command:
            stdio_specs.append(spec)
        else:
            emitter.log("warn", f"MCP server {spec.name!r} left out: it has no command to run")
    if not stdio_specs:
        return servers, None
    if importlib.util.find_spec("mcp") is None:
        for spec in stdio_specs:
            emitter.log("warn", _no_sdk(spec.name, "no module named 'mcp'"))
        return servers, None
    # asyncio, then the SDK, only for runs with stdio servers. The processes first, the SDK's
    # import (~0.5 s) while they boot: see `stdio_process`.
    from actana.runtime.mcp.stdio_process import LoopThread, kill_spawned, spawn

    loop = LoopThread()
    spawned = [
        (spec, loop.submit(spawn(spec, {**os.environ, **spec.env}, workspace)))
        for spec in stdio_specs
    ]
    try:
        from actana.runtime.mcp.stdio import StdioServer
    except ImportError as exc:  # an SDK that is there but broken
        for spec, process in spawned:
            emitter.log("warn", _no_sdk(spec.name, describe(exc)))
            kill_spawned(loop, process)
        loop.stop()
        return servers, None
    servers += (StdioServer(spec, loop, process) for spec, process in spawned)
    return servers, loop.stop


def _no_sdk(server: str, why: str) -> str:
    return (
        f"MCP server {server!r} left out: the mcp SDK cannot be loaded in this sandbox ({why}); "
        "add 'mcp' to the sandbox image's packages"
    )


def start_mcp(
    config: ConfigPayload, channel: Channel, emitter: Emitter, deadline: Deadline, workspace: str
) -> McpTools:
    """Start the run's MCP servers and turn their tools into `Tool`s.

    Args:
        config: the run config (its `mcp_servers`, limits and session token).
        channel: the sandbox API client (for the bridge).
        emitter: where warn lines and the shim's step events go.
        deadline: the run's deadline (startup never waits past it).
        workspace: the workspace directory (a stdio server's working directory).

    Returns:
        The tools, the env for child processes and the closer; empty when no server is attached.
    """
    mcp = McpTools()
    if not config.mcp_servers:
        return mcp
    servers, stop_loop = _servers(config, channel, workspace, emitter)
    if stop_loop is not None:
        mcp._closers.append(stop_loop)
    started = {server.start(): server for server in servers}
    wait = max(0.0, min(STARTUP_TIMEOUT_SEC, deadline.remaining()))
    concurrent.futures.wait(started, timeout=wait)
    timeout, output_cap = float(config.limits.tool_timeout_sec), config.limits.tool_output_bytes
    offered: set[str] = set()
    for future, server in started.items():
        mcp._closers.append(server.close)
        mcp._stoppers.append(server.stop_soon)
        if not future.done():
            server.close()
            emitter.log(
                "warn",
                f"MCP server {server.name!r} left out: not ready within {wait:g} s. "
                f"{server.problem()}",
            )
            continue
        if future.exception() is not None:
            server.close()
            emitter.log("warn", f"MCP server {server.name!r} left out: {server.problem()}")
            continue
        entries = mcp.by_server.setdefault(server.name, {})
        for info in future.result():
            entry = McpTool(model_tool_name(server.name, info.name), server, info)
            if entry.model_name in offered:  # two servers' names that sanitise alike
                emitter.log(
                    "warn",
                    f"MCP tool {info.name!r} of {server.name!r} left out: "
                    f"another tool is already offered as {entry.model_name}",
                )
                continue
            offered.add(entry.model_name)
            entries[info.name] = entry
            mcp.tools.append(_as_tool(entry, timeout, output_cap))
    if mcp.by_server:
        from actana.runtime.mcp.shim_server import ShimServer

        shim = ShimServer(mcp.by_server, emitter, deadline, timeout, output_cap)
        mcp._closers.append(shim.close)
        mcp.env = shim.env()
    return mcp
