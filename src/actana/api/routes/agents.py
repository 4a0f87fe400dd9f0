"""`/agents`: CRUD."""

from __future__ import annotations

from actana.api.routes.crud import crud_router
from actana.crew import agents as service
from actana.db.models import Agent

router = crud_router(
    prefix="/agents",
    label="agent",
    model=Agent,
    service=service,
    create_schema=service.AgentCreate,
    update_schema=service.AgentUpdate,
    public_schema=service.AgentPublic,
)
