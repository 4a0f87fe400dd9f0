"""A header-checking reverse proxy to put in front of a real MCP server in tests.

It plays the part of a hosted MCP server's auth layer: every request must carry
`Authorization: Bearer <canary>`, or it gets a 401 and goes no further. It records the headers
of every request it saw (so a test can prove the bridge sent the credential, and that nothing
the sandbox sent came along), then forwards the request to `upstream` and streams the answer
back as it comes (streamable HTTP answers with SSE).
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

# Hop-by-hop headers (RFC 9110 7.6.1) and the ones httpx sets itself.
_NOT_FORWARDED = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}


class McpGate:
    """An ASGI app: check the bearer, record, forward to `upstream` (a base URL)."""

    def __init__(self, upstream: str, canary: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.expected = f"Bearer {canary}"
        self.seen: list[dict[str, str]] = []
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request, in order."""
        self.refused = 0
        self._lock = threading.Lock()

    def headers_seen(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(h) for h in self.seen]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            self.seen.append(headers)
            self.requests.append((scope["method"], scope["path"]))
        if headers.get("authorization") != self.expected:
            with self._lock:
                self.refused += 1
            await _answer(send, 401, b'{"error":"invalid_token"}')
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        forwarded = {k: v for k, v in headers.items() if k not in _NOT_FORWARDED}
        query = scope.get("query_string", b"").decode()
        url = f"{self.upstream}{scope['path']}" + (f"?{query}" if query else "")
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client:
            request = client.build_request(scope["method"], url, headers=forwarded, content=body)
            response = await client.send(request, stream=True)
            try:
                out = [
                    (k.encode(), v.encode())
                    for k, v in response.headers.items()
                    if k.lower() not in _NOT_FORWARDED
                ]
                await send(
                    {"type": "http.response.start", "status": response.status_code, "headers": out}
                )
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            finally:
                await response.aclose()


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
