"""A skill bundle reaches a warm container too: its folder is mirrored into the directory the
container was started with, before the run takes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LiveServer, make_tenant
from tests.integration.containers.conftest import ContainerRunner
from tests.integration.runs.conftest import wait_until
from tests.integration.skills.test_skill_runs import load_and_run_hello


@pytest.fixture
def settings(settings: Any) -> Any:
    settings.container_warm_pool = 1
    return settings


@pytest.fixture
def warm_runner(context: Any, sandbox_image: str) -> Iterator[ContainerRunner]:
    server = LiveServer(context, workers=1)
    server.start()
    tenant = make_tenant(context, server, "skills-warm")
    try:
        yield ContainerRunner(context, tenant)
    finally:
        tenant.client.close()
        server.stop()


def _containers(docker_client: Any, context: Any) -> set[str]:
    from actana.sandboxes.docker_config import LABEL

    scope = context.docker_backend.scope
    found = docker_client.api.containers(all=True, filters={"label": f"{LABEL}={scope}"})
    return {c["Id"] for c in found if c["State"] == "running"}


def test_a_warm_container_gets_the_skill_folder(
    warm_runner: ContainerRunner, docker_client: Any, context: Any
) -> None:
    warm = wait_until(lambda: _containers(docker_client, context), 60, "a warm container")
    final = load_and_run_hello(warm_runner)
    assert final["sandbox_backend"] == "docker"
    assert warm - _containers(docker_client, context), "the run did not take the warm container"
    # Let the pool refill before the worker stops, so that no refill races the shutdown.
    wait_until(lambda: _containers(docker_client, context) - warm, 60, "the pool to refill")
