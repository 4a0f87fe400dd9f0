"""An MCP tool result, turned into what the model (and the step event) gets.

Both transports hand over the same shape, the one of the bridge's answer:
`{"content": [MCP content blocks], "is_error": bool, "structured": {...} | None}`. Text blocks
are joined and capped like any tool output; images, audio and resources are summarised (type,
MIME type, size, URI), never passed on raw: a base64 blob is noise to the model and could be
megabytes. The result comes from a server the sandbox runs or reaches, so its shape is checked,
never trusted.
"""

from __future__ import annotations

import json
from typing import Any

from actana.runtime.tools.base import ToolError, decode_prefix, truncation_marker

# Beyond this many non-text blocks, only a count is kept.
MAX_SUMMARIES = 50
_MAX_FIELD_CHARS = 300


def _short(value: Any) -> str | None:
    """A string field of a block, cut to a sane length; None when absent or not a string."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= _MAX_FIELD_CHARS else value[:_MAX_FIELD_CHARS] + "…"


def _base64_bytes(data: Any) -> int | None:
    """Size of the bytes a base64 string stands for (without decoding it)."""
    if not isinstance(data, str):
        return None
    return len(data) * 3 // 4 - data[-2:].count("=")


def _summary(block: dict[str, Any]) -> dict[str, Any]:
    """What the model is told about one non-text block."""
    kind = _short(block.get("type")) or "unknown"
    summary: dict[str, Any] = {"type": kind}
    if kind in ("image", "audio"):
        summary["mime_type"] = _short(block.get("mimeType"))
        summary["bytes"] = _base64_bytes(block.get("data"))
    elif kind == "resource_link":
        for key in ("uri", "name", "mimeType", "description"):
            summary[key] = _short(block.get(key))
    elif kind == "resource":
        resource = block.get("resource")
        resource = resource if isinstance(resource, dict) else {}
        summary["uri"] = _short(resource.get("uri"))
        summary["mime_type"] = _short(resource.get("mimeType"))
        if isinstance(resource.get("text"), str):
            summary["chars"] = len(resource["text"])
        else:
            summary["bytes"] = _base64_bytes(resource.get("blob"))
    return {key: value for key, value in summary.items() if value is not None}


def _cap_text(text: str, cap: int) -> tuple[str, bool]:
    data = text.encode("utf-8", "replace")
    if len(data) <= cap:
        return text, False
    kept, used = decode_prefix(data[:cap])
    return kept + truncation_marker(used, len(data)), True


def tool_result(payload: Any, output_cap: int) -> dict[str, Any]:
    """The JSON result of one MCP tool call, for the model and the step event.

    Args:
        payload: `{"content": [...], "is_error": bool, "structured": ...}` (unchecked).
        output_cap: bytes of text kept (the rest is cut, with a marker); structured content
            bigger than this is left out, with a note.

    Returns:
        `text` (the text blocks joined by newlines), plus `truncated`, `attachments` (summaries
        of the other blocks) and `structured` when there are any.

    Raises:
        ToolError: the server said the call failed (`isError`); the message is its text.
    """
    if not isinstance(payload, dict):
        raise ToolError("the MCP server's answer was not a JSON object")
    blocks = payload.get("content")
    blocks = blocks if isinstance(blocks, list) else []
    texts: list[str] = []
    summaries: list[dict[str, Any]] = []
    others = 0
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "text":
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
            continue
        others += 1
        if len(summaries) < MAX_SUMMARIES:
            summaries.append(_summary(block) if isinstance(block, dict) else {"type": "unknown"})
    text, truncated = _cap_text("\n".join(texts), output_cap)
    if payload.get("is_error") is True:
        raise ToolError(text or "the MCP tool reported an error without saying why")
    result: dict[str, Any] = {"text": text}
    if truncated:
        result["truncated"] = True
    if summaries:
        result["attachments"] = summaries
        if others > len(summaries):
            result["attachments_not_shown"] = others - len(summaries)
    structured = payload.get("structured")
    if isinstance(structured, dict) and structured:
        size = len(json.dumps(structured, ensure_ascii=False).encode())
        if size <= output_cap:
            result["structured"] = structured
        else:
            result["structured_omitted"] = f"{size} bytes of structured content exceed the cap"
    return result
