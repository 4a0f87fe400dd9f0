"""The process half of a stdio MCP server, kept free of the `mcp` SDK: the asyncio loop thread
the servers live on, and the spawning of a server's process.

Split from `stdio` so that the runtime can start every server's process first and import the
SDK (about half a second) while those processes boot in parallel: a server's own start-up
(a Python server imports its SDK too) then overlaps ours instead of following it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from actana.protocol.payloads import McpServerSpec

T = TypeVar("T")

MAX_LINE_BYTES = 16 * 1024 * 1024


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        """Start the loop's thread."""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="actana-mcp-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the loop; its future can be waited on from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Stop the loop and wait for its thread (briefly: it holds nothing that must finish)."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


async def spawn(spec: McpServerSpec, env: dict[str, str], cwd: str) -> asyncio.subprocess.Process:
    """Start `spec`'s command with pipes on all three streams, in a process group of its own
    (killed as one at the end), reading lines of at most MAX_LINE_BYTES.

    Raises:
        OSError: the command cannot be run (missing, not executable, ...).
    """
    return await asyncio.create_subprocess_exec(
        spec.command or "",
        *spec.args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
        limit=MAX_LINE_BYTES,
    )


def close_transport(process: asyncio.subprocess.Process) -> None:
    """Close an exited process's transport (and its pipes) now. asyncio leaves it open until the
    garbage collector finalises it, with a ResourceWarning at a random later moment; on CPython
    3.11 such a late finaliser can even break an unrelated ast.parse ("AST constructor recursion
    depth mismatch")."""
    transport = getattr(process, "_transport", None)
    if transport is not None:
        transport.close()


async def _kill_and_reap(spawned: concurrent.futures.Future[asyncio.subprocess.Process]) -> None:
    process = await asyncio.wrap_future(spawned)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
    close_transport(process)


def kill_spawned(
    loop: LoopThread, spawned: concurrent.futures.Future[asyncio.subprocess.Process]
) -> None:
    """SIGKILL the process group of a server spawned on `loop` that no session took over, and
    reap it (waiting for the spawn itself if needed); a spawn that failed left nothing."""
    with contextlib.suppress(Exception):
        loop.submit(_kill_and_reap(spawned)).result(timeout=10)
