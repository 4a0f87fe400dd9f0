"""multi_edit, diff_files and apply_patch: all or nothing, exact matching, no way out."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tests.unit.runtime.conftest import LIMITS, Tools

ESCAPES = ["../x", "/etc/passwd", "assets/../../x", "etc_link/passwd"]


@pytest.fixture(autouse=True)
def escape_hatch(workspace: Path) -> None:
    (workspace / "etc_link").symlink_to("/etc")


def unified(old: str, new: str, a: str, b: str) -> str:
    """A patch as `diff -u` writes it (difflib's output, with the no-newline marker)."""
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), a, b)
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


# --- multi_edit ------------------------------------------------------------------------------


def test_multi_edit_applies_edits_in_order(tools: Tools, workspace: Path) -> None:
    (workspace / "m.py").write_text("a = 1\nb = 2\nc = 1\n")
    result = tools.ok(
        "multi_edit",
        path="m.py",
        edits=[
            {"old": "a = 1", "new": "a = 10"},
            {"old": "= 1\n", "new": "= 3\n"},  # sees the first edit: only c's line matches now
            {"old": "b", "new": "bee", "count": 1},
        ],
    )
    assert result == {"path": "m.py", "edits": 3, "replacements": [1, 1, 1]}
    assert (workspace / "m.py").read_text() == "a = 10\nbee = 2\nc = 3\n"


def test_multi_edit_is_all_or_nothing(tools: Tools, workspace: Path) -> None:
    (workspace / "m.py").write_text("x = 1\ny = 1\n")
    error = str(
        tools.fails(
            "multi_edit",
            path="m.py",
            edits=[{"old": "x", "new": "z"}, {"old": "= 1", "new": "= 2"}],
        )
    )
    assert "occurs 2 times" in error
    assert "edit 2 of 2; the file was left unchanged" in error
    assert (workspace / "m.py").read_text() == "x = 1\ny = 1\n"


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ([], "argument 'edits' needs at least 1 items"),
        ([{"old": "a"}], "missing required argument 'edits[0].new'"),
        ([{"old": "", "new": "b"}], "argument 'edits[0].old' must not be empty"),
        ([{"old": "a", "new": "b", "cnt": 2}], "unknown argument 'edits[0].cnt'"),
        ("a->b", "argument 'edits' must be array, got str"),
    ],
)
def test_multi_edit_bad_arguments(
    tools: Tools, workspace: Path, edits: object, message: str
) -> None:
    (workspace / "m.py").write_text("a\n")
    assert message in str(tools.fails("multi_edit", path="m.py", edits=edits))


@pytest.mark.parametrize("escape", ESCAPES)
def test_multi_edit_stays_in_the_workspace(tools: Tools, escape: str) -> None:
    error = str(tools.fails("multi_edit", path=escape, edits=[{"old": "root", "new": "x"}]))
    assert "outside the workspace" in error or "does not exist" in error


def test_multi_edit_refuses_a_symlink_even_inside(tools: Tools, workspace: Path) -> None:
    (workspace / "real.txt").write_text("a\n")
    (workspace / "alias.txt").symlink_to("real.txt")
    error = tools.fails("multi_edit", path="alias.txt", edits=[{"old": "a", "new": "b"}])
    assert "symlink" in str(error)


# --- diff_files ------------------------------------------------------------------------------


def test_diff_files_of_two_files_and_of_a_file_against_text(tools: Tools, workspace: Path) -> None:
    (workspace / "a.txt").write_text("one\ntwo\n")
    (workspace / "b.txt").write_text("one\nTWO\n")
    result = tools.ok("diff_files", a="a.txt", b="b.txt")
    assert result["diff"] == "--- a.txt\n+++ b.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n"
    assert (result["identical"], result["truncated"]) == (False, False)
    assert tools.ok("diff_files", a="a.txt", text="one\ntwo\n") == {
        "diff": "",
        "identical": True,
        "truncated": False,
    }
    no_newline = tools.ok("diff_files", a="a.txt", text="one\ntwo")["diff"]
    assert no_newline.endswith("+two\n\\ No newline at end of file\n")


def test_diff_files_caps_its_output_with_the_marker(tools: Tools, workspace: Path) -> None:
    (workspace / "a.txt").write_text("".join(f"line {n}\n" for n in range(2000)))
    result = tools.ok("diff_files", a="a.txt", text="")
    assert result["truncated"] is True
    assert "[... output truncated:" in result["diff"]
    assert len(result["diff"].encode()) < LIMITS.tool_output_bytes + 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"a": "a.txt"}, "give exactly one of b"),
        ({"a": "a.txt", "b": "a.txt", "text": "x"}, "give exactly one of b"),
        ({"a": "nope", "text": "x"}, "'nope' does not exist"),
        ({"a": "bin", "text": "x"}, "not UTF-8 text"),
        ({"a": "a.txt", "text": "x", "context": -1}, "must be >= 0"),
    ],
)
def test_diff_files_bad_arguments(
    tools: Tools, workspace: Path, args: dict[str, object], message: str
) -> None:
    (workspace / "a.txt").write_text("x\n")
    (workspace / "bin").write_bytes(b"\xff\xfe\x00")
    assert message in str(tools.fails("diff_files", **args))


@pytest.mark.parametrize("escape", ESCAPES)
def test_diff_files_stays_in_the_workspace(tools: Tools, workspace: Path, escape: str) -> None:
    (workspace / "a.txt").write_text("x\n")
    assert "outside the workspace" in str(tools.fails("diff_files", a=escape, text="x"))
    assert "outside the workspace" in str(tools.fails("diff_files", a="a.txt", b=escape))


# --- apply_patch -----------------------------------------------------------------------------


def test_apply_patch_modifies_creates_and_deletes(tools: Tools, workspace: Path) -> None:
    (workspace / "mod.txt").write_text("alpha\nbeta\ngamma\n")
    (workspace / "gone.txt").write_text("bye\n")
    patch = (
        "diff --git a/mod.txt b/mod.txt\nindex 1..2 100644\n"
        + unified("alpha\nbeta\ngamma\n", "alpha\nBETA\ngamma\n", "a/mod.txt", "b/mod.txt")
        + unified("", "fresh\nfile", "/dev/null", "b/new/dir/created.txt")
        + unified("bye\n", "", "a/gone.txt", "/dev/null")
    )
    result = tools.ok("apply_patch", patch=patch)
    assert result["files_changed"] == 3
    assert result["summary"].splitlines() == [
        "modified mod.txt (1 hunk)",
        "created new/dir/created.txt (1 hunk)",
        "deleted gone.txt (1 hunk)",
    ]
    assert (workspace / "mod.txt").read_text() == "alpha\nBETA\ngamma\n"
    assert (workspace / "new/dir/created.txt").read_text() == "fresh\nfile"
    assert not (workspace / "gone.txt").exists()


def test_apply_patch_finds_a_hunk_that_moved(tools: Tools, workspace: Path) -> None:
    old = "".join(f"{n}\n" for n in range(1, 30))
    new = old.replace("20\n", "twenty\n")
    patch = unified(old, new, "a/n.txt", "b/n.txt")
    (workspace / "n.txt").write_text("extra\nlines\n" + old)  # everything two lines further down
    tools.ok("apply_patch", patch=patch)
    assert (workspace / "n.txt").read_text() == "extra\nlines\n" + new


def test_apply_patch_is_all_or_nothing_and_names_the_failed_hunk(
    tools: Tools, workspace: Path
) -> None:
    (workspace / "one.txt").write_text("1\n2\n3\n")
    (workspace / "two.txt").write_text("a\nb\nc\n")
    patch = unified("1\n2\n3\n", "1\nTWO\n3\n", "a/one.txt", "b/one.txt") + unified(
        "a\nX\nc\n", "a\nY\nc\n", "a/two.txt", "b/two.txt"
    )
    error = str(tools.fails("apply_patch", patch=patch))
    assert "hunk 1 of 'two.txt' (@@ -1,3 +1,3 @@) does not apply" in error
    assert "Nothing was changed" in error
    assert (workspace / "one.txt").read_text() == "1\n2\n3\n"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("just words", "no changes found"),
        ("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n", "is cut short"),
        ("@@ -1 +1 @@\n-a\n+b\n", "comes before any '---'/'+++' file header"),
        ("--- a/x\n+++ b/x\n@@ bad @@\n", "bad header"),
        ("--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+x\n", "already exists"),
        ("--- a/none\n+++ b/none\n@@ -1 +1 @@\n-a\n+b\n", "does not exist"),
    ],
)
def test_apply_patch_bad_patches(tools: Tools, workspace: Path, patch: str, message: str) -> None:
    (workspace / "a.txt").write_text("a\n")
    assert message in str(tools.fails("apply_patch", patch=patch))
    assert "bad arguments" in str(tools.fails("apply_patch", patch=3))


@pytest.mark.parametrize(
    "path", ["../evil.txt", "/tmp/evil.txt", "sub/../../evil.txt", "etc_link/evil.txt"]
)
def test_apply_patch_refuses_escaping_paths(tools: Tools, workspace: Path, path: str) -> None:
    patch = f"--- /dev/null\n+++ {path}\n@@ -0,0 +1 @@\n+owned\n"
    error = str(tools.fails("apply_patch", patch=patch))
    assert "must be relative to the workspace" in error or "outside the workspace" in error
    assert not (workspace.parent / "evil.txt").exists()
    assert not Path("/tmp/evil.txt").exists()


def test_apply_patch_refuses_to_write_through_a_symlink(tools: Tools, workspace: Path) -> None:
    outside = workspace.parent / "target.txt"
    outside.write_text("a\n")
    (workspace / "link.txt").symlink_to(outside)
    error = tools.fails(
        "apply_patch", patch="--- a/link.txt\n+++ b/link.txt\n@@ -1 +1 @@\n-a\n+b\n"
    )
    assert "symlink" in str(error)
    assert outside.read_text() == "a\n"


def test_apply_patch_summary_is_capped_with_the_marker(tools: Tools, workspace: Path) -> None:
    patch = "".join(
        unified("", "x\n", "/dev/null", f"b/a-rather-long-directory-name/file-{n:03}.txt")
        for n in range(150)
    )
    result = tools.ok("apply_patch", patch=patch)
    assert result["files_changed"] == 150
    assert result["truncated"] is True
    assert "[... output truncated:" in result["summary"]
    assert (workspace / "a-rather-long-directory-name/file-149.txt").read_text() == "x\n"


def test_apply_patch_picks_the_nearest_of_several_matches(tools: Tools, workspace: Path) -> None:
    block = "x\ny\nz\n"
    (workspace / "r.txt").write_text(block + "gap\n" * 10 + block)
    # The hunk says line 14: the second copy of the block, not the first.
    tools.ok("apply_patch", patch="--- a/r.txt\n+++ b/r.txt\n@@ -14,3 +14,3 @@\n x\n-y\n+Y\n z\n")
    assert (workspace / "r.txt").read_text() == block + "gap\n" * 10 + "x\nY\nz\n"
