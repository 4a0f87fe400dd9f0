"""The `skill` tool and the skills part of the system prompt, inside the sandbox."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from actana.protocol.payloads import RunLimits, SkillFileSpec, SkillSpec
from actana.runtime.skills import skills_root, system_prompt_section, usable_skills
from actana.runtime.tools.base import Invocation, ToolContext, ToolError, check_args
from actana.runtime.tools.skill import tools

LIMITS = RunLimits(deadline_ms=0, tool_timeout_sec=30, read_file_bytes=2048)
SCRIPT = b"#!/bin/bash\necho hello\n"
NOTES = b"line one\nline two\n"


def _spec(path: str, data: bytes, executable: bool = False) -> SkillFileSpec:
    return SkillFileSpec(path, len(data), hashlib.sha256(data).hexdigest(), executable)


BUNDLE = SkillSpec(
    name="hello",
    description="Says hello\nwith a script",
    body="# Hello\nRun scripts/hello.sh with bash.\n",
    content_hash="h",
    files=[
        _spec("SKILL.md", b"# Hello\n"),
        _spec("data/notes.txt", NOTES),
        _spec("data/blob.bin", b"\0\1\2"),
        _spec("data/big.txt", b"x" * 5000),
        _spec("scripts/hello.sh", SCRIPT, executable=True),
    ],
)
PLAIN = SkillSpec(name="plain", description="Just text", body="Do it this way.", content_hash="p")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A skills root holding the `hello` bundle, as the trusted side writes it."""
    folder = tmp_path / "skills" / "hello"
    for path, data in {
        "SKILL.md": b"# Hello\n",
        "data/notes.txt": NOTES,
        "data/blob.bin": b"\0\1\2",
        "data/big.txt": b"x" * 5000,
        "scripts/hello.sh": SCRIPT,
    }.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    return tmp_path / "skills"


def call(root: Path | None, **args: Any) -> dict[str, Any]:
    tool = tools(LIMITS)[0]
    assert check_args(tool, args) == []
    context = ToolContext(skills=[BUNDLE, PLAIN], skills_root=str(root) if root else None)
    return tool.function(Invocation("/nonexistent", args, 30, tool.output_cap, context))


def fails(root: Path | None, **args: Any) -> str:
    with pytest.raises(ToolError) as caught:
        call(root, **args)
    return str(caught.value)


def test_the_tool_is_named_skill_and_takes_a_name_and_an_optional_file() -> None:
    (tool,) = tools(LIMITS)
    assert tool.name == "skill"
    assert tool.parameters["required"] == ["name"]
    assert check_args(tool, {}) == ["missing required argument 'name'"]
    assert check_args(tool, {"name": "x", "path": "y"})  # unknown argument


def test_a_single_file_skill_gives_its_body_only(root: Path) -> None:
    assert call(root, name="plain") == {"name": "plain", "body": "Do it this way."}


def test_a_bundle_gives_its_body_folder_and_files(root: Path) -> None:
    result = call(root, name="hello")
    assert result["body"] == BUNDLE.body
    assert result["folder"] == str(root / "hello")
    files = {f["path"]: f for f in result["files"]}
    assert files["scripts/hello.sh"] == {
        "path": "scripts/hello.sh",
        "size": len(SCRIPT),
        "executable": True,
    }
    assert files["data/notes.txt"]["executable"] is False
    assert "bash" in result["note"]


def test_an_unknown_skill_lists_the_available_ones(root: Path) -> None:
    message = fails(root, name="../hello")
    assert "no skill named '../hello'" in message
    assert "hello, plain" in message


def test_another_file_of_a_bundle_can_be_read(root: Path) -> None:
    result = call(root, name="hello", file="data/notes.txt")
    assert result == {"name": "hello", "file": "data/notes.txt", "content": NOTES.decode()}


@pytest.mark.parametrize("path", ["../hello/data/notes.txt", "/etc/passwd", "data", "nope.txt"])
def test_only_listed_files_can_be_read(root: Path, path: str) -> None:
    message = fails(root, name="hello", file=path)
    assert "has no file" in message
    assert "scripts/hello.sh" in message  # tells the model what it can read instead


def test_a_listed_file_replaced_by_a_link_out_is_refused(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    target = root / "hello" / "data" / "notes.txt"
    target.unlink()
    target.symlink_to(secret)
    assert "outside the skill's folder" in fails(root, name="hello", file="data/notes.txt")


def test_binary_and_big_files(root: Path) -> None:
    assert "binary file" in fails(root, name="hello", file="data/blob.bin")
    big = call(root, name="hello", file="data/big.txt")
    assert big["truncated"] is True
    assert big["content"].startswith("x" * 2048)
    assert "5000 bytes in total" in big["content"]


def test_file_of_a_single_file_skill_is_explained(root: Path) -> None:
    assert "single SKILL.md" in fails(root, name="plain", file="SKILL.md")


def test_a_long_body_is_cut_with_a_marker(root: Path) -> None:
    long = SkillSpec(name="long", description="d", body="é" * 3000, content_hash="l")
    tool = tools(LIMITS)[0]
    context = ToolContext(skills=[long])
    result = tool.function(Invocation("/", {"name": "long"}, 30, tool.output_cap, context))
    assert result["body_truncated"] is True
    assert result["body"].startswith("é" * 1024)
    assert "6000 bytes in total" in result["body"]


def test_skills_root_is_next_to_the_channel_socket() -> None:
    assert skills_root("unix:/run/actana/channel.sock") == "/run/actana/skills"
    assert skills_root("http://127.0.0.1:8000") is None
    assert skills_root("unix:relative.sock") is None


def test_bundles_without_a_folder_are_left_out(root: Path) -> None:
    missing = SkillSpec("gone", "refused bundle", "b", "g", [_spec("SKILL.md", b"b")])
    usable, left_out = usable_skills([BUNDLE, missing, PLAIN], str(root))
    assert [s.name for s in usable] == ["hello", "plain"]
    assert left_out == ["gone"]
    usable, left_out = usable_skills([BUNDLE, PLAIN], None)
    assert [s.name for s in usable] == ["plain"]
    assert left_out == ["hello"]


def test_system_prompt_lists_names_and_descriptions_not_bodies(root: Path) -> None:
    section = system_prompt_section([BUNDLE, PLAIN], str(root))
    assert "- `hello`: Says hello with a script" in section  # one line per skill
    assert "- `plain`: Just text" in section
    assert "Run scripts/hello.sh" not in section  # bodies only through the tool
    assert "`skill` tool" in section
    assert f"{root}{os.sep}hello/" in section
    assert "`bash`" in section
    assert system_prompt_section([], str(root)) == ""
    assert "read-only" not in system_prompt_section([PLAIN], None)  # no bundle, no folder talk
