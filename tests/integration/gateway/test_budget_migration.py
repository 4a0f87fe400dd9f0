"""Migration 0003 adds the agents' budgets to a database that already has agents, and after it
the schema is exactly what the models describe (nothing left for autogenerate to find)."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import DateTime, bindparam, text

from actana.db import migrate
from actana.db.engine import Database
from actana.db.models import Base

NOW = bindparam("now", datetime(2026, 1, 1, tzinfo=UTC), type_=DateTime(timezone=True))


def test_upgrade_keeps_agents_and_leaves_their_budgets_to_the_defaults(database_url):
    database = Database(database_url)
    try:
        migrate.upgrade(database, "0002")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO workspaces (id, name, created_at) VALUES ('ws_1', 'w', :now);"
                ).bindparams(NOW)
            )
            connection.execute(
                text(
                    "INSERT INTO model_endpoints (id, workspace_id, name, provider, model, "
                    "created_at, updated_at) VALUES ('me_1', 'ws_1', 'm', 'scripted', 'script', "
                    ":now, :now)"
                ).bindparams(NOW)
            )
            connection.execute(
                text(
                    "INSERT INTO agents (id, workspace_id, name, system_prompt, model_endpoint_id,"
                    " max_rounds, sandbox_flavor, created_at, updated_at) VALUES ('ag_1', 'ws_1',"
                    " 'a', '', 'me_1', 7, 'native', :now, :now)"
                ).bindparams(NOW)
            )
        migrate.upgrade(database)
        assert migrate.is_current(database)
        with database.engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT max_rounds, max_model_calls, max_input_tokens, max_output_tokens "
                    "FROM agents WHERE id = 'ag_1'"
                )
            ).one()
            assert tuple(row) == (7, None, None, None)
            diff = compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
        command.downgrade(migrate.alembic_config(database), "0002")
        assert migrate.current_revision(database) == "0002"
    finally:
        database.dispose()
