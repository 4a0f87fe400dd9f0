"""agent budgets: model calls and input/output tokens per run

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_model_calls", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_input_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_output_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("max_output_tokens")
        batch_op.drop_column("max_input_tokens")
        batch_op.drop_column("max_model_calls")
