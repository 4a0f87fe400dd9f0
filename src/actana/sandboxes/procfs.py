"""Find and kill a sandbox's host processes by reading /proc (Linux only; blocking I/O).

A sandbox's processes are found three ways, because each alone can be escaped:

- the process tree under the launched process (inside a bwrap PID namespace every process stays
  in that tree: orphans are re-parented to the namespace's init, a descendant);
- the session the launcher created (`start_new_session`): children that double-fork stay in it
  unless they call setsid();
- the sandbox's uid, when no other sandbox shares it (a uid from the pool).

Identity is (pid, start time): a pid recorded earlier only counts if the process with that pid
started at the same clock tick, so a recycled pid is never killed by mistake.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcInfo:
    """One live (non-zombie) process as /proc shows it."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    uid: int
    start_ticks: int


def parse_stat(pid: int, stat: str, status: str) -> ProcInfo | None:
    """Parse /proc/PID/stat and /proc/PID/status; None for zombies (already dead)."""
    # comm (field 2) is in parentheses and may itself contain ") ": split at the last one.
    rest = stat[stat.rindex(")") + 2 :].split()
    if rest[0] in ("Z", "X"):
        return None
    uid = -1
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])  # the real uid: a sandbox cannot hide it like the euid
            break
    return ProcInfo(pid, int(rest[1]), int(rest[2]), int(rest[3]), uid, int(rest[19]))


def read_process(pid: int) -> ProcInfo | None:
    """The process `pid`, or None when it is gone or a zombie."""
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
        status = (PROC / str(pid) / "status").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return parse_stat(pid, stat, status)


def scan_processes() -> list[ProcInfo]:
    """Every live process on the host (as far as this process can see)."""
    procs = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (info := read_process(int(entry.name))) is not None:
            procs.append(info)
    return procs


@dataclass(frozen=True)
class SandboxProcesses:
    """Which host processes belong to one sandbox."""

    root: tuple[int, int] | None = None
    """(pid, start_ticks) of the launched process."""
    session: int | None = None
    session_uids: frozenset[int] | None = None
    """When set, only session members with these uids count (the launcher is gone)."""
    exclusive_uid: int | None = None
    """A uid that only this sandbox uses: all its processes belong to the sandbox."""

    def members(self, procs: Iterable[ProcInfo], known: dict[int, int]) -> dict[int, int]:
        """pid -> start_ticks of the sandbox's processes among `procs`.

        `known` are members found earlier: they still count (same pid and start time) after
        their parent died and they were re-parented out of the tree.
        """
        by_pid = {p.pid: p for p in procs}
        found: dict[int, int] = {}
        for pid, ticks in known.items():
            p = by_pid.get(pid)
            if p is not None and p.start_ticks == ticks:
                found[pid] = ticks
        if self.root is not None:
            root = by_pid.get(self.root[0])
            if root is not None and root.start_ticks == self.root[1]:
                found[root.pid] = root.start_ticks
        for p in by_pid.values():
            in_session = p.sid == self.session and (
                self.session_uids is None or p.uid in self.session_uids
            )
            if in_session or p.uid == self.exclusive_uid:
                found[p.pid] = p.start_ticks
        # Descendants of members, to a fixed point (parents may appear after their children).
        children: dict[int, list[ProcInfo]] = {}
        for p in by_pid.values():
            children.setdefault(p.ppid, []).append(p)
        stack = list(found)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child.pid not in found:
                    found[child.pid] = child.start_ticks
                    stack.append(child.pid)
        found.pop(os.getpid(), None)  # never ourselves, whatever the selectors say
        return found


def kill_processes(selector: SandboxProcesses, timeout: float = 5.0) -> dict[int, int]:
    """SIGKILL every member until none is left; returns the survivors (empty on success).

    Unless `session_uids` restricts the session (the leader may be gone and its pid recycled),
    the session's process group is also signalled as a whole: the kernel delivers that
    atomically, so a process forking at that moment cannot slip a child past us.
    """
    # Snapshot the tree first: once the launcher dies its children are re-parented away.
    known = selector.members(scan_processes(), {})
    if selector.session is not None and selector.session_uids is None:
        _sigkill(selector.session, group=True)
    deadline = time.monotonic() + timeout
    while known:
        for pid in known:
            _sigkill(pid)
        time.sleep(0.002)
        known = selector.members(scan_processes(), known)
        if known and time.monotonic() > deadline:
            break
    return known


def _sigkill(pid: int, *, group: bool = False) -> None:
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # gone already, or not ours to signal (reported as a survivor if it stays)
