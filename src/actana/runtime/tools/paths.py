"""Keeping file tools inside the workspace.

Every path a model gives is resolved with `os.path.realpath` (which follows every symlink and
`..`) and must then lie under the resolved workspace root, compared component-wise with
`os.path.commonpath` — never with `str.startswith`, for which `/work-other` is "inside" `/work`.
That one check refuses absolute paths elsewhere, `..` escapes and symlinks that point out.

Writing adds one rule: never write *through* a symlink, even one pointing inside. The final
component is opened with O_NOFOLLOW, so a link swapped in after the check is refused as well.
"""

# ruff: noqa: PTH103, PTH114, PTH117, PTH118, PTH119, PTH120
# Paths stay `str` here on purpose: the workspace confinement is os.path.realpath plus
# os.path.commonpath on strings, and every path handled here has been through it.

from __future__ import annotations

import errno
import os
import stat

from actana.runtime.tools.base import ToolError

# Files are created like an ordinary shell would (the umask still applies).
_FILE_MODE = 0o666


def inside(root: str, candidate: str) -> bool:
    """Whether the resolved `candidate` is `root` or lies under it (both absolute, resolved)."""
    return os.path.commonpath([root, candidate]) == root


def _check_text(path: object) -> str:
    if not isinstance(path, str) or not path:
        raise ToolError("the path must be a non-empty string, relative to the workspace")
    if "\x00" in path:
        raise ToolError("the path must not contain a NUL character")
    return path


def resolve(root: str, path: str) -> str:
    """The real path of `path` (relative to `root`, or absolute), refused unless inside `root`.

    Raises:
        ToolError: the path leaves the workspace.
    """
    path = _check_text(path)
    real = os.path.realpath(os.path.join(root, path))  # join keeps an absolute `path` as is
    if not inside(root, real):
        raise ToolError(
            f"'{path}' is outside the workspace; use a path relative to the workspace directory "
            "(no '..' that climbs out of it, no symlink that points out of it)"
        )
    return real


def display(root: str, real: str) -> str:
    """How a resolved path is shown to the model: relative to the workspace."""
    rel = os.path.relpath(real, root)
    return "." if rel == "." else rel.replace(os.sep, "/")


def resolve_for_write(root: str, path: str) -> str:
    """Where to write `path`: its parent resolved and checked, its final name kept literal.

    The final component is not resolved, so that a symlink there is seen (and refused by
    `open_for_write`) instead of being silently followed.

    Raises:
        ToolError: the path leaves the workspace or does not name a file.
    """
    path = _check_text(path)
    joined = os.path.join(root, path)
    name = os.path.basename(joined)
    if name in ("", ".", ".."):
        raise ToolError(f"'{path}' does not name a file; give a file path such as 'out/report.md'")
    parent = os.path.realpath(os.path.dirname(joined))
    if not inside(root, parent):
        raise ToolError(f"'{path}' is outside the workspace; use a path relative to it")
    return os.path.join(parent, name)


def open_for_write(root: str, target: str, *, create: bool) -> int:
    """Open `target` (from `resolve_for_write`) for writing from scratch, never through a link.

    Args:
        root: the workspace root, for messages.
        target: the file to write.
        create: create the file (and missing parent directories) if it does not exist.

    Returns:
        A descriptor open for writing, the file truncated.

    Raises:
        ToolError: the target is a symlink or a directory, or does not exist and `create` is off.
    """
    shown = display(root, target)
    if os.path.islink(target):
        raise ToolError(f"'{shown}' is a symlink; refusing to write through it")
    if create:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    # O_NONBLOCK: opening a FIFO for writing would otherwise hang until a reader shows up.
    flags = os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if create:
        flags |= os.O_CREAT
    try:
        fd = os.open(target, flags, _FILE_MODE)
    except IsADirectoryError:
        raise ToolError(f"'{shown}' is a directory, not a file") from None
    except FileNotFoundError:
        raise ToolError(f"'{shown}' does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the final component became a symlink after the check
            raise ToolError(f"'{shown}' is a symlink; refusing to write through it") from None
        if exc.errno == errno.ENXIO:  # a FIFO without a reader
            raise ToolError(f"'{shown}' is not a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ToolError(f"'{shown}' is not a regular file")
    os.set_blocking(fd, True)
    return fd


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` and close it."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def describe_os_error(root: str, exc: OSError) -> str:
    """An OSError as the model should see it: the reason, and the path relative to the workspace."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    name = exc.filename
    if isinstance(name, str) and os.path.isabs(name) and inside(root, os.path.realpath(name)):
        return f"{reason}: '{display(root, name)}'"
    return f"{reason}: '{name}'" if name else reason
