"""Uploaded skill bundles (zip, tar, tar.gz, tar.bz2, tar.xz): read them by the hostile-archive
rules, and put the validated files on disk without following links (`write_members`).

The reading itself (`read_archive`, its rules and limits) lives in `actana.protocol.archives`,
standard library only, because the sandbox's `archive` tool extracts by the very same rules;
this module re-exports what the server's callers need.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from actana.protocol.archives import (
    ArchiveLimits,
    ArchiveMember,
    ArchiveRejected,
    normalise_name,
    printable,
    read_archive,
)

__all__ = ["ArchiveLimits", "ArchiveMember", "ArchiveRejected", "read_archive", "write_members"]

# Paths handed to write_members were already held to the caller's limits when read; here we only
# re-check that they are normalised and relative, so length and depth are not the point.
_WRITE_LIMITS = ArchiveLimits(max_path_length=4096, max_depth=4096)


def write_members(members: Sequence[ArchiveMember], dest: Path) -> None:
    """Write archive members under `dest` without following any link.

    Args:
        members: files as returned by `read_archive`.
        dest: an existing, empty directory.

    Raises:
        ValueError: `dest` is missing, not a directory or not empty; or a member's path is not a
            normalised relative path (ArchiveRejected); or a parent path is not a plain directory
            inside `dest`.
        OSError: a target already exists or is a link (O_EXCL / O_NOFOLLOW refused it).
    """
    _require_empty_dir(dest)
    root = os.path.realpath(dest)
    for member in members:
        if normalise_name(member.path, is_dir=False, limits=_WRITE_LIMITS) != member.path:
            raise ArchiveRejected("bad_name", printable(member.path), "its path is not normalised")
        parts = member.path.split("/")
        parent = Path(root)
        for part in parts[:-1]:
            parent = parent / part
            _make_plain_dir(parent)
        target = parent / parts[-1]
        # Belt and braces on top of the lstat walk: resolve every link and compare whole
        # components (a prefix test would accept /dest-evil for /dest).
        if os.path.commonpath([root, os.path.realpath(target)]) != root:
            raise ValueError(f"refusing to write {member.path!r}: it resolves outside {dest}")
        mode = 0o755 if member.executable else 0o644
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags, mode)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, mode)  # the umask must not change what the archive asked for
            handle.write(member.data)


def _require_empty_dir(dest: Path) -> None:
    if not dest.is_dir():
        raise ValueError(f"destination {dest} does not exist or is not a directory")
    with os.scandir(dest) as entries:
        if next(entries, None) is not None:
            raise ValueError(f"destination {dest} is not empty")


def _make_plain_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o755)
    except FileExistsError:
        # mkdir never follows a symlink, but the existing entry might be one (or a file).
        if not stat.S_ISDIR(path.lstat().st_mode):
            raise ValueError(
                f"refusing to write through {path}: it exists and is not a plain directory"
            ) from None
