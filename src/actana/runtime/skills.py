"""The agent's skills inside the sandbox: where their files are, which ones are usable, and the
part of the system prompt that tells the model about them.

Progressive disclosure: the model is told each skill's name and description only; it loads a
body with the `skill` tool (actana.runtime.tools.skill) when a task calls for it.

A bundle's files were written by the trusted side, read-only, into `skills/<name>/` of the run
channel's directory (the directory of the channel socket) before this process started. A bundle
the trusted side refused (a file not matching its recorded sha256) has no folder there: such a
skill is left out of the run, so the model is never pointed at files that are not there.
"""

from __future__ import annotations

import re
from pathlib import Path

from actana.protocol.payloads import CHANNEL_SKILLS_DIR, SkillSpec

_UNIX_PREFIX = "unix:"
_DESCRIPTION_CHARS = 1024
_WHITESPACE = re.compile(r"\s+")


def skills_root(channel_address: str) -> str | None:
    """The folder holding the materialised bundles, from the `ACTANA_CHANNEL` address.

    Returns:
        `<directory of the socket>/skills` for a `unix:` address; None for any other channel
        (no directory is shared with the trusted side, so no bundle can be there).
    """
    if not channel_address.startswith(_UNIX_PREFIX):
        return None
    socket_path = Path(channel_address[len(_UNIX_PREFIX) :])
    if not socket_path.is_absolute():
        return None
    return str(socket_path.parent / CHANNEL_SKILLS_DIR)


def skill_folder(skills_root: str, name: str) -> str:
    """Where skill `name`'s files are, as the sandbox sees them."""
    return str(Path(skills_root) / name)


def usable_skills(
    skills: list[SkillSpec], skills_root: str | None
) -> tuple[list[SkillSpec], list[str]]:
    """Split the config's skills into those the run can use and the bundles that are missing.

    Single-file skills are always usable (their body is in the config). A bundle is usable only
    when its folder exists: the trusted side leaves out a bundle it refused.

    Returns:
        (usable skills in the config's order, names of the bundles left out).
    """
    usable: list[SkillSpec] = []
    missing: list[str] = []
    for skill in skills:
        materialised = skills_root is not None and Path(skills_root, skill.name).is_dir()
        if not skill.files or materialised:
            usable.append(skill)
        else:
            missing.append(skill.name)
    return usable, missing


def _one_line(text: str) -> str:
    line = _WHITESPACE.sub(" ", text).strip()
    if len(line) > _DESCRIPTION_CHARS:
        line = line[: _DESCRIPTION_CHARS - 3] + "..."
    return line


def system_prompt_section(skills: list[SkillSpec], skills_root: str | None) -> str:
    """The paragraph appended to the agent's system prompt; empty when there are no skills.

    Args:
        skills: the usable skills (see `usable_skills`).
        skills_root: the folder of the bundles, as the sandbox sees it.
    """
    if not skills:
        return ""
    lines = [
        "# Skills",
        "",
        "Skills are packaged instructions for particular tasks, some with scripts and data "
        "files. Only their names and descriptions are listed here. Before starting a task that "
        "a skill covers, load it with the `skill` tool (argument `name`) and follow its "
        "instructions.",
        "",
    ]
    bundles = False
    for skill in skills:
        entry = f"- `{skill.name}`: {_one_line(skill.description)}"
        if skill.files and skills_root is not None:
            bundles = True
            entry += f" (files in {skill_folder(skills_root, skill.name)}/)"
        lines.append(entry)
    if bundles:
        example = skill_folder(str(skills_root), "<name>")
        lines += [
            "",
            f"A skill's files are read-only, in {example}/. Run its scripts with the `bash` "
            f"tool from that folder (for example `cd {example} && bash scripts/run.sh`) and "
            "write anything you produce into the workspace, never into the skill's folder. "
            "The `skill` tool with `file` reads another text file of a skill.",
        ]
    return "\n".join(lines)
