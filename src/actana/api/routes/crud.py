"""One router factory for the crew resources, which all share the same five routes.

No `from __future__ import annotations` here: FastAPI reads the body and response types from the
signatures of the nested functions, so they must be real objects, not strings.
"""

from types import ModuleType
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel

from actana.api.deps import Context, CurrentCaller, DbSession
from actana.crew.common import get_owned, list_owned
from actana.crew.pages import Limit, Offset, Page
from actana.db.models import Base


def crud_router(
    *,
    prefix: str,
    label: str,
    model: type[Base],
    service: ModuleType,
    create_schema: type[BaseModel],
    update_schema: type[BaseModel],
    public_schema: type[BaseModel],
) -> APIRouter:
    """List, create, read, update (PATCH) and delete routes for one workspace resource.

    `service` provides `create`, `update`, `delete` and `to_public` (see `actana.crew`).
    """
    router = APIRouter(prefix=prefix, tags=[label + "s"])

    def list_items(
        context: Context,
        session: DbSession,
        caller: CurrentCaller,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Any:
        rows, total = list_owned(session, model, caller.workspace_id, limit=limit, offset=offset)
        items = [service.to_public(context, session, row) for row in rows]
        return Page[public_schema](items=items, total=total, limit=limit, offset=offset)  # type: ignore[valid-type]

    def create_item(
        body: create_schema,  # type: ignore[valid-type]
        context: Context,
        session: DbSession,
        caller: CurrentCaller,
    ) -> Any:
        row = service.create(context, session, caller.workspace_id, body, caller.actor)
        session.flush()
        return service.to_public(context, session, row)

    def get_item(item_id: str, context: Context, session: DbSession, caller: CurrentCaller) -> Any:
        row = get_owned(session, model, caller.workspace_id, item_id, label)
        return service.to_public(context, session, row)

    def update_item(
        item_id: str,
        body: update_schema,  # type: ignore[valid-type]
        context: Context,
        session: DbSession,
        caller: CurrentCaller,
    ) -> Any:
        row = service.update(context, session, caller.workspace_id, item_id, body, caller.actor)
        session.flush()
        return service.to_public(context, session, row)

    def delete_item(
        item_id: str, context: Context, session: DbSession, caller: CurrentCaller
    ) -> Response:
        service.delete(context, session, caller.workspace_id, item_id)
        return Response(status_code=204)

    page_schema: Any = Page[public_schema]  # type: ignore[valid-type]
    router.add_api_route(
        "", list_items, methods=["GET"], response_model=page_schema, summary=f"List {label}s"
    )
    router.add_api_route(
        "",
        create_item,
        methods=["POST"],
        status_code=201,
        response_model=public_schema,
        summary=f"Create a {label}",
    )
    router.add_api_route(
        "/{item_id}",
        get_item,
        methods=["GET"],
        response_model=public_schema,
        summary=f"Get a {label}",
    )
    router.add_api_route(
        "/{item_id}",
        update_item,
        methods=["PATCH"],
        response_model=public_schema,
        summary=f"Update a {label}",
    )
    router.add_api_route(
        "/{item_id}", delete_item, methods=["DELETE"], status_code=204, summary=f"Delete a {label}"
    )
    return router
