"""The run channel's directory, as a sandbox backend hands it over.

Everything the trusted side gives a running sandbox lives in one host directory: the channel
socket (`/sandbox/v1`), the egress proxy's socket and the materialised skill bundles
(CHANNEL_* in actana.protocol.payloads). Backends expose that directory read-only. Two chores
are shared by them: the sockets must be connectable by the sandbox's uid (connect() needs write
permission on a socket file), and a pre-started container, whose mounts were fixed before its
run existed, gets the run's entries mirrored into the directory it already has.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _sockets(directory: Path) -> list[Path]:
    return [entry for entry in directory.iterdir() if entry.is_socket()]


def hand_sockets_to(directory: Path, uid: int, gid: int) -> None:
    """Make every socket in `directory` the sandbox user's, when we may (running as root).

    Without root the sandbox runs as our uid (or in a user namespace mapped to it) and can
    connect already.
    """
    if os.geteuid() != 0:
        return
    for socket_path in _sockets(directory):
        os.chown(socket_path, uid, gid)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or a link count limit: a copy does as well
        shutil.copy2(source, target)


def mirror_into(source: Path, target: Path) -> None:
    """Make `target` show what `source` holds: sockets hard-linked (the same listening socket),
    directories copied with their modes (files hard-linked when possible).

    Only sockets, directories and regular files are mirrored; anything else (a symlink, a FIFO)
    has no business in a channel directory and is skipped, never followed.

    Raises:
        OSError: an entry could not be mirrored; the caller gives up on `target`.
    """
    for entry in source.iterdir():
        mode = entry.lstat().st_mode
        destination = target / entry.name
        if stat.S_ISSOCK(mode):
            os.link(entry, destination)
        elif stat.S_ISDIR(mode):
            shutil.copytree(entry, destination, symlinks=True, copy_function=_link_or_copy)
        elif stat.S_ISREG(mode):
            _link_or_copy(str(entry), str(destination))


def remove_tree(path: Path, *, ignore_errors: bool = False) -> None:
    """Delete `path` even where its folders lost write or search permission: a sandbox may
    have removed them, and skill folders are made read-only on purpose (a worker that is not
    root must open them again first; root would not notice).

    Raises:
        OSError: what remains undeletable after restoring permissions (unless ignore_errors).
    """

    def retry(func: Callable[..., Any], failed: str, *_: object) -> None:
        # Only directories we own can be repaired; chmod the parent and the path and retry.
        for p in (Path(failed).parent, Path(failed)):
            with contextlib.suppress(OSError):
                if not p.is_symlink():
                    p.chmod(stat.S_IRWXU)
        func(failed)

    if not os.path.lexists(path):
        return
    try:
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=retry)
        else:
            shutil.rmtree(path, onerror=retry)
    except OSError:
        if not ignore_errors:
            raise
