"""The runs pages: the list (`/ui/`, `/ui/runs`), one run (`/ui/runs/{id}`), and a new run.

Pages read through the same service functions as the JSON API (`actana.runs.service`), so a
filter or a rule exists once. The run page renders the header server-side and leaves the live
parts (phases, steps, model text, result) to `static/run.js`, which reads the run's NDJSON lines
through the API with the session cookie.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from actana.api.deps import DbSession
from actana.crew.common import get_owned
from actana.db.models import Agent, Run
from actana.runs import service
from actana.runs.queue import TERMINAL
from actana.web.session import WebUser
from actana.web.templating import render

router = APIRouter()

PAGE_SIZE = 25
STATUSES: tuple[str, ...] = get_args(service.RunStatus)
MAX_FILTER_TEXT = 500


def agent_choices(db: Session, workspace_id: str) -> list[tuple[str, str]]:
    """(id, name) of the workspace's agents, by name: the options of an agent select."""
    rows = db.execute(
        select(Agent.id, Agent.name).where(Agent.workspace_id == workspace_id).order_by(Agent.name)
    )
    return [(row.id, row.name) for row in rows]


def parse_local_time(value: str) -> datetime:
    """A `datetime-local` field's value ("2026-01-31T14:05"), taken as UTC like the whole UI.

    Raises:
        ValueError: not a date and time.
    """
    parsed = datetime.fromisoformat(value.strip())
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _filters(db: Session, user: Any, raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The runs list's filters from the query string, and an error per field that is wrong."""
    errors: dict[str, str] = {}
    filters: dict[str, Any] = {}
    status = raw.get("status", "")
    if status and status not in STATUSES:
        errors["status"] = f"Unknown status; pick one of {', '.join(STATUSES)}."
    elif status:
        filters["status"] = status
    agent = raw.get("agent", "")
    if agent and agent not in {a for a, _ in agent_choices(db, user.workspace_id)}:
        errors["agent"] = "No such agent in this workspace."
    elif agent:
        filters["agent_id"] = agent
    for name, key in (("from", "created_from"), ("to", "created_to")):
        if value := raw.get(name, "").strip():
            try:
                filters[key] = parse_local_time(value)
            except ValueError:
                errors[name] = "Not a date and time (YYYY-MM-DDTHH:MM, UTC)."
    start, end = filters.get("created_from"), filters.get("created_to")
    if start is not None and end is not None and start >= end:
        errors["to"] = "Must be later than “from”."
    q = raw.get("q", "").strip()
    if len(q) > MAX_FILTER_TEXT:
        errors["q"] = f"At most {MAX_FILTER_TEXT} characters."
    elif q:
        filters["prompt_contains"] = q
    return filters, errors


@router.get("/")
@router.get("/runs")
def runs_page(
    request: Request,
    user: WebUser,
    db: DbSession,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """The workspace's runs, newest first, filtered by the GET form and paginated."""
    raw = {k: request.query_params.get(k, "") for k in ("status", "agent", "from", "to", "q")}
    filters, errors = _filters(db, user, raw)
    rows: list[service.RunPublic] = []
    total = 0
    if not errors:
        found, total = service.list_runs(
            db,
            user.workspace_id,
            status=filters.get("status"),
            agent_id=filters.get("agent_id"),
            created_from=filters.get("created_from"),
            created_to=filters.get("created_to"),
            prompt_contains=filters.get("prompt_contains"),
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        rows = [service.RunPublic.of(r) for r in found]
    kept = {k: v for k, v in raw.items() if v}

    def page_url(number: int) -> str:
        return "/ui/runs?" + urlencode({**kept, "page": number})

    last_page = max(1, -(-total // PAGE_SIZE))
    return render(
        request,
        "runs.html",
        user=user,
        nav="runs",
        status_code=422 if errors else 200,
        errors=errors,
        runs=rows,
        total=total,
        page=page,
        last_page=last_page,
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < last_page else None,
        # A page past the end (a stale link, a hand-typed URL) says so and leads back.
        first_url=page_url(1) if page > last_page else None,
        values=raw,
        statuses=STATUSES,
        agents=agent_choices(db, user.workspace_id),
    )


@router.get("/runs/{run_id}")
def run_page(
    request: Request,
    run_id: str,
    user: WebUser,
    db: DbSession,
    replay: Annotated[bool, Query()] = False,
) -> Response:
    """One run: the header now, the rest streamed in by run.js (live, or replayed)."""
    run = service.RunPublic.of(get_owned(db, Run, user.workspace_id, run_id, "run"))
    return render(
        request,
        "run.html",
        user=user,
        nav="runs",
        run=run,
        replay=replay,
        terminal=TERMINAL,
    )
