"""candle rollups: each offer's hourly and daily OHLC per price dimension, backfilled from its ticks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=20, scale=10).with_variant(sa.BigInteger(), "sqlite")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The start of the UTC hour / day holding a tick, stored as UTCDateTime stores it: naive UTC text with
# microseconds on SQLite, timestamptz on PostgreSQL.
BUCKET = {
    "sqlite": {
        "1h": "strftime('%Y-%m-%d %H:00:00.000000', observed_at)",
        "1d": "strftime('%Y-%m-%d 00:00:00.000000', observed_at)",
    },
    "postgresql": {
        "1h": "date_trunc('hour', observed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        "1d": "date_trunc('day', observed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    },
}

# One pass over the ticks per period: the first and last tick of each bucket by (observed_at, id), then
# one row per dimension (blended holds input + output; cache_read reads at input when not priced apart).
BACKFILL = """
WITH t AS (
    SELECT offer_id, id, observed_at, {bucket} AS bucket,
           input_per_1m AS i, output_per_1m AS o, COALESCE(cache_read_per_1m, input_per_1m) AS c,
           ROW_NUMBER() OVER (PARTITION BY offer_id, {bucket} ORDER BY observed_at, id) AS up,
           ROW_NUMBER() OVER (PARTITION BY offer_id, {bucket} ORDER BY observed_at DESC, id DESC) AS down
    FROM price_ticks
),
d (dimension) AS (VALUES ('blended'), ('input'), ('output'), ('cache_read')),
m AS (
    SELECT t.offer_id, t.bucket, t.up, t.down, t.observed_at, t.id, d.dimension,
           CASE d.dimension WHEN 'blended' THEN t.i + t.o WHEN 'input' THEN t.i WHEN 'output' THEN t.o
                ELSE t.c END AS v
    FROM t CROSS JOIN d
)
INSERT INTO candle_rollups
    (offer_id, period, dimension, bucket, ticks, open, high, low, close, first_at, first_id, last_at, last_id)
SELECT offer_id, '{period}', dimension, bucket, COUNT(*),
       MAX(CASE WHEN up = 1 THEN v END), MAX(v), MIN(v), MAX(CASE WHEN down = 1 THEN v END),
       MAX(CASE WHEN up = 1 THEN observed_at END), MAX(CASE WHEN up = 1 THEN id END),
       MAX(CASE WHEN down = 1 THEN observed_at END), MAX(CASE WHEN down = 1 THEN id END)
FROM m
GROUP BY offer_id, dimension, bucket
"""


def upgrade() -> None:
    op.create_table(
        "candle_rollups",
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=2), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticks", sa.Integer(), nullable=False),
        sa.Column("open", MONEY, nullable=False),
        sa.Column("high", MONEY, nullable=False),
        sa.Column("low", MONEY, nullable=False),
        sa.Column("close", MONEY, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_id", BIG_ID, nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_candle_rollups_offer_id_offers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("offer_id", "period", "dimension", "bucket", name=op.f("pk_candle_rollups")),
    )
    buckets = BUCKET[op.get_bind().dialect.name]
    for period in ("1h", "1d"):
        op.execute(BACKFILL.format(bucket=buckets[period], period=period))


def downgrade() -> None:
    op.drop_table("candle_rollups")
