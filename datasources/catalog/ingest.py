"""Apply a batch of observed offers to the catalog: diff against current offers, write only changes.

One call is one transaction, opened by the caller. New offers and changed prices (any dimension) each
become a tick; an unchanged offer writes nothing (unless `confirm` asks to record that it was seen). An
offer that was stale or unavailable and is observed again goes back to live, which is a status change.
Every observation is kept as its source's latest word on the offer; whether it also sets the offer's
price is the precedence rule's to say (precedence.py): a source ranked below the one an offer's price
came from leaves the offer alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from datasources import rollups
from datasources.catalog import precedence
from datasources.catalog.entries import ModelIdentity, OfferEntry
from datasources.catalog.providers import PROVIDERS
from datasources.db.models import Model, Offer, OfferObservation, OfferStatus, PriceTick, Provider
from datasources.events import Event, PriceChanged, StatusChanged
from datasources.money import price
from datasources.pricing import PRICE_COLUMNS, Price, price_columns, price_of

Progress = Callable[[int], None]
CHUNK = 500


@dataclass
class IngestResult:
    providers_created: int = 0
    models_created: int = 0
    offers_created: int = 0
    offers_updated: int = 0
    unchanged: int = 0
    held_by_precedence: int = 0  # observations kept but not applied: a higher source sets the price
    backfilled: int = 0  # past observations filed as ticks at their own time (not live changes)
    ticks: list[PriceChanged] = field(default_factory=list)
    status_changes: list[StatusChanged] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        """What to publish once the transaction commits: live price changes and status moves."""
        return [*self.ticks, *self.status_changes]

    @property
    def changed(self) -> bool:
        return bool(
            self.providers_created
            or self.models_created
            or self.offers_created
            or self.offers_updated
            or self.ticks
            or self.status_changes
            or self.backfilled
        )


def _unique(entries: Iterable[OfferEntry]) -> list[OfferEntry]:
    seen: dict[tuple[str, str, str], OfferEntry] = {}
    for entry in entries:
        key = (entry.provider, entry.model.slug, entry.variant)
        if key in seen and seen[key] != entry:
            raise ValueError(f"two entries for {key}: {seen[key].source_key!r} and {entry.source_key!r}")
        seen[key] = entry
    return list(seen.values())


async def apply_offers(
    session: AsyncSession,
    entries: Sequence[OfferEntry],
    source: str,
    observed_at: datetime | None = None,
    confirm: bool = False,
    progress: Progress | None = None,
) -> IngestResult:
    observed_at = observed_at or datetime.now(UTC)
    entries = _unique(entries)
    result = IngestResult()
    provider_ids = await _ensure_providers(session, {e.provider for e in entries}, result)
    model_ids = await _ensure_models(session, {e.model.slug: e.model for e in entries}, result)

    wanted = select(Offer)
    if len(entries) <= CHUNK:  # a partial update (a poll of a few, a history group): only its offers
        wanted = wanted.where(
            Offer.provider_id.in_(set(provider_ids[e.provider] for e in entries)),
            Offer.model_id.in_(set(model_ids[e.model.slug] for e in entries)),
        )
    current = {(o.provider_id, o.model_id, o.variant): o for o in (await session.execute(wanted)).scalars()}
    new_rows: list[dict[str, object]] = []
    new_entries: list[OfferEntry] = []
    observed: list[tuple[int, OfferEntry]] = []
    for done, entry in enumerate(entries, 1):
        pid, mid = provider_ids[entry.provider], model_ids[entry.model.slug]
        offer = current.get((pid, mid, entry.variant))
        if offer is None:
            new_rows.append(_offer_values(entry, pid, mid, source, observed_at))
            new_entries.append(entry)
        else:
            await _update_offer(session, offer, entry, source, observed_at, confirm, result)
            observed.append((offer.id, entry))
        if progress and done % CHUNK == 0:
            progress(CHUNK)
    if progress:
        progress(len(entries) % CHUNK)

    for start in range(0, len(new_rows), CHUNK):
        rows = new_rows[start : start + CHUNK]
        ids = (await session.execute(insert(Offer).returning(Offer.id), rows)).scalars().all()
        for offer_id, entry in zip(ids, new_entries[start : start + CHUNK], strict=True):
            observed.append((offer_id, entry))
            exact = _exact(entry.price)
            result.ticks.append(
                PriceChanged(
                    offer_id,
                    entry.provider,
                    entry.model.slug,
                    entry.variant,
                    exact.input,
                    exact.output,
                    None,
                    None,
                    observed_at,
                    dimensions=exact.dimensions,
                )
            )
    result.offers_created = len(new_rows)
    await _insert_ticks(session, result.ticks, source)
    await _observe(session, observed, source, observed_at)
    await _refresh_model_context(session, {model_ids[e.model.slug] for e in entries})
    return result


def _exact(offer_price: Price) -> Price:
    return Price(price(offer_price.input), price(offer_price.output), offer_price.dimensions.exact())


def _offer_values(
    entry: OfferEntry, provider_id: int, model_id: int, source: str, observed_at: datetime
) -> dict[str, object]:
    return {
        "provider_id": provider_id,
        "model_id": model_id,
        "variant": entry.variant,
        "provider_model_id": entry.provider_model_id,
        "context_window": entry.context_window,
        "max_output_tokens": entry.max_output_tokens,
        "supports_vision": entry.supports_vision,
        "supports_tools": entry.supports_tools,
        **price_columns(entry.price),
        "status": OfferStatus.LIVE,
        "source": source,
        "updated_at": observed_at,
        "confirmed_at": observed_at,
    }


async def _update_offer(
    session: AsyncSession,
    offer: Offer,
    entry: OfferEntry,
    source: str,
    observed_at: datetime,
    confirm: bool,
    result: IngestResult,
) -> None:
    live = offer.status == OfferStatus.LIVE
    governs = precedence.governs(entry.provider, source, offer.source, live)
    new = _exact(entry.price)
    if observed_at < offer.updated_at and (governs or observed_at < await _first_tick_at(session, offer)):
        # The past: filed as history by the source that sets the price, or by any source before that
        # source's first tick (it had not spoken yet).
        await _record_history(session, offer, new, source, observed_at, result)
        return
    if not governs:
        result.held_by_precedence += 1
        return
    values: dict[str, object] = {}
    old = price_of(offer)
    if old != new:
        values.update(price_columns(new), updated_at=observed_at)
        result.ticks.append(
            PriceChanged(
                offer.id,
                entry.provider,
                entry.model.slug,
                entry.variant,
                new.input,
                new.output,
                old.input,
                old.output,
                observed_at,
                dimensions=new.dimensions,
            )
        )
    for name in ("provider_model_id", "context_window", "max_output_tokens", "supports_vision", "supports_tools"):
        if getattr(offer, name) != getattr(entry, name):
            values[name] = getattr(entry, name)
    if offer.status != OfferStatus.LIVE:
        values["status"] = OfferStatus.LIVE
        result.status_changes.append(
            StatusChanged(
                offer.id,
                entry.provider,
                entry.model.slug,
                entry.variant,
                OfferStatus.LIVE.value,
                OfferStatus(offer.status).value,
                observed_at,
            )
        )
    if values:
        result.offers_updated += 1
    else:
        result.unchanged += 1
    if values or confirm or source != offer.source:
        values.update(source=source, confirmed_at=observed_at)
        await session.execute(update(Offer).where(Offer.id == offer.id).values(**values))


async def _first_tick_at(session: AsyncSession, offer: Offer) -> datetime:
    """When the source that sets the offer's price first gave one."""
    first = (
        await session.execute(
            select(func.min(PriceTick.observed_at)).where(
                PriceTick.offer_id == offer.id, PriceTick.source == offer.source
            )
        )
    ).scalar_one_or_none()
    return first if first is not None else datetime.max.replace(tzinfo=UTC)


async def _record_history(
    session: AsyncSession,
    offer: Offer,
    observed: Price,
    source: str,
    observed_at: datetime,
    result: IngestResult,
) -> None:
    """An observation older than the offer's current price: a fact about the past. It becomes a tick
    at its own time when it differs from the price then in force, and leaves today's price alone."""
    then = (
        await session.execute(
            select(PriceTick)
            .where(PriceTick.offer_id == offer.id, PriceTick.observed_at <= observed_at)
            .order_by(PriceTick.observed_at.desc(), PriceTick.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if then is not None and price_of(then) == observed:
        result.unchanged += 1
        return
    row = {"offer_id": offer.id, **price_columns(observed), "observed_at": observed_at, "source": source}
    tick_id = (await session.execute(insert(PriceTick).values(row).returning(PriceTick.id))).scalar_one()
    rollups.defer(session, row, tick_id)  # written with this call's live ticks, in one batch
    result.backfilled += 1


async def _observe(
    session: AsyncSession, observed: list[tuple[int, OfferEntry]], source: str, observed_at: datetime
) -> None:
    """Each offer's latest observation from this source (an older one never replaces a newer)."""
    if not observed:
        return
    insert_ = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert_(OfferObservation)
    statement = statement.on_conflict_do_update(
        index_elements=[OfferObservation.offer_id, OfferObservation.source],
        set_={name: statement.excluded[name] for name in (*PRICE_COLUMNS, "observed_at")},
        where=statement.excluded.observed_at >= OfferObservation.observed_at,
    )
    rows = [
        {"offer_id": offer_id, "source": source, "observed_at": observed_at, **price_columns(entry.price)}
        for offer_id, entry in observed
    ]
    for start in range(0, len(rows), CHUNK):
        await session.execute(statement, rows[start : start + CHUNK])


async def _insert_ticks(session: AsyncSession, ticks: list[PriceChanged], source: str) -> None:
    rows = [
        {"offer_id": t.offer_id, **price_columns(t.price), "observed_at": t.observed_at, "source": source}
        for t in ticks
    ]
    ids: list[int] = []
    for start in range(0, len(rows), CHUNK):
        returning = insert(PriceTick).returning(PriceTick.id, sort_by_parameter_order=True)
        ids += (await session.execute(returning, rows[start : start + CHUNK])).scalars()
    await rollups.record(session, rows, ids)  # the candle rollups, with the history ticks deferred


async def _ensure_providers(session: AsyncSession, slugs: set[str], result: IngestResult) -> dict[str, int]:
    ids = dict((await session.execute(select(Provider.slug, Provider.id))).all())
    missing = sorted(slugs - ids.keys())
    if missing:
        rows = []
        for slug in missing:
            info = PROVIDERS.get(slug)
            rows.append(
                {
                    "slug": slug,
                    "name": info.name if info else slug,
                    "signup_url": info.signup_url if info else None,
                    "base_url": info.base_url if info else None,
                }
            )
        created = await session.execute(insert(Provider).returning(Provider.slug, Provider.id), rows)
        ids.update(created.all())
        result.providers_created = len(missing)
    return ids


async def _ensure_models(
    session: AsyncSession, identities: dict[str, ModelIdentity], result: IngestResult
) -> dict[str, int]:
    wanted = select(Model)
    if len(identities) <= CHUNK:  # a partial update: only its models
        wanted = wanted.where(Model.slug.in_(identities))
    existing = {m.slug: m for m in (await session.execute(wanted)).scalars()}
    missing = sorted(identities.keys() - existing.keys())
    ids = {slug: m.id for slug, m in existing.items()}
    for slug, model in existing.items():
        identity = identities.get(slug)
        if identity and _model_values(identity) != _model_values(model):
            await session.execute(update(Model).where(Model.id == model.id).values(**_model_values(identity)))
    for start in range(0, len(missing), CHUNK):
        rows = [{"slug": slug, **_model_values(identities[slug])} for slug in missing[start : start + CHUNK]]
        created = await session.execute(insert(Model).returning(Model.slug, Model.id), rows)
        ids.update(created.all())
    result.models_created = len(missing)
    return ids


def _model_values(model: ModelIdentity | Model) -> dict[str, object]:
    return {
        "display_name": model.display_name,
        "family": model.family,
        "params_b": model.params_b,
        "is_benchmark": model.is_benchmark,
    }


async def _refresh_model_context(session: AsyncSession, model_ids: set[int]) -> None:
    """A model's context window is the largest its live offers give."""
    if not model_ids:
        return
    rows = (
        await session.execute(select(Offer.model_id, Offer.context_window).where(Offer.model_id.in_(model_ids)))
    ).all()
    best: dict[int, int | None] = dict.fromkeys(model_ids)
    for model_id, window in rows:
        known = best[model_id]
        if window is not None and (known is None or window > known):
            best[model_id] = window
    current = dict((await session.execute(select(Model.id, Model.context_window).where(Model.id.in_(model_ids)))).all())
    for model_id, window in best.items():
        if current.get(model_id) != window:
            await session.execute(update(Model).where(Model.id == model_id).values(context_window=window))
