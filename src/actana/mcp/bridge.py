"""The MCP bridge: one upstream session per (run, server), shared by the run's calls.

A session is opened (and initialized) at a run's first call to a server and reused until the
run's channel stops (`close_run`, called by `actana.runs.channel.RunChannel.stop`). A session
whose upstream died is replaced at the next call; one whose server definition changed (new URL
or headers: a new `version`) too. Sessions opened through an app that has no run channel (the
main app also serves the sandbox API) are closed when their run's deadline has passed, at the
next use of that app's bridge, so nothing outlives its run for long.

The bridge lives on the FastAPI app that serves the sandbox API (`bridge_of`): an app is served
on one event loop, and a session's tasks belong to that loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi import FastAPI
from mcp import ClientSession
from mcp.types import CallToolResult, ListToolsResult, PaginatedRequestParams

from actana.mcp.results import MAX_TOOLS, call_result, tool_info
from actana.mcp.upstream import McpUpstreamError, UpstreamSession
from actana.protocol.payloads import McpCallResult, McpToolInfo, McpToolList

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_TOOL_PAGES = 16
CONNECT_TIMEOUT_SEC = 15.0
"""Connecting and initializing; further bounded by the time the run has left."""


@dataclass(frozen=True)
class BridgeTarget:
    """An `http` MCP server attached to a run's agent, as resolved for one bridge call."""

    run_id: str
    server_id: str
    name: str
    url: str
    version: str
    """Changes whenever the server's definition does (its `updated_at`)."""
    not_after: float
    """`time.monotonic()` past which the run is over: the session may be dropped."""
    load_headers: Callable[[], Awaitable[dict[str, str]]] = field(repr=False, compare=False)
    """Decrypts the server's headers; called only when a session is opened."""


@dataclass
class _Entry:
    session: UpstreamSession
    version: str
    not_after: float


def list_tools_page(cursor: str | None) -> Callable[[ClientSession], Awaitable[ListToolsResult]]:
    """A `tools/list` request for the page at `cursor` (the first page when None)."""

    async def send(session: ClientSession) -> ListToolsResult:
        params = PaginatedRequestParams(cursor=cursor) if cursor else None
        return await session.list_tools(params=params)

    return send


class McpBridge:
    """The open upstream sessions of the runs served by one app."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._opening: dict[tuple[str, str], asyncio.Lock] = {}

    async def list_tools(self, target: BridgeTarget, timeout: float) -> McpToolList:
        """All the server's tools (following pagination, up to `MAX_TOOLS`)."""
        started = time.monotonic()
        session = await self._session(target, timeout)
        tools: list[McpToolInfo] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            left = max(timeout - (time.monotonic() - started), 0.001)
            page = await self._request(target, session, list_tools_page(cursor), left)
            tools.extend(tool_info(t) for t in page.tools)
            cursor = page.nextCursor
            if not cursor or len(tools) >= MAX_TOOLS:
                break
        return McpToolList(tools=tools[:MAX_TOOLS])

    async def call_tool(
        self, target: BridgeTarget, tool: str, arguments: dict[str, object], timeout: float
    ) -> McpCallResult:
        """One `tools/call`, its result capped (see `actana.mcp.results`)."""
        started = time.monotonic()
        session = await self._session(target, timeout)
        left = max(timeout - (time.monotonic() - started), 0.001)

        async def send(s: ClientSession) -> CallToolResult:
            return await s.call_tool(tool, dict(arguments))

        return call_result(await self._request(target, session, send, left))

    async def close_run(self, run_id: str) -> None:
        """Close every session of `run_id` (its run is over)."""
        await self._close([key for key in self._entries if key[0] == run_id])
        for key in [key for key in self._opening if key[0] == run_id]:
            del self._opening[key]

    async def close_all(self) -> None:
        await self._close(list(self._entries))

    async def _request(
        self,
        target: BridgeTarget,
        session: UpstreamSession,
        send: Callable[[ClientSession], Awaitable[T]],
        timeout: float,
    ) -> T:
        started = time.monotonic()
        try:
            return await session.request(send, timeout)
        except McpUpstreamError as exc:
            if session.alive and exc.kind != "session_lost":
                raise
            # The session is gone (its transport failed, or the server forgot it): drop it.
            await self._close([(target.run_id, target.server_id)], only=session)
            if exc.kind != "session_lost":
                raise
        # The server never saw the request under a session it knows: one retry, on a new one.
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise McpUpstreamError(f"MCP server {target.name!r}: the time ran out", kind="timeout")
        fresh = await self._session(target, left)
        return await fresh.request(send, max(timeout - (time.monotonic() - started), 0.001))

    async def _session(self, target: BridgeTarget, timeout: float) -> UpstreamSession:
        await self._close_expired()
        key = (target.run_id, target.server_id)
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent first calls of a run open one session, not several
            entry = self._entries.get(key)
            if entry is not None and entry.session.alive and entry.version == target.version:
                return entry.session
            if entry is not None:
                await self._close([key])
            headers = await target.load_headers()
            label = f"MCP server {target.name!r}"
            session = UpstreamSession(target.url, headers, label)
            del headers  # the session's httpx client holds the only copy from now on
            opened = time.monotonic()
            await session.open(min(timeout, CONNECT_TIMEOUT_SEC))
            log.info(
                "run %s: MCP session to %s opened in %d ms",
                target.run_id,
                label,
                round((time.monotonic() - opened) * 1000),
            )
            self._entries[key] = _Entry(session, target.version, target.not_after)
            return session

    async def _close_expired(self) -> None:
        now = time.monotonic()
        expired = [key for key, e in self._entries.items() if e.not_after < now]
        await self._close(expired)
        for key in expired:
            self._opening.pop(key, None)

    async def _close(
        self, keys: list[tuple[str, str]], only: UpstreamSession | None = None
    ) -> None:
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or (only is not None and entry.session is not only):
                continue
            del self._entries[key]
            await entry.session.close()


def bridge_of(app: FastAPI) -> McpBridge:
    """The bridge of the app serving the sandbox API, made at first use."""
    bridge = getattr(app.state, "mcp_bridge", None)
    if not isinstance(bridge, McpBridge):
        bridge = McpBridge()
        app.state.mcp_bridge = bridge
    return bridge


async def close_run_sessions(app: FastAPI, run_id: str) -> None:
    """Close the MCP sessions a run opened through `app` (a no-op when it opened none)."""
    bridge = getattr(app.state, "mcp_bridge", None)
    if isinstance(bridge, McpBridge):
        await bridge.close_run(run_id)
