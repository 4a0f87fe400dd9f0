"""The toolkit of the conformance battery: the context checks run in, and their helpers.

Checks look at the host's /proc to see processes, so they assume the sandbox's processes are
visible from where the battery runs (true for native and for a local Docker daemon).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from actana.sandboxes.base import Sandbox, SandboxBackend, SandboxLimits, SandboxSpec

CheckFn = Callable[["ConformanceContext"], Awaitable[None]]
REGISTRY: dict[str, CheckFn] = {}
"""Every check, by name, in definition order (filled by `@check`)."""


class ConformanceFailure(AssertionError):
    """The backend does not do what the sandbox contract says."""


def check(fn: CheckFn) -> CheckFn:
    """Register `fn` as the check named after it (without a `check_` prefix)."""
    REGISTRY[fn.__name__.removeprefix("check_")] = fn
    return fn


def expect(condition: object, message: str) -> None:
    """Fail the check with `message` unless `condition` holds (not `assert`: -O strips it)."""
    if not condition:
        raise ConformanceFailure(message)


@dataclass
class ConformanceContext:
    """What the checks need from the test that runs them."""

    make_backend: Callable[[], SandboxBackend]
    """A fresh backend over the same host state each call (as after a worker restart)."""
    python: str
    """An interpreter the sandbox can execute (the real one: sys.executable where possible)."""
    scratch: Path
    """A host directory the sandbox user could traverse if its isolation allowed (mode 0755
    and its ancestors traversable): for sockets and probe files."""
    worker_id: str = "conformance"
    _backend: SandboxBackend | None = field(default=None, repr=False)
    _counter: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    @property
    def backend(self) -> SandboxBackend:
        """One shared backend (probing the host once); `make_backend()` for a fresh one."""
        if self._backend is None:
            self._backend = self.make_backend()
        return self._backend

    def spec(
        self,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        limits: SandboxLimits | None = None,
        channel_socket: Path | None = None,
        worker_id: str | None = None,
    ) -> SandboxSpec:
        run_id = f"conf-{os.getpid()}-{next(self._counter)}-{secrets.token_hex(3)}"
        return SandboxSpec(
            run_id=run_id,
            worker_id=worker_id or self.worker_id,
            command=command,
            env=env or {},
            channel_socket=channel_socket,
            limits=limits or SandboxLimits(),
        )

    def py(self, code: str) -> list[str]:
        return [self.python, "-I", "-c", code]

    @asynccontextmanager
    async def sandbox(self, spec: SandboxSpec) -> AsyncIterator[Sandbox]:
        """A created (not started) sandbox, removed on exit whatever happened."""
        sandbox = await self.backend.create(spec)
        try:
            yield sandbox
        finally:
            with anyio.CancelScope(shield=True):
                await sandbox.remove()


def nonce() -> str:
    """A unique number-like token: usable as `sleep 600.<nonce>` and findable in /proc."""
    return str(secrets.randbelow(10**9)).zfill(9)


async def run_to_end(sandbox: Sandbox, timeout: float = 30.0) -> tuple[int, bytes]:
    """Start `sandbox`, read all of stdout while waiting; (exit code, stdout)."""
    chunks: list[bytes] = []

    async def read() -> None:
        async for chunk in sandbox.stdout_chunks():
            chunks.append(chunk)

    await sandbox.start()
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            code = await sandbox.wait()
    return code, b"".join(chunks)


async def run_json(ctx: ConformanceContext, spec: SandboxSpec) -> tuple[Sandbox, Any]:
    """Run a command that prints one JSON document; (sandbox, document). Removes it after."""
    async with ctx.sandbox(spec) as sandbox:
        code, out = await run_to_end(sandbox)
        tail = await sandbox.stderr_tail()
    expect(code == 0, f"exit {code}; stdout {out[-500:]!r}; stderr {tail[-1500:]!r}")
    try:
        return sandbox, json.loads(out)
    except ValueError:
        raise ConformanceFailure(f"not JSON: {out[-500:]!r}") from None


def processes_matching(token: str) -> list[int]:
    """Host pids whose command line contains `token` (zombies have none). Blocking."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


async def expect_no_processes(token: str, what: str) -> None:
    left = await anyio.to_thread.run_sync(processes_matching, token)
    expect(not left, f"{what}: processes still running: {left}")
