"""Agents: a system prompt, a model endpoint, an environment, skills, MCP servers, limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.crew.common import Name, StrictModel, ensure_name_free, get_owned, touch
from actana.db.models import (
    Agent,
    AgentMcpServer,
    AgentSkill,
    Base,
    Environment,
    McpServer,
    ModelEndpoint,
    Skill,
    new_id,
)
from actana.exceptions import InvalidInputError
from actana.protocol.tools import BUILTIN_TOOLS

SandboxFlavor = Literal["container", "native"]
BUDGET_FIELDS = ("max_model_calls", "max_input_tokens", "max_output_tokens")


def _check_tool_names(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = [name for name in value if name not in BUILTIN_TOOLS]
    if unknown:
        raise ValueError(
            f"unknown built-in tools {unknown}; the built-in tools are: {', '.join(BUILTIN_TOOLS)}"
        )
    if len(set(value)) != len(value):
        raise ValueError("a tool is listed twice")
    return value


ToolNames = Annotated[
    list[str] | None,
    Field(
        default=None,
        max_length=len(BUILTIN_TOOLS),
        description="Built-in tools the agent may use (null: the default set, see docs/tools.md);"
        " MCP tools come with the agent's MCP servers",
    ),
    AfterValidator(_check_tool_names),
]

MaxModelCalls = Annotated[
    int | None,
    Field(
        default=None,
        ge=1,
        le=100_000,
        description="Model calls per run (null: the deployment's max_model_calls_per_run)",
    ),
]
MaxInputTokens = Annotated[
    int | None,
    Field(
        default=None,
        ge=1,
        le=2_000_000_000,
        description="Input tokens per run (null: the deployment's max_input_tokens_per_run)",
    ),
]
MaxOutputTokens = Annotated[
    int | None,
    Field(
        default=None,
        ge=1,
        le=2_000_000_000,
        description="Output tokens per run (null: the deployment's max_output_tokens_per_run)",
    ),
]


class AgentCreate(StrictModel):
    name: Name
    system_prompt: str = Field(default="", max_length=100_000)
    model_endpoint_id: str
    environment_id: str | None = None
    max_rounds: int = Field(default=10, ge=1, le=500)
    skill_ids: list[str] = Field(default_factory=list, max_length=100)
    mcp_server_ids: list[str] = Field(default_factory=list, max_length=50)
    sandbox_flavor: SandboxFlavor = "container"
    timeout_sec: int | None = Field(
        default=None, ge=1, le=86_400, description="Lowers the deployment's execution limit"
    )
    max_model_calls: MaxModelCalls = None
    max_input_tokens: MaxInputTokens = None
    max_output_tokens: MaxOutputTokens = None
    tools: ToolNames = None


class AgentUpdate(StrictModel):
    """Fields to change; `environment_id`, `timeout_sec`, `tools` and the budgets may be set to
    null."""

    name: Name | None = None
    system_prompt: str | None = Field(default=None, max_length=100_000)
    model_endpoint_id: str | None = None
    environment_id: str | None = None
    max_rounds: int | None = Field(default=None, ge=1, le=500)
    skill_ids: list[str] | None = Field(default=None, max_length=100)
    mcp_server_ids: list[str] | None = Field(default=None, max_length=50)
    sandbox_flavor: SandboxFlavor | None = None
    timeout_sec: int | None = Field(default=None, ge=1, le=86_400)
    max_model_calls: MaxModelCalls = None
    max_input_tokens: MaxInputTokens = None
    max_output_tokens: MaxOutputTokens = None
    tools: ToolNames = None


class AgentPublic(BaseModel):
    id: str
    name: str
    system_prompt: str
    model_endpoint_id: str
    environment_id: str | None
    max_rounds: int
    skill_ids: list[str]
    mcp_server_ids: list[str]
    sandbox_flavor: str
    timeout_sec: int | None
    max_model_calls: int | None
    max_input_tokens: int | None
    max_output_tokens: int | None
    tools: list[str] | None
    created_at: datetime
    updated_at: datetime


def _check_ref(
    session: Session, model: type[Base], workspace_id: str, object_id: str, field: str, label: str
) -> None:
    row = session.get(model, object_id)
    if row is None or getattr(row, "workspace_id", None) != workspace_id:
        raise InvalidInputError(f"no {label} {object_id!r} in this workspace", field=field)


def _check_refs(
    session: Session, model: type[Base], workspace_id: str, ids: list[str], field: str, label: str
) -> None:
    seen: set[str] = set()
    for i, object_id in enumerate(ids):
        if object_id in seen:
            raise InvalidInputError(f"{label} {object_id!r} is listed twice", field=f"{field}.{i}")
        seen.add(object_id)
        _check_ref(session, model, workspace_id, object_id, f"{field}.{i}", label)


def to_public(_context: AppContext, _session: Session, row: Agent) -> AgentPublic:
    return AgentPublic(
        id=row.id,
        name=row.name,
        system_prompt=row.system_prompt,
        model_endpoint_id=row.model_endpoint_id,
        environment_id=row.environment_id,
        max_rounds=row.max_rounds,
        skill_ids=[link.skill_id for link in row.skill_links],
        mcp_server_ids=[link.mcp_server_id for link in row.mcp_links],
        sandbox_flavor=row.sandbox_flavor,
        timeout_sec=row.timeout_sec,
        max_model_calls=row.max_model_calls,
        max_input_tokens=row.max_input_tokens,
        max_output_tokens=row.max_output_tokens,
        tools=row.tools,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _link(row: Agent, skill_ids: list[str] | None, mcp_server_ids: list[str] | None) -> None:
    if skill_ids is not None:
        row.skill_links = [AgentSkill(skill_id=sid, position=i) for i, sid in enumerate(skill_ids)]
    if mcp_server_ids is not None:
        row.mcp_links = [
            AgentMcpServer(mcp_server_id=mid, position=i) for i, mid in enumerate(mcp_server_ids)
        ]


def create(
    _context: AppContext, session: Session, workspace_id: str, body: AgentCreate, _actor: str
) -> Agent:
    ensure_name_free(session, Agent, workspace_id, body.name, "agent")
    _check_ref(
        session,
        ModelEndpoint,
        workspace_id,
        body.model_endpoint_id,
        "model_endpoint_id",
        "model endpoint",
    )
    if body.environment_id is not None:
        _check_ref(
            session,
            Environment,
            workspace_id,
            body.environment_id,
            "environment_id",
            "environment",
        )
    _check_refs(session, Skill, workspace_id, body.skill_ids, "skill_ids", "skill")
    _check_refs(
        session, McpServer, workspace_id, body.mcp_server_ids, "mcp_server_ids", "MCP server"
    )
    row = Agent(
        id=new_id("ag"),
        workspace_id=workspace_id,
        name=body.name,
        system_prompt=body.system_prompt,
        model_endpoint_id=body.model_endpoint_id,
        environment_id=body.environment_id,
        max_rounds=body.max_rounds,
        sandbox_flavor=body.sandbox_flavor,
        timeout_sec=body.timeout_sec,
        max_model_calls=body.max_model_calls,
        max_input_tokens=body.max_input_tokens,
        max_output_tokens=body.max_output_tokens,
        tools=body.tools,
    )
    _link(row, body.skill_ids, body.mcp_server_ids)
    session.add(row)
    return row


def update(
    _context: AppContext,
    session: Session,
    workspace_id: str,
    agent_id: str,
    body: AgentUpdate,
    _actor: str,
) -> Agent:
    row = get_owned(session, Agent, workspace_id, agent_id, "agent")
    given = body.model_fields_set
    if body.name is not None:
        ensure_name_free(session, Agent, workspace_id, body.name, "agent", exclude_id=row.id)
        row.name = body.name
    if body.model_endpoint_id is not None:
        _check_ref(
            session,
            ModelEndpoint,
            workspace_id,
            body.model_endpoint_id,
            "model_endpoint_id",
            "model endpoint",
        )
        row.model_endpoint_id = body.model_endpoint_id
    if "environment_id" in given:
        if body.environment_id is not None:
            _check_ref(
                session,
                Environment,
                workspace_id,
                body.environment_id,
                "environment_id",
                "environment",
            )
        row.environment_id = body.environment_id
    if body.skill_ids is not None:
        _check_refs(session, Skill, workspace_id, body.skill_ids, "skill_ids", "skill")
    if body.mcp_server_ids is not None:
        _check_refs(
            session, McpServer, workspace_id, body.mcp_server_ids, "mcp_server_ids", "MCP server"
        )
    for field in ("system_prompt", "max_rounds", "sandbox_flavor"):
        if getattr(body, field) is not None:
            setattr(row, field, getattr(body, field))
    for field in ("timeout_sec", "tools", *BUDGET_FIELDS):
        if field in given:
            setattr(row, field, getattr(body, field))
    if body.skill_ids is not None or body.mcp_server_ids is not None:
        # Replacing link rows with the same keys in one flush would insert before deleting.
        _link(
            row,
            [] if body.skill_ids is not None else None,
            [] if body.mcp_server_ids is not None else None,
        )
        session.flush()
        _link(row, body.skill_ids, body.mcp_server_ids)
    touch(row)
    return row


def delete(_context: AppContext, session: Session, workspace_id: str, agent_id: str) -> None:
    session.delete(get_owned(session, Agent, workspace_id, agent_id, "agent"))
