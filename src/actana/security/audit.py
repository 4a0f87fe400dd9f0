"""The security audit trail: who did what to which object. Callers pass names, never values."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from actana.db.models import AuditEvent


def record_audit(
    session: Session,
    action: str,
    *,
    actor: str,
    workspace_id: str | None = None,
    target: str | None = None,
    **detail: Any,
) -> None:
    """Add one audit event to the session's transaction (it commits with the change it records).

    Args:
        session: the open session of the change being audited.
        action: a dotted verb such as `api_key.issued` or `secret.written`.
        actor: who did it: `api_key:<id>`, `cli`, or `system`.
        workspace_id: the tenant concerned, if any.
        target: the object acted on, by id.
        detail: extra JSON-safe facts. Never put a secret, token or key here.
    """
    session.add(
        AuditEvent(
            action=action, actor=actor, workspace_id=workspace_id, target=target, detail=detail
        )
    )
