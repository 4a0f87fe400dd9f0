"""FastAPI dependencies: the app context, a database session, and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Cookie, Depends, Header, Path, Request
from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.exceptions import AuthenticationError, NotFoundError
from actana.security.api_keys import authenticate_api_key
from actana.web.auth import COOKIE_NAME, resolve_web_session
from actana.web.security import CSRF_HEADER, require_csrf

# Methods a cookie-authenticated request may use without the CSRF header: they change nothing.
SAFE_METHODS = frozenset({"GET", "HEAD"})


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


Context = Annotated[AppContext, Depends(get_context)]


def get_session(context: Context) -> Iterator[Session]:
    with context.database.session() as session:
        yield session


# scope="function": commit when the route returns, before the response goes out, so a client
# that got a 2xx can rely on the change being durable (and a failed commit becomes a 5xx).
DbSession = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True)
class Caller:
    """Who is calling, and for which workspace (already checked to be theirs)."""

    workspace_id: str
    api_key_id: str

    @property
    def actor(self) -> str:
        return f"api_key:{self.api_key_id}"


def caller_from_request(session: Session, ws: str, request: Request) -> Caller:
    """Authenticate the bearer key (or the web UI's session cookie) for the workspace `ws`.

    A Bearer key wins when both are sent. A cookie-authenticated request that may change state
    (any method but GET/HEAD) must also carry the session's `X-CSRF-Token` header: a browser
    sends the cookie on its own, the header only our JavaScript can set.

    A valid key (or session) for another workspace gets the same 404 as a workspace that does
    not exist, so a caller learns nothing about other tenants.
    """
    authorization = request.headers.get("authorization")
    cookie = request.cookies.get(COOKIE_NAME)
    if authorization is None and cookie is not None:
        web = resolve_web_session(session, cookie)
        if web is None:
            raise AuthenticationError()
        if web.workspace_id != ws:
            raise NotFoundError("workspace not found")
        if request.method not in SAFE_METHODS:
            require_csrf(web.csrf_token, request.headers.get(CSRF_HEADER))
        return Caller(workspace_id=ws, api_key_id=web.api_key_id)
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError()
    key = authenticate_api_key(session, token.strip())
    if key is None:
        raise AuthenticationError()
    if key.workspace_id != ws:
        raise NotFoundError("workspace not found")
    return Caller(workspace_id=ws, api_key_id=key.id)


def get_caller(
    request: Request,
    session: DbSession,
    ws: Annotated[str, Path(description="Workspace id")],
    # Declared for the OpenAPI page; `caller_from_request` reads them from the request.
    authorization: Annotated[str | None, Header()] = None,
    actana_session: Annotated[str | None, Cookie(include_in_schema=False)] = None,
) -> Caller:
    """The authenticated caller of a workspace route (see `caller_from_request`)."""
    return caller_from_request(session, ws, request)


CurrentCaller = Annotated[Caller, Depends(get_caller)]


def get_caller_for_upstream(
    context: Context,
    request: Request,
    ws: Annotated[str, Path(description="Workspace id")],
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    """Like `get_caller`, but in a session of its own, closed before the route runs.

    For routes that call an upstream (a model endpoint's test, an MCP server's discovery): no
    database connection is held while a slow provider or server answers.
    """
    with context.database.session() as session:
        return caller_from_request(session, ws, request)


UpstreamCaller = Annotated[Caller, Depends(get_caller_for_upstream)]
