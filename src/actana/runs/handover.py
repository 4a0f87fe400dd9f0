"""What the trusted side hands a run's sandbox: `/env` and `/config` payloads."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.crew import environments
from actana.db.models import Agent, Environment, ModelEndpoint, Run
from actana.exceptions import NotFoundError
from actana.protocol.payloads import (
    AgentSpec,
    ConfigPayload,
    EnvPayload,
    ModelSpec,
    RunLimits,
)
from actana.security.otp import issue_session_token

DEFAULT_TOOLS = [
    "read_file",
    "write_file",
    "edit_file",
    "list_dir",
    "glob",
    "grep",
    "bash",
    "python",
]
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
        tools=list(DEFAULT_TOOLS),
        limits=RunLimits(
            deadline_ms=int(run.deadline_at.timestamp() * 1000),
            tool_timeout_sec=context.settings.tool_timeout_sec,
            tool_output_bytes=context.settings.tool_output_bytes,
        ),
        session_token=token,
    )
