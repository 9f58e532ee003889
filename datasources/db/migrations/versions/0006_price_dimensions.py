"""price dimensions: cache, reasoning, fees, context tiers and price kind on offers and ticks; each
source's observation of an offer; usage records' token split and cost by part

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=20, scale=10).with_variant(sa.BigInteger(), "sqlite")
PRICE_TABLES = ("offers", "price_ticks")
TOKEN_COLUMNS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
COST_COLUMNS = (
    "cost_input",
    "cost_cache_read",
    "cost_cache_write",
    "cost_output",
    "cost_reasoning",
    "cost_request",
    "cost_search",
)


def _dimension_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("cache_read_per_1m", MONEY, nullable=True),
        sa.Column("cache_write_per_1m", MONEY, nullable=True),
        sa.Column("cache_write_1h_per_1m", MONEY, nullable=True),
        sa.Column("reasoning_per_1m", MONEY, nullable=True),
        sa.Column("per_request", MONEY, nullable=True),
        sa.Column("per_search", MONEY, nullable=True),
        sa.Column("tiers", sa.Text(), nullable=True),
        sa.Column("price_kind", sa.String(length=16), nullable=False, server_default="priced"),
    ]


def upgrade() -> None:
    for table in PRICE_TABLES:
        with op.batch_alter_table(table) as batch:
            for column in _dimension_columns():
                batch.add_column(column)
        # Until now a zero was a price; from here it is unpriced unless a source says free.
        op.execute(f"UPDATE {table} SET price_kind = 'unpriced' WHERE input_per_1m = 0 AND output_per_1m = 0")
    op.create_table(
        "offer_observations",
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("input_per_1m", MONEY, nullable=False),
        sa.Column("output_per_1m", MONEY, nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        *_dimension_columns(),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_offer_observations_offer_id_offers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("offer_id", "source", name=op.f("pk_offer_observations")),
    )
    # What each offer's source said is its first observation.
    op.execute(
        "INSERT INTO offer_observations (offer_id, source, input_per_1m, output_per_1m, observed_at, price_kind) "
        "SELECT id, source, input_per_1m, output_per_1m, confirmed_at, price_kind FROM offers"
    )
    with op.batch_alter_table("usage_records") as batch:
        for name in TOKEN_COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
        for name in COST_COLUMNS:
            batch.add_column(sa.Column(name, MONEY, nullable=False, server_default="0"))
    # Records written before the split keep their cost; their parts stay 0 (the rates are not known).


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        for name in (*COST_COLUMNS, *TOKEN_COLUMNS):
            batch.drop_column(name)
    op.drop_table("offer_observations")
    for table in PRICE_TABLES:
        with op.batch_alter_table(table) as batch:
            for column in reversed(_dimension_columns()):
                batch.drop_column(column.name)
