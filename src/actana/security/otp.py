"""One-time tokens for a run's sandbox, and the run's session token for the model gateway.

Three single-use tokens per provision (setup, run, upload): 256-bit random, stored only as
SHA-256, bound to (run, purpose), expiring, and redeemed by one conditional UPDATE so that of N
concurrent redemptions exactly one wins. The session token is not single-use: it authenticates
the run's model calls until cleanup revokes it. Every failure looks the same to the caller; the
audit trail records why (never the token).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from actana.db.models import RunToken, utcnow
from actana.security.audit import record_audit

SETUP, RUN, UPLOAD, SESSION = "setup", "run", "upload", "session"
ONE_TIME_PURPOSES = (SETUP, RUN, UPLOAD)
TTL = {
    SETUP: timedelta(minutes=10),
    RUN: timedelta(minutes=10),
    UPLOAD: timedelta(minutes=60),
}


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_run_tokens(session: Session, run_id: str, *, not_after: datetime) -> dict[str, str]:
    """Mint the three one-time tokens of a provision; return purpose → plaintext (never stored).

    Each expires after its TTL (10 / 10 / 60 minutes) or at `not_after` (the latest moment the
    run can still be alive), whichever is first.
    """
    now = utcnow()
    tokens: dict[str, str] = {}
    for purpose in ONE_TIME_PURPOSES:
        token = secrets.token_urlsafe(32)
        session.add(
            RunToken(
                run_id=run_id,
                purpose=purpose,
                token_sha256=token_digest(token),
                expires_at=min(now + TTL[purpose], not_after),
            )
        )
        tokens[purpose] = token
    record_audit(session, "otp.issued", actor="worker", target=run_id, purposes=list(tokens))
    return tokens


def redeem(session: Session, token: str, purpose: str, *, run_id: str | None = None) -> str | None:
    """Spend a one-time token; return its run id, or None for any kind of failure.

    Args:
        session: the request's session; the redemption commits with it.
        token: what the sandbox presented.
        purpose: what the endpoint being called needs (`setup`, `run` or `upload`).
        run_id: when the call arrived on a run's own channel, the run it must belong to.
    """
    row = session.scalar(select(RunToken).where(RunToken.token_sha256 == token_digest(token)))
    reason = _refusal(row, purpose, run_id)
    if reason is None and row is not None:
        now = utcnow()
        # The one conditional UPDATE: whoever flips used_at first wins; everyone else sees 0 rows.
        won = session.execute(
            update(RunToken)
            .where(RunToken.id == row.id, RunToken.used_at.is_(None), RunToken.expires_at > now)
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if won.rowcount == 1:  # type: ignore[attr-defined]
            record_audit(
                session, "otp.redeemed", actor="sandbox", target=row.run_id, purpose=purpose
            )
            return row.run_id
        reason = "already used"
    record_audit(
        session,
        "otp.refused",
        actor="sandbox",
        target=row.run_id if row is not None else None,
        purpose=purpose,
        reason=reason,
    )
    return None


def _refusal(row: RunToken | None, purpose: str, run_id: str | None) -> str | None:
    if row is None:
        return "unknown token"
    if row.purpose != purpose:
        return f"token is for {row.purpose}"
    if run_id is not None and row.run_id != run_id:
        return "token of another run"
    if row.used_at is not None:
        return "already used"
    if row.expires_at <= utcnow():
        return "expired"
    return None


def issue_session_token(session: Session, run_id: str, *, not_after: datetime) -> str:
    """The run's token for model and bridge calls, valid until cleanup or `not_after`."""
    token = secrets.token_urlsafe(32)
    session.add(
        RunToken(
            run_id=run_id, purpose=SESSION, token_sha256=token_digest(token), expires_at=not_after
        )
    )
    return token


def check_session_token(session: Session, token: str, *, run_id: str | None = None) -> str | None:
    """The run id a live session token belongs to, or None."""
    row = session.scalar(select(RunToken).where(RunToken.token_sha256 == token_digest(token)))
    if row is None or row.purpose != SESSION or row.used_at is not None:
        return None
    if row.expires_at <= utcnow() or (run_id is not None and row.run_id != run_id):
        return None
    return row.run_id


def revoke_run_tokens(session: Session, run_id: str) -> None:
    """At cleanup: every token of the run, spent or not, stops working."""
    session.execute(
        update(RunToken)
        .where(RunToken.run_id == run_id, RunToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
