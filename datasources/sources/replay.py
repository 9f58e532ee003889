"""Replay a recorded price history (the CSV of shared/data/price_history.csv) at a chosen speed.

Rows map to offers the way the LiteLLM importer maps keys: provider_slug(source_provider), then
resolve_offer(provider, key without its provider prefix); rows that do not resolve, or are not chat,
are skipped. When several keys land on one offer, the key the importer prefers owns it (so two keys
never fight over one price). Rows are grouped by observed_at; each group is one partial update in one
transaction (only those offers; `delisted`, or a row without both an input and an output price, makes an offer
unavailable), applied after waiting
(delta / speed) seconds, and stamped with the replay's own clock:
start + (row time - first row time) / speed.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.catalog.entries import OfferEntry
from datasources.catalog.identity import resolve_offer
from datasources.catalog.ingest import apply_offers
from datasources.catalog.litellm import PROVIDER_VARIANTS, _api_model_id, _strip_route
from datasources.catalog.providers import provider_slug
from datasources.db.models import Model, Offer, OfferStatus, Provider
from datasources.events import Broker, Event, StatusChanged
from datasources.sources.base import SourceError, raise_if_cancelled
from datasources.sources.status import record_error, record_ok

log = logging.getLogger("pricegraph.sources")

COLUMNS = ("observed_at", "source_provider", "model_key", "mode", "input_per_1m", "output_per_1m", "event")
EVENTS = frozenset({"initial", "listed", "changed", "delisted"})
OfferKey = tuple[str, str, str]


@dataclass(frozen=True)
class ReplayRow:
    at: datetime
    key: OfferKey
    entry: OfferEntry | None  # None: delisted


@dataclass(frozen=True)
class ReplayGroup:
    at: datetime
    rows: tuple[ReplayRow, ...]


def load_history(path: str | Path) -> list[ReplayGroup]:
    """The resolvable chat rows, grouped by observed_at in time order; a malformed file is a SourceError."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise SourceError(f"{path}: not a price history CSV (missing columns: {', '.join(missing)})")
            rows = [row for row in (_row(raw, str(path), reader.line_num) for raw in reader) if row is not None]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    owners: dict[OfferKey, str] = {}
    for source_key, row in rows:
        current = owners.get(row.key)
        if current is None or _preference(source_key) < _preference(current):
            owners[row.key] = source_key
    groups: dict[datetime, list[ReplayRow]] = defaultdict(list)
    for source_key, row in rows:
        if owners[row.key] == source_key:
            groups[row.at].append(row)
    return [ReplayGroup(at, tuple(groups[at])) for at in sorted(groups)]


def _preference(source_key: str) -> tuple[bool, int, str]:
    """As the LiteLLM importer prefers among keys of one offer: provider-prefixed, shortest, alphabetical."""
    return ("/" not in source_key, len(source_key), source_key)


def _row(raw: dict[str, str | None], path: str, line: int) -> tuple[str, ReplayRow] | None:
    where = f"{path} line {line}"
    if any(raw.get(c) is None for c in COLUMNS):
        raise SourceError(f"{where}: too few fields")
    event, key, source_provider = raw["event"], raw["model_key"] or "", raw["source_provider"] or ""
    if event not in EVENTS:
        raise SourceError(f"{where}: unknown event {event!r}")
    try:
        at = datetime.fromisoformat(raw["observed_at"] or "")
    except ValueError:
        raise SourceError(f"{where}: observed_at {raw['observed_at']!r} is not a timestamp") from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    if raw["mode"] != "chat":
        return None
    provider = provider_slug(source_provider)
    if provider is None:
        return None
    model_id = _strip_route(key, source_provider)
    found = resolve_offer(provider, model_id)
    if found is None:
        return None
    variant = "-".join(v for v in (PROVIDER_VARIANTS.get(source_provider, ""), found.variant) if v)
    offer_key = (provider, found.model.slug, variant)
    if event == "delisted" or not raw["input_per_1m"] or not raw["output_per_1m"]:
        # Without both prices the importer would not list it either: the offer is unavailable.
        return key, ReplayRow(at, offer_key, None)
    try:
        input_price, output_price = Decimal(raw["input_per_1m"] or ""), Decimal(raw["output_per_1m"] or "")
    except InvalidOperation:
        raise SourceError(
            f"{where}: prices {raw['input_per_1m']!r}, {raw['output_per_1m']!r} are not numbers"
        ) from None
    if not (input_price.is_finite() and output_price.is_finite()) or input_price < 0 or output_price < 0:
        raise SourceError(f"{where}: prices must be finite and not negative")
    entry = OfferEntry(
        provider=provider,
        model=found.model,
        variant=variant,
        provider_model_id=_api_model_id(provider, model_id),
        input_per_1m=input_price,
        output_per_1m=output_price,
        context_window=None,
        max_output_tokens=None,
        supports_vision=False,
        supports_tools=False,
        source_key=key,
    )
    return key, ReplayRow(at, offer_key, entry)


async def apply_group(session: AsyncSession, group: ReplayGroup, source: str, at: datetime) -> list[Event]:
    """One group as a partial update; offers that exist keep their metadata (the CSV carries prices only)."""
    existing = await _offers(session, {row.key for row in group.rows})
    entries = []
    for row in group.rows:
        if row.entry is None:
            continue
        offer = existing.get(row.key)
        entries.append(
            row.entry
            if offer is None
            else replace(
                row.entry,
                provider_model_id=offer.provider_model_id,
                context_window=offer.context_window,
                max_output_tokens=offer.max_output_tokens,
                supports_vision=offer.supports_vision,
                supports_tools=offer.supports_tools,
            )
        )
    result = await apply_offers(session, entries, source=source, observed_at=at, confirm=True)
    events: list[Event] = [*result.ticks, *result.status_changes]
    for row in group.rows:
        offer = existing.get(row.key)
        if row.entry is not None or offer is None or offer.status == OfferStatus.UNAVAILABLE:
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
                await broker.publish(session, events)
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
