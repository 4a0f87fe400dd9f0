"""list_dir, glob, grep: results, caps with their notes, and no walk out of the workspace."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from actana.runtime.tools.base import MAX_ENTRIES
from actana.runtime.tools.search import compile_glob
from tests.unit.runtime.conftest import LIMITS, Tools


@pytest.fixture
def tree(workspace: Path) -> Path:
    (workspace / "src" / "pkg").mkdir(parents=True)
    (workspace / "src" / "main.py").write_text("import os\nprint('hello')\n")
    (workspace / "src" / "pkg" / "util.py").write_text("def helper():\n    return 'hello'\n")
    (workspace / "README.md").write_text("# Hello\n")
    (workspace / "data.bin").write_bytes(b"hello\x00world")
    (workspace / "etc_link").symlink_to("/etc")  # must never be walked into
    (workspace / "passwd_link").symlink_to("/etc/passwd")  # must never be read
    return workspace


def test_list_dir_describes_entries(tools: Tools, tree: Path) -> None:
    result = tools.ok("list_dir", path=".")
    entries = {e["name"]: e for e in result["entries"]}
    assert list(entries) == sorted(entries)
    assert entries["README.md"] == {"name": "README.md", "type": "file", "size": 8}
    assert entries["src"]["type"] == "dir"
    assert entries["etc_link"]["type"] == "symlink"
    assert result["truncated"] is False


def test_list_dir_caps_entries_with_a_note(tools: Tools, workspace: Path) -> None:
    many = workspace / "many"
    many.mkdir()
    for i in range(MAX_ENTRIES + 5):
        (many / f"f{i:05}").touch()
    result = tools.ok("list_dir", path="many")
    assert len(result["entries"]) == MAX_ENTRIES
    assert result["truncated"] is True
    assert str(MAX_ENTRIES + 5) in result["note"]


@pytest.mark.usefixtures("tree")
@pytest.mark.parametrize("path", ["..", "/etc", "etc_link"])
def test_list_dir_stays_inside(tools: Tools, path: str) -> None:
    assert "outside the workspace" in str(tools.fails("list_dir", path=path))


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("**/*.py", ["a.py", "src/a.py", "src/x/y/a.py"], ["a.pyc", "src/a.txt"]),
        ("src/*.py", ["src/a.py"], ["src/x/a.py", "a.py"]),
        ("src/**", ["src/a", "src/x/y"], ["srcx/a"]),
        ("[ab]?.txt", ["a1.txt", "bz.txt"], ["c1.txt", "a/1.txt"]),
        ("[!a]*", ["b", "zz"], ["a", "ab"]),
    ],
)
def test_glob_translation(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = compile_glob(pattern)
    assert all(regex.fullmatch(m) for m in matches)
    assert not any(regex.fullmatch(m) for m in misses)


@pytest.mark.usefixtures("tree")
def test_glob_finds_files_without_following_links(tools: Tools) -> None:
    assert tools.ok("glob", pattern="**/*.py")["matches"] == ["src/main.py", "src/pkg/util.py"]
    assert tools.ok("glob", pattern="*.py", path="src/pkg")["matches"] == ["src/pkg/util.py"]
    everything = tools.ok("glob", pattern="**")["matches"]
    assert "src/pkg/" in everything
    assert "etc_link" in everything  # the link itself is listed ...
    assert not any(m.startswith("etc_link/") for m in everything)  # ... but never entered


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", "a/../../b"])
def test_glob_refuses_patterns_that_climb_out(tools: Tools, pattern: str) -> None:
    assert "bad glob" in str(tools.fails("glob", pattern=pattern))


def test_glob_caps_matches_with_a_note(tools: Tools, workspace: Path) -> None:
    for i in range(MAX_ENTRIES + 1):
        (workspace / f"f{i:05}.txt").touch()
    result = tools.ok("glob", pattern="*.txt")
    assert len(result["matches"]) == MAX_ENTRIES
    assert result["truncated"] is True
    assert "narrow" in result["note"]


@pytest.mark.usefixtures("tree")
def test_grep_reports_path_line_text(tools: Tools) -> None:
    result = tools.ok("grep", pattern=r"hel+o")
    assert result["matches"] == [
        "src/main.py:2:print('hello')",
        "src/pkg/util.py:2:    return 'hello'",
    ]
    assert result["truncated"] is False


@pytest.mark.usefixtures("tree")
def test_grep_filters_by_glob_and_path(tools: Tools) -> None:
    assert tools.ok("grep", pattern="(?i)hello", glob="*.md")["matches"] == ["README.md:1:# Hello"]
    assert tools.ok("grep", pattern="def", path="src/pkg")["matches"] == [
        "src/pkg/util.py:1:def helper():"
    ]
    assert tools.ok("grep", pattern="import", path="src/main.py")["matches"] == [
        "src/main.py:1:import os"
    ]


@pytest.mark.usefixtures("tree")
def test_grep_skips_binary_files_and_symlinks(tools: Tools) -> None:
    assert tools.ok("grep", pattern="root")["matches"] == []  # /etc/passwd stays unread
    assert tools.ok("grep", pattern="world")["matches"] == []  # data.bin is binary


@pytest.mark.usefixtures("tree")
@pytest.mark.parametrize("path", ["/etc", "../", "passwd_link"])
def test_grep_stays_inside(tools: Tools, path: str) -> None:
    assert "outside the workspace" in str(tools.fails("grep", pattern="root", path=path))


def test_grep_explains_a_bad_regex(tools: Tools) -> None:
    assert "invalid regular expression" in str(tools.fails("grep", pattern="(unclosed"))


def test_grep_caps_lines_with_a_note(workspace: Path) -> None:
    tools = Tools(workspace, replace(LIMITS, tool_output_bytes=1024 * 1024))
    (workspace / "many.txt").write_text("match\n" * (MAX_ENTRIES + 10))
    result = tools.ok("grep", pattern="match")
    assert len(result["matches"]) == MAX_ENTRIES
    assert result["truncated"] is True
    assert "narrow" in result["note"]


def test_grep_caps_output_bytes_with_a_note(tools: Tools, workspace: Path) -> None:
    (workspace / "many.txt").write_text("match\n" * 500)
    result = tools.ok("grep", pattern="match")
    assert 0 < len("\n".join(result["matches"]).encode()) <= LIMITS.tool_output_bytes
    assert result["matches"][-1] == f"many.txt:{len(result['matches'])}:match"
    assert result["truncated"] is True


def test_grep_caps_long_lines(tools: Tools, workspace: Path) -> None:
    (workspace / "long.txt").write_text("needle " + "x" * 10_000 + "\n")
    (line,) = tools.ok("grep", pattern="needle")["matches"]
    assert line.startswith("long.txt:1:needle x")
    assert line.endswith("…")
    assert len(line) < 600
