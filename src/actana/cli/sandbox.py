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
    sweep = asyncio.run(reap(context, context.sandboxes.all(), stale))
    for run_id in sweep.runs_failed:
        console.print(f"failed run {run_id}: its worker is gone", highlight=False)
    for removed in sweep.removed:
        console.print(f"removed {removed}", highlight=False)
    for skipped in sweep.skipped:
        console.print(f"skipped {skipped}", highlight=False)
    console.print(
        f"failed {len(sweep.runs_failed)} orphaned run(s); "
        f"removed {len(sweep.removed)} sandbox(es)",
        highlight=False,
    )


@app.command("status")
def status() -> None:
    """Show both sandbox backends as /readyz sees them: available, with which isolation, why not."""
    context = start_context()
    described = {backend.name: backend.describe() for backend in context.sandboxes.all()}
    typer.echo(json.dumps(described, indent=2, default=str))
