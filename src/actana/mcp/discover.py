"""List an `http` MCP server's tools at setup time, with its stored (decrypted) headers.

One short-lived session: connect, initialize, list the tools, close. The verdict is data
(`ok` true or false with an `error`), like the model endpoint test: a wrong URL or header is
found when the server is defined rather than at a run's first call.

`stdio` servers are refused: they run inside the sandbox, where their command and the tools
they bring are at home. Starting one here would run a workspace-chosen command on the control
plane, outside any sandbox; their tools are listed when a run starts instead.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from actana.mcp.bridge import MAX_TOOL_PAGES, list_tools_page
from actana.mcp.results import MAX_TOOLS, tool_info
from actana.mcp.upstream import McpUpstreamError, UpstreamSession

DISCOVER_TIMEOUT_SEC = 20.0
"""Connecting, initializing and listing, all together."""


class DiscoveredTool(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]


class DiscoveredServer(BaseModel):
    name: str
    version: str


class DiscoverResult(BaseModel):
    """`ok` true: the server answered (`tools`, `server`, `latency_ms`). `ok` false: `error`
    says what went wrong (never with a header value) and `kind` which failure it was
    (`unreachable`, `refused`, `timeout`, `http_error`, `server_error`, `protocol`)."""

    ok: bool
    latency_ms: int
    tools: list[DiscoveredTool] = []
    server: DiscoveredServer | None = None
    error: str | None = None
    kind: str | None = None


async def discover_tools(
    url: str, headers: dict[str, str], label: str, timeout: float = DISCOVER_TIMEOUT_SEC
) -> DiscoverResult:
    """Connect to `url` with `headers` and list its tools; upstream failures are the result."""
    started = time.monotonic()
    session = UpstreamSession(url, headers, label)
    headers = {}
    tools: list[DiscoveredTool] = []
    try:
        await session.open(timeout)
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            left = max(timeout - (time.monotonic() - started), 0.001)
            page = await session.request(list_tools_page(cursor), left)
            tools += [DiscoveredTool(**vars(tool_info(t))) for t in page.tools]
            cursor = page.nextCursor
            if not cursor or len(tools) >= MAX_TOOLS:
                break
    except McpUpstreamError as exc:
        return DiscoverResult(ok=False, latency_ms=_ms(started), error=exc.message, kind=exc.kind)
    finally:
        await session.close()
    info = session.server_info
    server = DiscoveredServer(name=info.name, version=info.version) if info else None
    return DiscoverResult(ok=True, latency_ms=_ms(started), tools=tools[:MAX_TOOLS], server=server)


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
