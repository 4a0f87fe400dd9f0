"""Workers: claim queued runs and drive them; heartbeat; in-process or standalone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

from anyio import to_thread

from actana.api.context import AppContext
from actana.runs import queue
from actana.runs.backends import sandbox_limits
from actana.runs.channel import create_sandbox_app
from actana.runs.driver import RunDriver
from actana.runs.recovery import reap
from actana.sandboxes import SandboxUnavailableError

log = logging.getLogger(__name__)
IDLE_POLL_SEC = 0.5
HEARTBEAT_SEC = 5.0
REAP_EVERY_SEC = 30.0


class WorkerPool:
    """`count` claim loops sharing one worker identity, one heartbeat and one sandbox app."""

    def __init__(self, context: AppContext, count: int) -> None:
        self.context = context
        self.count = count
        self.worker_id = queue.new_worker_id()
        self.sandbox_app = create_sandbox_app(context)
        self.backends = context.sandboxes
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self.context.live.bind(asyncio.get_running_loop())
        await to_thread.run_sync(queue.register_worker, self.context.database, self.worker_id)
        await self._reap()
        await self._prepare_backends()
        self._tasks = [asyncio.create_task(self._heartbeat())]
        self._tasks += [asyncio.create_task(self._claim_loop(i)) for i in range(self.count)]
        log.info("worker %s started with %d slot(s)", self.worker_id, self.count)

    async def stop(self) -> None:
        """Stop claiming; runs in progress are cancelled and end through their cleanup, so
        none is left `running` and no sandbox is left behind."""
        self._stopping.set()
        self.context.live.wake_workers()
        for run_id in self.context.live.active_runs():
            self.context.live.notify_cancel(run_id)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for backend in self.backends.all():
            await backend.close()
        await to_thread.run_sync(queue.unregister_worker, self.context.database, self.worker_id)

    async def _prepare_backends(self) -> None:
        """Let backends get ready (the docker backend warms its pool); a backend that cannot
        is reported, not fatal: its runs fail (or fall back) with the reason."""
        limits = sandbox_limits(self.context.settings)
        for backend in self.backends.all():
            try:
                await backend.prepare(self.worker_id, limits)
            except SandboxUnavailableError as exc:
                log.info("%s sandbox not prepared: %s", backend.name, exc)

    async def _reap(self) -> None:
        try:
            stale = timedelta(seconds=self.context.settings.worker_stale_after_sec)
            swept = await reap(self.context, self.backends.all(), stale)
        except Exception:
            log.exception("reaping failed")
            return
        if swept:
            log.warning("reaper: failed runs %s, removed %s", swept.runs_failed, swept.removed)

    async def _heartbeat(self) -> None:
        # Beat well within the staleness others judge us by: a live worker must never look dead.
        interval = min(HEARTBEAT_SEC, self.context.settings.worker_stale_after_sec / 3)
        next_sweep = time.monotonic() + REAP_EVERY_SEC
        while not self._stopping.is_set():
            try:
                await to_thread.run_sync(queue.heartbeat, self.context.database, self.worker_id)
            except Exception:
                log.exception("heartbeat failed")
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + REAP_EVERY_SEC
                await self._reap()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)

    async def _claim_loop(self, index: int) -> None:
        while not self._stopping.is_set():
            try:
                run_id = await to_thread.run_sync(
                    queue.claim_next, self.context.database, self.worker_id
                )
            except Exception:
                log.exception("claim failed")
                run_id = None
            if run_id is None:
                await self.context.live.wait_for_work(IDLE_POLL_SEC)
                continue
            log.info("worker %s/%d claimed run %s", self.worker_id, index, run_id)
            driver = RunDriver(
                self.context, self.sandbox_app, self.backends, self.worker_id, run_id
            )
            await driver.drive()
