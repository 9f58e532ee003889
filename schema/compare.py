from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from datasources import prices
from datasources.pricebook import Catalog
from schema.catalog import Model, Price


@strawberry.type(description="One model's prices summarized across providers.")
class Comparison:
    row: strawberry.Private[prices.Comparison]
    catalog: strawberry.Private[Catalog]

    @strawberry.field
    def model(self) -> Model:
        return Model(row=self.row.model, catalog=self.catalog)

    @strawberry.field(description="The cheapest live price, by blended rate.")
    def cheapest(self) -> Price | None:
        return Price(row=self.row.cheapest.offer, catalog=self.catalog) if self.row.cheapest else None

    @strawberry.field
    def cheapest_provider(self) -> str | None:
        return self.row.cheapest.provider.slug if self.row.cheapest else None

    @strawberry.field
    def cheapest_blended(self) -> Decimal | None:
        return self.row.cheapest.blended if self.row.cheapest else None

    @strawberry.field(description="Mean blended rate over live prices.")
    def avg_blended(self) -> Decimal | None:
        return self.row.average_blended

    @strawberry.field
    def provider_count(self) -> int:
        return self.row.provider_count

    @strawberry.field
    def updated_at(self) -> datetime | None:
        return self.row.updated_at
