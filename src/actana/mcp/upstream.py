"""One MCP client session to an `http` server (streamable HTTP), kept open by a task of its own.

The SDK's transport and `ClientSession` are anyio context managers whose task groups must be
entered and left by the same task, while the bridge wants one session per (run, server) shared
by the requests of a whole run. So a dedicated *owner* task enters them, initializes, and then
waits to be told to close; requests are sent from the callers' tasks (the session multiplexes
JSON-RPC ids). When the transport fails (an HTTP 401, the server gone), the SDK tears down the
owner's task group: every request in flight is raced against the owner, so it fails at once
with the owner's error instead of waiting for its timeout.

The server's headers (decrypted by the caller) live only in the httpx client of the owner task.
Errors are described without them (`describe`), and redirects leaving the server's origin are
never followed (the SDK's own rule), so the headers cannot be sent anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from mcp import ClientSession, McpError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

from actana.exceptions import RunError
from actana.providers.redact import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

CLOSE_GRACE_SEC = 2.0
"""How long closing waits for the upstream to hear the session's DELETE before giving up."""
HTTP_TIMEOUT = httpx.Timeout(30.0, read=300.0)
"""Transport-level ceilings; every request also has its own, shorter, deadline."""
MAX_ERROR_CHARS = 500
SESSION_TERMINATED = 32600
"""The JSON-RPC error code the SDK's transport answers a request with when the server says 404."""


class McpUpstreamError(RunError):
    """The MCP server could not be used; the message says why (never with header values)."""

    http_status = 502
    code = "mcp_upstream"

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message, kind=kind)
        self.kind = kind
        """`unreachable`, `refused` (401/403), `timeout`, `http_error`, `session_lost` (404),
        `server_error` (a JSON-RPC error) or `protocol`."""


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside the exception groups anyio wraps failures in."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe(
    exc: BaseException, label: str, secrets: list[str], timeout: float
) -> McpUpstreamError:
    """Turn whatever the SDK or httpx raised into one clear, scrubbed `McpUpstreamError`."""
    leaf = _leaf(exc)
    if isinstance(leaf, McpUpstreamError):
        return leaf
    if isinstance(leaf, TimeoutError | httpx.TimeoutException):
        return McpUpstreamError(f"{label} did not answer within {timeout:g} s", kind="timeout")
    if isinstance(leaf, httpx.HTTPStatusError):
        status = leaf.response.status_code
        if status in (401, 403):
            message = (
                f"{label} refused the credentials (HTTP {status}); check the headers stored "
                "with the MCP server"
            )
            return McpUpstreamError(message, kind="refused")
        return McpUpstreamError(f"{label} answered HTTP {status}", kind="http_error")
    if isinstance(leaf, httpx.ConnectError | httpx.NetworkError | OSError):
        message = f"{label} is unreachable ({type(leaf).__name__}: {leaf})"
        return McpUpstreamError(_scrub(message, secrets), kind="unreachable")
    if isinstance(leaf, McpError) and leaf.error.code == SESSION_TERMINATED:
        # The SDK's stand-in for an HTTP 404: the URL is wrong (at initialize), or the server
        # forgot the session (it restarted): the bridge then opens a new one.
        return McpUpstreamError(
            f"{label} answered HTTP 404: no MCP endpoint at the server's URL, or the server "
            "ended the session",
            kind="session_lost",
        )
    if isinstance(leaf, McpError):
        message = f"{label} returned an error: {leaf.error.message}"
        return McpUpstreamError(_scrub(message, secrets), kind="server_error")
    if isinstance(leaf, httpx.HTTPError):
        message = f"{label} failed over HTTP ({type(leaf).__name__}: {leaf})"
        return McpUpstreamError(_scrub(message, secrets), kind="unreachable")
    log.warning("%s: unexpected failure: %s", label, _scrub(repr(leaf), secrets))
    return McpUpstreamError(
        f"{label} failed unexpectedly ({type(leaf).__name__}); the server log has the details",
        kind="protocol",
    )


def _scrub(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = redact(text, value)
    return text[:MAX_ERROR_CHARS]


class UpstreamSession:
    """An initialized MCP session to `url`, open until `close()`."""

    def __init__(self, url: str, headers: dict[str, str], label: str) -> None:
        self.url = url
        self.label = label
        self._headers = headers
        self._secrets = [v for v in headers.values() if v]
        self._session: ClientSession | None = None
        self._owner: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self.server_info: Implementation | None = None

    @property
    def alive(self) -> bool:
        return self._owner is not None and not self._owner.done() and self._ready.is_set()

    async def open(self, timeout: float) -> None:
        """Connect and initialize within `timeout` seconds.

        Raises:
            McpUpstreamError: unreachable, credentials refused, timeout, protocol failure.
        """
        self._owner = asyncio.create_task(self._own(), name=f"mcp session {self.label}")
        ready = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait({self._owner, ready}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            ready.cancel()
        if self._ready.is_set():
            return
        failure: BaseException = TimeoutError()
        if self._owner.done() and not self._owner.cancelled():
            failure = self._owner.exception() or RuntimeError("the session closed at once")
        await self.close()
        error = describe(failure, self.label, self._secrets, timeout)
        if error.kind == "session_lost":  # at initialize, a 404 can only mean a wrong URL
            error = McpUpstreamError(
                f"{self.label} answered HTTP 404: no MCP endpoint at the server's URL",
                kind="http_error",
            )
        raise error from None

    async def _own(self) -> None:
        async with (
            httpx.AsyncClient(headers=self._headers, timeout=HTTP_TIMEOUT) as client,
            streamable_http_client(self.url, http_client=client) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            result = await session.initialize()
            self.server_info = result.serverInfo
            self._session = session
            self._ready.set()
            await self._closing.wait()

    async def request(self, send: Callable[[ClientSession], Awaitable[T]], timeout: float) -> T:
        """Send one request on the session, bounded by `timeout` and by the session's life.

        Raises:
            McpUpstreamError: the request or the session failed, or the time ran out.
        """
        if self._session is None or self._owner is None or not self.alive:
            raise McpUpstreamError(f"{self.label}: the session is closed", kind="unreachable")
        call = asyncio.ensure_future(send(self._session))
        await asyncio.wait({call, self._owner}, timeout=timeout, return_when="FIRST_COMPLETED")
        if call.done():
            try:
                return call.result()
            except Exception as exc:
                raise describe(exc, self.label, self._secrets, timeout) from None
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        failure: BaseException = TimeoutError()
        if self._owner.done() and not self._owner.cancelled():
            failure = self._owner.exception() or RuntimeError("the session closed")
        raise describe(failure, self.label, self._secrets, timeout)

    async def close(self) -> None:
        """End the session (the upstream is told with a DELETE, if it answers in time)."""
        owner = self._owner
        self._closing.set()
        self._session = None
        if owner is None:
            return
        # A session that never got initialized has nothing to end politely: cancel at once.
        grace = CLOSE_GRACE_SEC if self._ready.is_set() else 0
        done, _ = await asyncio.wait({owner}, timeout=grace) if grace else (set(), set())
        if not done:
            owner.cancel()
        # Retrieves the owner's exception, so that asyncio does not log it as never retrieved.
        await asyncio.gather(owner, return_exceptions=True)
