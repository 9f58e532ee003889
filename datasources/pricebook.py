"""The catalog in memory: models, providers and every offer at its current price, kept current by events.

Reads of the catalog (GraphQL, REST, the gateway's candidates) come from here, not from the database.
A `Catalog` is an immutable snapshot with the indexes readers need; a request takes one snapshot and
reads it throughout, so one answer never mixes two states. The `PriceBook` swaps in a new snapshot:

- when price and status events arrive (`PriceChanged`, `StatusChanged`, from any process through the
  broker): the offers they name are updated in a new snapshot at once;
- when an event names an offer this process has never seen, or the catalog's fingerprint (counts and
  latest timestamps, checked every few seconds) moved without an event (a poll that only confirmed
  offers, an import's metadata): the whole catalog is read again, in one short query per table;
- when a writer in this process asks (`await book.reload()` after its commit), so that it reads its
  own writes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.catalog.identity import lookup_slug
from datasources.catalog.providers import provider_slug
from datasources.db.models import Model, Offer, OfferStatus, Provider
from datasources.errors import NotFound
from datasources.events import Event, MemoryBroker, PriceChanged, StatusChanged
from datasources.pricing import NO_DIMENSIONS, Dimensions, Price, PriceKind, price_kind, price_of, service_tier

log = logging.getLogger("pricegraph.pricebook")

CHECK_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ModelRow:
    id: int
    slug: str
    display_name: str
    family: str
    params_b: Decimal | None
    context_window: int | None
    is_benchmark: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ProviderRow:
    id: int
    slug: str
    name: str
    signup_url: str | None
    base_url: str | None


@dataclass(frozen=True, slots=True)
class OfferRow:
    id: int
    provider_id: int
    model_id: int
    variant: str
    provider_model_id: str
    context_window: int | None
    max_output_tokens: int | None
    supports_vision: bool
    supports_tools: bool
    input_per_1m: Decimal
    output_per_1m: Decimal
    status: OfferStatus
    source: str
    updated_at: datetime
    confirmed_at: datetime
    dimensions: Dimensions = NO_DIMENSIONS

    @property
    def price(self) -> Price:
        return Price(self.input_per_1m, self.output_per_1m, self.dimensions)

    @property
    def price_kind(self) -> PriceKind:
        return price_kind(self.input_per_1m, self.output_per_1m, self.dimensions)

    @property
    def priced(self) -> bool:
        """Whether the offer has a price to compare: free and unpriced offers are never the cheapest."""
        return self.price_kind is PriceKind.PRICED

    @property
    def service_tier(self) -> str | None:
        """batch, flex or priority for a service tier's variant; None for the standard tier."""
        return service_tier(self.variant)


def sort_key(offer: OfferRow) -> tuple[int, Decimal, int]:
    """The one price order: priced offers at the standard service tier, cheapest blended first, then the
    oldest offer; then the service tiers' variants (batch, flex, priority) the same way; free and
    unpriced offers last."""
    group = 2 if not offer.priced else 1 if offer.service_tier is not None else 0
    return group, offer.input_per_1m + offer.output_per_1m, offer.id


def model_slugs(text: str) -> list[str]:
    """The slugs a client's spelling of a model may mean, most literal first."""
    return list(dict.fromkeys((text.strip().lower(), lookup_slug(text))))


def provider_slugs(text: str) -> list[str]:
    """Our slug as typed, then the one a LiteLLM or OpenRouter name maps to (`together_ai`)."""
    stripped = text.strip()
    mapped = provider_slug(stripped)
    return list(dict.fromkeys((stripped.lower(), *([mapped] if mapped else []))))


class Catalog:
    """One state of the catalog and its indexes. Never changed once built."""

    def __init__(
        self, models: Iterable[ModelRow], providers: Iterable[ProviderRow], offers: Iterable[OfferRow]
    ) -> None:
        self.models = {m.id: m for m in models}
        self.providers = {p.id: p for p in providers}
        self.offers = {o.id: o for o in offers}
        self.model_by_slug = {m.slug: m for m in self.models.values()}
        self.provider_by_slug = {p.slug: p for p in self.providers.values()}
        by_model: dict[int, list[OfferRow]] = defaultdict(list)
        by_provider: dict[int, list[OfferRow]] = defaultdict(list)
        for offer in self.offers.values():
            by_model[offer.model_id].append(offer)
            by_provider[offer.provider_id].append(offer)
        self.offers_by_model = {k: tuple(sorted(v, key=sort_key)) for k, v in by_model.items()}
        self.offers_by_provider = {k: tuple(sorted(v, key=sort_key)) for k, v in by_provider.items()}
        self.models_sorted = tuple(sorted(self.models.values(), key=lambda m: m.slug))
        self.providers_offering = tuple(
            sorted((p for p in self.providers.values() if p.id in self.offers_by_provider), key=lambda p: p.slug)
        )
        self.prices_sorted = tuple(
            sorted(self.offers.values(), key=lambda o: (self.models[o.model_id].slug, *sort_key(o)))
        )

    def with_offers(self, changed: Iterable[OfferRow]) -> Catalog:
        offers = dict(self.offers)
        offers.update((o.id, o) for o in changed)
        return Catalog(self.models.values(), self.providers.values(), offers.values())

    # ---- lookups by what clients write ----------------------------------------------------------------

    def find_model(self, text: str) -> ModelRow:
        """A model by canonical slug or any spelling the identity rules know (`openai/gpt-4o-mini`)."""
        found = self.model_by_slug.get(text.strip().lower())  # the canonical slug: no rules to run
        if found is not None:
            return found
        for slug in model_slugs(text):
            if slug in self.model_by_slug:
                return self.model_by_slug[slug]
        raise NotFound(f"model not found: {text}")

    def find_provider(self, text: str) -> ProviderRow:
        for slug in provider_slugs(text):
            if slug in self.provider_by_slug:
                return self.provider_by_slug[slug]
        raise NotFound(f"provider not found: {text}")

    def find_model_ref(self, text: str) -> tuple[ModelRow, ProviderRow | None]:
        """A bare slug, or `provider/model` to pin one provider (only when the prefix is a provider with
        offers; `meta-llama/Llama-3.3-70B` is just a spelling)."""
        head, sep, tail = text.strip().partition("/")
        if sep and tail:
            provider = self.provider_by_slug.get(head.lower())
            if provider is not None and provider.id in self.offers_by_provider:
                return self.find_model(tail), provider
        return self.find_model(text), None

    # ---- lists ----------------------------------------------------------------------------------------

    def model_offers(self, model_id: int) -> tuple[OfferRow, ...]:
        return self.offers_by_model.get(model_id, ())

    def provider_offers(self, provider_id: int) -> tuple[OfferRow, ...]:
        return self.offers_by_provider.get(provider_id, ())

    def provider_count(self, model_id: int) -> int:
        """How many providers offer the model (offers not marked unavailable)."""
        return len({o.provider_id for o in self.model_offers(model_id) if o.status is not OfferStatus.UNAVAILABLE})

    def offers_of(self, model: ModelRow | None = None, provider: ProviderRow | None = None) -> Sequence[OfferRow]:
        """Current offers of a model and/or a provider: by model slug, then cheapest first."""
        if model is not None and provider is not None:
            return tuple(o for o in self.model_offers(model.id) if o.provider_id == provider.id)
        if model is not None:
            return self.model_offers(model.id)
        if provider is not None:
            return tuple(
                sorted(self.provider_offers(provider.id), key=lambda o: (self.models[o.model_id].slug, *sort_key(o)))
            )
        return self.prices_sorted

    def list_models(
        self,
        family: str | None = None,
        provider: str | None = None,
        search: str | None = None,
        vision: bool = False,
        tools: bool = False,
    ) -> list[ModelRow]:
        """Models by slug; `vision` / `tools`: only models some provider serves with that capability."""
        found: Iterable[ModelRow] = self.models_sorted
        if family:
            found = [m for m in found if m.family == family.lower()]
        if provider:
            known = [slug for slug in provider_slugs(provider) if slug in self.provider_by_slug]
            seller = self.provider_by_slug[known[0]] if known else None
            ids = {o.model_id for o in self.provider_offers(seller.id)} if seller else set()
            found = [m for m in found if m.id in ids]
        if search:
            needle = search.lower()
            found = [m for m in found if needle in m.slug or needle in m.display_name.lower()]
        if vision:
            found = [m for m in found if any(o.supports_vision for o in self.model_offers(m.id))]
        if tools:
            found = [m for m in found if any(o.supports_tools for o in self.model_offers(m.id))]
        return list(found)

    def fingerprint(self) -> tuple[object, ...]:
        return _fingerprint_of(self)


def _fingerprint_of(catalog: Catalog) -> tuple[object, ...]:
    offers = catalog.offers.values()
    return (
        len(catalog.models),
        len(catalog.providers),
        len(catalog.offers),
        max((o.id for o in offers), default=None),
        max((o.updated_at for o in offers), default=None),
        max((o.confirmed_at for o in offers), default=None),
    )


async def read_catalog(session: AsyncSession) -> Catalog:
    models = [
        ModelRow(r.id, r.slug, r.display_name, r.family, r.params_b, r.context_window, r.is_benchmark, r.created_at)
        for r in (await session.execute(select(Model.__table__))).all()
    ]
    providers = [
        ProviderRow(r.id, r.slug, r.name, r.signup_url, r.base_url)
        for r in (await session.execute(select(Provider.__table__))).all()
    ]
    offers = [
        OfferRow(
            r.id,
            r.provider_id,
            r.model_id,
            r.variant,
            r.provider_model_id,
            r.context_window,
            r.max_output_tokens,
            r.supports_vision,
            r.supports_tools,
            r.input_per_1m,
            r.output_per_1m,
            OfferStatus(r.status),
            r.source,
            r.updated_at,
            r.confirmed_at,
            price_of(r).dimensions,
        )
        for r in (await session.execute(select(Offer.__table__))).all()
    ]
    return Catalog(models, providers, offers)


async def read_fingerprint(session: AsyncSession) -> tuple[object, ...]:
    models = (await session.execute(select(func.count()).select_from(Model))).scalar_one()
    providers = (await session.execute(select(func.count()).select_from(Provider))).scalar_one()
    row = (
        await session.execute(
            select(
                func.count(), func.max(Offer.id), func.max(Offer.updated_at), func.max(Offer.confirmed_at)
            ).select_from(Offer)
        )
    ).one()
    return (models, providers, row[0], row[1], row[2], row[3])


class PriceBook:
    """The current `Catalog` of this process, and what keeps it current."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: MemoryBroker,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.check_seconds = check_seconds
        self._catalog = Catalog((), (), ())
        self.version = 0  # moves with every new snapshot (what caches of answers key on)
        self.reloads = 0
        self._stale = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @catalog.setter
    def catalog(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.version += 1

    async def start(self) -> None:
        await self.reload()
        self.broker.watch(self.apply)
        self._task = asyncio.create_task(self._keep_current(), name="pricegraph: price book")

    async def stop(self) -> None:
        self.broker.unwatch(self.apply)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def reload(self) -> Catalog:
        """Read the whole catalog again (after this process wrote to it, or when it moved unseen)."""
        async with self._lock:
            self._stale.clear()
            async with self.sessionmaker() as session:
                self.catalog = await read_catalog(session)
            self.reloads += 1
            return self.catalog

    def apply(self, events: Sequence[Event]) -> None:
        """Committed price and status changes, from any process: a new snapshot at once."""
        changed: dict[int, OfferRow] = {}
        catalog = self.catalog
        for event in events:
            if not isinstance(event, (PriceChanged, StatusChanged)):
                continue
            offer = changed.get(event.offer_id) or catalog.offers.get(event.offer_id)
            if offer is None:
                self._stale.set()  # an offer this process has not seen: read everything again
                continue
            if isinstance(event, PriceChanged):
                if event.observed_at < offer.updated_at:
                    continue
                offer = replace(
                    offer,
                    input_per_1m=event.input_per_1m,
                    output_per_1m=event.output_per_1m,
                    dimensions=event.dimensions,
                    updated_at=event.observed_at,
                    status=OfferStatus(event.status),
                )
            else:
                offer = replace(offer, status=OfferStatus(event.status))
            changed[offer.id] = offer
        if changed:
            self.catalog = catalog.with_offers(changed.values())

    async def _keep_current(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stale.wait(), timeout=self.check_seconds)
            try:
                if not self._stale.is_set():
                    async with self.sessionmaker() as session:
                        found = await read_fingerprint(session)
                    if found == self.catalog.fingerprint():
                        continue
                await self.reload()
            except Exception:  # the database is away: keep serving what we have, try again later
                log.warning("could not refresh the price book", exc_info=True)
                await asyncio.sleep(self.check_seconds)
