"""MCP servers reached over streamable HTTP, through the bridge of the sandbox API.

The sandbox never sees such a server's URL or credentials: it asks the control plane, on the run
channel and with the run's session token, to list or call on its behalf
(`GET /sandbox/v1/mcp/{server}/tools`, `POST /sandbox/v1/mcp/{server}/call`), and the control
plane injects the stored headers. Standard library only, like the rest of the runtime.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from actana.protocol.payloads import McpCallRequest
from actana.runtime.channel import Channel, ChannelError
from actana.runtime.emit import describe
from actana.runtime.mcp.catalog import ToolInfo, parse_tools
from actana.runtime.tools.base import ToolError

BRIDGE_PATH = "/sandbox/v1/mcp"


def _detail(exc: ChannelError) -> str:
    """The control plane's own message when it sent one (`{"error": {"message": ...}}`, or
    `{"detail": ...}`), else the error."""
    try:
        body = json.loads(exc.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # the API's error envelope: {"error": {"code", "message"}}
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            if isinstance(body.get(key), str):
                return f"{body[key]} (HTTP {exc.status})"
    return str(exc)


class BridgedServer:
    """An `http` MCP server, used through the control plane's bridge."""

    def __init__(self, name: str, channel: Channel, session_token: str) -> None:
        """Prepare to reach server `name`; nothing is sent until `start`."""
        self.name = name
        self._channel = channel
        self._token = session_token
        self._base = f"{BRIDGE_PATH}/{quote(name, safe='')}"
        self._failure: str | None = None

    def start(self) -> concurrent.futures.Future[list[ToolInfo]]:
        """List the server's tools in a thread of its own (servers start in parallel)."""
        ready: concurrent.futures.Future[list[ToolInfo]] = concurrent.futures.Future()

        def list_tools() -> None:
            try:
                answer = self._channel.get_json(f"{self._base}/tools", self._token, timeout=60)
                raw = answer.get("tools")
                if not isinstance(raw, list):
                    raise ValueError("the bridge's answer has no 'tools' list")
                ready.set_result(parse_tools(raw)[0])
            except ChannelError as exc:
                self._failure = _detail(exc)
                ready.set_exception(exc)
            except Exception as exc:
                self._failure = describe(exc)
                ready.set_exception(exc)

        threading.Thread(target=list_tools, name=f"mcp-bridge-{self.name}", daemon=True).start()
        return ready

    def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Call `tool` through the bridge.

        Returns:
            The bridge's answer, `{"content": [...], "is_error": bool, "structured": ...}`.

        Raises:
            ToolError: the bridge refused (unknown server: 404) or the upstream call failed
                (502); the control plane's message is passed on.
        """
        try:
            return self._channel.post_json(
                f"{self._base}/call",
                self._token,
                asdict(McpCallRequest(tool=tool, arguments=arguments)),
                timeout=max(1.0, timeout),
            )
        except ChannelError as exc:
            if exc.status is None and "timed out" in str(exc):
                raise ToolError(
                    f"the MCP tool {tool!r} did not answer within {timeout:g} s"
                ) from None
            raise ToolError(f"the MCP server {self.name!r} failed: {_detail(exc)}") from None

    def problem(self) -> str:
        """Why the server could not be listed."""
        return self._failure or "the bridge did not answer"

    def stop_soon(self) -> None:
        """Nothing to stop (see `close`)."""

    def close(self) -> None:
        """Nothing to stop: the control plane holds the connection to the real server."""
