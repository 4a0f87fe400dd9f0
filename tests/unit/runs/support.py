"""Helpers shared by the event-ingest tests: byte streams, a fake clock, a recorded run."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from actana.runs.ingest import RunRecorder

RUN = "run_0123"
START_MS = 1_700_000_000_000


class Clock:
    """A clock that moves 1 ms per reading, so every ts is predictable and distinct."""

    def __init__(self, start: int = START_MS) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


async def chunked(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def line(**fields: Any) -> bytes:
    """One line as the runtime prints it (compact JSON, no newline)."""
    return json.dumps(fields).encode()


def stored(path: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in path.read_bytes().splitlines()]


def record_sample_run(run_dir: Path) -> RunRecorder:
    """A finished run with worker phases, runtime phases, steps, logs and a result."""
    recorder = RunRecorder(RUN, run_dir, clock=Clock())
    for name in ("provisioning", "otp_rotation", "queue_acquisition", "container_creation"):
        recorder.phase(name, 10, "ok")
    for raw in (
        line(type="log", level="info", message="booted", phase="bootstrap", durationMs=40),
        line(type="step", id="s1", name="bash", status="running", args={"command": "ls"}),
        line(type="delta", text="thinking\u2028aloud"),
        line(type="step", id="s1", name="bash", status="succeeded", result={"exit_code": 0}),
        line(type="step", id="s2", name="read_file", status="running", args={"path": "a"}),
        line(type="step", id="s2", name="read_file", status="failed", error="no such file"),
        line(type="log", level="info", message="ran", phase="execution", durationMs=300),
        line(type="result", message="done", usage={"input_tokens": 5}, rounds=2),
    ):
        recorder.ingest(raw)
    recorder.fill_missing_runtime_phases()
    recorder.phase("cleanup", 7, "ok")
    recorder.finish(files=[{"name": "out.txt", "size": 3, "sha256": "ab" * 32}])
    return recorder
