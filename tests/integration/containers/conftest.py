"""Fixtures for runs in the container flavor: the runs fixtures, with agents whose sandbox is a
Docker container built from the real sandbox image."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LiveServer, make_tenant
from tests.integration.runs.conftest import Runner


class ContainerRunner(Runner):
    def agent(self, script: list[dict[str, Any]], **fields: Any) -> str:
        """A container-flavor agent whose model plays `script`."""
        return super().agent(script, **{"sandbox_flavor": "container", **fields})


@pytest.fixture
def container_runner(context, worker_server: LiveServer, sandbox_image: str) -> Iterator[Runner]:
    assert context.settings.sandbox_image == sandbox_image
    tenant = make_tenant(context, worker_server, "containers")
    yield ContainerRunner(context, tenant)
    tenant.client.close()


def runner_of_flavor(
    request: pytest.FixtureRequest, context: Any, worker_server: LiveServer, name: str
) -> Iterator[Runner]:
    """For a fixture parametrized with "native" and "container": a runner whose agents use the
    native sandbox, or a Docker container of the real image (skips, or fails in CI, without
    Docker)."""
    if request.param == "container":
        request.getfixturevalue("sandbox_image")
        runner_class: type[Runner] = ContainerRunner
    else:
        runner_class = Runner
    tenant = make_tenant(context, worker_server, f"{name}-{request.param}")
    yield runner_class(context, tenant)
    tenant.client.close()
