"""Event ingest: sandbox lines in, the run's stream.jsonl, steps.json and result.json out.

Lines of sandbox stdout (hostile input) are framed by `capped_lines` and parsed by
`parse_sandbox_line` (both in `actana.runs.lines`, re-exported here) into raw events.
`RunRecorder` (one per run) re-envelopes events into the hash-chained stream.jsonl, enforces the
rules a sandbox must not bend (one terminal line, written last; each runtime phase once; no
worker phases), and at `finish` writes the summaries. Followers of a live run get every stored
line once, in order.

All methods of a recorder are meant to be called from the one event loop that runs the run:
`follow` and `wait_for_line` use an anyio.Event, which is not thread-safe.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from actana.exceptions import RunError
from actana.protocol.events import (
    ERROR_CODES,
    EVENT_TYPES,
    LOG_LEVELS,
    PHASES,
    RUNTIME_PHASES,
    TERMINAL_TYPES,
    Event,
    event_to_dict,
    now_ms,
)
from actana.runs.chain import (
    GENESIS,
    encode_line,
    fold_steps,
    line_hash,
    summarise,
)
from actana.runs.lines import (
    OversizedLine,
    capped_data,
    capped_lines,
    clean_text,
    parse_sandbox_line,
    warn_event,
)

__all__ = [
    "RunRecorder",
    "RunSummary",
    "StreamClosedError",
    "capped_lines",
    "parse_sandbox_line",
]

DEFAULT_MAX_STREAM_BYTES = 64 * 1024 * 1024
NO_TERMINAL = "sandbox exited without a terminal line"
# Keys the recorder writes itself; an event's own values under these names never reach a line.
_ENVELOPE = frozenset({"v", "run", "seq", "ts", "type", "prev"})
_PHASE_FIELDS = ("phase", "durationMs", "outcome")


class StreamClosedError(RunError, RuntimeError):
    """The run's stream already ended with its terminal line; nothing more can be appended."""


@dataclass(frozen=True)
class RunSummary:
    """What `RunRecorder.finish` wrote: the run row's outcome fields and result.json itself."""

    status: str
    message: str | None
    error_code: str | None
    error_message: str | None
    chain: str
    lines: int
    result: dict[str, Any]


def _atomic_write_json(path: Path, value: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(json.dumps(value, ensure_ascii=True, indent=2).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


class RunRecorder:
    """Writes one run's stream.jsonl and, at the end, its steps.json and result.json.

    Lines from the sandbox go through `accept` (or `ingest`), the worker's own through
    `append`, `accept_worker_log` and `phase`; `finish` writes the terminal line and the
    summaries. Terminal lines: the sandbox's first `result`/`error` is held, not written, so
    that the worker's cleanup line still lands before it; `finish` writes it last (or the
    worker's own error line instead, e.g. on timeout). Later terminal lines from the sandbox
    are dropped with a warn line: the first one stands, whatever claims to be "the real one".

    Args:
        run_id: the run's id, written into every line.
        run_dir: the run's directory; stream.jsonl must not exist yet (an audit trail is never
            overwritten).
        max_stream_bytes: stored bytes of sandbox lines after which further sandbox lines are
            dropped (counted, and reported in one warn line); terminal and first-time phase
            lines are still taken.
        clock: epoch milliseconds, for tests.
    """

    def __init__(
        self,
        run_id: str,
        run_dir: Path,
        *,
        max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.stream_path = run_dir / "stream.jsonl"
        self._file = self.stream_path.open("xb")
        self._clock = clock
        self._max_stream_bytes = max_stream_bytes
        self._lines: list[bytes] = []  # every stored line, for followers and the final folds
        self._chain = GENESIS
        self._last_ts = clock()
        self._phases: set[str] = set()
        self._held: dict[str, Any] | None = None
        self._closed = False
        self._sandbox_bytes = 0
        self._over_budget = 0
        self._changed: anyio.Event | None = None  # created by the first waiter, on its loop

    @classmethod
    def resume(cls, run_id: str, run_dir: Path) -> RunRecorder:
        """Reopen the stream of a run whose worker died, to end it properly.

        A line cut short by the crash (no trailing newline) is dropped; the chain continues
        from the last complete line.
        """
        path = run_dir / "stream.jsonl"
        raw = path.read_bytes() if path.exists() else b""
        complete = raw[: raw.rfind(b"\n") + 1]
        if len(complete) != len(raw):
            with path.open("r+b") as handle:
                handle.truncate(len(complete))
        # Built without __init__, which insists on creating a new stream file.
        return cls.__new__(cls)._adopt(run_id, run_dir, complete)

    def _adopt(self, run_id: str, run_dir: Path, complete: bytes) -> RunRecorder:
        self.run_id, self.run_dir = run_id, run_dir
        self.stream_path = run_dir / "stream.jsonl"
        self._file = self.stream_path.open("ab")
        self._clock = now_ms
        self._max_stream_bytes = DEFAULT_MAX_STREAM_BYTES
        self._lines = [line for line in complete.split(b"\n") if line]
        self._chain = line_hash(self._lines[-1]) if self._lines else GENESIS
        events = [json.loads(line) for line in self._lines]
        self._last_ts = max((int(e.get("ts", 0)) for e in events), default=now_ms())
        self._phases = {
            str(e["phase"]) for e in events if e.get("type") == "log" and e.get("phase")
        }
        self._held = None
        self._closed = any(e.get("type") in TERMINAL_TYPES for e in events)
        self._sandbox_bytes = 0
        self._over_budget = 0
        self._changed = None
        return self

    @property
    def lines(self) -> int:
        """How many lines are stored; the next line's seq."""
        return len(self._lines)

    @property
    def chain(self) -> str:
        """Hash of the last stored line (64 zeros before the first)."""
        return self._chain

    @property
    def closed(self) -> bool:
        """True once the terminal line is written (or the recorder was closed)."""
        return self._closed

    def has_terminal(self) -> bool:
        """Whether the sandbox sent its terminal line (held) or the stream already ended."""
        return self._held is not None or self._closed

    def stored_lines(self, after: int = -1) -> list[bytes]:
        """The stored lines with seq > `after`, without their newlines."""
        return self._lines[max(after + 1, 0) :]

    # --- writing ---------------------------------------------------------------------------

    def _write(self, event: Mapping[str, Any]) -> dict[str, Any]:
        now = self._clock()
        ts = event.get("ts")
        ts = ts if isinstance(ts, int) and not isinstance(ts, bool) else now
        # Never in the future, never before the previous line: stored ts only move forward.
        ts = max(min(ts, now), self._last_ts)
        stored = {"v": 1, "run": self.run_id, "seq": len(self._lines), "ts": ts}
        stored["type"] = event["type"]
        stored.update((key, value) for key, value in event.items() if key not in _ENVELOPE)
        stored["prev"] = self._chain
        line = encode_line(stored)
        self._file.write(line + b"\n")  # one line + newline per write, flushed at once
        self._file.flush()
        self._lines.append(line)
        self._chain, self._last_ts = line_hash(line), ts
        self._wake()
        return stored

    def append(self, event: Mapping[str, Any] | Event) -> dict[str, Any]:
        """Store one of the worker's own non-terminal events and return the stored line.

        Raises:
            StreamClosedError: the terminal line is already written.
            ValueError: an unknown type, or a terminal type (use `finish`).
        """
        raw = event_to_dict(event) if not isinstance(event, Mapping) else event
        if self._closed:
            raise StreamClosedError(f"run {self.run_id}: the stream already ended")
        if raw.get("type") not in EVENT_TYPES or raw.get("type") in TERMINAL_TYPES:
            raise ValueError(f"append takes log/step/delta events, not {raw.get('type')!r}")
        return self._write(raw)

    def accept_worker_log(self, level: str, message: str, **fields: Any) -> dict[str, Any]:
        """Store a `log` line written by the worker itself."""
        if level not in LOG_LEVELS:
            raise ValueError(f"level must be one of {LOG_LEVELS}")
        return self.append({"type": "log", "level": level, "message": message, **fields})

    def phase(
        self, name: str, duration_ms: int, outcome: str = "ok", message: str | None = None
    ) -> dict[str, Any]:
        """Store the one line of phase `name` (outcome "ok", "failed" or "skipped").

        Raises:
            ValueError: not a phase, or the phase already has its line.
        """
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}")
        if name in self._phases:
            raise ValueError(f"phase {name!r} already has its line")
        self._phases.add(name)
        level = "error" if outcome == "failed" else "info"
        return self.accept_worker_log(
            level,
            message or f"{name} {outcome}",
            phase=name,
            durationMs=duration_ms,
            outcome=outcome,
        )

    def missing_phases(self) -> tuple[str, ...]:
        """The phases, in order, that have no line yet."""
        return tuple(name for name in PHASES if name not in self._phases)

    def fill_missing_runtime_phases(self) -> list[dict[str, Any]]:
        """Write a "skipped" line for each runtime phase the sandbox never reported."""
        missing = [name for name in self.missing_phases() if name in RUNTIME_PHASES]
        return [self.phase(name, 0, "skipped", f"{name} not reported") for name in missing]

    # --- the sandbox's lines ---------------------------------------------------------------

    def ingest(self, item: bytes | OversizedLine) -> list[dict[str, Any]]:
        """Parse one framed line of sandbox output and `accept` it; the lines stored."""
        stored = (self.accept(event) for event in parse_sandbox_line(item, now=self._clock()))
        return [line for line in stored if line is not None]

    def accept(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        """Record one event from the sandbox (as `parse_sandbox_line` made it).

        Returns the stored line, or None when nothing was stored: the event is a terminal
        line (held for `finish`), the stream is over its size budget, or it already ended
        (output that arrives after `finish` has nowhere to go).
        """
        if self._closed:
            return None
        kind, phase = event.get("type"), event.get("phase")
        if kind in TERMINAL_TYPES:
            if self._held is None:
                self._held = dict(event)
                return None
            message = (
                f"dropped a second terminal line ({kind!r}) from the sandbox: the first stands"
            )
            return self._from_sandbox(warn_event(message, self._clock()))
        if kind == "log" and phase is not None:
            if phase in RUNTIME_PHASES and phase not in self._phases:
                self._phases.add(phase)
                return self._from_sandbox(event, exempt=True)  # bounded: once per phase
            event = {key: value for key, value in event.items() if key not in _PHASE_FIELDS}
            if phase in RUNTIME_PHASES:
                # A second line for the same phase would make the timings ambiguous.
                text = clean_text(f"duplicate {phase!r} phase line ignored: {event['message']}")
                event = warn_event(text, event.get("ts", self._clock()))
            # Otherwise the sandbox claimed a worker phase (or made one up): it loses `phase`.
        return self._from_sandbox(event)

    def _from_sandbox(
        self, event: Mapping[str, Any], exempt: bool = False
    ) -> dict[str, Any] | None:
        if not exempt and self._sandbox_bytes >= self._max_stream_bytes:
            self._over_budget += 1
            if self._over_budget > 1:
                return None
            event = warn_event(
                f"the sandbox's lines reached {self._max_stream_bytes} bytes: dropping the rest",
                event.get("ts", self._clock()),
            )
        stored = self._write(event)
        self._sandbox_bytes += len(self._lines[-1])
        return stored

    # --- the end ---------------------------------------------------------------------------

    def finish(
        self,
        *,
        error: tuple[str, str] | None = None,
        files: Iterable[Mapping[str, Any]] | None = (),
        usage: Mapping[str, int] | None = None,
        rounds: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RunSummary:
        """Write the terminal line, then steps.json and result.json; close the stream.

        The terminal line is the worker's `error` (code, message) when given — it supersedes a
        held sandbox line, which is kept in a warn line's `data` — else the sandbox's held
        line, else an `error` with code sandbox_failed. `usage` and `rounds` are the worker's
        own counts (the gateway saw every model call); without them result.json falls back to
        what the terminal line claims. `files` are the accepted output files (name, size,
        sha256). `extra` adds keys to result.json; it cannot replace the ones written here.

        Raises:
            StreamClosedError: `finish` (or `close`) was already called.
            ValueError: an unknown error code, or `extra` reusing a result.json key.
        """
        if self._closed:
            raise StreamClosedError(f"run {self.run_id}: the stream already ended")
        if error is not None and error[0] not in ERROR_CODES:
            raise ValueError(f"error code must be one of {ERROR_CODES}")
        if self._over_budget > 1:
            note = f"dropped {self._over_budget} sandbox lines over the limit"
            self._write(warn_event(note, self._clock()))
        if error is not None and self._held is not None:
            note = f"the sandbox's {self._held['type']!r} line is superseded: {error[1]}"
            self._write({**warn_event(note, self._clock()), "data": capped_data(self._held)})
        terminal = self.terminal_preview(error=error, usage=usage, rounds=rounds)
        self._write(terminal)
        self._close()
        events = [json.loads(line) for line in self._lines]
        steps = fold_steps(events)
        result = summarise(events, steps, files=files or (), usage=usage, rounds=rounds)
        for key, value in (extra or {}).items():
            if key in result:
                raise ValueError(f"extra cannot replace result.json's {key!r}")
            result[key] = value
        _atomic_write_json(self.run_dir / "steps.json", steps)
        _atomic_write_json(self.run_dir / "result.json", result)
        return RunSummary(
            status=result["status"],
            message=result.get("message"),
            error_code=result["error"]["code"] if "error" in result else None,
            error_message=result["error"]["message"] if "error" in result else None,
            chain=self._chain,
            lines=len(self._lines),
            result=result,
        )

    def terminal_preview(
        self,
        *,
        error: tuple[str, str] | None = None,
        usage: Mapping[str, int] | None = None,
        rounds: int | None = None,
    ) -> dict[str, Any]:
        """The terminal line `finish` would write with these arguments; nothing is written.

        The worker records the run's final status in the database from it *before* the line
        lands, so a client that saw the terminal line never reads a stale status.
        """
        if error is None:
            held = self._held
            if held is not None:
                return dict(held)
            return {"type": "error", "code": "sandbox_failed", "message": NO_TERMINAL}
        terminal: dict[str, Any] = {"type": "error", "code": error[0], "message": error[1]}
        terminal.update({"usage": dict(usage)} if usage is not None else {})
        terminal.update({"rounds": rounds} if rounds is not None else {})
        return terminal

    def _close(self) -> None:
        self._closed = True
        os.fsync(self._file.fileno())  # the audit trail is the one file that must survive
        self._file.close()
        self._wake()  # followers must see the end and return

    def close(self) -> None:
        """Give up without a terminal line (the worker itself is going away); idempotent.

        The stream stays as it is and verifies as incomplete; followers are released.
        """
        if not self._closed:
            self._close()

    # --- followers -------------------------------------------------------------------------

    def _wake(self) -> None:
        # One Event per "generation": set it to wake every waiter, then forget it, so the
        # next waiter gets a fresh one. Cheaper than a queue per follower, and nothing is lost.
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _change(self) -> anyio.Event:
        if self._changed is None:
            self._changed = anyio.Event()
        return self._changed

    async def wait_for_line(self, seq: int, timeout: float | None = None) -> bool:
        """Wait until line `seq` is stored; False if the stream ended first or time ran out."""
        with anyio.move_on_after(timeout):
            while len(self._lines) <= seq and not self._closed:
                await self._change().wait()
        return len(self._lines) > seq

    async def follow(self, after: int = -1) -> AsyncIterator[bytes]:
        """Every stored line with seq > `after` (without newline), live, until the stream ends.

        Replay and live are one loop over the same list: a follower that joins mid-run first
        gets what is already stored, then waits for the next seq, so it sees each line once,
        in order, with no gap; there is no window between "read the backlog" and "subscribe"
        because nothing else runs between the length check and the wait (one event loop).
        """
        seq = max(after + 1, 0)
        while True:
            while seq < len(self._lines):
                yield self._lines[seq]
                seq += 1
            if self._closed:
                return
            await self._change().wait()
