"""The live native sandbox: its process, pipes, kill and removal.

stdout and stderr are pipes we create ourselves rather than `stdout=PIPE`: with PIPE, asyncio's
`Process.wait()` only returns once every pipe has hit EOF, so a background child holding stdout
(or a reader paused on a full buffer) would keep `wait()` from ever seeing the exit.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from actana.sandboxes import native_launch as launch
from actana.sandboxes import native_state as state
from actana.sandboxes import procfs
from actana.sandboxes.base import Sandbox, SandboxSpec
from actana.sandboxes.errors import (
    SandboxCleanupError,
    SandboxStateError,
    SandboxUnavailableError,
)

READ_SIZE = 64 * 1024
TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class LaunchPlan:
    """What start() executes."""

    argv: list[str]
    env: dict[str, str]
    bwrap_options: list[str] | None
    """Passed to bwrap through `--args FD`, inserted after argv[0]."""
    wrapped_exit: bool
    """The exit code comes from bwrap (128+N for signal N)."""
    owner: tuple[int, int] | None = None
    """uid, gid the workspace's contents are handed to at start (the sandbox runs as them)."""


class NativeSandbox(Sandbox):
    """One run's process tree on this host."""

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        backend: str,
        isolation: str,
        workspace: Path,
        run_dir: Path,
        plan: LaunchPlan,
        marker: dict[str, Any],
        stderr_log_bytes: int,
    ) -> None:
        super().__init__(spec, backend=backend, isolation=isolation, workspace=workspace)
        self.run_dir = run_dir
        self._plan = plan
        self._marker = marker
        self._log_cap = stderr_log_bytes
        self._proc: asyncio.subprocess.Process | None = None
        self._stdout: asyncio.StreamReader | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self._stderr_task: asyncio.Task[None] | None = None
        self._tail = bytearray()
        self._removed = False

    async def start(self) -> None:
        if self._proc is not None or self._removed:
            raise SandboxStateError("sandbox already started or removed")
        if self._plan.owner is not None:
            # Input files the trusted side wrote are root's: the agent must be able to change
            # them and write next to them ($WORKSPACE_DIR/assets/ is where outputs go).
            await anyio.to_thread.run_sync(state.hand_over, self.workspace, *self._plan.owner)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pass_fds: tuple[int, ...] = ()
        argv = list(self._plan.argv)
        try:
            if self._plan.bwrap_options is not None:
                args_fd = _memfd(self._plan.bwrap_options)
                pass_fds = (args_fd,)
                argv[1:1] = ["--args", str(args_fd)]
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, env=self._plan.env,
                cwd=self.workspace, start_new_session=True, close_fds=True, pass_fds=pass_fds,
            )  # fmt: skip
        except OSError as e:
            os.close(out_r)
            os.close(err_r)
            raise SandboxUnavailableError(f"cannot start {argv[0]}: {e}") from e
        finally:
            for fd in (out_w, err_w, *pass_fds):
                os.close(fd)  # the child has its copies; EOF must come when *it* closes them
        try:
            self._stdout = await self._reader(out_r)
            stderr = await self._reader(err_r)
            self._stderr_task = asyncio.create_task(self._keep_stderr(stderr))
            pid = self._proc.pid
            info = await anyio.to_thread.run_sync(procfs.read_process, pid)
            self._marker.update(pid=pid, start_ticks=info.start_ticks if info else None)
            await anyio.to_thread.run_sync(state.write_marker, self.run_dir, self._marker)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.kill()  # started but not tracked: never leave it running
            raise

    async def _reader(self, fd: int) -> asyncio.StreamReader:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_SIZE)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
        )
        self._transports.append(transport)
        return reader

    async def _raw_stdout(self) -> AsyncIterator[bytes]:
        if self._stdout is None:
            raise SandboxStateError("sandbox not started")
        while chunk := await self._stdout.read(READ_SIZE):
            yield chunk

    async def _keep_stderr(self, reader: asyncio.StreamReader) -> None:
        """Keep the first `stderr_log_bytes` in stderr.log and the last 64 KiB in memory; drain
        the rest so a chatty sandbox never blocks on a full pipe."""
        log = self.run_dir / state.STDERR_LOG
        written = 0
        fd = await anyio.to_thread.run_sync(lambda: os.open(log, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            while chunk := await reader.read(READ_SIZE):
                self._tail += chunk
                del self._tail[:-TAIL_BYTES]
                if written < self._log_cap:
                    part = chunk[: self._log_cap - written]
                    written += await anyio.to_thread.run_sync(os.write, fd, part)
        finally:
            os.close(fd)

    async def stderr_tail(self, max_bytes: int = 8192) -> bytes:
        task, proc = self._stderr_task, self._proc
        if task is not None and proc is not None and proc.returncode is not None:
            # Exited: what it wrote last may still sit in the pipe; give the reader a moment
            # (bounded: a surviving background child may hold stderr open).
            with anyio.move_on_after(0.5):
                await asyncio.shield(task)
        return bytes(self._tail[-max_bytes:]) if max_bytes > 0 else b""

    async def _wait(self) -> int:
        if self._proc is None:
            raise SandboxStateError("sandbox not started")
        code = await self._proc.wait()
        return launch.bwrap_exit_code(code) if self._plan.wrapped_exit else code

    async def kill(self) -> None:
        if self._proc is None:
            return
        ticks = self._marker["start_ticks"]
        selector = procfs.SandboxProcesses(
            root=(self._proc.pid, ticks) if ticks is not None else None,
            session=self._proc.pid,
            # Once the launcher is reaped its pid (= the session id) may be recycled: from then
            # on only session members running as the sandbox uid are taken to be ours.
            session_uids=None if self._proc.returncode is None else frozenset([self._uid]),
            exclusive_uid=self._uid if self._marker["exclusive_uid"] else None,
        )
        survivors = await anyio.to_thread.run_sync(procfs.kill_processes, selector)
        with anyio.move_on_after(5):
            await self._proc.wait()  # reaped by asyncio's child watcher; this collects it
        if self._stderr_task is not None:
            with anyio.move_on_after(1):
                await asyncio.shield(self._stderr_task)
        if survivors:
            raise SandboxCleanupError(
                f"processes of sandbox {self.run_id} survived SIGKILL: {sorted(survivors)}",
                pids=sorted(survivors),
            )

    @property
    def _uid(self) -> int:
        uid = self._marker["uid"]
        assert isinstance(uid, int)
        return uid

    async def remove(self) -> None:
        if self._removed:
            return
        try:
            await self.kill()
        finally:
            if self._stderr_task is not None and not self._stderr_task.done():
                self._stderr_task.cancel()
            for transport in self._transports:
                transport.close()
            await anyio.to_thread.run_sync(state.remove_tree, self.run_dir)
            self._removed = True

    @staticmethod
    async def reap(run_dir: Path) -> None:
        """Kill what is left of a sandbox known only by its run directory, then delete it.

        Used for leftovers of a worker that died: the launcher is trusted only if it is still
        the same process (pid and start time), and session members only with the run's uid.
        """
        marker = await anyio.to_thread.run_sync(state.read_marker, run_dir) or {}
        pid, ticks, uid = marker.get("pid"), marker.get("start_ticks"), marker.get("uid")
        pid = pid if isinstance(pid, int) else None
        uid = uid if isinstance(uid, int) else None
        selector = procfs.SandboxProcesses(
            root=(pid, ticks) if pid is not None and isinstance(ticks, int) else None,
            session=pid,
            session_uids=frozenset([uid] if uid is not None else []),
            exclusive_uid=uid if marker.get("exclusive_uid") else None,
        )
        survivors = await anyio.to_thread.run_sync(procfs.kill_processes, selector)
        if survivors:
            raise SandboxCleanupError(
                f"processes of {run_dir.name} survived SIGKILL: {sorted(survivors)}",
                pids=sorted(survivors),
            )
        await anyio.to_thread.run_sync(state.remove_tree, run_dir)


def _memfd(options: list[str]) -> int:
    """An in-memory file holding bwrap's NUL-separated options (read by `--args FD`)."""
    fd = os.memfd_create("bwrap-args", os.MFD_CLOEXEC)
    os.write(fd, b"".join(o.encode() + b"\0" for o in options))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
