"""The hostile-archive rules the `archive` tool extracts by, inside the sandbox.

They mirror the trusted side's rules (`actana.files.archive_rules`, which the runtime may not
import): the same caps, and every entry name, type and size checked before a byte is written.
An archive is taken whole or not at all. What is refused: absolute paths, drive letters,
backslashes, `..` components, control characters, names that collide (ignoring case and Unicode
form), symlinks, hardlinks, devices, FIFOs, sparse and encrypted entries, more than
`max_entries` entries, files or totals over the size caps, and a zip entry (or a whole tar
stream) that inflates more than `max_ratio` times. Sizes are counted as the data is read, never
taken from the headers alone, so a lying header cannot inflate past the caps either.
"""

from __future__ import annotations

import stat
import tarfile
import time
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from actana.runtime.tools.base import ToolError

_CHUNK = 64 * 1024
_REBUILD = "Re-create the archive with a standard tool, within the limits"


@dataclass(frozen=True)
class Limits:
    """Caps on what one extraction may produce (the values of the trusted side's defaults)."""

    max_entries: int = 1000
    max_total_bytes: int = 20 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    max_ratio: int = 100
    max_path_length: int = 255
    max_depth: int = 16


@dataclass(frozen=True)
class Entry:
    """One checked entry: a directory (data None) or a regular file with its data."""

    path: str
    data: bytes | None
    executable: bool


def reject(entry: str | None, problem: str, fix: str = _REBUILD) -> ToolError:
    """The error for a refused archive: which entry, what is wrong, what to do instead."""
    where = f"archive entry {entry!r:.200}" if entry is not None else "the archive"
    return ToolError(f"{where} refused: {problem}; nothing was extracted. {fix}")


def clean_name(name: str, *, is_dir: bool, limits: Limits) -> str:
    """The entry's normalised relative path ('' for the root itself), or a refusal."""
    fix = "Re-create the archive with relative paths inside one folder"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise reject(name, "its name has control characters or is not UTF-8", fix)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise reject(name, "its name is an absolute path", fix)
    if "\\" in name:
        raise reject(name, "its name has a backslash", fix)
    body = name[:-1] if is_dir and name.endswith("/") else name
    parts = [part for part in body.split("/") if part != "."]
    if ".." in parts:
        raise reject(name, "its name has a '..' component", fix)
    if "" in parts:
        raise reject(name, "its name has an empty component", fix)
    if not parts and not is_dir:
        raise reject(name, "its name is empty", fix)
    if len(parts) > limits.max_depth:
        raise reject(name, f"its path is deeper than {limits.max_depth} levels", fix)
    path = "/".join(parts)
    if len(path.encode()) > limits.max_path_length:
        raise reject(name, f"its path is longer than {limits.max_path_length} bytes", fix)
    return path


class Names:
    """Refuses two entries that would land on the same file, or a file used as a directory."""

    def __init__(self) -> None:
        """Start with no names."""
        self._files: set[str] = set()
        self._dirs: set[str] = set()

    def add(self, path: str, *, is_dir: bool, shown: str) -> None:
        """Record a path (not '').

        Raises:
            ToolError: it collides with an earlier entry.
        """
        # Case-insensitive and Unicode-normalising file systems would make these one file.
        key = unicodedata.normalize("NFC", path).casefold()
        parents = key.split("/")[:-1]
        prefixes = ["/".join(parents[: i + 1]) for i in range(len(parents))]
        if key in self._files or (not is_dir and key in self._dirs):
            raise reject(shown, "another entry has the same path", "Give every entry its own path")
        if any(prefix in self._files for prefix in prefixes):
            raise reject(shown, "a parent directory of it is a file", "Fix the archive's layout")
        self._dirs.update(prefixes)
        (self._dirs if is_dir else self._files).add(key)


class Budget:
    """Counts entries and bytes actually produced, and the time spent, against the caps."""

    def __init__(self, limits: Limits, deadline: float) -> None:
        """Start counting; `deadline` is a time.monotonic() value."""
        self.limits = limits
        self.deadline = deadline
        self.entries = 0
        self.total = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise reject(
                None, f"it has more than {self.limits.max_entries} entries", "Bundle fewer files"
            )
        if time.monotonic() > self.deadline:
            raise reject(None, "reading it took longer than the tool's timeout", "Make it smaller")

    def declared(self, shown: str, size: int) -> None:
        if size > self.limits.max_file_bytes:
            raise reject(shown, f"it declares {size} bytes (at most {self.limits.max_file_bytes})")

    def read(self, stream: IO[bytes], shown: str, declared: int) -> bytes:
        """Read an entry's data, counting what actually comes out."""
        cap = min(declared, self.limits.max_file_bytes)
        data = bytearray()
        while chunk := stream.read(_CHUNK):
            data += chunk
            if len(data) > cap:
                raise reject(shown, f"it unpacks to more than {cap} bytes (lying header?)")
            if self.total + len(data) > self.limits.max_total_bytes:
                raise reject(
                    shown, f"the files unpack to more than {self.limits.max_total_bytes} bytes"
                )
            if time.monotonic() > self.deadline:
                raise reject(None, "reading it took longer than the tool's timeout")
        if len(data) != declared:
            raise reject(shown, f"it holds {len(data)} bytes but declares {declared}")
        self.total += len(data)
        return bytes(data)


def zip_entries(archive: zipfile.ZipFile, budget: Budget) -> Iterator[Entry]:
    """The checked entries of a zip; the first refusal stops everything."""
    names = Names()
    infos = archive.infolist()
    if len(infos) > budget.limits.max_entries:
        raise reject(None, f"it has {len(infos)} entries (at most {budget.limits.max_entries})")
    for info in infos:
        budget.entry()
        name, mode = info.filename, info.external_attr >> 16
        kind, is_dir = stat.S_IFMT(mode), info.is_dir()
        if kind == stat.S_IFLNK:
            raise reject(name, "it is a symbolic link", "Store a copy of the file instead")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise reject(name, "it is a device, FIFO or socket", "Store regular files only")
        if info.flag_bits & 0x1:
            raise reject(name, "it is encrypted", "Store it without a password")
        path = clean_name(name, is_dir=is_dir, limits=budget.limits)
        if path:
            names.add(path, is_dir=is_dir, shown=name)
        if is_dir:
            if path:
                yield Entry(path, None, False)
            continue
        budget.declared(name, info.file_size)
        # By multiplication: a compressed size of 0 must count as an infinite ratio.
        if info.file_size > budget.limits.max_ratio * info.compress_size:
            raise reject(
                name, f"it inflates more than {budget.limits.max_ratio} times (a zip bomb?)"
            )
        with archive.open(info) as stream:
            data = budget.read(stream, name, info.file_size)
        yield Entry(path, data, bool(mode & stat.S_IXUSR))


def tar_entries(archive: tarfile.TarFile, archive_bytes: int, budget: Budget) -> Iterator[Entry]:
    """The checked entries of a tar (any compression), read in one pass over the stream."""
    names = Names()
    for info in archive:  # sizes are checked here, before `next` would skip over the data
        budget.entry()
        name = info.name
        if info.issym() or info.islnk():
            raise reject(name, "it is a link", "Store a copy of the file instead")
        if not (info.isreg() or info.isdir()) or info.issparse():
            raise reject(name, "it is a device, FIFO or sparse file", "Store regular files only")
        is_dir = info.isdir()
        path = clean_name(name + ("/" if is_dir else ""), is_dir=is_dir, limits=budget.limits)
        if path:
            names.add(path, is_dir=is_dir, shown=name)
        if is_dir:
            if path:
                yield Entry(path, None, False)
            continue
        budget.declared(name, info.size)
        if budget.total + info.size > budget.limits.max_ratio * max(archive_bytes, 1):
            raise reject(name, f"the archive inflates more than {budget.limits.max_ratio} times")
        stream = archive.extractfile(info)
        if stream is None:
            raise reject(name, "its data cannot be read")
        with stream:
            data = budget.read(stream, name, info.size)
        yield Entry(path, data, bool(info.mode & stat.S_IXUSR))
