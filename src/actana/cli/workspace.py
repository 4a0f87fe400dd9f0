"""`actana workspace`: create tenants and manage their API keys."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from actana.cli.common import console, fail, start_context
from actana.crew.common import Name
from actana.crew.workspaces import create_workspace
from actana.db.models import Workspace
from actana.exceptions import ActanaError
from actana.security.api_keys import issue_api_key, revoke_api_key

app = typer.Typer(help="Workspaces (tenants) and their API keys.", no_args_is_help=True)


def _check_name(name: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(Name).validate_python(name)
    except ValidationError as exc:
        fail(f"invalid workspace name {name!r}: {exc.errors()[0]['msg']}")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Unique workspace name")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: id and api_key")] = False,
) -> None:
    """Create a workspace and print its first API key (shown once)."""
    context = start_context()
    try:
        with context.database.session() as session:
            workspace, api_key = create_workspace(session, _check_name(name), actor="cli")
            workspace_id = workspace.id
    except ActanaError as exc:
        fail(exc.message)
    if as_json:
        typer.echo(json.dumps({"id": workspace_id, "name": name, "api_key": api_key}))
        return
    console.print(f"workspace [bold]{name}[/] created: {workspace_id}")
    console.print(f"API key (shown once, keep it safe): {api_key}", highlight=False)


@app.command("list")
def list_workspaces() -> None:
    """List workspaces."""
    context = start_context()
    table = Table("id", "name", "created")
    with context.database.session() as session:
        for ws in session.scalars(select(Workspace).order_by(Workspace.created_at)):
            table.add_row(ws.id, ws.name, ws.created_at.isoformat(timespec="seconds"))
    console.print(table)


@app.command("issue-key")
def issue_key(
    workspace_id: str,
    name: Annotated[str, typer.Option(help="Label for the key")] = "cli",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Issue another API key for a workspace (shown once)."""
    context = start_context()
    with context.database.session() as session:
        if session.get(Workspace, workspace_id) is None:
            fail(f"no workspace {workspace_id!r}")
        key, plaintext = issue_api_key(session, workspace_id, name=_check_name(name), actor="cli")
        key_id = key.id
    if as_json:
        typer.echo(json.dumps({"id": key_id, "api_key": plaintext}))
    else:
        console.print(f"API key {key_id} (shown once): {plaintext}", highlight=False)


@app.command("revoke-key")
def revoke_key(workspace_id: str, key_id: str) -> None:
    """Revoke an API key; requests with it get 401 from now on."""
    context = start_context()
    try:
        with context.database.session() as session:
            revoke_api_key(session, workspace_id, key_id, actor="cli")
    except ActanaError as exc:
        fail(exc.message)
    console.print(f"revoked {key_id}")
