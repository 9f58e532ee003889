"""The `price_sources` rows: when each source last polled, succeeded and failed, and why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import PriceSource

ERROR_LIMIT = 1000


async def _upsert(session: AsyncSession, name: str, values: dict[str, Any]) -> None:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(PriceSource).values({"name": name, "offers": 0, **values})
    if values:
        statement = statement.on_conflict_do_update(index_elements=[PriceSource.name], set_=values)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=[PriceSource.name])
    await session.execute(statement)


async def register(session: AsyncSession, names: Sequence[str]) -> None:
    """A row for each configured source, so the graph lists it before its first poll."""
    for name in names:
        await _upsert(session, name, {})


async def record_ok(session: AsyncSession, name: str, at: datetime, offers: int) -> None:
    await _upsert(session, name, {"last_poll_at": at, "last_ok_at": at, "offers": offers})


async def record_error(session: AsyncSession, name: str, at: datetime, error: str) -> None:
    """The last error stays after a later success; `last_ok_at > last_error_at` tells it is over."""
    text = error if len(error) <= ERROR_LIMIT else error[: ERROR_LIMIT - 1] + "…"
    await _upsert(session, name, {"last_poll_at": at, "last_error": text, "last_error_at": at})


async def list_sources(session: AsyncSession) -> list[PriceSource]:
    return list((await session.execute(select(PriceSource).order_by(PriceSource.name))).scalars())
