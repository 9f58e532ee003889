"""outbox, webhooks, budgets: outgoing messages and their delivery log, webhook endpoints, budgets and their
leases, account e-mail, low-balance alerts and what a refund left owed, inbound payment webhooks

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=20, scale=10).with_variant(sa.BigInteger(), "sqlite")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch.add_column(sa.Column("low_balance", MONEY, nullable=True))
        batch.add_column(sa.Column("low_balance_alerted", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("owed", MONEY, nullable=False, server_default="0"))
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("monthly_cap", MONEY, nullable=False),
        sa.Column("thresholds", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("spent", MONEY, nullable=False),
        sa.Column("held", MONEY, nullable=False),
        sa.Column("alerted", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.CheckConstraint("held >= 0", name=op.f("ck_budgets_held_non_negative")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_budgets_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budgets")),
        sa.UniqueConstraint("account_id", "scope", name="uq_budgets_scope"),
    )
    op.create_index(op.f("ix_budgets_account_id"), "budgets", ["account_id"], unique=False)
    op.create_table(
        "budget_leases",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_budget_leases_amount_non_negative")),
        sa.ForeignKeyConstraint(
            ["budget_id"], ["budgets.id"], name=op.f("fk_budget_leases_budget_id_budgets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_leases")),
    )
    op.create_index(op.f("ix_budget_leases_budget_id"), "budget_leases", ["budget_id"], unique=False)
    op.create_index(op.f("ix_budget_leases_instance_id"), "budget_leases", ["instance_id"], unique=False)
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("providers", sa.Text(), nullable=False),
        sa.Column("min_change_pct", sa.Numeric(precision=12, scale=4), nullable=True),
        sa.Column("secret_sealed", sa.String(length=256), nullable=False),
        sa.Column("secret_hint", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=200), nullable=True),
        sa.Column("failing_since", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_webhook_endpoints_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(op.f("ix_webhook_endpoints_account_id"), "webhook_endpoints", ["account_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("endpoint_id", sa.String(length=32), nullable=True),
        sa.Column("recipient", sa.String(length=254), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_until", TIME, nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("delivered_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_outbox_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_outbox_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"], unique=False)
    op.create_index(op.f("ix_outbox_account_id"), "outbox", ["account_id"], unique=False)
    op.create_index(op.f("ix_outbox_endpoint_id"), "outbox", ["endpoint_id"], unique=False)
    op.create_table(
        "delivery_attempts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("message_id", BIG_ID, nullable=False),
        sa.Column("endpoint_id", sa.String(length=32), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("response", sa.String(length=1000), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["outbox.id"], name=op.f("fk_delivery_attempts_message_id_outbox"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_delivery_attempts_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index(op.f("ix_delivery_attempts_message_id"), "delivery_attempts", ["message_id"], unique=False)
    op.create_index(op.f("ix_delivery_attempts_endpoint_id"), "delivery_attempts", ["endpoint_id"], unique=False)
    op.create_table(
        "inbound_webhooks",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("webhook_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("source", "webhook_id", name=op.f("pk_inbound_webhooks")),
    )


def downgrade() -> None:
    op.drop_table("inbound_webhooks")
    op.drop_index(op.f("ix_delivery_attempts_endpoint_id"), table_name="delivery_attempts")
    op.drop_index(op.f("ix_delivery_attempts_message_id"), table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index(op.f("ix_outbox_endpoint_id"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_account_id"), table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_webhook_endpoints_account_id"), table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index(op.f("ix_budget_leases_instance_id"), table_name="budget_leases")
    op.drop_index(op.f("ix_budget_leases_budget_id"), table_name="budget_leases")
    op.drop_table("budget_leases")
    op.drop_index(op.f("ix_budgets_account_id"), table_name="budgets")
    op.drop_table("budgets")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("owed")
        batch.drop_column("low_balance_alerted")
        batch.drop_column("low_balance")
        batch.drop_column("email")
