"""metering: held balance, idempotent credits, usage request ids and estimated usage

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Money: exact NUMERIC on PostgreSQL; on SQLite an integer count of 1e-10 USD (its NUMERIC is a float).
MONEY = sa.Numeric(precision=20, scale=10).with_variant(sa.BigInteger(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("held", MONEY, nullable=False, server_default="0"))
        batch.create_check_constraint("held_within_balance", "held >= 0 AND held <= balance")
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("variant", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("estimated", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index(batch.f("ix_usage_records_request_id"), ["request_id"], unique=False)
    with op.batch_alter_table("balance_transactions") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(length=128), nullable=True))
        batch.create_unique_constraint("uq_balance_transactions_idempotency", ["account_id", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("balance_transactions") as batch:
        batch.drop_constraint("uq_balance_transactions_idempotency", type_="unique")
        batch.drop_column("idempotency_key")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_index(batch.f("ix_usage_records_request_id"))
        batch.drop_column("estimated")
        batch.drop_column("variant")
        batch.drop_column("request_id")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint("held_within_balance", type_="check")
        batch.drop_column("held")
