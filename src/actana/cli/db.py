"""`actana db`: schema migrations."""

from __future__ import annotations

import typer

from actana.cli.common import console, fail, load_settings
from actana.db import migrate
from actana.db.engine import Database

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


def _database() -> Database:
    settings = load_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(settings.resolved_database_url)


@app.command("upgrade")
def upgrade() -> None:
    """Migrate the database to the newest schema (the server also does this on start)."""
    database = _database()
    try:
        migrate.upgrade(database)
    except Exception as exc:  # surface driver errors as one readable line
        fail(f"migration failed: {type(exc).__name__}: {exc}")
    console.print(f"database at revision {migrate.current_revision(database)}")


@app.command("current")
def current() -> None:
    """Show the database's revision and whether it is the newest."""
    database = _database()
    revision = migrate.current_revision(database)
    state = "current" if revision == migrate.head_revision() else "behind: run `actana db upgrade`"
    console.print(f"revision {revision or 'none'} ({state})")
