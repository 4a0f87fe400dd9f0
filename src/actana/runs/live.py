"""In-process signals between the API and the workers of the same process.

Workers live on the server's event loop; API handlers may run in worker threads. These signals
are only shortcuts: a worker in another process finds the same facts in the database (it polls
for queued runs and cancel requests), so correctness never depends on them.
"""

from __future__ import annotations

import asyncio
from typing import Any


class LiveRuns:
    """Wake-ups for idle workers, cancel notices, and the recorders of runs in progress."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._work = asyncio.Event()
        self._cancel: dict[str, asyncio.Event] = {}
        self._recorders: dict[str, Any] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the loop the workers run on (call from that loop)."""
        self._loop = loop

    def _on_loop(self, callback: Any) -> None:
        if self._loop is None or self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            callback()
        else:
            self._loop.call_soon_threadsafe(callback)

    def wake_workers(self) -> None:
        """A run was queued: an idle worker should look now rather than at its next poll."""
        self._on_loop(self._work.set)

    async def wait_for_work(self, timeout: float) -> None:
        """Return when woken or after `timeout` seconds, whichever is first."""
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            return
        finally:
            self._work.clear()

    def cancel_event(self, run_id: str) -> asyncio.Event:
        """The event set when the run's cancel is requested in this process."""
        return self._cancel.setdefault(run_id, asyncio.Event())

    def notify_cancel(self, run_id: str) -> None:
        event = self._cancel.get(run_id)
        if event is not None:
            self._on_loop(event.set)

    def register(self, run_id: str, recorder: Any) -> None:
        self._recorders[run_id] = recorder

    def unregister(self, run_id: str) -> None:
        self._recorders.pop(run_id, None)
        self._cancel.pop(run_id, None)

    def active_runs(self) -> list[str]:
        """Runs this process is executing now."""
        return list(self._recorders)

    def recorder(self, run_id: str) -> Any | None:
        """The recorder of a run this process is executing, for live followers."""
        return self._recorders.get(run_id)
