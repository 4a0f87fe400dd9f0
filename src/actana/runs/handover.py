"""What the trusted side hands a run's sandbox: `/env` and `/config` payloads."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.crew import environments
from actana.db.models import Agent, Environment, McpServer, ModelEndpoint, Run
from actana.exceptions import NotFoundError
from actana.protocol.payloads import (
    AgentSpec,
    ConfigPayload,
    EnvPayload,
    McpServerSpec,
    ModelSpec,
    NetworkSpec,
    RunLimits,
)
from actana.protocol.tools import BUILTIN_TOOLS, DEFAULT_TOOLS
from actana.runs.skills import skill_specs
from actana.security.otp import issue_session_token

SESSION_GRACE = timedelta(seconds=30)


def _agent(session: Session, run: Run) -> Agent:
    agent = session.get(Agent, run.agent_id)
    if agent is None or agent.workspace_id != run.workspace_id:
        raise NotFoundError(f"the agent of run {run.id} no longer exists")
    return agent


def build_env(context: AppContext, session: Session, run: Run) -> EnvPayload:
    """The environment's variables (secret ones decrypted for this one hand-over) and script."""
    agent = _agent(session, run)
    deadline_ms = int(run.deadline_at.timestamp() * 1000) if run.deadline_at else None
    env = session.get(Environment, agent.environment_id) if agent.environment_id else None
    if env is None:
        return EnvPayload(deadline_ms=deadline_ms)
    variables: dict[str, str] = {}
    for var in env.variables:
        if var["secret"]:
            value = context.secrets.get(
                session, environments.OWNER_KIND, env.id, f"var:{var['name']}"
            )
            if value is not None:
                variables[var["name"]] = value
        else:
            variables[var["name"]] = var.get("value") or ""
    return EnvPayload(variables=variables, setup_script=env.setup_script, deadline_ms=deadline_ms)


def _tools(agent: Agent) -> list[str]:
    """The agent's built-in tools, in catalogue order; names no longer known are dropped."""
    enabled = set(DEFAULT_TOOLS if agent.tools is None else agent.tools)
    return [name for name in BUILTIN_TOOLS if name in enabled]


def _mcp_servers(session: Session, agent: Agent) -> list[McpServerSpec]:
    """The agent's MCP servers. An http server is only named: its URL and (encrypted) headers
    stay on this side, behind the bridge."""
    specs = []
    for link in agent.mcp_links:
        server = session.get(McpServer, link.mcp_server_id)
        if server is None or server.workspace_id != agent.workspace_id:
            continue
        if server.transport == "stdio":
            specs.append(
                McpServerSpec(
                    name=server.name,
                    transport="stdio",
                    command=server.command,
                    args=list(server.args),
                    env=dict(server.env),
                )
            )
        else:
            specs.append(McpServerSpec(name=server.name, transport="http"))
    return specs


def network_spec(session: Session, agent: Agent) -> NetworkSpec:
    """The network policy of the agent's environment (`none` without one)."""
    env = session.get(Environment, agent.environment_id) if agent.environment_id else None
    if env is None or env.network_policy not in ("allowlist", "open"):
        return NetworkSpec()
    if env.network_policy == "open":
        return NetworkSpec(policy="open")
    return NetworkSpec(policy="allowlist", allowed_domains=list(env.allowed_domains))


def build_config(context: AppContext, session: Session, run: Run) -> ConfigPayload:
    """The agent definition and limits, plus a fresh session token for model calls."""
    agent = _agent(session, run)
    endpoint = session.get(ModelEndpoint, run.model_endpoint_id or agent.model_endpoint_id)
    if endpoint is None:
        raise NotFoundError(f"the model endpoint of agent {agent.name} no longer exists")
    assert run.deadline_at is not None  # set when the sandbox started, before any redemption
    token = issue_session_token(session, run.id, not_after=run.deadline_at + SESSION_GRACE)
    return ConfigPayload(
        run_id=run.id,
        prompt=run.prompt,
        agent=AgentSpec(
            name=agent.name, system_prompt=agent.system_prompt, max_rounds=agent.max_rounds
        ),
        model=ModelSpec(provider=endpoint.provider, model=endpoint.model),
        tools=_tools(agent),
        limits=RunLimits(
            deadline_ms=int(run.deadline_at.timestamp() * 1000),
            tool_timeout_sec=context.settings.tool_timeout_sec,
            tool_output_bytes=context.settings.tool_output_bytes,
        ),
        session_token=token,
        skills=skill_specs(session, agent),
        mcp_servers=_mcp_servers(session, agent),
        network=network_spec(session, agent),
    )
