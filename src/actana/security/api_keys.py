"""Workspace API keys: random, shown once, stored as SHA-256, compared in constant time.

A key reads `ak_<id>.<secret>`: the id finds the row without a scan, the 256-bit secret proves
possession. A fast hash is right here because the secret is random, not a password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from actana.db.models import ApiKey, new_id, utcnow
from actana.exceptions import NotFoundError
from actana.security.audit import record_audit

_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_api_key(
    session: Session, workspace_id: str, *, name: str, actor: str
) -> tuple[ApiKey, str]:
    """Create a key; return the row and the plaintext, which is never retrievable again."""
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("ak"), workspace_id=workspace_id, name=name, secret_sha256=_digest(secret)
    )
    session.add(key)
    record_audit(session, "api_key.issued", actor=actor, workspace_id=workspace_id, target=key.id)
    return key, f"{key.id}.{secret}"


def authenticate_api_key(session: Session, presented: str) -> ApiKey | None:
    """The live key `presented` proves, or None (unknown, malformed, wrong secret or revoked)."""
    key_id, _, secret = presented.partition(".")
    key = session.get(ApiKey, key_id) if key_id and secret else None
    expected = key.secret_sha256 if key is not None else _DUMMY_HASH
    # Always compare, so an unknown id costs the same as a wrong secret.
    matches = hmac.compare_digest(expected, _digest(secret))
    if key is None or not matches or key.revoked_at is not None:
        return None
    return key


def list_api_keys(session: Session, workspace_id: str) -> list[ApiKey]:
    """The workspace's keys, oldest first (metadata only)."""
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.created_at)
        )
    )


def revoke_api_key(session: Session, workspace_id: str, key_id: str, *, actor: str) -> ApiKey:
    """Revoke a key of this workspace; revoking twice is harmless."""
    key = session.get(ApiKey, key_id)
    if key is None or key.workspace_id != workspace_id:
        raise NotFoundError(f"no API key {key_id!r} in this workspace")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record_audit(
            session, "api_key.revoked", actor=actor, workspace_id=workspace_id, target=key_id
        )
    return key
