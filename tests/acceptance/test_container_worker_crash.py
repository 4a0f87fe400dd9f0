"""A real `actana worker` process driving a container run is killed with SIGKILL: it runs no
cleanup, so the run stays `running` and its container lives on. What ends both is the reaper,
either when a worker starts again or when an operator runs `actana sandbox cleanup`: the run is
failed with the dead-worker error (its stream closed and verifiable) and the container is gone,
with every process of it.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from actana.runs.recovery import DEAD_WORKER
from actana.sandboxes.docker_config import LABEL_RUN
from tests.acceptance.conftest import Cli, free_port, wait_ready, workspace_with_agent
from tests.integration.runs.conftest import marked_processes, wait_until

# The reaper fails a run whose worker is silent this long (or, on the same host, whose process
# is gone); the API server runs no worker of its own, so only the worker processes act.
ENV = {"ACTANA_WORKERS": "0", "ACTANA_WORKER_STALE_AFTER_SEC": "2"}


def _worker(cli: Cli) -> subprocess.Popen[str]:
    """A standalone worker; returns once it has reaped and claims runs (it says so)."""
    process = cli.popen("worker", "--count", "1", **ENV)
    assert process.stdout is not None
    line = process.stdout.readline()  # printed after the start-up sweep
    if "running" not in line:
        process.kill()
        _, err = process.communicate(timeout=30)
        raise AssertionError(f"the worker did not start: {line!r} {err[-2000:]}")
    return process


def _stop(process: subprocess.Popen[str] | None) -> str:
    """End a process of ours (SIGTERM, then SIGKILL); its stderr."""
    if process is None:
        return ""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate(timeout=30)
    return str(err)


def _containers(docker_client: Any, run_id: str) -> list[dict[str, Any]]:
    return list(docker_client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"}))


@pytest.mark.docker
@pytest.mark.parametrize("recovery", ["worker_restart", "sandbox_cleanup"])
def test_a_killed_worker_leaves_no_running_run_and_no_container(
    cli, sandbox_image, docker_client, recovery
):
    marker = f"actana-crash-{secrets.token_hex(8)}"
    command = f"export ACTANA_TEST_MARK={marker}; sleep 600 & exec -a {marker} sleep 600"
    script: list[dict[str, object]] = [
        {"tool_calls": [{"name": "bash", "args": {"command": command}}]},
        {"text": "never"},
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = cli.popen("server", "--port", str(port), **ENV)
    worker = restarted = None
    client = None
    try:
        wait_ready(api, url)  # /readyz is 200 only with the daemon and the image
        client, _ws, agent = workspace_with_agent(cli, url, script, sandbox_flavor="container")
        worker = _worker(cli)
        run = client.post(f"/agents/{agent}/runs", json={"prompt": "sleep"}).json()
        with client.stream("GET", f"/runs/{run['id']}/events") as events:
            for raw in events.iter_lines():
                event = json.loads(raw)
                assert event["type"] not in ("result", "error"), event
                if event["type"] == "step" and event["status"] == "running":
                    break
        wait_until(lambda: len(marked_processes(marker)) == 2, 10, "the sandbox's two sleeps")
        (container,) = _containers(docker_client, run["id"])
        assert container["State"] == "running", container
        assert client.get(f"/runs/{run['id']}").json()["sandbox_backend"] == "docker"

        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        # Nothing of the worker ended the run or its container: that is the reaper's job.
        assert client.get(f"/runs/{run['id']}").json()["status"] == "running"
        assert [c["Id"] for c in _containers(docker_client, run["id"])] == [container["Id"]]

        if recovery == "worker_restart":
            restarted = _worker(cli)  # it reaps at start, before it claims anything
        else:
            swept = cli.run("sandbox", "cleanup", **ENV)
            assert swept.returncode == 0, swept.stderr
            assert f"failed run {run['id']}: its worker is gone" in swept.stdout, swept.stdout
            assert f"removed docker {run['id']}" in swept.stdout, swept.stdout
            assert "failed 1 orphaned run(s); removed 1 sandbox(es)" in swept.stdout

        after = client.get(f"/runs/{run['id']}").json()
        assert after["status"] == "failed", after
        assert after["error"]["code"] == "sandbox_failed", after
        assert after["error"]["message"] == DEAD_WORKER, after
        assert _containers(docker_client, run["id"]) == [], "the run's container outlived it"
        assert marked_processes(marker) == {}, "processes of the sandbox outlived it"
        containers_dir = Path(cli.env["ACTANA_DATA_DIR"]) / "containers"
        assert not (containers_dir / run["id"]).exists(), "the run's staging folder is left"
        channels = list(Path(tempfile.gettempdir()).glob(f"actana-ch-{run['id']}-*"))
        assert channels == [], "the run's channel directory outlived its worker"

        with client.stream("GET", f"/runs/{run['id']}/events") as events:
            lines = [json.loads(raw) for raw in events.iter_lines()]
        assert lines[-1]["type"] == "error", lines[-1]
        assert lines[-1]["code"] == "sandbox_failed", lines[-1]
        verified = cli.run("verify", "--run", run["id"])
        assert verified.returncode == 0, verified.stderr
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        _stop(worker)
        restarted_err = _stop(restarted)
        _stop(api)
        if client is not None:
            client.close()
    assert restarted is None or restarted.returncode == 0, restarted_err
