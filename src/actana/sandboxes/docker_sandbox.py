"""One container sandbox: start by handover, stream, wait, kill, remove.

The container already exists (created cold for this run, or taken from the warm pool) and its
launcher waits on stdin. `start()` attaches, starts it if needed, and writes the handover: the
command, the exact environment (tokens included: they travel only on this connection), the
rlimits and a tar of the staging folder (`workspace`, the input files). Docker calls block, so
they run in threads, the long waits on a limiter of their own so that many live sandboxes cannot
starve the default thread pool the rest of the server uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from docker.errors import APIError, NotFound

from actana.protocol.handover import Handover
from actana.sandboxes.base import Sandbox, SandboxSpec, workspace_relative
from actana.sandboxes.channel_dir import remove_tree
from actana.sandboxes.docker_config import WORKSPACE, handover_rlimits
from actana.sandboxes.docker_stream import AttachStream
from actana.sandboxes.errors import (
    SandboxCleanupError,
    SandboxError,
    SandboxStateError,
    SandboxUnavailableError,
)

if TYPE_CHECKING:
    from actana.sandboxes.docker import DockerSandboxBackend

WAIT_LIMITER = anyio.CapacityLimiter(1024)
KILL_GRACE_SEC = 10.0
_CHUNK = 1 << 16


def exit_code(status: int) -> int:
    """Docker's exit status to ours: tini reports death by signal N as 128+N; we say -N."""
    return -(status - 128) if 128 < status < 160 else status


def _tar_folder(folder: Path, spool: Any) -> None:
    """Directories and regular files of `folder` (modes kept: a skill's script stays
    executable); links and anything else are left out."""
    with tarfile.open(fileobj=spool, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                continue
            info = archive.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_file():
                with path.open("rb") as source:
                    archive.addfile(info, source)
            else:
                archive.addfile(info)
    spool.seek(0)


class DockerSandbox(Sandbox):
    shares_workspace = False

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        owner: DockerSandboxBackend,
        container_id: str,
        uid: int,
        state_dir: Path,
        env: dict[str, str],
        started: bool,
        channel_dir: Path | None = None,
    ) -> None:
        super().__init__(
            spec,
            backend="docker",
            isolation=owner.isolation(uid),
            workspace=state_dir / "workspace",
        )
        self._owner = owner
        self._api = owner.api
        self.container_id = container_id
        self.uid = uid
        self._state_dir = state_dir
        self._env = env
        self._prestarted = started
        self._channel_dir = channel_dir
        """A warm container's own channel directory, removed with it."""
        self._stream: AttachStream | None = None
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._handover: asyncio.Task[None] | None = None
        self._exit: int | None = None
        self._removed = False

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=WAIT_LIMITER)

    async def start(self) -> None:
        if self._removed:
            raise SandboxStateError("the sandbox was removed")
        if self._stream is not None:
            raise SandboxStateError("the sandbox was started already")
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        try:
            hijacked = await self._call(self._api.attach_socket, self.container_id, params)
            self._stream = AttachStream(hijacked)
            if not self._prestarted:
                await self._call(self._api.start, self.container_id)
        except APIError as exc:
            raise SandboxUnavailableError(f"docker could not start the sandbox: {exc}") from exc
        self._reader = asyncio.create_task(self._read())
        self._handover = asyncio.create_task(self._stream.send_stdin(self._handover_chunks()))

    async def _handover_chunks(self) -> AsyncIterator[bytes]:
        handover = Handover(
            argv=list(self.spec.command),
            env=self._env,
            workdir=WORKSPACE,
            rlimits=handover_rlimits(self.limits),
        )
        yield handover.encode()
        with tempfile.SpooledTemporaryFile(max_size=1 << 20) as spool:
            await anyio.to_thread.run_sync(_tar_folder, self.workspace, spool)
            while chunk := spool.read(_CHUNK):
                yield chunk

    async def _read(self) -> None:
        assert self._stream is not None
        seen, cap = 0, self.limits.output_bytes
        try:
            async for chunk in self._stream.stdout():
                # Past the cap, stdout_chunks() kills the sandbox; until it is dead, keep
                # draining without keeping: a daemon that cannot deliver the output holds the
                # container (and its lock: even `kill` then blocks).
                if seen <= cap:
                    self._chunks.put_nowait(chunk)
                    seen += len(chunk)
        except SandboxError:
            # Output Docker would never produce: stop the container. (Not `kill()`, which
            # waits for this very reader to end.)
            with contextlib.suppress(APIError):
                await self._call(self._api.kill, self.container_id, "SIGKILL")
        finally:
            self._chunks.put_nowait(None)

    async def _raw_stdout(self) -> AsyncIterator[bytes]:
        if self._reader is None:
            raise SandboxStateError("the sandbox has not been started")
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def _wait(self) -> int:
        if self._reader is None:
            raise SandboxStateError("the sandbox has not been started")
        if self._exit is None:
            await asyncio.shield(self._reader)
            result = await self._call(self._api.wait, self.container_id)
            self._exit = exit_code(int(result.get("StatusCode", -1)))
        return self._exit

    async def kill(self) -> None:
        if self._removed:
            return
        try:
            await self._call(self._api.kill, self.container_id, "SIGKILL")
        except NotFound:
            return
        except APIError as exc:
            if exc.status_code != 409:  # 409: not running, which is what we want
                raise SandboxCleanupError(f"docker kill failed: {exc}") from exc
        if self._reader is None:  # never started (or its start failed): nothing to wait for
            return
        try:
            with anyio.fail_after(KILL_GRACE_SEC):
                await self._wait()
        except TimeoutError:
            raise SandboxCleanupError("the container did not stop after SIGKILL") from None

    async def remove(self) -> None:
        if self._removed:
            return
        with anyio.CancelScope(shield=True):
            try:
                # Docker's forced removal kills and waits itself: one call, not three.
                await self._owner.remove_container(self.container_id)
            finally:
                for task in (self._handover, self._reader):
                    if task is not None and not task.done():
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                if self._stream is not None:
                    self._stream.close()
                shutil.rmtree(self._state_dir, ignore_errors=True)
                if self._channel_dir is not None:
                    remove_tree(self._channel_dir, ignore_errors=True)  # mirrored skills: 0555
                self._owner.release_uid(self.uid)
                self._removed = True
                # Refill only now: a container started during a run slows that run down.
                self._owner.refill_pool(self.limits, self.spec.worker_id)

    async def stderr_tail(self, max_bytes: int = 8192) -> bytes:
        return self._stream.stderr_tail(max_bytes) if self._stream is not None else b""

    async def write_file(self, relative: str, data: bytes) -> None:
        """Before start: staged, like any input file. After: a `tar -x` exec as the sandbox's
        uid (the workspace tmpfs exists only inside the container)."""
        if self._stream is None:
            await super().write_file(relative, data)
            return
        path = workspace_relative(relative)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo(str(path))
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
        code, output = await self._exec(["tar", "-x", "-C", WORKSPACE], stdin=buffer.getvalue())
        if code != 0:
            raise SandboxError(f"could not write {relative!r} into the sandbox: {output[-500:]!r}")

    async def read_file(self, relative: str) -> bytes:
        if self._stream is None:
            return await super().read_file(relative)
        code, output = await self._exec(["cat", "--", str(workspace_relative(relative))])
        if code != 0:
            raise FileNotFoundError(relative)
        return output

    async def _exec(self, argv: list[str], stdin: bytes | None = None) -> tuple[int, bytes]:
        """Run `argv` in the live container as its uid; (exit code, stdout)."""
        try:
            made = await self._call(
                self._api.exec_create,
                self.container_id,
                argv,
                stdin=stdin is not None,
                user=f"{self.uid}:{self.uid}",
                workdir=WORKSPACE,
            )
            hijacked = await self._call(self._api.exec_start, made["Id"], socket=True)
        except APIError as exc:
            raise SandboxError(f"docker exec failed: {exc}") from exc
        stream = AttachStream(hijacked)
        try:
            if stdin is not None:

                async def once() -> AsyncIterator[bytes]:
                    yield stdin

                await stream.send_stdin(once())
            output = b"".join([chunk async for chunk in stream.stdout()])
        finally:
            stream.close()
        info = await self._call(self._api.exec_inspect, made["Id"])
        return int(info.get("ExitCode") or 0), output
