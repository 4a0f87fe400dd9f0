"""Shared bits of the container benchmarks (`container_overhead.py`, `container_throughput.py`).

The server, the per-run measurement, the timeline cut and the statistics are `native_overhead`'s
own (imported, so that all benchmarks measure the same way); this adds what the container flavor
needs: a server whose settings and agent flavor are chosen by the caller, the Docker daemon and
image checks, the deployment's containers (by label) and their memory (from their cgroups), and
the machine's description.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import httpx
from native_overhead import SCRIPT, Server
from pydantic import SecretStr

from actana.bootstrap import build_context
from actana.crew.workspaces import create_workspace
from actana.sandboxes.docker_config import LABEL, LABEL_RUN, scope_of
from actana.security.keyring import generate_master_key
from actana.settings import Settings

ACTANA = [str(Path(sys.executable).with_name("actana"))]


@dataclass
class Served:
    """A running server with one workspace and one agent of the chosen flavor."""

    base_url: str  # .../api/v1/workspaces/{ws}
    headers: dict[str, str]
    agent: str
    settings: Settings

    @property
    def scope(self) -> str:
        """The `actana.sandbox` label value of this deployment's containers."""
        return scope_of(self.settings.containers_dir)

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    def async_client(self, timeout: float = 300) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=timeout, limits=limits
        )


def clean_environment() -> None:
    """Nothing of the developer's configuration leaks in."""
    for name in list(os.environ):
        if name.startswith("ACTANA_") or name == "MAX_EXECUTION_TIME_SEC":
            del os.environ[name]


@contextmanager
def serving(flavor: str, **overrides: Any) -> Iterator[Served]:
    """A server (`settings.workers` in-process workers) on a fresh data dir, with a workspace
    and a one-turn scripted agent of `flavor`; `overrides` are Settings fields."""
    clean_environment()
    with tempfile.TemporaryDirectory(prefix="actana-bench-") as tmp:
        data = Path(tmp) / "data"
        key = SecretStr(generate_master_key())
        database_url = f"sqlite:///{data / 'actana.db'}"
        settings = Settings(
            _env_file=None, data_dir=data, master_key=key, database_url=database_url, **overrides
        )
        context = build_context(settings)
        try:
            with context.database.session() as session:
                workspace, api_key = create_workspace(session, "bench", actor="bench")
                base = f"/api/v1/workspaces/{workspace.id}"
            auth = {"Authorization": f"Bearer {api_key}"}
            with (
                Server(context, workers=settings.workers) as server,
                httpx.Client(base_url=server.url + base, headers=auth, timeout=60) as client,
            ):
                endpoint = {"name": "script", "provider": "scripted", "script": SCRIPT}
                ep = client.post("/model-endpoints", json=endpoint).raise_for_status()
                agent = {"name": "bench", "model_endpoint_id": ep.json()["id"]}
                made = client.post("/agents", json={**agent, "sandbox_flavor": flavor})
                agent_id = str(made.raise_for_status().json()["id"])
                yield Served(server.url + base, auth, agent_id, settings)
        finally:
            context.database.dispose()


# -- Docker ---------------------------------------------------------------------------------------


def docker_api() -> docker.APIClient:
    return docker.from_env(version="auto").api


def ensure_docker(image: str) -> None:
    """Exit with a hint unless the daemon answers and the sandbox image exists."""
    if shutil.which("docker") is None:
        sys.exit("no `docker` CLI on PATH")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        sys.exit("no Docker daemon answers: start one (`dockerd >/tmp/dockerd.log 2>&1 &`)")
    probe = ["docker", "image", "inspect", image]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        sys.exit(f"no image {image}: build it with `{ACTANA[0]} sandbox build-image`")


def containers(
    api: docker.APIClient, scope: str, run_id: str | None = None
) -> list[dict[str, Any]]:
    """This deployment's containers (all states), optionally only those of one run."""
    labels = [f"{LABEL}={scope}"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])
    return list(api.containers(all=True, filters={"label": labels}))


def remove_containers(api: docker.APIClient, scope: str) -> int:
    """Force-remove this deployment's containers (after the server stopped); how many."""
    found = containers(api, scope)
    for item in found:
        api.remove_container(item["Id"], force=True, v=True)
    return len(found)


def wait_running(api: docker.APIClient, scope: str, count: int, timeout: float) -> float | None:
    """Wait until `count` of this deployment's containers are running (a refilled warm pool,
    when no run is alive); the seconds waited, or None on timeout."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        running = containers(api, scope)
        if sum(1 for c in running if c.get("State") == "running") >= count:
            return time.perf_counter() - t0
        time.sleep(0.02)
    return None


_CGROUP_DIRS = (  # cgroup v1 (cgroupfs driver), v2 with systemd, v2 with cgroupfs
    "/sys/fs/cgroup/memory/docker/{id}",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope",
    "/sys/fs/cgroup/docker/{id}",
)


def container_memory(container_id: str) -> tuple[int, int] | None:
    """(usage incl. page cache, anonymous memory) of a container's cgroup in bytes; None when
    it is gone (or its cgroup is not where Docker usually puts it)."""
    for pattern in _CGROUP_DIRS:
        folder = Path(pattern.format(id=container_id))
        try:
            if (folder / "memory.usage_in_bytes").exists():  # v1
                usage = int((folder / "memory.usage_in_bytes").read_text())
                key = "total_rss"
            else:
                usage = int((folder / "memory.current").read_text())
                key = "anon"
            stat = dict(ln.split() for ln in (folder / "memory.stat").read_text().splitlines())
            return usage, int(stat.get(key, 0))
        except (FileNotFoundError, ProcessLookupError, ValueError, OSError):
            continue
    return None


# -- Where a run's time goes, inside the server ----------------------------------------------------


def _targets() -> list[tuple[type, str, str]]:
    from actana.runs.backends import SandboxBackends
    from actana.runs.channel import RunChannel
    from actana.runs.driver import RunDriver
    from actana.sandboxes.docker import DockerSandboxBackend
    from actana.sandboxes.docker_sandbox import DockerSandbox

    api = docker.APIClient
    return [
        (SandboxBackends, "choose", "provisioning: choose backend (describe)"),
        (api, "version", "  docker API version"),
        (api, "inspect_image", "  docker API inspect_image"),
        (RunChannel, "start", "container_creation: RunChannel.start"),
        (DockerSandboxBackend, "create", "container_creation: backend.create"),
        (DockerSandboxBackend, "_adopt", "  adopt a warm container"),
        (DockerSandboxBackend, "_create", "  create a cold container"),
        (api, "create_container_from_config", "  docker API create"),
        (RunDriver, "_copy_inputs", "container_creation: copy inputs"),
        (RunDriver, "_mark_started", "container_creation: mark started (DB)"),
        (DockerSandbox, "start", "container_creation: sandbox.start"),
        (api, "attach_socket", "  docker API attach"),
        (api, "start", "  docker API start"),
        (DockerSandbox, "_wait", "after last line: sandbox wait (EOF + wait)"),
        (api, "wait", "  docker API wait"),
        (DockerSandbox, "remove", "cleanup: sandbox.remove"),
        (api, "kill", "  docker API kill"),
        (api, "remove_container", "  docker API remove"),
        (RunChannel, "stop", "cleanup: RunChannel.stop"),
        (DockerSandboxBackend, "_make_warm", REFILL),
    ]


REFILL = "warm pool refill (concurrent with the run)"
_REFILLING = contextvars.ContextVar("refilling", default=False)  # (anyio threads inherit it)


def _is_terminal(_self: Any, event: Any, *_: Any, **__: Any) -> bool:
    return isinstance(event, dict) and event.get("type") in ("result", "error")


def _marks() -> list[tuple[type, str, str, str, Callable[..., bool] | None]]:
    """Moments (wall clock, like the lines' `ts`): a call's start or end (when its arguments
    satisfy the predicate)."""
    from actana.runs.driver import RunDriver
    from actana.runs.ingest import RunRecorder
    from actana.sandboxes.docker_sandbox import DockerSandbox

    return [
        (RunRecorder, "accept", "start", "terminal line from the sandbox", _is_terminal),
        (DockerSandbox, "_read", "end", "stdout EOF", None),
        (RunDriver, "_cleanup", "start", "cleanup start", None),
    ]


class Tracer:
    """Wall time of the server's calls that make up a container run's phases, by wrapping the
    methods in this process (the workers are in-process). Records only while `active`: the
    benchmark switches it on around one measured run; other callers at that moment (a warm
    pool refilling) are counted too."""

    def __init__(self) -> None:
        self.active = False
        self._lock = threading.Lock()
        self._calls: dict[str, list[float]] = defaultdict(list)
        self._moments: dict[str, float] = {}
        self.labels = [label for owner, name, label in _targets() if hasattr(owner, name)]
        if REFILL in self.labels:  # the Docker calls made for the pool, apart from the run's
            self.labels += ["  docker API create (refill)", "  docker API start (refill)"]

    def install(self) -> Tracer:
        for owner, name, label in _targets():
            if hasattr(owner, name):  # (older or newer code may lack one)
                setattr(owner, name, self._wrap(getattr(owner, name), label))
        for owner, name, when, label, predicate in _marks():
            if hasattr(owner, name):
                wrapped = self._wrap_mark(getattr(owner, name), label, when, predicate)
                setattr(owner, name, wrapped)
        return self

    def _wrap_mark(
        self, fn: Any, label: str, when: str, predicate: Callable[..., bool] | None
    ) -> Any:
        def mark(moment: str, args: Any, kwargs: Any) -> None:
            if moment == when and self.active and (predicate is None or predicate(*args, **kwargs)):
                self._moments[label] = time.time_ns() / 1e6

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def marked_async(*args: Any, **kwargs: Any) -> Any:
                mark("start", args, kwargs)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    mark("end", args, kwargs)

            return marked_async

        @functools.wraps(fn)
        def marked(*args: Any, **kwargs: Any) -> Any:
            mark("start", args, kwargs)
            try:
                return fn(*args, **kwargs)
            finally:
                mark("end", args, kwargs)

        return marked

    def _add(self, label: str, ms: float) -> None:
        if label.startswith("  docker API") and _REFILLING.get():
            label = f"{label} (refill)"
        if self.active:
            with self._lock:
                self._calls[label].append(ms)

    def _wrap(self, fn: Any, label: str) -> Any:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                token = _REFILLING.set(True) if label == REFILL else None
                try:
                    return await fn(*args, **kwargs)
                finally:
                    if token is not None:
                        _REFILLING.reset(token)
                    self._add(label, (time.perf_counter() - t0) * 1000)

            return timed_async

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(label, (time.perf_counter() - t0) * 1000)

        return timed

    def take(self) -> tuple[dict[str, float], dict[str, int], dict[str, float]]:
        """Since the last take: total ms per label (0 for labels not called), the number of
        calls per label, and the moments (wall-clock ms) of the marks seen."""
        with self._lock:
            calls, self._calls = self._calls, defaultdict(list)
            moments, self._moments = self._moments, {}
        labels = [*self.labels, *(k for k in calls if k not in self.labels)]
        totals = {label: round(sum(calls.get(label, ())), 2) for label in labels}
        return totals, {label: len(calls.get(label, ())) for label in labels}, moments


# -- The machine ----------------------------------------------------------------------------------


def machine(loads: list[float]) -> dict[str, Any]:
    docker_version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "docker": docker_version,
        "loadavg_1min_before_after": loads,
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
