"""The `archive` tool: create, list and extract zip and tar(.gz/.bz2/.xz) archives.

Extraction reads the archive by the hostile-archive rules the server holds uploaded bundles to
(`actana.protocol.archives`, one implementation for both) and is all or nothing: every entry is
checked and read into memory (at most the total cap) and every target is checked — no existing
file in the way unless overwrite, no symlink on the way, nothing outside the destination —
before the first file is written. Creating never follows a symlink: links and
special files met on the way are left out and listed in `skipped`.
"""

# ruff: noqa: PTH103, PTH108, PTH110, PTH112, PTH113, PTH114, PTH118, PTH119, PTH120, PTH202
# Paths stay `str` here on purpose: the workspace confinement is os.path.realpath plus
# os.path.commonpath on strings, and every path handled here has been through it.

from __future__ import annotations

import os
import stat
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from actana.protocol.archives import ArchiveLimits, ArchiveRejected, read_archive
from actana.protocol.payloads import RunLimits
from actana.runtime.tools.base import (
    MAX_ENTRIES,
    PATH_ARG,
    Invocation,
    Tool,
    ToolError,
    cap_lines,
    schema,
)
from actana.runtime.tools.paths import display, inside, open_for_write, resolve, resolve_for_write

LIMITS = ArchiveLimits()
# An archive file bigger than this is not opened at all (its index alone could be huge).
_MAX_ARCHIVE_BYTES = 64 * 1024 * 1024
# Creating: what may go in (the workspace's own files, still bounded).
_MAX_CREATE_ENTRIES = 10_000
_MAX_CREATE_BYTES = 256 * 1024 * 1024
_ZIP_EPOCH = 315532800  # 1980-01-01, the earliest date a zip entry can hold
_TAR_MODES = {
    ".tar": "w",
    ".tar.gz": "w:gz",
    ".tgz": "w:gz",
    ".tar.bz2": "w:bz2",
    ".tar.xz": "w:xz",
}


def _format(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".zip"):
        return "zip"
    for suffix, mode in _TAR_MODES.items():
        if lower.endswith(suffix):
            return mode
    raise ToolError(
        f"'{path}' has no archive extension; use .zip, .tar, .tar.gz (.tgz), .tar.bz2 or .tar.xz"
    )


def _open_existing(inv: Invocation, path: str) -> str:
    real = resolve(inv.root, path)
    if not os.path.isfile(real):
        raise ToolError(f"'{path}' does not exist (or is not a regular file)")
    if os.path.getsize(real) > _MAX_ARCHIVE_BYTES:
        raise ToolError(f"'{path}' is larger than {_MAX_ARCHIVE_BYTES} bytes; too big to open here")
    return real


@dataclass(frozen=True)
class Entry:
    """One checked entry to extract: a folder (data None) or a regular file with its data."""

    path: str
    data: bytes | None
    executable: bool


def _entries(real: str, shown: str) -> list[Entry]:
    """Every checked entry of the archive at `real` (zip or any tar), folders first, or a
    refusal that says which entry broke which rule."""
    fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as source:
        data = source.read(_MAX_ARCHIVE_BYTES + 1)
    folders: list[str] = []
    try:
        files = read_archive(data, LIMITS, folders)
    except ArchiveRejected as exc:
        if exc.rule == "not_an_archive" and exc.entry is None:
            raise ToolError(
                f"'{shown}' is not a zip or tar archive this tool can read: {exc.problem}"
            ) from None
        raise ToolError(f"{exc} Nothing was extracted.") from None
    return [Entry(path, None, False) for path in folders] + [
        Entry(member.path, member.data, member.executable) for member in files
    ]


def _list(inv: Invocation) -> dict[str, Any]:
    """Names, types and sizes of the entries, without extracting (nothing is checked here)."""
    real = _open_existing(inv, inv.args["archive"])
    end = time.monotonic() + inv.timeout_sec
    try:
        if zipfile.is_zipfile(real):
            with zipfile.ZipFile(real) as opened_zip:
                lines = [_zip_line(info) for info in opened_zip.infolist()[: MAX_ENTRIES + 1]]
        else:
            lines = []
            with tarfile.open(real, "r:*") as opened_tar:
                for info in opened_tar:
                    lines.append(_tar_line(info))
                    if len(lines) > MAX_ENTRIES or time.monotonic() > end:
                        break
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ToolError(f"not a zip or tar archive this tool can read ({exc})") from None
    more = len(lines) > MAX_ENTRIES
    text, _, cut = cap_lines(lines[:MAX_ENTRIES], inv.output_cap)
    return {"archive": display(inv.root, real), "entries": text, "truncated": cut or more}


def _zip_line(info: zipfile.ZipInfo) -> str:
    link = " (symlink)" if stat.S_ISLNK(info.external_attr >> 16) else ""
    return f"{info.filename}\t{info.file_size}{link}"


def _tar_line(info: tarfile.TarInfo) -> str:
    kind = "" if info.isreg() or info.isdir() else f" ({_tar_kind(info)})"
    return f"{info.name}{'/' if info.isdir() else ''}\t{info.size}{kind}"


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"symlink to {info.linkname}"
    if info.islnk():
        return f"hardlink to {info.linkname}"
    return "device, fifo or other"


def _extract(inv: Invocation) -> dict[str, Any]:
    real = _open_existing(inv, inv.args["archive"])
    destination = resolve(inv.root, inv.args.get("destination", "."))
    if os.path.exists(destination) and not os.path.isdir(destination):
        raise ToolError(f"the destination '{display(inv.root, destination)}' is not a directory")
    entries = _entries(real, display(inv.root, real))
    overwrite = inv.args.get("overwrite", False)
    for entry in entries:  # every target checked before anything is written
        _check_target(inv.root, destination, entry, overwrite)
    os.makedirs(destination, exist_ok=True)
    for entry in entries:
        target = os.path.join(destination, entry.path)
        if entry.data is None:
            os.makedirs(target, mode=0o755, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        fd = open_for_write(inv.root, resolve_for_write(inv.root, target), create=True)
        os.fchmod(fd, 0o755 if entry.executable else 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(entry.data)
    files = [e for e in entries if e.data is not None]
    text, _, cut = cap_lines([e.path for e in files], inv.output_cap)
    return {
        "destination": display(inv.root, destination),
        "files": len(files),
        "bytes": sum(len(e.data or b"") for e in files),
        "extracted": text,
        "truncated": cut,
    }


def _check_target(root: str, destination: str, entry: Entry, overwrite: bool) -> None:
    """Refuse an entry whose path crosses a symlink, or lands on something it may not replace."""
    current = destination
    parts = entry.path.split("/")
    for index, part in enumerate(parts):
        current = os.path.join(current, part)
        shown = display(root, current)
        if os.path.islink(current):
            raise ToolError(f"'{shown}' is a symlink in the way of archive entry {entry.path!r}")
        last = index == len(parts) - 1
        if not os.path.lexists(current) or (last and entry.data is None and os.path.isdir(current)):
            continue
        if not last and not os.path.isdir(current):
            raise ToolError(
                f"'{shown}' is a file where archive entry {entry.path!r} needs a folder"
            )
        if last and (not overwrite or not os.path.isfile(current)):
            raise ToolError(
                f"'{shown}' already exists; extract into another destination, or pass "
                "overwrite=true to replace existing files"
            )
    if not inside(destination, os.path.realpath(os.path.dirname(current))):
        raise ToolError(f"archive entry {entry.path!r} would land outside the destination")


def _walk(root: str, top: str, skipped: list[str]) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of `top` and everything under it, sorted, never following a link; links,
    FIFOs, sockets and devices go to `skipped` instead."""
    stack = [top]
    while stack:
        path = stack.pop()
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            if path != root:
                yield path, info
            with os.scandir(path) as children:
                stack.extend(sorted((c.path for c in children), reverse=True))
        elif stat.S_ISREG(info.st_mode):
            yield path, info
        else:
            skipped.append(display(root, path))


def _collect(inv: Invocation, out: str) -> tuple[list[tuple[str, os.stat_result]], list[str]]:
    paths: list[str] = inv.args.get("paths") or []
    if not paths:
        raise ToolError("give paths: the files and folders to put in the archive, e.g. ['assets']")
    end = time.monotonic() + inv.timeout_sec
    found: dict[str, os.stat_result] = {}
    skipped: list[str] = []
    total = 0
    for path in paths:
        real = resolve(inv.root, path)
        if not os.path.lexists(real):
            raise ToolError(f"'{path}' does not exist")
        for item, info in _walk(inv.root, real, skipped):
            if item == out or item in found:
                continue  # never the archive being written; a path given twice goes in once
            found[item] = info
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
            if len(found) > _MAX_CREATE_ENTRIES or total > _MAX_CREATE_BYTES:
                raise ToolError(
                    f"too much to archive (at most {_MAX_CREATE_ENTRIES} entries and "
                    f"{_MAX_CREATE_BYTES} bytes); archive fewer or smaller paths"
                )
            if time.monotonic() > end:
                raise ToolError("collecting the files took longer than the tool's timeout")
    return list(found.items()), skipped


def _open_source(path: str) -> int:
    # O_NOFOLLOW/O_NONBLOCK: a link or FIFO swapped in since the walk is refused, never read.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ToolError(f"'{os.path.basename(path)}' changed while the archive was written")
    return fd


def _write_zip(out: IO[bytes], root: str, items: list[tuple[str, os.stat_result]]) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as opened:
        for path, info in items:
            is_dir = stat.S_ISDIR(info.st_mode)
            # Zip dates start in 1980; older mtimes are clamped rather than refused.
            when = time.gmtime(max(info.st_mtime, _ZIP_EPOCH))[:6]
            member = zipfile.ZipInfo(display(root, path) + ("/" if is_dir else ""), when)
            member.external_attr = (stat.S_IFMT(info.st_mode) | (info.st_mode & 0o777)) << 16
            if is_dir:
                opened.writestr(member, b"")
                continue
            member.compress_type = zipfile.ZIP_DEFLATED
            with os.fdopen(_open_source(path), "rb") as src, opened.open(member, "w") as dst:
                while chunk := src.read(1024 * 1024):
                    dst.write(chunk)


def _write_tar(
    out: IO[bytes], mode: str, root: str, items: list[tuple[str, os.stat_result]]
) -> None:
    with tarfile.open(fileobj=out, mode=mode, format=tarfile.PAX_FORMAT) as opened:  # type: ignore[call-overload]
        for path, info in items:
            member = tarfile.TarInfo(display(root, path))
            member.mode, member.mtime = info.st_mode & 0o777, int(info.st_mtime)
            if stat.S_ISDIR(info.st_mode):
                member.type = tarfile.DIRTYPE
                opened.addfile(member)
                continue
            with os.fdopen(_open_source(path), "rb") as src:
                member.size = os.fstat(src.fileno()).st_size
                opened.addfile(member, src)


def _create(inv: Invocation) -> dict[str, Any]:
    out = resolve_for_write(inv.root, inv.args["archive"])
    kind = _format(out)
    items, skipped = _collect(inv, out)
    fd = open_for_write(inv.root, out, create=True)
    try:
        with os.fdopen(fd, "wb") as out_file:
            if kind == "zip":
                _write_zip(out_file, inv.root, items)
            else:
                _write_tar(out_file, kind, inv.root, items)
    except BaseException:
        os.unlink(out)  # no half-written archive left behind
        raise
    text, _, cut = cap_lines(skipped, inv.output_cap // 2)
    return {
        "archive": display(inv.root, out),
        "entries": len(items),
        "bytes": os.path.getsize(out),
        "skipped": text,
        "truncated": cut,
    }


def archive(inv: Invocation) -> dict[str, Any]:
    """Dispatch on `action`: create, extract or list."""
    action = inv.args["action"]
    if action == "create":
        return _create(inv)
    if action == "extract":
        return _extract(inv)
    return _list(inv)


def tools(limits: RunLimits) -> list[Tool]:
    """archive, with the run's limits applied."""
    return [
        Tool(
            "archive",
            "Work with zip and tar archives (.zip, .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz). "
            "action=list: the entries (name, size, links marked) without extracting. "
            "action=create: write archive from paths (files and folders, recursively; names "
            "are workspace paths; symlinks and special files are left out and listed in "
            "skipped). action=extract: unpack archive into destination (default the workspace); "
            "existing files are kept unless overwrite=true. Extraction is all or nothing and "
            "refuses absolute or '..' paths, links, devices, encrypted entries, more than "
            f"{LIMITS.max_entries} entries, files over {LIMITS.max_file_bytes} bytes, more than "
            f"{LIMITS.max_total_bytes} bytes in all and zip bombs (ratio over "
            f"{LIMITS.max_ratio}).",
            schema(
                {
                    "action": {"type": "string", "enum": ["create", "extract", "list"]},
                    "archive": {**PATH_ARG, "description": "The archive file, e.g. out.zip."},
                    "paths": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "description": "create: what to put in.",
                    },
                    "destination": {**PATH_ARG, "description": "extract: where (default '.')."},
                    "overwrite": {"type": "boolean", "description": "extract: replace files."},
                },
                ["action", "archive"],
            ),
            float(limits.tool_timeout_sec),
            limits.tool_output_bytes,
            archive,
        ),
    ]
