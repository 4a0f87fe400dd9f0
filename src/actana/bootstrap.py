"""Start-up: from settings to a checked, migrated, ready `AppContext`."""

from __future__ import annotations

from actana.api.context import AppContext
from actana.db import migrate
from actana.db.engine import Database
from actana.security.master_keys import load_keyring, verify_keyring
from actana.settings import Settings


def build_context(settings: Settings, *, run_migrations: bool = True) -> AppContext:
    """Load the keys, open the database, migrate it, and check the keys against it.

    The keyring is loaded first so a missing or malformed key fails before anything touches the
    database.

    Raises:
        ConfigError: the keys or the database are not usable; the message says what to do.
    """
    keyring = load_keyring(settings)
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    try:
        if run_migrations:
            migrate.upgrade(database)
        verify_keyring(database, keyring)
    except BaseException:
        database.dispose()
        raise
    return AppContext(settings=settings, database=database, keyring=keyring)
