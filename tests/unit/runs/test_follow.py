"""Live followers: joining at any moment, each sees every line exactly once, in order.

The producer and the followers are tasks on one event loop that hand over control with
`anyio.lowlevel.checkpoint()` only: no sleeps, no timing assumptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from actana.runs.ingest import RunRecorder
from tests.unit.runs.support import RUN, Clock, line

pytestmark = pytest.mark.anyio


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[RunRecorder]:
    recorder = RunRecorder(RUN, tmp_path / "run", clock=Clock())
    yield recorder
    recorder.close()


async def test_followers_joining_mid_run_see_every_line_once_in_order(
    recorder: RunRecorder,
) -> None:
    seen: dict[str, list[bytes]] = {}

    async def follower(name: str, after: int = -1) -> None:
        got = seen.setdefault(name, [])
        async for raw in recorder.follow(after):
            got.append(raw)
            if len(got) % 3 == 0:
                await anyio.lowlevel.checkpoint()  # a slow reader falls behind, then catches up

    async with anyio.create_task_group() as group:
        group.start_soon(follower, "from the start")
        for i in range(60):
            recorder.ingest(line(type="delta", text=f"token {i}"))
            if i == 20:
                group.start_soon(follower, "joined at 21")
            if i == 40:
                group.start_soon(follower, "after seq 10", 10)
            # Bursts: several lines may land between two turns of a follower.
            if i % 4 == 0:
                await anyio.lowlevel.checkpoint()
        recorder.ingest(line(type="result", message="done"))
        recorder.phase("cleanup", 1)
        recorder.finish()
        group.start_soon(follower, "joined after the end")

    everything = recorder.stream_path.read_bytes().splitlines()
    assert len(everything) == 62
    assert seen["from the start"] == everything
    assert seen["joined at 21"] == everything
    assert seen["joined after the end"] == everything
    assert seen["after seq 10"] == everything[11:]


async def test_wait_for_line(recorder: RunRecorder) -> None:
    results: list[bool] = []

    async def waiter() -> None:
        results.append(await recorder.wait_for_line(1))
        results.append(await recorder.wait_for_line(5))

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        await anyio.lowlevel.checkpoint()
        recorder.ingest(line(type="delta", text="seq 0"))
        await anyio.lowlevel.checkpoint()
        assert results == []  # still waiting for seq 1
        recorder.ingest(line(type="delta", text="seq 1"))
        await anyio.lowlevel.checkpoint()
        recorder.finish()  # ends the stream at seq 2: seq 5 will never come
    assert results == [True, False]
    assert await recorder.wait_for_line(0) is True


async def test_wait_for_line_times_out(recorder: RunRecorder) -> None:
    assert await recorder.wait_for_line(0, timeout=0) is False


async def test_closing_without_a_terminal_releases_followers(recorder: RunRecorder) -> None:
    got: list[bytes] = []

    async def follower() -> None:
        async for raw in recorder.follow():
            got.append(raw)

    async with anyio.create_task_group() as group:
        group.start_soon(follower)
        recorder.ingest(line(type="delta", text="only line"))
        await anyio.lowlevel.checkpoint()
        recorder.close()
    assert got == recorder.stored_lines()
    assert len(got) == 1
