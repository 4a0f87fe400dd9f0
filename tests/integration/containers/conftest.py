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
