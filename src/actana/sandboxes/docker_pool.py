"""The warm pool: containers created and started ahead of any run, waiting for a handover.

A warm container has paid everything that does not depend on the run: the container's
creation and start, Python's start-up and the runtime's imports (its launcher blocks on stdin).
It holds nothing of any run: no token, no file, no command (those come with the handover), and
it is never reused: taken once, removed with its run.

Its run channel cannot be mounted after the fact, so each warm container gets a private,
empty directory mounted at /run/actana; when a run takes it, the run's channel socket is
hard-linked into that directory (a unix socket is found by its inode, so the link reaches the
same listener). Both directories are made by `tempfile.mkdtemp` in the same temp folder, so
they share a filesystem; if a link still fails, the run gets a cold container instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from actana.sandboxes.base import SandboxLimits
from actana.sandboxes.channel_dir import remove_tree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmContainer:
    container_id: str
    uid: int
    channel_dir: Path
    limits: SandboxLimits
    worker_id: str


MakeFn = Callable[[SandboxLimits, str, Path], Awaitable[WarmContainer]]
RemoveFn = Callable[[WarmContainer], Awaitable[None]]


def new_channel_dir() -> Path:
    """A private directory for a warm container's channel (mode 0711: the sandbox's uid may
    reach the socket in it, not list it)."""
    directory = Path(tempfile.mkdtemp(prefix="actana-pool-"))
    directory.chmod(0o711)
    return directory


class WarmPool:
    """Up to `size` warm containers per (limits, worker); refilled in the background."""

    def __init__(self, size: int, make: MakeFn, remove: RemoveFn) -> None:
        self.size = size
        self._make = make
        self._remove = remove
        self._ready: list[WarmContainer] = []
        self._filling = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def ready(self) -> int:
        return len(self._ready)

    def take(self, limits: SandboxLimits, worker_id: str) -> WarmContainer | None:
        """A warm container made for these limits and this worker, or None."""
        for index, warm in enumerate(self._ready):
            if warm.limits == limits and warm.worker_id == worker_id:
                return self._ready.pop(index)
        return None

    def refill(self, limits: SandboxLimits, worker_id: str) -> None:
        """Start making containers until `size` are ready or on their way."""
        if self._closed:
            return
        missing = self.size - len(self._ready) - self._filling
        for _ in range(max(missing, 0)):
            self._filling += 1
            task = asyncio.get_running_loop().create_task(self._fill_one(limits, worker_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fill_one(self, limits: SandboxLimits, worker_id: str) -> None:
        channel_dir = new_channel_dir()
        try:
            warm = await self._make(limits, worker_id, channel_dir)
        except Exception as exc:
            # A failing daemon must not break runs: they get cold containers (which report
            # the real error) and the next run tries to refill again.
            remove_tree(channel_dir, ignore_errors=True)
            log.warning("warm pool: could not prepare a container: %s", exc)
            return
        finally:
            self._filling -= 1
        if self._closed:
            await self._remove(warm)
        else:
            self._ready.append(warm)

    async def close(self) -> None:
        """Remove every warm container (and stop making new ones)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        ready, self._ready = self._ready, []
        for warm in ready:
            with contextlib.suppress(Exception):
                await self._remove(warm)
