"""The `skill` tool: loads one of the agent's skills when the model asks for it.

The system prompt lists only names and descriptions (actana.runtime.skills); this tool returns
a skill's SKILL.md body and, for a bundle, where its files are and which ones can be run. With
`file` it reads another text file of a bundle. Names and files are looked up in the run's
config, never turned into paths as given: a name or file the config does not list is refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from actana.protocol.payloads import RunLimits, SkillSpec
from actana.runtime.skills import skill_folder
from actana.runtime.tools.base import Invocation, Tool, ToolError, decode_capped, schema


def _find(invocation: Invocation) -> SkillSpec:
    name = invocation.args["name"]
    skills = invocation.context.skills
    for skill in skills:
        if skill.name == name:
            return skill
    known = ", ".join(s.name for s in skills) or "none"
    raise ToolError(f"there is no skill named {name[:100]!r}; the skills available are: {known}")


def _folder(invocation: Invocation, skill: SkillSpec) -> str:
    root = invocation.context.skills_root
    if root is None:
        raise ToolError(f"the files of skill '{skill.name}' are not available in this sandbox")
    return skill_folder(root, skill.name)


def _body(invocation: Invocation, skill: SkillSpec) -> dict[str, Any]:
    text, truncated = decode_capped(
        skill.body.encode()[: invocation.output_cap], len(skill.body.encode())
    )
    result: dict[str, Any] = {"name": skill.name, "body": text}
    if truncated:
        result["body_truncated"] = True
    if skill.files:
        folder = _folder(invocation, skill)
        result["folder"] = folder
        result["files"] = [
            {"path": f.path, "size": f.size, "executable": f.executable} for f in skill.files
        ]
        result["note"] = (
            f"The files are read-only. Run a script with bash from the folder, e.g. "
            f"`cd {folder} && bash <path>`; write outputs into the workspace."
        )
    return result


def _read_file(invocation: Invocation, skill: SkillSpec) -> dict[str, Any]:
    path = invocation.args["file"]
    if not skill.files:
        raise ToolError(
            f"skill '{skill.name}' is a single SKILL.md with no other files; call skill without "
            "`file` to read it"
        )
    if path not in {f.path for f in skill.files}:
        listed = ", ".join(f.path for f in skill.files)
        raise ToolError(f"skill '{skill.name}' has no file {path[:200]!r}; its files are: {listed}")
    folder = _folder(invocation, skill)
    full = str(Path(folder, path))
    # The folder is written by the trusted side and read-only here; still, never read through
    # a link that leads out of it.
    if not os.path.realpath(full).startswith(os.path.realpath(folder) + os.sep):
        raise ToolError(f"file {path!r} of skill '{skill.name}' leads outside the skill's folder")
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ToolError(f"cannot read {path!r} of skill '{skill.name}': {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ToolError(f"{path!r} of skill '{skill.name}' is not a regular file")
        data = handle.read(invocation.output_cap)
    if b"\0" in data:
        raise ToolError(
            f"{path!r} of skill '{skill.name}' is a binary file; inspect it with bash instead "
            f"(e.g. `file {full}`)"
        )
    content, truncated = decode_capped(data, info.st_size)
    result: dict[str, Any] = {"name": skill.name, "file": path, "content": content}
    if truncated:
        result["truncated"] = True
    return result


def load_skill(invocation: Invocation) -> dict[str, Any]:
    """The `skill` tool: a skill's body and files, or one file's text."""
    skill = _find(invocation)
    if "file" in invocation.args:
        return _read_file(invocation, skill)
    return _body(invocation, skill)


def tools(limits: RunLimits) -> list[Tool]:
    """The `skill` tool, with the run's limits applied."""
    cap = limits.read_file_bytes
    return [
        Tool(
            "skill",
            "Load one of your skills by name (the skills are listed in your instructions). "
            "Returns its instructions (the SKILL.md body) and, for a skill with files, the "
            "read-only folder they are in and each file's path, size and whether it is "
            "executable. With `file` (a path from that list) returns that text file's content "
            f"instead. Output is cut at {cap} bytes, with a truncated flag.",
            schema(
                {
                    "name": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The skill's name, as listed.",
                    },
                    "file": {
                        "type": "string",
                        "minLength": 1,
                        "description": "Optional: a file of the skill, relative to its folder.",
                    },
                },
                ["name"],
            ),
            float(limits.tool_timeout_sec),
            cap,
            load_skill,
        )
    ]
