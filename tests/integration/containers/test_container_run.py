"""A run in the container flavor, end to end: input file in, tool steps, output file out, and
the container gone when the terminal line is written."""

from __future__ import annotations

from actana.runs.chain import verify_run_dir
from actana.sandboxes.docker_config import LABEL_RUN
from tests.integration.runs.conftest import assert_well_formed


def test_a_container_run_reads_inputs_runs_tools_and_returns_outputs(
    container_runner, docker_client
):
    script = [
        {
            "tool_calls": [
                {
                    "name": "bash",
                    "args": {
                        "command": "id -u; cat assets/in.txt; echo made > assets/out.txt; "
                        "grep -c docker /proc/1/cgroup || true"
                    },
                }
            ]
        },
        {"text": "done"},
    ]
    agent = container_runner.agent(script)
    run = container_runner.start(agent, files={"in.txt": b"hello from the host"})
    final = container_runner.wait(run["id"])
    assert final["status"] == "succeeded", final
    assert final["sandbox_backend"] == "docker"
    assert final["isolation"].startswith("docker(")
    lines = container_runner.stored(run)
    assert_well_formed(lines)
    assert verify_run_dir(container_runner.run_dir(run)).ok
    step = next(line for line in lines if line["type"] == "step" and line["status"] != "running")
    assert step["status"] == "succeeded", step
    uid, text = step["result"]["stdout"].split("\n", 1)
    assert text.startswith("hello from the host")
    assert int(uid) >= 300_000  # a uid of its own: not root, not the image's user
    files = container_runner.tenant.client.get(
        container_runner.tenant.path(f"/runs/{run['id']}/files")
    ).json()
    assert sorted(f["name"] for f in files) == ["in.txt", "out.txt"], files
    left = docker_client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run['id']}"})
    assert left == [], "the run's container outlived its terminal line"
