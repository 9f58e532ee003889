"""Current prices: one model's offers, a provider's, the cheapest, and cross-model comparisons.

Readers work on a `Catalog` snapshot (`datasources.pricebook`), in memory. Writers, which must see
their own transaction, look names up in the database with `find_model` and `find_provider`; both
sides spell names by the same rules (`model_slugs`, `provider_slugs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import Model, Offer, OfferStatus, Provider
from datasources.errors import BadInput, NotFound
from datasources.money import blended, price
from datasources.pricebook import (
    Catalog,
    ModelRow,
    OfferRow,
    ProviderRow,
    model_slugs,
    provider_slugs,
    sort_key,
)

MAX_COMPARE = 5


class _Priced(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def input_per_1m(self) -> Decimal: ...
    @property
    def output_per_1m(self) -> Decimal: ...
    @property
    def status(self) -> OfferStatus: ...


P = TypeVar("P", bound=_Priced)
R = TypeVar("R", Model, Provider)


@dataclass(frozen=True)
class PriceRow:
    offer: OfferRow
    model: ModelRow
    provider: ProviderRow

    @property
    def blended(self) -> Decimal:
        return blended(self.offer.input_per_1m, self.offer.output_per_1m)


@dataclass(frozen=True)
class Comparison:
    model: ModelRow
    cheapest: PriceRow | None
    average_blended: Decimal | None
    provider_count: int
    updated_at: datetime | None


def comparable(offer: OfferRow) -> bool:
    """Whether an offer takes part in the cheapest price and the average: live, priced (a free or
    unpriced offer stays visible, never the cheapest) and at the standard service tier (a batch price is
    for another API, a flex or priority one for a request that asks for it)."""
    return offer.status is OfferStatus.LIVE and offer.priced and offer.service_tier is None


def cheapest(offers: Sequence[OfferRow]) -> OfferRow | None:
    live = [o for o in offers if comparable(o)]
    return min(live, key=sort_key) if live else None


def current_prices(
    catalog: Catalog, model: ModelRow | None = None, provider: ProviderRow | None = None
) -> list[PriceRow]:
    """Every offer of a model and/or a provider, by model slug and then cheapest first."""
    return [
        PriceRow(o, catalog.models[o.model_id], catalog.providers[o.provider_id])
        for o in catalog.offers_of(model, provider)
    ]


def pair_offer(catalog: Catalog, model: ModelRow, provider: ProviderRow, variant: str | None = None) -> OfferRow:
    """The offer that stands for a model at a provider: the named variant, else the default build
    (variant ""), else the provider's cheapest variant."""
    offers = [o for o in catalog.model_offers(model.id) if o.provider_id == provider.id]
    if variant is not None:
        offers = [o for o in offers if o.variant == variant]
    if not offers:
        suffix = f" (variant {variant!r})" if variant else ""
        raise NotFound(f"provider {provider.slug} does not offer {model.slug}{suffix}")
    default = [o for o in offers if o.variant == ""]
    return default[0] if default else min(offers, key=sort_key)


def summarize(model: ModelRow, rows: Sequence[PriceRow]) -> Comparison:
    live = [r for r in rows if r.offer.status is OfferStatus.LIVE]
    priced = [r for r in live if comparable(r.offer)]
    best = min(priced, key=lambda r: sort_key(r.offer)) if priced else None
    average = price(sum((r.blended for r in priced), Decimal(0)) / len(priced)) if priced else None
    return Comparison(
        model=model,
        cheapest=best,
        average_blended=average,
        provider_count=len({r.provider.id for r in live}),
        updated_at=max((r.offer.confirmed_at for r in rows), default=None),
    )


def compare(catalog: Catalog, models: Sequence[ModelRow], provider: ProviderRow | None = None) -> list[Comparison]:
    return [summarize(m, current_prices(catalog, m, provider)) for m in models]


def compare_models(catalog: Catalog, names: Sequence[str], provider: str | None = None) -> list[Comparison]:
    """Up to MAX_COMPARE models side by side, each once however many spellings name it."""
    wanted = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    if not 1 <= len(wanted) <= MAX_COMPARE:
        raise BadInput(f"give 1 to {MAX_COMPARE} model slugs, got {len(wanted)}", field="models")
    models = list({m.id: m for m in (catalog.find_model(name) for name in wanted)}.values())
    return compare(catalog, models, catalog.find_provider(provider) if provider else None)


def list_models(
    catalog: Catalog,
    family: str | None = None,
    provider: str | None = None,
    search: str | None = None,
    vision: bool = False,
    tools: bool = False,
) -> list[ModelRow]:
    """The models a client filters for; `provider` by any spelling the identity rules know (`together_ai`),
    an unknown one is NotFound rather than an empty list."""
    seller = catalog.find_provider(provider) if provider else None
    return catalog.list_models(family, seller.slug if seller else None, search, vision=vision, tools=tools)


# ---- for writers, inside their transaction ------------------------------------------------------------


async def _named(session: AsyncSession, table: type[R], candidates: list[str], what: str, text: str) -> R:
    rows = (await session.execute(select(table).where(table.slug.in_(candidates)))).scalars().all()
    by_slug = {row.slug: row for row in rows}
    for slug in candidates:
        if slug in by_slug:
            return by_slug[slug]
    raise NotFound(f"{what} not found: {text}")


async def find_model(session: AsyncSession, text: str) -> Model:
    """A model by canonical slug or any spelling the identity rules know (`openai/gpt-4o-mini`)."""
    return await _named(session, Model, model_slugs(text), "model", text)


async def find_provider(session: AsyncSession, text: str) -> Provider:
    return await _named(session, Provider, provider_slugs(text), "provider", text)


async def find_model_ref(session: AsyncSession, text: str) -> tuple[Model, Provider | None]:
    """A bare slug, or `provider/model` to pin one provider (only when the prefix is a provider with
    offers; `meta-llama/Llama-3.3-70B` is just a spelling)."""
    head, sep, tail = text.strip().partition("/")
    if sep and tail:
        provider = (
            await session.execute(
                select(Provider).where(Provider.slug == head.lower(), Provider.id.in_(select(Offer.provider_id)))
            )
        ).scalar_one_or_none()
        if provider is not None:
            return await find_model(session, tail), provider
    return await find_model(session, text), None
