"""Render a run's NDJSON lines in the terminal: phases, steps with spinners, streamed text.

Everything shown comes from a sandbox and is hostile: it is printed as plain text (Rich markup
is never interpreted) and control characters are already neutralised by the worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

_STATUS_STYLE = {"running": "yellow", "succeeded": "green", "failed": "red"}


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class RunView:
    """The state of one run as folded from its lines; `render()` draws it."""

    phases: list[tuple[str, int, str]] = field(default_factory=list)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: str = ""
    logs: list[tuple[str, str]] = field(default_factory=list)
    terminal: dict[str, Any] | None = None

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "log":
            if event.get("phase") == "container_creation":
                self.logs.append(("info", str(event.get("message", ""))))
            if event.get("phase"):
                self.phases.append(
                    (
                        str(event["phase"]),
                        int(event.get("durationMs") or 0),
                        str(event.get("outcome") or ""),
                    )
                )
            elif event.get("level") in ("warn", "error", "info"):
                self.logs.append((str(event.get("level")), str(event.get("message", ""))))
        elif kind == "step":
            step = self.steps.setdefault(str(event.get("id")), {})
            step.update({k: v for k, v in event.items() if v is not None})
        elif kind == "delta":
            self.text += str(event.get("text", ""))
        elif kind in ("result", "error"):
            self.terminal = event

    def render(self) -> RenderableType:
        parts: list[RenderableType] = []
        if self.phases:
            phases = Text()
            for name, ms, outcome in self.phases:
                style = "green" if outcome == "ok" else "red" if outcome == "failed" else "dim"
                phases.append(f"{name} {ms}ms  ", style=style)
            parts.append(phases)
        if self.steps:
            table = Table(show_header=True, header_style="bold", box=None, expand=False)
            for column in ("", "step", "args", "result", "ms"):
                table.add_column(column)
            for step in self.steps.values():
                status = str(step.get("status") or "running")
                marker: RenderableType = (
                    Spinner("dots")
                    if status == "running"
                    else Text("✓" if status == "succeeded" else "✗", style=_STATUS_STYLE[status])
                )
                shown = step.get("error") if status == "failed" else step.get("result")
                table.add_row(
                    marker,
                    Text(str(step.get("name", "?"))),
                    Text(_short(step.get("args", {}), 50)),
                    Text(_short(shown, 60) if shown is not None else ""),
                    Text(str(step.get("durationMs", ""))),
                )
            parts.append(table)
        for level, message in self.logs[-5:]:
            parts.append(Text(f"{level}: {message}", style="yellow" if level == "warn" else "dim"))
        if self.text and self.terminal is None:
            parts.append(Text(self.text))
        if self.terminal is not None:
            if self.terminal.get("type") == "result":
                parts.append(Text(str(self.terminal.get("message", "")), style="bold"))
            else:
                parts.append(
                    Text(
                        f"error ({self.terminal.get('code')}): {self.terminal.get('message')}",
                        style="bold red",
                    )
                )
        return Group(*parts)
