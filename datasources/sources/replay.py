"""Replay a recorded price history (history_file.py reads both formats) at a chosen speed, or file it
as the offers' history at its own times (`backfill`, the `import-history` command).

A replay groups rows by observed_at; each group is one partial update in one transaction (only those
offers; a delisted row makes an offer unavailable), applied after waiting (delta / speed) seconds, and
stamped with the replay's own clock: start + (row time - first row time) / speed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.catalog.entries import OfferEntry
from datasources.catalog.ingest import apply_offers
from datasources.db.models import Model, Offer, OfferStatus, Provider
from datasources.events import Broker, Event, StatusChanged
from datasources.notices import announce
from datasources.sources.base import SourceError, raise_if_cancelled
from datasources.sources.history_file import SOURCE_OF_FORMAT, OfferKey, ReplayGroup, history_format, load_history
from datasources.sources.status import record_error, record_ok

log = logging.getLogger("pricegraph.sources")

BACKFILL_BATCH = 200  # groups (one commit time each) per transaction


async def apply_group(session: AsyncSession, group: ReplayGroup, source: str, at: datetime) -> list[Event]:
    """One group as a partial update; offers that exist keep their metadata (the CSV carries prices only)."""
    existing = await _offers(session, {row.key for row in group.rows})
    entries = [_keeping(row.entry, existing.get(row.key)) for row in group.rows if row.entry is not None]
    result = await apply_offers(session, entries, source=source, observed_at=at, confirm=True)
    return [*result.ticks, *result.status_changes, *await _delist(session, group, existing, at)]


def _keeping(entry: OfferEntry, offer: Offer | None) -> OfferEntry:
    """The row's prices, with the existing offer's metadata."""
    if offer is None:
        return entry
    return replace(
        entry,
        provider_model_id=offer.provider_model_id,
        context_window=offer.context_window,
        max_output_tokens=offer.max_output_tokens,
        supports_vision=offer.supports_vision,
        supports_tools=offer.supports_tools,
    )


async def _delist(
    session: AsyncSession, group: ReplayGroup, existing: dict[OfferKey, Offer], at: datetime, only: str | None = None
) -> list[StatusChanged]:
    """The group's delisted offers made unavailable (with `only`, those whose price that source sets)."""
    events = []
    for row in group.rows:
        offer = existing.get(row.key)
        if row.entry is not None or offer is None or offer.status == OfferStatus.UNAVAILABLE:
            continue
        if only is not None and offer.source != only:
            continue
        previous = OfferStatus(offer.status).value
        await session.execute(update(Offer).where(Offer.id == offer.id).values(status=OfferStatus.UNAVAILABLE))
        events.append(StatusChanged(offer.id, *row.key, OfferStatus.UNAVAILABLE.value, previous, at))
    return events


async def _offers(session: AsyncSession, keys: set[OfferKey]) -> dict[OfferKey, Offer]:
    if not keys:
        return {}
    rows = await session.execute(
        select(Offer, Provider.slug, Model.slug)
        .join(Provider, Offer.provider_id == Provider.id)
        .join(Model, Offer.model_id == Model.id)
        .where(Provider.slug.in_({k[0] for k in keys}), Model.slug.in_({k[1] for k in keys}))
    )
    found = {(provider, model, offer.variant): offer for offer, provider, model in rows}
    return {key: found[key] for key in keys if key in found}


@dataclass
class Replay:
    path: Path
    speed: float = 3600.0
    loop: bool = False
    start: datetime | None = None
    name: str = "replay"
    groups_applied: int = 0

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"replay speed must be positive, got {self.speed}")

    async def run(
        self, sessionmaker: async_sessionmaker[AsyncSession], broker: Broker, write_lock: asyncio.Lock | None = None
    ) -> None:
        """Play the file (forever when looping); failures are logged and recorded, never raised."""
        write_lock = write_lock or asyncio.Lock()
        try:
            groups = await asyncio.to_thread(load_history, self.path)
            if not groups:
                raise SourceError(f"{self.path}: no chat rows that resolve to an offer")
        except SourceError as exc:
            log.warning("price source %s failed: %s", self.name, exc)
            await _record_failure(sessionmaker, self.name, str(exc))
            return
        first = groups[0].at
        cycle_start = self.start or datetime.now(UTC)
        while True:
            previous = first
            for group in groups:
                await asyncio.sleep((group.at - previous).total_seconds() / self.speed)
                previous = group.at
                async with write_lock:
                    await self._apply(sessionmaker, broker, group, cycle_start + (group.at - first) / self.speed)
            if not self.loop:
                return
            gap = (groups[1].at - first if len(groups) > 1 else timedelta(days=1)) / self.speed
            await asyncio.sleep(gap.total_seconds())
            cycle_start += (previous - first) / self.speed + gap

    async def _apply(
        self, sessionmaker: async_sessionmaker[AsyncSession], broker: Broker, group: ReplayGroup, at: datetime
    ) -> None:
        try:
            async with sessionmaker() as session, session.begin():
                events = await apply_group(session, group, self.name, at)
                live = (
                    await session.execute(
                        select(func.count())
                        .select_from(Offer)
                        .where(Offer.source == self.name, Offer.status == OfferStatus.LIVE)
                    )
                ).scalar_one()
                await record_ok(session, self.name, at, live)
                await announce(session, events, broker)
            self.groups_applied += 1
        except Exception as exc:  # a failed group is reported; the replay goes on
            raise_if_cancelled()
            log.exception("price source %s: the group at %s failed", self.name, group.at.isoformat())
            await _record_failure(sessionmaker, self.name, f"{type(exc).__name__}: {exc}")


async def _record_failure(sessionmaker: async_sessionmaker[AsyncSession], name: str, error: str) -> None:
    try:
        async with sessionmaker() as session, session.begin():
            await record_error(session, name, datetime.now(UTC), error)
    except Exception:
        raise_if_cancelled()
        log.exception("cannot record the failure of price source %s", name)


@dataclass
class Backfill:
    """What filing a history file did."""

    source: str
    rows: int = 0
    groups: int = 0
    ticks: int = 0  # new offers and price changes at their own times
    backfilled: int = 0  # observations filed before a later price
    held: int = 0  # kept at a higher source's price


async def backfill(
    sessionmaker: async_sessionmaker[AsyncSession],
    path: str | Path,
    progress: Callable[[int, int], None] | None = None,
    batch: int = BACKFILL_BATCH,
) -> Backfill:
    """File a history file's rows as the offers' history, at their own times, in time order: one
    transaction per `batch` groups (a bad line fails before anything is written). Rows go through the
    ingest as observations of the file's catalogue (`litellm` or `modelsdev`), so precedence holds; a
    delisting makes unavailable only the offers that catalogue sets."""
    source = SOURCE_OF_FORMAT[history_format(path)]
    groups = load_history(path)
    report = Backfill(source, rows=sum(len(g.rows) for g in groups), groups=len(groups))
    for start in range(0, len(groups), batch):
        chunk = groups[start : start + batch]
        async with sessionmaker() as session, session.begin():
            for group in chunk:
                existing = await _offers(session, {row.key for row in group.rows})
                entries = [_keeping(row.entry, existing.get(row.key)) for row in group.rows if row.entry is not None]
                result = await apply_offers(session, entries, source=source, observed_at=group.at, confirm=True)
                report.ticks += len(result.ticks)
                report.backfilled += result.backfilled
                report.held += result.held_by_precedence
                await _delist(session, group, existing, group.at, only=source)
        if progress is not None:
            progress(sum(len(g.rows) for g in chunk), report.rows)
    return report
