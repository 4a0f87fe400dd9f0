"""`/mcp-servers`: CRUD; header values are write-only."""

from __future__ import annotations

from actana.api.routes.crud import crud_router
from actana.crew import mcp_servers as service
from actana.db.models import McpServer

router = crud_router(
    prefix="/mcp-servers",
    label="MCP server",
    model=McpServer,
    service=service,
    create_schema=service.McpServerCreate,
    update_schema=service.McpServerUpdate,
    public_schema=service.McpServerPublic,
)
