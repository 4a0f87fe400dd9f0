"""Runs: start one, list them, read one, cancel it, and fetch its audit files and outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import AwareDatetime, BaseModel, ValidationError

from actana.api.bodies import read_capped_body
from actana.api.deps import Context, CurrentCaller, DbSession
from actana.crew.common import get_owned
from actana.crew.pages import Limit, Offset, Page
from actana.db.models import Run
from actana.exceptions import InvalidInputError, NotFoundError
from actana.files.assets import AssetRejected, receive_assets
from actana.runs import service, storage
from actana.runs.chain import verify_recorded
from actana.runs.events import stream_events
from actana.runs.ingest import RunRecorder
from actana.runs.rules import asset_rules

router = APIRouter(tags=["runs"])
Public = service.RunPublic


@router.post("/agents/{agent_id}/runs", status_code=202, response_model=Public)
async def start_run(
    agent_id: str, request: Request, context: Context, caller: CurrentCaller
) -> Public:
    """Queue a run: JSON `{"prompt": ...}`, or multipart with a `prompt` field and `files`."""
    content_type = request.headers.get("content-type", "")
    run_id = service.new_run_id()
    files: list[dict[str, Any]] = []
    if content_type.startswith("multipart/form-data"):
        dest = storage.inputs_dir(context.settings, caller.workspace_id, run_id)
        dest.mkdir(parents=True)
        try:
            stored, fields = await receive_assets(
                request.stream(), content_type, dest, asset_rules(context.settings)
            )
        except AssetRejected:
            shutil.rmtree(dest.parent, ignore_errors=True)
            raise
        files = [{"name": a.name, "size": a.size, "sha256": a.sha256} for a in stored]
        raw = {"prompt": fields.get("prompt", "")}
    elif content_type.startswith("application/json") or not content_type:
        body = await read_capped_body(request, service.MAX_PROMPT * 4 + 1024)
        try:
            raw = json.loads(body or b"null")
        except ValueError:
            raise InvalidInputError("the body is not valid JSON", field="body") from None
    else:
        raise InvalidInputError(
            'send JSON {"prompt": ...} or multipart/form-data with prompt and files',
            field="content-type",
        )
    try:
        body_model = service.RunCreate.model_validate(raw)
    except ValidationError as exc:
        _discard_inputs(context, caller.workspace_id, run_id)
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None

    def create() -> Public:
        with context.database.session() as session:
            run = service.create_run(
                context,
                session,
                caller.workspace_id,
                agent_id,
                body_model.prompt,
                run_id=run_id,
                input_files=files,
            )
            session.flush()
            return Public.of(run)

    try:
        public = await to_thread.run_sync(create)
    except Exception:
        _discard_inputs(context, caller.workspace_id, run_id)
        raise
    context.wake_workers()
    return public


def _discard_inputs(context: Any, workspace_id: str, run_id: str) -> None:
    shutil.rmtree(storage.run_dir(context.settings, workspace_id, run_id), ignore_errors=True)


@router.get("/runs", response_model=Page[Public])
def list_runs(
    session: DbSession,
    caller: CurrentCaller,
    status: Annotated[service.RunStatus | None, Query()] = None,
    agent_id: Annotated[str | None, Query()] = None,
    created_from: Annotated[
        AwareDatetime | None, Query(description="Runs created at or after (ISO 8601, with zone)")
    ] = None,
    created_to: Annotated[
        AwareDatetime | None, Query(description="Runs created before (ISO 8601, with zone)")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=500, description="Text the prompt contains (any case)")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[Public]:
    rows, total = service.list_runs(
        session,
        caller.workspace_id,
        status=status,
        agent_id=agent_id,
        created_from=created_from,
        created_to=created_to,
        prompt_contains=q,
        limit=limit,
        offset=offset,
    )
    return Page(items=[Public.of(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/runs/{run_id}", response_model=Public)
def get_run(run_id: str, session: DbSession, caller: CurrentCaller) -> Public:
    return Public.of(get_owned(session, Run, caller.workspace_id, run_id, "run"))


@router.post("/runs/{run_id}/cancel", response_model=Public)
async def cancel_run(run_id: str, context: Context, caller: CurrentCaller) -> Public:
    """Cancel a run. A queued run ends at once; a running one within a second."""

    def cancel() -> tuple[Public, bool]:
        with context.database.session() as session:
            run = service.request_cancel(session, caller.workspace_id, run_id)
            session.flush()
            return Public.of(run), run.status == "cancelled"

    public, ended_now = await to_thread.run_sync(cancel)
    if ended_now:
        # It never reached a worker: its audit trail is this one terminal line.
        directory = storage.run_dir(context.settings, caller.workspace_id, run_id)
        directory.mkdir(parents=True, exist_ok=True)
        RunRecorder(run_id, directory).finish(
            error=("cancelled", "cancelled before it started"), files=[], rounds=0
        )
    else:
        context.notify_cancel(run_id)
    return public


@router.get("/runs/{run_id}/events")
async def run_events(
    run_id: str,
    request: Request,
    context: Context,
    caller: CurrentCaller,
    after: Annotated[int | None, Query(ge=-1)] = None,
) -> Response:
    """The run's NDJSON lines from the start (or after `?after=SEQ`), following live until the
    terminal line. `Accept: text/event-stream` gets SSE instead of NDJSON."""
    run = await to_thread.run_sync(_owned_run, context, caller.workspace_id, run_id)
    sse = "text/event-stream" in request.headers.get("accept", "")
    return stream_events(context, run, after=after if after is not None else -1, sse=sse)


def _owned_run(context: Any, workspace_id: str, run_id: str) -> Run:
    with context.database.session() as session:
        return get_owned(session, Run, workspace_id, run_id, "run")


@router.get("/runs/{run_id}/files", response_model=list[service.RunFile])
def run_files(run_id: str, session: DbSession, caller: CurrentCaller) -> list[service.RunFile]:
    """The output files the run produced."""
    run = get_owned(session, Run, caller.workspace_id, run_id, "run")
    return [service.RunFile(**f) for f in run.output_files]


@router.get("/runs/{run_id}/files/{name}")
def run_file(
    run_id: str, name: str, context: Context, session: DbSession, caller: CurrentCaller
) -> Response:
    """Download one output file, always as an attachment (never rendered inline)."""
    run = get_owned(session, Run, caller.workspace_id, run_id, "run")
    known = {f["name"] for f in run.output_files}
    if name not in known:
        raise NotFoundError(f"run {run.id} has no output file {name!r}")
    path: Path = storage.outputs_dir(context.settings, run.workspace_id, run.id) / name
    return FileResponse(
        path,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
        },
    )


class RunVerification(BaseModel):
    """Whether the run's audit trail verifies (what `actana verify --run` checks)."""

    state: Literal["verified", "tampered", "pending"]
    """`pending`: the run has not ended, so there is no final hash to check against yet."""
    message: str
    lines: int
    first_bad_line: int | None


@router.get("/runs/{run_id}/verify", response_model=RunVerification)
async def verify_run(run_id: str, context: Context, caller: CurrentCaller) -> RunVerification:
    """Check the run's hash chain, its result.json and steps.json against its stream, and the
    last line's hash against the one the database kept when the run ended (so a folder
    rewritten with a rebuilt chain is caught too)."""
    run = await to_thread.run_sync(_owned_run, context, caller.workspace_id, run_id)
    if run.chain is None:
        return RunVerification(
            state="pending",
            message=f"the run has not ended ({run.status})",
            lines=0,
            first_bad_line=None,
        )
    directory = storage.run_dir(context.settings, run.workspace_id, run.id)
    report = await to_thread.run_sync(verify_recorded, directory, run.chain)
    if not report.ok:
        where = f"line {report.first_bad_line}: " if report.first_bad_line else ""
        return RunVerification(
            state="tampered",
            message=f"{where}{report.reason}",
            lines=report.lines,
            first_bad_line=report.first_bad_line,
        )
    return RunVerification(
        state="verified",
        message=f"{report.lines} lines, chain intact",
        lines=report.lines,
        first_bad_line=None,
    )


# Declared last: `{name}` would otherwise shadow `/files`.
@router.get("/runs/{run_id}/{name}")
def run_audit_file(
    run_id: str, name: str, context: Context, session: DbSession, caller: CurrentCaller
) -> Response:
    """`stream.jsonl`, `steps.json` or `result.json` of the run."""
    run = get_owned(session, Run, caller.workspace_id, run_id, "run")
    if name not in storage.AUDIT_FILES:
        raise NotFoundError(f"no {name!r} here: ask for one of {', '.join(storage.AUDIT_FILES)}")
    path = storage.run_dir(context.settings, run.workspace_id, run.id) / name
    if not path.is_file():
        raise NotFoundError(f"{name} is not written yet (the run is {run.status})")
    media = "application/x-ndjson" if name.endswith(".jsonl") else "application/json"
    return FileResponse(path, media_type=media)
