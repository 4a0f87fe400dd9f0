"""What every crew page shares: the posted form, rendering, redirects, option lists.

Kept apart from the per-resource modules so that each of them reads as its routes and its
form <-> body translation only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from actana.crew.common import list_owned
from actana.db.models import Base
from actana.web import templating
from actana.web.crew_forms import FieldErrors
from actana.web.session import WebSession, check_csrf

UI = "/ui"
"""Where the pages are mounted; links and redirects are built from it."""

PAGE_SIZE = 50
OPTIONS_LIMIT = 1000
"""Choices offered in a select or a checkbox group (an agent's endpoint, skills, servers)."""


async def _posted_form(request: Request) -> AsyncIterator[FormData]:
    # Read in the event loop (it is async), so that the routes themselves can stay sync and
    # run their database work in the thread pool. Uploaded files are spooled to temporary
    # files: closed once the route is done with them.
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


PostedForm = Annotated[FormData, Depends(_posted_form)]


def checked_form(user: WebSession, form: FormData) -> FormData:
    """The form, once its CSRF token is known good (403 otherwise)."""
    token = form.get("csrf_token")
    check_csrf(user, token if isinstance(token, str) else None)
    return form


def actor(user: WebSession) -> str:
    """Who the audit log names for a change made from the UI: the key that signed in."""
    return f"api_key:{user.api_key_id}"


def render(
    request: Request,
    user: WebSession,
    template: str,
    *,
    status_code: int = 200,
    errors: FieldErrors | None = None,
    **context: Any,
) -> HTMLResponse:
    """A crew template rendered in the common layout, with its field errors (if any); a form
    shown again with errors answers 422 unless the caller says otherwise."""
    errors = errors or {}
    return templating.render(
        request,
        template,
        user=user,
        status_code=422 if errors and status_code == 200 else status_code,
        errors=errors,
        **context,
    )


def redirect(path: str, message: str | None = None) -> Response:
    """After a successful post: 303, so that reloading the next page posts nothing again;
    `message` is shown at the top of that page."""
    response = RedirectResponse(UI + path, status_code=303)
    return templating.flash(response, message) if message else response


def options(session: Session, model: type[Base], workspace_id: str) -> list[Any]:
    """The workspace's objects of one kind, by name, for a select or a checkbox group."""
    rows, _total = list_owned(session, model, workspace_id, limit=OPTIONS_LIMIT, offset=0)
    return rows


def page_offset(request: Request) -> int:
    """The `offset` query parameter of a list page (0 when absent or not a number)."""
    raw = request.query_params.get("offset", "0")
    return max(int(raw), 0) if raw.isdigit() else 0


def pager(offset: int, total: int) -> dict[str, int | None]:
    """Offsets of the previous and next list pages (None at either end)."""
    return {
        "offset": offset,
        "total": total,
        "previous": max(offset - PAGE_SIZE, 0) if offset > 0 else None,
        "next": offset + PAGE_SIZE if offset + PAGE_SIZE < total else None,
    }
