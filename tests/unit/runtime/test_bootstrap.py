"""The setup script's output as log lines, its failures, and the export of variables."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from actana.protocol.events import now_ms
from actana.runtime.bootstrap import (
    SETUP_LINE_CHARS,
    SETUP_LOG_LINES,
    export_variables,
    materialize,
    run_setup_script,
)
from actana.runtime.emit import Deadline, Emitter, RunFailure

pytestmark = pytest.mark.usefixtures("subreaper")


@pytest.fixture
def emitted(tmp_path: Path) -> Iterator[tuple[Emitter, Path]]:
    # A file rather than a pipe: hundreds of log lines would fill a pipe nobody reads yet.
    path = tmp_path / "events.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    yield Emitter(fd), path
    os.close(fd)


def read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_setup_output_becomes_capped_log_lines(
    emitted: tuple[Emitter, Path], workspace: Path
) -> None:
    emitter, path = emitted
    script = (
        "echo first; echo to-stderr >&2; head -c 5000 /dev/zero | tr '\\0' x; echo;"
        " for i in $(seq 1 600); do echo line $i; done"
    )
    run_setup_script(script, str(workspace), Deadline(None), emitter)
    lines = read(path)
    messages = [line["message"] for line in lines]
    assert all(line["level"] == "info" for line in lines)
    assert messages[:2] == ["first", "to-stderr"]
    assert messages[2] == "x" * SETUP_LINE_CHARS + "…"
    assert len(messages) == SETUP_LOG_LINES + 1
    assert messages[-2] == f"line {SETUP_LOG_LINES - 3}"
    assert messages[-1] == "… truncated (103 more lines)"


def test_a_failing_script_reports_its_exit_code(
    emitted: tuple[Emitter, Path], workspace: Path
) -> None:
    emitter, _ = emitted
    with pytest.raises(RunFailure) as caught:
        run_setup_script("exit 4", str(workspace), Deadline(None), emitter)
    assert caught.value.code == "sandbox_failed"
    assert "exit code 4" in caught.value.message


def test_the_run_deadline_bounds_the_script(emitted: tuple[Emitter, Path], workspace: Path) -> None:
    emitter, _ = emitted
    with pytest.raises(RunFailure) as caught:
        run_setup_script("sleep 30", str(workspace), Deadline(now_ms() + 300), emitter)
    assert caught.value.code == "timeout"


def test_variables_are_exported_except_the_impossible_and_the_tokens(
    emitted: tuple[Emitter, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    emitter, path = emitted
    monkeypatch.setenv("ACT_TEST_A", "before")  # so that monkeypatch restores both afterwards
    monkeypatch.delenv("OTP_RUN", raising=False)
    export_variables(
        {"ACT_TEST_A": "secret-value", "BAD=NAME": "x", "OTP_RUN": "sneaky", "": "y"}, emitter
    )
    assert os.environ["ACT_TEST_A"] == "secret-value"
    assert "OTP_RUN" not in os.environ
    (warning,) = read(path)
    assert warning["level"] == "warn"
    assert "BAD=NAME" in str(warning["message"])
    assert "secret-value" not in path.read_text()  # values are never logged


def test_materialize_creates_assets_and_lists_inputs(tmp_path: Path) -> None:
    assert "no input files" in materialize(str(tmp_path))
    assert (tmp_path / "assets").is_dir()
    (tmp_path / "assets" / "data.csv").write_text("a,b\n")
    assert materialize(str(tmp_path)).endswith("1 input file(s) in assets/: data.csv")
