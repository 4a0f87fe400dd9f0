"""The file tools: `read_file`, `write_file`, `edit_file`, `multi_edit`.

Text is UTF-8. Reads replace invalid bytes (the model sees something rather than nothing);
edits refuse a file that is not valid UTF-8, since writing it back would corrupt it.
"""

# ruff: noqa: PTH112, PTH113, PTH114, PTH123, PTH202
# Paths stay `str` here on purpose: the workspace confinement is os.path.realpath plus
# os.path.commonpath on strings, and every path handled here has been through it.

from __future__ import annotations

import os
from functools import partial
from typing import Any, BinaryIO

from actana.protocol.payloads import RunLimits
from actana.runtime.tools.base import PATH_ARG, Invocation, Tool, ToolError, decode_prefix, schema
from actana.runtime.tools.paths import (
    display,
    open_for_write,
    resolve,
    resolve_for_write,
    write_all,
)

_BINARY_SNIFF_BYTES = 8192
# edit_file holds the file in memory twice (before and after); bigger files are for sed.
_MAX_EDIT_BYTES = 16 * 1024 * 1024
_MAX_EDITS = 100


def _existing_file(inv: Invocation, path: str) -> str:
    real = resolve(inv.root, path)
    if os.path.isdir(real):
        raise ToolError(f"'{path}' is a directory; use list_dir to see what it holds")
    if not os.path.isfile(real):
        raise ToolError(f"'{path}' does not exist (or is not a regular file)")
    return real


def read_file(inv: Invocation) -> dict[str, Any]:
    """Return lines of a text file, at most `output_cap` bytes of them.

    `offset` is the first line to return (1-based; -N starts N lines before the end, like
    `tail -n N`), `limit` the most lines to return. Over-long lines are read in pieces, so that
    one huge line cannot exhaust memory.
    """
    path: str = inv.args["path"]
    offset: int = inv.args.get("offset", 1)
    limit: int | None = inv.args.get("limit")
    if offset == 0:
        raise ToolError("offset 0 is no line: use 1 for the first line, or -N for the last N")
    real = _existing_file(inv, path)
    cap = inv.output_cap
    shown: list[bytes] = []
    used = 0
    total = 0  # lines seen so far (a piece without "\n" at the end continues its line)
    at_line_start = True
    cut = False
    with open(real, "rb") as f:
        if b"\x00" in f.read(_BINARY_SNIFF_BYTES):
            size = os.fstat(f.fileno()).st_size
            raise ToolError(
                f"'{path}' looks like a binary file ({size} bytes); inspect it with bash, "
                f"e.g. `xxd '{path}' | head` or `file '{path}'`"
            )
        f.seek(0)
        if offset < 0:  # from the end: one pass to count the lines first
            offset = max(1, _count_lines(f, cap) + 1 + offset)
            f.seek(0)
        for piece in iter(partial(f.readline, cap + 1), b""):
            if at_line_start:
                total += 1
                wanted = total >= offset and (limit is None or total < offset + limit)
                if wanted and not cut:
                    if used + len(piece) > cap:
                        cut = True
                        if not shown:  # one line bigger than the cap: show its start
                            shown.append(piece[:cap])
                    else:
                        shown.append(piece)
                        used += len(piece)
            at_line_start = piece.endswith(b"\n")
    content, _ = decode_prefix(b"".join(shown))
    result: dict[str, Any] = {
        "path": display(inv.root, real),
        "content": content,
        "offset": offset,
        "lines": len(shown),
        "total_lines": total,
        "truncated": cut,
    }
    if offset + len(shown) <= total:
        result["next_offset"] = offset + len(shown)
    if cut:
        result["note"] = (
            f"output cut at {cap} bytes; read on with offset={result.get('next_offset')}"
            f" (and a smaller limit) or use grep to find what you need"
        )
    return result


def _count_lines(f: BinaryIO, piece_bytes: int) -> int:
    """Lines of the open file as `read_file` counts them (a last line without a newline counts
    too), read in pieces of at most `piece_bytes` + 1 bytes."""
    total, at_line_start = 0, True
    for piece in iter(partial(f.readline, piece_bytes + 1), b""):
        total += at_line_start
        at_line_start = piece.endswith(b"\n")
    return total


def write_file(inv: Invocation) -> dict[str, Any]:
    """Write `content` to a file, replacing it, creating missing parent directories."""
    target = resolve_for_write(inv.root, inv.args["path"])
    existed = os.path.lexists(target)
    data = inv.args["content"].encode()
    write_all(open_for_write(inv.root, target, create=True), data)
    return {"path": display(inv.root, target), "bytes_written": len(data), "created": not existed}


def _editable_text(inv: Invocation, path: str) -> tuple[str, str, str]:
    """(write target, real path, text) of a file that an edit may rewrite."""
    target = resolve_for_write(inv.root, path)
    if os.path.islink(target):
        raise ToolError(f"'{path}' is a symlink; refusing to write through it")
    real = _existing_file(inv, path)
    if os.path.getsize(real) > _MAX_EDIT_BYTES:
        raise ToolError(f"'{path}' is too large to edit here; use bash (e.g. sed) instead")
    with open(real, "rb") as f:
        raw = f.read()
    try:
        return target, real, raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"'{path}' is not UTF-8 text; edit it with bash instead") from None


def _replace(text: str, old: str, new: str, count: int, where: str) -> tuple[str, int]:
    """`text` with every `old` replaced, refused unless it occurs 1..count times.

    Refusing when `old` occurs more often than expected makes a vague edit fail loudly instead of
    changing the wrong place.
    """
    found = text.count(old)
    if found == 0:
        raise ToolError(
            f"`old` was not found in {where}; read the file and copy the exact text, "
            "including whitespace and line breaks"
        )
    if found > count:
        raise ToolError(
            f"`old` occurs {found} times in {where} but count allows {count}; include more "
            f"surrounding text to make it unique, or set count to {found} to replace all"
        )
    return text.replace(old, new), found


def edit_file(inv: Invocation) -> dict[str, Any]:
    """Replace every occurrence of `old` by `new`, if there are at least one and at most `count`."""
    path: str = inv.args["path"]
    target, real, text = _editable_text(inv, path)
    text, found = _replace(
        text, inv.args["old"], inv.args["new"], inv.args.get("count", 1), f"'{path}'"
    )
    write_all(open_for_write(inv.root, target, create=False), text.encode())
    return {"path": display(inv.root, real), "replacements": found}


def multi_edit(inv: Invocation) -> dict[str, Any]:
    """Apply several edits to one file in order, each seeing the result of the previous ones.

    All or nothing: the file is written once, after every edit succeeded in memory.
    """
    path: str = inv.args["path"]
    edits: list[dict[str, Any]] = inv.args["edits"]
    target, real, text = _editable_text(inv, path)
    counts = []
    for index, edit in enumerate(edits):
        where = f"'{path}' (edit {index + 1} of {len(edits)}; the file was left unchanged)"
        text, found = _replace(text, edit["old"], edit["new"], edit.get("count", 1), where)
        counts.append(found)
    write_all(open_for_write(inv.root, target, create=False), text.encode())
    return {"path": display(inv.root, real), "edits": len(edits), "replacements": counts}


def tools(limits: RunLimits) -> list[Tool]:
    """read_file, write_file, edit_file and multi_edit, with the run's limits applied."""
    timeout = float(limits.tool_timeout_sec)
    out_cap = limits.tool_output_bytes
    count = {
        "type": "integer",
        "minimum": 1,
        "description": "Most occurrences allowed (default 1).",
    }
    return [
        Tool(
            "read_file",
            "Read a UTF-8 text file. Returns content (the requested lines, at most "
            f"{limits.read_file_bytes} bytes), total_lines, next_offset when more lines follow, "
            "and truncated when the byte cap cut the output. Page through big files with "
            "offset/limit; a negative offset reads the end (offset=-50: the last 50 lines).",
            schema(
                {
                    "path": PATH_ARG,
                    "offset": {
                        "type": "integer",
                        "description": "First line, 1-based (default 1); negative counts from "
                        "the end: -20 gives the last 20 lines.",
                    },
                    "limit": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "Most lines to return.",
                    },
                },
                ["path"],
            ),
            timeout,
            limits.read_file_bytes,
            read_file,
        ),
        Tool(
            "write_file",
            "Create or overwrite a UTF-8 text file with content; missing parent directories are "
            "created. Files left under assets/ are handed back to the user when the run ends. "
            "Refuses paths outside the workspace and writing through a symlink.",
            schema({"path": PATH_ARG, "content": {"type": "string"}}, ["path", "content"]),
            timeout,
            out_cap,
            write_file,
        ),
        Tool(
            "edit_file",
            "Replace exact text in a file: every occurrence of old becomes new. Fails when old "
            "does not occur, or occurs more than count times (default 1): then include more "
            "surrounding text to make old unique, or raise count. Whitespace must match exactly.",
            schema(
                {
                    "path": PATH_ARG,
                    "old": {"type": "string", "minLength": 1},
                    "new": {"type": "string"},
                    "count": count,
                },
                ["path", "old", "new"],
            ),
            timeout,
            out_cap,
            edit_file,
        ),
        Tool(
            "multi_edit",
            "Apply several exact-text replacements to one file, in order (each edit sees the "
            "result of the ones before), all or nothing: if any edit fails (old not found, or "
            "found more than its count, default 1) the file is left unchanged and the error names "
            f"the edit. At most {_MAX_EDITS} edits. Returns the replacements made per edit.",
            schema(
                {
                    "path": PATH_ARG,
                    "edits": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": _MAX_EDITS,
                        "items": {
                            "type": "object",
                            "properties": {
                                "old": {"type": "string", "minLength": 1},
                                "new": {"type": "string"},
                                "count": count,
                            },
                            "required": ["old", "new"],
                            "additionalProperties": False,
                        },
                    },
                },
                ["path", "edits"],
            ),
            timeout,
            out_cap,
            multi_edit,
        ),
    ]
