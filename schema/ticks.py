from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from datasources.events import PriceChanged
from datasources.pricing import service_tier
from schema.bounds import Sized
from schema.catalog import OfferStatus, PriceKind


@strawberry.type(description="One observed price change of a model at a provider.")
class PriceTick:
    row: strawberry.Private[PriceChanged]

    @strawberry.field
    def model(self) -> str:
        return self.row.model

    @strawberry.field
    def provider(self) -> str:
        return self.row.provider

    @strawberry.field
    def variant(self) -> str:
        return self.row.variant

    @strawberry.field
    def input_per_1m(self) -> Decimal:
        return self.row.input_per_1m

    @strawberry.field
    def output_per_1m(self) -> Decimal:
        return self.row.output_per_1m

    @strawberry.field
    def blended_per_1m(self) -> Decimal:
        return self.row.blended_per_1m

    @strawberry.field(description="The blended price before this change; null for a new offer.")
    def previous_blended_per_1m(self) -> Decimal | None:
        return self.row.previous_blended_per_1m

    @strawberry.field(description="Percent change of the blended price; null for a new offer.")
    def change_pct(self) -> Decimal | None:
        return self.row.change_pct

    @strawberry.field(description="Whether the new price is a price, free, or not known (never the cheapest).")
    def price_kind(self) -> PriceKind:
        return PriceKind(self.row.price_kind.value)

    @strawberry.field(description="batch, flex or priority for a service tier's variant; null: the standard tier.")
    def service_tier(self) -> str | None:
        return service_tier(self.row.variant)

    @strawberry.field
    def status(self) -> OfferStatus:
        return OfferStatus(self.row.status)

    @strawberry.field
    def observed_at(self) -> datetime:
        return self.row.observed_at


@strawberry.type
class RecordedPrices:
    ticks: list[PriceTick] = strawberry.field(
        description="The changes: new offers and changed prices.", extensions=[Sized.BY_PARENT]
    )
    unchanged: int = strawberry.field(description="Observations that matched the current price.")
    offers_created: int
