"""Types, limits, the rejection error and the shared rules of the hostile-archive readers.

Kept apart from the format readers so that the policy can be read (and audited) on its own:
every archive format funnels its entry names through `normalise_name` and `NameRegistry`, its
declared sizes through `check_declared` and its file data through `read_counted`. Import the
public names from `actana.protocol.archives`, which re-exports them.
"""

from __future__ import annotations

import hashlib
import lzma
import struct
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, TypeVar

_CHUNK = 64 * 1024
# Rejected names are echoed back to the uploader and into logs; cap how much of them we show.
_MAX_SHOWN_CHARS = 200

_REBUILD = "re-create the archive with a standard tool"
# What to tell the uploader to do about each rule. The problem itself is described per entry.
_FIXES: dict[str, str] = {
    "path_traversal": "store every path relative to the archive root, without '..' components",
    "absolute_path": "store every path relative to the archive root (no leading '/', no drive)",
    "bad_name": "rename the entry using printable UTF-8 characters with '/' as separator",
    "path_too_long": "shorten the path",
    "too_deep": "flatten the directory structure",
    "duplicate": "make every path unique, also when compared case-insensitively",
    "symlink": "replace the link with a copy of the file it points to",
    "hardlink": "replace the link with a copy of the file it points to",
    "special_file": "include only regular files and directories",
    "encrypted": "store the files without encryption or a password",
    "unsupported": "re-create the zip with the 'stored' or 'deflate' compression method",
    "too_many_entries": "put fewer files in the archive",
    "too_large": "make the archive smaller",
    "ratio": "compress it less (or make it smaller)",
    "overlap": "re-create the archive with a standard zip tool",
    "not_an_archive": "use a zip, tar, tar.gz, tar.bz2 or tar.xz made by a standard tool",
}

# Parsers of attacker-controlled bytes fail in many ways; all of them mean "not an archive we
# can accept". MemoryError is deliberately absent, and ArchiveRejected (a ValueError) must be
# re-raised before this tuple is caught.
T = TypeVar("T")

PARSE_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
    IndexError,
    KeyError,
    OverflowError,
)


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied while reading an uploaded archive.

    Attributes:
        max_entries: entries in the archive; directories count too.
        max_total_bytes: sum of the unpacked sizes of all files.
        max_file_bytes: unpacked size of any one file.
        max_ratio: unpacked/compressed size allowed for one zip entry.
        max_path_length: length of a normalised path, in UTF-8 bytes.
        max_depth: components of a normalised path.
    """

    max_entries: int = 1000
    max_total_bytes: int = 20 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    max_ratio: int = 100
    max_path_length: int = 255
    max_depth: int = 16


@dataclass(frozen=True)
class ArchiveMember:
    """One regular file from an archive.

    Attributes:
        path: normalised relative POSIX path, e.g. `scripts/run.sh`.
        data: the file's content.
        executable: whether the owner-exec bit was set in the archive.
        sha256: hex SHA-256 of `data`.
    """

    path: str
    data: bytes
    executable: bool
    sha256: str


class ArchiveRejected(ValueError):
    """The archive breaks a rule; nothing from it may be used.

    Attributes:
        rule: short machine id of the broken rule, e.g. `path_traversal`, `symlink`, `ratio`.
        entry: the offending entry name made printable, or None when the archive as a whole is
            at fault (`not_an_archive`, `too_many_entries`, ...).
        problem: what is wrong, in words.
    """

    def __init__(
        self, rule: str, entry: str | None, problem: str, *, fix: str | None = None
    ) -> None:
        """Build the error and its human message (which entry, which rule, what to fix).

        Args:
            rule: the machine id of the rule; picks the default "what to fix" advice.
            entry: the offending entry, already passed through `printable`, or None.
            problem: what is wrong with the entry or archive.
            fix: advice to use instead of the rule's default.
        """
        self.rule = rule
        self.entry = entry
        self.problem = problem
        where = f"archive entry '{entry}'" if entry is not None else "archive"
        fix = fix or _FIXES.get(rule, _REBUILD)
        super().__init__(f"{where} rejected (rule {rule}): {problem}. To fix: {fix}.")


def printable(name: str) -> str:
    """Return `name` with every non-printable character escaped, shortened for display.

    Entry names come from the uploader; echoing control characters or bidi overrides back into
    terminals, logs or HTML would let them forge output.

    Args:
        name: an entry name as found in the archive.

    Returns:
        A printable rendering; `\\xNN`/`\\uNNNN` escapes stand for hidden characters.
    """
    shown: list[str] = []
    for char in name[:_MAX_SHOWN_CHARS]:
        code = ord(char)
        if char.isprintable():
            shown.append(char)
        elif code <= 0xFF:
            shown.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            shown.append(f"\\u{code:04x}")
        else:
            shown.append(f"\\U{code:08x}")
    if len(name) > _MAX_SHOWN_CHARS:
        shown.append("...")
    return "".join(shown)


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _is_surrogate(char: str) -> bool:
    # Undecodable bytes survive `surrogateescape` decoding as lone surrogates; they mean the
    # raw name was not UTF-8.
    return 0xD800 <= ord(char) <= 0xDFFF


def normalise_name(name: str, *, is_dir: bool, limits: ArchiveLimits) -> str:
    """Check one entry name and return its normalised relative POSIX path.

    `./` components are dropped; everything else that is odd is refused rather than repaired,
    because a silently "fixed" name may collide with or shadow another entry.

    Args:
        name: the decoded entry name as stored in the archive.
        is_dir: whether the entry is a directory (one trailing '/' is then allowed).
        limits: supplies the length and depth caps.

    Returns:
        The normalised path, or "" for a directory entry that names the root itself (`./`).

    Raises:
        ArchiveRejected: bad_name, absolute_path, path_traversal, path_too_long or too_deep.
    """
    shown = printable(name)
    if any(_is_surrogate(char) for char in name):
        raise ArchiveRejected("bad_name", shown, "its name is not valid UTF-8")
    if any(_is_control(char) for char in name):
        raise ArchiveRejected("bad_name", shown, "its name contains NUL or control characters")
    # Checked before backslashes so that `C:\x` is reported as the absolute path it is.
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        raise ArchiveRejected("absolute_path", shown, "its name starts with a drive letter")
    if "\\" in name:
        raise ArchiveRejected(
            "bad_name", shown, "its name contains a backslash (a Windows separator on unpack)"
        )
    if name.startswith("/"):
        raise ArchiveRejected("absolute_path", shown, "its name is an absolute path")
    body = name[:-1] if is_dir and name.endswith("/") else name
    parts = body.split("/")
    if ".." in parts:
        raise ArchiveRejected("path_traversal", shown, "its name contains a '..' component")
    kept = [part for part in parts if part != "."]
    if "" in kept:
        raise ArchiveRejected("bad_name", shown, "its name has an empty path component")
    if not kept:
        if is_dir:
            return ""
        raise ArchiveRejected("bad_name", shown, "its name is empty")
    if len(kept) > limits.max_depth:
        raise ArchiveRejected(
            "too_deep", shown, f"its path has {len(kept)} components (at most {limits.max_depth})"
        )
    path = "/".join(kept)
    size = len(path.encode("utf-8"))
    if size > limits.max_path_length:
        raise ArchiveRejected(
            "path_too_long",
            shown,
            f"its path is {size} bytes long (at most {limits.max_path_length})",
        )
    return path


def _fold(path: str) -> str:
    # Case-insensitive filesystems (macOS, Windows) and NFC/NFD-normalising ones (macOS) would
    # make two such names one file, and the second write would shadow the first.
    return "/".join(
        unicodedata.normalize("NFC", unicodedata.normalize("NFC", part).casefold())
        for part in path.split("/")
    )


class NameRegistry:
    """Detects entries that would land on the same file, or need a file to be a directory."""

    def __init__(self) -> None:
        """Start with no names seen."""
        self._entries: set[str] = set()
        self._files: set[str] = set()
        # Directories named by an entry or implied as the parent of one.
        self._dirs: set[str] = set()

    def add(self, path: str, *, is_dir: bool, shown: str) -> None:
        """Record one normalised path.

        Args:
            path: the normalised path from `normalise_name` (not "").
            is_dir: whether the entry is a directory.
            shown: the printable entry name, for the error message.

        Raises:
            ArchiveRejected: duplicate, when the path collides with an earlier entry.
        """
        key = _fold(path)
        if key in self._entries:
            raise ArchiveRejected(
                "duplicate",
                shown,
                "another entry has the same path (compared ignoring case and Unicode form)",
            )
        if not is_dir and key in self._dirs:
            raise ArchiveRejected(
                "duplicate", shown, "it is a file but other entries use it as a directory"
            )
        parts = key.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self._files:
                raise ArchiveRejected(
                    "duplicate", shown, "one of its parent directories is a file in the archive"
                )
            self._dirs.add(parent)
        self._entries.add(key)
        (self._dirs if is_dir else self._files).add(key)


@dataclass(frozen=True)
class PlannedFile:
    """A file entry whose metadata passed every check and whose data is still to be read.

    Attributes:
        path: the normalised path.
        shown: the printable entry name, for error messages.
        executable: whether the owner-exec bit is set.
        declared: the unpacked size the archive claims.
    """

    path: str
    shown: str
    executable: bool
    declared: int


def describe(exc: BaseException) -> str:
    """Render a parser exception for an error message."""
    return f"{type(exc).__name__}: {exc}"


def read_counted(
    stream: IO[bytes], item: PlannedFile, total_so_far: int, limits: ArchiveLimits
) -> ArchiveMember:
    """Read one file's data in chunks, counting the bytes actually produced.

    Declared sizes only passed the pre-checks; a lying header must not make us decompress more
    than was declared, nor past the per-file and total caps.

    Args:
        stream: the entry's (decompressing) data stream.
        item: the planned file, with its declared size.
        total_so_far: bytes already read for earlier files of the archive.
        limits: the caps to enforce.

    Returns:
        The member, with its SHA-256.

    Raises:
        ArchiveRejected: too_large as soon as a cap is passed; not_an_archive if short.
    """
    buf = bytearray()
    while chunk := stream.read(_CHUNK):
        buf += chunk
        if len(buf) > item.declared:
            raise ArchiveRejected(
                "too_large",
                item.shown,
                f"it unpacks to more than its declared {item.declared} bytes (lying header)",
                fix=_REBUILD,
            )
        if len(buf) > limits.max_file_bytes:
            raise ArchiveRejected(
                "too_large", item.shown, f"it unpacks to more than {limits.max_file_bytes} bytes"
            )
        if total_so_far + len(buf) > limits.max_total_bytes:
            raise ArchiveRejected(
                "too_large",
                item.shown,
                f"the files up to this one unpack to more than {limits.max_total_bytes} bytes",
            )
    if len(buf) != item.declared:
        raise ArchiveRejected(
            "not_an_archive",
            item.shown,
            f"it unpacks to {len(buf)} bytes but declares {item.declared} (truncated or corrupt)",
        )
    content = bytes(buf)
    return ArchiveMember(item.path, content, item.executable, hashlib.sha256(content).hexdigest())


def read_planned(
    plan: Sequence[tuple[T, PlannedFile]],
    open_entry: Callable[[T], AbstractContextManager[IO[bytes]]],
    limits: ArchiveLimits,
) -> list[ArchiveMember]:
    """Read every planned file through `read_counted`, in order, under the total cap.

    Args:
        plan: (format-specific entry, checked plan) pairs, in archive order.
        open_entry: opens one entry's data stream (the only part that differs per format).
        limits: the caps to enforce.

    Raises:
        ArchiveRejected: a cap is passed, or an entry's data is corrupt.
    """
    members: list[ArchiveMember] = []
    read_so_far = 0
    for entry, item in plan:
        try:
            with open_entry(entry) as stream:
                member = read_counted(stream, item, read_so_far, limits)
        except ArchiveRejected:
            raise
        except PARSE_ERRORS as exc:
            raise ArchiveRejected(
                "not_an_archive", item.shown, f"its data is corrupt ({printable(describe(exc))})"
            ) from exc
        read_so_far += len(member.data)
        members.append(member)
    return members


def check_declared(item: PlannedFile, total: int, limits: ArchiveLimits) -> None:
    """Hold one file's declared size, and the running declared total, to the caps.

    Args:
        item: the planned file.
        total: declared bytes of all files up to and including this one.
        limits: the caps to enforce.

    Raises:
        ArchiveRejected: too_large.
    """
    if item.declared > limits.max_file_bytes:
        raise ArchiveRejected(
            "too_large",
            item.shown,
            f"it declares {item.declared} bytes (at most {limits.max_file_bytes} per file)",
        )
    if total > limits.max_total_bytes:
        raise ArchiveRejected(
            "too_large",
            item.shown,
            f"the files up to this one declare {total} bytes (at most {limits.max_total_bytes})",
        )
