"""Workspaces (tenants) and their API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from actana.crew.common import Name, StrictModel
from actana.db.models import ApiKey, AuditEvent, Workspace, new_id
from actana.exceptions import ConflictError
from actana.security.api_keys import issue_api_key
from actana.security.audit import record_audit


class WorkspacePublic(BaseModel):
    id: str
    name: str
    created_at: datetime


class ApiKeyCreate(StrictModel):
    name: Name = "default"


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyPublic:
        return cls(id=key.id, name=key.name, created_at=key.created_at, revoked_at=key.revoked_at)


class ApiKeyIssued(ApiKeyPublic):
    """Returned once, at creation: `api_key` is never shown again."""

    api_key: str = Field(description="The key to send as `Authorization: Bearer <api_key>`")


class AuditEventPublic(BaseModel):
    id: int
    ts: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, object]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventPublic:
        return cls(
            id=event.id,
            ts=event.ts,
            actor=event.actor,
            action=event.action,
            target=event.target,
            detail=event.detail,
        )


def create_workspace(session: Session, name: str, *, actor: str) -> tuple[Workspace, str]:
    """A new workspace and its first API key (plaintext, shown once)."""
    if session.scalar(select(Workspace).where(Workspace.name == name)) is not None:
        raise ConflictError(f"a workspace named {name!r} already exists")
    workspace = Workspace(id=new_id("ws"), name=name)
    session.add(workspace)
    session.flush()
    record_audit(session, "workspace.created", actor=actor, workspace_id=workspace.id)
    _key, plaintext = issue_api_key(session, workspace.id, name="default", actor=actor)
    return workspace, plaintext
