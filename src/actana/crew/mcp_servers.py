"""MCP servers: `stdio` (runs inside the sandbox) or `http` (bridged, headers encrypted);
CRUD, and discovering an http server's tools."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from anyio import to_thread
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.crew.common import StrictModel, check_http_url, ensure_name_free, get_owned, touch
from actana.db.models import AgentMcpServer, McpServer, new_id
from actana.exceptions import ConflictError, InvalidInputError
from actana.mcp.discover import DiscoverResult, discover_tools
from actana.security.audit import record_audit

OWNER_KIND = "mcp_server"
Transport = Literal["stdio", "http"]
# Tools are offered to models as `mcp__<server>__<tool>`, and provider tool names allow only
# [A-Za-z0-9_-]: so no dots here, and no double underscore that would blur the separator.
ServerName = str
_SERVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]|_(?!_)){0,31}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "upgrade"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class McpServerCreate(StrictModel):
    name: ServerName = Field(max_length=32)
    transport: Transport
    command: str | None = Field(default=None, max_length=1000)
    args: list[str] = Field(default_factory=list, max_length=100)
    env: dict[str, str] = Field(default_factory=dict, max_length=100)
    url: str | None = Field(default=None, max_length=2000)
    headers: dict[str, str] = Field(default_factory=dict, max_length=50, description="Write-only")


class McpServerUpdate(StrictModel):
    """Fields to change. `headers` replaces the set; a header whose value is null keeps its
    stored value."""

    name: ServerName | None = Field(default=None, max_length=32)
    transport: Transport | None = None
    command: str | None = Field(default=None, max_length=1000)
    args: list[str] | None = Field(default=None, max_length=100)
    env: dict[str, str] | None = Field(default=None, max_length=100)
    url: str | None = Field(default=None, max_length=2000)
    headers: dict[str, str | None] | None = Field(default=None, max_length=50)


class McpServerPublic(BaseModel):
    id: str
    name: str
    transport: str
    command: str | None
    args: list[str]
    env: dict[str, str]
    url: str | None
    headers_set: list[str] = Field(description="Names of the headers whose values are stored")
    created_at: datetime
    updated_at: datetime


def _check_name(name: str) -> None:
    if not _SERVER_NAME.match(name):
        raise InvalidInputError(
            "an MCP server name is letters, digits, '-' and single '_' (max 32), so that tool "
            "names `mcp__<server>__<tool>` stay unambiguous",
            field="name",
        )


def _validate(row: McpServer, header_names: list[str]) -> None:
    _check_name(row.name)
    if row.transport == "stdio":
        if not row.command:
            raise InvalidInputError("a stdio MCP server needs a command", field="command")
        if row.url or header_names:
            raise InvalidInputError("url and headers are for http MCP servers", field="url")
        for key in row.env:
            if not _ENV_NAME.match(key):
                raise InvalidInputError(f"{key!r} is not a variable name", field=f"env.{key}")
        return
    if not row.url:
        raise InvalidInputError("an http MCP server needs a url", field="url")
    check_http_url(row.url, "url")
    if row.command or row.args or row.env:
        raise InvalidInputError("command, args and env are for stdio MCP servers", field="command")
    for name in header_names:
        if not _HEADER_NAME.match(name) or name.lower() in _FORBIDDEN_HEADERS:
            raise InvalidInputError(f"{name!r} cannot be set as a header", field=f"headers.{name}")


def _put_header(
    context: AppContext, session: Session, row: McpServer, name: str, value: str, actor: str
) -> None:
    context.secrets.put(
        session,
        workspace_id=row.workspace_id,
        owner_kind=OWNER_KIND,
        owner_id=row.id,
        name=f"header:{name}",
        value=value,
        actor=actor,
    )


def to_public(context: AppContext, session: Session, row: McpServer) -> McpServerPublic:
    stored = context.secrets.names(session, OWNER_KIND, row.id)
    return McpServerPublic(
        id=row.id,
        name=row.name,
        transport=row.transport,
        command=row.command,
        args=list(row.args),
        env=dict(row.env),
        url=row.url,
        headers_set=[n for n in row.header_names if f"header:{n}" in stored],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create(
    context: AppContext, session: Session, workspace_id: str, body: McpServerCreate, actor: str
) -> McpServer:
    _check_name(body.name)
    ensure_name_free(session, McpServer, workspace_id, body.name, "MCP server")
    row = McpServer(
        id=new_id("mcp"),
        workspace_id=workspace_id,
        name=body.name,
        transport=body.transport,
        command=body.command,
        args=body.args,
        env=body.env,
        url=body.url,
        header_names=list(body.headers),
    )
    _validate(row, list(body.headers))
    session.add(row)
    session.flush()
    for name, value in body.headers.items():
        _put_header(context, session, row, name, value, actor)
    return row


def update(
    context: AppContext,
    session: Session,
    workspace_id: str,
    server_id: str,
    body: McpServerUpdate,
    actor: str,
) -> McpServer:
    row = get_owned(session, McpServer, workspace_id, server_id, "MCP server")
    given = body.model_fields_set
    if body.name is not None:
        _check_name(body.name)
        ensure_name_free(
            session, McpServer, workspace_id, body.name, "MCP server", exclude_id=row.id
        )
        row.name = body.name
    if body.transport is not None:
        row.transport = body.transport
    for field in ("command", "url"):
        if field in given:
            setattr(row, field, getattr(body, field))
    if body.args is not None:
        row.args = body.args
    if body.env is not None:
        row.env = body.env
    headers = body.headers
    names = list(headers) if headers is not None else list(row.header_names)
    _validate(row, names)
    if headers is not None:
        stored = context.secrets.names(session, OWNER_KIND, row.id)
        for name, value in headers.items():
            if value is None and f"header:{name}" not in stored:
                raise InvalidInputError(f"header {name} needs a value", field=f"headers.{name}")
            if value is not None:
                _put_header(context, session, row, name, value, actor)
        for stale in stored - {f"header:{n}" for n in names}:
            context.secrets.delete(session, OWNER_KIND, row.id, stale)
        row.header_names = names
    touch(row)
    return row


def delete(context: AppContext, session: Session, workspace_id: str, server_id: str) -> None:
    row = get_owned(session, McpServer, workspace_id, server_id, "MCP server")
    if session.scalar(select(AgentMcpServer).where(AgentMcpServer.mcp_server_id == row.id)):
        raise ConflictError(f"MCP server {row.name!r} is attached to an agent; detach it first")
    context.secrets.delete(session, OWNER_KIND, row.id)
    session.delete(row)


# --- Discovering a server's tools ------------------------------------------------------------

STDIO_NOT_DISCOVERABLE = (
    "stdio servers run inside the sandbox; their tools are listed when a run starts "
    "(starting the command here would run it outside any sandbox)"
)


def _load_for_discover(
    context: AppContext, workspace_id: str, server_id: str
) -> tuple[str, str, dict[str, str]]:
    with context.database.session() as session:
        row = get_owned(session, McpServer, workspace_id, server_id, "MCP server")
        if row.transport != "http" or not row.url:
            raise InvalidInputError(STDIO_NOT_DISCOVERABLE, field="transport")
        headers = {}
        for name in row.header_names:
            value = context.secrets.get(session, OWNER_KIND, row.id, f"header:{name}")
            if value is not None:
                headers[name] = value
        return row.name, row.url, headers


async def discover(
    context: AppContext, workspace_id: str, server_id: str, actor: str
) -> DiscoverResult:
    """List the tools of an http MCP server, connecting with its stored headers.

    Upstream failures are the result (`ok` false), not exceptions. Audited
    (`mcp_server.discovered`: outcome, tool count, latency; never a header value).

    Raises:
        NotFoundError: no such server in this workspace.
        InvalidInputError: a stdio server (see `STDIO_NOT_DISCOVERABLE`).
    """
    name, url, headers = await to_thread.run_sync(
        _load_for_discover, context, workspace_id, server_id
    )
    result = await discover_tools(url, headers, f"MCP server {name!r}")
    headers = {}

    def audit() -> None:
        with context.database.session() as session:
            record_audit(
                session,
                "mcp_server.discovered",
                actor=actor,
                workspace_id=workspace_id,
                target=server_id,
                ok=result.ok,
                kind=result.kind,
                tools=len(result.tools),
                latency_ms=result.latency_ms,
            )

    await to_thread.run_sync(audit)
    return result
