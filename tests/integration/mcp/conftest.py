"""A real MCP server nobody here wrote, over streamable HTTP, behind a header-checking gate.

`mcp-server-time` (the MCP project's reference time server, a stdio server) is served over
streamable HTTP at `/mcp` by `mcp-proxy`, both from PyPI; `McpGate` (tests/fakes/mcp_gate.py)
stands in front and requires `Authorization: Bearer <canary>`.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.http import serve
from tests.fakes.mcp_gate import McpGate
from tests.integration.runs.conftest import runner  # noqa: F401  (real runs, shared fixture)

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mcp-proxy exited with {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        tick.wait(0.05)
    pytest.fail(f"mcp-proxy did not listen on port {port} within {timeout} s")


@pytest.fixture(scope="session")
def time_server_url() -> Iterator[str]:
    """`mcp-server-time` over streamable HTTP: the URL of its `/mcp` endpoint."""
    port = free_port()
    command = [
        str(BIN / "mcp-proxy"),
        "--transport",
        "streamablehttp",
        "--port",
        str(port),
        "--pass-environment",
        "--log-level",
        "WARNING",
        str(BIN / "mcp-server-time"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class GatedServer:
    """The time server behind the gate: `url` (its /mcp endpoint), the canary the gate wants."""

    url: str
    canary: str
    gate: McpGate

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.canary}"}

    def saw_canary(self) -> bool:
        return any(h.get("authorization") == f"Bearer {self.canary}" for h in self.gate.seen)


@pytest.fixture
def gated(time_server_url: str) -> Iterator[GatedServer]:
    canary = "mcpcanary-" + secrets.token_hex(16)
    gate = McpGate(time_server_url, canary)
    with serve(gate) as base:
        yield GatedServer(f"{base}/mcp", canary, gate)


def create_server(tenant: Any, name: str, url: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "transport": "http", "url": url, **fields}
    r = tenant.client.post(tenant.path("/mcp-servers"), json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())
