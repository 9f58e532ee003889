"""Models, providers and prices (one model at one provider, as one variant, at its current price)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry

from datasources import prices, pricing
from datasources.money import blended
from datasources.pricebook import Catalog, ModelRow, OfferRow, ProviderRow
from schema.bounds import Page, Sized
from schema.candles import CANDLES, Candle, CandleInterval, PriceDimension, candles_of_offer
from schema.context import Info

MODEL_OFFERS = Page(default=50, maximum=100)  # the most offers of one model in the seed: 62
PROVIDER_OFFERS = Page(default=100, maximum=1000)  # the most offers of one provider in the seed: 885
TIERS = Sized.fixed(pricing.MAX_TIERS, "an offer's context tiers")


@strawberry.enum(description="Whether a source still confirms the offer.")
class OfferStatus(Enum):
    LIVE = "live"
    STALE = "stale"
    UNAVAILABLE = "unavailable"


@strawberry.enum(description="What an offer's price says.")
class PriceKind(Enum):
    PRICED = "priced"
    FREE = "free"
    UNPRICED = "unpriced"


@strawberry.type(description="Rates above a context threshold, USD per 1M tokens (null: as input / output).")
class PriceTier:
    above_tokens: int
    input_per_1m: Decimal
    output_per_1m: Decimal
    cache_read_per_1m: Decimal | None
    cache_write_per_1m: Decimal | None
    cache_write_1h_per_1m: Decimal | None
    reasoning_per_1m: Decimal | None

    @classmethod
    def of(cls, tier: pricing.Tier) -> PriceTier:
        r = tier.rates
        return cls(
            above_tokens=tier.above,
            input_per_1m=r.input,
            output_per_1m=r.output,
            cache_read_per_1m=r.cache_read,
            cache_write_per_1m=r.cache_write,
            cache_write_1h_per_1m=r.cache_write_1h,
            reasoning_per_1m=r.reasoning,
        )


@strawberry.type(
    description="A model as sold by one provider (one variant of it), at its current price in USD per 1M tokens."
)
class Price:
    row: strawberry.Private[OfferRow]
    catalog: strawberry.Private[Catalog]

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

    @strawberry.field(
        description="PRICED, or FREE (the source says so) or UNPRICED (a zero that says nothing): neither is "
        "ever the cheapest, averaged or routed to."
    )
    def price_kind(self) -> PriceKind:
        return PriceKind(self.row.price_kind.value)

    @strawberry.field(description="Cache reads, USD per 1M tokens; null: billed as input.")
    def cache_read_per_1m(self) -> Decimal | None:
        return self.row.dimensions.cache_read

    @strawberry.field(description="Cache writes (5-minute), USD per 1M tokens; null: billed as input.")
    def cache_write_per_1m(self) -> Decimal | None:
        return self.row.dimensions.cache_write

    @strawberry.field(description="Cache writes kept 1 hour, USD per 1M tokens; null: as 5-minute writes.")
    def cache_write_1h_per_1m(self) -> Decimal | None:
        return self.row.dimensions.cache_write_1h

    @strawberry.field(description="Reasoning tokens, USD per 1M; null: billed as output.")
    def reasoning_per_1m(self) -> Decimal | None:
        return self.row.dimensions.reasoning

    @strawberry.field(description="A fee per request, USD.")
    def per_request(self) -> Decimal | None:
        return self.row.dimensions.per_request

    @strawberry.field(description="A fee per web search, USD.")
    def per_search(self) -> Decimal | None:
        return self.row.dimensions.per_search

    @strawberry.field(
        description="Context tiers, lowest first: above `aboveTokens` prompt tokens the whole request is "
        f"priced at the tier's rates (at most {pricing.MAX_TIERS}).",
        extensions=[TIERS],
    )
    def tiers(self) -> list[PriceTier]:
        return [PriceTier.of(tier) for tier in self.row.dimensions.tiers[: pricing.MAX_TIERS]]

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
    def model(self) -> Model:
        return Model(row=self.catalog.models[self.row.model_id], catalog=self.catalog)

    @strawberry.field
    def provider(self) -> Provider:
        return Provider(row=self.catalog.providers[self.row.provider_id], catalog=self.catalog)

    @strawberry.field(
        description="OHLC candles of this price's blended rate, or of one dimension (developer plan; hourly and "
        "over 30 days: team).",
        extensions=[CANDLES],
    )
    async def candles(
        self,
        info: Info,
        days: int = 30,
        interval: CandleInterval = CandleInterval.DAY,
        dimension: PriceDimension = PriceDimension.BLENDED,
    ) -> list[Candle] | None:
        return await candles_of_offer(info, self.row.id, days, interval, dimension)


def prices_of(catalog: Catalog, offers: Sequence[OfferRow]) -> list[Price]:
    return [Price(row=o, catalog=catalog) for o in offers]


@strawberry.type(description="A model under one canonical slug, whatever each provider calls it.")
class Model:
    row: strawberry.Private[ModelRow]
    catalog: strawberry.Private[Catalog]

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

    @strawberry.field(description="Every price of this model, cheapest blended first.", extensions=[MODEL_OFFERS])
    def prices(self, first: int = MODEL_OFFERS.default, offset: int = 0) -> list[Price]:
        return prices_of(self.catalog, MODEL_OFFERS.take(self.catalog.model_offers(self.row.id), first, offset))

    @strawberry.field(description="The same list as `prices`: every offer of this model.", extensions=[MODEL_OFFERS])
    def offers(self, first: int = MODEL_OFFERS.default, offset: int = 0) -> list[Price]:
        return prices_of(self.catalog, MODEL_OFFERS.take(self.catalog.model_offers(self.row.id), first, offset))

    @strawberry.field(description="The cheapest live price, by blended rate.")
    def cheapest(self) -> Price | None:
        best = prices.cheapest(self.catalog.model_offers(self.row.id))
        return Price(row=best, catalog=self.catalog) if best else None

    @strawberry.field(description="How many providers offer this model (offers not unavailable).")
    def provider_count(self) -> int:
        return self.catalog.provider_count(self.row.id)


@strawberry.type(description="An inference provider.")
class Provider:
    row: strawberry.Private[ProviderRow]
    catalog: strawberry.Private[Catalog]

    @strawberry.field
    def slug(self) -> str:
        return self.row.slug

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def signup_url(self) -> str | None:
        return self.row.signup_url

    @strawberry.field(description="Every price of this provider, cheapest blended first.", extensions=[PROVIDER_OFFERS])
    def prices(self, first: int = PROVIDER_OFFERS.default, offset: int = 0) -> list[Price]:
        offers = self.catalog.provider_offers(self.row.id)
        return prices_of(self.catalog, PROVIDER_OFFERS.take(offers, first, offset))

    @strawberry.field(
        description="The same list as `prices`: every offer of this provider.", extensions=[PROVIDER_OFFERS]
    )
    def offers(self, first: int = PROVIDER_OFFERS.default, offset: int = 0) -> list[Price]:
        offers = self.catalog.provider_offers(self.row.id)
        return prices_of(self.catalog, PROVIDER_OFFERS.take(offers, first, offset))

    @strawberry.field(description="The models this provider offers, by slug.", extensions=[PROVIDER_OFFERS])
    def models(self, first: int = PROVIDER_OFFERS.default, offset: int = 0) -> list[Model]:
        catalog = self.catalog
        ids = {o.model_id for o in catalog.provider_offers(self.row.id)}
        rows = sorted((catalog.models[i] for i in ids), key=lambda m: m.slug)
        return [Model(row=r, catalog=catalog) for r in PROVIDER_OFFERS.take(rows, first, offset)]

    @strawberry.field
    def model_count(self) -> int:
        return len({o.model_id for o in self.catalog.provider_offers(self.row.id)})
