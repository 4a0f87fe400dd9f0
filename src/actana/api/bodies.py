"""Reading request bodies with a size cap, counted as the bytes arrive."""

from __future__ import annotations

from fastapi import Request

from actana.exceptions import PayloadTooLargeError


async def read_capped_body(request: Request, cap: int) -> bytes:
    """The whole body, or a 413 as soon as it passes `cap` bytes (declared or actual)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise PayloadTooLargeError(f"the request body is larger than {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLargeError(f"the request body is larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
