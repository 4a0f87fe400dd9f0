"""Host state of the native backend: run directories, their markers, uids (blocking I/O).

Layout::

    root_dir/                 0711 root: others may traverse but not list run ids
      <run_id>/               0711 root
        sandbox.json          0600: run id, worker id, created_at, uid, launcher pid (the reaper's)
        stderr.log            0600: the first bytes the sandbox wrote to stderr
        workspace/            0700, owned by the sandbox uid: $WORKSPACE_DIR and $HOME
      .lock                   0600: serialises run-dir creation (uid choice from the pool)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actana.sandboxes.channel_dir import remove_tree as remove_tree  # used as state.remove_tree
from actana.sandboxes.errors import SandboxExistsError, SandboxUnavailableError

MARKER = "sandbox.json"
STDERR_LOG = "stderr.log"
WORKSPACE = "workspace"
LOCK = ".lock"


def make_run_dir(
    root_dir: Path, run_id: str, marker: dict[str, Any], uid_pool: tuple[int, int] | None
) -> Path:
    """Create `root_dir/run_id` with its marker (first, so a crash right after leaves a trace).

    With a uid pool, a uid no other run directory holds is chosen and recorded in the marker
    (`uid`, `gid`). The choice and the marker are made under a lock on root_dir, so workers
    sharing root_dir never hand out a uid twice; a uid is free again once its run directory is
    removed (by remove() or by the reaper).

    Raises:
        SandboxExistsError: the run directory exists.
        SandboxUnavailableError: every uid of the pool is in use.
    """
    root_dir.mkdir(parents=True, exist_ok=True)
    root_dir.chmod(0o711)
    run_dir = root_dir / run_id
    with _locked(root_dir / LOCK):
        if uid_pool is not None:
            marker["uid"] = marker["gid"] = _free_uid(root_dir, uid_pool)
        try:
            run_dir.mkdir(mode=0o711)
        except FileExistsError:
            raise SandboxExistsError(f"sandbox state for run {run_id} exists: {run_dir}") from None
        run_dir.chmod(0o711)  # mkdir's mode is filtered by the umask
        write_marker(run_dir, marker)
    return run_dir


def _free_uid(root_dir: Path, pool: tuple[int, int]) -> int:
    used = {m.get("uid") for d in run_dirs(root_dir) if (m := read_marker(d))}
    lo, hi = pool
    # Random rather than lowest: a just-freed uid is rarely handed out again at once.
    for _ in range(32):
        uid = lo + secrets.randbelow(hi - lo)
        if uid not in used:
            return uid
    free = [u for u in range(lo, hi) if u not in used]
    if not free:
        raise SandboxUnavailableError(f"all {hi - lo} uids of the sandbox uid pool are in use")
    return secrets.choice(free)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def make_workspace(run_dir: Path, uid: int | None, gid: int | None) -> Path:
    workspace = run_dir / WORKSPACE
    workspace.mkdir(mode=0o700)
    workspace.chmod(0o700)
    if uid is not None and gid is not None:
        os.chown(workspace, uid, gid)
    return workspace


def hand_over(workspace: Path, uid: int, gid: int) -> None:
    """chown everything in the workspace to the sandbox user, never following symlinks."""
    for parent, dirs, files in os.walk(workspace):
        for name in (*dirs, *files):
            os.chown(Path(parent) / name, uid, gid, follow_symlinks=False)


def write_marker(run_dir: Path, marker: dict[str, Any]) -> None:
    """Replace the marker atomically: the reaper never reads half a file."""
    tmp = run_dir / f".{MARKER}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(marker, f)
    tmp.replace(run_dir / MARKER)


def read_marker(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_dirs(root_dir: Path) -> Iterator[Path]:
    if not root_dir.is_dir():
        return
    for entry in sorted(root_dir.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith("."):
            yield entry


def unreachable_for(path: Path, uid: int, gid: int, final: int) -> str | None:
    """Why `uid`/`gid` (no supplementary groups) cannot reach `path` with `final` access
    (os.R_OK/os.X_OK...) on the path itself, or None when it can. Mode bits only, no ACLs."""
    if uid == 0:
        return None
    real = path.resolve()
    for p in [*reversed(real.parents), real]:
        try:
            st = p.stat()
        except OSError as e:
            return f"{p}: {e.strerror}"
        want = final if p == real else os.X_OK
        shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
        if (st.st_mode >> shift) & want != want:
            return f"{p} (mode {stat.filemode(st.st_mode)}, owner {st.st_uid}) denies uid {uid}"
    return None
