"""The runtime's end of the `mcp` shim: a private unix socket that lists and calls MCP tools.

The socket lives in a fresh 0700 directory of the sandbox's temp folder, named to child
processes by $ACTANA_MCP_SOCKET; the same directory holds the `mcp` command, put first on their
PATH. The runtime makes every call itself, so the run's session token (the bridge needs it)
never leaves this process, and each call is recorded as a `step` (ids `shim-1`, `shim-2`, ...)
like a call the model makes.

Everything on this socket comes from code running in the sandbox: requests are size-capped, read
with a timeout, and checked field by field; a bad one gets an error answer saying what to fix.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shlex
import shutil
import socketserver
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actana.protocol.events import StepEvent
from actana.runtime.emit import Deadline, Emitter, describe, for_log
from actana.runtime.mcp.shim import ENV_SHIM_SOCKET, MAX_MESSAGE_BYTES
from actana.runtime.tools.base import ToolError

if TYPE_CHECKING:
    from actana.runtime.mcp.manager import McpTool

_READ_TIMEOUT_SEC = 10
_SHUTDOWN_POLL_SEC = 0.05
_MAX_REQUEST_BYTES = 1024 * 1024


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.connection.settimeout(_READ_TIMEOUT_SEC)
        try:
            raw = self.rfile.read(_MAX_REQUEST_BYTES + 1)
        except OSError:
            return
        if len(raw) > _MAX_REQUEST_BYTES:
            answer: dict[str, Any] = _refuse(f"the request exceeds {_MAX_REQUEST_BYTES} bytes")
        else:
            answer = self.server.shim.answer(raw)
        data = json.dumps(answer, ensure_ascii=False).encode()
        if len(data) > MAX_MESSAGE_BYTES:
            data = json.dumps(_refuse("the answer is too big for the shim")).encode()
        # The caller may have gone (killed by its timeout): the step says what happened.
        with contextlib.suppress(OSError):
            self.wfile.write(data)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    shim: ShimServer


def _refuse(message: str, *, usage: bool = True) -> dict[str, Any]:
    return {"ok": False, "error": message, "usage": usage}


class ShimServer:
    """Serves `mcp list` and `mcp call` for the processes of the run."""

    def __init__(
        self,
        tools: dict[str, dict[str, McpTool]],
        emitter: Emitter,
        deadline: Deadline,
        timeout: float,
        output_cap: int,
    ) -> None:
        """Open the socket and write the `mcp` command; serve in a daemon thread."""
        self._tools = tools
        self._emitter = emitter
        self._deadline = deadline
        self._timeout = timeout
        self._output_cap = output_cap
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self.directory = Path(tempfile.mkdtemp(prefix="actana-mcp-"))  # 0700
        self.socket_path = str(self.directory / "shim.sock")
        self.bin_dir = self.directory / "bin"
        self.bin_dir.mkdir(mode=0o700)
        command = self.bin_dir / "mcp"
        command.write_text(
            f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -I -m actana.runtime.mcp.shim "$@"\n'
        )
        command.chmod(0o700)
        self._server = _Server(self.socket_path, _Handler)
        self._server.shim = self
        # serve_forever notices shutdown() only between polls (0.5 s by default): a short poll
        # keeps the end of every MCP run from waiting for it.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_SEC},
            name="actana-mcp-shim",
            daemon=True,
        )
        self._thread.start()

    def env(self) -> dict[str, str]:
        """Variables for child processes: the socket, and PATH with the `mcp` command first."""
        path = os.environ.get("PATH", os.defpath)
        return {ENV_SHIM_SOCKET: self.socket_path, "PATH": f"{self.bin_dir}{os.pathsep}{path}"}

    def answer(self, raw: bytes) -> dict[str, Any]:
        """The answer to one raw request (never raises)."""
        try:
            request = json.loads(raw)
        except ValueError as exc:
            return _refuse(f"the request is not JSON: {exc}")
        if not isinstance(request, dict):
            return _refuse("the request must be a JSON object")
        op = request.get("op")
        if op == "list":
            return self._list(request.get("server"))
        if op == "call":
            return self._call(request)
        return _refuse(f"unknown op {op!r}: use 'list' or 'call'")

    def _list(self, server: Any) -> dict[str, Any]:
        if server is not None and server not in self._tools:
            return _refuse(f"no MCP server {server!r}; the servers are: {self._names()}")
        names = [server] if server is not None else list(self._tools)
        listing = {
            name: [
                {
                    "name": entry.info.name,
                    "description": entry.info.description,
                    "input_schema": entry.info.input_schema,
                }
                for entry in self._tools[name].values()
            ]
            for name in names
        }
        return {"ok": True, "servers": listing}

    def _names(self) -> str:
        return ", ".join(self._tools) or "none"

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        server, tool, arguments = (request.get(k) for k in ("server", "tool", "arguments"))
        if not isinstance(server, str) or server not in self._tools:
            return _refuse(f"no MCP server {server!r}; the servers are: {self._names()}")
        entries = self._tools[server]
        if not isinstance(tool, str) or tool not in entries:
            known = ", ".join(entries) or "none"
            return _refuse(f"the MCP server {server!r} has no tool {tool!r}; it has: {known}")
        if not isinstance(arguments, dict):
            return _refuse("the arguments must be a JSON object")
        return self._run_step(entries[tool], arguments)

    def _run_step(self, entry: McpTool, arguments: dict[str, Any]) -> dict[str, Any]:
        """Make the call as one `step` (running, then succeeded or failed)."""
        with self._ids_lock:
            step_id = f"shim-{next(self._ids)}"
        name, logged_args = entry.model_name, for_log(arguments)
        self._emitter.emit(StepEvent(id=step_id, name=name, status="running", args=logged_args))
        started = time.monotonic()
        timeout = max(0.0, min(self._timeout, self._deadline.remaining()))
        try:
            if timeout <= 0:
                raise ToolError("the run's deadline has passed")
            result = entry.call(arguments, timeout, self._output_cap)
        except ToolError as exc:
            self._step_end(step_id, name, logged_args, started, error=str(exc))
            return {"ok": False, "error": str(exc), "usage": False}
        except Exception as exc:
            self._step_end(step_id, name, logged_args, started, error=describe(exc))
            return {"ok": False, "error": describe(exc), "usage": False}
        self._step_end(step_id, name, logged_args, started, result=result)
        return {"ok": True, "result": result}

    def _step_end(
        self,
        step_id: str,
        name: str,
        args: Any,
        started: float,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        self._emitter.emit(
            StepEvent(
                id=step_id,
                name=name,
                status="failed" if error is not None else "succeeded",
                args=args,
                result=for_log(result) if result is not None else None,
                error=error,
                durationMs=round((time.monotonic() - started) * 1000),
            )
        )

    def close(self) -> None:
        """Stop serving and remove the socket and the `mcp` command."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)
