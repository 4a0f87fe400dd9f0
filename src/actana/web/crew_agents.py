"""Agents pages: list, create, edit, delete.

An agent ties the rest of the crew together, so its form offers the workspace's endpoints and
environments as selects and its skills and MCP servers as ordered checkbox groups. The form is
read into the API's `AgentCreate`/`AgentUpdate` bodies and saved by `actana.crew.agents`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from actana.api.deps import Context, DbSession
from actana.crew import agents as service
from actana.crew.common import get_owned, list_owned
from actana.db.models import Agent, Environment, McpServer, ModelEndpoint, Skill
from actana.protocol.tools import BUILTIN_TOOLS
from actana.web.crew_common import (
    PAGE_SIZE,
    PostedForm,
    actor,
    checked_form,
    options,
    page_offset,
    pager,
    redirect,
    render,
)
from actana.web.crew_forms import (
    SAVE_ERRORS,
    FieldErrors,
    FormInvalid,
    chosen,
    field_errors,
    nearest,
    save,
    text,
)
from actana.web.session import WebSession, WebUser

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


def _form_page(
    request: Request,
    user: WebSession,
    session: DbSession,
    values: dict[str, Any],
    *,
    agent_id: str | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    ws = user.workspace_id
    return render(
        request,
        user,
        "crew/agent_form.html",
        errors=errors,
        values=values,
        agent_id=agent_id,
        endpoints=options(session, ModelEndpoint, ws),
        environments=options(session, Environment, ws),
        skills=_ordered(options(session, Skill, ws), values["skill_ids"]),
        mcp_servers=_ordered(options(session, McpServer, ws), values["mcp_server_ids"]),
        builtin_tools=BUILTIN_TOOLS,
        nav="agents",
    )


def _errors(exc: Exception) -> FieldErrors:
    return field_errors(exc, lambda path: nearest(path, FIELDS))


@router.get("/agents", name="ui_agents")
def list_agents(request: Request, user: WebUser, session: DbSession) -> Response:
    offset = page_offset(request)
    rows, total = list_owned(session, Agent, user.workspace_id, limit=PAGE_SIZE, offset=offset)
    endpoints = {row.id: row.name for row in options(session, ModelEndpoint, user.workspace_id)}
    environments = {row.id: row.name for row in options(session, Environment, user.workspace_id)}
    return render(
        request,
        user,
        "crew/agents.html",
        agents=rows,
        endpoints=endpoints,
        environments=environments,
        pager=pager(offset, total),
        nav="agents",
    )


@router.get("/agents/new", name="ui_agent_new")
def new_agent(request: Request, user: WebUser, session: DbSession) -> Response:
    fields = service.AgentCreate.model_fields
    values = _values_from_form(FormData())
    values.update(
        max_rounds=str(fields["max_rounds"].default),
        sandbox_flavor=fields["sandbox_flavor"].default,
    )
    return _form_page(request, user, session, values)


@router.post("/agents", name="ui_agent_create")
def create_agent(
    request: Request, user: WebUser, form: PostedForm, context: Context, session: DbSession
) -> Response:
    values = _values_from_form(checked_form(user, form))
    try:
        body = service.AgentCreate.model_validate(_body(values))
        row = save(
            context,
            lambda s: service.create(context, s, user.workspace_id, body, actor(user)),
        )
    except SAVE_ERRORS as exc:
        return _form_page(request, user, session, values, errors=_errors(exc))
    return redirect(f"/agents/{row.id}", "Agent created.")


@router.get("/agents/{agent_id}", name="ui_agent")
def show_agent(
    agent_id: str, request: Request, user: WebUser, context: Context, session: DbSession
) -> Response:
    row = get_owned(session, Agent, user.workspace_id, agent_id, "agent")
    values = _values_from_agent(service.to_public(context, session, row))
    return _form_page(request, user, session, values, agent_id=row.id)


@router.post("/agents/{agent_id}", name="ui_agent_update")
def update_agent(
    agent_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    get_owned(session, Agent, user.workspace_id, agent_id, "agent")  # 404 before anything else
    values = _values_from_form(form)
    try:
        body = service.AgentUpdate.model_validate(_body(values))
        save(
            context,
            lambda s: service.update(context, s, user.workspace_id, agent_id, body, actor(user)),
        )
    except SAVE_ERRORS as exc:
        return _form_page(request, user, session, values, agent_id=agent_id, errors=_errors(exc))
    return redirect(f"/agents/{agent_id}", "Agent saved.")


@router.post("/agents/{agent_id}/delete", name="ui_agent_delete")
def delete_agent(agent_id: str, user: WebUser, form: PostedForm, context: Context) -> Response:
    checked_form(user, form)
    save(context, lambda s: service.delete(context, s, user.workspace_id, agent_id))
    return redirect("/agents", "Agent deleted.")
