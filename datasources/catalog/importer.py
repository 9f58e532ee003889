"""Import a price file, or the shipped seed, into the catalog in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.catalog.entries import OfferEntry
from datasources.catalog.ingest import IngestResult, apply_offers
from datasources.catalog.litellm import parse_litellm_file
from datasources.catalog.modelsdev import parse_modelsdev_dir
from datasources.catalog.openrouter import parse_openrouter_file
from datasources.catalog.seed import load_seed
from datasources.db.models import Offer
from datasources.events import Broker
from datasources.notices import announce

FORMATS: dict[str, Callable[[Path], list[OfferEntry]]] = {
    "litellm": parse_litellm_file,
    "openrouter": parse_openrouter_file,
    "modelsdev": parse_modelsdev_dir,
}
SEED_SOURCE = "litellm"
PG_SEED_LOCK = 0x73656564


async def import_file(
    sessionmaker: async_sessionmaker[AsyncSession],
    path: Path,
    fmt: str,
    progress: Callable[[int, int], None] | None = None,
    broker: Broker | None = None,
) -> IngestResult:
    """Parse the whole file first (a bad file raises CatalogFormatError), then write it in one transaction;
    its price changes are published to `broker` when it commits."""
    entries = FORMATS[fmt](Path(path))
    total = len(entries)
    async with sessionmaker() as session, session.begin():
        result = await apply_offers(
            session, entries, source=fmt, progress=(lambda n: progress(n, total)) if progress else None
        )
        await announce(session, result.events, broker)
        return result


async def ensure_seed(sessionmaker: async_sessionmaker[AsyncSession]) -> IngestResult | None:
    """Load the shipped catalog into an empty database; do nothing when offers exist."""
    async with sessionmaker() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SEED_LOCK})
        if (await session.execute(select(exists().where(Offer.id.isnot(None))))).scalar():
            return None
        return await apply_offers(session, load_seed(), source=SEED_SOURCE)
