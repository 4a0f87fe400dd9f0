"""Runs as the API sees them: create (queue), list, read, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.crew.common import StrictModel, get_owned
from actana.db.models import Agent, Run, new_id, utcnow
from actana.exceptions import ConflictError

RunStatus = Literal["queued", "running", "succeeded", "failed", "timeout", "cancelled"]
MAX_PROMPT = 100_000


class RunCreate(StrictModel):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)


class RunFile(BaseModel):
    name: str
    size: int
    sha256: str


class RunErrorInfo(BaseModel):
    code: str
    message: str


class RunUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    model_calls: int


class RunPublic(BaseModel):
    id: str
    agent_id: str
    agent_name: str
    status: RunStatus
    prompt: str
    flavor: str
    sandbox_backend: str | None
    isolation: str | None
    created_at: datetime
    claimed_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    rounds: int
    usage: RunUsage
    message: str | None
    error: RunErrorInfo | None
    input_files: list[RunFile]
    output_files: list[RunFile]
    cancel_requested: bool

    @classmethod
    def of(cls, run: Run) -> RunPublic:
        duration = None
        if run.started_at and run.ended_at:
            duration = int((run.ended_at - run.started_at).total_seconds() * 1000)
        error = None
        if run.error_code:
            error = RunErrorInfo(code=run.error_code, message=run.error_message or "")
        return cls(
            id=run.id,
            agent_id=run.agent_id,
            agent_name=run.agent_name,
            status=run.status,
            prompt=run.prompt,
            flavor=run.flavor,
            sandbox_backend=run.sandbox_backend,
            isolation=run.isolation,
            created_at=run.created_at,
            claimed_at=run.claimed_at,
            started_at=run.started_at,
            ended_at=run.ended_at,
            duration_ms=duration,
            rounds=run.rounds,
            usage=RunUsage(
                input_tokens=run.input_tokens,
                output_tokens=run.output_tokens,
                model_calls=run.model_calls,
            ),
            message=run.result_message,
            error=error,
            input_files=[RunFile(**f) for f in run.input_files],
            output_files=[RunFile(**f) for f in run.output_files],
            cancel_requested=run.cancel_requested,
        )


def new_run_id() -> str:
    return new_id("run")


def create_run(
    context: AppContext,
    session: Session,
    workspace_id: str,
    agent_id: str,
    prompt: str,
    *,
    run_id: str,
    input_files: list[dict[str, Any]],
) -> Run:
    """Queue a run of the agent; a worker picks it up."""
    agent = get_owned(session, Agent, workspace_id, agent_id, "agent")
    limit = context.settings.max_execution_time_sec
    run = Run(
        id=run_id,
        workspace_id=workspace_id,
        agent_id=agent.id,
        agent_name=agent.name,
        model_endpoint_id=agent.model_endpoint_id,
        prompt=prompt,
        flavor=agent.sandbox_flavor,
        timeout_sec=min(agent.timeout_sec or limit, limit),
        input_files=input_files,
    )
    session.add(run)
    return run


def list_runs(
    session: Session,
    workspace_id: str,
    *,
    status: str | None,
    agent_id: str | None,
    limit: int,
    offset: int,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    prompt_contains: str | None = None,
) -> tuple[list[Run], int]:
    """A page of the workspace's runs, newest first.

    `created_from` is inclusive and `created_to` exclusive, so consecutive ranges never count a
    run twice; `prompt_contains` matches case-insensitively, its `%` and `_` taken literally.
    """
    where = [Run.workspace_id == workspace_id]
    if status:
        where.append(Run.status == status)
    if agent_id:
        where.append(Run.agent_id == agent_id)
    if created_from is not None:
        where.append(Run.created_at >= created_from)
    if created_to is not None:
        where.append(Run.created_at < created_to)
    if prompt_contains:
        where.append(Run.prompt.icontains(prompt_contains, autoescape=True))
    total = session.scalar(select(func.count()).where(*where)) or 0
    rows = session.scalars(
        select(Run)
        .where(*where)
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def request_cancel(session: Session, workspace_id: str, run_id: str) -> Run:
    """Cancel a run: a queued one ends now; a running one is stopped by its worker within a second.

    Raises:
        ConflictError: the run has already ended.
    """
    run = get_owned(session, Run, workspace_id, run_id, "run")
    if run.status == "queued":
        run.status = "cancelled"
        run.error_code, run.error_message = "cancelled", "cancelled before it started"
        run.ended_at = utcnow()
        run.cancel_requested = True
    elif run.status == "running":
        run.cancel_requested = True
    else:
        raise ConflictError(f"run {run.id} already ended ({run.status})")
    return run
