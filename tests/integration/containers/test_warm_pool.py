"""The warm pool: containers started ahead of any run, personalised only by the handover (no
token or file baked in), each used by exactly one run, refilled, and removed with the worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actana.sandboxes.docker_config import LABEL, LABEL_RUN, LABEL_WORKER
from tests.conftest import LiveServer, make_tenant
from tests.integration.containers.conftest import ContainerRunner
from tests.integration.runs.conftest import wait_until

POOL = 2


@pytest.fixture
def settings(settings):
    settings.container_warm_pool = POOL
    return settings


@pytest.fixture
def pooled(context, sandbox_image: str) -> Iterator[tuple[ContainerRunner, LiveServer]]:
    server = LiveServer(context, workers=1)
    server.start()
    tenant = make_tenant(context, server, "pool")
    try:
        yield ContainerRunner(context, tenant), server
    finally:
        tenant.client.close()
        server.stop()


def _ours(docker_client, context) -> list[dict[str, Any]]:
    # One listing call: the SDK's high-level list() inspects each container afterwards and
    # fails on one removed in between.
    scope = context.docker_backend.scope
    return docker_client.api.containers(all=True, filters={"label": f"{LABEL}={scope}"})


def _warm(docker_client, context) -> dict[str, dict[str, Any]]:
    """Started containers given to no run yet (a taken one is renamed after its run)."""
    return {
        c["Id"]: c
        for c in _ours(docker_client, context)
        if c["Labels"].get(LABEL_RUN) == ""
        and c["State"] == "running"
        and not any(name.startswith("/actana-run") for name in c["Names"])
    }


def test_runs_take_warm_containers_once_and_the_pool_refills(pooled, docker_client, context):
    runner, _ = pooled
    first = wait_until(
        lambda: (w := _warm(docker_client, context)) and len(w) == POOL and w,
        30,
        f"{POOL} warm containers",
    )
    for container_id in first:
        config = docker_client.api.inspect_container(container_id)["Config"]
        baked = " ".join(config["Env"] + config["Cmd"] + list(config["Labels"].values()))
        assert "OTP" not in baked, f"a warm container holds a token: {baked}"
        assert "otp_" not in baked, f"a warm container holds a token: {baked}"
        assert config["Labels"][LABEL_WORKER], "a warm container must name its worker"

    agent = runner.agent([{"tool_calls": [{"name": "bash", "args": {"command": "echo hi"}}]},
                          {"text": "done"}])  # fmt: skip
    used: set[str] = set()
    for _ in range(3):
        before = set(_warm(docker_client, context))
        run = runner.start(agent)
        final = runner.wait(run["id"])
        assert final["status"] == "succeeded", final
        assert final["sandbox_backend"] == "docker"
        taken = before - {c["Id"] for c in _ours(docker_client, context)}
        assert len(taken) == 1, (
            f"the run should have used (and removed) one warm container: {taken}"
        )
        assert not taken & used, "a warm container was used twice"
        used |= taken
        wait_until(lambda: len(_warm(docker_client, context)) == POOL, 30, "the pool to refill")


def test_stopping_the_worker_removes_its_warm_containers(context, docker_client, sandbox_image):
    server = LiveServer(context, workers=1)
    server.start()
    try:
        wait_until(lambda: len(_warm(docker_client, context)) == POOL, 30, "warm containers")
    finally:
        server.stop()
    assert _ours(docker_client, context) == []
