"""`/mcp-servers`: CRUD (header values are write-only), and `POST /{id}/discover`."""

from __future__ import annotations

from actana.api.deps import Context, UpstreamCaller
from actana.api.routes.crud import crud_router
from actana.crew import mcp_servers as service
from actana.db.models import McpServer
from actana.mcp.discover import DiscoverResult

router = crud_router(
    prefix="/mcp-servers",
    label="MCP server",
    model=McpServer,
    service=service,
    create_schema=service.McpServerCreate,
    update_schema=service.McpServerUpdate,
    public_schema=service.McpServerPublic,
)


@router.post(
    "/{item_id}/discover",
    response_model=DiscoverResult,
    summary="List the tools of an http MCP server",
)
async def discover_mcp_server(
    item_id: str, context: Context, caller: UpstreamCaller
) -> DiscoverResult:
    """Connect to the server with its stored headers, initialize, and list its tools (at most
    20 s), so that a wrong URL or credential is found at setup rather than during a run.

    **200** whenever the server is defined as `http`: the attempt was made and its verdict is
    the body. `{"ok": true, "tools": [{name, description, input_schema}], "server": {name,
    version}, "latency_ms"}` when the upstream answered; `{"ok": false, "error", "kind",
    "latency_ms"}` when it did not (`kind`: `unreachable`, `refused` for a 401/403, `timeout`,
    `http_error`, `server_error`, `protocol`); the error never holds a header value.

    **422** for a `stdio` server: it runs inside the sandbox, and its tools are listed when a
    run starts; starting its command here would run it outside any sandbox. Audited
    (`mcp_server.discovered`: outcome, tool count, latency).
    """
    return await service.discover(context, caller.workspace_id, item_id, caller.actor)
