"""`/model-endpoints`: CRUD; the API key is write-only."""

from __future__ import annotations

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
