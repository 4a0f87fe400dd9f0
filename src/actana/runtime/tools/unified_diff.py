"""Reading unified diffs (`diff -u`, `git diff`) and applying their hunks to text in memory.

Only text is handled here, no files: `actana.runtime.tools.patch` decides which files a patch may
touch and writes them. Everything is split on "\\n" only — `str.splitlines` would also split on
form feeds and Unicode separators that a file may legitimately hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from actana.runtime.tools.base import ToolError

DEV_NULL = "/dev/null"
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NO_NEWLINE = "\\"  # "\ No newline at end of file"


def split_lines(text: str) -> list[str]:
    """`text` cut after each "\\n"; the last piece lacks one if the text does."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


@dataclass
class Hunk:
    """One `@@` block: `lines` are (op, text) with op ' ', '-' or '+'; text keeps its newline."""

    header: str
    old_start: int
    old_len: int
    new_start: int
    lines: list[tuple[str, str]] = field(default_factory=list)

    def old(self) -> list[str]:
        return [text for op, text in self.lines if op != "+"]

    def new(self) -> list[str]:
        return [text for op, text in self.lines if op != "-"]


@dataclass
class FilePatch:
    """The changes to one file; a path is None for /dev/null (the file is created or deleted)."""

    old_path: str | None
    new_path: str | None
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The file the patch applies to: the new path, or the old one for a deletion."""
        return self.new_path or self.old_path or ""


def _header_path(line: str) -> str | None:
    name = line[4:].split("\t", 1)[0].rstrip("\r\n")
    return None if name == DEV_NULL else name


def _strip_prefixes(patch: FilePatch) -> None:
    """Drop git's `a/` and `b/` prefixes when the headers use them."""
    old, new = patch.old_path, patch.new_path
    if (old is None or old.startswith("a/")) and (new is None or new.startswith("b/")):
        patch.old_path = old[2:] if old else None
        patch.new_path = new[2:] if new else None


def parse(text: str) -> list[FilePatch]:
    """Read every file's hunks from a unified diff; other lines (git metadata) are skipped.

    Raises:
        ToolError: a hunk is malformed or cut short, or there is no change at all.
    """
    lines = split_lines(text)
    patches: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            patch = FilePatch(_header_path(line), _header_path(lines[i + 1]))
            if patch.old_path is None and patch.new_path is None:
                raise ToolError("a file header has /dev/null on both sides")
            _strip_prefixes(patch)
            patches.append(patch)
            i += 2
        elif line.startswith("@@"):
            if not patches:
                raise ToolError("a hunk (@@ line) comes before any '---'/'+++' file header")
            patch = patches[-1]
            hunk, i = _parse_hunk(lines, i, f"hunk {len(patch.hunks) + 1} of '{patch.path}'")
            patch.hunks.append(hunk)
        else:
            i += 1
    if not patches or not any(p.hunks for p in patches):
        raise ToolError(
            "no changes found; give a unified diff: '--- a/path' and '+++ b/path' headers "
            "followed by '@@ -start,count +start,count @@' hunks"
        )
    return patches


def _parse_hunk(lines: list[str], i: int, name: str) -> tuple[Hunk, int]:
    match = _HUNK_HEADER.match(lines[i])
    if match is None:
        raise ToolError(f"{name}: bad header {lines[i].strip()!r:.80}; expected '@@ -l,s +l,s @@'")
    old_start, old_len, new_start, new_len = (
        int(g) if g is not None else 1 for g in match.groups()
    )
    hunk = Hunk(lines[i].strip(), old_start, old_len, new_start)
    want_old, want_new = old_len, new_len
    i += 1
    while want_old > 0 or want_new > 0:
        if i >= len(lines):
            raise ToolError(
                f"{name} ({hunk.header}) is cut short: {want_old} old and {want_new} new lines "
                "are missing; the counts in the @@ line must match the lines that follow"
            )
        line = lines[i]
        op, body = (" ", "\n") if line in ("\n", "\r\n") else (line[0], line[1:])
        if op == _NO_NEWLINE:  # "\ No newline at end of file": the line before has none
            _drop_newline(hunk)
            i += 1
            continue
        if op not in " -+" or (op != "+" and want_old == 0) or (op != "-" and want_new == 0):
            raise ToolError(
                f"{name} ({hunk.header}): line {line.rstrip()!r:.80} does not fit; the counts "
                "in the @@ line must match the lines that follow"
            )
        want_old -= op != "+"
        want_new -= op != "-"
        hunk.lines.append((op, body if body.endswith("\n") else body + "\n"))
        i += 1
    if i < len(lines) and lines[i].startswith(_NO_NEWLINE):
        _drop_newline(hunk)
        i += 1
    return hunk, i


def _drop_newline(hunk: Hunk) -> None:
    if hunk.lines and hunk.lines[-1][1].endswith("\n"):
        op, body = hunk.lines[-1]
        hunk.lines[-1] = (op, body[:-1])


def apply_hunks(lines: list[str], hunks: list[Hunk], name: str) -> list[str]:
    """Apply `hunks` in order to `lines`; a hunk may sit off its stated line (an offset), but
    its context and removed lines must match exactly.

    Raises:
        ToolError: naming the hunk that does not apply.
    """
    result: list[str] = []
    done = 0  # lines of `lines` consumed so far
    for number, hunk in enumerate(hunks, start=1):
        old = hunk.old()
        if not old:  # a pure insertion: old_start is the line it goes after
            at = hunk.old_start
            if at < done or at > len(lines):
                raise ToolError(f"hunk {number} of {name} ({hunk.header}) is out of range")
        else:
            at = _find(lines, old, hunk.old_start - 1, done)
            if at < 0:
                raise ToolError(
                    f"hunk {number} of {name} ({hunk.header}) does not apply: its context and "
                    f"removed lines were not found (first of them: {old[0].rstrip()!r:.80}). "
                    "Nothing was changed; read the file again and rebuild the patch"
                )
        result += lines[done:at]
        result += hunk.new()
        done = at + len(old)
    return result + lines[done:]


def _find(lines: list[str], block: list[str], expected: int, start: int) -> int:
    """Where `block` occurs in `lines` at or after `start`, nearest to `expected`; -1 if not."""
    last = len(lines) - len(block)
    expected = min(max(expected, start), max(last, start))
    first = block[0]
    # Outward from where the hunk says it is: the nearest match wins, as with patch(1).
    for distance in range(max(expected - start, last - expected) + 1):
        for at in (expected - distance, expected + distance) if distance else (expected,):
            if start <= at <= last and lines[at] == first and lines[at : at + len(block)] == block:
                return at
    return -1
