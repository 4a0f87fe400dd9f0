"""`actana sandbox`: what the sandboxes of this host look like, and cleaning up leftovers."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import typer

from actana.cli import sandbox_image
from actana.cli.common import console, start_context
from actana.runs.recovery import reap

app = typer.Typer(help="Sandboxes of this host.", no_args_is_help=True)
app.command("build-image")(sandbox_image.build_image)
app.command("image")(sandbox_image.image)


@app.command("cleanup")
def cleanup() -> None:
    """Fail runs whose worker died, and remove every sandbox whose run is over or unknown."""
    context = start_context()
    stale = timedelta(seconds=context.settings.worker_stale_after_sec)
    report = asyncio.run(reap(context, context.native_backend, stale))
    console.print(
        f"failed {report['runs_failed']} orphaned run(s); "
        f"removed {report['sandboxes_removed']} sandbox(es)",
        highlight=False,
    )


@app.command("status")
def status() -> None:
    """Show the native backend as /readyz sees it: available, and with which isolation."""
    context = start_context()
    typer.echo(json.dumps(context.native_backend.describe(), indent=2, default=str))
