"""MCP server pages: stdio (command, args, env) or http (url, write-only headers), list, edit,
delete, and a "Discover tools" button (crew.js calling `POST mcp-servers/{id}/discover`).

The form holds both transports' fields; only the chosen transport's are sent, and the other's
are cleared, which is what switching transport means. Headers are rows `headers.N.name|value`;
a stored header's value is never sent back, and an empty value keeps it.
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from actana.crew import mcp_servers as service
from actana.db.models import McpServer
from actana.web.crew_crud import CrewPages, Values, add_crew_routes
from actana.web.crew_forms import (
    FormInvalid,
    field_errors,
    lines,
    nearest,
    pairs,
    rows,
    text,
)
from actana.web.session import WebSession

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


def _form_context(user: WebSession, _session: Session, values: Values, public: Any) -> Values:
    """The header rows, with blank ones to fill in below them."""
    start = max((row["row"] for row in values["headers"]), default=-1) + 1
    blanks = [{"row": start + i, "name": "", "stored": False} for i in range(BLANK_ROWS)]
    return {
        "header_rows": values["headers"] + blanks,
        "server": public,
        "transports": [(t, t) for t in TRANSPORTS],
        "not_discoverable": service.STDIO_NOT_DISCOVERABLE,
        "api_base": f"/api/v1/workspaces/{user.workspace_id}",
    }


def _new_values() -> dict[str, Any]:
    values = _values_from_form(FormData(), set())
    values["transport"] = "stdio"
    return values


def _read_form(form: FormData, public: Any, _context: Any, _session: Any) -> dict[str, Any]:
    # On edit, a header row left empty keeps its stored value.
    return _values_from_form(form, set(public.headers_set) if public is not None else set())


PAGES = CrewPages(
    path="/mcp-servers",
    route="mcp_server",
    noun="MCP server",
    model=McpServer,
    service=service,
    create_schema=service.McpServerCreate,
    update_schema=service.McpServerUpdate,
    fields=FIELDS,
    nav="mcp_servers",
    form_template="crew/mcp_form.html",
    form_context=_form_context,
    new_values=_new_values,
    read_form=_read_form,
    from_public=_values_from_server,
    body=lambda form, values, _creating: _body(form, values),
    errors=lambda exc, values: field_errors(exc, _resolver(values)),
)
add_crew_routes(router, PAGES)
