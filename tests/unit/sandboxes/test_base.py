"""The backend-independent part of the sandbox interface: specs, the environment, and the
limits the base class enforces for every backend (stdout cap, wait timeout)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from actana.sandboxes import (
    OutputLimitExceededError,
    Sandbox,
    SandboxLimits,
    SandboxSpec,
    SandboxSpecError,
    SandboxStateError,
    sandbox_environment,
)


def spec(**overrides: object) -> SandboxSpec:
    fields: dict[str, object] = {"run_id": "r1", "worker_id": "w1", "command": ["true"], "env": {}}
    fields.update(overrides)
    return SandboxSpec(**fields)  # type: ignore[arg-type]


class ScriptedSandbox(Sandbox):
    """Yields scripted stdout chunks; records kills and removals."""

    def __init__(self, chunks: list[bytes], limits: SandboxLimits, exit_after: float = 0) -> None:
        super().__init__(
            spec(limits=limits), backend="scripted", isolation="none", workspace=Path("/nowhere")
        )
        self.chunks = chunks
        self.exit_after = exit_after
        self.kills = 0
        self.removed = False

    async def start(self) -> None:
        pass

    async def _raw_stdout(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if self.kills:
                return
            yield chunk

    async def _wait(self) -> int:
        await anyio.sleep(self.exit_after)
        return -9 if self.kills else 0

    async def kill(self) -> None:
        self.kills += 1

    async def remove(self) -> None:
        await self.kill()
        self.removed = True

    async def stderr_tail(self, max_bytes: int = 8192) -> bytes:
        return b""


@pytest.mark.parametrize(
    "overrides",
    [
        {"run_id": "../etc"},
        {"run_id": ""},
        {"run_id": "a" * 129},
        {"run_id": "-leading-dash"},
        {"worker_id": ""},
        {"worker_id": "line\nbreak"},
        {"command": []},
        {"command": ["a\0b"]},
        {"env": {"A=B": "x"}},
        {"env": {"A": "nul\0"}},
        {"channel_socket": Path("relative.sock")},
    ],
)
def test_spec_rejects(overrides: dict[str, object]) -> None:
    with pytest.raises(SandboxSpecError):
        spec(**overrides)


@pytest.mark.parametrize("value", [0, -1, 1.5])
def test_limits_must_be_positive_integers(value: object) -> None:
    with pytest.raises(SandboxSpecError, match="cpu_seconds"):
        SandboxLimits(cpu_seconds=value)  # type: ignore[arg-type]


def test_environment_backend_owns_home_and_workspace() -> None:
    env = sandbox_environment(
        spec(env={"HOME": "/root", "WORKSPACE_DIR": "/", "PATH": "/opt/bin", "X": "1"}), "/ws"
    )
    assert env == {
        "PATH": "/opt/bin",  # the spec may override PATH and LANG
        "LANG": "C.UTF-8",
        "X": "1",
        "HOME": "/ws",  # but not where the workspace is
        "PWD": "/ws",
        "WORKSPACE_DIR": "/ws",
    }


async def drain(sandbox: Sandbox) -> bytes:
    return b"".join([c async for c in sandbox.stdout_chunks()])


def test_stdout_under_the_cap_passes_untouched() -> None:
    sandbox = ScriptedSandbox([b"ab", b"cd"], SandboxLimits(output_bytes=4))
    assert anyio.run(drain, sandbox) == b"abcd"
    assert sandbox.kills == 0


def test_stdout_over_the_cap_is_cut_exactly_and_killed() -> None:
    sandbox = ScriptedSandbox([b"abc", b"defg", b"never"], SandboxLimits(output_bytes=5))
    got: list[bytes] = []

    async def main() -> None:
        async for chunk in sandbox.stdout_chunks():
            got.append(chunk)

    with pytest.raises(OutputLimitExceededError) as caught:
        anyio.run(main)
    assert b"".join(got) == b"abcde"
    assert sandbox.kills == 1
    assert caught.value.limit_bytes == 5


def test_stdout_consumer_stopping_at_the_cut_cannot_skip_the_kill() -> None:
    sandbox = ScriptedSandbox([b"abcdef"], SandboxLimits(output_bytes=3))

    async def first() -> bytes:
        return await anext(sandbox.stdout_chunks())

    assert anyio.run(first) == b"abc"
    assert sandbox.kills == 1


def test_stdout_can_be_iterated_once() -> None:
    sandbox = ScriptedSandbox([b"x"], SandboxLimits())
    anyio.run(drain, sandbox)
    with pytest.raises(SandboxStateError):
        anyio.run(drain, sandbox)


def test_wait_timeout_raises_builtin_timeout_error() -> None:
    sandbox = ScriptedSandbox([], SandboxLimits(), exit_after=5)
    with pytest.raises(TimeoutError):
        anyio.run(sandbox.wait, 0.05)
    assert sandbox.kills == 0  # a timeout is the caller's to act on


def test_async_with_removes_even_on_error() -> None:
    sandbox = ScriptedSandbox([], SandboxLimits())

    async def main() -> None:
        async with sandbox:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        anyio.run(main)
    assert sandbox.removed


def _sandbox_on(workspace: Path) -> ScriptedSandbox:
    sandbox = ScriptedSandbox([], SandboxLimits())
    sandbox.workspace = workspace
    return sandbox


def test_the_trusted_side_writes_and_reads_inside_the_workspace(tmp_path: Path) -> None:
    sandbox = _sandbox_on(tmp_path)
    (tmp_path / "sub").mkdir()
    anyio.run(sandbox.write_file, "sub/go", b"x")
    assert (tmp_path / "sub" / "go").read_bytes() == b"x"
    assert anyio.run(sandbox.read_file, "sub/go") == b"x"


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../escape", ""])
def test_paths_that_leave_the_workspace_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(SandboxSpecError):
        anyio.run(_sandbox_on(tmp_path / "ws").write_file, path, b"x")


def test_a_symlink_planted_by_the_sandbox_does_not_redirect_a_write(tmp_path: Path) -> None:
    # The sandbox owns its workspace: a file or folder there may be a link to anywhere.
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    (workspace / "go").symlink_to(outside / "target")
    (workspace / "dir").symlink_to(outside)
    sandbox = _sandbox_on(workspace)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):  # O_NOFOLLOW
        anyio.run(sandbox.write_file, "go", b"x")
    with pytest.raises(SandboxSpecError, match="leads out of the workspace"):
        anyio.run(sandbox.write_file, "dir/file", b"x")
    assert list(outside.iterdir()) == []
