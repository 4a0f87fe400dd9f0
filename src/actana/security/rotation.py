"""`actana keys rotate`: re-wrap every secret under the newest master key, resumably.

Each batch is its own transaction and each row is updated with a compare-and-set on its old key
id, so a rotation killed at any point leaves every row readable (on the old key or the new), and
running it again finishes the job without touching a row twice. Secrets are re-encrypted from
their plaintext, never wrapped a second time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update

from actana.db.engine import Database
from actana.db.models import MasterKeyCanary, Secret, utcnow
from actana.exceptions import KeyringError
from actana.security.audit import record_audit
from actana.security.keyring import Keyring
from actana.security.master_keys import key_ids_in_use, verify_keyring
from actana.security.secret_store import binding_of


@dataclass
class RotationReport:
    """What one `rotate` call did."""

    rewrapped: int = 0
    batches: int = 0
    retired_key_ids: list[str] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)


def rotate(
    database: Database,
    keyring: Keyring,
    *,
    batch_size: int = 200,
    batch_delay: float = 0.0,
    on_batch: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Move every secret to the newest key, then retire canaries of keys no row uses any more.

    Args:
        database: where the secrets are.
        keyring: newest key first; must hold every key id still in use.
        batch_size: rows per transaction.
        batch_delay: seconds to pause between batches, to go easy on a busy database.
        on_batch: called after each committed batch with (rows in batch, total so far).

    Raises:
        ConfigError: a key in use is not configured.
        KeyringError: a row cannot be decrypted (altered, or bound to another row).
    """
    verify_keyring(database, keyring)
    primary = keyring.primary.key_id
    report = RotationReport()
    with database.session() as session:
        record_audit(session, "keys.rotation_started", actor="cli", target=primary)
    while True:
        with database.session() as session:
            rows = list(
                session.scalars(
                    select(Secret)
                    .where(Secret.key_id != primary)
                    .order_by(Secret.id)
                    .limit(batch_size)
                )
            )
            if not rows:
                break
            for row in rows:
                binding = binding_of(row)
                try:
                    plaintext = keyring.decrypt(row.ciphertext, binding)
                except KeyringError as exc:
                    raise KeyringError(
                        f"{exc.message}; fix or delete that secret, then run rotate again"
                    ) from None
                session.execute(
                    update(Secret)
                    .where(Secret.id == row.id, Secret.key_id == row.key_id)
                    .values(
                        key_id=primary,
                        ciphertext=keyring.encrypt(plaintext, binding),
                        updated_at=utcnow(),
                    )
                    .execution_options(synchronize_session=False)
                )
        report.rewrapped += len(rows)
        report.batches += 1
        if on_batch is not None:
            on_batch(len(rows), report.rewrapped)
        if batch_delay:
            time.sleep(batch_delay)
    report.remaining = key_ids_in_use(database)
    with database.session() as session:
        for canary in session.scalars(select(MasterKeyCanary)):
            if canary.key_id != primary and canary.key_id not in report.remaining:
                report.retired_key_ids.append(canary.key_id)
        session.execute(
            delete(MasterKeyCanary).where(MasterKeyCanary.key_id.in_(report.retired_key_ids))
        )
        record_audit(
            session,
            "keys.rotated",
            actor="cli",
            target=primary,
            rewrapped=report.rewrapped,
            retired=report.retired_key_ids,
        )
    return report
