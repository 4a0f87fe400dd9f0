"""Helpers the provider modules share: a runner on a workspace of their own, agents on an
endpoint of a given provider, and one provider call made without a run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from actana.protocol.payloads import GatewayDelta, Message, ModelRequest, ModelTurn
from actana.providers.base import EndpointSpec, ModelCallError, ProviderCall, get_provider
from tests.conftest import LiveServer, make_tenant
from tests.integration.runs.conftest import Runner

SYSTEM = "You are a careful agent."


@pytest.fixture
def runner(
    request: pytest.FixtureRequest, context: Any, worker_server: LiveServer
) -> Iterator[Runner]:
    """End-to-end runs on a workspace named after the module's provider (`test_gemini`: gemini)."""
    name = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    tenant = make_tenant(context, worker_server, name)
    yield Runner(context, tenant)
    tenant.client.close()


def endpoint_agent(
    runner: Runner,
    provider: str,
    base_url: str,
    key: str | None,
    model: str,
    *,
    flavor: str = "native",
    system_prompt: str | None = SYSTEM,
    **fields: Any,
) -> str:
    """An agent on a new endpoint of `provider` with this key (none if None), model and base
    URL; `fields` go to the agent as they are."""
    t = runner.tenant
    name = f"{provider}{len(t.client.get(t.path('/agents')).json()['items'])}"
    endpoint = {"name": f"{name}-model", "provider": provider, "model": model, "base_url": base_url}
    if key is not None:
        endpoint["api_key"] = key
    ep = t.client.post(t.path("/model-endpoints"), json=endpoint)
    assert ep.status_code == 201, ep.text
    body: dict[str, Any] = {
        "name": name,
        "model_endpoint_id": ep.json()["id"],
        "sandbox_flavor": flavor,
    }
    if system_prompt is not None:
        body["system_prompt"] = system_prompt
    r = t.client.post(t.path("/agents"), json={**body, **fields})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def run_to_end(
    runner: Runner, agent: str, prompt: str = "go"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start a run of `agent`, follow it to its end: the final run record and its stored lines."""
    run = runner.start(agent, prompt)
    final = runner.wait(run["id"])
    return final, runner.stored(final)


def where_the_key_shows(runner: Runner, final: dict[str, Any], key: str, log: str) -> list[str]:
    """The places of a finished run (its record, files, downloads, and the server's `log`) that
    hold `key` or its last 16 characters; the downloads must answer 200."""
    t = runner.tenant
    seen = {
        "stream.jsonl": (runner.run_dir(final) / "stream.jsonl").read_text(),
        "run": json.dumps(final),
    }
    for name in ("result.json", "steps.json", "stream.jsonl"):
        response = t.client.get(t.path(f"/runs/{final['id']}/{name}"))
        assert response.status_code == 200, (name, response.text)
        seen[f"GET {name}"] = response.text
    for path in runner.run_dir(final).rglob("*"):
        if path.is_file():
            seen[str(path)] = path.read_bytes().decode(errors="replace")
    seen["server log"] = log
    return [where for where, text in seen.items() if key in text or key[-16:] in text]


# --- The provider alone, without a run ------------------------------------------------------


def provider_call(
    provider: str,
    model: str,
    base_url: str,
    timeout_sec: float = 30.0,
    *,
    turn_index: int = 0,
    system: str = "",
) -> ProviderCall:
    """One turn of "hi" for an endpoint of `provider` at `base_url`."""
    return ProviderCall(
        endpoint=EndpointSpec(provider, model, base_url, None),
        request=ModelRequest(system=system, messages=[Message(role="user", text="hi")]),
        turn_index=turn_index,
        timeout_sec=timeout_sec,
    )


def call_provider(provider: str, call: ProviderCall, key: str) -> list[GatewayDelta | ModelTurn]:
    """Everything `provider` yields for `call`."""

    async def collect() -> list[GatewayDelta | ModelTurn]:
        return [item async for item in get_provider(provider).turn(call, key)]

    return asyncio.run(collect())


def provider_error(provider: str, call: ProviderCall, key: str) -> ModelCallError:
    """The error `provider` fails `call` with; its message must not hold the key."""
    with pytest.raises(ModelCallError) as info:
        call_provider(provider, call, key)
    assert key not in info.value.message
    return info.value
