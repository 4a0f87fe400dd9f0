"""Fixtures for network-policy runs: a server whose egress proxy may reach loopback (the
deployment setting `egress_allowed_networks`), a local HTTP origin on loopback, and runners for
both sandbox flavors."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from actana.settings import Settings
from tests.conftest import LiveServer, make_tenant
from tests.integration.containers.conftest import ContainerRunner
from tests.integration.runs.conftest import Runner

ORIGIN_BODY = "hello-from-origin"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, master_key: str) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        master_key=SecretStr(master_key),
        egress_allowed_networks=["127.0.0.0/8"],
    )


class _Origin(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"<html><title>Origin</title><body><p>{ORIGIN_BODY}</p></body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def origin() -> Iterator[int]:
    """An HTTP server on the host's loopback; its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


class NetworkRunner(Runner):
    flavor = "native"

    def environment(self, policy: str, domains: list[str] | None = None) -> str:
        t = self.tenant
        name = f"net{len(t.client.get(t.path('/environments')).json()['items'])}"
        body = {"name": name, "network_policy": policy, "allowed_domains": domains or []}
        r = t.client.post(t.path("/environments"), json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def agent(self, script: list[dict[str, Any]], **fields: Any) -> str:
        return super().agent(script, **{"sandbox_flavor": self.flavor, **fields})


class ContainerNetworkRunner(NetworkRunner, ContainerRunner):
    flavor = "container"


@pytest.fixture(params=["native", "container"])
def net_runner(request: pytest.FixtureRequest, context, worker_server: LiveServer) -> Iterator[Any]:
    if request.param == "container":
        image = request.getfixturevalue("sandbox_image")
        assert context.settings.sandbox_image == image
    tenant = make_tenant(context, worker_server, f"net-{request.param}")
    cls = ContainerNetworkRunner if request.param == "container" else NetworkRunner
    yield cls(context, tenant)
    tenant.client.close()
