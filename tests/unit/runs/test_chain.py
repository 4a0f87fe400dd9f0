"""`verify_stream` / `verify_run_dir`: every kind of tampering is caught at the right line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from actana.runs.chain import encode_line, line_hash, verify, verify_run_dir, verify_stream
from tests.unit.runs.support import record_sample_run


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("pristine") / "run"
    record_sample_run(run_dir)
    return run_dir


@pytest.fixture
def run_dir(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(pristine, copy)
    return copy


def lines_of(run_dir: Path) -> list[bytes]:
    return (run_dir / "stream.jsonl").read_bytes().splitlines(keepends=True)


def rewrite(run_dir: Path, lines: list[bytes]) -> None:
    (run_dir / "stream.jsonl").write_bytes(b"".join(lines))


def test_a_recorded_run_verifies(run_dir: Path) -> None:
    report = verify_run_dir(run_dir)
    assert report.ok
    assert report.reason == "ok"
    assert report.complete
    assert report.lines == len(lines_of(run_dir))
    assert report.first_bad_line is None
    assert report.chain == json.loads((run_dir / "result.json").read_text())["chain"]
    assert verify_stream(run_dir / "stream.jsonl") == report
    assert verify(run_dir) == report
    assert verify(run_dir / "stream.jsonl") == report


def test_an_altered_byte_in_any_line_is_reported_at_that_line(run_dir: Path) -> None:
    original = lines_of(run_dir)
    for index, raw in enumerate(original):
        for position in range(0, len(raw) - 1, 7):  # every 7th byte, never the newline
            altered = bytearray(raw)
            altered[position] = ord("#") if raw[position] != ord("#") else ord("%")
            rewrite(run_dir, [*original[:index], bytes(altered), *original[index + 1 :]])
            report = verify_run_dir(run_dir)
            where = f"line {index + 1}, byte {position}: {report.reason}"
            assert report.first_bad_line == index + 1, where
            if index + 1 < len(original):  # the stream alone cannot see an edited last line
                assert verify_stream(run_dir / "stream.jsonl").first_bad_line == index + 1, where


def test_an_edit_that_keeps_the_json_valid_is_caught_by_the_next_line(run_dir: Path) -> None:
    original = lines_of(run_dir)
    rewrite(run_dir, [*original[:3], original[3].replace(b'"ok"', b'"OK"'), *original[4:]])
    report = verify_stream(run_dir / "stream.jsonl")
    assert report.first_bad_line == 4
    assert report.reason == "line 4 was altered: its hash is not the prev stored in line 5"


def test_a_re_escaped_line_is_not_canonical(run_dir: Path) -> None:
    original = lines_of(run_dir)
    index = next(i for i, raw in enumerate(original) if b"\\ufffd" in raw)
    edited = original[index].replace(b"\\ufffd", b"\\uFFFD")  # same JSON value, other bytes
    rewrite(run_dir, [*original[:index], edited, *original[index + 1 :]])
    report = verify_stream(run_dir / "stream.jsonl")
    assert report.first_bad_line == index + 1
    assert "canonical" in report.reason


@pytest.mark.parametrize("deleted", [1, 5, 9])
def test_a_deleted_line_is_reported_where_it_was(run_dir: Path, deleted: int) -> None:
    original = lines_of(run_dir)
    rewrite(run_dir, original[: deleted - 1] + original[deleted:])
    report = verify_stream(run_dir / "stream.jsonl")
    assert not report.ok
    assert report.first_bad_line == deleted
    assert report.reason.endswith("a line is missing or out of order")


def test_a_deleted_last_line_is_caught_with_result_json(run_dir: Path) -> None:
    original = lines_of(run_dir)
    rewrite(run_dir, original[:-1])
    assert verify_stream(run_dir / "stream.jsonl").ok  # a prefix is a valid (live) stream...
    assert not verify_stream(run_dir / "stream.jsonl").complete  # ...without its end
    report = verify_run_dir(run_dir)
    assert not report.ok
    assert report.first_bad_line == len(original)
    assert (
        report.reason
        == f"result.json says {len(original)} lines, the stream has {len(original) - 1}"
    )


def test_reordered_lines_are_reported(run_dir: Path) -> None:
    lines = lines_of(run_dir)
    lines[4], lines[5] = lines[5], lines[4]
    rewrite(run_dir, lines)
    report = verify_stream(run_dir / "stream.jsonl")
    assert not report.ok
    assert report.first_bad_line == 5


@pytest.mark.parametrize("cut", [1, 40, 1000])
def test_a_truncated_file_is_reported(run_dir: Path, cut: int) -> None:
    path = run_dir / "stream.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    report = verify_stream(path)
    last_kept = data[:-cut].count(b"\n") + 1
    assert not report.ok
    assert report.first_bad_line == last_kept
    assert verify_run_dir(run_dir).first_bad_line == last_kept


def test_a_well_chained_line_after_the_terminal_is_refused(run_dir: Path) -> None:
    lines = lines_of(run_dir)
    last = json.loads(lines[-1])
    forged = {**last, "seq": last["seq"] + 1, "type": "log", "prev": line_hash(lines[-1][:-1])}
    rewrite(run_dir, [*lines, encode_line(forged) + b"\n"])
    report = verify_stream(run_dir / "stream.jsonl")
    assert report.first_bad_line == len(lines) + 1
    assert report.reason == f"line {len(lines) + 1} comes after the terminal line"


def test_a_line_of_another_run_is_refused(run_dir: Path) -> None:
    lines = lines_of(run_dir)
    rewritten, prev = [], "0" * 64
    for raw in lines:  # rewrite the chain completely, with line 3 of another run
        obj = json.loads(raw) | {"prev": prev}
        obj["run"] = "run_other" if obj["seq"] == 2 else obj["run"]
        body = encode_line(obj)
        rewritten.append(body + b"\n")
        prev = line_hash(body)
    rewrite(run_dir, rewritten)
    report = verify_stream(run_dir / "stream.jsonl")
    assert report.first_bad_line == 3
    assert "belongs to run 'run_other'" in report.reason


def test_summaries_that_disagree_with_the_stream_are_caught(run_dir: Path) -> None:
    result_path, steps_path = run_dir / "result.json", run_dir / "steps.json"
    result, steps = json.loads(result_path.read_text()), json.loads(steps_path.read_text())

    result_path.write_text(json.dumps(result | {"status": "failed"}))
    assert verify_run_dir(run_dir).reason == "result.json's 'status' does not agree with the stream"
    result_path.write_text(json.dumps(result | {"chain": "0" * 64}))
    assert verify_run_dir(run_dir).first_bad_line == result["lines"]
    result_path.write_text(json.dumps(result))

    steps[0]["status"] = "failed"
    steps_path.write_text(json.dumps(steps))
    assert (
        verify_run_dir(run_dir).reason == "steps.json does not agree with the stream's step lines"
    )
    steps_path.unlink()
    assert not verify_run_dir(run_dir).ok


def test_missing_and_empty_files(tmp_path: Path) -> None:
    assert verify_stream(tmp_path / "nope.jsonl").reason.startswith("cannot read")
    assert not verify_run_dir(tmp_path).ok
    (tmp_path / "stream.jsonl").write_bytes(b"")
    assert verify_stream(tmp_path / "stream.jsonl").reason == "the stream is empty"
    assert verify_run_dir(tmp_path).reason == "result.json is missing or not a JSON object"
