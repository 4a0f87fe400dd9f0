"""A container run's end: timeout and cancel remove its container within a second, and a
deployment without a usable Docker daemon or image says so, in the run and in /readyz.

Timeout and cancel follow the native tests (tests/integration/runs/test_timeout_and_cancel.py):
the bash step starts three long sleeps findable in the host's /proc by one unique marker (a
container's processes are the host's processes, in a pid namespace of their own). A thread polls
the Docker daemon for the run's container and notes the moment it is gone; that moment, against
the run's deadline or the cancel request, is what is measured. The poll can only see the
container gone late, never early, so the measure errs on the strict side.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from docker.errors import NotFound
from pydantic import SecretStr

from actana.api.context import AppContext
from actana.runs.chain import verify_run_dir
from actana.sandboxes.docker_config import LABEL_RUN
from actana.settings import Settings
from tests.conftest import LiveServer, make_tenant
from tests.integration.containers.conftest import ContainerRunner
from tests.integration.runs.conftest import (
    Runner,
    assert_no_process_left,
    assert_well_formed,
    epoch_ms,
    phase_lines,
    read_to_terminal,
    run_row,
    running_sleepers,
    sleepers_script,
    until_step_running,
)

TIMEOUT_SEC = 2
GONE_WITHIN_MS = 1000
NO_DAEMON = "unix:///nonexistent.sock"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ContainerWatch(threading.Thread):
    """Polls the daemon for one container, tightly, and notes (epoch ms) when it is gone."""

    def __init__(self, api: Any, container_id: str) -> None:
        super().__init__(daemon=True)
        self.api, self.container_id = api, container_id
        self.gone_ms: int | None = None
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self.api.inspect_container(self.container_id)
                except NotFound:
                    self.gone_ms = _now_ms()
                    return
                self.stop.wait(0.002)
        except BaseException as exc:  # reported by gone()
            self.error = exc

    def gone(self, timeout: float = 15) -> int:
        self.join(timeout)
        self.stop.set()
        if self.error is not None:
            raise self.error
        assert self.gone_ms is not None, f"container {self.container_id[:12]} is still there"
        return self.gone_ms


def _run_containers(docker_client: Any, run_id: str) -> list[dict[str, Any]]:
    return list(docker_client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"}))


def _the_container(docker_client: Any, run_id: str) -> dict[str, Any]:
    found = _run_containers(docker_client, run_id)
    assert len(found) == 1, f"want one container for run {run_id}: {found}"
    assert found[0]["State"] == "running", found[0]
    return dict(found[0])


def _check_stream(runner: Runner, run: dict[str, Any], seen: list[dict[str, Any]]) -> None:
    stored = runner.stored(run)
    assert seen == stored, "the live lines differ from the stored stream"
    assert_well_formed(stored)
    report = verify_run_dir(runner.run_dir(run))
    assert report.ok, report.reason


def _start_long_run(
    runner: ContainerRunner, docker_client: Any, marker: str, timeout_sec: int
) -> tuple[dict[str, Any], Iterator[dict[str, Any]], list[dict[str, Any]], ContainerWatch]:
    """A container run whose bash step sleeps; returns once the sleeps run, with a watch on
    its container already polling."""
    agent = runner.agent(sleepers_script(marker), timeout_sec=timeout_sec)
    run = runner.start(agent)
    lines = runner.events(run["id"])
    seen: list[dict[str, Any]] = []
    until_step_running(lines, seen)
    container = _the_container(docker_client, run["id"])
    watch = ContainerWatch(docker_client.api, container["Id"])
    watch.start()
    assert len(running_sleepers(marker)) == 3
    return run, lines, seen, watch


@pytest.mark.docker
def test_timeout_removes_the_container_within_a_second_of_the_deadline(
    container_runner, docker_client
):
    marker = f"actana-ctimeout-{secrets.token_hex(8)}"
    run, lines, seen, watch = _start_long_run(container_runner, docker_client, marker, TIMEOUT_SEC)

    terminal = read_to_terminal(lines, seen)
    assert _run_containers(docker_client, run["id"]) == [], "terminal line before the removal"
    gone = watch.gone()
    assert_no_process_left(marker, within=0.2)
    assert terminal["type"] == "error", terminal
    assert terminal["code"] == "timeout", terminal

    row = run_row(container_runner.context, run["id"])
    assert row.status == "timeout"
    assert row.error_code == "timeout"
    assert row.sandbox_backend == "docker"
    assert row.deadline_at is not None
    assert row.started_at is not None
    deadline = epoch_ms(row.deadline_at)
    assert abs(deadline - epoch_ms(row.started_at) - TIMEOUT_SEC * 1000) <= 1
    late = gone - deadline
    print(f"timeout: container gone {late} ms after the deadline")
    assert 0 <= late <= GONE_WITHIN_MS, f"the container was gone {late} ms after the deadline"

    final = container_runner.tenant.client.get(
        container_runner.tenant.path(f"/runs/{run['id']}")
    ).json()
    assert final["status"] == "timeout"
    assert final["error"]["code"] == "timeout"
    _check_stream(container_runner, final, seen)


@pytest.mark.docker
def test_cancel_removes_the_container_within_a_second_of_the_request(
    container_runner, docker_client
):
    marker = f"actana-ccancel-{secrets.token_hex(8)}"
    run, lines, seen, watch = _start_long_run(container_runner, docker_client, marker, 30)

    t = container_runner.tenant
    asked = _now_ms()
    response = t.client.post(t.path(f"/runs/{run['id']}/cancel"))
    assert response.status_code == 200, response.text
    assert response.json()["cancel_requested"] is True

    terminal = read_to_terminal(lines, seen)
    assert _run_containers(docker_client, run["id"]) == [], "terminal line before the removal"
    gone = watch.gone()
    assert_no_process_left(marker, within=0.2)
    assert terminal["type"] == "error", terminal
    assert terminal["code"] == "cancelled", terminal
    took = gone - asked
    print(f"cancel: container gone {took} ms after the request")
    assert took <= GONE_WITHIN_MS, f"the container was gone {took} ms after the cancel request"

    final = t.client.get(t.path(f"/runs/{run['id']}")).json()
    assert final["status"] == "cancelled"
    assert final["error"]["code"] == "cancelled"
    assert final["sandbox_backend"] == "docker"
    _check_stream(container_runner, final, seen)


# --- No usable Docker: the run fails in container_creation, or falls back when allowed ------


@pytest.fixture
def server_with(
    tmp_path: Path,
    database_url: str,
    master_key: str,
    build: Callable[[Settings], AppContext],
) -> Iterator[Callable[..., tuple[Runner, httpx.Client]]]:
    """`server_with(**settings)`: a server with two workers on those settings, a tenant on it
    (as a Runner whose agents are of the container flavor) and an anonymous client."""
    started: list[tuple[LiveServer, httpx.Client, httpx.Client]] = []

    def make(**overrides: Any) -> tuple[Runner, httpx.Client]:
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            database_url=database_url,
            master_key=SecretStr(master_key),
            **overrides,
        )
        context = build(settings)
        server = LiveServer(context, workers=2)
        server.start()
        tenant = make_tenant(context, server, f"ws{len(started)}")
        anonymous = httpx.Client(base_url=server.url, timeout=30)
        started.append((server, tenant.client, anonymous))
        return ContainerRunner(context, tenant), anonymous

    yield make
    for server, *clients in started:
        for client in clients:
            client.close()
        server.stop()


def _phase(lines: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (line,) = [p for p in phase_lines(lines) if p["phase"] == name]
    return line


def _failed_in_container_creation(runner: Runner) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run a one-turn container agent; it must fail in container_creation. Returns the final
    run and its stored lines."""
    run = runner.start(runner.agent([{"text": "never runs"}]))
    final = runner.wait(run["id"])
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "sandbox_failed", final
    lines = runner.stored(final)
    assert_well_formed(lines)
    report = verify_run_dir(runner.run_dir(final))
    assert report.ok, report.reason
    creation = _phase(lines, "container_creation")
    assert creation["outcome"] == "failed", creation
    before = [p for p in phase_lines(lines) if p["seq"] < creation["seq"]]
    assert all(p["outcome"] == "ok" for p in before), before
    after = [p for p in phase_lines(lines) if p["seq"] > creation["seq"]]
    assert all(p["outcome"] == "skipped" for p in after[:-1]), after  # cleanup still runs
    assert lines[-1]["code"] == "sandbox_failed"
    assert lines[-1]["message"] == final["error"]["message"]
    assert creation["message"] in final["error"]["message"] or (
        final["error"]["message"] in creation["message"]
    )
    return final, lines


def test_without_a_daemon_a_container_run_fails_in_container_creation(server_with):
    runner, anonymous = server_with(docker_url=NO_DAEMON)
    final, lines = _failed_in_container_creation(runner)
    message = final["error"]["message"]
    assert "container flavor is unavailable" in message, message
    assert "no Docker daemon reachable" in message, message
    assert "ACTANA_SANDBOX_FALLBACK_NATIVE" in message, message  # how to fix it
    assert "start a Docker daemon" in message, message
    assert final["sandbox_backend"] is None, final
    assert "sandbox container -> none" in _phase(lines, "provisioning")["message"]

    ready = anonymous.get("/readyz")
    assert ready.status_code == 503, ready.text
    docker_check = ready.json()["checks"]["sandbox_docker"]
    assert docker_check["ok"] is False, docker_check
    assert "no Docker daemon reachable" in docker_check["reason"], docker_check
    assert ready.json()["checks"]["sandbox_native"]["ok"] is True


def test_without_a_daemon_a_container_run_falls_back_to_native_when_allowed(server_with):
    runner, anonymous = server_with(docker_url=NO_DAEMON, sandbox_fallback_native=True)
    agent = runner.agent(
        [
            {"tool_calls": [{"name": "bash", "args": {"command": "echo from-the-sandbox"}}]},
            {"text": "done"},
        ]
    )
    run = runner.start(agent)
    final = runner.wait(run["id"])
    assert final["status"] == "succeeded", final
    assert final["sandbox_backend"] == "native", final
    assert final["isolation"].startswith("native"), final
    lines = runner.stored(final)
    assert_well_formed(lines)
    assert verify_run_dir(runner.run_dir(final)).ok
    provisioning = _phase(lines, "provisioning")
    assert "sandbox container -> native" in provisioning["message"], provisioning
    creation = _phase(lines, "container_creation")
    assert creation["outcome"] == "ok", creation
    for line in (provisioning, creation):
        assert "falling back to the native sandbox" in line["message"], line
        assert "no Docker daemon reachable" in line["message"], line  # and why
    step = next(s for s in lines if s["type"] == "step" and s["status"] != "running")
    assert step["result"]["stdout"] == "from-the-sandbox\n", step

    ready = anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    docker_check = ready.json()["checks"]["sandbox_docker"]
    assert docker_check["ok"] is False, docker_check
    assert "no Docker daemon reachable" in docker_check["reason"], docker_check


@pytest.mark.docker
def test_a_missing_image_fails_in_container_creation_naming_the_build_command(
    server_with, docker_client
):
    runner, anonymous = server_with(sandbox_image_tag="nope")
    final, _lines = _failed_in_container_creation(runner)
    message = final["error"]["message"]
    assert "container flavor is unavailable" in message, message
    assert "actana-sandbox:nope" in message, message
    assert "actana sandbox build-image" in message, message
    assert _run_containers(docker_client, final["id"]) == []

    ready = anonymous.get("/readyz")
    assert ready.status_code == 503, ready.text
    docker_check = ready.json()["checks"]["sandbox_docker"]
    assert docker_check["ok"] is False, docker_check
    assert "actana sandbox build-image" in docker_check["reason"], docker_check


@pytest.mark.docker
def test_an_image_without_a_configured_package_is_refused_naming_it(
    server_with, docker_client, sandbox_image
):
    # The image is current (same runtime) but was built before the operator asked for one
    # more package: running on it would fail later, inside the run, in a confusing way.
    wanted = ["mcp>=1.25,<2", "not-in-the-image==1.0"]
    runner, anonymous = server_with(sandbox_image_packages=wanted)
    final, _lines = _failed_in_container_creation(runner)
    message = final["error"]["message"]
    assert 'lacks the Python packages ["not-in-the-image==1.0"]' in message, message
    assert "actana sandbox build-image" in message, message
    assert _run_containers(docker_client, final["id"]) == []
    ready = anonymous.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert "not-in-the-image" in ready.json()["checks"]["sandbox_docker"]["reason"]
