"""Alembic environment: runs migrations on the engine handed over in the config attributes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from actana.db.models import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through actana.db.migrate (it passes the engine)")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=engine.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
