"""`/model-endpoints`: CRUD (the API key is write-only), and `POST /{id}/test`."""

from __future__ import annotations

from actana.api.deps import Context, UpstreamCaller
from actana.api.routes.crud import crud_router
from actana.crew import model_endpoints as service
from actana.db.models import ModelEndpoint

router = crud_router(
    prefix="/model-endpoints",
    label="model endpoint",
    model=ModelEndpoint,
    service=service,
    create_schema=service.ModelEndpointCreate,
    update_schema=service.ModelEndpointUpdate,
    public_schema=service.ModelEndpointPublic,
)


@router.post(
    "/{item_id}/test",
    response_model=service.EndpointTryResult,
    summary="Test a model endpoint with one tiny call",
)
async def test_model_endpoint(
    item_id: str, context: Context, caller: UpstreamCaller
) -> service.EndpointTryResult:
    """One tiny call through the endpoint (a one-message request, `max_tokens` 64, one attempt,
    at most `ACTANA_MODEL_ENDPOINT_TEST_TIMEOUT_SEC`), so that a wrong key, model or base URL
    is found at setup rather than at the first run.

    Always **200** when the endpoint exists: the call was made and its verdict is the body.
    `{"ok": true, "model", "latency_ms", "usage", "reply"}` when the upstream answered;
    `{"ok": false, "error", "status"}` when it did not, `error` saying why (never with key
    material) and `status` being the upstream's HTTP status when it sent one (401 bad key, 404
    unknown model, 429 rate limited; null for a connection failure or a timeout). A 502 would
    mix the upstream's failure up with this server's. The test is audited
    (`model_endpoint.tested`, outcome and status only).
    """
    return await service.try_endpoint(context, caller.workspace_id, item_id, caller.actor)
