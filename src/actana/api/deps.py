"""FastAPI dependencies: the app context, a database session, and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy.orm import Session

from actana.api.context import AppContext
from actana.exceptions import AuthenticationError, NotFoundError
from actana.security.api_keys import authenticate_api_key


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


def get_caller(
    session: DbSession,
    ws: Annotated[str, Path(description="Workspace id")],
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    """Authenticate the bearer key and check it belongs to the workspace in the path.

    A valid key for another workspace gets the same 404 as a workspace that does not exist, so
    a caller learns nothing about other tenants.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError()
    key = authenticate_api_key(session, token.strip())
    if key is None:
        raise AuthenticationError()
    if key.workspace_id != ws:
        raise NotFoundError("workspace not found")
    return Caller(workspace_id=ws, api_key_id=key.id)


CurrentCaller = Annotated[Caller, Depends(get_caller)]
