"""NDJSON events: what the runtime prints on stdout, and what the worker stores.

The runtime prints *raw* events, one JSON object per line: `{"type": ..., "ts": epoch_ms, ...}`.
The worker re-envelopes each accepted line as
`{"v": 1, "run": ID, "seq": N, "ts": ..., "type": ..., <fields>, "prev": sha256-of-previous-line}`.
Field names follow DESIGN.md section 5 exactly (note the camelCase `durationMs`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

PHASES = (
    "provisioning",
    "otp_rotation",
    "queue_acquisition",
    "container_creation",
    "bootstrap",
    "materialization",
    "execution",
    "result_upload",
    "cleanup",
)
# The phases measured inside the sandbox; the worker reports the others itself.
RUNTIME_PHASES = ("bootstrap", "materialization", "execution", "result_upload")
LOG_LEVELS = ("debug", "info", "warn", "error")
STEP_STATUSES = ("running", "succeeded", "failed")
ERROR_CODES = ("timeout", "max_rounds", "cancelled", "sandbox_failed", "model_error", "internal")
EVENT_TYPES = ("log", "step", "delta", "result", "error")
TERMINAL_TYPES = ("result", "error")

LogLevel = Literal["debug", "info", "warn", "error"]
StepStatus = Literal["running", "succeeded", "failed"]
ErrorCode = Literal[
    "timeout", "max_rounds", "cancelled", "sandbox_failed", "model_error", "internal"
]


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the `ts` of every event."""
    return time.time_ns() // 1_000_000


@dataclass
class Usage:
    """Model tokens used: per turn from the gateway, summed per run in result.json."""

    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0


@dataclass
class LogEvent:
    level: LogLevel
    message: str
    phase: str | None = None
    durationMs: int | None = None  # camelCase: the wire name
    outcome: str | None = None
    type: Literal["log"] = "log"
    ts: int = field(default_factory=now_ms)


@dataclass
class StepEvent:
    id: str
    name: str
    status: StepStatus
    args: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    durationMs: int | None = None  # camelCase: the wire name
    type: Literal["step"] = "step"
    ts: int = field(default_factory=now_ms)


@dataclass
class DeltaEvent:
    text: str
    type: Literal["delta"] = "delta"
    ts: int = field(default_factory=now_ms)


@dataclass
class ResultEvent:
    message: str
    usage: Usage = field(default_factory=Usage)
    rounds: int = 0
    type: Literal["result"] = "result"
    ts: int = field(default_factory=now_ms)


@dataclass
class ErrorEvent:
    code: ErrorCode
    message: str
    usage: Usage | None = None
    rounds: int | None = None
    type: Literal["error"] = "error"
    ts: int = field(default_factory=now_ms)


Event = LogEvent | StepEvent | DeltaEvent | ResultEvent | ErrorEvent


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON object for an event, without the optional fields that are unset."""
    return {k: v for k, v in asdict(event).items() if v is not None}
