"""Fixtures for end-to-end runs: a server with workers, a tenant on it, and helpers to make a
scripted agent, start a run and read everything it produced."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from actana.db.models import Run, RunToken
from actana.protocol.events import PHASES
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
        return t.scripted_agent(name, script, **fields)

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
        # Following a live run may be quiet for as long as a tool call takes: no read timeout
        # (pytest-timeout still bounds the test).
        follow = httpx.Timeout(30, read=None)
        with t.client.stream(
            "GET", t.path(f"/runs/{run_id}/events"), params={"after": after}, timeout=follow
        ) as r:
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


# --- Helpers for the timing, process and hostile-output tests --------------------------------

PROC = Path("/proc")
TERMINAL_TYPES = ("result", "error")


def marked_processes(marker: str) -> dict[int, str]:
    """pid -> command line of every live process whose command line or environment holds
    `marker` (this test process excluded). Needs to run as root to read other uids' environ."""
    needle = marker.encode()
    found: dict[int, str] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state in ("Z", "X"):
            continue  # already dead, waiting to be reaped
        try:
            environ = (entry / "environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            environ = b""
        if needle in cmdline or needle in environ:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        tick.wait(0.01)


def assert_no_process_left(marker: str, within: float = 1.0) -> None:
    """Every process carrying `marker` is gone, at the latest `within` seconds from now."""
    deadline = time.monotonic() + within
    tick = threading.Event()
    while left := marked_processes(marker):
        if time.monotonic() > deadline:
            pytest.fail(f"processes of the sandbox survived the run's end: {left}")
        tick.wait(0.01)


def run_row(context: Any, run_id: str) -> Run:
    """The run's database row (detached)."""
    with context.database.session() as session:
        row = session.get(Run, run_id)
        assert row is not None, run_id
        session.expunge(row)
        return row


def epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def phase_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["type"] == "log" and line.get("phase")]


def assert_well_formed(lines: list[dict[str, Any]]) -> None:
    """Contiguous seq, the nine phases once each and in order, cleanup the last phase, then
    exactly one terminal line, last (only the worker's own warn lines may sit between)."""
    assert [line["seq"] for line in lines] == list(range(len(lines))), "seq not contiguous"
    phases = phase_lines(lines)
    assert [p["phase"] for p in phases] == list(PHASES), [p["phase"] for p in phases]
    terminals = [line for line in lines if line["type"] in TERMINAL_TYPES]
    assert terminals == [lines[-1]], f"want exactly one terminal line, last: {terminals}"
    between = lines[phases[-1]["seq"] + 1 : -1]
    assert all(line["type"] == "log" and line["level"] == "warn" for line in between), (
        f"only worker warn lines may come between cleanup and the terminal line: {between}"
    )


def step_pairs(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Step lines grouped by step id, in order of first appearance."""
    steps: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line["type"] == "step":
            steps.setdefault(line["id"], []).append(line)
    return steps


def finished_steps(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The final line of every step, in order."""
    return [pair[-1] for pair in step_pairs(lines).values()]


def tenant_client(tenant: Tenant) -> httpx.Client:
    """A fresh client with the tenant's key (one per thread that streams)."""
    return httpx.Client(
        base_url=str(tenant.client.base_url),
        headers={"Authorization": f"Bearer {tenant.api_key}"},
        timeout=30,
    )


class Follower(threading.Thread):
    """Follows `GET runs/{run}/events` (NDJSON, or SSE with `sse=True`) in the background,
    keeping every raw line (for SSE: every frame) as it arrives."""

    def __init__(
        self, tenant: Tenant, run_id: str, after: int | None = None, sse: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.tenant, self.run_id, self.after, self.sse = tenant, run_id, after, sse
        self.items: list[str] = []
        self.status: int | None = None
        self.content_type = ""
        self.error: BaseException | None = None
        self.closed = False
        self.changed = threading.Condition()

    def run(self) -> None:
        params = {} if self.after is None else {"after": self.after}
        headers = {"Accept": "text/event-stream"} if self.sse else {}
        url = self.tenant.path(f"/runs/{self.run_id}/events")
        try:
            with (
                tenant_client(self.tenant) as client,
                client.stream("GET", url, params=params, headers=headers) as response,
            ):
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                if self.sse:
                    self._frames(response.iter_text())
                else:
                    for line in response.iter_lines():
                        self._add(line)
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            with self.changed:
                self.closed = True
                self.changed.notify_all()

    def _frames(self, texts: Iterator[str]) -> None:
        pending = ""
        for text in texts:
            pending += text
            *frames, pending = pending.split("\n\n")
            for frame in frames:
                self._add(frame)
        assert not pending.strip(), f"unterminated SSE frame: {pending!r}"

    def _add(self, item: str) -> None:
        with self.changed:
            self.items.append(item)
            self.changed.notify_all()

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float = 30) -> list[str]:
        """Block until `condition(items so far)` holds; return a copy of the items."""
        with self.changed:
            self.changed.wait_for(lambda: condition(self.items) or self.closed, timeout)
            assert condition(self.items), (
                f"follower stopped or timed out with {len(self.items)} items "
                f"(error: {self.error!r}): {self.items[-3:]}"
            )
            return list(self.items)

    def finish(self, timeout: float = 30) -> list[str]:
        """Wait for the stream to close; return everything it delivered."""
        self.join(timeout)
        assert not self.is_alive(), "the events stream did not close"
        if self.error is not None:
            raise self.error
        assert self.status == 200, self.status
        return list(self.items)


# --- Shared probes: long-lived sleeps to find and kill, and run tokens to look for ------------


def sleepers_script(marker: str) -> list[dict[str, Any]]:
    """A script whose bash step starts three long sleeps findable by `marker`: one in the
    background, one in a session of its own (`setsid`), and the step's shell exec'ed into a sleep
    whose argv[0] is the marker; the other two carry it in their environment."""
    command = (
        f"export ACTANA_TEST_MARK={marker}; "
        f"sleep 600 & setsid sleep 600 & exec -a {marker} sleep 600"
    )
    return [
        {"tool_calls": [{"name": "bash", "args": {"command": command}}]},
        {"text": "the sleeps ended early"},
    ]


def running_sleepers(marker: str) -> list[str]:
    """The command lines of the three sleeps of `sleepers_script`, once all three run."""

    def found() -> list[str]:
        lines = [c.strip() for c in marked_processes(marker).values()]
        sleeps = [c for c in lines if c in ("sleep 600", f"{marker} 600")]
        return sleeps if len(sleeps) >= 3 else []

    return list(wait_until(found, 10, f"the three sleeps marked {marker}"))


TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]{43,}")


def token_hashes(context: Any, run_id: str) -> set[str]:
    """The SHA-256 of every token issued to `run_id` (the database keeps nothing else)."""
    with context.database.session() as session:
        rows = session.scalars(select(RunToken).where(RunToken.run_id == run_id)).all()
        return {row.token_sha256 for row in rows}


def leaked_tokens(text: str, hashes: set[str]) -> list[str]:
    """Every 43-character token-alphabet window of `text` that hashes to one of `hashes`."""
    leaked = []
    for match in TOKEN_CHARS.finditer(text):
        word = match.group()
        for i in range(len(word) - 42):
            window = word[i : i + 43]
            if hashlib.sha256(window.encode()).hexdigest() in hashes:
                leaked.append(window)
    return leaked


def until_step_running(lines: Iterator[dict[str, Any]], seen: list[dict[str, Any]]) -> None:
    """Read (into `seen`) until the bash step is running; fail if the run ends first."""
    for line in lines:
        seen.append(line)
        if line["type"] == "step" and line["status"] == "running" and line["name"] == "bash":
            return
        assert line["type"] not in ("result", "error"), f"run ended before its step: {line}"
    raise AssertionError("the events stream closed before the bash step started")


def read_to_terminal(lines: Iterator[dict[str, Any]], seen: list[dict[str, Any]]) -> dict[str, Any]:
    """Read the rest (into `seen`): the terminal line must be last; return it."""
    seen.extend(lines)
    assert seen[-1]["type"] in ("result", "error"), (
        f"stream closed without a terminal line: {seen[-1]}"
    )
    return seen[-1]


# What the runtime exports to every tool so that HTTP clients find its loopback forwarder to the
# run's egress proxy (actana.runtime.netproxy), in both spellings clients read.
PROXY_VARIABLES = frozenset(
    {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}
    | {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
)
