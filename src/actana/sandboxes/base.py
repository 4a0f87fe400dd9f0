"""The sandbox interface: what a run asks for (`SandboxSpec`), the live handle (`Sandbox`) and
the backend that makes handles (`SandboxBackend`).

Lifecycle, as the worker drives it::

    sandbox = await backend.create(spec)   # host state exists, nothing runs yet
    (write input files into sandbox.workspace)
    await sandbox.start()
    async for chunk in sandbox.stdout_chunks(): ...   # concurrently with:
    code = await sandbox.wait(timeout=deadline)        # TimeoutError -> kill()
    await sandbox.remove()                              # always, in the cleanup phase

Limits that do not depend on the backend (the stdout cap, the wait timeout) are enforced here,
once, so a backend only supplies raw bytes (`_raw_stdout`) and a raw exit (`_wait`).
"""

from __future__ import annotations

import os
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, ClassVar

import anyio

from actana.protocol.payloads import ENV_WORKSPACE_DIR
from actana.sandboxes.errors import (
    OutputLimitExceededError,
    SandboxSpecError,
    SandboxStateError,
    SandboxUnavailableError,
)

# Run ids become directory names, container names and labels: keep them to what all accept.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandbox; every backend applies all of them."""

    cpu_seconds: int = 300
    memory_bytes: int = 1 << 30
    """Address space per process (RLIMIT_AS natively, the memory cgroup in a container)."""
    max_processes: int = 256
    file_size_bytes: int = 100 << 20
    open_files: int = 1024
    output_bytes: int = 32 << 20
    """Total stdout kept; one byte more and the sandbox is killed (OutputLimitExceededError)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value <= 0:
                raise SandboxSpecError(f"limit {f.name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a backend needs to create one run's sandbox."""

    run_id: str
    worker_id: str
    command: list[str]
    """argv, e.g. [sys.executable, "-I", "-m", "actana.runtime"]."""
    env: dict[str, str]
    """The only environment the process gets, plus what `sandbox_environment` adds."""
    channel_socket: Path | None = None
    """A unix socket on the host, alone in a directory of its own, reachable inside (env
    ACTANA_CHANNEL: at the same path natively; a container gets the directory mounted and the
    variable rewritten to where it sees the socket)."""
    limits: SandboxLimits = field(default_factory=SandboxLimits)

    def __post_init__(self) -> None:
        if not RUN_ID_PATTERN.fullmatch(self.run_id):
            raise SandboxSpecError(f"run id {self.run_id!r} must match {RUN_ID_PATTERN.pattern}")
        if not self.worker_id or len(self.worker_id) > 200 or not self.worker_id.isprintable():
            raise SandboxSpecError("worker id must be 1-200 printable characters")
        if not self.command or any("\0" in arg for arg in self.command):
            raise SandboxSpecError("command must be a non-empty argv without NUL bytes")
        for key, value in self.env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise SandboxSpecError(f"invalid environment variable {key!r}")
        if self.channel_socket is not None and not self.channel_socket.is_absolute():
            raise SandboxSpecError("channel_socket must be an absolute path")


def sandbox_environment(spec: SandboxSpec, workspace: str) -> dict[str, str]:
    """The exact environment of a sandboxed process: the spec's plus what the backend owns.

    PATH and LANG are defaults the spec may override; HOME, PWD and WORKSPACE_DIR always
    describe the real workspace, so a stray variable of a user's environment cannot point the
    agent elsewhere. (PWD because bwrap sets it anyway: every backend then looks the same.)
    """
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
    env.update(spec.env)
    env.update({"HOME": workspace, "PWD": workspace, ENV_WORKSPACE_DIR: workspace})
    return env


def workspace_relative(relative: str) -> PurePosixPath:
    """`relative` as a path inside a workspace.

    Raises:
        SandboxSpecError: it is absolute, empty, or climbs out with `..`.
    """
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise SandboxSpecError(f"{relative!r} is not a path inside the workspace")
    return path


def _write_no_follow(root: Path, target: Path, data: bytes) -> None:
    """Write as the trusted side into a folder the sandbox controls: a symlink it planted, at
    the file or at a parent, must not redirect the write out of the workspace."""
    if not target.parent.resolve().is_relative_to(root.resolve()):
        raise SandboxSpecError(f"{target.name!r}: a parent folder leads out of the workspace")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


@dataclass(frozen=True)
class SandboxRef:
    """A sandbox found on the host by `SandboxBackend.list_own`, for the reaper."""

    backend: str
    run_id: str
    worker_id: str
    created_at: datetime
    path: Path | None
    """Host directory holding the sandbox's state (None when the backend keeps none)."""
    handle: str
    """Backend-specific id (native: the run directory name; docker: the container id)."""


class Sandbox(ABC):
    """One live sandbox. Not safe for concurrent start/kill/remove from several tasks."""

    def __init__(self, spec: SandboxSpec, *, backend: str, isolation: str, workspace: Path) -> None:
        self.spec = spec
        self.run_id = spec.run_id
        self.limits = spec.limits
        self.backend = backend
        self.isolation = isolation
        """What this run actually got, e.g. "native+bwrap(mount,pid,net,ipc,uts,cgroup)"."""
        self.workspace = workspace
        """Host-side folder whose content is $WORKSPACE_DIR's at start(): write input files here
        before start(). Whether it stays the live workspace afterwards: `shares_workspace`."""
        self._stdout_taken = False

    shares_workspace: ClassVar[bool] = True
    """True when `workspace` *is* the live $WORKSPACE_DIR (native); False when it is a staging
    folder copied in at start() (a container's workspace is a tmpfs the host cannot see)."""

    async def write_file(self, relative: str, data: bytes) -> None:
        """Write a file into the live workspace, as the trusted side (before or after start()).

        Raises:
            SandboxSpecError: `relative` is absolute or leaves the workspace.
            SandboxError: the sandbox could not take the file.
        """
        target = self.workspace / workspace_relative(relative)
        await anyio.to_thread.run_sync(_write_no_follow, self.workspace, target, data)

    async def read_file(self, relative: str) -> bytes:
        """Read a file of the live workspace (what the sandbox wrote), e.g. while it runs.

        Raises:
            SandboxSpecError: `relative` is absolute or leaves the workspace.
            FileNotFoundError: no such file.
        """
        target = self.workspace / workspace_relative(relative)
        return await anyio.to_thread.run_sync(target.read_bytes)

    @abstractmethod
    async def start(self) -> None:
        """Start the command.

        Raises:
            SandboxStateError: already started, or removed.
            SandboxUnavailableError: the backend could not launch it (the message says why).
        """

    async def stdout_chunks(self) -> AsyncGenerator[bytes, None]:
        """Raw stdout bytes as they arrive, until EOF. Iterate once, concurrently with `wait`.

        Line splitting and per-line caps are the caller's job. Past `limits.output_bytes` the
        sandbox is killed, the bytes up to the limit are yielded, and the iterator raises.

        Raises:
            OutputLimitExceededError: stdout went past `limits.output_bytes`.
            SandboxStateError: iterated twice, or before start().
        """
        if self._stdout_taken:
            raise SandboxStateError("stdout_chunks() can be iterated only once")
        self._stdout_taken = True
        cap, seen = self.limits.output_bytes, 0
        async for chunk in self._raw_stdout():
            room = cap - seen
            if len(chunk) > room:
                # Kill before yielding: a consumer that stops at the last chunk must not be
                # able to skip the kill.
                await self.kill()
                if room:
                    yield chunk[:room]
                raise OutputLimitExceededError(cap, run_id=self.run_id)
            seen += len(chunk)
            yield chunk

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for the command to exit; the sandbox keeps running after a timeout.

        Returns:
            The exit code; -N when killed by signal N. Backends that run the command under an
            init process (bwrap, docker) cannot tell `exit(128+N)` from signal N and report -N.

        Raises:
            TimeoutError: still running after `timeout` seconds (kill() it if you are done).
            SandboxStateError: not started.
        """
        with anyio.fail_after(timeout):
            return await self._wait()

    @abstractmethod
    async def kill(self) -> None:
        """Kill every process the sandbox started and reap them; idempotent.

        Raises:
            SandboxCleanupError: some process survived SIGKILL (e.g. stuck in the kernel).
        """

    @abstractmethod
    async def remove(self) -> None:
        """kill(), then delete the workspace and every piece of host state; idempotent.

        Raises:
            SandboxCleanupError: processes or files could not be removed.
        """

    @abstractmethod
    async def stderr_tail(self, max_bytes: int = 8192) -> bytes:
        """The last `max_bytes` of what the sandbox (and its launcher) wrote to stderr."""

    @abstractmethod
    def _raw_stdout(self) -> AsyncIterator[bytes]:
        """Stdout bytes as they arrive, until EOF; `stdout_chunks` applies the cap."""

    @abstractmethod
    async def _wait(self) -> int:
        """Wait, without a timeout, for the exit code (negative = signal)."""

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Shielded: a cancelled task (run timeout, worker shutdown) must still clean up.
        with anyio.CancelScope(shield=True):
            await self.remove()


def known_options(options_type: type, options: Mapping[str, Any], backend: str) -> dict[str, Any]:
    """`options` as a dict, once every key is a field of the dataclass `options_type`.

    Raises:
        SandboxUnavailableError: an unknown option (the message lists the known ones).
    """
    known = {f.name for f in fields(options_type)}
    if unknown := sorted(set(options) - known):
        raise SandboxUnavailableError(
            f"{backend} sandbox: unknown option(s) {unknown}; known: {sorted(known)}"
        )
    return dict(options)


class SandboxBackend(ABC):
    """Makes sandboxes of one kind and finds its own leftovers."""

    name: ClassVar[str]

    @abstractmethod
    async def create(self, spec: SandboxSpec) -> Sandbox:
        """Prepare a sandbox (workspace and host state) without starting it.

        Raises:
            SandboxUnavailableError: this backend cannot run sandboxes here.
            SandboxSpecError: the spec cannot be honoured (e.g. command not reachable inside).
            SandboxExistsError: a sandbox for `spec.run_id` exists already.
        """

    def runtime_command(self) -> list[str]:
        """The argv that starts the in-sandbox runtime in this backend's sandboxes (by default
        this very interpreter, which native sandboxes can reach)."""
        return [sys.executable, "-I", "-m", "actana.runtime"]

    async def prepare(self, worker_id: str, limits: SandboxLimits) -> None:
        """Get ready for runs of `worker_id` with `limits` (e.g. warm containers); optional.

        Raises:
            SandboxUnavailableError: the backend cannot run sandboxes here.
        """
        return

    async def close(self) -> None:
        """Release what `prepare` made; the backend may still be used afterwards."""
        return

    @abstractmethod
    async def list_own(self, worker_id: str | None = None) -> list[SandboxRef]:
        """Sandboxes of this backend that still have host state (all workers, or one).

        Raises:
            SandboxUnavailableError: the backend's state cannot be read.
        """

    @abstractmethod
    async def remove_by_ref(self, ref: SandboxRef) -> None:
        """Kill and delete a sandbox found by `list_own` (possibly of a dead worker); idempotent.

        Raises:
            SandboxCleanupError: processes or files could not be removed.
        """

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """JSON-able facts for /readyz: `available`, the `isolation` a run would get, why not.

        May block briefly the first time (backends probe the host once and cache the answer).
        """
