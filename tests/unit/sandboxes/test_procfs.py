"""Finding and killing a sandbox's processes through /proc."""

from __future__ import annotations

import os
import subprocess
import time

from actana.sandboxes import procfs
from actana.sandboxes.procfs import ProcInfo, SandboxProcesses

STATUS = "Name:\tx\nUmask:\t0022\nState:\tS\nUid:\t1000\t1001\t1001\t1001\n"


def stat_line(pid: int, comm: str, state: str, ppid: int, pgid: int, sid: int) -> str:
    rest = [state, ppid, pgid, sid] + [0] * 15 + [4242] + [0] * 30
    return f"{pid} ({comm}) " + " ".join(map(str, rest))


def test_parse_stat_survives_hostile_command_names() -> None:
    info = procfs.parse_stat(7, stat_line(7, "evil) R 1 1 1 (", "S", 5, 6, 6), STATUS)
    assert info == ProcInfo(pid=7, ppid=5, pgid=6, sid=6, uid=1000, start_ticks=4242)


def test_zombies_count_as_gone() -> None:
    assert procfs.parse_stat(7, stat_line(7, "z", "Z", 1, 1, 1), STATUS) is None


def p(pid: int, ppid: int, sid: int, uid: int = 100, ticks: int = 1) -> ProcInfo:
    return ProcInfo(pid, ppid, pid, sid, uid, ticks)


PROCS = [
    p(10, 1, 10),  # launcher, session 10
    p(11, 10, 10),  # its child
    p(12, 1, 12, ticks=5),  # escaped with setsid, re-parented to init...
    p(13, 12, 12),  # ...with a child
    p(20, 1, 10, uid=0),  # session 10 but root: trusted only while the launcher is ours
    p(30, 1, 30, uid=777),  # the exclusive uid
    p(40, 1, 40),  # unrelated
]


def test_members_by_tree_session_and_uid() -> None:
    sel = SandboxProcesses(root=(10, 1), session=10, exclusive_uid=777)
    assert set(sel.members(PROCS, {})) == {10, 11, 20, 30}


def test_members_restricted_session_after_the_launcher_is_gone() -> None:
    sel = SandboxProcesses(root=None, session=10, session_uids=frozenset([100]))
    assert set(sel.members(PROCS, {})) == {10, 11}


def test_known_members_stay_members_but_recycled_pids_do_not() -> None:
    sel = SandboxProcesses(root=(99, 1), session=None)
    assert set(sel.members(PROCS, {12: 5})) == {12, 13}  # and 12's descendants
    assert set(sel.members(PROCS, {12: 6})) == set()  # pid 12 now is another process


def test_root_with_another_start_time_is_not_ours() -> None:
    assert SandboxProcesses(root=(10, 2)).members(PROCS, {}) == {}


def test_never_ourselves() -> None:
    me = p(os.getpid(), 1, 10)
    assert os.getpid() not in SandboxProcesses(session=10).members([me], {})


def test_kill_processes_takes_a_real_tree() -> None:
    proc = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 30 & (sleep 30 &) ; echo up; wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"up\n"
        info = procfs.read_process(proc.pid)
        assert info is not None
        assert info.sid == proc.pid
        deadline = time.monotonic() + 5
        sel = SandboxProcesses(root=(proc.pid, info.start_ticks), session=proc.pid)
        while len(sel.members(procfs.scan_processes(), {})) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(sel.members(procfs.scan_processes(), {})) >= 3
        assert procfs.kill_processes(sel) == {}
        assert proc.wait(timeout=5) == -9
        assert sel.members(procfs.scan_processes(), {}) == {}
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
