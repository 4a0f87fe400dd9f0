"""The tools that steer the run itself: `todo` (the model's plan) and `finish` (its answer).

`todo` keeps its list in the run's `ToolContext.state`, so it lives exactly as long as the run
and is shared by nothing else. `finish` raises the `Finish` signal; the agent loop turns it into
the run's result (see `actana.runtime.agent`).
"""

from __future__ import annotations

from typing import Any

from actana.protocol.payloads import RunLimits
from actana.runtime.tools.base import Finish, Invocation, Tool, ToolError, cap_text, schema

_MAX_ITEMS = 100
_MAX_TEXT_CHARS = 500
# The run's result line carries the message; the worker caps stored lines at 1 MiB, and an
# escaped character takes up to 12 bytes. Longer answers belong in a file under assets/.
MAX_FINISH_CHARS = 60_000
_STATUSES = ["pending", "in_progress", "done"]
_MARKS = {"pending": "[ ]", "in_progress": "[~]", "done": "[x]"}


def todo(inv: Invocation) -> dict[str, Any]:
    """Add or update plan items; return the whole plan as text, with counts per status."""
    kept: list[dict[str, str]] = inv.context.state.get("todo", [])
    # Work on copies: a refused call must leave the stored plan as it was.
    plan = [] if inv.args.get("replace", False) else [dict(item) for item in kept]
    by_id = {item["id"]: item for item in plan}
    for given in inv.args["items"]:
        item_id = str(given.get("id") or "").strip()
        if item_id in by_id:
            by_id[item_id].update(text=given["text"], status=given["status"])
            continue
        if not item_id:
            taken = {item["id"] for item in plan}
            item_id = next(str(n) for n in range(1, len(plan) + 2) if str(n) not in taken)
        item = {"id": item_id, "text": given["text"], "status": given["status"]}
        by_id[item_id] = item
        plan.append(item)
    if len(plan) > _MAX_ITEMS:
        raise ToolError(
            f"the plan would have {len(plan)} items (at most {_MAX_ITEMS}); merge small steps, "
            "or pass replace=true with a shorter list"
        )
    inv.context.state["todo"] = plan
    lines = [f"{_MARKS[item['status']]} {item['id']}. {item['text']}" for item in plan]
    text, truncated = cap_text("\n".join(lines), inv.output_cap)
    counts = {status: sum(item["status"] == status for item in plan) for status in _STATUSES}
    return {"plan": text, **counts, "truncated": truncated}


def finish(inv: Invocation) -> dict[str, Any]:
    """End the run with `message` as its answer."""
    raise Finish(inv.args["message"])


def tools(limits: RunLimits) -> list[Tool]:
    """todo and finish, with the run's limits applied."""
    timeout = float(limits.tool_timeout_sec)
    out_cap = limits.tool_output_bytes
    return [
        Tool(
            "todo",
            "Keep your plan for this run. Each call adds items, or updates the item with the "
            "same id (its text and status); ids are assigned (1, 2, ...) when left out; "
            "replace=true starts a new list. Returns the whole plan as lines '[ ] id. text' "
            "([~] in progress, [x] done) and the count per status. "
            f"At most {_MAX_ITEMS} items of {_MAX_TEXT_CHARS} characters.",
            schema(
                {
                    "items": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": _MAX_ITEMS,
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string", "maxLength": 40},
                                "text": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": _MAX_TEXT_CHARS,
                                },
                                "status": {"type": "string", "enum": _STATUSES},
                            },
                            "required": ["text", "status"],
                            "additionalProperties": False,
                        },
                    },
                    "replace": {"type": "boolean", "description": "Start a new list."},
                },
                ["items"],
            ),
            timeout,
            out_cap,
            todo,
        ),
        Tool(
            "finish",
            "End the run now with message as your final answer to the user (the same as "
            "answering without calling a tool). Tools called after it in the same turn are not "
            f"run. At most {MAX_FINISH_CHARS} characters: put long reports in a file under "
            "assets/ and summarise them here.",
            schema(
                {"message": {"type": "string", "minLength": 1, "maxLength": MAX_FINISH_CHARS}},
                ["message"],
            ),
            timeout,
            out_cap,
            finish,
        ),
    ]
