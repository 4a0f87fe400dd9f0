"""Where a run's files live: its own folder, runs/<workspace>/<run>/, nothing shared."""

from __future__ import annotations

import re
from pathlib import Path

from actana.settings import Settings

_ID = re.compile(r"^[a-z]+_[0-9a-f]{20}$")
STREAM, STEPS, RESULT = "stream.jsonl", "steps.json", "result.json"
AUDIT_FILES = (STREAM, STEPS, RESULT)


def run_dir(settings: Settings, workspace_id: str, run_id: str) -> Path:
    """The run's folder. Ids are checked so no path can be smuggled in through them."""
    if not (_ID.match(workspace_id) and _ID.match(run_id)):
        raise ValueError("malformed workspace or run id")
    return settings.runs_dir / workspace_id / run_id


def inputs_dir(settings: Settings, workspace_id: str, run_id: str) -> Path:
    return run_dir(settings, workspace_id, run_id) / "inputs"


def outputs_dir(settings: Settings, workspace_id: str, run_id: str) -> Path:
    return run_dir(settings, workspace_id, run_id) / "outputs"
