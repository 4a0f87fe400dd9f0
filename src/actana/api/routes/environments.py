"""`/environments`: CRUD; secret variable values are write-only."""

from __future__ import annotations

from actana.api.routes.crud import crud_router
from actana.crew import environments as service
from actana.db.models import Environment

router = crud_router(
    prefix="/environments",
    label="environment",
    model=Environment,
    service=service,
    create_schema=service.EnvironmentCreate,
    update_schema=service.EnvironmentUpdate,
    public_schema=service.EnvironmentPublic,
)
