"""MCP servers the runtime starts inside the sandbox and talks to over stdin/stdout.

The `mcp` SDK is asynchronous and the runtime is not, so one asyncio loop runs in a background
thread (`LoopThread`) and the synchronous callers submit coroutines to it. Each server lives in
one long-running task that owns its process and its `ClientSession` from start to stop (anyio
cancel scopes must be entered and left by the same task); calls come in as separate tasks.

The transport is ours rather than the SDK's `stdio_client`, for three things a sandbox needs:
the server's pid (its whole process group is SIGKILLed at the end, whatever it left running),
a cap on its stderr (kept, the tail of it, for error messages) and a cap on the length of one
JSON-RPC line (a hostile server cannot fill our memory). The messages themselves are the SDK's.

This module imports the SDK at the top: import it only when a run has stdio servers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import threading
from datetime import timedelta
from typing import Any, TypeVar

import anyio
from mcp import ClientSession, types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from actana.protocol.payloads import McpServerSpec
from actana.runtime.emit import describe
from actana.runtime.mcp.catalog import ToolInfo, parse_tools
from actana.runtime.mcp.stdio_process import LoopThread, close_transport, kill_spawned
from actana.runtime.tools.base import ToolError

T = TypeVar("T")

STDERR_TAIL_BYTES = 4096
# After stdin is closed, a well-behaved server exits at once; the group is killed after this.
_EXIT_GRACE_SEC = 0.5
_MAX_LIST_PAGES = 20


def _root_cause(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio task groups wrap what their tasks raised)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class StdioServer:
    """One stdio MCP server: its process, its session, and calls to its tools."""

    def __init__(
        self,
        spec: McpServerSpec,
        loop: LoopThread,
        spawned: concurrent.futures.Future[asyncio.subprocess.Process],
    ) -> None:
        """Prepare (not start) the session with `spec`'s server, whose process `spawned` (a
        `stdio_process.spawn` submitted to `loop`) holds or will hold."""
        self.name = spec.name
        self._spec = spec
        self._loop = loop
        self._spawned = spawned
        self._stderr = bytearray()
        self._session: ClientSession | None = None
        self._pid: int | None = None
        self._stopping: asyncio.Event | None = None
        self._task: concurrent.futures.Future[None] | None = None
        self._failure: str | None = None
        self._finished = threading.Event()
        self._stop_requested = False

    def start(self) -> concurrent.futures.Future[list[ToolInfo]]:
        """Start the process and the session; the future holds the tool list when ready."""
        ready: concurrent.futures.Future[list[ToolInfo]] = concurrent.futures.Future()
        self._task = self._loop.submit(self._serve(ready))
        return ready

    async def _serve(self, ready: concurrent.futures.Future[list[ToolInfo]]) -> None:
        self._stopping = stopping = asyncio.Event()
        try:
            await self._run(ready, stopping)
        except BaseException as exc:
            cause = _root_cause(exc)
            self._failure = describe(cause)
            if not ready.done():
                ready.set_exception(cause if isinstance(cause, Exception) else RuntimeError())
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._session = None
            self._kill_group()
            self._finished.set()

    async def _run(
        self, ready: concurrent.futures.Future[list[ToolInfo]], stopping: asyncio.Event
    ) -> None:
        process = await asyncio.wrap_future(self._spawned)
        self._pid = process.pid
        incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](16)

        async def read_stdout() -> None:
            assert process.stdout is not None
            async with incoming_send:
                while line := await process.stdout.readline():  # ValueError: a line too long
                    if not line.strip():
                        continue
                    try:
                        message = types.JSONRPCMessage.model_validate_json(line)
                    except ValidationError as exc:
                        await incoming_send.send(exc)
                        continue
                    await incoming_send.send(SessionMessage(message))

        async def write_stdin() -> None:
            assert process.stdin is not None
            async with outgoing_receive:
                async for item in outgoing_receive:
                    data = item.message.model_dump_json(by_alias=True, exclude_none=True)
                    process.stdin.write(data.encode() + b"\n")
                    await process.stdin.drain()

        async def read_stderr() -> None:
            assert process.stderr is not None
            while chunk := await process.stderr.read(65536):
                self._stderr += chunk
                del self._stderr[:-STDERR_TAIL_BYTES]

        async with anyio.create_task_group() as group:
            group.start_soon(read_stdout)
            group.start_soon(write_stdin)
            group.start_soon(read_stderr)
            try:
                async with ClientSession(incoming, outgoing) as session:
                    await session.initialize()
                    ready.set_result(await self._list_tools(session))
                    self._session = session
                    await stopping.wait()
            finally:
                self._session = None
                if process.stdin is not None:
                    process.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), _EXIT_GRACE_SEC)
                self._kill_group()
                await process.wait()
                close_transport(process)
                group.cancel_scope.cancel()

    async def _list_tools(self, session: ClientSession) -> list[ToolInfo]:
        raw: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(_MAX_LIST_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            raw += (tool.model_dump(mode="json", by_alias=True) for tool in page.tools)
            cursor = page.nextCursor
            if not cursor:
                break
        tools, _dropped = parse_tools(raw)
        return tools

    def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Call `tool` with `arguments`, waiting at most `timeout` seconds.

        Returns:
            `{"content": [...], "is_error": bool, "structured": ...}`.

        Raises:
            ToolError: the server is gone, timed out, or broke the protocol.
        """
        session = self._session
        if session is None:
            raise ToolError(f"the MCP server {self.name!r} is not running. {self.problem()}")
        future = self._loop.submit(
            session.call_tool(tool, arguments, read_timeout_seconds=timedelta(seconds=timeout))
        )
        try:
            result = future.result(timeout + 1)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ToolError(f"the MCP tool {tool!r} did not answer within {timeout:g} s") from None
        except Exception as exc:  # the SDK's McpError, a validation error, a closed stream
            raise ToolError(
                f"the MCP server {self.name!r} failed on {tool!r}: {describe(_root_cause(exc))}"
                + self._stderr_note()
            ) from None
        return {
            "content": [b.model_dump(mode="json", by_alias=True) for b in result.content],
            "is_error": bool(result.isError),
            "structured": result.structuredContent,
        }

    def _stderr_note(self) -> str:
        tail = self._stderr.decode("utf-8", "replace").strip()
        return f" Its stderr ends with: {tail[-1000:]}" if tail else ""

    def problem(self) -> str:
        """Why the server is not usable (its failure and the tail of its stderr)."""
        return (self._failure or "it did not get ready") + self._stderr_note()

    def _kill_group(self) -> None:
        # A process spawned but never reached by the session (closed while starting) is ours too.
        spawned = self._spawned
        usable = spawned.done() and not spawned.cancelled() and spawned.exception() is None
        if self._pid is None and usable:
            self._pid = spawned.result().pid
        # The leader may be reaped already; its group id can then name a reused group only if
        # the pid was recycled, which needs the whole group gone, so ESRCH is the common answer.
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, signal.SIGKILL)

    def stop_soon(self) -> None:
        """Ask a server that is up to stop (its stdin is closed), without waiting: `close`
        then waits, so that several servers wind down together rather than one by one."""
        if self._session is not None and self._stopping is not None:
            self._stop_requested = True
            self._loop.loop.call_soon_threadsafe(self._stopping.set)

    def close(self) -> None:
        """Stop the session and kill the server's process group; wait for its task to end.

        A server that is up is asked to stop (its stdin closed, a short grace); one still
        starting is cancelled. Either way its group is SIGKILLed once its task is over, so a pid
        learnt late (a start racing the close) cannot escape. One never started has its
        spawned process killed all the same.
        """
        task = self._task
        if task is None:
            kill_spawned(self._loop, self._spawned)
        else:
            # Up, or already told to stop (its session may be gone by now): a graceful exit.
            if self._stop_requested or self._session is not None:
                self.stop_soon()
                self._finished.wait(_EXIT_GRACE_SEC + 3)
            if not self._finished.is_set():
                task.cancel()
                self._finished.wait(3)
        self._kill_group()
