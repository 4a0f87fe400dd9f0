"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
    runs,
    sandbox,
    sandbox_mcp,
    skills,
    workspaces,
)
from actana.runs.worker import WorkerPool
from actana.web.routes import install_web


def create_app(context: AppContext, *, workers: int | None = None) -> FastAPI:
    """Build the app around an already started-up context (see `actana.bootstrap`).

    Args:
        context: settings, database and keyring, already checked.
        workers: in-process workers to run while the app is up (default: the setting).
    """
    count = context.settings.workers if workers is None else workers

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool = WorkerPool(context, count) if count > 0 else None
        if pool is not None:
            await pool.start()
        try:
            yield
        finally:
            if pool is not None:
                await pool.stop()

    app = FastAPI(
        title="Actana",
        version=__version__,
        description="Run AI agents in locked-down sandboxes with a replayable audit trail.",
        lifespan=lifespan,
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
    app.include_router(runs.router, prefix=prefix)
    app.include_router(sandbox.router)
    app.include_router(sandbox_mcp.router)
    install_web(app)  # the web UI under /ui (and / redirects there)
    return app
