"""`actana`: the entry point that assembles the command groups."""

from __future__ import annotations

import typer

from actana import __version__
from actana.cli import db, demo, keys, runs, sandbox, server, workspace

app = typer.Typer(
    name="actana",
    help="Actana: run AI agents in locked-down sandboxes, with a replayable audit trail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(workspace.app, name="workspace")
app.add_typer(sandbox.app, name="sandbox")
app.command("server")(server.serve)
app.command("demo")(demo.demo)
app.command("run")(runs.run)
app.command("logs")(runs.logs)
app.command("verify")(runs.verify)
app.command("worker")(runs.worker)


@app.command("version")
def version() -> None:
    """Print the Actana version."""
    typer.echo(__version__)


def main() -> None:
    app()
