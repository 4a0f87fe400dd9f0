"""Fixtures for the gateway: a throwaway provider registered through the real registry, whose
every call follows a plan the test writes, and a running run whose agent talks to it."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
import pytest

from actana.crew import model_endpoints
from actana.crew.workspaces import create_workspace
from actana.db.models import Agent, ModelEndpoint, Run, new_id, utcnow
from actana.protocol.events import Usage
from actana.protocol.payloads import GatewayDelta, Message, ModelRequest, ModelTurn
from actana.providers import base
from actana.providers.base import ModelCallError, ModelProvider, ProviderCall, model_provider
from actana.providers.gateway import model_turn
from tests.conftest import LiveServer, make_tenant
from tests.integration.containers.conftest import ContainerRunner
from tests.integration.runs.conftest import Runner

PROVIDER = "test-planned"
Step = Callable[[ProviderCall, str | None], AsyncIterator[GatewayDelta | ModelTurn]]


def answer(text: str = "hello", *, deltas: int = 0, usage: tuple[int, int] = (10, 5)) -> Step:
    """A turn with `text`, streamed first in `deltas` pieces."""

    async def step(_call: ProviderCall, _key: str | None) -> AsyncIterator[Any]:
        for i in range(deltas):
            yield GatewayDelta(text=f"{text}[{i}]")
        yield ModelTurn(text=text, usage=Usage(usage[0], usage[1], 1))

    return step


def fail(
    message: str,
    *,
    retryable: bool = False,
    retry_after: float | None = None,
    status: int | None = None,
    after_deltas: int = 0,
) -> Step:
    """A ModelCallError, optionally after streaming some deltas."""

    async def step(_call: ProviderCall, _key: str | None) -> AsyncIterator[Any]:
        for i in range(after_deltas):
            yield GatewayDelta(text=f"part{i}")
        raise ModelCallError(message, retryable=retryable, retry_after=retry_after, status=status)

    return step


def crash(error: Exception) -> Step:
    """Any exception: a provider bug, not an upstream answer."""

    async def step(_call: ProviderCall, _key: str | None) -> AsyncIterator[Any]:
        raise error
        yield  # pragma: no cover - makes this an async generator

    return step


def hang() -> Step:
    """Never answers (until cancelled)."""

    async def step(_call: ProviderCall, _key: str | None) -> AsyncIterator[Any]:
        await anyio.Event().wait()
        yield  # pragma: no cover

    return step


@dataclass
class Attempt:
    call: ProviderCall
    api_key: str | None
    at: float


@dataclass
class PlannedProvider(ModelProvider):
    """Plays `plan`, one step per upstream attempt; records every attempt."""

    plan: list[Step] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    name = PROVIDER

    def turn(
        self, call: ProviderCall, api_key: str | None
    ) -> AsyncIterator[GatewayDelta | ModelTurn]:
        self.attempts.append(Attempt(call, api_key, time.monotonic()))
        if not self.plan:
            raise AssertionError("the provider was called more often than the test planned")
        return self.plan.pop(0)(call, api_key)


@pytest.fixture
def planned() -> Iterator[PlannedProvider]:
    provider = PlannedProvider()
    model_provider(PROVIDER)(lambda: provider)
    yield provider
    base._FACTORIES.pop(PROVIDER, None)


@dataclass
class GatewayRun:
    """A running run whose agent's endpoint uses the planned provider with key `api_key`."""

    context: Any
    run_id: str
    agent_id: str
    endpoint_id: str
    workspace_id: str
    api_key: str

    def call(self, request: ModelRequest | None = None) -> list[dict[str, Any]]:
        """One gateway call: every line it produced."""
        request = request or ModelRequest(system="s", messages=[Message(role="user", text="x")])

        async def collect() -> list[dict[str, Any]]:
            return [line async for line in model_turn(self.context, self.run_id, request)]

        return anyio.run(collect)

    def run_row(self) -> Run:
        with self.context.database.session() as session:
            row = session.get(Run, self.run_id)
            assert row is not None
            session.expunge(row)
            return row

    def set_agent(self, **fields: Any) -> None:
        with self.context.database.session() as session:
            agent = session.get(Agent, self.agent_id)
            for name, value in fields.items():
                setattr(agent, name, value)

    def set_deadline(self, seconds: float) -> None:
        with self.context.database.session() as session:
            run = session.get(Run, self.run_id)
            run.deadline_at = utcnow() + timedelta(seconds=seconds)


def make_gateway_run(
    context: Any, *, provider: str = PROVIDER, key: str | None = None
) -> GatewayRun:
    api_key = key or f"sk-test-{secrets.token_urlsafe(24)}"
    with context.database.session() as session:
        workspace, _ = create_workspace(session, f"gw-{secrets.token_hex(4)}", actor="test")
        endpoint = ModelEndpoint(
            id=new_id("me"), workspace_id=workspace.id, name="m", provider=provider, model="m-1"
        )
        session.add(endpoint)
        session.flush()
        context.secrets.put(
            session,
            workspace_id=workspace.id,
            owner_kind=model_endpoints.OWNER_KIND,
            owner_id=endpoint.id,
            name="api_key",
            value=api_key,
            actor="test",
        )
        agent = Agent(
            id=new_id("ag"), workspace_id=workspace.id, name="a", model_endpoint_id=endpoint.id
        )
        session.add(agent)
        session.flush()
        run = Run(
            id=new_id("run"),
            workspace_id=workspace.id,
            agent_id=agent.id,
            agent_name=agent.name,
            status="running",
            prompt="x",
            flavor="native",
            timeout_sec=60,
            deadline_at=utcnow() + timedelta(seconds=60),
        )
        session.add(run)
        return GatewayRun(context, run.id, agent.id, endpoint.id, workspace.id, api_key)


@pytest.fixture
def gateway_run(context, planned: PlannedProvider) -> GatewayRun:
    return make_gateway_run(context)


@pytest.fixture
def settings(settings):
    """Short backoff, so that retry tests take milliseconds (the logic is the same)."""
    return settings.model_copy(update={"model_retry_base_sec": 0.01, "model_retry_max_sec": 0.05})


@pytest.fixture
def runner(context, worker_server: LiveServer) -> Iterator[Runner]:
    """End-to-end runs of native agents (see tests/integration/runs/conftest.py)."""
    tenant = make_tenant(context, worker_server, "gateway")
    yield Runner(context, tenant)
    tenant.client.close()


@pytest.fixture
def container_runner(context, worker_server: LiveServer, sandbox_image: str) -> Iterator[Runner]:
    """End-to-end runs of container agents (see tests/integration/containers/conftest.py)."""
    assert context.settings.sandbox_image == sandbox_image
    tenant = make_tenant(context, worker_server, "gateway-containers")
    yield ContainerRunner(context, tenant)
    tenant.client.close()
