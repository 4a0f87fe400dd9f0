"""read_file, write_file, edit_file: happy paths, bad arguments, and every way out of the box."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.runtime.conftest import LIMITS, Tools

ESCAPES = ["../x", "/etc/passwd", "assets/../../x", "etc_link/passwd"]


@pytest.fixture
def escape_hatches(workspace: Path) -> None:
    """A symlink in the workspace that points out of it, to /etc."""
    (workspace / "etc_link").symlink_to("/etc")


# --- read_file -------------------------------------------------------------------------------


def test_read_file_returns_lines_and_counts(tools: Tools, workspace: Path) -> None:
    (workspace / "notes.txt").write_text("one\ntwo\nthree\nfour\n")

    whole = tools.ok("read_file", path="notes.txt")
    assert whole["content"] == "one\ntwo\nthree\nfour\n"
    assert (whole["total_lines"], whole["truncated"]) == (4, False)
    assert "next_offset" not in whole

    middle = tools.ok("read_file", path="notes.txt", offset=2, limit=2)
    assert middle["content"] == "two\nthree\n"
    assert (middle["total_lines"], middle["next_offset"]) == (4, 4)


@pytest.mark.parametrize(
    ("text", "args", "content", "first"),
    [
        ("one\ntwo\nthree\nfour\n", {"offset": -2}, "three\nfour\n", 3),
        ("one\ntwo\nthree\nfour", {"offset": -1}, "four", 4),  # no newline at the end
        ("one\ntwo\n", {"offset": -10}, "one\ntwo\n", 1),  # more than there are: all
        ("one\ntwo\nthree\nfour\n", {"offset": -3, "limit": 1}, "two\n", 2),
    ],
)
def test_read_file_with_a_negative_offset_reads_the_end(
    tools: Tools, workspace: Path, text: str, args: dict[str, int], content: str, first: int
) -> None:
    (workspace / "log.txt").write_text(text)
    tail = tools.ok("read_file", path="log.txt", **args)
    assert tail["content"] == content
    assert tail["offset"] == first  # where to page on from, in ordinary line numbers


def test_read_file_cuts_at_the_byte_cap_and_says_where_to_go_on(
    tools: Tools, workspace: Path
) -> None:
    line = "é" * 99 + "\n"  # 199 bytes
    (workspace / "big.txt").write_text(line * 50)

    result = tools.ok("read_file", path="big.txt")
    assert result["truncated"] is True
    assert len(result["content"].encode()) <= LIMITS.read_file_bytes
    assert result["content"] == line * result["lines"]
    assert result["next_offset"] == result["lines"] + 1
    assert result["total_lines"] == 50
    assert "offset=" in result["note"]


def test_read_file_shows_the_start_of_a_line_longer_than_the_cap(
    tools: Tools, workspace: Path
) -> None:
    (workspace / "one-line.txt").write_text("é" * 5000)
    result = tools.ok("read_file", path="one-line.txt")
    assert result["truncated"] is True
    assert result["total_lines"] == 1
    assert 0 < len(result["content"].encode()) <= LIMITS.read_file_bytes
    assert set(result["content"]) == {"é"}  # cut between characters, never inside one


def test_read_file_refuses_binary_directories_and_missing_files(
    tools: Tools, workspace: Path
) -> None:
    (workspace / "blob.bin").write_bytes(b"\x7fELF\x00\x01")
    assert "binary" in str(tools.fails("read_file", path="blob.bin"))
    assert "list_dir" in str(tools.fails("read_file", path="assets"))
    assert "does not exist" in str(tools.fails("read_file", path="nope.txt"))


@pytest.mark.usefixtures("escape_hatches")
@pytest.mark.parametrize("path", ESCAPES)
def test_read_file_stays_inside_the_workspace(tools: Tools, path: str) -> None:
    assert "outside the workspace" in str(tools.fails("read_file", path=path))


def test_a_symlink_pointing_inside_may_be_read(tools: Tools, workspace: Path) -> None:
    (workspace / "real.txt").write_text("real\n")
    (workspace / "alias.txt").symlink_to("real.txt")
    assert tools.ok("read_file", path="alias.txt")["content"] == "real\n"


def test_a_sibling_directory_with_a_common_prefix_is_outside(tools: Tools, workspace: Path) -> None:
    sibling = workspace.parent / (workspace.name + "-other")
    sibling.mkdir()
    (sibling / "secret.txt").write_text("no")
    path = f"../{sibling.name}/secret.txt"
    assert "outside the workspace" in str(tools.fails("read_file", path=path))
    assert "outside the workspace" in str(
        tools.fails("read_file", path=str(sibling / "secret.txt"))
    )


# --- write_file ------------------------------------------------------------------------------


def test_write_file_creates_parents_and_replaces(tools: Tools, workspace: Path) -> None:
    created = tools.ok("write_file", path="assets/out/deep/r.md", content="# Report\n")
    assert created == {"path": "assets/out/deep/r.md", "bytes_written": 9, "created": True}
    assert (workspace / "assets/out/deep/r.md").read_text() == "# Report\n"

    replaced = tools.ok("write_file", path="assets/out/deep/r.md", content="x")
    assert replaced["created"] is False
    assert (workspace / "assets/out/deep/r.md").read_text() == "x"


@pytest.mark.usefixtures("escape_hatches")
@pytest.mark.parametrize("path", [*ESCAPES, "etc_link/new-file", "../../tmp/x"])
def test_write_file_stays_inside_the_workspace(tools: Tools, path: str) -> None:
    before = Path("/etc/passwd").read_bytes()
    assert "outside the workspace" in str(tools.fails("write_file", path=path, content="pwned"))
    assert Path("/etc/passwd").read_bytes() == before
    assert not Path("/etc/new-file").exists()


def test_write_file_never_writes_through_a_symlink(tools: Tools, workspace: Path) -> None:
    # Even a link that points inside: writing through it would change a file the path doesn't name.
    (workspace / "target.txt").write_text("original")
    (workspace / "assets" / "link.txt").symlink_to(workspace / "target.txt")
    error = tools.fails("write_file", path="assets/link.txt", content="changed")
    assert "symlink" in str(error)
    assert (workspace / "target.txt").read_text() == "original"


def test_write_file_needs_a_file_name(tools: Tools) -> None:
    assert "does not name a file" in str(tools.fails("write_file", path="assets/", content=""))
    assert "directory" in str(tools.fails("write_file", path="assets", content=""))


def test_write_file_refuses_a_fifo_instead_of_hanging(tools: Tools, workspace: Path) -> None:
    os.mkfifo(workspace / "pipe")
    assert "not a regular file" in str(tools.fails("write_file", path="pipe", content="x"))


# --- edit_file -------------------------------------------------------------------------------


def test_edit_file_replaces_exact_text(tools: Tools, workspace: Path) -> None:
    (workspace / "a.py").write_text("x = 1\ny = 2\n")
    assert tools.ok("edit_file", path="a.py", old="y = 2", new="y = 3") == {
        "path": "a.py",
        "replacements": 1,
    }
    assert (workspace / "a.py").read_text() == "x = 1\ny = 3\n"


def test_edit_file_refuses_missing_or_ambiguous_text(tools: Tools, workspace: Path) -> None:
    (workspace / "a.txt").write_text("ab ab ab")
    assert "not found" in str(tools.fails("edit_file", path="a.txt", old="zz", new="y"))
    ambiguous = str(tools.fails("edit_file", path="a.txt", old="ab", new="y"))
    assert "occurs 3 times" in ambiguous
    assert "count allows 1" in ambiguous
    assert "occurs 3 times" in str(
        tools.fails("edit_file", path="a.txt", old="ab", new="y", count=2)
    )
    assert (workspace / "a.txt").read_text() == "ab ab ab"

    assert tools.ok("edit_file", path="a.txt", old="ab", new="y", count=3)["replacements"] == 3
    assert (workspace / "a.txt").read_text() == "y y y"


def test_edit_file_never_writes_through_a_symlink(tools: Tools, workspace: Path) -> None:
    (workspace / "target.txt").write_text("old")
    (workspace / "link.txt").symlink_to("target.txt")
    assert "symlink" in str(tools.fails("edit_file", path="link.txt", old="old", new="new"))
    assert (workspace / "target.txt").read_text() == "old"


@pytest.mark.usefixtures("escape_hatches")
@pytest.mark.parametrize("path", ESCAPES)
def test_edit_file_stays_inside_the_workspace(tools: Tools, path: str) -> None:
    assert "outside the workspace" in str(tools.fails("edit_file", path=path, old="root", new="x"))


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({}, "missing required argument 'path'"),
        ({"path": 3}, "argument 'path' must be string, got int"),
        ({"path": "a", "offset": True}, "argument 'offset' must be integer, got bool"),
        ({"path": "a", "lines": 3}, "unknown argument 'lines' (allowed: path, offset, limit)"),
    ],
)
def test_bad_arguments_are_explained(tools: Tools, args: dict[str, object], problem: str) -> None:
    error = str(tools.fails("read_file", **args))
    assert error.startswith("bad arguments for read_file: ")
    assert problem in error


def test_offset_zero_is_refused_with_both_ways_to_say_it(tools: Tools, workspace: Path) -> None:
    (workspace / "a").write_text("x\n")
    error = str(tools.fails("read_file", path="a", offset=0))
    assert "use 1 for the first line, or -N for the last N" in error


def test_an_unknown_tool_lists_the_known_ones(tools: Tools) -> None:
    error = str(tools.fails("rm_rf", path="/"))
    assert "unknown tool 'rm_rf'" in error
    assert "read_file" in error
