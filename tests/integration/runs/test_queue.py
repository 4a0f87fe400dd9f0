"""The runs table as a queue: concurrent claims never share a run; slots respect their caps."""

from __future__ import annotations

import threading

from sqlalchemy import select

from actana.crew.workspaces import create_workspace
from actana.db.models import Run, new_id
from actana.runs import queue


def _queue_runs(context, count: int, workspaces: int = 1) -> list[str]:
    ids = []
    with context.database.session() as session:
        spaces = [create_workspace(session, f"q{i}", actor="test")[0].id for i in range(workspaces)]
        for i in range(count):
            run = Run(
                id=new_id("run"),
                workspace_id=spaces[i % workspaces],
                agent_id="ag_" + "0" * 20,
                agent_name="a",
                prompt="p",
                flavor="native",
                timeout_sec=30,
            )
            session.add(run)
            ids.append(run.id)
    return ids


def test_concurrent_workers_never_claim_a_run_twice(context):
    ids = _queue_runs(context, 120)
    claims: dict[str, list[str]] = {}
    barrier = threading.Barrier(8)

    def worker(name: str) -> None:
        mine: list[str] = []
        barrier.wait()
        while (run_id := queue.claim_next(context.database, name)) is not None:
            mine.append(run_id)
        claims[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [run_id for mine in claims.values() for run_id in mine]
    assert sorted(everything) == sorted(ids)  # each run claimed exactly once
    with context.database.session() as session:
        rows = list(session.scalars(select(Run)))
    assert all(r.status == "running" for r in rows)
    owner = {run_id: name for name, mine in claims.items() for run_id in mine}
    assert all(r.worker_id == owner[r.id] for r in rows)


def test_claims_go_oldest_first(context):
    ids = _queue_runs(context, 3)
    got = [queue.claim_next(context.database, "w") for _ in range(4)]
    assert got == [*ids, None]


def test_slots_respect_global_and_workspace_caps(context):
    ids = _queue_runs(context, 12, workspaces=3)
    for _ in ids:
        assert queue.claim_next(context.database, "w") is not None
    granted: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(ids))

    def take(run_id: str) -> None:
        barrier.wait()
        if queue.try_acquire_slot(context.database, run_id, total=5, per_workspace=2):
            with lock:
                granted.append(run_id)

    threads = [threading.Thread(target=take, args=(run_id,)) for run_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 5
    with context.database.session() as session:
        rows = {r.id: r for r in session.scalars(select(Run))}
    per_workspace: dict[str, int] = {}
    for run_id in granted:
        per_workspace[rows[run_id].workspace_id] = (
            per_workspace.get(rows[run_id].workspace_id, 0) + 1
        )
    assert max(per_workspace.values()) <= 2
    assert sum(r.slot_acquired for r in rows.values()) == 5
