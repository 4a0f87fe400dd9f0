"""Building blocks for streamed uploads: safe file names, multipart parts, exclusive files.

`sanitize_name` and `dedupe_name` turn whatever name an uploader sent into a safe, unique name
made of `[a-zA-Z0-9._-]`; the caller stores the original only as metadata.

`MultipartReader` is a thin adapter over python_multipart's streaming parser.
`python_multipart.MultipartParser` reports bytes-level events (header pieces, data slices) and
is lenient about what it accepts. `MultipartReader` turns them into part-level events for a
`PartHandler` (start with the part's field name and filename, data, end), checks the few
structural rules the parser leaves to its caller (a `Content-Disposition: form-data` header
with a name on every part, a complete body ending in the closing boundary) and reports every
structural problem as `MalformedMultipart`.

Nothing is buffered here beyond one part's headers (which the parser caps in size and count):
part data is handed on slice by slice as it arrives.

`ExclusiveFolder` creates files in one directory opened once (O_DIRECTORY|O_NOFOLLOW), only as
new files (O_CREAT|O_EXCL|O_NOFOLLOW, relative to the directory's descriptor), so neither a
symlink planted in the folder nor a path swapped after the check can redirect a write; and it can
delete exactly the files it created. `open_regular_file` opens an existing file only if it is a
plain regular file with a single link.

Limits on sizes, counts, name lengths and types are policy and live in `actana.files.assets`,
which also re-exports the two name functions.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

_SEPARATORS = re.compile(r"[/\\]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_UNDERSCORES = re.compile(r"_{2,}")
_TRAILING = re.compile(r"[\s.]+$")
# Longer "extensions" are just names with a dot in them; cutting them off would keep junk.
_MAX_EXTENSION = 16
# Still special on Windows with any extension; users download outputs to Windows machines.
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))]
)
# RFC 7578 section 4.7 deprecates Content-Transfer-Encoding; these values mean "the bytes are
# the content". Anything else (base64, quoted-printable) would store encoded text as the file.
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})


def split_extension(name: str) -> tuple[str, str]:
    """Split `name` into stem and extension (with its dot, or "" when there is none)."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem.strip("."):  # no dot, or only dots before it: ".bashrc", "...txt"
        return name, ""
    return stem, dot + extension


def _clean(text: str) -> str:
    return _UNDERSCORES.sub("_", _UNSAFE.sub("_", text))


def sanitize_name(original: str, *, max_length: int = 200) -> str:
    """Return a safe stored name for an uploaded file name.

    1. NFKC, so a full-width slash or the two-dot leader counts as the '/' or '..' it looks
       like; then accents are folded to their base letters (`résumé` -> `resume`).
    2. Only the last path component is kept (split on both '/' and '\\'); trailing dots and
       spaces are dropped, as Windows does.
    3. Every character outside [a-zA-Z0-9._-] becomes '_', runs of '_' collapse to one.
    4. Leading '.', '-' and '_' are stripped (no hidden files, nothing a shell tool would read
       as an option), and so is '_' just before the extension.
    5. Windows device names are defused (`CON.txt` -> `CON_.txt`); the length is capped at
       `max_length`, keeping the extension.

    A name with nothing left becomes `file` (keeping its extension), so the result is never
    "", "." or "..".
    """
    name = unicodedata.normalize("NFKC", original)
    name = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    parts = [part for part in _SEPARATORS.split(name) if part.strip(". \t")]
    name = _TRAILING.sub("", parts[-1].strip()) if parts else ""
    stem, extension = split_extension(name)
    body = _clean(extension[1:]).strip("_")
    if len(body) >= _MAX_EXTENSION:
        stem, extension = name, ""
    else:
        extension = f".{body}" if body else ""
    stem = _clean(stem).lstrip("._-").rstrip("_") or "file"
    head, dot, tail = stem.partition(".")
    if head.upper() in _RESERVED:
        stem = f"{head}_{dot}{tail}"
    if len(stem) + len(extension) > max_length:
        stem = stem[: max_length - len(extension)].rstrip(".")
    return stem + extension


def dedupe_name(name: str, taken: Iterable[str], *, max_length: int = 200) -> str:
    """Return `name`, or `stem-N.ext` with the smallest N >= 1 that is free.

    The clash check ignores case: on a case-insensitive file system (or a user's download
    folder) `Report.pdf` would overwrite `report.pdf`. `taken` is not modified.
    """
    used = {other.lower() for other in taken}
    if name.lower() not in used:
        return name
    stem, extension = split_extension(name)
    for n in count(1):
        suffix = f"-{n}"
        candidate = stem[: max_length - len(extension) - len(suffix)] + suffix + extension
        if candidate.lower() not in used:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


class MalformedMultipart(ValueError):
    """The body or its Content-Type is not well-formed multipart/form-data."""


@dataclass(frozen=True)
class PartInfo:
    """What a part says about itself in its headers.

    Attributes:
        name: the form field name (`name=` of Content-Disposition), decoded as UTF-8.
        filename: the `filename=` parameter as sent (not sanitised), or None when the part has
            none, i.e. it is a plain field rather than a file.
    """

    name: str
    filename: str | None


class PartHandler(Protocol):
    """Receives the parts of a multipart body, in order. Exceptions it raises propagate."""

    def start_part(self, part: PartInfo) -> None:
        """A part begins; its headers have been read."""

    def part_data(self, data: memoryview) -> None:
        """The next slice of the current part's content (valid only during the call)."""

    def end_part(self) -> None:
        """The current part is complete."""


def boundary_of(content_type: str) -> bytes:
    """Return the boundary of a `multipart/form-data` Content-Type header value.

    Raises:
        MalformedMultipart: another media type, or no usable boundary parameter.
    """
    media_type, params = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        shown = media_type.decode("latin-1")[:100] or "none"
        raise MalformedMultipart(f"Content-Type must be multipart/form-data, not {shown}")
    boundary = params.get(b"boundary", b"")
    if not boundary:
        raise MalformedMultipart("the multipart/form-data Content-Type has no boundary parameter")
    return boundary


class MultipartReader:
    """Feed a multipart/form-data body chunk by chunk; parts go to a `PartHandler`.

    Usage: `reader = MultipartReader(content_type, handler)`, then `reader.feed(chunk)` until
    `reader.finished` or the body ends, then `reader.close()`.
    """

    def __init__(self, content_type: str, handler: PartHandler) -> None:
        """Prepare to read a body sent with `content_type`.

        Raises:
            MalformedMultipart: the Content-Type is not multipart/form-data with a boundary.
        """
        self._handler = handler
        self._finished = False
        self._headers: dict[str, str] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": handler.end_part,
            "on_end": self._on_end,
        }
        try:
            self._parser = MultipartParser(boundary_of(content_type), callbacks)
        except FormParserError as exc:  # e.g. a boundary longer than the parser allows
            raise MalformedMultipart(str(exc)) from exc

    @property
    def finished(self) -> bool:
        """Whether the closing boundary has been read (anything after it is epilogue)."""
        return self._finished

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body, calling the handler as parts are recognised.

        Raises:
            MalformedMultipart: the bytes do not form a valid multipart body.
        """
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise MalformedMultipart(f"the multipart body is malformed: {exc}") from exc

    def close(self) -> None:
        """Declare the body complete.

        Raises:
            MalformedMultipart: the body ended before its closing boundary (a truncated upload
                must not pass as a shorter, complete one).
        """
        if not self._finished:
            raise MalformedMultipart("the multipart body ended before its closing boundary")

    # --- parser callbacks -------------------------------------------------------------------

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        # Latin-1 maps every byte to one character and back, so nothing is lost here; the
        # UTF-8 decoding of names happens once the parameters have been split out.
        name = self._header_name.decode("latin-1").strip().lower()
        value = self._header_value.decode("latin-1").strip()
        self._header_name.clear()
        self._header_value.clear()
        if name in self._headers:
            # Two Content-Disposition headers could name two different files; refuse to guess.
            raise MalformedMultipart(f"a part repeats its {name} header")
        self._headers[name] = value

    def _on_headers_finished(self) -> None:
        encoding = self._headers.get("content-transfer-encoding", "binary").lower()
        if encoding not in _IDENTITY_ENCODINGS:
            raise MalformedMultipart(
                f"Content-Transfer-Encoding {encoding[:40]!r} is not supported; send raw bytes"
            )
        disposition, params = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data":
            raise MalformedMultipart("every part needs a 'Content-Disposition: form-data' header")
        name = params.get(b"name", b"")
        if not name:
            raise MalformedMultipart("a part has no field name (name= in Content-Disposition)")
        filename = params.get(b"filename")
        self._handler.start_part(
            PartInfo(name=_utf8(name), filename=None if filename is None else _utf8(filename))
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        # A memoryview slice avoids copying every chunk once more on its way to disk.
        self._handler.part_data(memoryview(data)[start:end])

    def _on_end(self) -> None:
        self._finished = True


def _utf8(raw: bytes) -> str:
    # Browsers send names as raw UTF-8 inside the quoted string (RFC 7578 section 4.2).
    # Undecodable bytes become U+FFFD, which the name sanitiser replaces like any other odd
    # character, so a badly encoded name still yields a usable stored name.
    return raw.decode("utf-8", "replace")


class ExclusiveFolder:
    """Creates new files in one directory and can delete them all again.

    Attributes:
        path: the directory as given.
        existing: names that were in the directory when it was opened.
    """

    def __init__(self, path: Path) -> None:
        """Open `path`, which must be an existing directory and not a symlink.

        Raises:
            OSError: `path` is missing, not a directory, or a symlink.
        """
        self.path = path
        self._fd = open_directory(path)
        self._created: list[str] = []
        try:
            # Listed through the descriptor we write through, so it is the same directory.
            self.existing = frozenset(os.listdir(self._fd))  # noqa: PTH208
        except OSError:
            os.close(self._fd)
            raise

    def create(self, name: str, mode: int) -> int:
        """Create `name` as a new file and return a write-only descriptor for it.

        Raises:
            FileExistsError: something (a file, a directory, a symlink) already has the name.
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, mode, dir_fd=self._fd)
        self._created.append(name)
        return fd

    def remove_created(self) -> None:
        """Delete every file created through this object, leaving the folder as it was."""
        for name in self._created:
            with contextlib.suppress(FileNotFoundError):  # already gone is what we want
                os.unlink(name, dir_fd=self._fd)
        self._created.clear()

    def close(self) -> None:
        """Release the directory descriptor."""
        os.close(self._fd)


def open_directory(path: Path) -> int:
    """Open a directory for use as `dir_fd`, refusing a symlink in its last component."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def write_all(fd: int, data: memoryview) -> None:
    """Write all of `data`; `os.write` may write less than it is given."""
    while data:
        data = data[os.write(fd, data) :]


def open_regular_file(dir_fd: int, name: str) -> int | None:
    """Open `name` in `dir_fd` for reading if it is a regular file with exactly one link.

    Returns None for anything else: symlinks, directories, FIFOs, sockets, devices, and hard
    links, which in a folder shared with a sandbox could alias a file from outside it. The type
    is checked before opening (opening a FIFO or device can block or have side effects) and
    again on the open descriptor, so a swap between the two checks is caught.
    """
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not _is_plain(before):
            return None
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return None
    after = os.fstat(fd)
    if not _is_plain(after) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        return None
    return fd


def list_names(dir_fd: int, limit: int) -> list[str] | None:
    """List the entry names of a directory, or return None if there are more than `limit`."""
    # A hostile sandbox can create millions of entries; stop long before listing them hurts.
    names: list[str] = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            names.append(entry.name)
            if len(names) > limit:
                return None
    return names


def _is_plain(info: os.stat_result) -> bool:
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1
