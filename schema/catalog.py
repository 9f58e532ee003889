"""Models, providers and prices (one model at one provider, as one variant, at its current price)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry

from datasources import prices
from datasources.db import models as db
from datasources.money import blended
from resolvers import history
from schema.candles import Candle, CandleInterval
from schema.context import Info


@strawberry.enum(description="Whether a source still confirms the offer.")
class OfferStatus(Enum):
    LIVE = "live"
    STALE = "stale"
    UNAVAILABLE = "unavailable"


@strawberry.type(description="A model as sold by one provider (one variant of it), at its current price in USD per 1M tokens.")
class Price:
    row: strawberry.Private[db.Offer]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field(description="Empty for the provider's default build; else fp8, turbo, a region...")
    def variant(self) -> str:
        return self.row.variant

    @strawberry.field(description="The id the provider's own API uses for this model.")
    def provider_model_id(self) -> str:
        return self.row.provider_model_id

    @strawberry.field
    def input_per_1m(self) -> Decimal:
        return self.row.input_per_1m

    @strawberry.field
    def output_per_1m(self) -> Decimal:
        return self.row.output_per_1m

    @strawberry.field(description="(input + output) / 2.")
    def blended_per_1m(self) -> Decimal:
        return blended(self.row.input_per_1m, self.row.output_per_1m)

    @strawberry.field
    def context_window(self) -> int | None:
        return self.row.context_window

    @strawberry.field
    def max_output_tokens(self) -> int | None:
        return self.row.max_output_tokens

    @strawberry.field
    def supports_vision(self) -> bool:
        return self.row.supports_vision

    @strawberry.field
    def supports_tools(self) -> bool:
        return self.row.supports_tools

    @strawberry.field
    def status(self) -> OfferStatus:
        return OfferStatus(self.row.status.value)

    @strawberry.field(description="Where the price was last observed (litellm, openrouter, admin...).")
    def source(self) -> str:
        return self.row.source

    @strawberry.field(description="When the price last changed.")
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @strawberry.field(description="When a source last confirmed the price.")
    def confirmed_at(self) -> datetime:
        return self.row.confirmed_at

    @strawberry.field
    async def model(self, info: Info) -> Model:
        row = await info.context.loaders.model_by_id.load(self.row.model_id)
        assert row is not None
        return Model(row=row)

    @strawberry.field
    async def provider(self, info: Info) -> Provider:
        row = await info.context.loaders.provider_by_id.load(self.row.provider_id)
        assert row is not None
        return Provider(row=row)

    @strawberry.field(description="OHLC candles of this price's blended rate (developer plan; hourly and over 30 days: team).")
    async def candles(
        self, info: Info, days: int = 30, interval: CandleInterval = CandleInterval.DAY
    ) -> list[Candle] | None:
        return await history.candles_of_offer(info, self.row.id, days, interval)


def _prices(offers: list[db.Offer]) -> list[Price]:
    return [Price(row=o) for o in offers]


@strawberry.type(description="A model under one canonical slug, whatever each provider calls it.")
class Model:
    row: strawberry.Private[db.Model]

    @strawberry.field
    def slug(self) -> str:
        return self.row.slug

    @strawberry.field
    def display_name(self) -> str:
        return self.row.display_name

    @strawberry.field
    def family(self) -> str:
        return self.row.family

    @strawberry.field(description="Total parameters in billions, where known.")
    def params_b(self) -> Decimal | None:
        return self.row.params_b

    @strawberry.field(description="The largest context window any provider offers.")
    def context_window(self) -> int | None:
        return self.row.context_window

    @strawberry.field
    def is_benchmark(self) -> bool:
        return self.row.is_benchmark

    @strawberry.field(description="Every price of this model, cheapest blended first.")
    async def prices(self, info: Info) -> list[Price]:
        return _prices(await info.context.loaders.offers_by_model.load(self.row.id))

    @strawberry.field(description="The same list as `prices`: every offer of this model.")
    async def offers(self, info: Info) -> list[Price]:
        return _prices(await info.context.loaders.offers_by_model.load(self.row.id))

    @strawberry.field(description="The cheapest live price, by blended rate.")
    async def cheapest(self, info: Info) -> Price | None:
        best = prices.cheapest(await info.context.loaders.offers_by_model.load(self.row.id))
        return Price(row=best) if best else None

    @strawberry.field(description="How many providers offer this model (offers not unavailable).")
    async def provider_count(self, info: Info) -> int:
        offers = await info.context.loaders.offers_by_model.load(self.row.id)
        return len({o.provider_id for o in offers if o.status is not db.OfferStatus.UNAVAILABLE})


@strawberry.type(description="An inference provider.")
class Provider:
    row: strawberry.Private[db.Provider]

    @strawberry.field
    def slug(self) -> str:
        return self.row.slug

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def signup_url(self) -> str | None:
        return self.row.signup_url

    @strawberry.field(description="Every price of this provider, cheapest blended first.")
    async def prices(self, info: Info) -> list[Price]:
        return _prices(await info.context.loaders.offers_by_provider.load(self.row.id))

    @strawberry.field(description="The same list as `prices`: every offer of this provider.")
    async def offers(self, info: Info) -> list[Price]:
        return _prices(await info.context.loaders.offers_by_provider.load(self.row.id))

    @strawberry.field(description="The models this provider offers, by slug.")
    async def models(self, info: Info) -> list[Model]:
        offers = await info.context.loaders.offers_by_provider.load(self.row.id)
        ids = list(dict.fromkeys(o.model_id for o in offers))
        rows = await info.context.loaders.model_by_id.load_many(ids)
        return sorted((Model(row=r) for r in rows if r is not None), key=lambda m: m.row.slug)

    @strawberry.field
    async def model_count(self, info: Info) -> int:
        offers = await info.context.loaders.offers_by_provider.load(self.row.id)
        return len({o.model_id for o in offers})
