"""Which MCP server a bridge call may reach: one attached to the calling run's agent, by name.

The run is the one the session token belongs to (pinned to the run channel it came in on), and
it must be running. The server must be linked to that run's agent, in the run's workspace, with
transport `http`; anything else is a 404 whose message says which of these failed, and names
only what the sandbox itself sent. Header values are decrypted later, and only when a session
is opened (`BridgeTarget.load_headers`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from anyio import to_thread
from sqlalchemy import select

from actana.api.context import AppContext
from actana.crew import mcp_servers
from actana.db.models import Agent, AgentMcpServer, McpServer, Run, utcnow
from actana.exceptions import AuthenticationError, NotFoundError
from actana.mcp.bridge import BridgeTarget
from actana.security import otp

# The same 401 message as every other sandbox call (not a secret).
INVALID_TOKEN = "invalid, expired or already used token"  # noqa: S105


@dataclass(frozen=True)
class RunScope:
    """The run a bridge call belongs to, for auditing and for bounding its time."""

    run_id: str
    workspace_id: str
    seconds_left: float


def _check_run(context: AppContext, token: str, channel_run: str | None) -> RunScope:
    with context.database.session() as session:
        run_id = otp.check_session_token(session, token, run_id=channel_run)
        run = session.get(Run, run_id) if run_id else None
        if run is None or run.status != "running" or run.deadline_at is None:
            raise AuthenticationError(INVALID_TOKEN)
        deadline = run.deadline_at
        if deadline.tzinfo is None:  # SQLite hands back naive UTC
            deadline = deadline.replace(tzinfo=utcnow().tzinfo)
        left = (deadline - utcnow()).total_seconds()
        return RunScope(run.id, run.workspace_id, left)


async def check_run(context: AppContext, token: str, channel_run: str | None) -> RunScope:
    """The running run `token` is the session token of (on `channel_run`'s channel, if any).

    Raises:
        AuthenticationError: the same 401 as every other sandbox call, whatever went wrong.
    """
    return await to_thread.run_sync(_check_run, context, token, channel_run)


def _find_server(context: AppContext, scope: RunScope, name: str) -> BridgeTarget:
    shown = repr(name[:64])
    with context.database.session() as session:
        run = session.get(Run, scope.run_id)
        agent = session.get(Agent, run.agent_id) if run else None
        if agent is None or agent.workspace_id != scope.workspace_id:
            raise NotFoundError("the agent of this run no longer exists")
        row = session.scalar(
            select(McpServer)
            .join(AgentMcpServer, AgentMcpServer.mcp_server_id == McpServer.id)
            .where(
                AgentMcpServer.agent_id == agent.id,
                McpServer.workspace_id == scope.workspace_id,
                McpServer.name == name,
            )
        )
        if row is None:
            raise NotFoundError(f"no MCP server named {shown} is attached to this run's agent")
        if row.transport != "http" or not row.url:
            raise NotFoundError(
                f"MCP server {shown} is a stdio server: it runs inside the sandbox, not through "
                "the bridge"
            )
        server_id, header_names = row.id, list(row.header_names)
        target_url, version = row.url, row.updated_at.isoformat()

    def load() -> dict[str, str]:
        with context.database.session() as session:
            headers = {}
            for header in header_names:
                value = context.secrets.get(
                    session, mcp_servers.OWNER_KIND, server_id, f"header:{header}"
                )
                if value is not None:
                    headers[header] = value
            return headers

    async def load_headers() -> dict[str, str]:
        return await to_thread.run_sync(load)

    return BridgeTarget(
        run_id=scope.run_id,
        server_id=server_id,
        name=name,
        url=target_url,
        version=version,
        not_after=time.monotonic() + max(scope.seconds_left, 0) + 30,
        load_headers=load_headers,
    )


async def find_server(context: AppContext, scope: RunScope, name: str) -> BridgeTarget:
    """The `http` MCP server called `name` attached to the run's agent.

    Raises:
        NotFoundError: no such server on the agent, or it is a stdio server.
    """
    return await to_thread.run_sync(_find_server, context, scope, name)
