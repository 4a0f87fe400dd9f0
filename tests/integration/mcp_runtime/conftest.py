"""Fixtures for runs with stdio MCP servers: the runs fixtures, plus a sandbox image that also
carries `mcp-server-time` (the reference MCP server, from PyPI) under a tag of its own, so that
it never fights over the default test image."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import pytest

from actana.exceptions import ActanaError
from actana.settings import Settings
from tests.conftest import IMAGE_TAG, LiveServer, _default_settings, _docker_missing, make_tenant
from tests.integration.runs.conftest import Runner

TIME_PACKAGE = "mcp-server-time"


def _time_tag() -> str:
    return f"{IMAGE_TAG or _default_settings().sandbox_image_tag}-time"


@pytest.fixture(scope="session")
def time_image(docker_client: docker.DockerClient) -> str:
    """The sandbox image with the mcp SDK and mcp-server-time, built if missing or stale."""
    from actana.sandboxes.docker_image import build_image

    settings = Settings(_env_file=None, sandbox_image_tag=_time_tag())
    try:
        return build_image(settings, docker_client, packages=[TIME_PACKAGE]).ref
    except ActanaError as exc:
        _docker_missing(f"the sandbox image with {TIME_PACKAGE} cannot be built: {exc.message}")


class McpRunner(Runner):
    def __init__(self, context: Any, tenant: Any, flavor: str) -> None:
        super().__init__(context, tenant)
        self.flavor = flavor

    def mcp_server(self, name: str, command: str, *args: str, **env: str) -> str:
        t = self.tenant
        body = {"name": name, "transport": "stdio", "command": command, "args": list(args)}
        r = t.client.post(t.path("/mcp-servers"), json={**body, "env": env})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def agent(self, script: list[dict[str, Any]], **fields: Any) -> str:
        return super().agent(script, **{"sandbox_flavor": self.flavor, **fields})


@pytest.fixture
def native_runner(context, worker_server: LiveServer) -> Iterator[McpRunner]:
    tenant = make_tenant(context, worker_server, "mcp-native")
    yield McpRunner(context, tenant, "native")
    tenant.client.close()


@pytest.fixture
def _time_image_settings(monkeypatch: pytest.MonkeyPatch, time_image: str) -> None:
    """Runs of this test use the image with mcp-server-time (set before the server starts)."""
    monkeypatch.setenv("ACTANA_SANDBOX_IMAGE_TAG", time_image.rsplit(":", 1)[1])


@pytest.fixture
def container_runner(
    _time_image_settings, context, worker_server: LiveServer
) -> Iterator[McpRunner]:
    tenant = make_tenant(context, worker_server, "mcp-container")
    yield McpRunner(context, tenant, "container")
    tenant.client.close()
