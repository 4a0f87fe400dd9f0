"""The tools that manage entries of the workspace: `move_path`, `delete_path`, `file_info`.

Each acts on the entry a path names *itself*: the parent directories are resolved (and must lie
in the workspace), the final component is kept literal. So a symlink is moved, deleted or
described as a link — never followed to whatever it points at, inside the workspace or out.
The workspace root itself can be neither moved nor deleted.
"""

# ruff: noqa: PTH103, PTH105, PTH108, PTH112, PTH114, PTH115, PTH118, PTH119, PTH120, PTH208
# Paths stay `str` here on purpose: the workspace confinement is os.path.realpath plus
# os.path.commonpath on strings, and every path handled here has been through it.

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import time
from datetime import UTC, datetime
from typing import Any

from actana.protocol.payloads import RunLimits
from actana.runtime.tools.base import PATH_ARG, Invocation, Tool, ToolError, cap_text, schema
from actana.runtime.tools.paths import display, inside

# file_info hashes and counts lines of files up to this size; bigger ones get a note instead.
_MAX_HASH_BYTES = 256 * 1024 * 1024
_CHUNK = 1024 * 1024
_BINARY_SNIFF_BYTES = 8192
# A symlink's target is shown as text; it may be up to PATH_MAX long, which is plenty.
_MAX_TARGET_BYTES = 1024

_KINDS = [
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "char_device"),
    (stat.S_ISBLK, "block_device"),
]


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "other")


def entry(root: str, path: object, what: str, *, allow_root: bool = False) -> str:
    """The entry `path` names, its parents resolved and its final component literal.

    Args:
        root: the resolved workspace root.
        path: the path the model gave (a trailing '/' is allowed).
        what: the action, for messages ("move", "delete", ...).
        allow_root: whether the workspace root itself is a valid answer.

    Raises:
        ToolError: not a string, the workspace root, or outside the workspace.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ToolError(
            "the path must be a non-empty string without NUL, relative to the workspace"
        )
    joined = os.path.join(root, path.rstrip("/") or "/")
    name = os.path.basename(joined)
    if name in ("", ".", ".."):
        target = os.path.realpath(joined)  # names a directory, never a link: resolve it all
    else:
        target = os.path.join(os.path.realpath(os.path.dirname(joined)), name)
    if not inside(root, target):
        raise ToolError(
            f"'{path}' is outside the workspace; use a path relative to the workspace directory "
            "(no '..' that climbs out of it, no symlink that points out of it)"
        )
    if target == root and not allow_root:
        raise ToolError(f"'{path}' is the workspace root; refusing to {what} it")
    return target


def _existing(
    root: str, path: str, what: str, *, allow_root: bool = False
) -> tuple[str, os.stat_result]:
    target = entry(root, path, what, allow_root=allow_root)
    try:
        return target, os.lstat(target)
    except FileNotFoundError:
        raise ToolError(f"'{path}' does not exist; use list_dir or glob to find it") from None


def move_path(inv: Invocation) -> dict[str, Any]:
    """Rename a file, directory or symlink (the link itself) within the workspace."""
    source, info = _existing(inv.root, inv.args["source"], "move")
    destination = entry(inv.root, inv.args["destination"], "replace")
    shown_src, shown_dst = display(inv.root, source), display(inv.root, destination)
    if source == destination:
        raise ToolError(f"'{shown_src}' and '{shown_dst}' are the same path")
    if stat.S_ISDIR(info.st_mode) and inside(source, destination):
        raise ToolError(f"cannot move the directory '{shown_src}' into itself ('{shown_dst}')")
    if os.path.lexists(destination):
        if not inv.args.get("overwrite", False):
            raise ToolError(
                f"'{shown_dst}' already exists; pass overwrite=true to replace it, or choose "
                "another destination"
            )
        if os.path.isdir(destination) and not os.path.islink(destination):
            if not stat.S_ISDIR(info.st_mode):
                raise ToolError(f"'{shown_dst}' is a directory; a file cannot replace it")
            if os.listdir(destination):
                raise ToolError(
                    f"'{shown_dst}' is a directory that is not empty; delete it first "
                    "(delete_path with recursive=true) if it should go"
                )
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    try:
        os.replace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # Across file systems: shutil copies links as links (symlinks=True), never their targets.
        shutil.move(source, destination)
    return {"source": shown_src, "destination": shown_dst, "type": _kind(info.st_mode)}


def delete_path(inv: Invocation) -> dict[str, Any]:
    """Delete a file, a symlink (the link, not its target) or, with recursive, a directory."""
    path: str = inv.args["path"]
    target, info = _existing(inv.root, path, "delete")
    kind = _kind(info.st_mode)
    if kind == "dir":
        if not inv.args.get("recursive", False):
            raise ToolError(
                f"'{path}' is a directory; pass recursive=true to delete it with everything in it"
            )
        # rmtree works on descriptors where the platform allows it and never follows a link
        # inside the tree; a link is removed as a link.
        shutil.rmtree(target)
    else:
        os.unlink(target)
    return {"deleted": display(inv.root, target), "type": kind}


def file_info(inv: Invocation) -> dict[str, Any]:
    """Type, size, mode and mtime of an entry; sha256 and line count for a regular file."""
    target, info = _existing(inv.root, inv.args["path"], "describe", allow_root=True)
    kind = _kind(info.st_mode)
    result: dict[str, Any] = {
        "path": display(inv.root, target),
        "type": kind,
        "size": info.st_size,
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "mtime": datetime.fromtimestamp(info.st_mtime, tz=UTC).isoformat(timespec="seconds"),
    }
    if kind == "symlink":
        # The target is text the sandbox wrote; it is shown, never resolved or followed.
        text, cut = cap_text(os.readlink(target), min(_MAX_TARGET_BYTES, inv.output_cap))
        result["target"] = text
        result["truncated"] = cut
    elif kind == "dir":
        result["entries"] = len(os.listdir(target))
    elif kind == "file":
        result.update(_digest(target, info.st_size, inv.timeout_sec))
    return result


def _digest(target: str, size: int, budget_sec: float) -> dict[str, Any]:
    """sha256 and, for text, the line count of a regular file, within size and time bounds."""
    if size > _MAX_HASH_BYTES:
        return {"sha256": None, "note": f"larger than {_MAX_HASH_BYTES} bytes: not hashed"}
    # O_NOFOLLOW and O_NONBLOCK: a link or FIFO swapped in after the lstat is refused, not read.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(target, flags)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ToolError(f"'{os.path.basename(target)}' changed while it was read; try again")
        digest = hashlib.sha256()
        lines, binary, last = 0, False, b""
        end = time.monotonic() + budget_sec
        first = True
        while chunk := f.read(_CHUNK):
            if time.monotonic() > end:
                return {"sha256": None, "note": "hashing ran out of time"}
            if first and b"\x00" in chunk[:_BINARY_SNIFF_BYTES]:
                binary = True
            first = False
            digest.update(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    result: dict[str, Any] = {"sha256": digest.hexdigest(), "binary": binary}
    if not binary:
        result["lines"] = lines + (1 if last not in (b"", b"\n") else 0)
    return result


def tools(limits: RunLimits) -> list[Tool]:
    """move_path, delete_path and file_info, with the run's limits applied."""
    timeout = float(limits.tool_timeout_sec)
    out_cap = limits.tool_output_bytes
    return [
        Tool(
            "move_path",
            "Move or rename a file, directory or symlink (the link itself) inside the workspace; "
            "missing parent directories of destination are created. Refuses an existing "
            "destination unless overwrite is true (which replaces a file or an empty directory). "
            "The workspace root cannot be moved.",
            schema(
                {
                    "source": PATH_ARG,
                    "destination": PATH_ARG,
                    "overwrite": {"type": "boolean", "description": "Default false."},
                },
                ["source", "destination"],
            ),
            timeout,
            out_cap,
            move_path,
        ),
        Tool(
            "delete_path",
            "Delete a file, a symlink (the link is removed, never what it points to) or a "
            "directory; a directory needs recursive=true and is deleted with everything in it. "
            "The workspace root cannot be deleted. There is no undo.",
            schema(
                {
                    "path": PATH_ARG,
                    "recursive": {"type": "boolean", "description": "Default false."},
                },
                ["path"],
            ),
            timeout,
            out_cap,
            delete_path,
        ),
        Tool(
            "file_info",
            "Describe one entry without opening it for the model: type (file, dir, symlink, "
            "fifo, ...), size, mode (octal), mtime (UTC). Files also get sha256, binary and, for "
            f"text, lines (files over {_MAX_HASH_BYTES} bytes are not hashed); directories get "
            "their number of entries; a symlink gets its target as text (not followed).",
            schema({"path": PATH_ARG}, ["path"]),
            timeout,
            out_cap,
            file_info,
        ),
    ]
