"""The built-in catalogue in real sandboxes: a scripted agent uses the file, search, patch, data,
archive, shell and plan tools one after another on the native sandbox and in a container of the
real image, so that each tool is known to work where agents run it (the image carries what the
tools import, the workspace paths agree), not only in the unit tests' in-process runtime."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.integration.containers.conftest import ContainerRunner, runner_of_flavor
from tests.integration.runs.conftest import Runner, assert_well_formed, finished_steps

CONFIG = {"items": [{"id": "a1", "on": True}, {"id": "b2", "on": False}]}
TABLE = b"name,qty\napple,3\npear,5\nplum,7\n"
PATCH = "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+patched\n"


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


# One model turn per list; several calls in a turn run in order.
TURNS: list[list[dict[str, Any]]] = [
    [
        call("todo", items=[{"id": "1", "text": "try every tool", "status": "in_progress"}]),
        call("write_file", path="notes/a.txt", content="alpha\nbeta\n"),
        call("json_query", path="assets/config.json", query=".items[].id"),
        call("read_table", path="assets/data.csv", offset=2, limit=2),
    ],
    [
        call("multi_edit", path="notes/a.txt", edits=[{"old": "alpha", "new": "ALPHA"}]),
        call("edit_file", path="notes/a.txt", old="beta", new="BETA"),
        call("diff_files", a="notes/a.txt", text="alpha\nbeta\n"),
        call("apply_patch", patch=PATCH),
        call("read_file", path="new.txt"),
    ],
    [
        call("archive", action="create", archive="out/bundle.tar.gz", paths=["notes", "new.txt"]),
        call("archive", action="list", archive="out/bundle.tar.gz"),
        call("archive", action="extract", archive="out/bundle.tar.gz", destination="unpacked"),
    ],
    [
        call("tree", path="unpacked"),
        call("glob", pattern="**/*.txt", path="unpacked"),
        call("grep", pattern="^ALPHA$", path="unpacked"),
        call("file_info", path="unpacked/notes/a.txt"),
        call("list_dir", path="unpacked"),
    ],
    [
        call("move_path", source="unpacked/new.txt", destination="moved.txt"),
        call("delete_path", path="unpacked", recursive=True),
        call("python", code="import os; print(sorted(os.listdir('.')))"),
        call("bash", command="cat moved.txt notes/a.txt"),
        call("finish", message="every tool ran"),
    ],
]


@pytest.fixture(params=["native", "container"])
def flavor_runner(
    request: pytest.FixtureRequest, context: Any, worker_server: LiveServer
) -> Iterator[Runner]:
    yield from runner_of_flavor(request, context, worker_server, "catalogue")


def test_the_catalogue_works_in_both_sandboxes(flavor_runner: Runner) -> None:
    agent = flavor_runner.agent([{"tool_calls": turn} for turn in TURNS])
    files = {"config.json": json.dumps(CONFIG).encode(), "data.csv": TABLE}
    final = flavor_runner.wait(flavor_runner.start(agent, files=files)["id"])
    assert final["status"] == "succeeded", final
    lines = flavor_runner.stored(final)
    assert_well_formed(lines)
    steps = finished_steps(lines)
    failed = [(s["name"], s.get("error")) for s in steps if s["status"] != "succeeded"]
    assert failed == []
    assert [s["name"] for s in steps] == [c["name"] for turn in TURNS for c in turn]
    calls = [c for turn in TURNS for c in turn]
    by_call = {
        f"{c['name']}:{i}": s["result"] for i, (c, s) in enumerate(zip(calls, steps, strict=True))
    }

    queried = json.dumps(by_call["json_query:2"])
    assert "a1" in queried
    assert "b2" in queried
    table = json.dumps(by_call["read_table:3"])
    assert "pear" in table
    assert "apple" not in table  # offset 2 skips the first row
    assert "-ALPHA\n-BETA\n+alpha\n+beta\n" in by_call["diff_files:6"]["diff"]
    assert "patched" in json.dumps(by_call["read_file:8"])
    assert by_call["archive:11"]["files"] == 2
    assert "ALPHA" in json.dumps(by_call["grep:14"])
    expected = hashlib.sha256(b"ALPHA\nBETA\n").hexdigest()
    assert by_call["file_info:15"]["sha256"] == expected
    listing = by_call["python:19"]["stdout"]
    assert "'moved.txt'" in listing
    assert "'unpacked'" not in listing
    assert by_call["bash:20"]["stdout"] == "patched\nALPHA\nBETA\n"
    backend = "docker" if isinstance(flavor_runner, ContainerRunner) else "native"
    assert final["sandbox_backend"] == backend
    assert final["message"] == "every tool ran"
