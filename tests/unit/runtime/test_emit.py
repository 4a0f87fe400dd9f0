"""The event writer: one ASCII JSON line per event, phase lines, and bounded step payloads."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from actana.protocol.events import DeltaEvent
from actana.runtime.emit import MAX_LOGGED_JSON_CHARS, Emitter, RunFailure, for_log


@pytest.fixture
def pipe() -> Iterator[tuple[Emitter, int]]:
    read_end, write_end = os.pipe()
    yield Emitter(write_end), read_end
    os.close(read_end)
    os.close(write_end)


def lines(read_end: int) -> list[dict[str, object]]:
    data = os.read(read_end, 1 << 20).decode("ascii")
    assert data.endswith("\n")
    return [json.loads(line) for line in data[:-1].split("\n")]


def test_each_event_is_one_ascii_line(pipe: tuple[Emitter, int]) -> None:
    emitter, read_end = pipe
    emitter.emit(DeltaEvent(text="héllo\nwörld"))
    emitter.log("warn", "careful")
    first, second = lines(read_end)
    assert first["text"] == "héllo\nwörld"
    assert {"type": "log", "level": "warn", "message": "careful"}.items() <= second.items()


def test_a_phase_line_closes_every_phase(pipe: tuple[Emitter, int]) -> None:
    emitter, read_end = pipe
    with emitter.phase("bootstrap") as report:
        report.message = "bootstrap done: fine"
    with pytest.raises(RunFailure), emitter.phase("execution"):
        raise RunFailure("max_rounds", "too many")
    ok, failed = lines(read_end)
    assert (ok["phase"], ok["outcome"], ok["message"]) == (
        "bootstrap",
        "ok",
        "bootstrap done: fine",
    )
    assert (failed["phase"], failed["outcome"], failed["level"]) == ("execution", "error", "error")
    assert failed["message"] == "execution failed: too many"
    assert isinstance(ok["durationMs"], int)


def test_oversized_step_payloads_become_previews() -> None:
    small = {"stdout": "x" * 100}
    assert for_log(small) is small
    preview = for_log({"content": "y" * (MAX_LOGGED_JSON_CHARS + 1)})
    assert len(preview["truncated_json"]) == MAX_LOGGED_JSON_CHARS
    assert preview["json_chars"] > MAX_LOGGED_JSON_CHARS
    assert for_log({"not json": {1, 2}}) == "{'not json': {1, 2}}"  # its repr; never raises
