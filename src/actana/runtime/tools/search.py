"""The tools that look around: `list_dir`, `glob`, `grep`, `tree`.

Walks never follow symlinks (a link to `/etc` inside the workspace would otherwise list or
search `/etc`), are sorted so that results are stable, stop at `MAX_ENTRIES` results and at the
tool's time budget, and say so in a `note` when they stopped early.
"""

# ruff: noqa: PTH112, PTH113, PTH115, PTH123
# Paths stay `str` here on purpose: the workspace confinement is os.path.realpath plus
# os.path.commonpath on strings, and every path handled here has been through it.

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

from actana.protocol.payloads import RunLimits
from actana.runtime.tools.base import (
    MAX_ENTRIES,
    PATH_ARG,
    Invocation,
    Tool,
    ToolError,
    cap_text,
    decode_prefix,
    schema,
)
from actana.runtime.tools.paths import display, resolve

_MAX_MATCH_CHARS = 500
_READ_PIECE = 64 * 1024
_BINARY_SNIFF_BYTES = 8192


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate a glob into a regex over '/'-separated relative paths.

    `*` and `?` stay within one path component, `[...]` is a character class, and a `**`
    component matches any number of directories (none included).

    Raises:
        ToolError: the pattern is empty, absolute or climbs out with `..`.
    """
    if not pattern or pattern.startswith("/") or ".." in pattern.split("/"):
        raise ToolError(f"bad glob '{pattern}': use a relative pattern such as '**/*.py'")
    parts = pattern.split("/")
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:.*/)?")
        else:
            out.append(_component(part) + ("" if last else "/"))
    return re.compile("".join(out), re.DOTALL)


def _component(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        char = part[i]
        end = part.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif end != -1:
            body = part[i + 1 : end]
            negate = body.startswith("!")
            body = re.sub(r"([\\^\[])", r"\\\1", body[1:] if negate else body)
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


class Walk:
    """Sorted pre-order walk under `top`, not following symlinks, within a time budget."""

    def __init__(self, top: str, budget_sec: float, max_depth: int | None = None) -> None:
        self.top = top
        self.prefix = top.rstrip("/") + "/"
        self.end = time.monotonic() + budget_sec
        self.max_depth = max_depth
        self.out_of_time = False

    def _children(self, directory: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as entries:
                return sorted(entries, key=lambda e: e.name, reverse=True)
        except OSError:  # unreadable directory: skip it, as find(1) would after a warning
            return []

    def __iter__(self) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """Yield (path relative to `top`, entry)."""
        stack = self._children(self.top)
        while stack:
            if time.monotonic() > self.end:
                self.out_of_time = True
                return
            entry = stack.pop()
            rel = entry.path.removeprefix(self.prefix)
            yield rel, entry
            depth = rel.count("/") + 1
            if entry.is_dir(follow_symlinks=False) and (
                self.max_depth is None or depth < self.max_depth
            ):
                stack.extend(self._children(entry.path))


def _directory(inv: Invocation, path: str) -> str:
    real = resolve(inv.root, path)
    if not os.path.isdir(real):
        raise ToolError(f"'{path}' is not a directory")
    return real


def _kind(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "symlink"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    return "file" if entry.is_file(follow_symlinks=False) else "other"


def list_dir(inv: Invocation) -> dict[str, Any]:
    """List one directory: name, type (file, dir, symlink, other) and the size of files."""
    real = _directory(inv, inv.args["path"])
    with os.scandir(real) as it:
        entries = sorted(it, key=lambda e: e.name)
    listed = []
    for entry in entries[:MAX_ENTRIES]:
        item: dict[str, Any] = {"name": entry.name, "type": _kind(entry)}
        if item["type"] == "file":
            item["size"] = entry.stat(follow_symlinks=False).st_size
        listed.append(item)
    result: dict[str, Any] = {"path": display(inv.root, real), "entries": listed}
    result["truncated"] = len(entries) > MAX_ENTRIES
    if result["truncated"]:
        result["note"] = f"only the first {MAX_ENTRIES} of {len(entries)} entries are listed"
    return result


def _stopped(walk: Walk, truncated: bool, what: str) -> dict[str, Any]:
    if walk.out_of_time:
        return {"truncated": True, "note": f"the search ran out of time; narrow {what}"}
    if truncated:
        return {"truncated": True, "note": f"stopped at {MAX_ENTRIES} results; narrow {what}"}
    return {"truncated": False}


def glob(inv: Invocation) -> dict[str, Any]:
    """Paths under `path` (default: the workspace) matching `pattern`; directories end in '/'."""
    pattern: str = inv.args["pattern"]
    regex = compile_glob(pattern)
    base = _directory(inv, inv.args.get("path", "."))
    depth = None if "**" in pattern.split("/") else pattern.count("/") + 1
    walk = Walk(base, inv.timeout_sec, depth)
    matches: list[str] = []
    truncated = False
    for rel, entry in walk:
        if regex.fullmatch(rel):
            if len(matches) == MAX_ENTRIES:
                truncated = True
                break
            suffix = "/" if entry.is_dir(follow_symlinks=False) else ""
            matches.append(display(inv.root, entry.path) + suffix)
    return {"matches": matches, **_stopped(walk, truncated, "the pattern or the path")}


def grep(inv: Invocation) -> dict[str, Any]:
    """Lines matching a Python regex, as `path:line:text`, in one file or a directory tree."""
    try:
        regex = re.compile(inv.args["pattern"])
    except re.error as exc:
        raise ToolError(f"invalid regular expression (Python `re` syntax): {exc}") from None
    real = resolve(inv.root, inv.args.get("path", "."))
    name_filter = inv.args.get("glob")
    keep = compile_glob(name_filter) if name_filter else None
    walk = Walk(real, inv.timeout_sec)
    if os.path.isfile(real):
        files: Any = [real]
    elif os.path.isdir(real):
        files = (
            entry.path
            for rel, entry in walk
            if entry.is_file(follow_symlinks=False)  # regular files only: no link is followed
            and (keep is None or keep.fullmatch(rel if "/" in (name_filter or "") else entry.name))
        )
    else:
        raise ToolError(f"'{inv.args.get('path', '.')}' does not exist")
    lines: list[str] = []
    budget = inv.output_cap
    searched = 0
    for path in files:
        searched += 1
        shown = display(inv.root, path)
        for number, text in _matching_lines(path, regex):
            line = f"{shown}:{number}:{text}"
            budget -= len(line.encode()) + 1
            if len(lines) == MAX_ENTRIES or budget < 0:
                return {
                    "matches": lines,
                    "files_searched": searched,
                    **_stopped(walk, True, "the pattern, the path or the glob"),
                }
            lines.append(line)
    return {"matches": lines, "files_searched": searched, **_stopped(walk, False, "the path")}


def _matching_lines(path: str, regex: re.Pattern[str]) -> Iterator[tuple[int, str]]:
    """(line number, text) of matching lines; binary and unreadable files yield nothing."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below, after the sniff
    except OSError:
        return
    with f:
        if b"\x00" in f.read(_BINARY_SNIFF_BYTES):
            return
        f.seek(0)
        number, at_line_start = 0, True
        # Pieces of at most _READ_PIECE bytes: a huge one-line file cannot exhaust memory.
        for piece in iter(partial(f.readline, _READ_PIECE), b""):
            number += at_line_start
            at_line_start = piece.endswith(b"\n")
            text, _ = decode_prefix(piece)
            text = text.rstrip("\r\n")
            if regex.search(text):
                yield (
                    number,
                    text if len(text) <= _MAX_MATCH_CHARS else text[:_MAX_MATCH_CHARS] + "…",
                )


def tree(inv: Invocation) -> dict[str, Any]:
    """An indented tree of `path` down to `max_depth` levels; symlinks shown with their target."""
    real = _directory(inv, inv.args.get("path", "."))
    max_depth: int = inv.args.get("max_depth", _TREE_DEPTH)
    walk = Walk(real, inv.timeout_sec, max_depth)
    lines = [display(inv.root, real) + "/"]
    truncated = False
    for rel, entry in walk:
        if len(lines) > MAX_ENTRIES:
            truncated = True
            break
        indent = "  " * (rel.count("/") + 1)
        kind = _kind(entry)
        if kind == "symlink":
            # Shown as text only: the link is never followed, so it may point anywhere.
            try:
                target = os.readlink(entry.path)
            except OSError:
                target = "?"
            lines.append(f"{indent}{entry.name} -> {target}")
        elif kind == "dir":
            lines.append(f"{indent}{entry.name}/")
        else:
            lines.append(f"{indent}{entry.name}")
    text, cut = cap_text("\n".join(lines) + "\n", inv.output_cap)
    result: dict[str, Any] = {
        "path": display(inv.root, real),
        "tree": text,
        "entries": len(lines) - 1,
        **_stopped(walk, truncated or cut, "the path or max_depth"),
    }
    return result


_TREE_DEPTH = 3
_TREE_MAX_DEPTH = 20


def tools(limits: RunLimits) -> list[Tool]:
    """list_dir, glob, grep and tree, with the run's limits applied."""
    timeout = float(limits.tool_timeout_sec)
    out_cap = limits.tool_output_bytes
    return [
        Tool(
            "list_dir",
            "List a directory: each entry's name, type (file, dir, symlink, other) and, for "
            f"files, size in bytes. Use path '.' for the workspace. At most {MAX_ENTRIES} entries.",
            schema({"path": PATH_ARG}, ["path"]),
            timeout,
            out_cap,
            list_dir,
        ),
        Tool(
            "glob",
            "Find files and directories whose path relative to path (default: the workspace) "
            "matches a glob: * and ? match within one path component, ** any number of "
            "directories, e.g. '**/*.py'. Directories end with '/'. Symlinks are listed, not "
            f"followed. At most {MAX_ENTRIES} results.",
            schema({"pattern": {"type": "string", "minLength": 1}, "path": PATH_ARG}, ["pattern"]),
            timeout,
            out_cap,
            glob,
        ),
        Tool(
            "grep",
            "Search file contents with a Python regular expression (re syntax); returns matching "
            "lines as 'path:line:text'. path is a file or directory (default: the workspace); "
            "glob keeps files whose name matches (or whose path under path, if the glob has a "
            "'/'), e.g. '*.py'. Binary files and symlinks are skipped. "
            f"At most {MAX_ENTRIES} lines.",
            schema(
                {
                    "pattern": {"type": "string", "minLength": 1},
                    "path": PATH_ARG,
                    "glob": {"type": "string", "minLength": 1},
                },
                ["pattern"],
            ),
            timeout,
            out_cap,
            grep,
        ),
        Tool(
            "tree",
            "Show a directory (default: the workspace) as an indented tree, sorted by name: "
            "directories end with '/', symlinks show 'name -> target' and are not followed. "
            f"Goes max_depth levels deep (default {_TREE_DEPTH}). At most {MAX_ENTRIES} entries "
            f"and {out_cap} bytes; truncated says when it was cut.",
            schema(
                {
                    "path": PATH_ARG,
                    "max_depth": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": _TREE_MAX_DEPTH,
                        "description": f"Levels to show (default {_TREE_DEPTH}).",
                    },
                },
                [],
            ),
            timeout,
            out_cap,
            tree,
        ),
    ]
