"""leases: server instances, credit leases, pending usage records

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=20, scale=10).with_variant(sa.BigInteger(), "sqlite")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "server_instances",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_instances")),
    )
    op.create_table(
        "credit_leases",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_credit_leases_amount_non_negative")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_credit_leases_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_leases")),
    )
    op.create_index(op.f("ix_credit_leases_account_id"), "credit_leases", ["account_id"], unique=False)
    op.create_index(op.f("ix_credit_leases_instance_id"), "credit_leases", ["instance_id"], unique=False)
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("state", sa.String(length=16), nullable=False, server_default="settled"))
        batch.add_column(sa.Column("held", MONEY, nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_id", BIG_ID, nullable=True))
        batch.add_column(sa.Column("instance_id", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_usage_records_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_index(batch.f("ix_usage_records_state"))
        batch.drop_column("instance_id")
        batch.drop_column("lease_id")
        batch.drop_column("held")
        batch.drop_column("state")
    op.drop_index(op.f("ix_credit_leases_instance_id"), table_name="credit_leases")
    op.drop_index(op.f("ix_credit_leases_account_id"), table_name="credit_leases")
    op.drop_table("credit_leases")
    op.drop_table("server_instances")
