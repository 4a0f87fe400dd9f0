"""MCP server pages: stdio (command, args, env) or http (url, write-only headers), list, edit,
delete, and a "Discover tools" button (crew.js calling `POST mcp-servers/{id}/discover`).

The form holds both transports' fields; only the chosen transport's are sent, and the other's
are cleared, which is what switching transport means. Headers are rows `headers.N.name|value`;
a stored header's value is never sent back, and an empty value keeps it.
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from actana.api.deps import Context, DbSession
from actana.crew import mcp_servers as service
from actana.crew.common import get_owned, list_owned
from actana.db.models import McpServer
from actana.exceptions import ConflictError
from actana.web.crew_common import (
    PAGE_SIZE,
    PostedForm,
    actor,
    checked_form,
    page_offset,
    pager,
    redirect,
    render,
)
from actana.web.crew_forms import (
    FORM,
    SAVE_ERRORS,
    FieldErrors,
    FormInvalid,
    field_errors,
    lines,
    nearest,
    pairs,
    rows,
    save,
    text,
)
from actana.web.session import WebSession, WebUser

router = APIRouter()

FIELDS = frozenset({"name", "transport", "command", "args", "env", "url", "headers"})
TRANSPORTS: tuple[str, ...] = get_args(service.Transport)
BLANK_ROWS = 2


def _values_from_form(form: FormData, stored: set[str]) -> dict[str, Any]:
    """What the user typed; header values are kept aside (`typed`), never shown again."""
    headers = [
        {
            "row": index,
            "name": row.get("name", "").strip(),
            "typed": row.get("value", ""),
            "stored": row.get("name", "").strip() in stored,
        }
        for index, row in rows(form, "headers")
    ]
    return {
        "name": text(form, "name"),
        "transport": text(form, "transport"),
        "command": text(form, "command"),
        "args": text(form, "args", strip=False).strip("\n"),
        "env": text(form, "env", strip=False).strip("\n"),
        "url": text(form, "url"),
        "headers": headers,
    }


def _values_from_server(server: service.McpServerPublic) -> dict[str, Any]:
    return {
        "name": server.name,
        "transport": server.transport,
        "command": server.command or "",
        "args": "\n".join(server.args),
        "env": "\n".join(f"{key}={value}" for key, value in server.env.items()),
        "url": server.url or "",
        "headers": [
            {"row": i, "name": name, "typed": "", "stored": True}
            for i, name in enumerate(server.headers_set)
        ],
    }


def _headers(values: dict[str, Any]) -> dict[str, str | None]:
    headers: dict[str, str | None] = {}
    for row in values["headers"]:
        field = f"headers.{row['row']}"
        if not row["name"]:
            if row["typed"]:
                raise FormInvalid(f"{field}.name", "give the header a name")
            continue
        if row["name"] in headers:
            raise FormInvalid(f"{field}.name", f"header {row['name']} is given twice")
        if not row["typed"] and not row["stored"]:
            raise FormInvalid(f"{field}.value", f"header {row['name']} needs a value")
        headers[row["name"]] = row["typed"] or None  # None: keep the stored value
    return headers


def _body(form: FormData, values: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": values["name"], "transport": values["transport"]}
    if values["transport"] == "http":
        body.update(command=None, args=[], env={}, url=values["url"] or None)
        body["headers"] = _headers(values)
    else:
        body.update(command=values["command"] or None, url=None, headers={})
        body.update(args=lines(form, "args"), env=pairs(form, "env"))
    return body


def _resolver(values: dict[str, Any]) -> Any:
    """`headers.<header name>` (the service's path) -> that header's row on the form."""
    rows_by_name = {row["name"]: row["row"] for row in values["headers"]}

    def resolve(path: str) -> str:
        head, _, rest = path.partition(".")
        if head == "headers" and rest:
            if rest in rows_by_name:
                return f"headers.{rows_by_name[rest]}.name"
            number, _, column = rest.partition(".")
            if number.isdigit() and column in ("name", "value"):  # a form-side check
                return path
        return nearest(path, FIELDS)

    return resolve


def _form_page(
    request: Request,
    user: WebSession,
    values: dict[str, Any],
    *,
    server: service.McpServerPublic | None = None,
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    start = max((row["row"] for row in values["headers"]), default=-1) + 1
    blanks = [{"row": start + i, "name": "", "stored": False} for i in range(BLANK_ROWS)]
    return render(
        request,
        user,
        "crew/mcp_form.html",
        errors=errors,
        status_code=status_code,
        values=values,
        header_rows=values["headers"] + blanks,
        server=server,
        transports=[(t, t) for t in TRANSPORTS],
        not_discoverable=service.STDIO_NOT_DISCOVERABLE,
        api_base=f"/api/v1/workspaces/{user.workspace_id}",
        nav="mcp_servers",
    )


def _public(context: Context, session: DbSession, user: WebSession, server_id: str) -> Any:
    row = get_owned(session, McpServer, user.workspace_id, server_id, "MCP server")
    return service.to_public(context, session, row)


def _save_errors(exc: Exception, values: dict[str, Any]) -> FieldErrors:
    return field_errors(exc, _resolver(values))


@router.get("/mcp-servers", name="ui_mcp_servers")
def list_servers(request: Request, user: WebUser, context: Context, session: DbSession) -> Response:
    offset = page_offset(request)
    found, total = list_owned(session, McpServer, user.workspace_id, limit=PAGE_SIZE, offset=offset)
    return render(
        request,
        user,
        "crew/mcp_servers.html",
        servers=[service.to_public(context, session, row) for row in found],
        pager=pager(offset, total),
        nav="mcp_servers",
    )


@router.get("/mcp-servers/new", name="ui_mcp_server_new")
def new_server(request: Request, user: WebUser) -> Response:
    values = _values_from_form(FormData(), set())
    values["transport"] = "stdio"
    return _form_page(request, user, values)


@router.post("/mcp-servers", name="ui_mcp_server_create")
def create_server(request: Request, user: WebUser, form: PostedForm, context: Context) -> Response:
    values = _values_from_form(checked_form(user, form), set())
    try:
        body = service.McpServerCreate.model_validate(_body(form, values))
        row = save(
            context, lambda s: service.create(context, s, user.workspace_id, body, actor(user))
        )
    except SAVE_ERRORS as exc:
        return _form_page(request, user, values, errors=_save_errors(exc, values))
    return redirect(f"/mcp-servers/{row.id}", "MCP server created.")


@router.get("/mcp-servers/{server_id}", name="ui_mcp_server")
def show_server(
    server_id: str, request: Request, user: WebUser, context: Context, session: DbSession
) -> Response:
    server = _public(context, session, user, server_id)
    return _form_page(request, user, _values_from_server(server), server=server)


@router.post("/mcp-servers/{server_id}", name="ui_mcp_server_update")
def update_server(
    server_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    server = _public(context, session, user, server_id)
    values = _values_from_form(form, set(server.headers_set))
    try:
        body = service.McpServerUpdate.model_validate(_body(form, values))
        save(
            context,
            lambda s: service.update(context, s, user.workspace_id, server_id, body, actor(user)),
        )
    except SAVE_ERRORS as exc:
        errors = _save_errors(exc, values)
        return _form_page(request, user, values, server=server, errors=errors)
    return redirect(f"/mcp-servers/{server_id}", "MCP server saved.")


@router.post("/mcp-servers/{server_id}/delete", name="ui_mcp_server_delete")
def delete_server(
    server_id: str,
    request: Request,
    user: WebUser,
    form: PostedForm,
    context: Context,
    session: DbSession,
) -> Response:
    checked_form(user, form)
    try:
        save(context, lambda s: service.delete(context, s, user.workspace_id, server_id))
    except ConflictError as exc:  # attached to an agent: say so on its page
        server = _public(context, session, user, server_id)
        values = _values_from_server(server)
        errors = {FORM: exc.message}
        return _form_page(request, user, values, server=server, errors=errors, status_code=409)
    return redirect("/mcp-servers", "MCP server deleted.")
