"""End what a dead worker left behind: runs stuck `running`, and their sandboxes.

A worker that is killed (SIGKILL, OOM, power loss) cannot run its cleanup. Another worker, at
its start and then periodically, finds runs whose worker stopped heart-beating, ends them as
failed with a proper terminal line (the stream stays verifiable), and removes every sandbox of
this host whose run is over or unknown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from anyio import to_thread
from sqlalchemy import select, update

from actana.api.context import AppContext
from actana.db.models import Run, utcnow
from actana.runs import queue, storage
from actana.runs.channel import remove_leftover_dirs
from actana.runs.ingest import RunRecorder
from actana.sandboxes import SandboxBackend, SandboxUnavailableError
from actana.security import otp

log = logging.getLogger(__name__)
DEAD_WORKER = "its worker stopped (crashed or was killed) before the run ended"


def _take_orphans(context: AppContext, stale_after: timedelta) -> list[Run]:
    """Mark orphaned runs failed in the database (exactly once) and return them."""
    taken: list[Run] = []
    for run_id in queue.orphaned_runs(context.database, stale_after=stale_after):
        with context.database.session() as session:
            won = session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "running")
                .values(
                    status="failed",
                    error_code="sandbox_failed",
                    error_message=DEAD_WORKER,
                    ended_at=utcnow(),
                    slot_acquired=False,
                )
                .execution_options(synchronize_session=False)
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another reaper got it first
            otp.revoke_run_tokens(session, run_id)
            row = session.get(Run, run_id)
            assert row is not None
            taken.append(row)
    return taken


def _end_stream(context: AppContext, run: Run) -> str | None:
    directory = storage.run_dir(context.settings, run.workspace_id, run.id)
    directory.mkdir(parents=True, exist_ok=True)
    recorder = RunRecorder.resume(run.id, directory)
    if recorder.closed:
        return None
    for phase in recorder.missing_phases():
        recorder.phase(phase, 0, "skipped", f"{phase} skipped: {DEAD_WORKER}")
    summary = recorder.finish(error=("sandbox_failed", DEAD_WORKER), files=run.output_files)
    return summary.chain


def _terminal_or_unknown(context: AppContext, run_ids: list[str]) -> set[str]:
    with context.database.session() as session:
        live = set(
            session.scalars(select(Run.id).where(Run.id.in_(run_ids), Run.status.in_(queue.ACTIVE)))
        )
    return set(run_ids) - live


@dataclass
class Sweep:
    """What one sweep did."""

    runs_failed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """`<backend> <run id>` of each sandbox removed."""
    skipped: list[str] = field(default_factory=list)
    """Backends that could not be asked, and why."""

    def __bool__(self) -> bool:
        return bool(self.runs_failed or self.removed)


async def reap(
    context: AppContext, backends: list[SandboxBackend], stale_after: timedelta
) -> Sweep:
    """One sweep: fail orphaned runs, then remove sandboxes whose run is over or unknown.

    A backend that cannot be asked (no Docker daemon) is skipped: there is nothing of it to
    remove that could be removed now, and the native sweep must still happen.
    """
    orphans = await to_thread.run_sync(_take_orphans, context, stale_after)
    for run in orphans:
        chain = await to_thread.run_sync(_end_stream, context, run)
        if chain is not None:
            await to_thread.run_sync(_store_chain, context, run.id, chain)
        log.warning("run %s failed: %s", run.id, DEAD_WORKER)
    sweep = Sweep(runs_failed=[run.id for run in orphans])
    for run in orphans:
        await to_thread.run_sync(remove_leftover_dirs, run.id)
    for backend in backends:
        try:
            refs = await backend.list_own()
        except SandboxUnavailableError as exc:
            sweep.skipped.append(f"{backend.name}: {exc}")
            continue
        dead = await to_thread.run_sync(_terminal_or_unknown, context, [r.run_id for r in refs])
        # A sandbox given to no run yet (a warm container) belongs to its worker while it lives.
        live = await to_thread.run_sync(
            lambda: queue.live_workers(context.database, stale_after=stale_after)
        )
        for ref in refs:
            if (ref.run_id in dead) if ref.run_id else (ref.worker_id not in live):
                await backend.remove_by_ref(ref)
                if ref.run_id:
                    await to_thread.run_sync(remove_leftover_dirs, ref.run_id)
                sweep.removed.append(f"{backend.name} {ref.run_id or ref.handle[:12]}")
    return sweep


def _store_chain(context: AppContext, run_id: str, chain: str) -> None:
    with context.database.session() as session:
        row = session.get(Run, run_id)
        if row is not None:
            row.chain = chain
