"""The model gateway: one model turn for a run, with the key injected on the trusted side.

The sandbox names no model, endpoint, base URL or key: the run's agent decides. Nothing the
sandbox sent besides the conversation reaches the upstream (the providers build their own
requests, headers included). Before each call the gateway checks the run's budgets (model
calls, input and output tokens) and caps the call's `max_tokens` at the output tokens left; it
decrypts the key for the call and drops it; it retries what the provider calls retryable (429,
5xx, a dropped connection) with exponential backoff and full jitter, while the run's deadline
allows and nothing of the call was streamed yet; it records the usage. Failures become a
`GatewayError` line whose message helps and never holds key material (`redact`).
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import anyio
from anyio import to_thread
from sqlalchemy import update

from actana.api.context import AppContext
from actana.crew import model_endpoints
from actana.db.models import Agent, ModelEndpoint, Run, utcnow
from actana.exceptions import ActanaError
from actana.protocol.payloads import GatewayDelta, GatewayError, ModelRequest, ModelTurn
from actana.providers.base import EndpointSpec, ModelCallError, ProviderCall, get_provider
from actana.providers.redact import redact
from actana.settings import Settings

log = logging.getLogger(__name__)
_jitter = random.SystemRandom()
SMALL_OUTPUT_LEFT = 4096
"""Below this many output tokens left, a request without `max_tokens` is capped at what is left."""


@dataclass(frozen=True)
class Budget:
    """What one run of an agent may spend: the agent's own limits, else the settings'."""

    model_calls: int
    input_tokens: int
    output_tokens: int


def run_budget(settings: Settings, agent: Agent) -> Budget:
    return Budget(
        model_calls=agent.max_model_calls or settings.max_model_calls_per_run,
        input_tokens=agent.max_input_tokens or settings.max_input_tokens_per_run,
        output_tokens=agent.max_output_tokens or settings.max_output_tokens_per_run,
    )


def retry_delay(
    attempt: int, retry_after: float | None, *, base: float, cap: float, rand: float
) -> float:
    """Seconds to wait after failed attempt number `attempt` (from 1) before the next one.

    Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))), `rand` being the uniform draw
    in [0, 1). The upstream's Retry-After, when it gave one, wins: retrying sooner would only be
    refused again.
    """
    if retry_after is not None and retry_after >= 0:
        return retry_after
    return float(rand * min(cap, base * 2.0 ** (attempt - 1)))


@dataclass(frozen=True)
class _Prepared:
    spec: EndpointSpec
    api_key: str | None
    turn_index: int
    seconds_left: float
    output_left: int
    """Output tokens left in the run's budget (at least 1)."""


def cap_max_tokens(request: ModelRequest, output_left: int) -> ModelRequest:
    """`request` with `max_tokens` within the output tokens left in the budget.

    A request without `max_tokens` keeps the provider's default (a few thousand) unless less
    than `SMALL_OUTPUT_LEFT` is left: asking for more than the budget would only overshoot it.
    """
    if request.max_tokens is None:
        return (
            request
            if output_left >= SMALL_OUTPUT_LEFT
            else replace(request, max_tokens=output_left)
        )
    if request.max_tokens <= output_left:
        return request
    return replace(request, max_tokens=output_left)


def _prepare(context: AppContext, run_id: str) -> _Prepared:
    """Check the run's budgets, count the call, and fetch the endpoint and its key.

    Raises:
        ModelCallError: the deadline passed, a budget is used up, or the agent or its endpoint
            is gone (the call is not counted then).
    """
    settings = context.settings
    with context.database.session() as session:
        run = session.get(Run, run_id)
        agent = session.get(Agent, run.agent_id) if run is not None else None
        if run is None or agent is None:
            raise ModelCallError("the run's agent no longer exists")
        if run.deadline_at is not None:
            seconds_left = (run.deadline_at - utcnow()).total_seconds()
        else:
            seconds_left = float(run.timeout_sec or settings.max_execution_time_sec)
        if seconds_left <= 0:
            raise ModelCallError("the run's deadline passed before the model was called")
        budget = run_budget(settings, agent)
        for used, limit, what, field in (
            (run.input_tokens, budget.input_tokens, "input tokens", "max_input_tokens"),
            (run.output_tokens, budget.output_tokens, "output tokens", "max_output_tokens"),
        ):
            if used >= limit:
                raise ModelCallError(
                    f"the run used its budget of {limit} {what} ({used} used); "
                    f"the agent's {field} sets it"
                )
        # One conditional UPDATE: concurrent calls of one run cannot both take the last call.
        counted = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.model_calls < budget.model_calls)
            .values(model_calls=Run.model_calls + 1)
            .returning(Run.model_calls)
            .execution_options(synchronize_session=False)
        ).scalar()
        if counted is None:
            raise ModelCallError(
                f"the run used its budget of {budget.model_calls} model calls; "
                "the agent's max_model_calls sets it"
            )
        endpoint = session.get(ModelEndpoint, run.model_endpoint_id or agent.model_endpoint_id)
        if endpoint is None:
            raise ModelCallError("the agent's model endpoint no longer exists")
        spec = EndpointSpec(endpoint.provider, endpoint.model, endpoint.base_url, endpoint.script)
        key = context.secrets.get(session, model_endpoints.OWNER_KIND, endpoint.id, "api_key")
        output_left = budget.output_tokens - run.output_tokens
        return _Prepared(spec, key, int(counted) - 1, seconds_left, output_left)


def _record_usage(context: AppContext, run_id: str, turn: ModelTurn) -> None:
    with context.database.session() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                input_tokens=Run.input_tokens + max(0, turn.usage.input_tokens),
                output_tokens=Run.output_tokens + max(0, turn.usage.output_tokens),
            )
            .execution_options(synchronize_session=False)
        )


async def bounded(
    stream: AsyncIterator[GatewayDelta | ModelTurn], deadline: float
) -> AsyncIterator[GatewayDelta | ModelTurn]:
    """The items of a provider's stream, each awaited until `deadline` (time.monotonic) at most.

    Raises:
        ModelCallError: the deadline passed while waiting for the next item.
    """
    try:
        while True:
            with anyio.move_on_after(deadline - time.monotonic()) as scope:
                try:
                    item = await anext(stream)
                except StopAsyncIteration:
                    return
            if scope.cancelled_caught:
                raise ModelCallError("the model did not answer before the run's deadline")
            yield item
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


async def _attempts(
    context: AppContext, run_id: str, prepared: _Prepared, request: ModelRequest
) -> AsyncIterator[dict[str, Any]]:
    """Deltas then the turn, retrying retryable failures until something was streamed."""
    settings = context.settings
    provider = get_provider(prepared.spec.provider)
    deadline = time.monotonic() + prepared.seconds_left
    request = cap_max_tokens(request, prepared.output_left)
    attempt = 1
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ModelCallError("the run's deadline passed before the model answered")
        call = ProviderCall(
            endpoint=prepared.spec,
            request=request,
            turn_index=prepared.turn_index,
            timeout_sec=left,
        )
        streamed = False
        try:
            async for item in bounded(provider.turn(call, prepared.api_key), deadline):
                if isinstance(item, GatewayDelta):
                    streamed = True
                    yield asdict(item)
                else:
                    await to_thread.run_sync(_record_usage, context, run_id, item)
                    yield {"type": "turn", "turn": asdict(item)}
                    return
            raise ModelCallError(f"the {prepared.spec.provider} provider ended without a turn")
        except ModelCallError as exc:
            if not exc.retryable or streamed:
                raise
            message = redact(exc.message, prepared.api_key)
            if attempt >= settings.model_retry_attempts:
                raise ModelCallError(
                    f"{message} (gave up after {attempt} attempts)", status=exc.status
                ) from None
            delay = retry_delay(
                attempt,
                exc.retry_after,
                base=settings.model_retry_base_sec,
                cap=settings.model_retry_max_sec,
                rand=_jitter.random(),
            )
            if time.monotonic() + delay >= deadline:
                raise ModelCallError(
                    f"{message} (attempt {attempt}; no time left before the run's deadline "
                    "to try again)",
                    status=exc.status,
                ) from None
            log.warning(
                "run %s: %s model call failed (attempt %d of %d, status %s): %s; "
                "retrying in %.2f s",
                run_id,
                prepared.spec.provider,
                attempt,
                settings.model_retry_attempts,
                exc.status,
                message,
                delay,
            )
            await anyio.sleep(delay)
            attempt += 1


async def model_turn(
    context: AppContext, run_id: str, request: ModelRequest
) -> AsyncIterator[dict[str, Any]]:
    """Gateway lines for one model call: deltas, then a `turn` or an `error`."""
    api_key: str | None = None
    try:
        prepared = await to_thread.run_sync(_prepare, context, run_id)
        api_key = prepared.api_key
        async for line in _attempts(context, run_id, prepared, request):
            yield line
    except ActanaError as exc:  # ModelCallError, or e.g. a key that cannot be decrypted
        message = redact(exc.message, api_key)
        log.info("run %s: model call failed: %s", run_id, message)
        yield asdict(GatewayError(code="model_error", message=message))
    except Exception as exc:
        # A provider bug, not an upstream answer: the traceback goes to the server log (with
        # the key taken out of it), the sandbox gets the exception's type only.
        detail = "".join(traceback.format_exception(exc))
        log.error("run %s: the model provider failed:\n%s", run_id, redact(detail, api_key))
        yield asdict(
            GatewayError(
                code="model_error",
                message=f"the model provider failed unexpectedly ({type(exc).__name__}); "
                "the server log has the details",
            )
        )
    finally:
        api_key = None  # the one reference outside the provider call; nothing keeps the key
