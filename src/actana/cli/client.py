"""A small HTTP client for the CLI commands that talk to a running server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from actana.cli.common import fail


class ApiClient:
    """Calls `/api/v1/workspaces/{ws}/...` with a workspace API key."""

    def __init__(self, server: str, workspace: str, api_key: str) -> None:
        if not api_key or not workspace:
            fail("set --workspace and --api-key (or ACTANA_WORKSPACE and ACTANA_API_KEY)")
        self.base = f"{server.rstrip('/')}/api/v1/workspaces/{workspace}"
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}"}, timeout=httpx.Timeout(30, read=None)
        )

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            fail(f"{response.status_code}: {message}")
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        try:
            response = self.http.get(self.base + path, params=params)
        except httpx.TransportError as exc:
            fail(f"cannot reach the server at {self.base}: {exc}")
        return self._check(response)

    def post(self, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.post(self.base + path, **kwargs)
        except httpx.TransportError as exc:
            fail(f"cannot reach the server at {self.base}: {exc}")
        return self._check(response)

    def resolve_agent(self, name_or_id: str) -> str:
        if name_or_id.startswith("ag_"):
            return name_or_id
        agents = self.get("/agents", limit=200)["items"]
        found = [str(a["id"]) for a in agents if a["name"] == name_or_id]
        if not found:
            fail(f"no agent named {name_or_id!r} in this workspace")
        return found[0]

    def events(self, run_id: str, after: int = -1) -> Iterator[dict[str, Any]]:
        """The run's lines, following live until the terminal line."""
        url = f"{self.base}/runs/{run_id}/events"
        with self.http.stream("GET", url, params={"after": after}) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)

    def close(self) -> None:
        self.http.close()
