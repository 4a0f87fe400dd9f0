"""Run and inspect Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from actana.db.engine import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database: Database) -> Config:
    """An Alembic config pointing at our migrations and at `database`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py takes the engine from here instead of re-parsing a URL (which would lose the
    # SQLite pragmas and, for Postgres, print the password in Alembic's logs).
    config.attributes["engine"] = database.engine
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision` (the newest by default)."""
    command.upgrade(alembic_config(database), revision)


def head_revision() -> str | None:
    """The newest migration this code knows."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(database: Database) -> str | None:
    """The migration the database is at, or None when it has none applied."""
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_current(database: Database) -> bool:
    """True when the database schema matches this code."""
    return current_revision(database) == head_revision()
