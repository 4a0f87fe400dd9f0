"""`actana server`: the API (and, later, in-process workers) under uvicorn."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
import uvicorn

from actana.api.app import create_app
from actana.cli.common import console, load_settings, start_context


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind [env: ACTANA_HOST]", show_default=False)
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind [env: ACTANA_PORT]", show_default=False)
    ] = None,
) -> None:
    """Start the Actana server: migrate the database, check the master key, serve the API."""
    settings = load_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    context = start_context(settings)
    console.print(
        f"Actana serving on http://{settings.host}:{settings.port} "
        f"(database: {context.database.engine.dialect.name}, "
        f"master key: {context.keyring.primary.key_id})",
        highlight=False,
    )
    uvicorn.run(
        create_app(context),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # The API prints its own start line; uvicorn's access log stays on for operators.
        server_header=False,
    )
