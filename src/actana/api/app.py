"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from actana import __version__
from actana.api.context import AppContext
from actana.api.errors import install_error_handlers
from actana.api.routes import (
    agents,
    environments,
    health,
    mcp_servers,
    model_endpoints,
    skills,
    workspaces,
)


def create_app(context: AppContext) -> FastAPI:
    """Build the app around an already started-up context (see `actana.bootstrap`)."""
    app = FastAPI(
        title="Actana",
        version=__version__,
        description="Run AI agents in locked-down sandboxes with a replayable audit trail.",
    )
    app.state.context = context
    install_error_handlers(app)
    app.include_router(health.router)
    prefix = "/api/v1/workspaces/{ws}"
    app.include_router(workspaces.router, prefix=prefix)
    app.include_router(model_endpoints.router, prefix=prefix)
    app.include_router(environments.router, prefix=prefix)
    app.include_router(skills.router, prefix=prefix)
    app.include_router(mcp_servers.router, prefix=prefix)
    app.include_router(agents.router, prefix=prefix)
    return app
