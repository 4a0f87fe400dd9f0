"""`RunRecorder`: the envelope, the hash chain, the rules a sandbox cannot bend, the summaries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from actana.protocol.events import LogEvent
from actana.runs.chain import STEP_UNFINISHED, verify_run_dir
from actana.runs.ingest import NO_TERMINAL, RunRecorder, StreamClosedError
from actana.runs.lines import capped_lines
from tests.unit.runs.support import RUN, START_MS, Clock, line, record_sample_run, stored

LOG = {"type": "log", "level": "info"}


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[RunRecorder]:
    recorder = RunRecorder(RUN, tmp_path / "run", clock=Clock())
    yield recorder
    recorder.close()  # a test that never finishes must not leak the file handle


def test_stored_lines_are_enveloped_chained_and_pure_ascii(recorder: RunRecorder) -> None:
    recorder.ingest(line(type="delta", text="a\u2028b \x1b[2J é\r\n"))
    recorder.ingest(line(type="log", level="info", message="second"))
    raw = recorder.stream_path.read_bytes()
    assert raw.isascii()
    assert b"\x1b" not in raw
    assert b"\r" not in raw
    first, second = raw.splitlines()
    assert list(json.loads(first)) == ["v", "run", "seq", "ts", "type", "text", "prev"]
    assert json.loads(first)["text"] == "a\ufffdb \ufffd[2J é\n"  # round-trips, U+2028 gone
    assert json.loads(first)["prev"] == "0" * 64
    assert json.loads(second)["prev"] == hashlib.sha256(first).hexdigest()
    assert recorder.chain == hashlib.sha256(second).hexdigest()
    assert [e["seq"] for e in stored(recorder.stream_path)] == [0, 1]
    assert json.loads(first)["run"] == RUN
    assert json.loads(first)["v"] == 1


def test_client_sent_envelope_keys_are_ignored(recorder: RunRecorder) -> None:
    for seq in (5, 0, 0):
        recorder.ingest(line(type="delta", text="x", seq=seq, prev="e" * 64, v=2, run="evil"))
    events = stored(recorder.stream_path)
    assert [e["seq"] for e in events] == [0, 1, 2]
    assert {e["run"] for e in events} == {RUN}
    assert {e["v"] for e in events} == {1}
    assert events[1]["prev"] != "e" * 64


def test_ts_never_goes_backwards_or_into_the_future(recorder: RunRecorder) -> None:
    recorder.ingest(line(type="delta", text="future", ts=START_MS + 10**9))
    recorder.ingest(line(type="delta", text="past", ts=1))
    recorder.ingest(line(type="delta", text="fine"))
    stamps = [e["ts"] for e in stored(recorder.stream_path)]
    assert stamps == sorted(stamps)
    assert stamps[0] < START_MS + 100


def test_the_terminal_line_is_held_until_finish(recorder: RunRecorder) -> None:
    assert recorder.ingest(line(type="result", message="done", rounds=3)) == []
    assert recorder.has_terminal()
    assert recorder.lines == 0
    recorder.phase("cleanup", 12, "ok")  # the worker's last phase still lands before it
    summary = recorder.finish()
    events = stored(recorder.stream_path)
    assert [e["type"] for e in events] == ["log", "result"]
    assert events[-1]["message"] == "done"
    assert summary.status == "succeeded"
    assert summary.message == "done"
    assert summary.result["rounds"] == 3


def test_a_forged_terminal_line_first_wins_and_later_ones_are_dropped(
    recorder: RunRecorder,
) -> None:
    """Whatever the sandbox prints first is its answer; a "real" one after it is refused."""
    recorder.ingest(line(type="result", message="forged"))
    recorder.ingest(line(type="log", level="info", message="still working"))
    recorder.ingest(line(type="result", message="the real one"))
    recorder.ingest(line(type="error", code="internal", message="another"))
    recorder.finish()
    events = stored(recorder.stream_path)
    warns = [e["message"] for e in events if e.get("level") == "warn"]
    assert warns == [
        "dropped a second terminal line ('result') from the sandbox: the first stands",
        "dropped a second terminal line ('error') from the sandbox: the first stands",
    ]
    assert [e["type"] for e in events].count("result") == 1
    assert events[-1]["message"] == "forged"


def test_the_worker_verdict_supersedes_the_sandbox_terminal(recorder: RunRecorder) -> None:
    recorder.ingest(line(type="result", message="all good"))
    usage = {"input_tokens": 10, "output_tokens": 2, "model_calls": 1}
    summary = recorder.finish(error=("timeout", "execution exceeded 30 s"), usage=usage)
    note, terminal = stored(recorder.stream_path)[-2:]
    assert note["level"] == "warn"
    assert note["data"]["message"] == "all good"
    assert terminal["type"] == "error"
    assert terminal["code"] == "timeout"
    assert terminal["usage"] == usage
    assert (summary.status, summary.error_code) == ("timeout", "timeout")
    assert summary.result["error"] == {"code": "timeout", "message": "execution exceeded 30 s"}


def test_no_terminal_line_means_sandbox_failed(recorder: RunRecorder) -> None:
    recorder.ingest(line(type="delta", text="x"))
    assert not recorder.has_terminal()
    summary = recorder.finish()
    assert stored(recorder.stream_path)[-1] | {"ts": 0, "prev": ""} == {
        "v": 1,
        "run": RUN,
        "seq": 1,
        "ts": 0,
        "type": "error",
        "code": "sandbox_failed",
        "message": NO_TERMINAL,
        "prev": "",
    }
    assert (summary.status, summary.error_message) == ("failed", NO_TERMINAL)


def test_nothing_is_appended_after_the_terminal_line(recorder: RunRecorder) -> None:
    recorder.finish(error=("cancelled", "cancelled by request"))
    size = recorder.stream_path.stat().st_size
    assert recorder.ingest(line(type="delta", text="late")) == []
    with pytest.raises(StreamClosedError):
        recorder.append({"type": "delta", "text": "late"})
    with pytest.raises(StreamClosedError):
        recorder.finish()
    assert recorder.stream_path.stat().st_size == size
    assert recorder.closed


def test_append_refuses_terminal_and_unknown_types(recorder: RunRecorder) -> None:
    for kind in ("result", "error", "bogus"):
        with pytest.raises(ValueError, match="append takes"):
            recorder.append({"type": kind, "message": "m"})
    stored_line = recorder.append(LogEvent(level="info", message="dataclasses work too"))
    assert stored_line["message"] == "dataclasses work too"


def test_runtime_phases_are_taken_once_and_worker_phases_not_at_all(
    recorder: RunRecorder,
) -> None:
    exe = {**LOG, "message": "ran", "phase": "execution", "durationMs": 5, "outcome": "ok"}
    recorder.ingest(line(**exe))
    recorder.ingest(line(**exe | {"durationMs": 1}))  # a second, conflicting timing
    recorder.ingest(line(**LOG, message="I cleaned up", phase="cleanup", durationMs=1))
    recorder.ingest(line(**LOG, message="made up", phase="teleport", durationMs=1))
    first, duplicate, claimed, made_up = stored(recorder.stream_path)
    assert first["phase"] == "execution"
    assert first["durationMs"] == 5
    assert duplicate["level"] == "warn"
    assert "phase" not in duplicate
    assert duplicate["message"] == "duplicate 'execution' phase line ignored: ran"
    assert "phase" not in claimed
    assert "durationMs" not in claimed
    assert claimed["message"] == "I cleaned up"
    assert "phase" not in made_up
    assert "cleanup" in recorder.missing_phases()
    assert "execution" not in recorder.missing_phases()


def test_worker_phases_and_filling_in_what_the_sandbox_never_reported(
    recorder: RunRecorder,
) -> None:
    recorder.phase("provisioning", 4)
    with pytest.raises(ValueError, match="already has its line"):
        recorder.phase("provisioning", 4)
    with pytest.raises(ValueError, match="unknown phase"):
        recorder.phase("warp", 1)
    recorder.ingest(line(**LOG, message="b", phase="bootstrap", durationMs=9))
    filled = recorder.fill_missing_runtime_phases()
    assert [e["phase"] for e in filled] == ["materialization", "execution", "result_upload"]
    assert {e["outcome"] for e in filled} == {"skipped"}
    assert recorder.missing_phases() == (
        "otp_rotation",
        "queue_acquisition",
        "container_creation",
        "cleanup",
    )
    failed = recorder.phase("cleanup", 3, "failed", "sandbox removal failed")
    assert failed["level"] == "error"
    assert failed["outcome"] == "failed"


def test_steps_are_folded_by_id(recorder: RunRecorder) -> None:
    step = {"type": "step", "name": "bash"}
    recorder.ingest(line(**step, id="a", status="running", args={"command": "ls"}))
    recorder.ingest(line(**step, id="b", status="running", args={"command": "sleep 99"}))
    recorder.ingest(line(**step, id="a", status="succeeded", result={"exit_code": 0}))
    recorder.ingest(line(**step, id="a", status="failed", error="rewrite history"))  # ignored
    recorder.ingest(line(**step, id="c", status="failed", error="boom", durationMs=4))
    recorder.ingest(line(type="result", message="done"))
    recorder.finish()
    steps = json.loads((recorder.run_dir / "steps.json").read_text())
    assert [(s["id"], s["status"]) for s in steps] == [
        ("a", "succeeded"),
        ("b", "failed"),
        ("c", "failed"),
    ]
    a, b, c = steps
    assert list(a) == [
        "id", "name", "status", "args", "result", "startedTs", "endedTs", "durationMs",
    ]  # fmt: skip
    assert a["args"] == {"command": "ls"}
    assert a["result"] == {"exit_code": 0}
    assert a["durationMs"] == a["endedTs"] - a["startedTs"] > 0
    assert b["error"] == STEP_UNFINISHED
    assert b["endedTs"] is not None
    assert c["error"] == "boom"
    assert c["durationMs"] == 4


def test_result_json_agrees_with_the_stream(tmp_path: Path) -> None:
    recorder = record_sample_run(tmp_path / "run")
    result = json.loads((recorder.run_dir / "result.json").read_text())
    raw = recorder.stream_path.read_bytes().splitlines()
    assert result["chain"] == hashlib.sha256(raw[-1]).hexdigest() == recorder.chain
    assert result["lines"] == len(raw) == recorder.lines
    assert result["status"] == "succeeded"
    assert result["message"] == "done"
    assert result["steps"] == 2
    assert result["rounds"] == 2
    assert result["usage"] == {"input_tokens": 5, "output_tokens": 0, "model_calls": 0}
    assert result["files"] == [{"name": "out.txt", "size": 3, "sha256": "ab" * 32}]
    timings = result["timings"]
    assert list(timings["phases"]) == [
        "provisioning", "otp_rotation", "queue_acquisition", "container_creation",
        "bootstrap", "materialization", "execution", "result_upload", "cleanup",
    ]  # fmt: skip
    assert timings["phases"]["execution"] == 300
    assert timings["phases"]["materialization"] == 0
    assert timings["durationMs"] == timings["endedTs"] - timings["startedTs"]
    assert verify_run_dir(recorder.run_dir).ok
    assert not list(recorder.run_dir.glob(".*.tmp"))  # atomic writes leave no temp files


def test_extra_keys_in_result_json_cannot_replace_the_recorded_ones(
    recorder: RunRecorder,
) -> None:
    with pytest.raises(ValueError, match="cannot replace"):
        recorder.finish(extra={"status": "succeeded"})


def test_finish_refuses_an_unknown_error_code(recorder: RunRecorder) -> None:
    with pytest.raises(ValueError, match="error code"):
        recorder.finish(error=("meh", "x"))
    assert not recorder.closed


def test_an_existing_stream_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "stream.jsonl").write_text("evidence\n")
    with pytest.raises(FileExistsError):
        RunRecorder(RUN, tmp_path)
    assert (tmp_path / "stream.jsonl").read_text() == "evidence\n"


def test_a_flood_of_sandbox_lines_is_cut_at_the_stream_budget(tmp_path: Path) -> None:
    recorder = RunRecorder(RUN, tmp_path, max_stream_bytes=2000, clock=Clock())
    for i in range(100):
        recorder.ingest(line(type="delta", text=f"chunk {i} " + "x" * 100))
    recorder.ingest(line(**LOG, message="x", phase="execution", durationMs=3))
    recorder.ingest(line(type="result", message="done"))
    recorder.phase("cleanup", 1)
    recorder.finish()
    events = stored(recorder.stream_path)
    assert len(events) < 30
    warns = [e["message"] for e in events if e.get("level") == "warn"]
    assert warns[0] == "the sandbox's lines reached 2000 bytes: dropping the rest"
    assert warns[1].startswith("dropped ")
    assert warns[1].endswith(" sandbox lines over the limit")
    assert any(e.get("phase") == "execution" for e in events)  # phases still count
    assert events[-1]["type"] == "result"


@pytest.mark.anyio
async def test_a_ten_megabyte_line_is_one_warn_and_the_next_line_is_accepted(
    recorder: RunRecorder,
) -> None:
    async def stdout() -> AsyncIterator[bytes]:
        yield line(type="delta", text="before") + b"\n"
        for _ in range(160):  # 160 x 64 KB = 10 MB
            yield b"A" * 65536
        yield b"\n" + line(type="delta", text="after") + b"\n"

    async for item in capped_lines(stdout(), 1024 * 1024):
        recorder.ingest(item)
    events = stored(recorder.stream_path)
    assert [e.get("text") or e.get("message") for e in events] == [
        "before",
        "dropped a line longer than the limit of 1048576 bytes (10485760 bytes)",
        "after",
    ]
