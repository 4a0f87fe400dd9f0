"""Writing events to stdout, timing phases, and the run-ending failure and deadline types.

Stdout belongs to the worker: every line on it is one NDJSON event, and nothing else may ever
reach it. So the real stdout is duplicated once into a private, non-inheritable descriptor that
only `Emitter` writes to, and fd 1 itself is pointed at stderr: a stray `print` (ours or a
library's) then lands in the worker's stderr log instead of corrupting the event stream, and no
child process can ever get hold of the event pipe.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from actana.protocol.events import ErrorCode, Event, LogEvent, LogLevel, event_to_dict, now_ms

# A step's args and result are logged in full unless their JSON is bigger than this. The worker
# caps line sizes; a line it drops would leave the step "running" forever in steps.json, so an
# oversized value is replaced by a preview here. The model still gets the full value.
MAX_LOGGED_JSON_CHARS = 256 * 1024


class RunFailure(Exception):
    """Ends the run with a terminal `error` event.

    Attributes:
        code: one of the protocol's ERROR_CODES.
        message: what went wrong, for the person reading the run's log.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


def describe(exc: BaseException) -> str:
    """`TypeName: text` of an exception: enough to diagnose, without a traceback dump."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Deadline:
    """The run's deadline on the monotonic clock, so that wall-clock jumps cannot move it."""

    def __init__(self, epoch_ms: int | None) -> None:
        """Anchor the deadline, given as epoch milliseconds (None: no deadline known)."""
        self._at: float | None = None
        if epoch_ms is not None:
            self._at = time.monotonic() + (epoch_ms - now_ms()) / 1000

    def remaining(self) -> float:
        """Seconds left (negative once passed; infinity without a deadline)."""
        return float("inf") if self._at is None else self._at - time.monotonic()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0

    def check(self, before: str) -> None:
        """Raise the polite `timeout` failure if the deadline has passed.

        Args:
            before: what was about to happen, for the message.

        Raises:
            RunFailure: code `timeout`.
        """
        if self.expired():
            raise RunFailure("timeout", f"the run's deadline passed before {before}")


def for_log(value: Any) -> Any:
    """`value` itself, or a preview of its JSON when that is too big for one event line."""
    try:
        encoded = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)[:MAX_LOGGED_JSON_CHARS]
    if len(encoded) <= MAX_LOGGED_JSON_CHARS:
        return value
    return {"truncated_json": encoded[:MAX_LOGGED_JSON_CHARS], "json_chars": len(encoded)}


@dataclass
class PhaseReport:
    """What a phase's closing `log` line says; the phase body fills it in."""

    message: str
    outcome: str = "ok"
    level: LogLevel = "info"


class Emitter:
    """Writes events as NDJSON lines to a private descriptor, unbuffered."""

    def __init__(self, fd: int) -> None:
        """Write to `fd`, which the Emitter now owns."""
        self._fd = fd
        # Events come from the agent loop and from other threads (the MCP shim's calls): one
        # line must never be interleaved with another, and os.write may write only part of it.
        self._lock = threading.Lock()

    @classmethod
    def from_stdout(cls) -> Emitter:
        """Take over the real stdout (see the module docstring for why fd 1 is redirected)."""
        sys.stdout.flush()
        fd = os.dup(1)  # non-inheritable by default: no child can ever receive it
        try:
            os.dup2(2, 1)
        except OSError:  # no stderr either: stray writes go nowhere rather than into events
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)
        return cls(fd)

    def emit(self, event: Event) -> None:
        """Write one event as one line, at once.

        Raises:
            SystemExit: the worker closed our stdout; nobody is listening any more.
        """
        line = json.dumps(event_to_dict(event), ensure_ascii=True, separators=(",", ":"))
        data = memoryview((line + "\n").encode("ascii"))
        try:
            with self._lock:
                while data:  # os.write may write less than asked on a pipe
                    data = data[os.write(self._fd, data) :]
        except BrokenPipeError:
            raise SystemExit(1) from None

    def log(self, level: LogLevel, message: str) -> None:
        """Emit a plain `log` line."""
        self.emit(LogEvent(level=level, message=message))

    @contextmanager
    def phase(self, name: str) -> Iterator[PhaseReport]:
        """Time one phase and emit its single `log` line when it ends, however it ends.

        Args:
            name: one of the protocol's RUNTIME_PHASES.

        Yields:
            The report the phase body may adjust (message, outcome, level).
        """
        report = PhaseReport(message=f"{name} done")
        started = time.monotonic()
        try:
            yield report
        except Exception as exc:
            # SystemExit/KeyboardInterrupt pass untold: after them there is no one to tell.
            detail = exc.message if isinstance(exc, RunFailure) else describe(exc)
            self._phase_line(
                name, started, PhaseReport(f"{name} failed: {detail}", "error", "error")
            )
            raise
        self._phase_line(name, started, report)

    def _phase_line(self, name: str, started: float, report: PhaseReport) -> None:
        self.emit(
            LogEvent(
                level=report.level,
                message=report.message,
                phase=name,
                durationMs=round((time.monotonic() - started) * 1000),
                outcome=report.outcome,
            )
        )
