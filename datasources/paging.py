"""Pages of rows newest first, continued after the last row's id (`usage_12`, `txn_12`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import BalanceTransaction, UsageRecord
from datasources.errors import BadInput

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool


def page(rows: Sequence[T], limit: int) -> Page[T]:
    return Page(list(rows[:limit]), len(rows) > limit)


def parse_id(raw: str, prefix: str, field: str = "after") -> int:
    """`usage_12` / `txn_12` (or the bare number) as the row id."""
    text = raw.strip()
    number = text[len(prefix) :] if text.startswith(prefix) else text
    if not number.isdigit():
        raise BadInput(f"{raw!r} is not a {prefix}... id", field=field)
    return int(number)


async def cursor(
    session: AsyncSession,
    table: type[UsageRecord] | type[BalanceTransaction],
    account_id: int,
    row_id: int,
    prefix: str,
) -> tuple[datetime, int]:
    """Where a page continues: the created time and id of the row it continues after."""
    found = (
        await session.execute(select(table.created_at).where(table.id == row_id, table.account_id == account_id))
    ).scalar_one_or_none()
    if found is None:
        raise BadInput(f"no {prefix}{row_id} on this account", field="after")
    return found, row_id


def before(table: type[UsageRecord] | type[BalanceTransaction], cursor: tuple[datetime, int]) -> ColumnElement[bool]:
    created, row_id = cursor
    return or_(table.created_at < created, and_(table.created_at == created, table.id < row_id))
