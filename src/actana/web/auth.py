"""Web sessions in the database: sign in with an API key, resolve a cookie, sign out.

Kept apart from the FastAPI dependencies (`actana.web.session`) so that the JSON API's caller
check (`actana.api.deps`) can accept the same cookie without an import cycle.

The cookie holds 256 random bits; the table holds only their SHA-256, so reading the table (a
backup, a SQL injection elsewhere) gives no usable session. A session is bound to the API key it
was made from: revoking or deleting the key ends it on the next request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from actana.db.models import ApiKey, Workspace, utcnow
from actana.db.models import WebSession as WebSessionRow

COOKIE_NAME = "actana_session"
# Longer values are not ours: refuse them before hashing anything.
MAX_COOKIE_CHARS = 128


@dataclass(frozen=True)
class WebSession:
    """The signed-in browser: its workspace, the key it signed in with, its CSRF token."""

    workspace_id: str
    api_key_id: str
    csrf_token: str
    workspace_name: str


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def create_web_session(session: Session, key: ApiKey, *, hours: float) -> str:
    """Store a new session for `key` and return the cookie value (never stored itself).

    Expired sessions of every workspace are swept here, so the table does not grow forever.
    """
    now = utcnow()
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
    value = secrets.token_urlsafe(32)
    session.add(
        WebSessionRow(
            id=_digest(value),
            workspace_id=key.workspace_id,
            api_key_id=key.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    return value


def resolve_web_session(session: Session, cookie: str | None) -> WebSession | None:
    """The live session the cookie proves, or None (unknown, expired, or its key revoked)."""
    if not cookie or len(cookie) > MAX_COOKIE_CHARS:
        return None
    row = session.execute(
        select(WebSessionRow, ApiKey.revoked_at, Workspace.name)
        .join(ApiKey, ApiKey.id == WebSessionRow.api_key_id)
        .join(Workspace, Workspace.id == WebSessionRow.workspace_id)
        .where(WebSessionRow.id == _digest(cookie))
    ).one_or_none()
    if row is None:
        return None
    web, revoked_at, workspace_name = row
    if revoked_at is not None or web.expires_at <= utcnow():
        return None
    return WebSession(web.workspace_id, web.api_key_id, web.csrf_token, workspace_name)


def end_web_session(session: Session, cookie: str | None) -> None:
    """Delete the session the cookie names (signing out twice is harmless)."""
    if cookie and len(cookie) <= MAX_COOKIE_CHARS:
        session.execute(delete(WebSessionRow).where(WebSessionRow.id == _digest(cookie)))
