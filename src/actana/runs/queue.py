"""The runs table as a queue: atomic claims, sandbox slots, worker heartbeats.

Claiming is one statement that flips `queued` to `running` for exactly one worker: on PostgreSQL
a `FOR UPDATE SKIP LOCKED` sub-select (workers never wait on each other's row locks); on SQLite a
conditional UPDATE (SQLite serialises writers, so the WHERE re-check is the lock).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import aliased

from actana.db.engine import Database
from actana.db.models import Run, Worker, utcnow

ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "timeout", "cancelled")


def claim_next(database: Database, worker_id: str) -> str | None:
    """Claim the oldest queued run for `worker_id`; None when the queue is empty."""
    now = utcnow()
    with database.session() as session:
        oldest = (
            select(Run.id).where(Run.status == "queued").order_by(Run.created_at, Run.id).limit(1)
        )
        if not database.is_sqlite:
            oldest = oldest.with_for_update(skip_locked=True)
        return session.execute(
            update(Run)
            .where(Run.id == oldest.scalar_subquery(), Run.status == "queued")
            .values(status="running", worker_id=worker_id, claimed_at=now)
            .returning(Run.id)
            .execution_options(synchronize_session=False)
        ).scalar()


def try_acquire_slot(database: Database, run_id: str, *, total: int, per_workspace: int) -> bool:
    """Take a sandbox slot for a claimed run if the global and workspace caps allow it.

    One conditional UPDATE whose WHERE counts the slots in use: on SQLite a single statement
    runs under the write lock, so the count cannot go stale between check and take (the Python
    driver runs SELECTs outside the transaction, so a read-then-write would race). PostgreSQL
    evaluates the counts on a snapshot, so decisions there are serialised by an advisory lock.
    """
    with database.session() as session:
        if not database.is_sqlite:
            session.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        run = session.get(Run, run_id)
        if run is None or run.status != "running":
            return False
        if run.slot_acquired:
            return True
        busy = aliased(Run)
        in_use = select(func.count()).where(busy.status == "running", busy.slot_acquired.is_(True))
        in_use_here = in_use.where(busy.workspace_id == run.workspace_id)
        taken = session.execute(
            update(Run)
            .where(
                Run.id == run_id,
                Run.status == "running",
                Run.slot_acquired.is_(False),
                in_use.scalar_subquery() < total,
                in_use_here.scalar_subquery() < per_workspace,
            )
            .values(slot_acquired=True)
            .execution_options(synchronize_session=False)
        )
        return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{os.urandom(3).hex()}"


def register_worker(database: Database, worker_id: str) -> None:
    with database.session() as session:
        session.add(Worker(id=worker_id, hostname=socket.gethostname()[:255], pid=os.getpid()))


def heartbeat(database: Database, worker_id: str) -> None:
    with database.session() as session:
        session.execute(update(Worker).where(Worker.id == worker_id).values(heartbeat_at=utcnow()))


def unregister_worker(database: Database, worker_id: str) -> None:
    with database.session() as session:
        worker = session.get(Worker, worker_id)
        if worker is not None:
            session.delete(worker)


def _gone_locally(worker: Worker, hostname: str) -> bool:
    """True when the worker ran on this host and its process no longer exists."""
    if worker.hostname != hostname:
        return False
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # some process holds the pid: assume it is still our worker
    return False


def orphaned_runs(database: Database, *, stale_after: timedelta) -> list[str]:
    """Running runs whose worker is gone: unknown, silent for `stale_after`, or (same host)
    its process is dead."""
    cutoff = utcnow() - stale_after
    hostname = socket.gethostname()[:255]
    with database.session() as session:
        workers = {w.id: w for w in session.scalars(select(Worker))}
        dead = {
            wid
            for wid, w in workers.items()
            if w.heartbeat_at < cutoff or _gone_locally(w, hostname)
        }
        running = session.execute(select(Run.id, Run.worker_id).where(Run.status == "running"))
        return [
            run_id
            for run_id, worker_id in running
            if worker_id is None or worker_id not in workers or worker_id in dead
        ]


def live_workers(database: Database, *, stale_after: timedelta) -> set[str]:
    """Ids of the workers that still heartbeat (and, on this host, whose process exists)."""
    cutoff = utcnow() - stale_after
    hostname = socket.gethostname()[:255]
    with database.session() as session:
        return {
            w.id
            for w in session.scalars(select(Worker))
            if w.heartbeat_at >= cutoff and not _gone_locally(w, hostname)
        }
