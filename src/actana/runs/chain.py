"""The hash chain of stream.jsonl, and the folds that turn a stream into steps.json/result.json.

Every stored line carries `prev`, the hex SHA-256 of the previous line's bytes (without its
newline; 64 zeros for seq 0), so editing, deleting, reordering or truncating lines breaks the
chain at the first place it touches. The chain has no key: whoever can rewrite the whole file
can rewrite the chain too, so the last line's hash (`chain` in result.json) is only an anchor
when it is also kept somewhere the file's writer cannot reach (the run's database row).

Everything here is a pure function of files or of already-parsed lines, so the worker, the API
and `actana verify` share it and compute the same summaries from the same stream.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from actana.protocol.events import PHASES, TERMINAL_TYPES

GENESIS = "0" * 64
STEP_UNFINISHED = "run ended before the step finished"
# Far above what the recorder can write (a capped input line, escaped), yet bounded, so that
# verifying a hostile file cannot exhaust memory on one line.
MAX_VERIFY_LINE_BYTES = 64 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


def line_hash(line: bytes) -> str:
    """The hex SHA-256 that the next line stores as `prev`."""
    return hashlib.sha256(line).hexdigest()


def encode_line(obj: Mapping[str, Any]) -> bytes:
    """The canonical stored form of a line: compact, ASCII-only JSON (no raw U+2028 or control)."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode()


def run_status(terminal: Mapping[str, Any]) -> str:
    """The run status a terminal line means: succeeded, timeout, cancelled or failed."""
    if terminal.get("type") == "result":
        return "succeeded"
    code = terminal.get("code")
    return code if code in ("timeout", "cancelled") else "failed"


def fold_steps(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Fold `step` lines by id, in order of first appearance, into their final state.

    A finished step stays finished: later lines with its id are ignored, so a sandbox cannot
    rewrite a step it already reported. A step still `running` when the terminal line comes is
    failed with `STEP_UNFINISHED`; without a terminal line (a live run) it stays running.
    """
    steps: dict[str, dict[str, Any]] = {}
    ended: int | None = None
    for event in events:
        kind = event.get("type")
        if kind in TERMINAL_TYPES:
            ended = event["ts"]
            break
        if kind != "step":
            continue
        step = steps.get(event["id"])
        if step is None:
            step = {"name": event["name"], "args": event.get("args", {}), "start": event["ts"]}
            steps[event["id"]] = step
        elif step["status"] != "running":
            continue
        step["status"] = event["status"]
        if not step["args"] and event.get("args"):
            step["args"] = event["args"]
        if event["status"] != "running":
            step["end"] = event["ts"]
            step["result"] = event.get("result")
            step["error"] = event.get("error")
            duration = event.get("durationMs")
            step["durationMs"] = duration if isinstance(duration, int) else None
    folded = []
    for step_id, step in steps.items():
        if step["status"] == "running" and ended is not None:
            step.update(status="failed", error=STEP_UNFINISHED, end=ended, durationMs=None)
        out: dict[str, Any] = {"id": step_id, "name": step["name"], "status": step["status"]}
        out["args"] = step["args"]
        if step["status"] == "succeeded":
            out["result"] = step["result"]
        elif step["status"] == "failed":
            out["error"] = step["error"] if step["error"] is not None else "step failed"
        out["startedTs"] = step["start"]
        out["endedTs"] = step.get("end")
        duration = step.get("durationMs")
        if duration is None and step.get("end") is not None:
            duration = step["end"] - step["start"]
        out["durationMs"] = duration
        folded.append(out)
    return folded


def fold_timings(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Phase durations (from the phase lines) and the run's first/last line timestamps."""
    phases: dict[str, int] = {}
    started = ended = None
    for event in events:
        started = event["ts"] if started is None else started
        if event.get("type") in TERMINAL_TYPES:
            ended = event["ts"]
        phase, duration = event.get("phase"), event.get("durationMs")
        if event.get("type") == "log" and phase in PHASES and isinstance(duration, int):
            phases.setdefault(phase, duration)  # the recorder lets each phase in once
    ordered = {name: phases[name] for name in PHASES if name in phases}
    total = ended - started if started is not None and ended is not None else None
    return {"phases": ordered, "startedTs": started, "endedTs": ended, "durationMs": total}


def summarise(
    events: list[dict[str, Any]],
    steps: list[dict[str, Any]],
    *,
    files: Iterable[Mapping[str, Any]],
    usage: Mapping[str, int] | None,
    rounds: int | None,
) -> dict[str, Any]:
    """result.json for a finished stream (its last event is the terminal line).

    `usage` and `rounds` are the worker's counts; without them, what the terminal line claims.
    """
    terminal = events[-1]
    result: dict[str, Any] = {"run": terminal["run"], "status": run_status(terminal)}
    if terminal["type"] == "result":
        result["message"] = terminal.get("message")
    else:
        result["error"] = {"code": terminal.get("code"), "message": terminal.get("message")}
    result["files"] = [
        {"name": str(f["name"]), "size": int(f["size"]), "sha256": str(f["sha256"])} for f in files
    ]
    result["timings"] = fold_timings(events)
    result["rounds"] = rounds if rounds is not None else terminal.get("rounds") or 0
    claimed = terminal.get("usage") or {"input_tokens": 0, "output_tokens": 0, "model_calls": 0}
    result["usage"] = dict(usage) if usage is not None else claimed
    result.update(steps=len(steps), chain=line_hash(encode_line(terminal)), lines=len(events))
    return result


@dataclass(frozen=True)
class VerifyReport:
    """The verdict on a stream (or a run directory).

    Attributes:
        ok: every check passed.
        lines: lines that verified; all of them when `ok`.
        first_bad_line: 1-based number of the first line found at fault, if a line is.
        reason: what is wrong, or "ok".
        run: the run id the lines carry.
        chain: hash of the last line (result.json's `chain`); None when a line is bad.
        complete: the stream ends with a terminal line.
    """

    ok: bool
    lines: int
    first_bad_line: int | None
    reason: str
    run: str | None = None
    chain: str | None = None
    complete: bool = False


def _structure(raw: bytes, n: int) -> dict[str, Any] | str:
    """The parsed line, or why it is not a line the recorder could have written."""
    if not raw.endswith(b"\n"):
        if len(raw) > MAX_VERIFY_LINE_BYTES:
            return f"line {n} is longer than {MAX_VERIFY_LINE_BYTES} bytes"
        return f"line {n} is truncated (no newline at the end of the file)"
    body = raw[:-1]
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return f"line {n} is not valid JSON"
    if not isinstance(obj, dict):
        return f"line {n} is not a JSON object"
    if obj.get("v") != 1 or isinstance(obj.get("v"), bool):
        return f"line {n} has v={obj.get('v')!r}, expected 1"
    seq, prev = obj.get("seq"), obj.get("prev")
    if not isinstance(obj.get("run"), str) or not isinstance(obj.get("type"), str):
        return f"line {n} lacks a string 'run' or 'type'"
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(obj.get("ts"), int):
        return f"line {n} lacks an integer 'seq' or 'ts'"
    if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        return f"line {n} has a malformed 'prev'"
    # Re-encoding must give back the same bytes: catches edits that keep the JSON meaning
    # (escapes, spacing, key order) right at the edited line.
    try:
        canonical = encode_line(obj) == body
    except ValueError:
        canonical = False
    if not canonical:
        return f"line {n} is not in the canonical form the recorder writes (edited?)"
    return obj


def _read(handle: IO[bytes]) -> Iterator[bytes]:
    while raw := handle.readline(MAX_VERIFY_LINE_BYTES + 1):
        yield raw


def scan_stream(path: Path, anchor: str | None = None) -> tuple[VerifyReport, list[dict[str, Any]]]:
    """Verify a stream.jsonl and return the report with the lines that verified.

    `anchor` is the hash the last line should have (result.json's `chain`); with it, an edit
    of the last line, or of the line before, can be told apart from an edit of the next
    line's `prev`. `verify_stream` is the public wrapper.
    """
    events: list[dict[str, Any]] = []
    expected_prev, run, terminal = GENESIS, None, False
    try:
        handle = path.open("rb")
    except OSError as exc:
        return VerifyReport(False, 0, None, f"cannot read {path}: {exc.strerror}"), events
    with handle:
        lines = _read(handle)
        for n, raw in enumerate(lines, start=1):
            obj = _structure(raw, n)
            bad, problem = n, obj if isinstance(obj, str) else None
            # Order matters for blaming the right line: seq first (a deleted or moved line
            # shows as a seq gap where it was), then the chain (an edited line shows as a
            # prev mismatch on the line after it), then the run id.
            if isinstance(obj, dict):
                run = obj["run"] if run is None else run
                if obj["seq"] != n - 1:
                    problem = f"line {n} has seq {obj['seq']}, expected {n - 1}"
                    problem += ": a line is missing or out of order"
                elif obj["prev"] != expected_prev:
                    bad, problem = _blame(n, raw[:-1], next(lines, None), anchor)
                elif obj["run"] != run:
                    problem = f"line {n} belongs to run {obj['run']!r}, not {run!r}"
                elif terminal:
                    problem = f"line {n} comes after the terminal line"
            if problem is not None:
                return VerifyReport(False, bad - 1, bad, problem, run), events[: bad - 1]
            assert isinstance(obj, dict)
            events.append(obj)
            expected_prev = line_hash(raw[:-1])
            terminal = obj["type"] in TERMINAL_TYPES
    if not events:
        return VerifyReport(False, 0, None, "the stream is empty"), events
    return VerifyReport(True, len(events), None, "ok", run, expected_prev, terminal), events


def _blame(n: int, body: bytes, following: bytes | None, anchor: str | None) -> tuple[int, str]:
    """Line n's `prev` does not match line n-1: decide which of the two was edited.

    If what comes after line n (the next line's `prev`, or the anchor when line n is last)
    still matches line n, line n is intact and line n-1 was changed; otherwise line n was.
    """
    if n == 1:
        return 1, "line 1 does not start the chain (its prev is not 64 zeros)"
    if following is not None:
        try:
            witness = json.loads(following).get("prev")
        except (ValueError, RecursionError, AttributeError):
            witness = None
    else:
        witness = anchor
    if witness is None:
        return n - 1, f"line {n - 1} or line {n} was altered: line {n}'s prev does not match"
    if witness == line_hash(body):
        return n - 1, f"line {n - 1} was altered: its hash is not the prev stored in line {n}"
    return n, f"line {n} was altered: its prev does not match line {n - 1}"


def verify_stream(path: Path) -> VerifyReport:
    """Check a stream.jsonl: JSON lines, v=1, one run, seq contiguous from 0, the prev chain.

    Nothing after the last line vouches for it, so an edit of the last line, or lines cut
    off at a line boundary, need result.json's `chain` and `lines`: use `verify_run_dir`.
    """
    return scan_stream(path)[0]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None


def verify_run_dir(directory: Path) -> VerifyReport:
    """Verify stream.jsonl, then check that result.json and steps.json agree with it.

    result.json must carry the stream's line count and final hash (so deleting whole lines at
    the end, or editing the last line, is caught too), the status and message or error of the
    terminal line, and the timings of the phase lines; steps.json must equal the fold of the
    stream's step lines.
    """
    stream = directory / "stream.jsonl"
    if not stream.is_file():
        return VerifyReport(False, 0, None, f"{stream} does not exist")
    result = _load_json(directory / "result.json")
    if not isinstance(result, dict):
        return VerifyReport(False, 0, None, "result.json is missing or not a JSON object")
    anchor = result.get("chain") if isinstance(result.get("chain"), str) else None
    report, events = scan_stream(stream, anchor)
    if not report.ok:
        return report

    def bad(reason: str, line: int | None = None) -> VerifyReport:
        return VerifyReport(False, report.lines, line, reason, report.run, report.chain)

    claimed = result.get("lines")
    if claimed != report.lines:
        # Fewer lines than claimed: the end was cut off (the first missing line is at fault);
        # more: lines were appended after the one result.json sealed.
        at = min(claimed, report.lines) + 1 if isinstance(claimed, int) else None
        return bad(f"result.json says {claimed!r} lines, the stream has {report.lines}", at)
    if result.get("chain") != report.chain:
        return bad(
            f"line {report.lines} does not hash to result.json's chain (or result.json was edited)",
            report.lines,
        )
    if not report.complete:
        return bad("the stream has no terminal line", None)
    try:
        steps = fold_steps(events)
        # files, usage and rounds come from outside the stream: take result.json's own.
        expected = summarise(
            events,
            steps,
            files=result.get("files") or (),
            usage=result.get("usage"),
            rounds=result.get("rounds"),
        )
    except (KeyError, TypeError, ValueError) as exc:  # a forged, well-chained file
        return bad(f"the stream or result.json lacks a field or has a wrong one: {exc}")
    for key, value in expected.items():
        if result.get(key) != value:
            return bad(f"result.json's {key!r} does not agree with the stream")
    if _load_json(directory / "steps.json") != steps:
        return bad("steps.json does not agree with the stream's step lines")
    return report


def verify(path: Path) -> VerifyReport:
    """`actana verify PATH`: a run directory gets `verify_run_dir`, a file `verify_stream`."""
    return verify_run_dir(path) if path.is_dir() else verify_stream(path)


REWRITTEN = (
    "the stream's last hash differs from the one recorded in the database when the run ended "
    "(the folder was rewritten)"
)


def verify_recorded(path: Path, recorded: str | None) -> VerifyReport:
    """`verify(path)`, and then the last line's hash against `recorded`, the one the database
    kept when the run ended: whoever can write the folder could rebuild a consistent chain, but
    not that hash. Such a folder fails with `REWRITTEN` and no line at fault."""
    report = verify(path)
    if report.ok and report.chain != recorded:
        return replace(report, ok=False, first_bad_line=None, reason=REWRITTEN)
    return report
