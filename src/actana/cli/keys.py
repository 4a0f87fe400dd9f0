"""`actana keys`: generate master keys, rotate secrets onto the newest, show key usage."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from actana.cli.common import console, fail, start_context
from actana.exceptions import ActanaError
from actana.security.keyring import generate_master_key
from actana.security.master_keys import key_ids_in_use
from actana.security.rotation import rotate as rotate_secrets

app = typer.Typer(help="Master keys for secrets at rest.", no_args_is_help=True)


@app.command("generate")
def generate() -> None:
    """Print a new random master key (put it in ACTANA_MASTER_KEY, newest first)."""
    typer.echo(generate_master_key())


@app.command("rotate")
def rotate(
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Secrets per transaction [env: ACTANA_KEYS_ROTATE_BATCH_SIZE]"),
    ] = None,
    batch_delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds to pause between batches")
    ] = 0.0,
) -> None:
    """Re-encrypt every secret under the newest configured key. Safe to interrupt and re-run."""
    context = start_context()
    size = batch_size or context.settings.keys_rotate_batch_size

    def progress(rows: int, total: int) -> None:
        console.print(f"rewrapped {rows} secret(s) ({total} so far)", highlight=False)

    try:
        report = rotate_secrets(
            context.database,
            context.keyring,
            batch_size=size,
            batch_delay=batch_delay,
            on_batch=progress,
        )
    except ActanaError as exc:
        fail(exc.message)
    console.print(
        f"done: {report.rewrapped} secret(s) now under key {context.keyring.primary.key_id}",
        highlight=False,
    )
    for key_id in report.retired_key_ids:
        console.print(
            f"key {key_id} protects nothing any more; you may remove it from the configuration",
            highlight=False,
        )


@app.command("status")
def status() -> None:
    """Show the configured keys and how many secrets each one protects."""
    context = start_context()
    in_use = key_ids_in_use(context.database)
    table = Table("key id", "configured", "role", "secrets")
    for key_id in dict.fromkeys([*context.keyring.key_ids, *in_use]):
        configured = key_id in context.keyring.key_ids
        role = "encrypts + decrypts" if key_id == context.keyring.primary.key_id else "decrypts"
        table.add_row(key_id, "yes" if configured else "NO", role, str(in_use.get(key_id, 0)))
    console.print(table)
