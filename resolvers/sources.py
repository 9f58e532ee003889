"""The `sources` root field: the polled price sources and their health."""

from __future__ import annotations

from datasources.catalog import precedence
from datasources.db import models as db
from datasources.sources.status import list_sources
from schema.bounds import Sized
from schema.context import Info
from schema.sources import PriceSource

MAX_SOURCES = 16
SOURCES = Sized.fixed(MAX_SOURCES, "one per source: the polled kinds, the import formats and the operator")


async def sources(info: Info) -> list[PriceSource]:
    """The polled sources, and every other source that has given a price (an import, the operator)."""
    async with info.context.sessionmaker() as session:
        rows = {row.name: row for row in await list_sources(session)}
        for name, count in (await precedence.observing_sources(session)).items():
            rows.setdefault(name, db.PriceSource(name=name, offers=count))
    return [PriceSource(row=rows[name]) for name in sorted(rows)][:MAX_SOURCES]
