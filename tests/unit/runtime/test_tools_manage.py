"""move_path, delete_path, file_info and tree: happy paths, bad arguments, escapes, caps."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.unit.runtime.conftest import LIMITS, Tools

ESCAPES = ["../x", "/etc/passwd", "assets/../../x", "etc_link/passwd"]


@pytest.fixture(autouse=True)
def escape_hatch(workspace: Path) -> None:
    """A symlink in the workspace that points out of it, to /etc."""
    (workspace / "etc_link").symlink_to("/etc")


# --- move_path -------------------------------------------------------------------------------


def test_move_path_renames_files_and_folders(tools: Tools, workspace: Path) -> None:
    (workspace / "a.txt").write_text("A")
    result = tools.ok("move_path", source="a.txt", destination="out/deep/b.txt")
    assert result == {"source": "a.txt", "destination": "out/deep/b.txt", "type": "file"}
    assert (workspace / "out/deep/b.txt").read_text() == "A"
    assert not (workspace / "a.txt").exists()

    tools.ok("move_path", source="out/", destination="assets/moved")
    assert (workspace / "assets/moved/deep/b.txt").read_text() == "A"


def test_move_path_moves_a_symlink_itself_never_its_target(tools: Tools, workspace: Path) -> None:
    result = tools.ok("move_path", source="etc_link", destination="renamed_link")
    assert result["type"] == "symlink"
    assert os.readlink(workspace / "renamed_link") == "/etc"
    assert Path("/etc/passwd").exists()


def test_move_path_refuses_to_replace_unless_asked(tools: Tools, workspace: Path) -> None:
    (workspace / "a.txt").write_text("A")
    (workspace / "b.txt").write_text("B")
    error = tools.fails("move_path", source="a.txt", destination="b.txt")
    assert "'b.txt' already exists; pass overwrite=true" in str(error)
    assert (workspace / "b.txt").read_text() == "B"

    tools.ok("move_path", source="a.txt", destination="b.txt", overwrite=True)
    assert (workspace / "b.txt").read_text() == "A"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"source": ".", "destination": "x"}, "is the workspace root; refusing to move it"),
        ({"source": "assets/..", "destination": "x"}, "is the workspace root"),
        ({"source": "missing", "destination": "x"}, "'missing' does not exist"),
        ({"source": "assets", "destination": "assets/inner"}, "into itself"),
        ({"source": "assets", "destination": "assets"}, "are the same path"),
        ({"source": "assets"}, "missing required argument 'destination'"),
        ({"source": "assets", "destination": "x", "overwrite": "yes"}, "must be boolean"),
    ],
)
def test_move_path_bad_arguments(tools: Tools, args: dict[str, object], message: str) -> None:
    assert message in str(tools.fails("move_path", **args))


@pytest.mark.parametrize("escape", ESCAPES)
def test_move_path_stays_in_the_workspace(tools: Tools, workspace: Path, escape: str) -> None:
    (workspace / "a.txt").write_text("A")
    assert "outside the workspace" in str(
        tools.fails("move_path", source="a.txt", destination=escape)
    )
    assert (workspace / "a.txt").exists()
    error = str(tools.fails("move_path", source=escape, destination="stolen"))
    assert "outside the workspace" in error or "does not exist" in error
    assert not (workspace / "stolen").exists()


# --- delete_path -----------------------------------------------------------------------------


def test_delete_path_deletes_files_and_needs_recursive_for_folders(
    tools: Tools, workspace: Path
) -> None:
    (workspace / "d/e").mkdir(parents=True)
    (workspace / "d/e/f.txt").write_text("x")
    (workspace / "g.txt").write_text("x")
    assert tools.ok("delete_path", path="g.txt") == {"deleted": "g.txt", "type": "file"}
    assert "pass recursive=true" in str(tools.fails("delete_path", path="d"))
    assert (workspace / "d/e/f.txt").exists()
    assert tools.ok("delete_path", path="d/", recursive=True)["type"] == "dir"
    assert not (workspace / "d").exists()


def test_delete_path_removes_a_link_never_what_it_points_to(tools: Tools, workspace: Path) -> None:
    outside = workspace.parent / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    (workspace / "to_outside").symlink_to(outside)
    (workspace / "d").mkdir()
    (workspace / "d/inner_link").symlink_to(outside)

    assert tools.ok("delete_path", path="to_outside")["type"] == "symlink"
    tools.ok("delete_path", path="d", recursive=True)
    assert (outside / "keep.txt").read_text() == "precious"
    assert "outside the workspace" in str(tools.fails("delete_path", path="etc_link/passwd"))


@pytest.mark.parametrize("root", [".", "./", "assets/..", "/"])
def test_delete_path_never_deletes_the_root(tools: Tools, workspace: Path, root: str) -> None:
    error = str(tools.fails("delete_path", path=root, recursive=True))
    assert "workspace root" in error or "outside the workspace" in error
    assert (workspace / "assets").is_dir()


def test_delete_path_refuses_the_root_by_its_absolute_path(tools: Tools, workspace: Path) -> None:
    assert "workspace root" in str(tools.fails("delete_path", path=str(workspace), recursive=True))


@pytest.mark.parametrize("escape", ESCAPES)
def test_delete_path_stays_in_the_workspace(tools: Tools, escape: str) -> None:
    error = str(tools.fails("delete_path", path=escape))
    assert "outside the workspace" in error or "does not exist" in error


def test_delete_path_bad_arguments(tools: Tools) -> None:
    assert "missing required argument 'path'" in str(tools.fails("delete_path"))
    assert "must be boolean" in str(tools.fails("delete_path", path="x", recursive=1))


# --- file_info -------------------------------------------------------------------------------


def test_file_info_describes_a_text_file(tools: Tools, workspace: Path) -> None:
    (workspace / "t.txt").write_bytes(b"one\ntwo\nthree")
    (workspace / "t.txt").chmod(0o640)
    info = tools.ok("file_info", path="t.txt")
    assert info["type"] == "file"
    assert info["size"] == 13
    assert info["mode"] == "0640"
    assert info["lines"] == 3
    assert info["binary"] is False
    assert info["sha256"] == hashlib.sha256(b"one\ntwo\nthree").hexdigest()
    assert info["mtime"].endswith("+00:00")


def test_file_info_on_binaries_folders_and_the_root(tools: Tools, workspace: Path) -> None:
    (workspace / "b.bin").write_bytes(b"\x00\x01" * 10)
    binary = tools.ok("file_info", path="b.bin")
    assert binary["binary"] is True
    assert "lines" not in binary
    assert tools.ok("file_info", path="assets")["entries"] == 0
    assert tools.ok("file_info", path=".")["type"] == "dir"


def test_file_info_shows_a_symlink_target_as_text_only(tools: Tools) -> None:
    info = tools.ok("file_info", path="etc_link")
    assert (info["type"], info["target"]) == ("symlink", "/etc")
    assert "sha256" not in info


def test_file_info_cuts_a_long_link_target_with_the_marker(tools: Tools, workspace: Path) -> None:
    target = "/" + "x" * 3000
    (workspace / "long_link").symlink_to(target)
    info = tools.ok("file_info", path="long_link")
    assert info["truncated"] is True
    assert info["target"].startswith("/xxx")
    assert "[... output truncated: 3001 bytes in total" in info["target"]


def test_file_info_never_reads_a_fifo(tools: Tools, workspace: Path) -> None:
    os.mkfifo(workspace / "pipe")
    assert tools.ok("file_info", path="pipe")["type"] == "fifo"


@pytest.mark.parametrize("escape", ["../x", "/etc/passwd", "etc_link/passwd"])
def test_file_info_stays_in_the_workspace(tools: Tools, escape: str) -> None:
    assert "outside the workspace" in str(tools.fails("file_info", path=escape))


def test_file_info_bad_arguments(tools: Tools) -> None:
    assert "missing required argument 'path'" in str(tools.fails("file_info"))
    assert "does not exist" in str(tools.fails("file_info", path="nope"))


# --- tree ------------------------------------------------------------------------------------


def test_tree_draws_an_indented_tree(tools: Tools, workspace: Path) -> None:
    (workspace / "src/pkg").mkdir(parents=True)
    (workspace / "src/pkg/mod.py").write_text("")
    (workspace / "src/top.py").write_text("")
    result = tools.ok("tree")
    assert result["tree"] == (
        "./\n  assets/\n  etc_link -> /etc\n  src/\n    pkg/\n      mod.py\n    top.py\n"
    )
    assert result["entries"] == 6
    shallow = tools.ok("tree", path="src", max_depth=1)
    assert shallow["tree"] == "src/\n  pkg/\n  top.py\n"


def test_tree_caps_its_output_with_the_marker(tools: Tools, workspace: Path) -> None:
    for n in range(300):
        (workspace / "assets" / f"file-with-a-long-name-{n:04}.txt").write_text("")
    result = tools.ok("tree", path="assets")
    assert result["truncated"] is True
    assert len(result["tree"].encode()) < LIMITS.tool_output_bytes + 200
    assert "[... output truncated:" in result["tree"]


@pytest.mark.parametrize("escape", ["..", "/etc", "etc_link"])
def test_tree_stays_in_the_workspace(tools: Tools, escape: str) -> None:
    assert "outside the workspace" in str(tools.fails("tree", path=escape))


def test_tree_bad_arguments(tools: Tools) -> None:
    assert "must be <= 20" in str(tools.fails("tree", max_depth=99))
    assert "not a directory" in str(tools.fails("tree", path="nope"))
