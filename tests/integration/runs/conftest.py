"""Fixtures for end-to-end runs: a server with workers, a tenant on it, and helpers to make a
scripted agent, start a run and read everything it produced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from actana.runs import storage
from tests.conftest import LiveServer, Tenant, make_tenant


@pytest.fixture
def runner(context, worker_server: LiveServer) -> Iterator[Runner]:
    tenant = make_tenant(context, worker_server, "runs")
    yield Runner(context, tenant)
    tenant.client.close()


@dataclass
class Runner:
    context: Any
    tenant: Tenant

    def agent(self, script: list[dict[str, Any]], **fields: Any) -> str:
        """A native-sandbox agent whose model plays `script`."""
        t = self.tenant
        name = f"agent{len(t.client.get(t.path('/agents')).json()['items'])}"
        ep = t.client.post(
            t.path("/model-endpoints"),
            json={"name": f"{name}-model", "provider": "scripted", "script": script},
        )
        assert ep.status_code == 201, ep.text
        body = {"name": name, "model_endpoint_id": ep.json()["id"], "sandbox_flavor": "native"}
        r = t.client.post(t.path("/agents"), json={**body, **fields})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def start(
        self, agent_id: str, prompt: str = "go", files: dict[str, bytes] | None = None
    ) -> dict[str, Any]:
        t = self.tenant
        if files:
            parts = [
                ("files", (name, data, "application/octet-stream")) for name, data in files.items()
            ]
            r = t.client.post(
                t.path(f"/agents/{agent_id}/runs"), data={"prompt": prompt}, files=parts
            )
        else:
            r = t.client.post(t.path(f"/agents/{agent_id}/runs"), json={"prompt": prompt})
        assert r.status_code == 202, r.text
        return dict(r.json())

    def events(self, run_id: str, after: int = -1) -> Iterator[dict[str, Any]]:
        t = self.tenant
        with t.client.stream("GET", t.path(f"/runs/{run_id}/events"), params={"after": after}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/x-ndjson")
            for line in r.iter_lines():
                yield json.loads(line)

    def wait(self, run_id: str) -> dict[str, Any]:
        """Follow the run to its terminal line; return the final run record."""
        lines = list(self.events(run_id))
        assert lines[-1]["type"] in ("result", "error"), lines[-1]
        r = self.tenant.client.get(self.tenant.path(f"/runs/{run_id}"))
        return dict(r.json())

    def run_dir(self, run: dict[str, Any]) -> Path:
        return storage.run_dir(self.context.settings, self.tenant.id, run["id"])

    def stored(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        text = (self.run_dir(run) / "stream.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]
