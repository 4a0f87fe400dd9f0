"""Fixtures shared by every tier: isolated settings, a database on SQLite *and* PostgreSQL, a
started-up context, and a real HTTP server on a loopback port.

Every test that asks for `database_url` (directly or through `context`/`api`) runs twice: once on
a fresh SQLite file and once on a fresh PostgreSQL database. PostgreSQL comes from
ACTANA_TEST_POSTGRES_URL (an admin URL; `make test` and CI set it). Without it the PostgreSQL
half is skipped with a reason; CI sets ACTANA_TEST_REQUIRE_POSTGRES=1 so that it fails instead.

Docker works the same way: `docker_client` skips without a reachable daemon, and fails instead
when ACTANA_TEST_REQUIRE_DOCKER=1 (CI); `sandbox_image` builds the sandbox image once per session
(a no-op when it is current) and returns its ref.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import psycopg
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from actana.api.app import create_app
from actana.api.context import AppContext
from actana.bootstrap import build_context
from actana.crew.workspaces import create_workspace
from actana.exceptions import ActanaError
from actana.security.keyring import generate_master_key
from actana.settings import Settings

if TYPE_CHECKING:
    import docker

POSTGRES_URL = os.environ.get("ACTANA_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("ACTANA_TEST_REQUIRE_POSTGRES") == "1"
REQUIRE_DOCKER = os.environ.get("ACTANA_TEST_REQUIRE_DOCKER") == "1"
# A tag of its own for the sandbox image, so that sessions testing different runtime sources on
# one daemon do not rebuild each other's image (the default tag is shared by every checkout).
IMAGE_TAG = os.environ.get("ACTANA_TEST_SANDBOX_IMAGE_TAG", "")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ACTANA_* variable or .env file of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ACTANA_") and not name.startswith("ACTANA_TEST_"):
            monkeypatch.delenv(name)
    if IMAGE_TAG:
        monkeypatch.setenv("ACTANA_SANDBOX_IMAGE_TAG", IMAGE_TAG)
    monkeypatch.delenv("MAX_EXECUTION_TIME_SEC", raising=False)
    monkeypatch.chdir(tmp_path)


def _postgres_admin() -> psycopg.Connection[tuple[object, ...]]:
    url = make_url(POSTGRES_URL)
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
        autocommit=True,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'actana.db'}"
        return
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("ACTANA_TEST_REQUIRE_POSTGRES=1 but ACTANA_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL: set ACTANA_TEST_POSTGRES_URL (make test does when it can)")
    name = f"actana_test_{secrets.token_hex(6)}"
    with _postgres_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with _postgres_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def master_key() -> str:
    return generate_master_key()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, master_key: str) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        master_key=SecretStr(master_key),
    )


@pytest.fixture
def build() -> Iterator[Callable[[Settings], AppContext]]:
    """`build(settings)` starts up a context the way the server does, disposed at teardown."""
    built: list[AppContext] = []

    def _build(settings: Settings) -> AppContext:
        built.append(build_context(settings))
        return built[-1]

    yield _build
    for ctx in built:
        ctx.database.dispose()


@pytest.fixture
def context(settings: Settings, build: Callable[[Settings], AppContext]) -> AppContext:
    return build(settings)


class LiveServer:
    """The app served by a real uvicorn on a loopback port, in a background thread."""

    def __init__(self, context: AppContext, workers: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(context, workers=workers),
            log_level="warning",
            lifespan="on" if workers else "off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def start(self) -> None:
        self.thread.start()
        started = threading.Event()
        # uvicorn flips `started` once it accepts connections; wait on it without sleeping blind.
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("test server failed to start")
            started.wait(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def live_server(context: AppContext) -> Iterator[LiveServer]:
    server = LiveServer(context)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def worker_server(context: AppContext) -> Iterator[LiveServer]:
    """The app with two in-process workers: runs really execute, in real sandboxes."""
    server = LiveServer(context, workers=2)
    server.start()
    yield server
    server.stop()


@dataclass
class Tenant:
    """A workspace with a live API key, and a client that sends that key."""

    id: str
    api_key: str
    client: httpx.Client

    def path(self, suffix: str = "") -> str:
        return f"/api/v1/workspaces/{self.id}{suffix}"

    def scripted_agent(self, name: str, script: list[dict[str, Any]], **fields: Any) -> str:
        """Create a scripted model endpoint `<name>-model` and an agent `name` on it (native
        sandbox unless `fields` say otherwise); return the agent's id."""
        ep = self.client.post(
            self.path("/model-endpoints"),
            json={"name": f"{name}-model", "provider": "scripted", "script": script},
        )
        assert ep.status_code == 201, ep.text
        body = {"name": name, "model_endpoint_id": ep.json()["id"], "sandbox_flavor": "native"}
        r = self.client.post(self.path("/agents"), json={**body, **fields})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def make_tenant(context: AppContext, live_server: LiveServer, name: str) -> Tenant:
    with context.database.session() as session:
        workspace, api_key = create_workspace(session, name, actor="test")
        workspace_id = workspace.id
    client = httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    )
    return Tenant(workspace_id, api_key, client)


@pytest.fixture
def tenant(context: AppContext, live_server: LiveServer) -> Iterator[Tenant]:
    t = make_tenant(context, live_server, "alpha")
    yield t
    t.client.close()


@pytest.fixture
def other_tenant(context: AppContext, live_server: LiveServer) -> Iterator[Tenant]:
    t = make_tenant(context, live_server, "beta")
    yield t
    t.client.close()


def _default_settings() -> Settings:
    """Settings as a test's own `Settings(_env_file=None)` sees them: no developer ACTANA_*."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("ACTANA_") and not name.startswith("ACTANA_TEST_"):
                patch.delenv(name)
        if IMAGE_TAG:
            patch.setenv("ACTANA_SANDBOX_IMAGE_TAG", IMAGE_TAG)
        return Settings(_env_file=None)


def _docker_missing(message: str) -> NoReturn:
    if REQUIRE_DOCKER:
        pytest.fail(f"ACTANA_TEST_REQUIRE_DOCKER=1, but {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of this machine's Docker daemon (DOCKER_HOST or the default socket)."""
    from actana.sandboxes.docker_image import connect_docker

    try:
        client = connect_docker(_default_settings())
    except ActanaError as exc:
        _docker_missing(exc.message)
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: docker.DockerClient) -> str:
    """The ref of the sandbox image for the default settings, built if missing or stale."""
    from actana.sandboxes.docker_image import build_image

    try:
        return build_image(_default_settings(), docker_client).ref
    except ActanaError as exc:
        _docker_missing(f"the sandbox image cannot be built: {exc.message}")


@pytest.fixture(scope="session", autouse=True)
def _no_container_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fails the session if a sandbox container (labelled `actana.sandbox`) that it made still
    exists at its end. Only when a Docker daemon answers; without one it does nothing.

    A container counts as this session's when it did not exist at the start and its label is
    the scope of a folder under this session's temporary directory (every test's data dir is
    there): other sessions sharing the daemon (a developer's, another xdist worker's) are not
    this one's business. The containers are left in place, as evidence.
    """
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    from actana.sandboxes.docker_config import LABEL, LABEL_RUN, scope_of
    from actana.sandboxes.docker_image import connect_docker

    try:
        client = connect_docker(_default_settings(), timeout=10)
    except ActanaError:
        yield  # no daemon: nothing this session can leave behind
        return
    try:
        before = {c["Id"] for c in client.api.containers(all=True, filters={"label": LABEL})}
    except (DockerException, RequestException):
        client.close()  # a daemon that cannot list: as good as none
        yield
        return
    try:
        yield
        after = client.api.containers(all=True, filters={"label": LABEL})
    except (DockerException, RequestException) as exc:
        pytest.fail(f"cannot check for left-behind sandbox containers: {exc}")
    finally:
        client.close()
    new = [c for c in after if c["Id"] not in before]
    if not new:
        return
    base = tmp_path_factory.getbasetemp().resolve()
    scopes = {scope_of(base)}
    for root, dirs, _files in os.walk(base):  # every folder that could be a backend's state
        scopes.update(scope_of(Path(root) / name) for name in dirs)
    left = [c for c in new if (c.get("Labels") or {}).get(LABEL) in scopes]
    if left:
        listed = "\n".join(
            f"  {c['Id'][:12]} {c.get('State')} run={c['Labels'].get(LABEL_RUN) or '(warm)'}"
            f" {c.get('Names')}"
            for c in left
        )
        pytest.fail(
            f"{len(left)} sandbox container(s) made by this test session outlived it:\n{listed}"
            f"\n(remove them with: docker rm -f {' '.join(c['Id'][:12] for c in left)})",
            pytrace=False,
        )


def forge_consistent_run_folder(run_dir: Path) -> None:
    """What an attacker with write access to a finished run's folder can do: rewrite the last
    succeeded step's result and rebuild the whole hash chain, result.json's `chain` and
    steps.json, so that the folder verifies on its own again. Only the hash the database kept
    when the run ended can tell."""
    from actana.runs.chain import encode_line, line_hash

    lines = [json.loads(line) for line in (run_dir / "stream.jsonl").read_text().splitlines()]
    done = [line for line in lines if line["type"] == "step" and line["status"] == "succeeded"]
    forged = done[-1]
    forged["result"] = {"exit_code": 0, "stdout": "nothing to see\n", "stderr": ""}
    prev, raw = "0" * 64, []
    for line in lines:
        line["prev"] = prev
        encoded = encode_line(line)
        raw.append(encoded + b"\n")
        prev = line_hash(encoded)
    (run_dir / "stream.jsonl").write_bytes(b"".join(raw))
    result = json.loads((run_dir / "result.json").read_text())
    (run_dir / "result.json").write_text(json.dumps({**result, "chain": prev}))
    steps = json.loads((run_dir / "steps.json").read_text())
    for step in steps:
        if step["id"] == forged["id"]:
            step["result"] = forged["result"]
    (run_dir / "steps.json").write_text(json.dumps(steps))
