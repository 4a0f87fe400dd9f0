"""The zip reader behind `read_archive` (`actana.protocol.archives`).

All metadata (count, names, types, flags, declared sizes and ratios, byte layout) is checked
before any entry is decompressed; data is then read in bounded chunks and counted.
"""

from __future__ import annotations

import copy
import io
import itertools
import stat
import struct
import zipfile
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

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # first local header, or an empty zip
_ZIP_LOCAL_MAGIC = b"PK\x03\x04"
_ZIP_LOCAL_HEADER_SIZE = 30
_ZIP_FLAG_ENCRYPTED = 0x01
_ZIP_FLAG_STRONG_ENCRYPTION = 0x40
_ZIP_FLAG_UTF8 = 0x800
# zipfile bounds the output of each read only for these methods; for bzip2 and lzma it
# decompresses a whole compressed chunk at once, which a bomb can turn into gigabytes.
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_SPECIAL_MODES = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_zip(
    data: bytes, limits: ArchiveLimits, directories: list[str] | None = None
) -> list[ArchiveMember]:
    """Read a zip archive held in memory, enforcing every rule.

    Args:
        data: the whole zip file.
        limits: the caps to enforce.
        directories: if given, the normalised paths of the directory entries are added to it.

    Returns:
        The regular files, in archive order.

    Raises:
        ArchiveRejected: at the first broken rule.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except UnicodeDecodeError as exc:
        # zipfile decodes flagged-UTF-8 names strictly while parsing the central directory; the
        # undecodable bytes are the name itself.
        name = printable(bytes(exc.object).decode("utf-8", "backslashreplace"))
        raise ArchiveRejected("bad_name", name, "its name is flagged UTF-8 but is not") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise ArchiveRejected(
                "too_many_entries",
                None,
                f"it has {len(infos)} entries (at most {limits.max_entries})",
            )
        plan: list[tuple[zipfile.ZipInfo, PlannedFile]] = []
        registry = NameRegistry()
        total = 0
        for info in infos:
            item = _check_zip_entry(info, limits, registry)
            if isinstance(item, str):
                if item and directories is not None:
                    directories.append(item)
                continue
            total += item.declared
            check_declared(item, total, limits)
            plan.append((info, item))
        _check_zip_layout(data, infos, archive.start_dir)

        def open_entry(info: zipfile.ZipInfo) -> IO[bytes]:
            # zipfile stops each entry at its declared size and only then checks the CRC; we
            # raise that stop to just above our cap so that our own count sees a lying size.
            opened = copy.copy(info)
            opened.file_size = limits.max_file_bytes + 1
            return archive.open(opened)

        return read_planned(plan, open_entry, limits)


def _zip_name(info: zipfile.ZipInfo) -> str:
    """Return the entry name, insisting it was really stored as UTF-8 (or plain ASCII)."""
    if info.flag_bits & _ZIP_FLAG_UTF8:
        return info.orig_filename  # zipfile already decoded it strictly
    # Without the flag zipfile decodes as cp437, which never fails and so hides legacy
    # encodings; cp437 maps bytes one-to-one, so encoding back recovers the raw bytes.
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:
        raw = info.orig_filename.encode("utf-8", "surrogateescape")
    if not raw.isascii():
        raise ArchiveRejected(
            "bad_name",
            printable(raw.decode("ascii", "backslashreplace")),
            "its name has non-ASCII bytes but is not flagged as UTF-8",
        )
    return raw.decode("ascii")


def _check_zip_entry(
    info: zipfile.ZipInfo, limits: ArchiveLimits, registry: NameRegistry
) -> PlannedFile | str:
    """Check one zip entry's metadata; return the file to read, or a directory's path."""
    name = _zip_name(info)
    shown = printable(name)
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    is_dir = name.endswith("/")
    if kind == stat.S_IFLNK:
        raise ArchiveRejected("symlink", shown, "it is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        what = _SPECIAL_MODES.get(kind, f"of unknown file type (mode {mode:o})")
        raise ArchiveRejected("special_file", shown, f"it is {what}")
    if kind == stat.S_IFDIR and not is_dir:
        raise ArchiveRejected("special_file", shown, "it has directory mode but no trailing '/'")
    if info.flag_bits & (_ZIP_FLAG_ENCRYPTED | _ZIP_FLAG_STRONG_ENCRYPTION):
        raise ArchiveRejected("encrypted", shown, "it is encrypted")
    path = normalise_name(name, is_dir=is_dir, limits=limits)
    if path:
        registry.add(path, is_dir=is_dir, shown=shown)
    if is_dir:
        if info.file_size:
            raise ArchiveRejected("special_file", shown, "it is a directory that carries data")
        return path
    if info.compress_type not in _ZIP_METHODS:
        raise ArchiveRejected(
            "unsupported", shown, f"it uses compression method {info.compress_type}"
        )
    # Compared by multiplication: compress_size may be 0, and that must count as infinite.
    if info.file_size > limits.max_ratio * info.compress_size:
        raise ArchiveRejected(
            "ratio",
            shown,
            f"it declares {info.file_size} bytes from {info.compress_size} compressed "
            f"(ratio above {limits.max_ratio})",
        )
    return PlannedFile(path, shown, bool(mode & stat.S_IXUSR), info.file_size)


def _check_zip_layout(data: bytes, infos: list[zipfile.ZipInfo], central_start: int) -> None:
    """Require every entry's local header and data to sit in its own byte range.

    Several central-directory entries sharing one stretch of compressed data is how
    "overlapping" zip bombs multiply their output; zipfile itself does not check this.
    """
    spans: list[tuple[int, int, str]] = []
    for info in infos:
        shown = printable(info.orig_filename)
        start = info.header_offset
        header_end = start + _ZIP_LOCAL_HEADER_SIZE
        if start < 0 or header_end > len(data) or data[start : start + 4] != _ZIP_LOCAL_MAGIC:
            raise ArchiveRejected("not_an_archive", shown, "its local header is missing")
        name_length, extra_length = struct.unpack_from("<HH", data, start + 26)
        end = header_end + name_length + extra_length + info.compress_size
        if end > central_start:
            raise ArchiveRejected("overlap", shown, "its data runs into the central directory")
        spans.append((start, end, shown))
    spans.sort()
    for (_, first_end, first), (second_start, _, second) in itertools.pairwise(spans):
        if second_start < first_end:
            raise ArchiveRejected("overlap", second, f"its bytes overlap those of entry '{first}'")
