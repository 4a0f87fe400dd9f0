"""The workspace itself, its API keys, and its audit trail."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from actana.api.deps import CurrentCaller, DbSession
from actana.crew.pages import Limit, Offset, Page
from actana.crew.workspaces import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyPublic,
    AuditEventPublic,
    WorkspacePublic,
)
from actana.db.models import AuditEvent, Workspace
from actana.security.api_keys import issue_api_key, list_api_keys, revoke_api_key

router = APIRouter(tags=["workspace"])


@router.get("")
def get_workspace(session: DbSession, caller: CurrentCaller) -> WorkspacePublic:
    workspace = session.get(Workspace, caller.workspace_id)
    assert workspace is not None  # the key's foreign key guarantees it
    return WorkspacePublic(id=workspace.id, name=workspace.name, created_at=workspace.created_at)


@router.get("/api-keys")
def get_api_keys(session: DbSession, caller: CurrentCaller) -> list[ApiKeyPublic]:
    return [ApiKeyPublic.of(key) for key in list_api_keys(session, caller.workspace_id)]


@router.post("/api-keys", status_code=201)
def create_api_key(body: ApiKeyCreate, session: DbSession, caller: CurrentCaller) -> ApiKeyIssued:
    key, plaintext = issue_api_key(session, caller.workspace_id, name=body.name, actor=caller.actor)
    session.flush()
    return ApiKeyIssued(**ApiKeyPublic.of(key).model_dump(), api_key=plaintext)


@router.delete("/api-keys/{key_id}")
def delete_api_key(key_id: str, session: DbSession, caller: CurrentCaller) -> ApiKeyPublic:
    return ApiKeyPublic.of(revoke_api_key(session, caller.workspace_id, key_id, actor=caller.actor))


@router.get("/audit-events")
def get_audit_events(
    session: DbSession, caller: CurrentCaller, limit: Limit = 50, offset: Offset = 0
) -> Page[AuditEventPublic]:
    where = AuditEvent.workspace_id == caller.workspace_id
    total = session.scalar(select(func.count()).where(where)) or 0
    events = session.scalars(
        select(AuditEvent).where(where).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
    )
    return Page(
        items=[AuditEventPublic.of(e) for e in events], total=total, limit=limit, offset=offset
    )
