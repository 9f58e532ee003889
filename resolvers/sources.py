"""The `sources` root field: the polled price sources and their health."""

from __future__ import annotations

from datasources.sources.config import KINDS
from datasources.sources.status import list_sources
from schema.bounds import Sized
from schema.context import Info
from schema.sources import PriceSource

SOURCES = Sized.fixed(len(KINDS), "one per kind of source")


async def sources(info: Info) -> list[PriceSource]:
    async with info.context.sessionmaker() as session:
        rows = await list_sources(session)
    return [PriceSource(row=row) for row in rows[: len(KINDS)]]
