"""FastAPI dependencies for pages: `WebUser` (the signed-in browser) and `check_csrf`.

A page without a valid session redirects to the sign-in page (303); a request made by our own
JavaScript (or asking for JSON) gets a 401 instead, since a redirect to HTML would only confuse
it. The session logic itself lives in `actana.web.auth`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Cookie, Depends, Request

from actana.api.deps import DbSession
from actana.web.auth import COOKIE_NAME, WebSession, resolve_web_session
from actana.web.security import CsrfError, require_csrf

__all__ = [
    "COOKIE_NAME",
    "CsrfError",
    "LoginRequired",
    "WebSession",
    "WebUser",
    "check_csrf",
    "get_web_user",
    "wants_json",
]


class LoginRequired(Exception):
    """No valid web session: the handler in `actana.web.routes` redirects or answers 401."""

    def __init__(self, json: bool) -> None:
        super().__init__("sign in required")
        self.json = json


def wants_json(request: Request) -> bool:
    """True for our JavaScript's requests (fetch sends X-Requested-With) and JSON clients."""
    if request.headers.get("x-requested-with", "").lower() in {"fetch", "xmlhttprequest"}:
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def get_web_user(
    request: Request,
    db: DbSession,
    actana_session: Annotated[str | None, Cookie()] = None,
) -> WebSession:
    """The signed-in session, or LoginRequired."""
    user = resolve_web_session(db, actana_session)
    if user is None:
        raise LoginRequired(json=wants_json(request))
    return user


WebUser = Annotated[WebSession, Depends(get_web_user)]


def check_csrf(session: WebSession, submitted: str | None) -> None:
    """Refuse (403, with a message saying what to do) unless `submitted` is the session's token.

    Call it first thing in every POST handler, with the form's `csrf_token` field.

    Raises:
        CsrfError: the token is missing or wrong.
    """
    require_csrf(session.csrf_token, submitted)
