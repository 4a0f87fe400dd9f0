"""Names under which MCP tools are offered to the model: `mcp__<server>__<tool>`.

Providers accept tool names of `[A-Za-z0-9_-]`, at most 64 characters; an MCP tool may be called
anything (dots, spaces, non-ASCII, 200 characters). A name that needs no change is kept as it is,
so the common case reads naturally. Any other is sanitised and cut, and gets a short hash of the
*real* (server, tool) pair appended: two tools that sanitise alike still get distinct names, and
the same tool gets the same name on every run. The map back to the real name is kept by the
caller (see `manager`).
"""

from __future__ import annotations

import hashlib
import re

MAX_TOOL_NAME = 64
PREFIX = "mcp__"
SEPARATOR = "__"
_HASH_CHARS = 8
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")
_ALLOWED_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def sanitise(part: str) -> str:
    """`part` with every character a provider refuses replaced by `_`."""
    return _NOT_ALLOWED.sub("_", part)


def model_tool_name(server: str, tool: str) -> str:
    """The name the model calls `tool` of `server` by (deterministic, provider-safe).

    Args:
        server: the MCP server's name, as attached to the agent.
        tool: the tool's own name, as the server lists it.

    Returns:
        `mcp__<server>__<tool>` when that is already allowed; otherwise a sanitised name cut to
        fit, ending in `_` plus 8 hex digits of a hash of the real names.
    """
    plain = f"{PREFIX}{server}{SEPARATOR}{tool}"
    if _ALLOWED_NAME.match(plain):
        return plain
    digest = hashlib.sha256(f"{server}\0{tool}".encode("utf-8", "surrogatepass")).hexdigest()
    suffix = "_" + digest[:_HASH_CHARS]
    return sanitise(plain)[: MAX_TOOL_NAME - len(suffix)] + suffix


def is_valid_tool_name(name: str) -> bool:
    """Whether `name` is acceptable to every provider as a tool name."""
    return bool(_ALLOWED_NAME.match(name))
