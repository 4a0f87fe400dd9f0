"""A run's channel: the sandbox API served on a unix socket that only this run's sandbox gets.

Requests arriving on it carry the run id in the ASGI scope, so a token of another run is refused
even if it leaked. The socket lives in a fresh private directory with a short path (unix socket
paths are limited to ~108 bytes).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from actana.api.context import AppContext
from actana.api.errors import install_error_handlers
from actana.api.routes import sandbox, sandbox_mcp
from actana.mcp.bridge import close_run_sessions
from actana.protocol.payloads import CHANNEL_EGRESS_SOCKET
from actana.runs.egress import EgressProxy
from actana.sandboxes.channel_dir import remove_tree

CHANNEL_SCOPE_KEY = "actana_channel_run"
DIR_PREFIX = "actana-ch-"


def remove_leftover_dirs(run_id: str) -> int:
    """Delete the channel directories of `run_id` that a dead worker left; how many."""
    removed = 0
    for directory in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}{run_id}-*"):
        if directory.is_dir() and not directory.is_symlink():
            remove_tree(directory, ignore_errors=True)  # its skill folders are read-only
            removed += 1
    return removed


def create_sandbox_app(context: AppContext) -> FastAPI:
    """An app with only the sandbox API: nothing else is reachable over a run channel."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.context = context
    install_error_handlers(app)
    app.include_router(sandbox.router)
    app.include_router(sandbox_mcp.router)
    return app


class _BoundToRun:
    """ASGI wrapper that stamps every request with the run whose channel it came in on."""

    def __init__(self, app: Any, run_id: str) -> None:
        self.app = app
        self.run_id = run_id

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, CHANNEL_SCOPE_KEY: self.run_id}
        await self.app(scope, receive, send)


class RunChannel:
    """Serve the sandbox app on a per-run unix socket for as long as the run lives."""

    def __init__(self, app: FastAPI, run_id: str, egress: EgressProxy | None = None) -> None:
        # Named after the run, so that the reaper can find it when the worker died.
        self.directory = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{run_id}-"))
        # The sandbox runs as another uid: it must be able to reach (not list) this directory.
        self.directory.chmod(0o711)
        self.socket_path = self.directory / "channel.sock"
        self._app, self._run_id = app, run_id
        # The run's egress proxy, on `egress.sock` next to the channel socket (the only way
        # out of a sandbox that has no network); None: no socket, so no egress at all.
        self.egress = egress
        config = uvicorn.Config(
            _BoundToRun(app, run_id),
            uds=str(self.socket_path),
            lifespan="off",
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return f"unix:{self.socket_path}"

    async def start(self) -> None:
        if self.egress is not None:
            await self.egress.start(self.directory / CHANNEL_EGRESS_SOCKET)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the start-up error
                raise RuntimeError("the run channel stopped during start-up")
            await asyncio.sleep(0.001)

    async def stop(self) -> None:
        """Close the channel at once.

        It is stopped after the sandbox is removed, so nobody is left to talk to it: uvicorn's
        graceful shutdown (a 0.1 s exit poll plus a 0.1 s drain) would only add ~150 ms to
        every run's cleanup.
        """
        for listener in self._server.servers:
            listener.close()
        for connection in list(self._server.server_state.connections):
            connection.shutdown()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.egress is not None:
            await self.egress.stop()
        # The run is over: so are the MCP sessions its bridge calls opened.
        await close_run_sessions(self._app, self._run_id)
        remove_tree(self.directory, ignore_errors=True)  # its skill folders are read-only
