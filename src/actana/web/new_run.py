"""Start a run from the browser: pick an agent, write a prompt, attach files.

The form posts multipart straight into the same pieces the API's `POST agents/{id}/runs` uses
(`receive_assets` under the asset rules, then `service.create_run`), so a file the API refuses
is refused here with the same message, which names the file. A refused form is shown again with
the agent and the prompt as typed and the error next to the field or the file at fault.
"""

from __future__ import annotations

import shutil
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from actana.api.deps import Context, DbSession
from actana.exceptions import NotFoundError
from actana.files.assets import AssetRejected, StoredAsset, receive_assets
from actana.runs import service, storage
from actana.runs.rules import asset_rules
from actana.web.runs_pages import agent_choices
from actana.web.security import CSRF_FIELD
from actana.web.session import WebSession, WebUser, check_csrf
from actana.web.templating import flash, render

router = APIRouter()


def _form(
    request: Request,
    user: WebSession,
    agents: list[tuple[str, str]],
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "new_run.html",
        user=user,
        nav="new_run",
        agents=agents,
        values=values,
        errors=errors or {},
        status_code=status_code,
        rules=asset_rules(request.app.state.context.settings),
        max_prompt=service.MAX_PROMPT,
    )


@router.get("/runs/new")
def new_run_form(
    request: Request,
    user: WebUser,
    db: DbSession,
    agent: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The form; `?agent=ID` preselects an agent (the agents page links here)."""
    return _form(request, user, agent_choices(db, user.workspace_id), values={"agent": agent})


@router.post("/runs/new")
async def start_run(request: Request, context: Context, user: WebUser) -> Response:
    """Store the files under the asset rules, queue the run, and go to its page."""
    run_id = service.new_run_id()
    dest = storage.inputs_dir(context.settings, user.workspace_id, run_id)
    await to_thread.run_sync(lambda: dest.mkdir(parents=True))
    stored: list[StoredAsset] = []
    fields: dict[str, str] = {}
    errors: dict[str, str] = {}
    try:
        try:
            stored, fields = await receive_assets(
                request.stream(),
                request.headers.get("content-type", ""),
                dest,
                asset_rules(context.settings),
            )
        except AssetRejected as exc:
            # The form sends its text fields before the files, so they were read already.
            fields = exc.fields
            errors[exc.field if exc.field in {"agent", "prompt"} else "files"] = exc.message
        check_csrf(user, fields.get(CSRF_FIELD))
        values = {"agent": fields.get("agent", ""), "prompt": fields.get("prompt", "")}
        errors = errors or _check(values)
        if not errors:
            files = [{"name": a.name, "size": a.size, "sha256": a.sha256} for a in stored]
            try:
                await to_thread.run_sync(_create, context, user, run_id, values, files)
            except NotFoundError:
                errors["agent"] = "This agent does not exist (any more) in this workspace."
    except BaseException:
        _discard(context, user.workspace_id, run_id)
        raise
    if errors:
        _discard(context, user.workspace_id, run_id)
        if "files" not in errors and stored:
            errors["files"] = "Nothing was kept because of the error above: attach the files again."
        agents = await to_thread.run_sync(_agents, context, user.workspace_id)
        return _form(request, user, agents, values=values, errors=errors, status_code=422)
    context.wake_workers()
    return flash(RedirectResponse(f"/ui/runs/{run_id}", status_code=303), "Run queued.")


def _check(values: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not values["agent"]:
        errors["agent"] = "Pick the agent that should run."
    if not values["prompt"].strip():
        errors["prompt"] = "Write what the agent should do."
    elif len(values["prompt"]) > service.MAX_PROMPT:
        errors["prompt"] = f"At most {service.MAX_PROMPT} characters."
    return errors


def _agents(context: Any, workspace_id: str) -> list[tuple[str, str]]:
    with context.database.session() as db:
        return agent_choices(db, workspace_id)


def _create(
    context: Any, user: WebSession, run_id: str, values: dict[str, str], files: list[Any]
) -> None:
    with context.database.session() as db:
        service.create_run(
            context,
            db,
            user.workspace_id,
            values["agent"],
            values["prompt"],
            run_id=run_id,
            input_files=files,
        )


def _discard(context: Any, workspace_id: str, run_id: str) -> None:
    shutil.rmtree(storage.run_dir(context.settings, workspace_id, run_id), ignore_errors=True)
