"""`GET runs/{run}/events`: replay a run's stored lines, then follow it live to the end.

The source is always `stream.jsonl` itself, so live and replay are the same bytes; a follower
that joins mid-run reads what is there and continues from its own offset, with no gap and no
duplicate. When this process runs the run, the recorder wakes followers as lines land; for a run
on another worker process the file is polled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi.responses import StreamingResponse

from actana.api.context import AppContext
from actana.db.models import Run
from actana.runs import storage
from actana.runs.queue import TERMINAL

POLL_SEC = 0.1


def _is_terminal(line: bytes) -> bool:
    try:
        kind = json.loads(line).get("type")
    except ValueError:
        return False
    return kind in ("result", "error")


def _run_status(context: AppContext, run_id: str) -> str | None:
    with context.database.session() as session:
        run = session.get(Run, run_id)
        return run.status if run else None


async def follow_lines(context: AppContext, run: Run, after: int) -> AsyncIterator[bytes]:
    """Stored lines with seq > `after`, then live ones, ending after the terminal line."""
    path: Path = storage.run_dir(context.settings, run.workspace_id, run.id) / storage.STREAM
    offset = 0
    seq = -1
    pending = b""
    while True:
        chunk = b""
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        if chunk:
            offset += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                seq += 1
                if seq > after:
                    yield line
                if _is_terminal(line):
                    return
            continue
        status = await asyncio.to_thread(_run_status, context, run.id)
        if status in TERMINAL and not path.exists():
            return  # ended without a stream (should not happen; never hang a client on it)
        recorder = context.live.recorder(run.id)
        waiter = getattr(recorder, "wait_for_line", None)
        if waiter is not None:
            await waiter(seq + 1, timeout=1.0)
        else:
            await asyncio.sleep(POLL_SEC)


def stream_events(context: AppContext, run: Run, *, after: int, sse: bool) -> StreamingResponse:
    """NDJSON (`application/x-ndjson`) or SSE (`text/event-stream`) of the run's lines."""

    async def ndjson() -> AsyncIterator[bytes]:
        async for line in follow_lines(context, run, after):
            yield line + b"\n"

    async def events() -> AsyncIterator[bytes]:
        async for line in follow_lines(context, run, after):
            try:
                parsed = json.loads(line)
                header = f"id: {parsed.get('seq')}\nevent: {parsed.get('type')}\n".encode()
            except ValueError:
                header = b""
            yield header + b"data: " + line + b"\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if sse:
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
    return StreamingResponse(ndjson(), media_type="application/x-ndjson", headers=headers)
