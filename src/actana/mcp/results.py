"""Turn what an MCP server answered into the bridge's wire shapes, within size caps.

The upstream is configured by the workspace, yet what it answers goes to a model and a sandbox:
a huge tool list or result must not reach either whole. Results are cut to `MAX_RESULT_BYTES`
of JSON with a last text block that says so; the tool list to `MAX_TOOLS` tools.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.types import CallToolResult, Tool

from actana.protocol.payloads import McpCallResult, McpToolInfo

MAX_RESULT_BYTES = 1024 * 1024
MAX_TOOLS = 256
MAX_DESCRIPTION_CHARS = 4000
MAX_SCHEMA_BYTES = 64 * 1024
TRUNCATED_MARKER = "[actana: MCP result truncated: {kept} of {total} bytes kept]"


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def tool_info(tool: Tool) -> McpToolInfo:
    """One upstream tool as the sandbox gets it; an oversized schema is replaced by an open one
    (the server still validates the arguments it receives)."""
    schema = dict(tool.inputSchema or {})
    if _size(schema) > MAX_SCHEMA_BYTES:
        schema = {"type": "object"}
    return McpToolInfo(
        name=tool.name,
        description=(tool.description or "")[:MAX_DESCRIPTION_CHARS],
        input_schema=schema,
    )


def call_result(result: CallToolResult, cap: int = MAX_RESULT_BYTES) -> McpCallResult:
    """The upstream's result with its content blocks as JSON, cut to `cap` bytes."""
    blocks = [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in result.content]
    structured = result.structuredContent
    total = _size(blocks) + (_size(structured) if structured is not None else 0)
    if total <= cap:
        return McpCallResult(content=blocks, is_error=result.isError, structured=structured)
    # Structured content duplicates the text blocks by convention: it is the first to go.
    kept: list[dict[str, Any]] = []
    used = 0
    for block in blocks:
        size = _size(block)
        if used + size <= cap:
            kept.append(block)
            used += size
            continue
        room = cap - used
        text = block.get("text")
        if block.get("type") == "text" and isinstance(text, str) and room > 64:
            # Cut by characters first, then trim until the encoded block fits.
            cut = text[: max(room - 64, 0)]
            while cut and _size({**block, "text": cut}) > room:
                cut = cut[: len(cut) * 9 // 10]
            if cut:
                kept.append({**block, "text": cut})
                used += _size(kept[-1])
        break
    marker = TRUNCATED_MARKER.format(kept=used, total=total)
    kept.append({"type": "text", "text": marker})
    return McpCallResult(content=kept, is_error=result.isError, structured=None)
