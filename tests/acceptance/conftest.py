"""Helpers to drive the real `actana` command in subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


class Cli:
    """Runs `python -m actana ...` with a clean environment plus the given ACTANA_* settings."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env

    def environ(self, **overrides: str | None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("ACTANA_")}
        merged = {**base, **self.env}
        for key, value in overrides.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def run(
        self, *args: str, timeout: float = 120, **env: str | None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "actana", *args],
            cwd=self.cwd,
            env=self.environ(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str, **env: str | None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "actana", *args],
            cwd=self.cwd,
            env=self.environ(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def cli(tmp_path: Path, database_url: str, master_key: str) -> Cli:
    return Cli(
        tmp_path,
        {
            "ACTANA_DATA_DIR": str(tmp_path / "data"),
            "ACTANA_DATABASE_URL": database_url,
            "ACTANA_MASTER_KEY": master_key,
        },
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(cli: Cli) -> Iterator[str]:
    """A real `actana server` process; yields its base URL once /readyz answers 200."""
    port = free_port()
    process = cli.popen("server", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def wait_ready(process: subprocess.Popen[str], url: str, timeout: float = 60) -> None:
    """Poll /readyz until it answers 200 or the process exits."""
    with httpx.Client(timeout=2) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}")
            try:
                if client.get(url + "/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            try:
                process.wait(timeout=0.05)  # a bounded wait that also notices an early exit
            except subprocess.TimeoutExpired:
                continue
    raise AssertionError("server did not become ready")


def workspace_with_agent(
    cli: Cli, url: str, script: list[dict[str, object]], **agent: object
) -> tuple[httpx.Client, str, str]:
    """A workspace (via the CLI), a scripted native agent (via the API); returns a client that
    sends the key, the workspace id and the agent id."""
    import json

    created = json.loads(cli.run("workspace", "create", "acme", "--json").stdout)
    client = httpx.Client(
        base_url=f"{url}/api/v1/workspaces/{created['id']}",
        headers={"Authorization": f"Bearer {created['api_key']}"},
        timeout=60,
    )
    ep = client.post(
        "/model-endpoints", json={"name": "m", "provider": "scripted", "script": script}
    )
    assert ep.status_code == 201, ep.text
    body = {
        "name": "hello",
        "model_endpoint_id": ep.json()["id"],
        "sandbox_flavor": "native",
        **agent,
    }
    ag = client.post("/agents", json=body)
    assert ag.status_code == 201, ag.text
    return client, created["id"], ag.json()["id"]
