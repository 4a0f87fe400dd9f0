"""What an MCP server offers, checked: its tools' names, descriptions and input schemas.

Tool lists come from servers the sandbox runs (stdio) or from the bridge (http). Either way
they are untrusted: every field is checked and capped here, and a tool that cannot be offered
(no name, a schema that is not an object) is dropped with a reason rather than breaking the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

MAX_TOOLS_PER_SERVER = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_REAL_NAME_CHARS = 256
MAX_SCHEMA_BYTES = 64 * 1024


@dataclass(frozen=True)
class ToolInfo:
    """One tool as its server describes it.

    Attributes:
        name: the tool's real name (what the server is called with).
        description: what it does, capped.
        input_schema: JSON schema of its arguments, an object schema.
    """

    name: str
    description: str
    input_schema: dict[str, Any]


class McpServer(Protocol):
    """A connected MCP server, whatever its transport."""

    name: str

    def start(self) -> Future[list[ToolInfo]]:
        """Begin connecting; the future holds the tool list once the server is ready."""

    def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Call `tool`; return `{"content": [...], "is_error": bool, "structured": ...}`.

        Raises:
            ToolError: the call failed (the message is for the model).
        """

    def problem(self) -> str:
        """A short description of what went wrong, with the server's own words if any."""

    def stop_soon(self) -> None:
        """Begin stopping without waiting (`close` follows and waits)."""

    def close(self) -> None:
        """Disconnect; a stdio server's whole process group is killed."""


def _object_schema(raw: Any) -> dict[str, Any] | None:
    """The schema when it describes an object (the only kind a tool call's arguments can be)."""
    if raw is None:
        return {"type": "object", "properties": {}}
    if not isinstance(raw, dict) or raw.get("type", "object") != "object":
        return None
    try:
        if len(json.dumps(raw)) > MAX_SCHEMA_BYTES:
            return None
    except (TypeError, ValueError):
        return None
    schema = dict(raw)
    schema.setdefault("type", "object")
    if not isinstance(schema.get("properties", {}), dict):
        return None
    schema.setdefault("properties", {})
    return schema


def parse_tools(raw: Iterable[Any]) -> tuple[list[ToolInfo], list[str]]:
    """Check a server's tool list.

    Args:
        raw: the listed tools, as dicts with `name`, `description` and `input_schema` (or the
            MCP spelling `inputSchema`).

    Returns:
        (the usable tools, one reason per tool left out).
    """
    tools: list[ToolInfo] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for item in raw:
        if len(tools) >= MAX_TOOLS_PER_SERVER:
            dropped.append(f"more than {MAX_TOOLS_PER_SERVER} tools: the rest left out")
            break
        if not isinstance(item, dict):
            dropped.append("an entry that is not an object")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name or len(name) > MAX_REAL_NAME_CHARS:
            dropped.append(f"a tool without a usable name ({str(name)[:40]!r})")
            continue
        if name in seen:
            dropped.append(f"{name!r} listed twice")
            continue
        schema = _object_schema(item.get("input_schema", item.get("inputSchema")))
        if schema is None:
            dropped.append(f"{name!r}: its input schema is not a JSON object schema")
            continue
        description = item.get("description")
        description = description if isinstance(description, str) else ""
        seen.add(name)
        tools.append(ToolInfo(name, description[:MAX_DESCRIPTION_CHARS], schema))
    return tools, dropped
