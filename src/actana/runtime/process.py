"""Running a command in its own process group with a timeout, capped output, and no leftovers.

Used for the environment's setup script and the `bash` / `python` tools. Rules:

- stdin is /dev/null and stdout/stderr are fresh pipes, and `close_fds=True`: a child never gets
  the runtime's event stream (or any other descriptor of ours);
- the child leads a new session and process group, so that everything it starts, background
  jobs included, can be killed at once with one `killpg`;
- when the command ends (or times out) the whole group is killed and reaped, so no process of it
  outlives the call. With the runtime as child subreaper (see `hardening`) the orphans are
  reparented to us and reaped here, rather than lingering as zombies until init gets to them;
- the output kept is capped; the rest is read and counted but dropped, so a chatty command
  cannot fill memory.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

_READ_SIZE = 64 * 1024
# Once the command itself has exited, background jobs may still hold its pipes open; give them
# this long to finish writing before the group is killed, instead of waiting for the timeout.
_EXIT_GRACE_SEC = 0.5
_REAP_TIMEOUT_SEC = 10
_DRAIN_MAX_BYTES = 1024 * 1024


@dataclass
class Captured:
    """What a finished command left behind.

    Attributes:
        exit_code: the exit status; negative for a signal (-9 after a timeout kill).
        stdout: the first `cap` bytes of stdout (with stderr merged, when asked).
        stderr: the first `cap` bytes of stderr.
        stdout_total: bytes the command wrote to stdout in all.
        stderr_total: bytes it wrote to stderr in all.
        timed_out: whether the timeout killed it.
    """

    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_total: int
    stderr_total: int
    timed_out: bool


class _Sink:
    """Keeps the first `cap` bytes of a stream and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.kept = 0
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if self.kept < self.cap:
            piece = data[: self.cap - self.kept]
            self.parts.append(piece)
            self.kept += len(piece)

    def value(self) -> bytes:
        return b"".join(self.parts)


def shell_argv(script: str) -> list[str]:
    """`bash -c script`, or `sh -c script` where there is no bash."""
    for shell in ("/bin/bash", "/usr/bin/bash"):
        if os.access(shell, os.X_OK):
            return [shell, "-c", script]
    return ["/bin/sh", "-c", script]


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits, without reaping it (Linux >= 5.3)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def run_captured(
    argv: list[str], *, cwd: str, timeout: float, cap: int, merge_stderr: bool = False
) -> Captured:
    """Run `argv` to completion or timeout, then kill and reap its whole process group.

    Args:
        argv: program and arguments.
        cwd: working directory.
        timeout: seconds before the group is killed.
        cap: bytes kept of each stream.
        merge_stderr: send stderr into the stdout pipe (keeps the interleaving of a log).

    Returns:
        The captured result; a non-zero exit code is data, not an exception.

    Raises:
        OSError: the program could not be started.
    """
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(os.environ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        close_fds=True,
        start_new_session=True,
    )
    sinks: dict[int, _Sink] = {}
    assert proc.stdout is not None
    sinks[proc.stdout.fileno()] = stdout = _Sink(cap)
    stderr = _Sink(cap)
    if proc.stderr is not None:
        sinks[proc.stderr.fileno()] = stderr
    pidfd = _pidfd(proc.pid)
    timed_out = False
    try:
        timed_out = _pump(proc, sinks, pidfd, time.monotonic() + timeout)
    finally:
        exit_code = _kill_and_reap(proc)
        _drain(sinks)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        if pidfd is not None:
            os.close(pidfd)
    return Captured(
        exit_code, stdout.value(), stderr.value(), stdout.total, stderr.total, timed_out
    )


def _pump(
    proc: subprocess.Popen[bytes], sinks: dict[int, _Sink], pidfd: int | None, end: float
) -> bool:
    """Read the pipes until the command is done; True if the timeout came first."""
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ)
        open_pipes = set(sinks)
        while True:
            now = time.monotonic()
            if exited_at is not None and (not open_pipes or now >= exited_at + _EXIT_GRACE_SEC):
                return False
            if now >= end:
                return True
            wait = end - now if exited_at is None else min(end, exited_at + _EXIT_GRACE_SEC) - now
            if pidfd is None and exited_at is None:
                wait = min(wait, 0.05)  # no pidfd: poll for the exit instead of being told
            for key, _ in selector.select(wait):
                if key.fd == pidfd:
                    exited_at = time.monotonic()
                    selector.unregister(pidfd)
                    continue
                data = _read(key.fd)
                if data:
                    sinks[key.fd].add(data)
                elif data == b"":
                    selector.unregister(key.fd)
                    open_pipes.discard(key.fd)
            if pidfd is None and exited_at is None and _has_exited(proc):
                exited_at = time.monotonic()


def _has_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the leader has exited, leaving it unreaped where the platform allows (WNOWAIT)."""
    if hasattr(os, "waitid"):
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, proc.pid, flags) is not None
    return proc.poll() is not None


def _read(fd: int) -> bytes | None:
    """Read what is there: bytes, b"" at end of file, None when nothing is ready yet."""
    try:
        return os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return None


def _drain(sinks: dict[int, _Sink]) -> None:
    """Collect what is still buffered in the pipes after the group was killed.

    Bounded: a process that left the group (setsid) may still hold a pipe and keep writing.
    """
    for fd, sink in sinks.items():
        budget = _DRAIN_MAX_BYTES
        while budget > 0 and (data := _read(fd)):
            sink.add(data)
            budget -= len(data)


def _kill_and_reap(proc: subprocess.Popen[Any]) -> int:
    """SIGKILL the process group, reap its leader, then every other member we inherited.

    The leader is still unreaped here (pidfd only *watches* it), so its pid, which is also the
    group id, cannot have been reused by an unrelated process when we signal the group.
    """
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, signal.SIGKILL)
    try:
        exit_code = proc.wait(timeout=_REAP_TIMEOUT_SEC)
    except subprocess.TimeoutExpired:  # stuck in the kernel (D state); nothing more to do
        return -int(signal.SIGKILL)
    # A member's children are handed to us before that member can be reaped, so once no child
    # of ours is left in the group, every member that descended from the command is gone.
    while True:
        try:
            os.waitpid(-pgid, 0)
        except ChildProcessError:
            return exit_code
