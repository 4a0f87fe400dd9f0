"""Agents pages: list, create, edit, delete.

An agent ties the rest of the crew together, so its form offers the workspace's endpoints and
environments as selects and its skills and MCP servers as ordered checkbox groups. The form is
read into the API's `AgentCreate`/`AgentUpdate` bodies and saved by `actana.crew.agents`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from actana.crew import agents as service
from actana.db.models import Agent, Environment, McpServer, ModelEndpoint, Skill
from actana.protocol.tools import BUILTIN_TOOLS
from actana.web.crew_common import options
from actana.web.crew_crud import CrewPages, Values, add_crew_routes
from actana.web.crew_forms import FormInvalid, chosen, text
from actana.web.session import WebSession

router = APIRouter()

FIELDS = frozenset(
    {
        "name",
        "system_prompt",
        "model_endpoint_id",
        "environment_id",
        "max_rounds",
        "skill_ids",
        "mcp_server_ids",
        "sandbox_flavor",
        "timeout_sec",
        "tools",
        *service.BUDGET_FIELDS,
    }
)
NUMBERS = ("max_rounds", "timeout_sec", *service.BUDGET_FIELDS)


def _values_from_form(form: FormData) -> dict[str, Any]:
    """What the user typed, to fill the form again when it comes back with errors."""
    values: dict[str, Any] = {
        name: text(form, name) for name in ("name", "model_endpoint_id", "environment_id")
    }
    values["system_prompt"] = text(form, "system_prompt", strip=False)
    values["sandbox_flavor"] = text(form, "sandbox_flavor")
    values.update({name: text(form, name) for name in NUMBERS})
    values["skill_ids"] = chosen(form, "skill_ids")
    values["mcp_server_ids"] = chosen(form, "mcp_server_ids")
    values["tools_mode"] = "custom" if text(form, "tools_mode") == "custom" else "default"
    values["tools"] = chosen(form, "tools")
    return values


def _values_from_agent(agent: service.AgentPublic) -> dict[str, Any]:
    values: dict[str, Any] = agent.model_dump()
    for name in NUMBERS:
        values[name] = "" if values[name] is None else str(values[name])
    values["environment_id"] = agent.environment_id or ""
    values["tools_mode"] = "default" if agent.tools is None else "custom"
    values["tools"] = agent.tools or []
    return values


def _body(values: dict[str, Any]) -> dict[str, Any]:
    """The JSON body an API client would send for these form values."""
    if not values["model_endpoint_id"]:
        raise FormInvalid("model_endpoint_id", "choose the model endpoint the agent talks to")
    body: dict[str, Any] = {
        "name": values["name"],
        "system_prompt": values["system_prompt"],
        "model_endpoint_id": values["model_endpoint_id"],
        "environment_id": values["environment_id"] or None,
        "skill_ids": values["skill_ids"],
        "mcp_server_ids": values["mcp_server_ids"],
        "sandbox_flavor": values["sandbox_flavor"],
        # "Default set" is null; a custom choice may be empty (no built-in tools at all).
        "tools": values["tools"] if values["tools_mode"] == "custom" else None,
    }
    # An empty limit means "the deployment's default" (null), except max_rounds, which is
    # required: its empty string reaches the model and is refused there, next to the field.
    body.update({name: values[name] or None for name in NUMBERS if name != "max_rounds"})
    body["max_rounds"] = values["max_rounds"]
    return body


def _ordered(rows: list[Any], selected: list[str]) -> list[Any]:
    """Checkbox order is link order: the chosen ones first, as saved, then the others."""
    by_id = {row.id: row for row in rows}
    first = [by_id[i] for i in selected if i in by_id]
    return first + [row for row in rows if row.id not in selected]


def _form_context(user: WebSession, session: Session, values: Values, public: Any) -> Values:
    """The workspace's endpoints, environments, skills and servers to choose from."""
    ws = user.workspace_id
    return {
        "agent_id": public.id if public is not None else None,
        "endpoints": options(session, ModelEndpoint, ws),
        "environments": options(session, Environment, ws),
        "skills": _ordered(options(session, Skill, ws), values["skill_ids"]),
        "mcp_servers": _ordered(options(session, McpServer, ws), values["mcp_server_ids"]),
        "builtin_tools": BUILTIN_TOOLS,
    }


def _new_values() -> dict[str, Any]:
    fields = service.AgentCreate.model_fields
    values = _values_from_form(FormData())
    values.update(
        max_rounds=str(fields["max_rounds"].default),
        sandbox_flavor=fields["sandbox_flavor"].default,
    )
    return values


def _list_names(session: Session, workspace_id: str) -> dict[str, Any]:
    """The list shows each agent's endpoint and environment by name."""
    return {
        "endpoints": {row.id: row.name for row in options(session, ModelEndpoint, workspace_id)},
        "environments": {row.id: row.name for row in options(session, Environment, workspace_id)},
    }


PAGES = CrewPages(
    path="/agents",
    route="agent",
    noun="agent",
    model=Agent,
    service=service,
    create_schema=service.AgentCreate,
    update_schema=service.AgentUpdate,
    fields=FIELDS,
    nav="agents",
    form_template="crew/agent_form.html",
    form_context=_form_context,
    new_values=_new_values,
    read_form=lambda form, _public, _context, _session: _values_from_form(form),
    from_public=_values_from_agent,
    body=lambda _form, values, _creating: _body(values),
    # The rows themselves: `to_public` would load every agent's skill and server links.
    list_public=False,
    list_extra=_list_names,
)
add_crew_routes(router, PAGES)
