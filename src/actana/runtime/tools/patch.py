"""The tools that compare and patch files: `diff_files` and `apply_patch`.

`apply_patch` is all or nothing: every hunk of every file is applied in memory and every target
is checked (inside the workspace, not a symlink, created only if absent) before the first byte
is written. Patch paths are relative to the workspace; an absolute path or a `..` component is
refused outright, and a symlinked directory that leads out is refused by `resolve_for_write`.
"""

# ruff: noqa: PTH108, PTH112, PTH113, PTH114, PTH123, PTH202
# Paths stay `str` here on purpose: the workspace confinement is os.path.realpath plus
# os.path.commonpath on strings, and every path handled here has been through it.

from __future__ import annotations

import difflib
import os
import time
from typing import Any

from actana.protocol.payloads import RunLimits
from actana.runtime.tools.base import PATH_ARG, Invocation, Tool, ToolError, cap_text, schema
from actana.runtime.tools.paths import (
    display,
    open_for_write,
    resolve,
    resolve_for_write,
    write_all,
)
from actana.runtime.tools.unified_diff import FilePatch, apply_hunks, parse, split_lines

# difflib is quadratic in the worst case; bigger files are for `diff` in bash.
_MAX_DIFF_BYTES = 2 * 1024 * 1024
_MAX_PATCH_FILE_BYTES = 16 * 1024 * 1024
_MAX_PATCH_CHARS = 4 * 1024 * 1024
_MAX_PATCH_FILES = 200


def _read_text(real: str, path: str, cap: int) -> str:
    if os.path.isdir(real):
        raise ToolError(f"'{path}' is a directory, not a file")
    if not os.path.isfile(real):
        raise ToolError(f"'{path}' does not exist (or is not a regular file)")
    if os.path.getsize(real) > cap:
        raise ToolError(f"'{path}' is larger than {cap} bytes; compare it with bash (diff -u)")
    with open(real, "rb") as f:
        raw = f.read(cap + 1)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"'{path}' is not UTF-8 text; compare it with bash (cmp, xxd)") from None


def diff_files(inv: Invocation) -> dict[str, Any]:
    """A unified diff of file `a` against file `b`, or against the given `text`."""
    a: str = inv.args["a"]
    b: str | None = inv.args.get("b")
    text: str | None = inv.args.get("text")
    if (b is None) == (text is None):
        raise ToolError("give exactly one of b (a second file) or text (to compare a with)")
    context: int = inv.args.get("context", 3)
    old = _read_text(resolve(inv.root, a), a, _MAX_DIFF_BYTES)
    if b is not None:
        new, new_name = _read_text(resolve(inv.root, b), b, _MAX_DIFF_BYTES), b
    else:
        new, new_name = text or "", "(text)"
    end = time.monotonic() + inv.timeout_sec
    out: list[str] = []
    size = 0
    for line in difflib.unified_diff(split_lines(old), split_lines(new), a, new_name, n=context):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
        size += len(line)
        if size > inv.output_cap * 4 or time.monotonic() > end:
            break  # enough to fill the cap: the rest would be cut anyway
    diff, truncated = cap_text("".join(out), inv.output_cap)
    return {"diff": diff, "identical": not out, "truncated": truncated}


def _check_patch_path(path: str | None) -> None:
    if path is None:
        return
    if path.startswith("/") or ".." in path.split("/") or "\x00" in path or not path:
        raise ToolError(
            f"the patch names {path!r:.120}; patch paths must be relative to the workspace "
            "(no leading '/', no '..' component)"
        )


def _plan(inv: Invocation, patches: list[FilePatch]) -> list[tuple[str, str, str | None, int]]:
    """(action, target, new content or None to delete, hunks) per file, all checked."""
    pending: dict[str, str | None] = {}  # target -> content after the patches so far
    plan: dict[str, tuple[str, str, str | None, int]] = {}
    for patch in patches:
        _check_patch_path(patch.old_path)
        _check_patch_path(patch.new_path)
        target = resolve_for_write(inv.root, patch.path)
        shown = display(inv.root, target)
        if os.path.islink(target):
            raise ToolError(f"'{shown}' is a symlink; refusing to patch through it")
        exists = os.path.lexists(target) if target not in pending else pending[target] is not None
        if patch.old_path is None:  # a new file
            if exists:
                raise ToolError(f"the patch creates '{shown}', but it already exists")
            before = ""
        elif not exists:
            raise ToolError(f"the patch changes '{shown}', but it does not exist")
        elif target in pending:
            before = pending[target] or ""
        else:
            before = _read_text(target, shown, _MAX_PATCH_FILE_BYTES)
        after = "".join(apply_hunks(split_lines(before), patch.hunks, f"'{shown}'"))
        if patch.new_path is None and after:
            raise ToolError(
                f"the patch deletes '{shown}', but its hunks leave {len(after)} characters in it"
            )
        content = None if patch.new_path is None else after
        pending[target] = content
        if content is None:
            action = "deleted"
        else:
            action = "modified" if os.path.lexists(target) else "created"
        hunks = len(patch.hunks) + (plan[target][3] if target in plan else 0)
        plan[target] = (action, target, content, hunks)
    return list(plan.values())


def apply_patch(inv: Invocation) -> dict[str, Any]:
    """Apply a unified diff to the workspace: all files or none."""
    patches = parse(inv.args["patch"])
    if len(patches) > _MAX_PATCH_FILES:
        raise ToolError(f"the patch touches {len(patches)} files (at most {_MAX_PATCH_FILES})")
    plan = _plan(inv, patches)
    for action, target, content, _ in plan:
        if content is None:
            os.unlink(target)
        else:
            fd = open_for_write(inv.root, target, create=action == "created")
            write_all(fd, content.encode())
    lines = [
        f"{action} {display(inv.root, target)} ({hunks} hunk{'s' if hunks != 1 else ''})"
        for action, target, _, hunks in plan
    ]
    summary, truncated = cap_text("\n".join(lines), inv.output_cap)
    return {"summary": summary, "files_changed": len(plan), "truncated": truncated}


def tools(limits: RunLimits) -> list[Tool]:
    """diff_files and apply_patch, with the run's limits applied."""
    timeout = float(limits.tool_timeout_sec)
    out_cap = limits.tool_output_bytes
    return [
        Tool(
            "diff_files",
            "Show a unified diff (diff -u) of text file a against file b, or against text you "
            "give (e.g. to preview an edit). Returns diff (empty when identical), identical and "
            f"truncated (the diff is cut at {out_cap} bytes). Files up to {_MAX_DIFF_BYTES} "
            "bytes; use bash for bigger ones.",
            schema(
                {
                    "a": PATH_ARG,
                    "b": PATH_ARG,
                    "text": {"type": "string", "description": "Compare a with this text."},
                    "context": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 100,
                        "description": "Lines of context around changes (default 3).",
                    },
                },
                ["a"],
            ),
            timeout,
            out_cap,
            diff_files,
        ),
        Tool(
            "apply_patch",
            "Apply a unified diff (as made by diff -u or git diff) to files of the workspace: "
            "modify, create ('--- /dev/null') or delete ('+++ /dev/null') one or several files. "
            "Paths are relative to the workspace (git's a/ and b/ prefixes are understood). "
            "Context and removed lines must match exactly, though a hunk may have moved. All or "
            "nothing: if any hunk fails, no file is changed and the error names the hunk. "
            "Returns a summary of the files changed.",
            schema(
                {"patch": {"type": "string", "minLength": 1, "maxLength": _MAX_PATCH_CHARS}},
                ["patch"],
            ),
            timeout,
            out_cap,
            apply_patch,
        ),
    ]
