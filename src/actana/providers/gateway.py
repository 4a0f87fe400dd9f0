"""The model gateway: one model turn for a run, with the key injected on the trusted side.

The sandbox names no model, endpoint, base URL or key: the run's agent decides. The key is
decrypted for the one upstream call and dropped. Failures become a `GatewayError` line whose
message helps and never holds key material.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from anyio import to_thread
from sqlalchemy import update

from actana.api.context import AppContext
from actana.crew import model_endpoints
from actana.db.models import Agent, ModelEndpoint, Run
from actana.protocol.payloads import GatewayDelta, GatewayError, ModelRequest, ModelTurn
from actana.providers.base import EndpointSpec, ModelCallError, ProviderCall, get_provider

log = logging.getLogger(__name__)


def _prepare(context: AppContext, run_id: str) -> tuple[EndpointSpec, str | None, int]:
    """Count the call against the run's budget and fetch the endpoint and its key."""
    with context.database.session() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(model_calls=Run.model_calls + 1)
            .execution_options(synchronize_session=False)
        )
        run = session.get(Run, run_id)
        assert run is not None
        if run.model_calls > context.settings.max_model_calls_per_run:
            raise ModelCallError(
                f"the run used its budget of {context.settings.max_model_calls_per_run} model calls"
            )
        agent = session.get(Agent, run.agent_id)
        endpoint = session.get(ModelEndpoint, agent.model_endpoint_id) if agent else None
        if endpoint is None:
            raise ModelCallError("the agent's model endpoint no longer exists")
        spec = EndpointSpec(endpoint.provider, endpoint.model, endpoint.base_url, endpoint.script)
        key = context.secrets.get(session, model_endpoints.OWNER_KIND, endpoint.id, "api_key")
        return spec, key, run.model_calls - 1


def _record_usage(context: AppContext, run_id: str, turn: ModelTurn) -> None:
    with context.database.session() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                input_tokens=Run.input_tokens + turn.usage.input_tokens,
                output_tokens=Run.output_tokens + turn.usage.output_tokens,
            )
            .execution_options(synchronize_session=False)
        )


async def model_turn(
    context: AppContext, run_id: str, request: ModelRequest
) -> AsyncIterator[dict[str, Any]]:
    """Gateway lines for one model call: deltas, then a `turn` or an `error`."""
    try:
        spec, api_key, turn_index = await to_thread.run_sync(_prepare, context, run_id)
        provider = get_provider(spec.provider)
        call = ProviderCall(endpoint=spec, request=request, turn_index=turn_index)
        async for item in provider.turn(call, api_key):
            if isinstance(item, GatewayDelta):
                yield asdict(item)
            else:
                await to_thread.run_sync(_record_usage, context, run_id, item)
                yield {"type": "turn", "turn": asdict(item)}
                return
        raise ModelCallError("the provider ended without a turn")
    except ModelCallError as exc:
        log.info("model call of run %s failed: %s", run_id, exc.message)
        yield asdict(GatewayError(code="model_error", message=exc.message))
