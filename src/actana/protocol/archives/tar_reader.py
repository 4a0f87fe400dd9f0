"""The tar reader (plain, gzip, bzip2, xz) behind `read_archive` (`actana.protocol.archives`).

The compressed stream is inflated under a cap first; then all headers are checked before any
file data is read, and the data is read in bounded chunks and counted.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import tarfile
from typing import IO

from actana.protocol.archives.rules import (
    ArchiveLimits,
    ArchiveMember,
    ArchiveRejected,
    NameRegistry,
    PlannedFile,
    check_declared,
    normalise_name,
    printable,
    read_planned,
)

_CHUNK = 64 * 1024
_TAR_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_TAR_MAGIC = b"ustar"
_TAR_MAGIC_OFFSET = 257
# A decompressed tar stream holds, per entry, a header, maybe long-name and pax headers, and
# padding; plus end-of-archive blocks padded to a 10 KiB record. More than this is not a tar
# within the limits, whatever the headers claim.
_TAR_OVERHEAD_PER_ENTRY = 4096
_TAR_TRAILER_ALLOWANCE = 2 * 10240


def tar_stream(data: bytes, limits: ArchiveLimits) -> bytes:
    """Return the uncompressed tar bytes, decompressing with a cap on the output.

    The compressed stream is a bomb in its own right (gigabytes of zeros after the end-of-archive
    marker are still a valid tar), so the cap applies to every byte produced, not just to files.

    Args:
        data: the raw upload: a plain, gzip, bzip2 or xz compressed tar.
        limits: the caps from which the stream cap is derived.

    Returns:
        The tar stream.

    Raises:
        ArchiveRejected: not_an_archive without tar magic, too_large past the stream cap.
    """
    decompressing = _open_decompressed(data)
    if decompressing is None:
        _require_tar_magic(data)
        return data
    cap = (
        limits.max_total_bytes
        + (limits.max_entries + 1) * _TAR_OVERHEAD_PER_ENTRY
        + _TAR_TRAILER_ALLOWANCE
    )
    out = bytearray()
    magic_checked = False
    with decompressing as reader:
        while chunk := reader.read(_CHUNK):
            out += chunk
            if not magic_checked and len(out) >= tarfile.BLOCKSIZE:
                # Reject a compressed non-tar after its first block, not after the whole bomb.
                _require_tar_magic(bytes(out[: tarfile.BLOCKSIZE]))
                magic_checked = True
            if len(out) > cap:
                raise ArchiveRejected(
                    "too_large", None, f"the tar stream decompresses to more than {cap} bytes"
                )
    _require_tar_magic(bytes(out[: tarfile.BLOCKSIZE]))
    return bytes(out)


def _open_decompressed(data: bytes) -> io.BufferedIOBase | None:
    """Return a decompressing reader chosen by the content's magic bytes, None if uncompressed."""
    raw = io.BytesIO(data)
    if data.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if data.startswith(b"BZh"):
        return bz2.BZ2File(raw, mode="rb")
    if data.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, mode="rb")
    return None


def _require_tar_magic(head: bytes) -> None:
    # Every tar writer in use (GNU, bsdtar, Python) writes ustar/GNU/pax headers; accepting
    # magic-less V7 headers would make random bytes with a valid checksum "an archive".
    magic = head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + len(_TAR_MAGIC)]
    if magic != _TAR_MAGIC:
        raise ArchiveRejected("not_an_archive", None, "it is neither a zip nor a tar archive")


def read_tar(
    buf: bytes, limits: ArchiveLimits, directories: list[str] | None = None
) -> list[ArchiveMember]:
    """Read an uncompressed tar archive held in memory, enforcing every rule.

    Args:
        buf: the tar stream, as returned by `tar_stream`.
        limits: the caps to enforce.
        directories: if given, the normalised paths of the directory entries are added to it.

    Returns:
        The regular files, in archive order.

    Raises:
        ArchiveRejected: at the first broken rule.
    """
    # surrogateescape keeps undecodable name bytes visible to normalise_name, which refuses them.
    archive = tarfile.TarFile(
        fileobj=io.BytesIO(buf), mode="r", encoding="utf-8", errors="surrogateescape"
    )
    with archive:
        plan: list[tuple[tarfile.TarInfo, PlannedFile]] = []
        registry = NameRegistry()
        count = 0
        total = 0
        # next() reads headers only (it seeks over data), so all metadata is checked first.
        while (info := archive.next()) is not None:
            count += 1
            if count > limits.max_entries:
                raise ArchiveRejected(
                    "too_many_entries", None, f"it has more than {limits.max_entries} entries"
                )
            item = _check_tar_entry(info, limits, registry)
            if isinstance(item, str):
                if item and directories is not None:
                    directories.append(item)
                continue
            total += item.declared
            check_declared(item, total, limits)
            plan.append((info, item))
        # tarfile ends quietly at the first unreadable header; demand a real end-of-archive
        # marker so that a truncated or corrupted archive is not taken for a shorter one.
        tail = buf[archive.offset :]
        if not tail or tail.strip(b"\0"):
            raise ArchiveRejected(
                "not_an_archive", None, "it is truncated or has a corrupt header after its entries"
            )

        def open_entry(info: tarfile.TarInfo) -> IO[bytes]:
            stream = archive.extractfile(info)
            if stream is None:
                raise ArchiveRejected(
                    "not_an_archive", printable(info.name), "its data cannot be read"
                )
            return stream

        return read_planned(plan, open_entry, limits)


def _check_tar_entry(
    info: tarfile.TarInfo, limits: ArchiveLimits, registry: NameRegistry
) -> PlannedFile | str:
    """Check one tar entry's metadata; return the file to read, or a directory's path."""
    shown = printable(info.name)
    if info.issym():
        raise ArchiveRejected(
            "symlink", shown, f"it is a symbolic link to '{printable(info.linkname)}'"
        )
    if info.islnk():
        raise ArchiveRejected(
            "hardlink", shown, f"it is a hard link to '{printable(info.linkname)}'"
        )
    is_dir = info.isdir()
    if info.issparse() or not (is_dir or info.type in _TAR_FILE_TYPES):
        raise ArchiveRejected("special_file", shown, f"it is {_tar_kind(info)}")
    # tarfile does not skip data behind a directory header, so it would parse that data as
    # further headers, which other tar readers would not: refuse the ambiguity.
    if is_dir and info.size:
        raise ArchiveRejected("special_file", shown, "it is a directory that carries data")
    path = normalise_name(info.name, is_dir=is_dir, limits=limits)
    if path:
        registry.add(path, is_dir=is_dir, shown=shown)
    if is_dir:
        return path
    return PlannedFile(path, shown, bool(info.mode & stat.S_IXUSR), info.size)


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.ischr():
        return "a character device"
    if info.isblk():
        return "a block device"
    if info.isfifo():
        return "a FIFO"
    if info.issparse():
        return "a sparse file"
    return f"of unsupported type '{printable(info.type.decode('latin-1'))}'"
