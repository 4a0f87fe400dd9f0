"""A multipart/form-data body streamed from files on disk, with its length known up front.

Output files may add up to tens of megabytes; the body is never assembled in memory. Every file
is opened (without following a symlink) and measured before the request starts, so that the
Content-Length is exact and a file swapped for a link or a FIFO after it was listed is refused
rather than read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 256 * 1024
_CRLF = b"\r\n"


class FileChangedError(ValueError):
    """A file grew shorter between measuring it and sending it: the declared length is wrong."""


def _quote(name: str) -> str:
    """Escape a filename for a Content-Disposition header the way browsers do (WHATWG)."""
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def open_regular(path: Path) -> tuple[int, int]:
    """Open a regular file for reading without following a symlink at its last component.

    Returns:
        (descriptor, size in bytes).

    Raises:
        OSError: the file is missing, a symlink (ELOOP), or not a regular file.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer shows up.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"not a regular file: {path}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


class MultipartBody:
    """The parts of one upload; every part is a form field named `files`.

    Attributes:
        boundary: the multipart boundary (random, so no file content can contain it by chance).
        length: the exact number of bytes `chunks()` yields.
    """

    def __init__(self, parts: list[tuple[bytes, int, int]], boundary: str) -> None:
        """Wrap (part header, descriptor, size) triples; the body owns the descriptors."""
        self._parts = parts
        self.boundary = boundary
        self._closing = f"--{boundary}--\r\n".encode()
        self.length = len(self._closing) + sum(
            len(header) + size + len(_CRLF) for header, _, size in parts
        )

    @classmethod
    def open(cls, files: list[tuple[str, Path]]) -> MultipartBody:
        """Open and measure every file.

        Args:
            files: (filename to send, file on disk) pairs.

        Raises:
            OSError: a file cannot be opened as a regular file (all opened ones are closed).
        """
        # os.urandom, not `secrets`: same randomness without importing `random` and `hashlib`.
        boundary = f"actana-{os.urandom(16).hex()}"
        parts: list[tuple[bytes, int, int]] = []
        try:
            for name, path in files:
                fd, size = open_regular(path)
                parts.append((cls._header(boundary, name), fd, size))
        except BaseException:
            for _, fd, _ in parts:
                os.close(fd)
            raise
        return cls(parts, boundary)

    @staticmethod
    def _header(boundary: str, name: str) -> bytes:
        return (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{_quote(name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode("utf-8", "surrogateescape")

    @property
    def content_type(self) -> str:
        """The Content-Type header value, boundary included."""
        return f"multipart/form-data; boundary={self.boundary}"

    def chunks(self) -> Iterator[bytes]:
        """Yield the body, reading each file in bounded chunks.

        Raises:
            FileChangedError: a file ended before its measured size (a grown file is cut at it).
        """
        for header, fd, size in self._parts:
            yield header
            left = size
            while left > 0:
                chunk = os.read(fd, min(_CHUNK, left))
                if not chunk:
                    raise FileChangedError("an output file shrank while it was being uploaded")
                left -= len(chunk)
                yield chunk
            yield _CRLF
        yield self._closing

    def close(self) -> None:
        """Close every file descriptor; safe to call twice."""
        parts, self._parts = self._parts, []
        for _, fd, _ in parts:
            os.close(fd)
