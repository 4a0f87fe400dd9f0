"""The file tools: `read_file`, `write_file`, `edit_file`.

Text is UTF-8. Reads replace invalid bytes (the model sees something rather than nothing);
edits refuse a file that is not valid UTF-8, since writing it back would corrupt it.
"""

# ruff: noqa: PTH112, PTH113, PTH114, PTH123, PTH202
# Paths stay `str` here on purpose: the workspace confinement is os.path.realpath plus
# os.path.commonpath on strings, and every path handled here has been through it.

from __future__ import annotations

import os
from functools import partial
from typing import Any

from actana.runtime.tools.base import Invocation, ToolError, decode_prefix
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


def _existing_file(inv: Invocation, path: str) -> str:
    real = resolve(inv.root, path)
    if os.path.isdir(real):
        raise ToolError(f"'{path}' is a directory; use list_dir to see what it holds")
    if not os.path.isfile(real):
        raise ToolError(f"'{path}' does not exist (or is not a regular file)")
    return real


def read_file(inv: Invocation) -> dict[str, Any]:
    """Return lines of a text file, at most `output_cap` bytes of them.

    `offset` is the first line to return (1-based), `limit` the most lines to return. Over-long
    lines are read in pieces, so that one huge line cannot exhaust memory.
    """
    path: str = inv.args["path"]
    offset: int = inv.args.get("offset", 1)
    limit: int | None = inv.args.get("limit")
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


def write_file(inv: Invocation) -> dict[str, Any]:
    """Write `content` to a file, replacing it, creating missing parent directories."""
    target = resolve_for_write(inv.root, inv.args["path"])
    existed = os.path.lexists(target)
    data = inv.args["content"].encode()
    write_all(open_for_write(inv.root, target, create=True), data)
    return {"path": display(inv.root, target), "bytes_written": len(data), "created": not existed}


def edit_file(inv: Invocation) -> dict[str, Any]:
    """Replace every occurrence of `old` by `new`, if there are at least one and at most `count`.

    Refusing when `old` occurs more often than expected makes a vague edit fail loudly instead of
    changing the wrong place.
    """
    path: str = inv.args["path"]
    old: str = inv.args["old"]
    new: str = inv.args["new"]
    count: int = inv.args.get("count", 1)
    target = resolve_for_write(inv.root, path)
    if os.path.islink(target):
        raise ToolError(f"'{path}' is a symlink; refusing to write through it")
    real = _existing_file(inv, path)
    if os.path.getsize(real) > _MAX_EDIT_BYTES:
        raise ToolError(f"'{path}' is too large to edit here; use bash (e.g. sed) instead")
    with open(real, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"'{path}' is not UTF-8 text; edit it with bash instead") from None
    found = text.count(old)
    if found == 0:
        raise ToolError(
            f"`old` was not found in '{path}'; read the file and copy the exact text, "
            "including whitespace and line breaks"
        )
    if found > count:
        raise ToolError(
            f"`old` occurs {found} times in '{path}' but count allows {count}; include more "
            f"surrounding text to make it unique, or set count to {found} to replace all"
        )
    write_all(open_for_write(inv.root, target, create=False), text.replace(old, new).encode())
    return {"path": display(inv.root, real), "replacements": found}
