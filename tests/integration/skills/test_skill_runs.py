"""Skills in real runs, on the native sandbox and in a container: a bundle uploaded through the
API is loaded with the `skill` tool, its script runs through `bash`, its files are read-only with
the recorded hashes, and a bundle tampered with in the database never reaches the sandbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from actana.db.models import SkillFile
from tests.integration.containers.conftest import ContainerRunner
from tests.integration.runs.conftest import Runner, assert_well_formed, finished_steps
from tests.integration.skills.conftest import NOTES, upload_bundle

# The skills folder is next to the channel socket, wherever the backend put it.
SKILLS = '"$(dirname "${ACTANA_CHANNEL#unix:}")/skills"'
FOLDER = f"{SKILLS}/hello-skill"

PROBE = (
    f"cd {FOLDER} && bash scripts/hello.sh"
    " && stat -c '%a %F %n' . scripts scripts/hello.sh data data/notes.txt SKILL.md"
    " && sha256sum scripts/hello.sh data/notes.txt"
    f' && echo "links: $(find . -type l | wc -l)"'
)
# Each attempt prints WROTE only if it succeeded.
WRITES = (
    f"cd {FOLDER}; echo pwned > data/notes.txt && echo WROTE-1; touch new.txt && echo WROTE-2; "
    "chmod 777 scripts/hello.sh && echo WROTE-3; mkdir ../evil && echo WROTE-4; "
    "rm SKILL.md && echo WROTE-5; true"
)


def _by_name(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    steps: dict[str, list[dict[str, Any]]] = {}
    for step in finished_steps(lines):
        steps.setdefault(step["name"], []).append(step)
    return steps


def test_agent_loads_a_skill_and_runs_its_script(skill_runner: Runner) -> None:
    final = load_and_run_hello(skill_runner)
    container = isinstance(skill_runner, ContainerRunner)
    assert final["sandbox_backend"] == ("docker" if container else "native")


def load_and_run_hello(skill_runner: Runner) -> dict[str, Any]:
    """Upload the hello bundle, run an agent that loads it, runs its script, inspects and tries
    to change its folder, and reads one of its files; check all of it; return the run."""
    skill = upload_bundle(skill_runner.tenant, "hello-skill")
    hashes = {f["path"]: f["sha256"] for f in skill["files"]}
    script = [
        {"tool_calls": [{"name": "skill", "args": {"name": "hello-skill"}}]},
        {"tool_calls": [{"name": "bash", "args": {"command": PROBE}}]},
        {"tool_calls": [{"name": "bash", "args": {"command": WRITES}}]},
        {
            "tool_calls": [
                {"name": "skill", "args": {"name": "hello-skill", "file": "data/notes.txt"}}
            ]
        },
        {"text": "greeted"},
    ]
    agent = skill_runner.agent(script, skill_ids=[skill["id"]])
    final = skill_runner.wait(skill_runner.start(agent)["id"])
    assert final["status"] == "succeeded", final
    lines = skill_runner.stored(final)
    assert_well_formed(lines)
    steps = _by_name(lines)
    assert all(s["status"] == "succeeded" for pair in steps.values() for s in pair), steps

    loaded = steps["skill"][0]["result"]
    assert "Run scripts/hello.sh with bash" in loaded["body"]
    assert loaded["folder"].endswith("/skills/hello-skill")
    if final["sandbox_backend"] == "docker":
        assert loaded["folder"] == "/run/actana/skills/hello-skill"
    files = {f["path"]: f for f in loaded["files"]}
    assert files["scripts/hello.sh"]["executable"] is True
    assert files["data/notes.txt"]["executable"] is False

    probe = steps["bash"][0]["result"]
    assert probe["exit_code"] == 0, probe
    out = probe["stdout"].splitlines()
    assert out[0] == "hello from the skill: notes of the skill"
    assert out[1:7] == [
        "555 directory .",
        "555 directory scripts",
        "555 regular file scripts/hello.sh",
        "555 directory data",
        "444 regular file data/notes.txt",
        "444 regular file SKILL.md",
    ]
    assert out[7] == f"{hashes['scripts/hello.sh']}  scripts/hello.sh"
    assert out[8] == f"{hashes['data/notes.txt']}  data/notes.txt"
    assert out[9] == "links: 0"

    writes = steps["bash"][1]["result"]
    assert "WROTE" not in writes["stdout"], writes
    assert (
        writes["stderr"].count("Read-only file system")
        + writes["stderr"].count("Permission denied")
        >= 5
    ), writes["stderr"]

    assert steps["skill"][1]["result"]["content"] == NOTES.decode()
    return final


def test_a_tampered_bundle_is_refused_and_the_run_goes_on(skill_runner: Runner) -> None:
    good = upload_bundle(skill_runner.tenant, "hello-skill")
    bad = upload_bundle(skill_runner.tenant, "tampered-skill")
    with skill_runner.context.database.session() as session:
        session.execute(
            update(SkillFile)
            .where(SkillFile.skill_id == bad["id"], SkillFile.path == "scripts/hello.sh")
            .values(content=b"#!/bin/bash\necho owned\n")
        )
    script = [
        {"tool_calls": [{"name": "skill", "args": {"name": "tampered-skill"}}]},
        {"tool_calls": [{"name": "bash", "args": {"command": f"ls {SKILLS}"}}]},
        {"text": "carried on"},
    ]
    agent = skill_runner.agent(script, skill_ids=[bad["id"], good["id"]])
    final = skill_runner.wait(skill_runner.start(agent)["id"])
    assert final["status"] == "succeeded", final
    assert final["message"] == "carried on"
    lines = skill_runner.stored(final)
    assert_well_formed(lines)

    refusals = [line for line in lines if line["type"] == "log" and line["level"] == "error"]
    assert len(refusals) == 1, refusals
    assert "'tampered-skill'" in refusals[0]["message"]
    assert "scripts/hello.sh" in refusals[0]["message"]

    steps = _by_name(lines)
    (load,) = steps["skill"]
    assert load["status"] == "failed"
    assert "no skill named 'tampered-skill'" in load["error"]
    assert "hello-skill" in load["error"]
    assert steps["bash"][0]["result"]["stdout"].split() == ["hello-skill"]
