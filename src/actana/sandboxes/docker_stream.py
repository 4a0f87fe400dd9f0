"""One container's attach connection, read and written from the event loop.

`POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1` hijacks the HTTP connection:
what we write is the container's stdin (closing our write side closes it, as the container is
`StdinOnce`), and what we read is stdout and stderr multiplexed in frames: an 8-byte header
(stream id, 3 zero bytes, big-endian payload length) and the payload. Everything that comes out
is hostile: the frame header is checked, stdout is bounded by the caller's cap, stderr is kept
only as a bounded tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from actana.sandboxes.errors import SandboxUnavailableError

STDOUT, STDERR = 1, 2
_HEADER = struct.Struct(">BxxxL")
_READ_BYTES = 1 << 16


def raw_socket(hijacked: Any) -> socket.socket:
    """The socket under what docker-py's `attach_socket` returns (a SocketIO over a unix or TCP
    socket, or the socket itself)."""
    for candidate in (hijacked, getattr(hijacked, "_sock", None)):
        if isinstance(candidate, socket.socket):
            return candidate
    raise SandboxUnavailableError(f"cannot use the attach connection ({type(hijacked).__name__})")


class AttachStream:
    """Stdin writer and frame reader over one hijacked attach connection."""

    def __init__(self, hijacked: Any, *, stderr_keep: int = 64 * 1024) -> None:
        self._hijacked = hijacked  # keeps docker-py's response (and the connection) alive
        self._sock = raw_socket(hijacked)
        self._sock.setblocking(False)
        self._stderr: deque[bytes] = deque()
        self._stderr_size = 0
        self._stderr_keep = stderr_keep
        self._buffer = bytearray()

    async def send_stdin(self, chunks: AsyncIterator[bytes]) -> None:
        """Write everything, then close our write side (the container sees EOF on stdin)."""
        loop = asyncio.get_running_loop()
        try:
            async for chunk in chunks:
                await loop.sock_sendall(self._sock, chunk)
        finally:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def stderr_tail(self, max_bytes: int) -> bytes:
        return b"".join(self._stderr)[-max_bytes:]

    def _keep_stderr(self, data: bytes) -> None:
        self._stderr.append(data)
        self._stderr_size += len(data)
        while self._stderr_size - len(self._stderr[0]) >= self._stderr_keep:
            self._stderr_size -= len(self._stderr.popleft())

    async def _fill(self, size: int) -> bool:
        """Read until the buffer holds `size` bytes; False at EOF."""
        loop = asyncio.get_running_loop()
        while len(self._buffer) < size:
            try:
                data = await loop.sock_recv(self._sock, _READ_BYTES)
            except OSError:
                return False
            if not data:
                return False
            self._buffer += data
        return True

    async def stdout(self) -> AsyncIterator[bytes]:
        """Stdout payloads until the container's output ends; stderr is kept aside.

        Raises:
            SandboxUnavailableError: a frame header that Docker would never send.
        """
        while await self._fill(_HEADER.size):
            kind, length = _HEADER.unpack_from(self._buffer)
            if kind not in (0, STDOUT, STDERR):
                raise SandboxUnavailableError(f"bad frame on the attach connection: {kind}")
            del self._buffer[: _HEADER.size]
            while length:
                if not self._buffer and not await self._fill(1):
                    return
                piece = bytes(self._buffer[:length])
                del self._buffer[: len(piece)]
                length -= len(piece)
                if kind == STDERR:
                    self._keep_stderr(piece)
                else:
                    yield piece

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(Exception):
            self._hijacked.close()
