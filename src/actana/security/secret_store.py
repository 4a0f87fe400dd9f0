"""Read and write encrypted values that belong to a field of a row."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from actana.db.models import Secret, new_id, utcnow
from actana.security.audit import record_audit
from actana.security.keyring import Keyring, SecretBinding


def binding_of(secret: Secret) -> SecretBinding:
    """The associated data a stored secret must have been sealed with."""
    return SecretBinding(
        secret.workspace_id, secret.owner_kind, secret.owner_id, secret.name, secret.id
    )


class SecretStore:
    """Encrypts on write, decrypts on read, audits every write (by name, never by value)."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def put(
        self,
        session: Session,
        *,
        workspace_id: str,
        owner_kind: str,
        owner_id: str,
        name: str,
        value: str,
        actor: str,
    ) -> None:
        """Store `value` as the secret `name` of (owner_kind, owner_id), replacing any old one."""
        secret = self._find(session, owner_kind, owner_id, name)
        if secret is None:
            secret = Secret(
                id=new_id("sec"),
                workspace_id=workspace_id,
                owner_kind=owner_kind,
                owner_id=owner_id,
                name=name,
            )
            session.add(secret)
        secret.key_id = self.keyring.primary.key_id
        secret.ciphertext = self.keyring.encrypt(value.encode(), binding_of(secret))
        secret.updated_at = utcnow()
        record_audit(
            session,
            "secret.written",
            actor=actor,
            workspace_id=workspace_id,
            target=f"{owner_kind}:{owner_id}",
            name=name,
        )

    def get(self, session: Session, owner_kind: str, owner_id: str, name: str) -> str | None:
        """The plaintext of one secret, or None when it was never set."""
        secret = self._find(session, owner_kind, owner_id, name)
        if secret is None:
            return None
        return self.keyring.decrypt(secret.ciphertext, binding_of(secret)).decode()

    def names(self, session: Session, owner_kind: str, owner_id: str) -> set[str]:
        """Names of the secrets an owner has set."""
        rows = session.scalars(
            select(Secret.name).where(Secret.owner_kind == owner_kind, Secret.owner_id == owner_id)
        )
        return set(rows)

    def delete(
        self, session: Session, owner_kind: str, owner_id: str, name: str | None = None
    ) -> None:
        """Delete one secret of an owner, or all of them when `name` is None."""
        statement = delete(Secret).where(
            Secret.owner_kind == owner_kind, Secret.owner_id == owner_id
        )
        if name is not None:
            statement = statement.where(Secret.name == name)
        session.execute(statement)

    @staticmethod
    def _find(session: Session, owner_kind: str, owner_id: str, name: str) -> Secret | None:
        return session.scalar(
            select(Secret).where(
                Secret.owner_kind == owner_kind, Secret.owner_id == owner_id, Secret.name == name
            )
        )
