"""price sources polled by the server, with the outcome of their last polls

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "price_sources",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_price_sources")),
    )


def downgrade() -> None:
    op.drop_table("price_sources")
