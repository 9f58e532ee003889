"""Current prices: one model's offers, a provider's, the cheapest, and cross-model comparisons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.catalog.identity import lookup_slug
from datasources.catalog.providers import provider_slug
from datasources.db.models import Model, Offer, OfferStatus, Provider
from datasources.errors import NotFound
from datasources.money import blended, price

MAX_COMPARE = 5


@dataclass(frozen=True)
class PriceRow:
    offer: Offer
    model: Model
    provider: Provider

    @property
    def blended(self) -> Decimal:
        return blended(self.offer.input_per_1m, self.offer.output_per_1m)


@dataclass(frozen=True)
class Comparison:
    model: Model
    cheapest: PriceRow | None
    average_blended: Decimal | None
    provider_count: int
    updated_at: datetime | None


def sort_key(offer: Offer) -> tuple[Decimal, int]:
    """The one price order: cheapest blended first, then the oldest offer."""
    return offer.input_per_1m + offer.output_per_1m, offer.id


def cheapest(offers: Sequence[Offer]) -> Offer | None:
    live = [o for o in offers if o.status is OfferStatus.LIVE]
    return min(live, key=sort_key) if live else None


async def find_model(session: AsyncSession, text: str) -> Model:
    """A model by canonical slug or any spelling the identity rules know (`openai/gpt-4o-mini`)."""
    candidates = [text.strip().lower(), lookup_slug(text)]
    rows = (await session.execute(select(Model).where(Model.slug.in_(candidates)))).scalars().all()
    by_slug = {m.slug: m for m in rows}
    for slug in candidates:
        if slug in by_slug:
            return by_slug[slug]
    raise NotFound(f"model not found: {text}")


async def find_provider(session: AsyncSession, text: str) -> Provider:
    candidates = [text.strip().lower()]
    if (mapped := provider_slug(text.strip())) is not None:
        candidates.append(mapped)
    rows = (await session.execute(select(Provider).where(Provider.slug.in_(candidates)))).scalars().all()
    if not rows:
        raise NotFound(f"provider not found: {text}")
    return rows[0]


async def find_model_ref(session: AsyncSession, text: str) -> tuple[Model, Provider | None]:
    """A model reference as clients write it: a bare slug, or `provider/model` to pin one provider
    (only when the prefix is a provider we carry; `meta-llama/Llama-3.3-70B` is just a spelling)."""
    head, sep, tail = text.strip().partition("/")
    if sep and tail:
        provider = (await session.execute(
            select(Provider).where(Provider.slug == head.lower(), Provider.id.in_(select(Offer.provider_id)))
        )).scalar_one_or_none()
        if provider is not None:
            return await find_model(session, tail), provider
    return await find_model(session, text), None


async def current_prices(
    session: AsyncSession, model: Model | None = None, provider: Provider | None = None
) -> list[PriceRow]:
    statement = select(Offer, Model, Provider).join(Model, Offer.model_id == Model.id).join(
        Provider, Offer.provider_id == Provider.id
    )
    if model is not None:
        statement = statement.where(Offer.model_id == model.id)
    if provider is not None:
        statement = statement.where(Offer.provider_id == provider.id)
    rows = [PriceRow(*row) for row in (await session.execute(statement)).all()]
    rows.sort(key=lambda r: (r.model.slug, *sort_key(r.offer)))
    return rows


async def pair_offer(session: AsyncSession, model: Model, provider: Provider, variant: str | None = None) -> Offer:
    """The offer that stands for a model at a provider: the named variant, else the default build
    (variant ""), else the provider's cheapest variant."""
    offers = (await session.execute(
        select(Offer).where(Offer.model_id == model.id, Offer.provider_id == provider.id)
    )).scalars().all()
    if variant is not None:
        offers = [o for o in offers if o.variant == variant]
    if not offers:
        suffix = f" (variant {variant!r})" if variant else ""
        raise NotFound(f"provider {provider.slug} does not offer {model.slug}{suffix}")
    default = [o for o in offers if o.variant == ""]
    return default[0] if default else min(offers, key=sort_key)


def summarize(model: Model, rows: Sequence[PriceRow]) -> Comparison:
    live = [r for r in rows if r.offer.status is OfferStatus.LIVE]
    best = min(live, key=lambda r: sort_key(r.offer)) if live else None
    average = price(sum((r.blended for r in live), Decimal(0)) / len(live)) if live else None
    return Comparison(
        model=model,
        cheapest=best,
        average_blended=average,
        provider_count=len({r.provider.id for r in live}),
        updated_at=max((r.offer.confirmed_at for r in rows), default=None),
    )


async def compare(session: AsyncSession, models: Sequence[Model], provider: Provider | None = None) -> list[Comparison]:
    ids = {m.id for m in models}
    statement = select(Offer, Model, Provider).join(Model, Offer.model_id == Model.id).join(
        Provider, Offer.provider_id == Provider.id
    ).where(Offer.model_id.in_(ids))
    if provider is not None:
        statement = statement.where(Offer.provider_id == provider.id)
    rows = [PriceRow(*row) for row in (await session.execute(statement)).all()]
    return [summarize(m, [r for r in rows if r.model.id == m.id]) for m in models]
