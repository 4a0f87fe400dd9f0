"""`/sandbox/v1/mcp/{server}`: the bridge from a sandbox to the `http` MCP servers of its agent.

| call                          | auth                 | body / answer                   |
|-------------------------------|----------------------|---------------------------------|
| GET  /sandbox/v1/mcp/S/tools  | Bearer session token | -> McpToolList                  |
| POST /sandbox/v1/mcp/S/call   | Bearer session token | McpCallRequest -> McpCallResult |

The session token is checked as for `/sandbox/v1/model` (pinned to the run channel, the run
must be running). The sandbox names a server and a tool, nothing else: the URL and the headers
come from the server's definition on this side (the headers decrypted only to open the upstream
session), and no header of the sandbox's request is read except its token. Upstream failures
are a 502 whose message says what went wrong without any header value. Every call after the
token check is audited (`mcp.tools_listed`, `mcp.tool_called`: server, tool, outcome, duration;
never arguments or header values).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Header, Request
from pydantic import TypeAdapter, ValidationError

from actana.api.bodies import read_capped_body
from actana.api.deps import Context
from actana.api.routes.sandbox import _bearer, _channel_run
from actana.exceptions import ActanaError, InvalidInputError
from actana.mcp.bridge import bridge_of
from actana.mcp.targets import RunScope, check_run, find_server
from actana.mcp.upstream import McpUpstreamError
from actana.protocol.payloads import McpCallRequest
from actana.security.audit import record_audit

log = logging.getLogger(__name__)
router = APIRouter(prefix="/sandbox/v1/mcp", tags=["sandbox"], include_in_schema=False)
MAX_CALL_BODY_BYTES = 4 * 1024 * 1024
MAX_CALL_TIMEOUT_SEC = 300.0
"""A call is bounded by the run's tool timeout setting, this, and the time the run has left."""
_call_request = TypeAdapter(McpCallRequest)


def _timeout(context: Context, scope: RunScope) -> float:
    limit = min(float(context.settings.tool_timeout_sec), MAX_CALL_TIMEOUT_SEC)
    if scope.seconds_left <= 0:
        raise McpUpstreamError("the run's deadline has passed", kind="timeout")
    return min(limit, scope.seconds_left)


async def _audit(
    context: Context,
    scope: RunScope,
    action: str,
    server: str,
    started: float,
    outcome: str,
    tool: str | None = None,
) -> None:
    def write() -> None:
        with context.database.session() as session:
            record_audit(
                session,
                action,
                actor=f"run:{scope.run_id}",
                workspace_id=scope.workspace_id,
                target=scope.run_id,
                server=server[:64],
                tool=tool[:128] if tool is not None else None,
                outcome=outcome,
                duration_ms=round((time.monotonic() - started) * 1000),
            )

    await to_thread.run_sync(write)


def _outcome(exc: ActanaError) -> str:
    if isinstance(exc, McpUpstreamError):
        return exc.kind
    return exc.code


@router.get("/{server}/tools")
async def list_mcp_tools(
    server: str,
    request: Request,
    context: Context,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """The tools of MCP server `server` (by name) of the run's agent."""
    scope = await check_run(context, _bearer(authorization), _channel_run(request))
    started = time.monotonic()
    try:
        target = await find_server(context, scope, server)
        tools = await bridge_of(request.app).list_tools(target, _timeout(context, scope))
    except ActanaError as exc:
        await _audit(context, scope, "mcp.tools_listed", server, started, _outcome(exc))
        raise
    await _audit(context, scope, "mcp.tools_listed", server, started, "ok")
    return asdict(tools)


def _parse_call(body: bytes, run_id: str) -> McpCallRequest:
    try:
        return _call_request.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])[:200]  # names come from the sandbox
        if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            log.warning("run %s: MCP call refused: unknown field %r", run_id, field)
            raise InvalidInputError(
                f"{field}: unknown field; an MCP call is a tool name and its arguments, the "
                "server's address and credentials are not the sandbox's to choose",
                field=field,
            ) from None
        raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None


@router.post("/{server}/call")
async def call_mcp_tool(
    server: str,
    request: Request,
    context: Context,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Call one tool of MCP server `server` (by name) of the run's agent."""
    scope = await check_run(context, _bearer(authorization), _channel_run(request))
    body = await read_capped_body(request, MAX_CALL_BODY_BYTES)
    call = _parse_call(body, scope.run_id)
    started = time.monotonic()
    try:
        target = await find_server(context, scope, server)
        result = await bridge_of(request.app).call_tool(
            target, call.tool, call.arguments, _timeout(context, scope)
        )
    except ActanaError as exc:
        outcome = _outcome(exc)
        await _audit(context, scope, "mcp.tool_called", server, started, outcome, call.tool)
        raise
    outcome = "tool_error" if result.is_error else "ok"
    await _audit(context, scope, "mcp.tool_called", server, started, outcome, call.tool)
    return asdict(result)
